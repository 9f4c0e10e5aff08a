package plan

import (
	"math"
	"strconv"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/lane"
)

// The routes of a service: an edge's, on the decision graymesh sets, and an
// inner hop's, on the lane its Envoy verified, a kill first.

// killedThrough is the newest lane version a kill in force stops: the
// config's version, when it is the fleet's and Envoy can compare it (an
// integer below the largest, so that the next one is one too); nil
// otherwise.
func killedThrough(cfg *config.Config) *int64 {
	if !cfg.FleetVersion {
		return nil
	}
	v, err := strconv.ParseInt(cfg.Version, 10, 64)
	if err != nil || v < 0 || v == math.MaxInt64 {
		return nil
	}
	return &v
}

// KillStops reports whether the kill of a lane's release stops a lane
// issued under laneVersion at this node, as its inner sidecars' kill
// routes decide: every lane without KilledThrough; with it, a lane whose
// version is at most KilledThrough or does not read as an integer.
func (p *Plan) KillStops(laneVersion string) bool {
	return lane.KillStops(p.KilledThrough, laneVersion)
}

// routes are a service's routes, in match order:
//  1. the environment header names an environment the service has → it;
//  2. the header names any other environment → stable, header kept so a
//     later hop that has that environment serves it again;
//  3. no header (nothing decided) → stable, stamping the header; or, with a
//     traffic-weighted release whose environment the service has, the
//     split, each branch stamping the environment it chose.
func routes(svc Service, w *split) []Route {
	var out []Route
	for _, env := range svc.Envs[1:] {
		out = append(out, Route{Name: env.Name, Match: Match{Kind: MatchEnv, Env: env.Name}, Backends: []Backend{{Env: env.Name}}})
	}
	out = append(out, Route{Name: RouteOtherEnv, Match: Match{Kind: MatchOtherEnv}, Backends: []Backend{{Env: config.Stable}}})
	def := Route{Name: RouteDefault, Match: Match{Kind: MatchAll}}
	if w != nil && svc.Has(w.env) && len(svc.endpoints(w.env)) > 0 {
		for _, b := range []Backend{{Env: config.Stable, Weight: TotalWeight - w.basisPoints}, {Env: w.env, Weight: w.basisPoints}} {
			if b.Weight > 0 {
				b.StampEnv = true
				def.Backends = append(def.Backends, b)
			}
		}
	} else {
		def.Backends = []Backend{{Env: config.Stable, StampEnv: true}}
	}
	return append(out, def)
}

// innerRoutes are an inner sidecar's routes, in match order. Its Envoy
// verified the lane before routing: a lane that verified set the
// environment and release headers, one that did not left them absent
// (every client-sent x-gray-* header is stripped on arrival).
//  1. the lane's release is killed → stable, the lane dropped: a kill
//     reaches lanes already travelling; with fleet versions, only lanes
//     issued under this version or before (Plan.KilledThrough): a newer
//     lane was issued where the kill is already lifted;
//  2. the lane names an environment the service has → it;
//  3. the lane names another environment → stable, saying so, the lane
//     kept so a later hop that has it serves it again;
//  4. a lane came but did not verify → stable, the lane dropped;
//  5. no lane → stable, with no environment header.
//
// Nothing splits by weight here: the edge made that choice and signed it.
func innerRoutes(svc Service, killed []string, through *int64) []Route {
	stable := func() []Backend { return []Backend{{Env: config.Stable, StampEnv: true}} }
	var out []Route
	for _, r := range killed {
		out = append(out, Route{Name: RouteKilledPrefix + r, Match: Match{Kind: MatchRelease, Release: r, MaxVersion: through},
			Backends: stable(), Reason: wire.ReasonKilled, DropLane: true})
	}
	for _, env := range svc.Envs {
		out = append(out, Route{Name: env.Name, Match: Match{Kind: MatchEnv, Env: env.Name},
			Backends: []Backend{{Env: env.Name}}, Reason: wire.ReasonLane})
	}
	return append(out,
		Route{Name: RouteOtherEnv, Match: Match{Kind: MatchOtherEnv}, Backends: []Backend{{Env: config.Stable}},
			Reason: wire.ReasonLane, Fallback: true},
		Route{Name: RouteLaneRefused, Match: Match{Kind: MatchLane}, Backends: stable(),
			Reason: wire.ReasonLaneRefused, DropLane: true},
		// No lane: no environment header either, so neither the service
		// nor the sidecar's span (graymesh.lane) is told of a lane that
		// does not exist.
		Route{Name: RouteDefault, Match: Match{Kind: MatchAll}, Backends: []Backend{{Env: config.Stable}}, Reason: wire.ReasonLaneMissing},
	)
}
