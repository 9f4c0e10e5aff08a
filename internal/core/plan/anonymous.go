package plan

import (
	"slices"
	"strings"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/contract/wire"
)

// Envoy's own split of anonymous traffic (mesh.native_traffic_split): an
// edge's Anonymous route and the lanes it hands out.

// anonymous is the split Envoy makes itself: w's, for the requests that
// have none of the absent headers.
type anonymous struct {
	*split
	absent []string
}

// anonymousSplit is the traffic-weighted release's split for Envoy to make
// on its own (mesh.native_traffic_split), or nil. Only a request no rule
// can tell apart may skip graymesh: one with no token or cookie (no
// subject, no device id, no token cookie), no membership header and no
// stress marker. A
// release with headers or cidrs rules can admit, freeze or kill such a
// request on what Envoy's route cannot see as graymesh does, so any one of
// them, in any state, keeps every request on ext_proc. Without a lane key
// there is no lane to hand out, and the chain would leave its lane at the
// next hop.
func anonymousSplit(cfg *config.Config, w *split) *anonymous {
	if w == nil || !cfg.Mesh.NativeTrafficSplit || (cfg.Lane.Key == "" && cfg.Lane.KeyFile == "") {
		return nil
	}
	for i := range cfg.Releases {
		if len(cfg.Releases[i].Headers) > 0 || len(cfg.Releases[i].CIDRs) > 0 {
			return nil
		}
	}
	// A stress marker is decided by graymesh: the request is no
	// anonymous caller's.
	absent := []string{"authorization", "cookie", wire.HeaderStressMarker}
	if cfg.Membership.Enabled {
		absent = append(absent, strings.ToLower(cfg.Membership.Header))
	}
	slices.Sort(absent)
	return &anonymous{split: w, absent: slices.Compact(absent)}
}

// EnvoyRoutesItself says which requests an edge's Envoy routes under cfg
// without asking graymesh, so that graymesh's decision counts never see
// them: returning callers carrying their proofs (returning), and the
// anonymous requests of the traffic-weighted release it splits itself
// (anonymousFor, that release's name; "" for none).
func EnvoyRoutesItself(cfg *config.Config) (returning bool, anonymousFor string) {
	if a := anonymousSplit(cfg, weightedRelease(cfg)); a != nil {
		anonymousFor = a.release
	}
	return ReturningBlocker(cfg) == "", anonymousFor
}

// anonymousRoute is a service's Anonymous route for a: the split of its
// default route, made by Envoy, for a service that has the release's
// environment (any other asks graymesh, which signs the lane a later hop
// serves); nil without a.
func anonymousRoute(svc Service, a *anonymous, version string) *Route {
	if a == nil || !svc.Has(a.env) || len(svc.endpoints(a.env)) == 0 {
		return nil
	}
	r := &Route{Name: RouteAnonymous, Match: Match{Kind: MatchAnonymous, Absent: a.absent},
		Reason: wire.ReasonTrafficEnvoy, Release: a.release, Version: version}
	for _, b := range []Backend{{Env: config.Stable, Weight: TotalWeight - a.basisPoints}, {Env: a.env, Weight: a.basisPoints}} {
		if b.Weight > 0 {
			r.Backends = append(r.Backends, b)
		}
	}
	return r
}

// Signed is the plan with the lanes of its Anonymous and Returning routes
// signed for the window of now: what Envoy is given until the window
// turns (a lane lives a TTL from its window's start, so the next window's
// push has half a TTL to arrive). Without a signer it has no such routes,
// which could not hand out a lane. p itself is left as it is.
func (p *Plan) Signed(now time.Time) *Plan {
	out := *p
	out.Services = slices.Clone(p.Services)
	for i := range out.Services {
		out.Services[i].Returning = p.signedReturning(out.Services[i].Returning, now)
		a := out.Services[i].Anonymous
		if a == nil {
			continue
		}
		if p.Lane == nil || p.Lane.Signer == nil {
			out.Services[i].Anonymous = nil
			continue
		}
		signed := *a
		signed.Backends = slices.Clone(a.Backends)
		for j := range signed.Backends {
			signed.Backends[j].Lane = p.Lane.Signer.Sign(signed.Backends[j].Env, a.Release, a.Version, now)
		}
		out.Services[i].Anonymous = &signed
	}
	return &out
}

// signedReturning are proof routes with the lane each hands out for the
// window of now; none without a signer or Callers.
func (p *Plan) signedReturning(routes []Route, now time.Time) []Route {
	if len(routes) == 0 || p.Callers == nil || p.Lane == nil || p.Lane.Signer == nil {
		return nil
	}
	out := slices.Clone(routes)
	for i := range out {
		b := out[i].Backends[0]
		b.Lane = p.Lane.Signer.Sign(b.Env, out[i].Release, out[i].Version, now)
		out[i].Backends = []Backend{b}
	}
	return out
}

// SplitsNatively reports whether any service has an Anonymous route: its
// lanes must then be signed anew at each window.
func (p *Plan) SplitsNatively() bool {
	for i := range p.Services {
		if p.Services[i].Anonymous != nil || (p.Callers != nil && len(p.Services[i].Returning) > 0) {
			return true
		}
	}
	return false
}
