package daemon

import (
	"context"
	"net/http"
	"net/http/httptest"

	"github.com/graymesh/graymesh/internal/core/gate"
	"github.com/graymesh/graymesh/internal/runtime/control"
)

// The pipeline's and the admin API's operations, as the tests of the
// whole daemon call them.

func (d *Daemon) ApplyFleet(ch control.ReleaseChange) (pending bool, err error) {
	res, err := d.pipe.Submit(ch)
	return res.Pending, err
}

func (d *Daemon) History(release string) []control.Record { return d.pipe.History(release) }

func (d *Daemon) Act(a control.Action) (control.ReleaseStatus, error) {
	return d.api.Act(context.Background(), a)
}

func (d *Daemon) Preview(a control.Action, sample int) (gate.Report, error) {
	return d.api.Preview(context.Background(), a, sample)
}

func (d *Daemon) last() *control.Outcome { return d.pipe.Last() }

// APIGet serves GET path on the admin API in process.
func (d *Daemon) APIGet(_ context.Context, path string) (int, []byte) {
	w := httptest.NewRecorder()
	d.AdminHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	return w.Code, w.Body.Bytes()
}
