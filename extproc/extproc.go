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
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/graymesh/graymesh/config"
	"github.com/graymesh/graymesh/gray"
)

// AttributeNamespace is where Envoy puts request_attributes in a
// ProcessingRequest: keyed by the filter's name.
const AttributeNamespace = "envoy.filters.http.ext_proc"

// SourceAddressAttribute is the attribute holding the downstream peer's
// address as Envoy saw it; unlike X-Forwarded-For, a client cannot forge it.
const SourceAddressAttribute = "source.address"

// Observer is told about every decision; metrics and tracing hook in here.
type Observer interface {
	Decided(d gray.Decision)
}

// Server implements envoy.service.ext_proc.v3.ExternalProcessor.
type Server struct {
	extprocsvcv3.UnimplementedExternalProcessorServer

	policy   atomic.Pointer[gray.Policy]
	log      *slog.Logger
	observer Observer
	streams  atomic.Int64
}

// New returns a server deciding with p. observer may be nil.
func New(p *gray.Policy, log *slog.Logger, observer Observer) *Server {
	s := &Server{log: log.With("component", "extproc"), observer: observer}
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
		resp, err := s.answer(req)
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
func (s *Server) answer(req *extprocsvcv3.ProcessingRequest) (*extprocsvcv3.ProcessingResponse, error) {
	switch r := req.Request.(type) {
	case *extprocsvcv3.ProcessingRequest_RequestHeaders:
		d := s.decide(r.RequestHeaders, req.GetAttributes())
		return Response(d, r.RequestHeaders.GetHeaders()), nil
	// The filter is configured to send nothing else; should a mode override
	// ask for more, pass it through unchanged.
	case *extprocsvcv3.ProcessingRequest_ResponseHeaders:
		return &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocsvcv3.HeadersResponse{}}}, nil
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

func (s *Server) decide(h *extprocsvcv3.HttpHeaders, attrs map[string]*structpb.Struct) gray.Decision {
	p := s.policy.Load()
	req := Extract(p.Engine, h.GetHeaders(), attrs)
	d, caller := p.Decide(req)
	if s.observer != nil {
		s.observer.Decided(d)
	}
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("decision",
			"subject_hash", subjectHash(caller.Subject),
			"token_problem", caller.Problem,
			"env", d.Env, "release", d.Release, "rule", d.Rule,
			"reason", string(d.Reason), "bucket", d.Bucket, "version", d.Version)
	}
	return d
}

// Extract reads what a decision needs from Envoy's request headers and
// attributes. Envoy sends header values in raw_value.
func Extract(e *gray.Engine, hm *corev3.HeaderMap, attrs map[string]*structpb.Struct) gray.HTTPRequest {
	var r gray.HTTPRequest
	for _, h := range hm.GetHeaders() {
		switch name := h.GetKey(); name {
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
	if a := attrs[AttributeNamespace]; a != nil {
		if f := a.GetFields()[SourceAddressAttribute]; f != nil {
			r.IP = parseIP(f.GetStringValue())
		}
	}
	return r
}

// Response builds the request-headers answer for d: remove every
// graymesh header the client sent, set ours, and clear the route cache so
// the router matches on them. Values go in raw_value only (a value-only
// header is applied empty, both set is a 500).
func Response(d gray.Decision, in *corev3.HeaderMap) *extprocsvcv3.ProcessingResponse {
	set := make([]*corev3.HeaderValueOption, 0, 4)
	add := func(k, v string) {
		if v == "" {
			return
		}
		set = append(set, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, RawValue: []byte(v)},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	add(gray.HeaderEnv, d.Env)
	add(gray.HeaderRelease, d.Release)
	add(gray.HeaderReason, string(d.Reason))
	add(gray.HeaderVersion, d.Version)

	var remove []string
	for _, h := range in.GetHeaders() {
		k := h.GetKey()
		if !strings.HasPrefix(k, config.HeaderPrefix) || contains(remove, k) {
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
