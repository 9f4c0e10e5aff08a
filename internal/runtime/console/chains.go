package console

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/tracecheck"
)

// The chains page reads what `graymesh verify-traces` reads — every trace
// of the edge service in the window, from Jaeger's query API — and checks
// it with the same tracecheck functions; it then shows the newest chains,
// one row per request and one cell per hop.
//
// The first view reads the whole window; the chains it judged are kept,
// so each refresh reads only what started since (and the chains still
// pending then). A read that could not cover its window (Jaeger's answers
// were too full for the search budget) shows no verdict, and the next
// view reads the whole window again.

const (
	// maxChainRows bounds the rows drawn; the summary counts them all.
	maxChainRows = 50
	// chainPageSize is the limit of one search (Jaeger's memory store
	// refuses one above its max_traces).
	chainPageSize = 500
	// chainReadTimeout bounds one read (the first one reads the window).
	chainReadTimeout = 30 * time.Second
	// chainSettle is how old a trace's newest span must be before it is
	// judged: Envoy flushes its spans every 5 s, graymesh's exporter on
	// its own batch, so a younger chain may lack a span still on its way.
	chainSettle = 10 * time.Second
	// chainOverlap is how much of what was read before a refresh reads
	// again: a span that reached Jaeger late (a busy collector, a slow
	// flush) is still found, as long as it is no later than this.
	chainOverlap = 30 * time.Second
	// onlyProblems is the filter that shows the chains with a leak or a
	// fail-open only.
	onlyProblems = "problems"
)

// chainsView is the chains page.
type chainsView struct {
	// Configured is false when no Jaeger was given.
	Configured bool
	Jaeger     string
	Service    string
	Window     string
	Settle     string
	Problem    string
	Report     *tracecheck.Report
	// Verdict is true when every trace in the window was read: only then
	// does the page count leaks as a verdict.
	Verdict bool
	Rows    []chainRow
	// Shown and Total count the rows drawn and the chains that pass the
	// filter; Only is the filter ("" or "problems").
	Shown, Total int
	Only         string
	// Searches is the number of Jaeger searches this view took.
	Searches int
}

// chainRow is one request.
type chainRow struct {
	tracecheck.TraceResult
	Start time.Time
	// Link is the trace in a Jaeger UI, when one is configured.
	Link string
}

// storedChain is a judged chain and when it started.
type storedChain struct {
	res   tracecheck.TraceResult
	start time.Time
}

// chainStore keeps the chains judged so far across views.
type chainStore struct {
	mu sync.Mutex
	// results are the settled chains by trace id; unchecked the traces
	// with nothing to check, by id, with their start.
	results   map[string]storedChain
	unchecked map[string]time.Time
	// readFrom is where the next read starts: the oldest start of a chain
	// still pending at the last read, or that read's end less the overlap.
	// Zero: read the whole window.
	readFrom time.Time
	// last is the last read's answer, reused by a view within
	// chainReuse of it (the release pages refresh every 2 s).
	last lastRead
}

// lastRead is one read's answer.
type lastRead struct {
	at     time.Time
	rep    *tracecheck.Report
	chains []storedChain
}

// chainReuse is how long a read's answer serves the next view.
const chainReuse = 2 * time.Second

// read brings the store up to now and returns what the window holds; with
// reuse, a read less than chainReuse old answers instead.
func (s *chainStore) read(ctx context.Context, rd *tracecheck.Reader, service string, window time.Duration, now time.Time, reuse bool) (*tracecheck.Report, []storedChain, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.last; reuse && l.rep != nil && now.Sub(l.at) < chainReuse && !now.Before(l.at) {
		return l.rep, l.chains, nil
	}
	if s.results == nil {
		s.results, s.unchecked = map[string]storedChain{}, map[string]time.Time{}
	}
	start := now.Add(-window)
	from := s.readFrom
	if from.Before(start) {
		from = start
	}
	traces, stats, err := rd.Read(ctx, service, tracecheck.Window{Start: from, End: now})
	if err != nil {
		return nil, nil, err
	}
	next, pending := now.Add(-chainOverlap), 0
	for _, t := range traces {
		first := oldestStart(t)
		if !tracecheck.Settled(t, now, chainSettle) {
			pending++
			if first.Before(next) {
				next = first
			}
			continue
		}
		if res, ok := tracecheck.CheckTrace(t); ok {
			s.results[t.TraceID] = storedChain{res: res, start: first}
		} else {
			s.unchecked[t.TraceID] = first
		}
	}
	s.readFrom = next
	if !stats.Complete {
		// Not every trace was read: no verdict now, the whole window again
		// next time.
		s.readFrom = time.Time{}
	}
	rep, chains := s.tally(start)
	rep.Pending = pending
	rep.TracesSeen += pending
	rep.Read = stats
	if !stats.Complete {
		s.results, s.unchecked = nil, nil
	}
	s.last = lastRead{at: now, rep: rep, chains: chains}
	return rep, chains, nil
}

