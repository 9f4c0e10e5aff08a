package console

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/graymesh/graymesh/internal/core/tracecheck"
)

// The chains page reads what `graymesh verify-traces` reads — every trace
// of the edge service in the window, from Jaeger's query API — and checks
// it with the same tracecheck.Check; it then shows the newest chains, one
// row per request and one cell per hop.

const (
	// maxChainRows bounds the rows drawn; the summary counts them all.
	maxChainRows = 50
	// chainPageSize and chainMaxRequests bound one read: a page view must
	// not turn into a full verify-traces run.
	chainPageSize    = 500
	chainMaxRequests = 4
)

// chainsView is the chains page.
type chainsView struct {
	// Configured is false when no Jaeger was given.
	Configured bool
	Jaeger     string
	Service    string
	Window     string
	Problem    string
	Report     *tracecheck.Report
	Rows       []chainRow
	// Shown and Total count the rows drawn and the chains checked.
	Shown, Total int
}

// chainRow is one request.
type chainRow struct {
	tracecheck.TraceResult
	Start time.Time
	// Link is the trace in a Jaeger UI, when one is configured.
	Link string
}

func (c *Console) chainsView(ctx context.Context) chainsView {
	v := chainsView{Configured: c.opts.Jaeger != "", Jaeger: c.opts.Jaeger, Service: c.opts.TraceService, Window: roughly(c.opts.TraceWindow)}
	if !v.Configured {
		return v
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	end := time.Now()
	rd := &tracecheck.Reader{BaseURL: c.opts.Jaeger, Client: c.jaeger, PageSize: chainPageSize, MaxRequests: chainMaxRequests}
	traces, stats, err := rd.Read(ctx, c.opts.TraceService, tracecheck.Window{Start: end.Add(-c.opts.TraceWindow), End: end})
	if err != nil {
		v.Problem = err.Error()
		return v
	}
	starts := make(map[string]int64, len(traces))
	for _, t := range traces {
		first := int64(0)
		for _, s := range t.Spans {
			if first == 0 || s.StartTime < first {
				first = s.StartTime
			}
		}
		starts[t.TraceID] = first
	}
	rep := tracecheck.Check(traces)
	rep.Read = stats
	v.Report = rep
	v.Total = len(rep.Traces)
	results := append([]tracecheck.TraceResult(nil), rep.Traces...)
	sort.SliceStable(results, func(i, j int) bool { return starts[results[i].TraceID] > starts[results[j].TraceID] })
	for _, t := range results[:min(len(results), maxChainRows)] {
		row := chainRow{TraceResult: t, Start: time.UnixMicro(starts[t.TraceID])}
		if ui := c.opts.JaegerUI; ui != "" {
			row.Link = strings.TrimRight(ui, "/") + "/trace/" + url.PathEscape(t.TraceID)
		}
		v.Rows = append(v.Rows, row)
	}
	v.Shown = len(v.Rows)
	return v
}

func (c *Console) chainsPage(w http.ResponseWriter, r *http.Request, s *session) {
	v := c.newView(s, "chains", "Chains", c.chainsView(r.Context()))
	v.Live = "/ui/live/chains"
	c.render(w, http.StatusOK, "chains", v)
}

func (c *Console) chainsFragment(w http.ResponseWriter, r *http.Request, s *session) {
	c.renderTemplate(w, http.StatusOK, "chains", "live", c.newView(s, "chains", "", c.chainsView(r.Context())))
}
