package plan

import (
	"slices"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/contract/wire"
)

// Envoy's own routing of returning callers (mesh.native_returning_callers):
// the edge's routes for a caller graymesh decided before, who sends back
// the proof of that decision with its token.

// Callers is what the edge's Envoy needs to route a returning caller
// itself: the proofs are signed with the lane key, whose public keys
// Plan.Lane holds. Nil when no proof can route (ReturningBlocker): Envoy
// then asks graymesh about every caller.
type Callers struct {
	// ProofTTL is how long a proof routes at most (it never outlives the
	// caller's token).
	ProofTTL time.Duration
}

// MatchProof matches a request whose proof Envoy verified, bound to the
// request's token, of config version Match.Version and naming
// Match.Env and Match.Release ("" : none); MatchAnonymous's Absent are
// headers it must not have (a stress marker).
const MatchProof MatchKind = MatchAnonymous + 1

// proofVersion is the version a proof names and its route matches: the
// fleet's version, the same on every node for the same changes; in file
// mode, where each node counts its own configs and two nodes' versions do
// not compare, the version with the effective config's hash, so a node
// never honours another's proof of a different config under the same
// number. "" for a config not in force or one no proof can stand for
// (ReturningBlocker): no proof. Build computes it once (the hash marshals
// the whole config).
func proofVersion(cfg *config.Config) string {
	if ReturningBlocker(cfg) != "" {
		return ""
	}
	if cfg.Version == "" || cfg.FleetVersion {
		return cfg.Version
	}
	return cfg.Version + "-" + cfg.EffectiveHash()
}

// RouteProofPrefix precedes the environment in a proof route's name.
const RouteProofPrefix = "proof:"

// ReturningBlocker says why no proof can route under cfg ("" when proofs
// can): a decision they stand for must depend on the caller alone and the
// config in force. A release with headers or cidrs rules decides on the
// request, one with claims rules on the token's claims, which a new token
// of the same subject may change; a stress marker is decided by graymesh
// (the route requires its absence).
func ReturningBlocker(cfg *config.Config) string {
	if !cfg.Mesh.NativeReturningCallers {
		return "off"
	}
	if cfg.Lane.Key == "" && cfg.Lane.KeyFile == "" {
		return "no lane key signs proofs"
	}
	for i := range cfg.Releases {
		if r := &cfg.Releases[i]; r.DecidesOnMoreThanTheCaller() {
			return "release " + r.Name + " has headers, cidrs or claims rules, which decide on more than the caller"
		}
	}
	return ""
}

// returningRoutes are a service's proof routes: one per decision a proof
// can name that the service serves itself — each release's environment
// and stable, and stable with no release — for releases not killed (a
// kill also changes the version, which retires every proof).
// version is the plan's ProofVersion; "" builds none.
func returningRoutes(cfg *config.Config, svc Service, version string) []Route {
	if version == "" {
		return nil
	}
	type pair struct{ release, env string }
	pairs := []pair{{"", config.Stable}}
	for _, r := range cfg.Releases {
		if r.State == config.StateKilled {
			continue
		}
		pairs = append(pairs, pair{r.Name, config.Stable}, pair{r.Name, r.Env})
	}
	var out []Route
	for _, p := range pairs {
		if !svc.Has(p.env) || len(svc.endpoints(p.env)) == 0 || slices.ContainsFunc(out, func(r Route) bool {
			return r.Release == p.release && r.Backends[0].Env == p.env
		}) {
			continue
		}
		out = append(out, Route{
			Name:     RouteProofPrefix + p.env + ":" + p.release,
			Match:    Match{Kind: MatchProof, Env: p.env, Release: p.release, Version: version, Absent: []string{wire.HeaderStressMarker}},
			Backends: []Backend{{Env: p.env}}, Reason: wire.ReasonProof,
			Release: p.release, Version: cfg.Version,
		})
	}
	return out
}
