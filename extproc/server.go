// Package extproc adapts graymesh's decision entry point (gray.Policy's
// Decide) to Envoy's external processing (ext_proc) gRPC protocol. It only
// translates: Envoy's request headers and attributes into a gray.Request,
// the gray.Outcome into a header mutation that removes every
// client-supplied graymesh header, sets the decision's and clears the
// route cache so Envoy routes on them.
package extproc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/graymesh/graymesh/internal/adapters/extprocmode"
	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/gray"
)

// Observer is told about every decision; metrics hook in here. The
// outcome comes by value: a pointer through the interface would move every
// request's outcome to the heap.
type Observer interface {
	Decided(hop, service string, o gray.Outcome, took time.Duration)
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
	prepared preparedAnswers
}

var _ extprocsvcv3.ExternalProcessorServer = (*Server)(nil)

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
	ctx := withEnvoyTrace(stream.Context())
	st := &streamState{hop: hopOf(ctx)}
	defer st.endSpan()
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
		msg, err := s.reply(ctx, stream, st, req)
		if err != nil {
			return err
		}
		err = stream.SendMsg(msg)
		// The decision's span ends when its answer is sent, not when
		// Envoy ends the stream (for a request whose response headers
		// graymesh asks for, that is the end of the whole request).
		st.endSpan()
		if err != nil {
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
				return nil
			}
			return err
		}
	}
}

// streamState is what one request's stream remembers between messages.
type streamState struct {
	hop gray.Hop
	// responseHeaders are set on the response (a membership token).
	responseHeaders []gray.Header
	// span is the decision's span until its answer is sent.
	span trace.Span
}

// endSpan ends the decision's span, if one is open.
func (st *streamState) endSpan() {
	if st.span != nil {
		st.span.End()
		st.span = nil
	}
}

// reply is answer's message to send: for request headers whose answer is
// the same for every request with the same outcome, that answer encoded
// once (reuse.go).
func (s *Server) reply(ctx context.Context, stream grpc.ServerStream, st *streamState, req *extprocsvcv3.ProcessingRequest) (any, error) {
	r, ok := req.Request.(*extprocsvcv3.ProcessingRequest_RequestHeaders)
	if !ok {
		return s.answer(ctx, st, req)
	}
	p, o := s.decide(ctx, st, r.RequestHeaders, req.GetAttributes())
	if reusable(ctx, p, &o, r.RequestHeaders.GetHeaders()) {
		st.responseHeaders = nil
		return s.prepared.get(stream, &o)
	}
	return requestHeadersResponse(ctx, st, p, &o, r.RequestHeaders), nil
}

// answer returns the single response each ProcessingRequest needs.
func (s *Server) answer(ctx context.Context, st *streamState, req *extprocsvcv3.ProcessingRequest) (*extprocsvcv3.ProcessingResponse, error) {
	switch r := req.Request.(type) {
	case *extprocsvcv3.ProcessingRequest_RequestHeaders:
		p, o := s.decide(ctx, st, r.RequestHeaders, req.GetAttributes())
		return requestHeadersResponse(ctx, st, p, &o, r.RequestHeaders), nil
	case *extprocsvcv3.ProcessingRequest_ResponseHeaders:
		return responseHeadersResponse(st.responseHeaders), nil
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

// requestHeadersResponse answers the request headers with the decision o.
func requestHeadersResponse(ctx context.Context, st *streamState, p *gray.Policy, o *gray.Outcome, in *extprocsvcv3.HttpHeaders) *extprocsvcv3.ProcessingResponse {
	resp := Response(o, in.GetHeaders())
	withTraceMetadata(ctx, resp, o)
	setCallerMetadata(resp, p, o)
	if o.Proof != "" {
		addMetadata(resp, wire.MetadataProof, o.Proof)
	}
	if st.responseHeaders = p.ResponseHeaders(o); st.responseHeaders != nil {
		// Response headers are skipped by default; ask for them only on
		// the requests that need a membership token set.
		resp.ModeOverride = extprocmode.WithResponseHeaders()
	}
	return resp
}

// hopOf reads who is calling from the stream's gRPC metadata, which the
// filter config sets (grpc_service initial_metadata). It looks the two
// keys up (grpc-go's ValueFromIncomingContext) rather than copying the
// whole metadata map, every key lower-cased, per stream as
// FromIncomingContext does.
func hopOf(ctx context.Context) gray.Hop {
	var h gray.Hop
	if v := metadata.ValueFromIncomingContext(ctx, wire.MetadataHop); len(v) > 0 {
		h.Inner = v[0] == wire.HopInner
	}
	if v := metadata.ValueFromIncomingContext(ctx, wire.MetadataService); len(v) > 0 {
		h.Service = v[0]
	}
	return h
}
