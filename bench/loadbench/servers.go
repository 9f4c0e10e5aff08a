package loadbench

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ServedEnvHeader is the response header in which the upstream says which
// environment served the request; the harness checks it on every response.
const ServedEnvHeader = "X-Served-Env"

// ServeUpstream runs the shop upstream: one HTTP server per environment,
// each answering 200 with the environment in ServedEnvHeader and a short
// body. It blocks until ctx is done.
func ServeUpstream(ctx context.Context, stableAddr, grayAddr string) error {
	g, ctx := errgroup.WithContext(ctx)
	for env, addr := range map[string]string{"stable": stableAddr, "gray": grayAddr} {
		body := []byte(`{"service":"shop","env":"` + env + `"}`)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set(ServedEnvHeader, env)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		})
		srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Minute}
		lis, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		g.Go(func() error {
			if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
		g.Go(func() error {
			<-ctx.Done()
			return srv.Close()
		})
	}
	return g.Wait()
}

// ServeNoop runs E0's ext_proc server: every message is answered with an
// empty response of the matching kind (CONTINUE, no mutation, no route
// cache change). It is the floor any ext_proc server pays: Envoy's gRPC
// client, one stream per request, and Go's gRPC server.
func ServeNoop(ctx context.Context, addr string) error {
	lis, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	s := grpc.NewServer()
	extprocsvcv3.RegisterExternalProcessorServer(s, noop{})
	go func() {
		<-ctx.Done()
		s.Stop()
	}()
	if err := s.Serve(lis); !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

type noop struct {
	extprocsvcv3.UnimplementedExternalProcessorServer
}

func (noop) Process(stream extprocsvcv3.ExternalProcessor_ProcessServer) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
			return nil
		}
		if err != nil {
			return err
		}
		resp := &extprocsvcv3.ProcessingResponse{}
		switch req.Request.(type) {
		case *extprocsvcv3.ProcessingRequest_RequestHeaders:
			resp.Response = &extprocsvcv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocsvcv3.HeadersResponse{}}
		case *extprocsvcv3.ProcessingRequest_ResponseHeaders:
			resp.Response = &extprocsvcv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocsvcv3.HeadersResponse{}}
		default:
			return status.Errorf(codes.InvalidArgument, "no-op server: unexpected %T", req.Request)
		}
		if err := stream.Send(resp); err != nil {
			return nil
		}
	}
}
