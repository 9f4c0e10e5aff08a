package extproc

import (
	"context"
	"strings"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/gray"
)

// Reusing answers: most requests get one of a handful of answers to their
// request headers — the same headers set for everyone the same release,
// reason and window's lane apply to. Such an answer is encoded once
// (grpc-go's PreparedMsg, an experimental API) and the encoded bytes are
// sent again to every later request with the same outcome, instead of
// building, marshalling and collecting a new message per request. An
// answer that depends on the request itself is built afresh: when the
// client sent x-gray-* headers to remove, when the request is traced
// (dynamic metadata), when the access log wants the caller, or when a
// membership token is handed out.

// maxPrepared bounds the answers kept. Outcomes change with the lane's
// window and the config version; past the bound the set starts over.
const maxPrepared = 256

// answerKey is everything the reusable answer is made of (Response's
// input when no header is removed).
type answerKey struct {
	env, release, reason, version, fallback, laneProblem, lane string
	setLane, stress                                            bool
}

// preparedAnswers holds encoded answers to request headers.
type preparedAnswers struct {
	mu      sync.Mutex
	answers map[answerKey]*grpc.PreparedMsg
}

func keyOf(o *gray.Outcome) answerKey {
	return answerKey{
		env: o.Env, release: o.Release, reason: string(o.Reason), version: o.Version, fallback: o.Fallback,
		laneProblem: o.LaneProblem, lane: o.Lane, setLane: o.SetLane, stress: o.Stress,
	}
}

// reusable reports whether o's answer to the request headers in is the
// same for every request with the same outcome.
func reusable(ctx context.Context, p *gray.Policy, o *gray.Outcome, in *corev3.HeaderMap) bool {
	if o.Membership != "" || o.Proof != "" || (p.Plan != nil && p.Plan.Mesh.AccessLog) || trace.SpanContextFromContext(ctx).IsSampled() {
		return false
	}
	for _, h := range in.GetHeaders() {
		if k := h.GetKey(); strings.HasPrefix(k, wire.HeaderPrefix) || k == wire.HeaderStressMarker {
			return false
		}
	}
	return true
}

// get returns the encoded answer for o, encoding it for stream's codec the
// first time.
func (a *preparedAnswers) get(stream grpc.ServerStream, o *gray.Outcome) (*grpc.PreparedMsg, error) {
	k := keyOf(o)
	a.mu.Lock()
	m := a.answers[k]
	a.mu.Unlock()
	if m != nil {
		return m, nil
	}
	m = &grpc.PreparedMsg{}
	if err := m.Encode(stream, Response(o, nil)); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.answers == nil || len(a.answers) >= maxPrepared {
		a.answers = make(map[answerKey]*grpc.PreparedMsg, maxPrepared)
	}
	a.answers[k] = m
	return m, nil
}
