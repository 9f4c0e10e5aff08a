package extproc

import (
	"context"
	"log/slog"
	"net/netip"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/gray"
)

// decide makes the decision for one request through the policy's one
// entry point, then reports it. It returns the policy that decided, so the
// rest of the stream answers with the same one. The decision's span stays
// open in st until the answer is sent.
func (s *Server) decide(ctx context.Context, st *streamState, headers *extprocsvcv3.HttpHeaders, attrs map[string]*structpb.Struct) (*gray.Policy, gray.Outcome) {
	h := st.hop
	p := s.policy.Load()
	req := Extract(p, headers.GetHeaders(), attrs)
	req.Hop, req.Now = h, s.now()
	o := p.Decide(req)
	if s.observer != nil {
		s.observer.Decided(h.Name(), h.Service, o, s.now().Sub(req.Now))
	}
	s.trace(ctx, p, h, &o, st)
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.Debug("decision", "hop", h.Name(), "service", h.Service,
			"subject_hash", p.SubjectHash(o.Caller.Subject), "token_problem", o.Caller.Problem,
			"env", o.Env, "release", o.Release, "rule", o.Rule, "reason", string(o.Reason),
			"bucket", o.Bucket, "config_version", o.Version, "fallback", o.Fallback)
	}
	return p, o
}

// Extract reads what a decision needs from Envoy's request headers and
// attributes. Envoy sends header values in raw_value. Only the headers a
// rule reads are copied.
func Extract(p *gray.Policy, hm *corev3.HeaderMap, attrs map[string]*structpb.Struct) gray.Request {
	var r gray.Request
	e, memberHeader := p.Engine, p.Config.Membership.Header
	for _, h := range hm.GetHeaders() {
		switch name := h.GetKey(); name {
		case memberHeader:
			r.Membership = value(h)
		case wire.HeaderLane:
			// The first, as Envoy's jwt_authn reads it.
			if r.Lane == "" {
				r.Lane = value(h)
			}
		case wire.HeaderStressMarker:
			r.StressMarker = value(h)
		case wire.HeaderProof:
			r.Proof = value(h)
		case "authorization":
			r.Authorization = value(h)
		case wire.HeaderRequestID:
			r.RequestID = value(h)
		case "cookie":
			// HTTP/2 clients may split cookies over several headers.
			r.Cookie = join(r.Cookie, "; ", value(h))
		default:
			if e.ReadsHeader(name) {
				if r.Headers == nil {
					r.Headers = map[string]string{}
				}
				if _, seen := r.Headers[name]; !seen {
					r.Headers[name] = value(h)
				}
			}
		}
	}
	if a := attrs[wire.ExtProcFilterName]; a != nil {
		if f := a.GetFields()[wire.SourceAddressAttribute]; f != nil {
			r.IP = parseIP(f.GetStringValue())
		}
	}
	return r
}

func join(acc, sep, v string) string {
	if acc == "" {
		return v
	}
	return acc + sep + v
}

func value(h *corev3.HeaderValue) string {
	if len(h.GetRawValue()) > 0 {
		return string(h.GetRawValue())
	}
	return h.GetValue()
}

func parseIP(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr()
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a
	}
	return netip.Addr{}
}
