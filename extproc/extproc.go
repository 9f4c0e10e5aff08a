// Package extproc adapts the gray decision core to Envoy's external
// processing (ext_proc) gRPC protocol. Envoy sends the request headers; the
// server answers with a header mutation that removes every client-supplied
// graymesh header, sets the decision headers and clears the route cache so
// Envoy routes on them.
package extproc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/graymesh/graymesh/gray"
	"github.com/graymesh/graymesh/identity"
	"github.com/graymesh/graymesh/lane"
	"github.com/graymesh/graymesh/wire"
)

// Observer is told about every decision; metrics hook in here.
type Observer interface {
	Decided(hop, service string, d gray.Decision, took time.Duration)
}

// Server implements envoy.service.ext_proc.v3.ExternalProcessor.
type Server struct {
	extprocsvcv3.UnimplementedExternalProcessorServer

	policy   atomic.Pointer[gray.Policy]
	log      *slog.Logger
	observer Observer
	streams  atomic.Int64
	tracer   trace.Tracer
	now      func() time.Time
}

// New returns a server deciding with p. observer may be nil.
func New(p *gray.Policy, log *slog.Logger, observer Observer) *Server {
	s := &Server{
		log:      log.With("component", "extproc"),
		observer: observer,
		tracer:   otel.Tracer("github.com/graymesh/graymesh/extproc"),
		now:      time.Now,
	}
	s.policy.Store(p)
	return s
}

// Swap makes p the policy for every decision from now on.
func (s *Server) Swap(p *gray.Policy) { s.policy.Store(p) }

// Policy returns the policy in force.
func (s *Server) Policy() *gray.Policy { return s.policy.Load() }

// ActiveStreams is the number of Process streams open now.
func (s *Server) ActiveStreams() int64 { return s.streams.Load() }

// Register adds the server to g.
func (s *Server) Register(g *grpc.Server) { extprocsvcv3.RegisterExternalProcessorServer(g, s) }

// Process answers one HTTP request's messages. Envoy opens one stream per
// request and ends it with a half-close (io.EOF) or a reset (Canceled); both
// are a normal end.
func (s *Server) Process(stream extprocsvcv3.ExternalProcessor_ProcessServer) error {
	s.streams.Add(1)
	defer s.streams.Add(-1)
	ctx := stream.Context()
	st := &streamState{hop: hopOf(ctx)}
	for {
		if err := ctx.Err(); err != nil {
			return nil
		}
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
			return nil
		}
		if err != nil {
			return err
		}
		resp, err := s.answer(ctx, st, req)
		if err != nil {
			return err
		}
		if err := stream.Send(resp); err != nil {
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
				return nil
			}
			return err
		}
	}
}

// answer returns the single response each ProcessingRequest needs.
// streamState is what one request's stream remembers between messages.
type streamState struct {
	hop hop
	// membership is a token to hand the caller on the response.
	membership string
}

func (s *Server) answer(ctx context.Context, st *streamState, req *extprocsvcv3.ProcessingRequest) (*extprocsvcv3.ProcessingResponse, error) {
	switch r := req.Request.(type) {
	case *extprocsvcv3.ProcessingRequest_RequestHeaders:
		a := s.decide(ctx, st.hop, r.RequestHeaders, req.GetAttributes())
		resp := Response(a, r.RequestHeaders.GetHeaders())
		if a.Membership != "" {
			// Response headers are skipped by default; ask for them only on
			// the requests that need a membership token set.
			st.membership = a.Membership
			resp.ModeOverride = &extprocv3.ProcessingMode{ResponseHeaderMode: extprocv3.ProcessingMode_SEND}
		}
		return resp, nil
	case *extprocsvcv3.ProcessingRequest_ResponseHeaders:
		return s.membershipResponse(st.membership), nil
	case *extprocsvcv3.ProcessingRequest_RequestBody:
		return &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_RequestBody{RequestBody: &extprocsvcv3.BodyResponse{}}}, nil
	case *extprocsvcv3.ProcessingRequest_ResponseBody:
		return &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocsvcv3.BodyResponse{}}}, nil
	case *extprocsvcv3.ProcessingRequest_RequestTrailers:
		return &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocsvcv3.TrailersResponse{}}}, nil
	case *extprocsvcv3.ProcessingRequest_ResponseTrailers:
		return &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocsvcv3.TrailersResponse{}}}, nil
	default:
		return nil, status.Errorf(codes.InvalidArgument, "unexpected ext_proc message %T", r)
	}
}

