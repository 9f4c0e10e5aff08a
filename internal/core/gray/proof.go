package gray

import (
	"strings"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/identity"
	"github.com/graymesh/graymesh/internal/core/lane"
)

// Returning callers (mesh.native_returning_callers): the edge hands a
// caller it decided a proof of the decision, and the edge's Envoy routes
// the caller's later requests on it (xds/returning.go). These are the
// same rules in Go, for explain and for a proof that reaches graymesh.

// proofFor is the proof to hand the caller of o: one for a caller whose
// token came in the authorization header (the one Envoy verifies), for a
// decision that names an environment, under a config in force (one with
// a version), and is not a stress test or a kill. "" when proofs do not
// route here.
func (p *Policy) proofFor(o *Outcome, r Request) string {
	c := p.Plan.Callers
	if c == nil || p.Lanes == nil || r.Asserted != nil || r.Authorization == "" || o.Caller.Subject == "" ||
		o.Env == "" || p.Plan.ProofVersion == "" || o.Stress || o.Reason == ReasonKilled {
		return ""
	}
	return p.Lanes.SignProof(lane.Proof{
		Caller: strings.TrimPrefix(o.Caller.Subject, c.SubjectPrefix), Env: o.Env, Release: o.Release,
		Version: p.Plan.ProofVersion, CallerHash: p.SubjectHash(o.Caller.Subject),
	}, r.Now, c.ProofTTL)
}

// byProof is the decision the edge's Envoy routes r on when it carries a
// proof: one that verifies, is the caller's own (the subject of its
// verified token), is of the config in force, names a release not killed,
// and comes without a stress marker.
func (p *Policy) byProof(r Request, c identity.Caller) (Decision, bool) {
	callers := p.Plan.Callers
	if callers == nil || p.Lanes == nil || r.Proof == "" || r.StressMarker != "" || r.Asserted != nil || c.Subject == "" {
		return Decision{}, false
	}
	pr, err := p.Lanes.VerifyProof(r.Proof, r.Now)
	if err != nil || pr.Caller != strings.TrimPrefix(c.Subject, callers.SubjectPrefix) || pr.Version != p.Plan.ProofVersion {
		return Decision{}, false
	}
	if pr.Release != "" && p.Engine.state(pr.Release) == config.StateKilled {
		return Decision{}, false
	}
	return Decision{Env: pr.Env, Release: pr.Release, Reason: ReasonProof, Bucket: NoBucket, Version: p.Plan.Version}, true
}
