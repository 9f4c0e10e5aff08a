package analysis

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// MaxRoutes bounds the route groups one node's evidence of a service tells
// apart: requests of routes first seen after MaxRoutes-1 others count in
// the group OtherRoutes. Merging keeps every group (nodes see the same
// routes, so a merge holds about as many); the sequential test tells at
// most MaxRoutes apart and splits its route alpha over exactly that many
// (docs/analysis.md, "Alpha"), so the number is fixed, not configured.
const MaxRoutes = 16

// OtherRoutes is the route group of routes beyond MaxRoutes.
const OtherRoutes = "(other)"

// Evidence is what a release's gray and stable sides served in a window,
// per service, side and route group, in a form that merges without loss
// beyond the histogram's stated error: every node of a fleet builds its
// own, and one analyser merges them before any test runs. Merge is
// associative and commutative, so the order nodes report in is
// irrelevant.
type Evidence struct {
	Release string    `json:"release"`
	Env     string    `json:"env"`
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	// Nodes is how many node windows were merged into this one.
	Nodes    int                         `json:"nodes"`
	Services map[string]*ServiceEvidence `json:"services"`
}

// ServiceEvidence is one service's sides, its route groups' counts, and
// the callers of either side.
type ServiceEvidence struct {
	Gray   SideEvidence `json:"gray"`
	Stable SideEvidence `json:"stable"`
	// Routes are the request and error counts per route group.
	Routes  map[string]*RouteEvidence `json:"routes,omitempty"`
	Callers Distinct                  `json:"callers"`
}

// SideEvidence is one side of one service: requests, errors, the
// durations of successful requests, and the distinct callers.
type SideEvidence struct {
	Requests int64     `json:"requests"`
	Errors   int64     `json:"errors"`
	Latency  Histogram `json:"latency"`
	Callers  Distinct  `json:"callers"`
}

// RouteEvidence is one route group's counts per side.
type RouteEvidence struct {
	Gray   Counts `json:"gray"`
	Stable Counts `json:"stable"`
}

// Counts are requests and errors.
type Counts struct {
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"`
}

// NewEvidence is an empty window of q's release with each of its
// services present.
func NewEvidence(q Query) *Evidence {
	e := &Evidence{Release: q.Release, Env: q.Env, From: q.From, To: q.To, Nodes: 1, Services: map[string]*ServiceEvidence{}}
	for _, s := range q.Services {
		e.Services[s] = &ServiceEvidence{}
	}
	return e
}

// Add counts one request of s; a request of neither the evidence's
// environment nor stable is not counted.
func (e *Evidence) Add(s Sample) {
	if s.Env != e.Env && s.Env != config.Stable {
		return
	}
	svc := e.Services[s.Service]
	if svc == nil {
		svc = &ServiceEvidence{}
		e.Services[s.Service] = svc
	}
	side, route := &svc.Stable, svc.route(s.Route)
	rc := &route.Stable
	if s.Env == e.Env {
		side, rc = &svc.Gray, &route.Gray
	}
	side.Requests++
	rc.Requests++
	if s.Failed {
		side.Errors++
		rc.Errors++
	} else {
		side.Latency.Add(float64(s.Duration) / float64(time.Millisecond))
	}
	if s.Caller != "" {
		side.Callers.Add(s.Caller)
		svc.Callers.Add(s.Caller)
	}
}

// route is name's group, created if the service has room for it.
func (s *ServiceEvidence) route(name string) *RouteEvidence {
	if s.Routes == nil {
		s.Routes = map[string]*RouteEvidence{}
	}
	if r := s.Routes[name]; r != nil {
		return r
	}
	if len(s.Routes) >= MaxRoutes-1 {
		name = OtherRoutes
	}
	if s.Routes[name] == nil {
		s.Routes[name] = &RouteEvidence{}
	}
	return s.Routes[name]
}