// tally drops what left the window and counts the rest, newest first.
func (s *chainStore) tally(start time.Time) (*tracecheck.Report, []storedChain) {
	chains := make([]storedChain, 0, len(s.results))
	for id, c := range s.results {
		if c.start.Before(start) {
			delete(s.results, id)
			continue
		}
		chains = append(chains, c)
	}
	for id, at := range s.unchecked {
		if at.Before(start) {
			delete(s.unchecked, id)
		}
	}
	sort.Slice(chains, func(i, j int) bool {
		if !chains[i].start.Equal(chains[j].start) {
			return chains[i].start.After(chains[j].start)
		}
		return chains[i].res.TraceID < chains[j].res.TraceID
	})
	rep := &tracecheck.Report{Unchecked: len(s.unchecked)}
	for _, c := range chains {
		rep.Add(c.res)
	}
	rep.TracesSeen = rep.TracesChecked + rep.Unchecked
	return rep, chains
}

func oldestStart(t tracecheck.Trace) time.Time {
	var first int64
	for _, s := range t.Spans {
		if first == 0 || s.StartTime < first {
			first = s.StartTime
		}
	}
	return time.UnixMicro(first)
}

// problem is a chain the filter keeps: a leak, a fail-open or a split
// by a node behind the edge's version.
func problem(r tracecheck.TraceResult) bool { return r.Leaks > 0 || r.FailOpen || r.Split != "" }

func (c *Console) chainsView(ctx context.Context, only string) chainsView {
	v := chainsView{Configured: c.opts.Jaeger != "", Jaeger: c.opts.Jaeger, Service: c.opts.TraceService,
		Window: roughly(c.opts.TraceWindow), Settle: roughly(chainSettle)}
	if only == onlyProblems {
		v.Only = only
	}
	if !v.Configured {
		return v
	}
	ctx, cancel := context.WithTimeout(ctx, chainReadTimeout)
	defer cancel()
	rd := &tracecheck.Reader{BaseURL: c.opts.Jaeger, Client: c.jaeger, PageSize: chainPageSize, MaxRequests: c.opts.TraceSearches}
	rep, chains, err := c.chains.read(ctx, rd, c.opts.TraceService, c.opts.TraceWindow, time.Now(), false)
	if err != nil {
		v.Problem = err.Error()
		return v
	}
	v.Report, v.Verdict, v.Searches = rep, rep.Read.Complete, rep.Read.Requests
	for _, ch := range chains {
		if v.Only != "" && !problem(ch.res) {
			continue
		}
		v.Total++
		if len(v.Rows) == maxChainRows {
			continue
		}
		row := chainRow{TraceResult: ch.res, Start: ch.start}
		if ui := c.opts.JaegerUI; ui != "" {
			row.Link = strings.TrimRight(ui, "/") + "/trace/" + url.PathEscape(ch.res.TraceID)
		}
		v.Rows = append(v.Rows, row)
	}
	v.Shown = len(v.Rows)
	return v
}

// liveChains is the fragment URL for the filter.
func liveChains(only string) string {
	if only == onlyProblems {
		return "/ui/live/chains?only=" + onlyProblems
	}
	return "/ui/live/chains"
}

func (c *Console) chainsPage(w http.ResponseWriter, r *http.Request, s *session) {
	only := r.URL.Query().Get("only")
	v := c.newView(s, "chains", "Chains", c.chainsView(r.Context(), only))
	v.Live = liveChains(only)
	c.render(w, http.StatusOK, "chains", v)
}

func (c *Console) chainsFragment(w http.ResponseWriter, r *http.Request, s *session) {
	c.renderTemplate(w, http.StatusOK, "chains", "live", c.newView(s, "chains", "", c.chainsView(r.Context(), r.URL.Query().Get("only"))))
}

// grayDown is where an environment's endpoints did not answer and the
// sidecars failed over to stable (fallback "<env>-unavailable"), as the
// chains judged recently show it.
type grayDown struct {
	Env      string
	Services []string
	// Hops counts the hops served by stable for it; Newest is the newest
	// chain with one.
	Hops   int
	Newest time.Time
}

// downWindow is how far back a failover counts as gray being down now.
const downWindow = 2 * time.Minute

// downIn finds env's failovers among chains (newest first) since since.
func downIn(chains []storedChain, env string, since time.Time) *grayDown {
	d := &grayDown{Env: env}
	for _, c := range chains {
		if c.start.Before(since) {
			break
		}
		for _, h := range c.res.Hops {
			if h.Fallback != env+wire.UnavailableSuffix {
				continue
			}
			d.Hops++
			if d.Newest.IsZero() {
				d.Newest = c.start
			}
			if !slices.Contains(d.Services, h.Service) {
				d.Services = append(d.Services, h.Service)
			}
		}
	}
	if d.Hops == 0 {
		return nil
	}
	sort.Strings(d.Services)
	return d
}

// grayDownFor reads the chains (when a Jaeger is configured) and says
// where each environment was down in the last downWindow.
func (c *Console) grayDownFor(ctx context.Context, envs []string) map[string]*grayDown {
	if c.opts.Jaeger == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, chainReadTimeout)
	defer cancel()
	rd := &tracecheck.Reader{BaseURL: c.opts.Jaeger, Client: c.jaeger, PageSize: chainPageSize, MaxRequests: c.opts.TraceSearches}
	now := time.Now()
	_, chains, err := c.chains.read(ctx, rd, c.opts.TraceService, c.opts.TraceWindow, now, true)
	if err != nil {
		return nil
	}
	out := map[string]*grayDown{}
	for _, env := range envs {
		if d := downIn(chains, env, now.Add(-downWindow)); d != nil {
			out[env] = d
		}
	}
	return out
}
