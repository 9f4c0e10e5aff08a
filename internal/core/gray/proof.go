package gray

import (
	"strings"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/identity"
	"github.com/graymesh/graymesh/internal/core/lane"
)

// Returning callers (mesh.native_returning_callers): the edge hands a
// caller it decided a proof of the decision, bound to the caller's token,
// and the edge's Envoy routes the requests of that token that send it
// back (xds/returning.go). These are the same rules in Go, for explain and
// for a proof that reaches graymesh.

// proofFor is the proof to hand the caller of o: one for a caller whose
// token came in the authorization header (where Envoy reads its end), for
// a decision that names an environment, under a config in force (one with
// a version), and is not a stress test or a kill. It lives the proof TTL,
// and never past the token's expiry; one handed out before is handed
// again while it has half its TTL left (proofCache). It names the
// caller's hash only for the analysis, whose access log reads it: every
// byte of a proof is carried on each of the caller's requests. "" when
// proofs do not route here.
func (p *Policy) proofFor(o *Outcome, r Request) string {
	c := p.Plan.Callers
	const scheme = "bearer "
	if c == nil || p.Lanes == nil || r.Asserted != nil || o.Caller.Subject == "" || len(r.Authorization) < len(scheme)+wire.ProofTokenBytes ||
		!strings.EqualFold(r.Authorization[:len(scheme)], scheme) || o.Env == "" || p.Plan.ProofVersion == "" || o.Stress || o.Reason == ReasonKilled {
		return ""
	}
	exp := r.Now.Add(c.ProofTTL)
	if !o.Caller.Expiry.IsZero() && o.Caller.Expiry.Before(exp) {
		exp = o.Caller.Expiry
	}
	token := r.Authorization[len(r.Authorization)-wire.ProofTokenBytes:]
	k := proofKey{token: token, subject: o.Caller.Subject, env: o.Env, release: o.Release}
	// A proof handed out again has at least half its TTL left, as a lane
	// of the current window does.
	if proof, ok := p.proofs.get(k, exp, c.ProofTTL/2); ok {
		return proof
	}
	pr := lane.Proof{Token: token, Env: o.Env, Release: o.Release, Version: p.Plan.ProofVersion, Expires: exp}
	if p.Plan.Mesh.AccessLog {
		pr.CallerHash = p.SubjectHash(o.Caller.Subject)
	}
	proof := p.Lanes.SignProof(pr)
	p.proofs.put(k, proof, exp)
	return proof
}

// byProof is the decision the edge's Envoy routes r on when it carries a
// proof: one that verifies, names the end of the request's authorization
// header, is of the config in force, names a release not killed, and
// comes without a stress marker. Envoy does not verify the token: graymesh
// did when it handed the proof, and only that token ends that way. Here
// the token must verify too, so explain never calls a forged one the
// caller's.
func (p *Policy) byProof(r Request, c identity.Caller) (Decision, bool) {
	if p.Plan.Callers == nil || p.Lanes == nil || r.Proof == "" || r.StressMarker != "" || r.Asserted != nil || c.Subject == "" {
		return Decision{}, false
	}
	pr, err := p.Lanes.VerifyProof(r.Proof, r.Now)
	if err != nil || !strings.HasSuffix(r.Authorization, pr.Token) || pr.Version != p.Plan.ProofVersion {
		return Decision{}, false
	}
	if pr.Release != "" && p.Engine.state(pr.Release) == config.StateKilled {
		return Decision{}, false
	}
	return Decision{Env: pr.Env, Release: pr.Release, Reason: ReasonProof, Bucket: NoBucket, Version: p.Plan.Version}, true
}