// Merge is the evidence of every window given, taken together: counts,
// histograms and caller sets add up, the span covers them all. Windows of
// different releases or environments do not merge.
func Merge(es ...*Evidence) (*Evidence, error) {
	if len(es) == 0 {
		return nil, fmt.Errorf("merge: no evidence")
	}
	out := &Evidence{Release: es[0].Release, Env: es[0].Env, From: es[0].From, To: es[0].To, Services: map[string]*ServiceEvidence{}}
	for _, e := range es {
		if e.Release != out.Release || e.Env != out.Env {
			return nil, fmt.Errorf("merge: evidence of %s/%s with %s/%s", e.Release, e.Env, out.Release, out.Env)
		}
		if e.From.Before(out.From) {
			out.From = e.From
		}
		if e.To.After(out.To) {
			out.To = e.To
		}
		out.Nodes += e.Nodes
		for _, name := range slices.Sorted(maps.Keys(e.Services)) {
			if out.Services[name] == nil {
				out.Services[name] = &ServiceEvidence{}
			}
			out.Services[name].merge(e.Services[name])
		}
	}
	return out, nil
}

func (s *ServiceEvidence) merge(o *ServiceEvidence) {
	s.Gray.merge(&o.Gray)
	s.Stable.merge(&o.Stable)
	s.Callers.Merge(o.Callers)
	for name, or := range o.Routes {
		if s.Routes == nil {
			s.Routes = map[string]*RouteEvidence{}
		}
		r := s.Routes[name]
		if r == nil {
			r = &RouteEvidence{}
			s.Routes[name] = r
		}
		r.Gray.add(or.Gray)
		r.Stable.add(or.Stable)
	}
}

func (s *SideEvidence) merge(o *SideEvidence) {
	s.Requests += o.Requests
	s.Errors += o.Errors
	s.Latency.Merge(&o.Latency)
	s.Callers.Merge(o.Callers)
}

func (c *Counts) add(o Counts) {
	c.Requests += o.Requests
	c.Errors += o.Errors
}

// routeGroupSegments is how many leading path segments name a route group.
const routeGroupSegments = 2

// RouteGroup is the route group of a request path: its first two
// segments without the query, a segment that looks like an identifier (a
// number, or hex of 8 characters or more, as in a UUID) written ":id" —
// "/cart/42/items?x=1" is "/cart/:id" — so one route does not become one
// group per customer.
func RouteGroup(path string) string {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	if len(segs) > routeGroupSegments {
		segs = segs[:routeGroupSegments]
	}
	for i, s := range segs {
		if looksLikeID(s) {
			segs[i] = ":id"
		}
	}
	return "/" + strings.Join(segs, "/")
}

func looksLikeID(s string) bool {
	if s == "" {
		return false
	}
	digits, hex := true, true
	for _, r := range s {
		isDigit := r >= '0' && r <= '9'
		digits = digits && isDigit
		hex = hex && (isDigit || (r >= 'a' && r <= 'f') || (r >= 'A' && r <= 'F') || r == '-')
	}
	return digits || (hex && len(s) >= 8)
}

// EvidenceFrom is obs as Evidence, for a Source that gives only
// Observations: counts as they are, each duration into the histogram;
// routes and callers are not in Observations, so the evidence has none.
func EvidenceFrom(q Query, obs *Observations) *Evidence {
	e := NewEvidence(q)
	e.From, e.To = obs.From, obs.To
	for _, o := range obs.Services {
		svc := &ServiceEvidence{}
		for _, sd := range []struct {
			from Side
			to   *SideEvidence
		}{{o.Gray, &svc.Gray}, {o.Stable, &svc.Stable}} {
			sd.to.Requests, sd.to.Errors = int64(sd.from.Requests), int64(sd.from.Errors)
			for _, ms := range sd.from.Latencies {
				sd.to.Latency.Add(ms)
			}
		}
		e.Services[o.Service] = svc
	}
	return e
}
