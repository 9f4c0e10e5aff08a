package analysis

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// Bounds of one side of one window, so a busy service costs bounded memory
// and judging time: durations beyond MaxLatencySamples are sampled
// uniformly (reservoir sampling), callers beyond MaxCallers are no longer
// told apart.
const (
	MaxLatencySamples = 1000
	MaxCallers        = 100_000
)

// Collector is the embedded Source: Envoy's access-log entries arrive
// through Observe, and each release's window gathers those of its services'
// gray and stable sides until Collect closes it and opens the next.
type Collector struct {
	mu      sync.Mutex
	windows map[string]*window
	rng     *rand.Rand
}

var (
	_ Source         = (*Collector)(nil)
	_ EvidenceSource = (*Collector)(nil)
)

// NewCollector returns a collector with no window open.
func NewCollector() *Collector {
	return &Collector{windows: map[string]*window{}, rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
}

type window struct {
	env      string
	services []string
	from     time.Time
	sides    map[sideKey]*side
	callers  map[string]map[string]struct{} // by service: either side
	evidence *Evidence
}

type sideKey struct{ service, env string }

type side struct {
	Side
	seen    int // successful durations offered to the reservoir
	callers map[string]struct{}
}

// Watch opens q.Release's window from q.From unless one is open for the
// same environment and services: samples count from then on.
func (c *Collector) Watch(q Query) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if w := c.windows[q.Release]; w != nil && w.env == q.Env && slices.Equal(w.services, q.Services) {
		return
	}
	c.windows[q.Release] = newWindow(q, q.From)
}

// Forget closes a release's window: its samples are dropped.
func (c *Collector) Forget(release string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.windows, release)
}

func newWindow(q Query, from time.Time) *window {
	eq := q
	eq.From = from
	return &window{env: q.Env, services: slices.Clone(q.Services), from: from, sides: map[sideKey]*side{},
		callers: map[string]map[string]struct{}{}, evidence: NewEvidence(eq)}
}

// Observe adds one served request to every open window that analyses its
// service and environment.
func (c *Collector) Observe(s Sample) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.windows {
		if (s.Env != w.env && s.Env != config.Stable) || !slices.Contains(w.services, s.Service) {
			continue
		}
		w.add(s, c.rng)
	}
}

func (w *window) add(s Sample, rng *rand.Rand) {
	w.evidence.Add(s)
	k := sideKey{s.Service, s.Env}
	sd := w.sides[k]
	if sd == nil {
		sd = &side{callers: map[string]struct{}{}}
		w.sides[k] = sd
	}
	sd.Requests++
	if s.Failed {
		sd.Errors++
	} else {
		ms := float64(s.Duration) / float64(time.Millisecond)
		sd.seen++
		if len(sd.Latencies) < MaxLatencySamples {
			sd.Latencies = append(sd.Latencies, ms)
		} else if j := rng.IntN(sd.seen); j < MaxLatencySamples {
			sd.Latencies[j] = ms
		}
	}
	if s.Caller == "" {
		return
	}
	addCaller(sd.callers, s.Caller, &sd.CallersCapped)
	all := w.callers[s.Service]
	if all == nil {
		all = map[string]struct{}{}
		w.callers[s.Service] = all
	}
	var capped bool
	addCaller(all, s.Caller, &capped)
}

func addCaller(set map[string]struct{}, caller string, capped *bool) {
	if len(set) >= MaxCallers {
		if _, ok := set[caller]; !ok {
			*capped = true
		}
		return
	}
	set[caller] = struct{}{}
}

// Collect closes q.Release's window and opens the next one at q.To. The
// observations are everything that arrived since the window opened
// (Envoy flushes its access log every fraction of a second, so a request
// that ended just before q.To may count in the next window: each request
// counts once). A release never watched gets an empty window.
func (c *Collector) Collect(_ context.Context, q Query) (*Observations, error) {
	w := c.closeWindow(q)
	out := &Observations{From: w.from, To: q.To}
	for _, svc := range q.Services {
		o := Observation{Service: svc, Callers: len(w.callers[svc])}
		if sd := w.sides[sideKey{svc, q.Env}]; sd != nil {
			o.Gray = sd.result()
		}
		if sd := w.sides[sideKey{svc, config.Stable}]; sd != nil {
			o.Stable = sd.result()
		}
		out.Services = append(out.Services, o)
	}
	return out, nil
}

// CollectEvidence closes q.Release's window like Collect and returns it as
// this node's Evidence, ready to be merged with other nodes'.
func (c *Collector) CollectEvidence(_ context.Context, q Query) (*Evidence, error) {
	w := c.closeWindow(q)
	e := w.evidence
	e.To = q.To
	return e, nil
}

func (c *Collector) closeWindow(q Query) *window {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.windows[q.Release]
	if w == nil || w.env != q.Env || !slices.Equal(w.services, q.Services) {
		w = newWindow(q, q.From)
	}
	c.windows[q.Release] = newWindow(q, q.To)
	return w
}

func (sd *side) result() Side {
	s := sd.Side
	s.Callers = len(sd.callers)
	slices.Sort(s.Latencies)
	return s
}