// hop is who is calling, from the stream's gRPC metadata.
type hop struct {
	inner   bool
	service string
}

func hopOf(ctx context.Context) hop {
	md, _ := metadata.FromIncomingContext(ctx)
	var h hop
	if v := md.Get(wire.MetadataHop); len(v) > 0 {
		h.inner = v[0] == wire.HopInner
	}
	if v := md.Get(wire.MetadataService); len(v) > 0 {
		h.service = v[0]
	}
	return h
}

func (h hop) name() string {
	if h.inner {
		return wire.HopInner
	}
	return wire.HopEdge
}

// decide makes the decision for one request: at the edge from identity and
// rules, at an inner hop from the signed lane.
func (s *Server) decide(ctx context.Context, h hop, headers *extprocsvcv3.HttpHeaders, attrs map[string]*structpb.Struct) Answer {
	p := s.policy.Load()
	now := s.now()
	req := Extract(p, headers.GetHeaders(), attrs)
	var (
		a      Answer
		caller identity.Caller
	)
	req.Now = now
	if h.inner {
		a.Decision = p.Follow(req.Baggage, now)
		if a.Decision.Reason != gray.ReasonLane && req.Baggage != "" {
			// Do not pass on a lane that failed verification.
			a.Baggage, a.SetBaggage = lane.WithLane(req.Baggage, ""), true
		}
	} else {
		a.Decision, caller = p.Decide(req.HTTPRequest)
		a.Membership = p.MembershipFor(a.Decision, caller, now)
		if p.Lanes != nil {
			token := ""
			if a.Decision.Env != "" {
				token = p.Lanes.Sign(a.Decision.Env, a.Decision.Release, a.Decision.Version, now)
			}
			// Whatever lane the client sent is dropped; ours is added.
			a.Baggage, a.SetBaggage = lane.WithLane(req.Baggage, token), true
		}
	}
	a.Decision.Fallback = p.FallbackFor(h.service, a.Decision.Env)
	if s.observer != nil {
		s.observer.Decided(h.name(), h.service, a.Decision, s.now().Sub(now))
	}
	s.trace(ctx, h, a.Decision, caller)
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.Debug("decision", "hop", h.name(), "service", h.service,
			"subject_hash", subjectHash(caller.Subject),
			"token_problem", caller.Problem,
			"env", a.Decision.Env, "release", a.Decision.Release, "rule", a.Decision.Rule,
			"reason", string(a.Decision.Reason), "bucket", a.Decision.Bucket,
			"version", a.Decision.Version, "fallback", a.Decision.Fallback)
	}
	return a
}

// trace records the decision as a span, a child of the span Envoy opened
// for this ext_proc call (its context arrives in the gRPC metadata). Names
// follow OpenTelemetry's feature_flag conventions where they fit.
func (s *Server) trace(ctx context.Context, h hop, d gray.Decision, caller identity.Caller) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	_, span := s.tracer.Start(ctx, "graymesh.decision", trace.WithSpanKind(trace.SpanKindInternal))
	defer span.End()
	env := d.Env
	if env == "" {
		env = "route-default"
	}
	span.SetAttributes(
		attribute.String("feature_flag.key", "graymesh.env"),
		attribute.String("feature_flag.provider.name", "graymesh"),
		attribute.String("feature_flag.result.variant", env),
		attribute.String("feature_flag.result.reason", string(d.Reason)),
		attribute.String("feature_flag.version", d.Version),
		attribute.String("graymesh.hop", h.name()),
		attribute.String("graymesh.service", h.service),
		attribute.String("graymesh.env", env),
		attribute.String("graymesh.release", d.Release),
		attribute.String("graymesh.rule", d.Rule),
		attribute.String("graymesh.reason", string(d.Reason)),
		attribute.Int("graymesh.bucket", d.Bucket),
		attribute.String("graymesh.config_version", d.Version),
		attribute.String("graymesh.fallback", d.Fallback),
	)
	if caller.Problem != "" {
		span.SetAttributes(attribute.String("graymesh.token_problem", caller.Problem))
	}
	if caller.Subject != "" {
		span.SetAttributes(attribute.String("graymesh.subject_hash", subjectHash(caller.Subject)))
	}
}

