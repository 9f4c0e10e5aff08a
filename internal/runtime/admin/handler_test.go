package admin

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/analysis/analysistest"
	"github.com/graymesh/graymesh/internal/core/gray"
	"github.com/graymesh/graymesh/internal/runtime/analyser"
	"github.com/graymesh/graymesh/internal/runtime/control"
	"github.com/graymesh/graymesh/internal/runtime/control/clocktest"
	"github.com/graymesh/graymesh/lanequeue"
)

const analysed = `
lane: {key: "admin-test-lane-key-0123456789abcdef"}
membership: {enabled: true}
releases:
  - name: shop-v2
    env: gray
    percent: 1
    whitelist: [alice]
    schedule:
      - {at: 2026-01-01T00:00:00Z, percent: 10}
      - {at: 2026-01-01T00:01:00Z, percent: 50}
      - {at: 2030-01-01T00:00:00Z, percent: 100}
    analysis: {interval: 1s, min_requests: 50, on_fail: freeze}
services:
  - name: shop
    environments: {stable: ["127.0.0.1:9101"], gray: ["127.0.0.1:9102"]}
`

// rig is the API over a pipeline and an analysis runner fed by src.
type rig struct {
	svc   *Service
	a     *analyser.Runner
	src   *analysistest.Source
	clock *clocktest.Clock
}

func newRig(t *testing.T) *rig {
	t.Helper()
	path := filepath.Join(t.TempDir(), "graymesh.yaml")
	if err := os.WriteFile(path, []byte(analysed), 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	r := &rig{src: &analysistest.Source{}, clock: clocktest.New(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))}
	r.a = analyser.New(log, prometheus.NewRegistry(), r.src)
	p, err := control.New(control.Options{Path: path, Clock: r.clock, Log: log, Changed: r.a.ConfigChanged}, r.a.Sink())
	if err != nil {
		t.Fatal(err)
	}
	r.a.Attach(p)
	r.svc = NewService(p, r.a, Runtime{})
	return r
}

func (r *rig) window() {
	from := r.clock.Now()
	r.clock.Advance(time.Second)
	r.a.Window(context.Background(), "shop-v2", from, r.clock.Now())
}

func TestAnalysisEndpoint(t *testing.T) {
	r := newRig(t)
	r.src.Set(analysistest.Side(500, 5, 20), analysistest.Side(500, 5, 20))
	r.window()
	r.window()
	h := r.svc.Handler(nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/releases/shop-v2/analysis?windows=1", nil))
	var st AnalysisStatus
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("%d %v: %s", rec.Code, err, rec.Body)
	}
	if len(st.Windows) != 1 || st.Windows[0].Index != 2 || st.ScheduleSteps != 3 || st.Windows[0].Services[0].Gray.Requests != 500 {
		t.Fatalf("status %+v", st)
	}
	for path, code := range map[string]int{"/v1/releases/nope/analysis": http.StatusNotFound, "/v1/releases/shop-v2/analysis?windows=x": http.StatusBadRequest} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != code {
			t.Errorf("%s answered %d, want %d", path, rec.Code, code)
		}
	}
}

