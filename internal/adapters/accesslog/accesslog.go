// Package accesslog receives the access log Envoy streams to graymesh
// (envoy.service.accesslog.v3, from the envoy.access_loggers.http_grpc
// logger xds puts on every listener that routes to an environment) and
// translates each entry into an analysis.Sample: which service and
// environment served it (the upstream cluster is service|env, named by the
// plan), whether it failed, how long it took, for whom graymesh decided
// and the route group of its path. It only translates; the analysis package judges.
package accesslog

import (
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	accesslogsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/analysis"
	"github.com/graymesh/graymesh/internal/core/plan"
)

// Receiver implements envoy.service.accesslog.v3.AccessLogService.
type Receiver struct {
	accesslogsvcv3.UnimplementedAccessLogServiceServer

	observe  func(analysis.Sample)
	log      *slog.Logger
	clusters atomic.Pointer[map[string]target]
	// closing ends every stream when graymesh drains: access-log streams
	// live as long as Envoy and would hold up a graceful stop.
	closing   chan struct{}
	closeOnce sync.Once

	// Entries counts the entries that became samples; Skipped those of
	// clusters that are no environment of the plan (or not HTTP); Stress
	// those of stress-test requests, shadow load the analysis leaves out.
	Entries, Skipped, Stress atomic.Int64
}

var _ accesslogsvcv3.AccessLogServiceServer = (*Receiver)(nil)

type target struct{ service, env string }

// New returns a receiver handing every sample to observe.
func New(observe func(analysis.Sample), log *slog.Logger) *Receiver {
	return &Receiver{observe: observe, log: log.With("component", "accesslog"), closing: make(chan struct{})}
}

// SetPlan names the clusters whose entries count: each environment of each
// service of p.
func (r *Receiver) SetPlan(p *plan.Plan) {
	m := map[string]target{}
	for _, s := range p.Services {
		for _, e := range s.Envs {
			m[plan.ClusterName(s.Name, e.Name)] = target{s.Name, e.Name}
		}
	}
	r.clusters.Store(&m)
}

// Register adds the service to g.
func (r *Receiver) Register(g *grpc.Server) { accesslogsvcv3.RegisterAccessLogServiceServer(g, r) }

// Close ends every open stream and refuses new ones' entries.
func (r *Receiver) Close() { r.closeOnce.Do(func() { close(r.closing) }) }

// StreamAccessLogs reads entries until Envoy ends the stream or graymesh
// drains. Envoy expects no answer.
func (r *Receiver) StreamAccessLogs(stream accesslogsvcv3.AccessLogService_StreamAccessLogsServer) error {
	msgs := make(chan *accesslogsvcv3.StreamAccessLogsMessage)
	errc := make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case msgs <- m:
			case <-stream.Context().Done():
				return
			}
		}
	}()
	for {
		select {
		case <-r.closing:
			return stream.SendAndClose(&accesslogsvcv3.StreamAccessLogsResponse{})
		case err := <-errc:
			if errors.Is(err, io.EOF) {
				return stream.SendAndClose(&accesslogsvcv3.StreamAccessLogsResponse{})
			}
			if status.Code(err) == codes.Canceled {
				return nil
			}
			return err
		case m := <-msgs:
			for _, e := range m.GetHttpLogs().GetLogEntry() {
				r.entry(e)
			}
		}
	}
}

// intermediate are the access log types Envoy gives an entry written while
// a request or connection is still open (at its start, periodically, once
// a pool or tunnel is ready): the entry that ends it is counted instead.
// access_log_type replaces the deprecated intermediate_log_entry flag
// (Envoy's data/accesslog/v3 API reference).
var intermediate = map[accesslogdatav3.AccessLogType]bool{
	accesslogdatav3.AccessLogType_TcpUpstreamConnected:                    true,
	accesslogdatav3.AccessLogType_TcpPeriodic:                             true,
	accesslogdatav3.AccessLogType_TcpConnectionStart:                      true,
	accesslogdatav3.AccessLogType_DownstreamStart:                         true,
	accesslogdatav3.AccessLogType_DownstreamPeriodic:                      true,
	accesslogdatav3.AccessLogType_UpstreamPoolReady:                       true,
	accesslogdatav3.AccessLogType_UpstreamPeriodic:                        true,
	accesslogdatav3.AccessLogType_DownstreamTunnelSuccessfullyEstablished: true,
	accesslogdatav3.AccessLogType_UdpTunnelUpstreamConnected:              true,
	accesslogdatav3.AccessLogType_UdpPeriodic:                             true,
}

func (r *Receiver) entry(e *accesslogdatav3.HTTPAccessLogEntry) {
	c := e.GetCommonProperties()
	m := r.clusters.Load()
	if m == nil || intermediate[c.GetAccessLogType()] {
		r.Skipped.Add(1)
		return
	}
	t, ok := (*m)[c.GetUpstreamCluster()]
	if !ok {
		r.Skipped.Add(1)
		return
	}
	if e.GetRequest().GetRequestHeaders()[wire.HeaderStress] != "" {
		r.Stress.Add(1)
		return
	}
	r.Entries.Add(1)
	r.observe(analysis.Sample{
		Service:  t.service,
		Env:      t.env,
		Failed:   Failed(e),
		Duration: duration(c),
		Caller:   caller(e),
		Route:    analysis.RouteGroup(e.GetRequest().GetPath()),
	})
}

// caller is the keyed hash of the caller an entry was served for: what
// graymesh's ext_proc answer said, or else what the proof the edge's
// Envoy routed the request on says. "" for neither.
func caller(e *accesslogdatav3.HTTPAccessLogEntry) string {
	if c := e.GetCommonProperties().GetMetadata().GetFilterMetadata()[wire.MetadataNamespace].GetFields()[wire.MetadataCaller].GetStringValue(); c != "" {
		return c
	}
	return e.GetRequest().GetRequestHeaders()[wire.HeaderProofCallerHash]
}

// Failed reports whether an entry counts as an error: a 5xx answer, or no
// answer because the upstream failed (reset, refused, timed out, none
// healthy). A client that went away is not the service's failure.
func Failed(e *accesslogdatav3.HTTPAccessLogEntry) bool {
	if code := e.GetResponse().GetResponseCode().GetValue(); code >= 500 {
		return true
	}
	f := e.GetCommonProperties().GetResponseFlags()
	return f.GetUpstreamRemoteReset() || f.GetUpstreamConnectionFailure() || f.GetUpstreamConnectionTermination() ||
		f.GetUpstreamRequestTimeout() || f.GetNoHealthyUpstream() || f.GetUpstreamOverflow() ||
		f.GetUpstreamRetryLimitExceeded() || f.GetUpstreamMaxStreamDurationReached() || f.GetUpstreamProtocolError()
}

// duration is how long the upstream took to answer in full, from the
// request's start (the same ext_proc decision time is in both sides);
// the whole request's duration when the upstream never answered.
func duration(c *accesslogdatav3.AccessLogCommon) time.Duration {
	if d := c.GetTimeToLastUpstreamRxByte(); d != nil {
		return d.AsDuration()
	}
	if d := c.GetDuration(); d != nil {
		return d.AsDuration()
	}
	return c.GetTimeToLastDownstreamTxByte().AsDuration()
}