// Request is what graymesh reads from one request.
type Request struct {
	gray.HTTPRequest
	// Baggage is the W3C baggage header, several joined with ','.
	Baggage string
}

// Extract reads what a decision needs from Envoy's request headers and
// attributes. Envoy sends header values in raw_value.
func Extract(p *gray.Policy, hm *corev3.HeaderMap, attrs map[string]*structpb.Struct) Request {
	var r Request
	e, memberHeader := p.Engine, p.Config.Membership.Header
	for _, h := range hm.GetHeaders() {
		switch name := h.GetKey(); name {
		case memberHeader:
			r.Membership = value(h)
		case wire.HeaderBaggage:
			if r.Baggage == "" {
				r.Baggage = value(h)
			} else {
				r.Baggage += "," + value(h)
			}
		case "authorization":
			r.Authorization = value(h)
		case "cookie":
			// HTTP/2 clients may split cookies over several headers.
			if r.Cookie == "" {
				r.Cookie = value(h)
			} else {
				r.Cookie += "; " + value(h)
			}
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

// Answer is what graymesh tells Envoy about one request.
type Answer struct {
	Decision gray.Decision
	// Baggage replaces the request's baggage header when SetBaggage is
	// true; "" removes it.
	Baggage    string
	SetBaggage bool
	// Membership, when set, is a fresh membership token to set on the
	// response.
	Membership string
}

// membershipResponse sets a fresh membership token on the response: as a
// cookie for browsers and as a header for services to send back.
func (s *Server) membershipResponse(token string) *extprocsvcv3.ProcessingResponse {
	hr := &extprocsvcv3.HeadersResponse{}
	if token != "" {
		m := s.policy.Load().Config.Membership
		cookie := fmt.Sprintf("%s=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Lax", m.Cookie, token, int(m.TTL.Seconds()))
		hr.Response = &extprocsvcv3.CommonResponse{HeaderMutation: &extprocsvcv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
			{Header: &corev3.HeaderValue{Key: "set-cookie", RawValue: []byte(cookie)}, AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD},
			{Header: &corev3.HeaderValue{Key: m.Header, RawValue: []byte(token)}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD},
		}}}
	}
	return &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: hr}}
}

// Response builds the request-headers answer: remove every graymesh header
// the client sent, set ours, and clear the route cache so the router
// matches on them. Values go in raw_value only (a value-only header is
// applied empty, both set is a 500).
func Response(a Answer, in *corev3.HeaderMap) *extprocsvcv3.ProcessingResponse {
	d := a.Decision
	set := make([]*corev3.HeaderValueOption, 0, 6)
	add := func(k, v string) {
		if v == "" {
			return
		}
		set = append(set, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, RawValue: []byte(v)},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	add(wire.HeaderEnv, d.Env)
	add(wire.HeaderRelease, d.Release)
	add(wire.HeaderReason, string(d.Reason))
	add(wire.HeaderVersion, d.Version)
	add(wire.HeaderFallback, d.Fallback)

	var remove []string
	if a.SetBaggage {
		if a.Baggage != "" {
			add(wire.HeaderBaggage, a.Baggage)
		} else {
			remove = append(remove, wire.HeaderBaggage)
		}
	}
	for _, h := range in.GetHeaders() {
		k := h.GetKey()
		if !strings.HasPrefix(k, wire.HeaderPrefix) || contains(remove, k) {
			continue
		}
		overwritten := false
		for _, o := range set {
			if o.Header.Key == k {
				overwritten = true
				break
			}
		}
		if !overwritten {
			remove = append(remove, k)
		}
	}
	return &extprocsvcv3.ProcessingResponse{
		Response: &extprocsvcv3.ProcessingResponse_RequestHeaders{
			RequestHeaders: &extprocsvcv3.HeadersResponse{
				Response: &extprocsvcv3.CommonResponse{
					HeaderMutation: &extprocsvcv3.HeaderMutation{SetHeaders: set, RemoveHeaders: remove},
					// Without this the route chosen before ext_proc ran,
					// on the client's headers, stays in force.
					ClearRouteCache: true,
				},
			},
		},
	}
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

func subjectHash(subject string) string {
	if subject == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(subject))
	return hex.EncodeToString(sum[:6])
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