// TestClientAndServiceAgree: the HTTP client (the CLI's) and the service
// in process (the console's) answer every operation alike, errors with
// the same status, because the handlers are a translation of the one API.
func TestClientAndServiceAgree(t *testing.T) {
	r := newRig(t)
	srv := httptest.NewServer(r.svc.Handler(nil))
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, api := range []API{r.svc, c} {
		rep, err := api.Preview(ctx, Action{Release: "shop-v2", Kind: "percent", Percent: 0.5}, 2000)
		if err != nil || !rep.Refused {
			t.Fatalf("%T: preview of a lowered percentage: %+v, %v", api, rep, err)
		}
		if _, err := api.Act(ctx, Action{Release: "shop-v2", Kind: "percent", Percent: 0.5}); Code(err) != http.StatusUnprocessableEntity {
			t.Fatalf("%T: an evicting action without rollback: %v (status %d)", api, err, Code(err))
		}
		if _, err := api.Act(ctx, Action{Release: "nope", Kind: "kill"}); Code(err) != http.StatusNotFound {
			t.Fatalf("%T: an unknown release: %v (status %d)", api, err, Code(err))
		}
		if _, err := api.Act(ctx, Action{Release: "shop-v2", Kind: "jump"}); Code(err) != http.StatusNotFound && Code(err) != http.StatusBadRequest {
			t.Fatalf("%T: an unknown action: %v (status %d)", api, err, Code(err))
		}
		if _, err := api.Fleet(ctx, "shop-v2"); Code(err) != http.StatusNotFound {
			t.Fatalf("%T: the fleet in file mode: %v", api, err)
		}
		m, err := api.StressMarker(ctx, "shop-v2", time.Hour)
		if err != nil || m.Header != wire.HeaderStressMarker || !m.ExpiresAt.Equal(r.clock.Now().Add(time.Hour)) {
			t.Fatalf("%T: stress marker %+v, %v", api, m, err)
		}
		if s, err := r.svc.pipe.Policy().Lanes.VerifyStress(m.Marker, r.clock.Now()); err != nil || s.Release != "shop-v2" {
			t.Fatalf("%T: the minted marker: %+v, %v", api, s, err)
		}
		if _, err := api.StressMarker(ctx, "nope", time.Hour); Code(err) != http.StatusNotFound {
			t.Fatalf("%T: a marker for an unknown release: %v", api, err)
		}
		if _, err := api.StressMarker(ctx, "shop-v2", 48*time.Hour); Code(err) != http.StatusBadRequest {
			t.Fatalf("%T: a 48h marker: %v", api, err)
		}
	}
	ex, err := c.Explain(ctx, gray.Ask{Subject: "alice"})
	if err != nil || ex.Env != "gray" {
		t.Fatalf("explain alice: %+v, %v", ex, err)
	}
	rs, err := c.Act(ctx, Action{Release: "shop-v2", Kind: "freeze", Reason: "checking"})
	if err != nil || rs.State != "frozen" {
		t.Fatalf("freeze through the client: %+v, %v", rs, err)
	}
	h, err := c.History(ctx, "shop-v2")
	if err != nil || len(h) == 0 || h[0].Reason != "checking" || h[0].Source != control.SourceAdmin {
		t.Fatalf("history through the client: %+v, %v", h, err)
	}
	inProcess, _ := r.svc.Releases(ctx)
	overHTTP, err := c.Releases(ctx)
	if err != nil || len(inProcess) != 1 || len(overHTTP) != 1 || *inProcess[0].Override != *overHTTP[0].Override {
		t.Fatalf("releases differ: in process %+v, over HTTP %+v (%v)", inProcess, overHTTP, err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.Version != r.svc.Config().Version || st.LastReload == nil || !strings.Contains(st.LastReload.Reason, "checking") {
		t.Fatalf("status: %+v, %v", st, err)
	}
}

// TestLaneStateIsWhatConsumersRead: GET /v1/lanes answers without the
// admin token, and a lanequeue.Follower reads it: the keys verify the
// lanes this graymesh signs, and a kill reaches the consumer with its
// instant — a message produced before it stays gray, one produced while
// killed is stable even after the revive, one produced after the revive
// is gray again.
func TestLaneStateIsWhatConsumersRead(t *testing.T) {
	r := newRig(t)
	reg := prometheus.NewRegistry()
	r.svc = NewService(r.svc.pipe, r.a, Runtime{Token: "admin-secret", Registerer: reg, Gatherer: reg})
	srv := httptest.NewServer(r.svc.Handler(nil))
	t.Cleanup(srv.Close)
	ctx := context.Background()
	f, err := lanequeue.NewFollower(ctx, srv.URL+"/v1/lanes")
	if err != nil {
		t.Fatal(err)
	}
	before := r.clock.Now()
	tok := r.svc.pipe.Policy().Lanes.Sign("gray", "shop-v2", r.svc.pipe.Policy().Engine.Version(), before)
	if d := f.Decide(ctx, tok, before); d.Env != "gray" {
		t.Fatalf("before the kill: %+v", d)
	}
	act := func(kind string) time.Time {
		r.clock.Advance(time.Second)
		if _, err := r.svc.Act(ctx, Action{Release: "shop-v2", Kind: kind, Reason: "test"}); err != nil {
			t.Fatal(err)
		}
		return r.clock.Now()
	}
	killed := act("kill")
	during := killed.Add(time.Millisecond)
	r.clock.Advance(time.Millisecond)
	if d := f.Decide(ctx, tok, during); d.Env != "stable" || d.Reason != wire.ReasonKilled {
		t.Fatalf("produced after the kill: %+v", d)
	}
	revived := act("revive")
	for _, tt := range []struct {
		name string
		at   time.Time
		env  string
	}{{"before the kill", before, "gray"}, {"while killed", during, "stable"}, {"after the revive", revived, "gray"}} {
		if d := f.Decide(ctx, tok, tt.at); d.Env != tt.env {
			t.Errorf("produced %s, decided after the revive: %+v, want %s", tt.name, d, tt.env)
		}
	}
	if reads := testutil.ToFloat64(r.svc.laneReads); reads != float64(f.Refreshes.Load()) || reads < 3 {
		t.Errorf("graymesh_lane_state_reads_total %v, the follower read %d times", reads, f.Refreshes.Load())
	}
	st := r.svc.Lanes()
	if len(st.Kills) != 1 || !st.Kills[0].KilledAt.Equal(killed) || st.Kills[0].RevivedAt == nil || !st.Kills[0].RevivedAt.Equal(revived) {
		t.Errorf("kills: %+v, want one from %s to %s", st.Kills, killed, revived)
	}
}
