package gray

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/lane"
)

// Header is one header to set.
type Header struct{ Name, Value string }

// RequestHeaders are the headers to set on the request before it is
// routed: the decision's (empty values omitted) and, when the lane
// changes and is not removed, the new lane. Every other header with
// wire.HeaderPrefix that the client sent must be removed by the adapter.
func (o *Outcome) RequestHeaders() []Header {
	out := make([]Header, 0, 6)
	add := func(name, value string) {
		if value != "" {
			out = append(out, Header{name, value})
		}
	}
	add(wire.HeaderEnv, o.Env)
	add(wire.HeaderRelease, o.Release)
	add(wire.HeaderReason, string(o.Reason))
	add(wire.HeaderVersion, o.Version)
	add(wire.HeaderFallback, o.Fallback)
	add(wire.HeaderLaneProblem, o.LaneProblem)
	if o.Stress {
		add(wire.HeaderStress, "1")
	}
	if o.SetLane {
		add(wire.HeaderLane, o.Lane)
	}
	return out
}

// RemovesLane reports whether the request's lane header must go.
func (o *Outcome) RemovesLane() bool { return o.SetLane && o.Lane == "" }

// ResponseHeaders hand a fresh membership token to the caller, as a
// cookie for browsers and as a header for services to send back. None
// when the outcome carries none. A fresh proof is not among them: the
// edge's Envoy sets it on the response itself, from the answer's dynamic
// metadata (wire.MetadataProof), so a proof costs no second message.
func (p *Policy) ResponseHeaders(o *Outcome) []Header {
	if o.Membership == "" {
		return nil
	}
	m := p.Config.Membership
	cookie := fmt.Sprintf("%s=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Lax", m.Cookie, o.Membership, int(m.TTL.Seconds()))
	return []Header{{"set-cookie", cookie}, {m.Header, o.Membership}}
}

// SubjectHash is a short keyed hash of a subject for logs and traces: it
// lets an operator follow one caller without the logs naming it. Keyed
// with a key derived from the mesh lane key (the same on every node), or
// a per-process random key without one, so a dictionary of user names
// cannot reverse it.
func (p *Policy) SubjectHash(subject string) string {
	if subject == "" {
		return ""
	}
	mac := hmac.New(sha256.New, p.subjectKey)
	mac.Write([]byte(subject))
	return hex.EncodeToString(mac.Sum(nil)[:6])
}

// processSubjectKey keys subject hashes when no lane key is configured.
var processSubjectKey = func() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}()

func subjectHashKey(s *lane.Signer) []byte {
	if s == nil {
		return processSubjectKey
	}
	return s.DeriveKey("graymesh subject hash")
}
