// Package daemon is graymesh's process: it wires the change pipeline
// (package control) to its sinks — the xDS server, the ext_proc server,
// the analysis (package analyser) — and its inputs — the config file's
// watcher, SIGHUP, the admin API (package admin), a fleet source — and runs
// the servers until shutdown, then drains them.
package daemon

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/graymesh/graymesh/extproc"
	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/analysis"
	"github.com/graymesh/graymesh/internal/core/gray"
	"github.com/graymesh/graymesh/internal/core/identity"
	"github.com/graymesh/graymesh/internal/runtime/admin"
	"github.com/graymesh/graymesh/internal/runtime/analyser"
	"github.com/graymesh/graymesh/internal/runtime/control"
	"github.com/graymesh/graymesh/xds"
)

// Options tune the daemon beyond the config file.
type Options struct {
	// DrainTimeout bounds how long in-flight ext_proc streams may finish
	// after shutdown begins.
	DrainTimeout time.Duration
	// Version is graymesh's build version, reported in traces.
	Version string
	// StateDir keeps the version counter, the config in force and admin
	// overrides across restarts ("" keeps them in memory only).
	StateDir string
	// WatchInterval is how often the config file is checked for changes
	// (0 turns watching off; SIGHUP and POST /reload still work).
	WatchInterval time.Duration
	// AdminToken, when set, is required as a bearer token on the admin
	// API's changing endpoints.
	AdminToken string
	// Clock is the daemon's time (default: the wall clock).
	Clock control.Clock
	// AnalysisSource, when set, gives every analysed release's
	// observations instead of Envoy's access log or Prometheus (tests).
	AnalysisSource analysis.Source
	// Console, when set, builds the web console served under /ui/ on the
	// admin server (package console) over the admin API in process; nil
	// serves none. If the handler has a Run(context.Context) method, Run
	// runs it beside the servers.
	Console func(*admin.Service) (http.Handler, error)
	// Fleet, when set, is Kubernetes mode: releases come from it through
	// the pipeline (control.ReleaseChange), the file gives the static
	// settings only, and local overrides are refused.
	Fleet control.Fleet
	// FleetAnalysis, with Fleet, is where the analysis publishes this
	// node's evidence for the fleet's one analyser, and reads its windows.
	FleetAnalysis analyser.FleetNode
}

// envoyKeepalive lets Envoy ping idle ext_proc and ADS connections as often
// as every 10 s without being disconnected for "too many pings".
var envoyKeepalive = keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}

// Daemon is a running graymesh.
type Daemon struct {
	opts    Options
	log     *slog.Logger
	ext     *extproc.Server
	xds     *xds.Server
	metrics *metrics
	// pipe is the one way a change reaches what graymesh serves.
	pipe *control.Pipeline
	// analyser judges analysed releases and acts through pipe.
	analyser *analyser.Runner
	// sources fetches issuers' key sets for every config compiled, so a
	// reload finds them already fetched.
	sources *identity.Sources
	api     *admin.Service
	console http.Handler
	ready   atomic.Bool
}

// New loads the state and the config and prepares the servers; it does no
// network I/O. When the file is refused and the state directory holds the
// last config in force, that config is served instead.
func New(ctx context.Context, path string, opts Options, log *slog.Logger) (*Daemon, error) {
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = 10 * time.Second
	}
	d := &Daemon{opts: opts, log: log}
	d.xds = xds.New(ctx, log)
	d.sources = identity.NewSources(log.With("component", "identity"))
	d.metrics = newMetrics(func() int64 { return d.ext.ActiveStreams() }, d.xds, d.sources)
	d.analyser = analyser.New(log, d.metrics.registry, opts.AnalysisSource)
	d.analyser.UseFleet(opts.FleetAnalysis)
	if opts.Fleet != nil {
		d.metrics.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "graymesh_fleet_stale_seconds",
			Help: "How long the Kubernetes watch of GrayRelease objects has not been known to be current (0: healthy). The last state keeps being served meanwhile.",
		}, func() float64 { return opts.Fleet.Staleness().Seconds() }))
	}
	pipe, err := control.New(control.Options{
		Path: path, StateDir: opts.StateDir, Clock: opts.Clock, Fleet: opts.Fleet, Sources: d.sources,
		Registerer: d.metrics.registry, Log: log, Changed: d.analyser.ConfigChanged,
	}, d.sinks()...)
	if err != nil {
		return nil, err
	}
	d.pipe = pipe
	d.analyser.Attach(pipe)
	d.api = admin.NewService(pipe, d.analyser, admin.Runtime{
		Ready: func() error {
			if !d.ready.Load() {
				return errors.New("not ready")
			}
			return nil
		},
		XDSVersion: d.xds.Version,
		XDS: func() admin.XDSStats {
			return admin.XDSStats{Pushes: d.xds.Stats.Pushes.Load(), ACKs: d.xds.Stats.ACKs.Load(), NACKs: d.xds.Stats.NACKs.Load(), Restores: d.xds.Stats.Restores.Load()}
		},
		ActiveStreams: d.ext.ActiveStreams,
		Gatherer:      d.metrics.registry,
		Registerer:    d.metrics.registry,
		Log:           log.With("component", "admin"),
		StateDir:      opts.StateDir,
		Token:         opts.AdminToken,
	})
	if opts.Console != nil {
		if d.console, err = opts.Console(d.api); err != nil {
			return nil, fmt.Errorf("console: %w", err)
		}
	}
	return d, nil
}

// sinks are where each policy put in force goes, in order: xDS first (it
// validates what it would push, and may refuse), then the decision path
// (atomic: decisions never see half a config), then the access log's
// plan.
func (d *Daemon) sinks() []control.Sink {
	return []control.Sink{
		control.SinkFunc(func(p *gray.Policy) error { return d.xds.Update(p.Plan) }),
		control.SinkFunc(func(p *gray.Policy) error {
			if d.ext == nil {
				d.ext = extproc.New(p, d.log, d.metrics)
			} else {
				d.ext.Swap(p)
			}
			return nil
		}),
		d.analyser.Sink(),
	}
}

// Pipeline is the change pipeline: the one way to change what this
// graymesh serves (a fleet source submits its changes there).
func (d *Daemon) Pipeline() *control.Pipeline { return d.pipe }

// Registerer is the registry behind /metrics, for what runs beside the
// daemon in its process (the fleet analyser in --kube-role=all).
func (d *Daemon) Registerer() prometheus.Registerer { return d.metrics.registry }

// API is the admin API in process.
func (d *Daemon) API() *admin.Service { return d.api }

// AdminHandler serves the admin API (what Run serves on admin_listen), for
// tests and for embedding graymesh in another server.
func (d *Daemon) AdminHandler() http.Handler { return d.api.Handler(d.console) }

// Reload re-reads the config file through the pipeline.
func (d *Daemon) Reload() error {
	_, err := d.pipe.Submit(control.Reload{})
	return err
}

// watch reloads the config file when its content changes. Polling the
// content (not inotify) also sees Kubernetes ConfigMap updates, which swap
// a symlink. A change is acted on once two reads a tick apart agree, so a
// file caught half-written by an editor is not refused as broken.
func (d *Daemon) watch(ctx context.Context) {
	if d.opts.WatchInterval <= 0 {
		return
	}
	t := time.NewTicker(d.opts.WatchInterval)
	defer t.Stop()
	var seen [32]byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		data, err := os.ReadFile(d.pipe.Path())
		if err != nil {
			continue
		}
		sum := sha256.Sum256(data)
		switch {
		case sum == d.pipe.FileHash():
			seen = [32]byte{}
		case sum != seen:
			seen = sum // settle: act when the next read agrees
		default:
			seen = [32]byte{}
			_ = d.Reload()
		}
	}
}

// Run listens on the configured addresses and serves until ctx is done,
// then drains: readiness goes false, ext_proc streams get DrainTimeout to
// finish, and the xDS streams (which never end by themselves) are closed.
//
//nolint:funlen // the servers' lifecycle in the order it happens: listen, serve, drain, stop
func (d *Daemon) Run(ctx context.Context) error {
	cfg := d.pipe.Config()
	if !d.api.Open() {
		d.log.Warn("admin API disabled: admin_listen is not loopback and no admin token is set; /healthz, /readyz and /metrics stay open", "admin_listen", cfg.Server.AdminListen)
	}
	lc := net.ListenConfig{}
	extLis, err := lc.Listen(ctx, "tcp", cfg.Server.ExtProcListen)
	if err != nil {
		return fmt.Errorf("ext_proc listener: %w", err)
	}
	xdsLis, err := lc.Listen(ctx, "tcp", cfg.Server.XDSListen)
	if err != nil {
		extLis.Close()
		return fmt.Errorf("xds listener: %w", err)
	}
	adminLis, err := lc.Listen(ctx, "tcp", cfg.Server.AdminListen)
	if err != nil {
		extLis.Close()
		xdsLis.Close()
		return fmt.Errorf("admin listener: %w", err)
	}

	extOpts := append(extproc.ServerOptions(), grpc.KeepaliveEnforcementPolicy(envoyKeepalive))
	flushTraces := func(context.Context) error { return nil }
	if ep := cfg.Tracing.OTLPEndpoint; ep != "" {
		if flushTraces, err = startTracing(ctx, ep, d.opts.Version); err != nil {
			extLis.Close()
			xdsLis.Close()
			adminLis.Close()
			return fmt.Errorf("tracing: %w", err)
		}
		// Envoy sends its trace context for the ext_proc call in the gRPC
		// metadata; extproc makes it the parent of the decision's span
		// itself (no stats handler: its span would last the whole stream).
	}
	extGRPC := grpc.NewServer(extOpts...)
	d.ext.Register(extGRPC)
	// grpc.health.v1 on the ext_proc port: what Envoy's gRPC health check
	// and a Kubernetes gRPC probe ask. NOT_SERVING from the start of the
	// drain, so checkers stop sending new streams before they are refused.
	extHealth := health.NewServer()
	healthgrpc.RegisterHealthServer(extGRPC, extHealth)
	// Envoy's access log for analysis arrives on the same port.
	d.analyser.Receiver.Register(extGRPC)
	xdsGRPC := grpc.NewServer(grpc.KeepaliveEnforcementPolicy(envoyKeepalive))
	d.xds.Register(xdsGRPC)
	admin := &http.Server{Handler: d.AdminHandler(), ReadHeaderTimeout: 5 * time.Second}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	g, gctx := errgroup.WithContext(ctx)
	// Key sets are fetched in the background from now on; decisions never
	// wait for them.
	d.sources.Start(gctx)
	g.Go(func() error { return extGRPC.Serve(extLis) })
	g.Go(func() error { return xdsGRPC.Serve(xdsLis) })
	g.Go(func() error {
		if err := admin.Serve(adminLis); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-hup:
				_ = d.Reload()
			}
		}
	})
	g.Go(func() error { d.watch(gctx); return nil })
	// Envoy's own split of anonymous traffic hands out the window's
	// lanes: push the next window's as it starts.
	g.Go(func() error { d.xds.RunTurns(gctx); return nil })
	g.Go(func() error { d.analyser.Run(gctx); return nil })
	g.Go(func() error { d.runConsole(gctx); return nil })
	d.ready.Store(true)
	extHealth.SetServingStatus("", healthgrpc.HealthCheckResponse_SERVING)
	extHealth.SetServingStatus(extprocsvcv3.ExternalProcessor_ServiceDesc.ServiceName, healthgrpc.HealthCheckResponse_SERVING)
	d.log.Info("serving",
		"extproc", extLis.Addr().String(), "xds", xdsLis.Addr().String(), "admin", adminLis.Addr().String(),
		"config", d.pipe.Path(), "config_version", cfg.Version)

	g.Go(func() error {
		<-gctx.Done()
		d.ready.Store(false)
		extHealth.Shutdown()
		d.log.Info("draining", "timeout", d.opts.DrainTimeout)
		// Access-log streams last as long as Envoy: end them, or the
		// graceful stop would wait for the drain timeout.
		d.analyser.Receiver.Close()
		stopped := make(chan struct{})
		go func() { extGRPC.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(d.opts.DrainTimeout):
			d.log.Warn("drain timeout; closing remaining ext_proc streams")
			extGRPC.Stop()
		}
		// ADS streams stay open for as long as Envoy lives: stop, don't wait.
		xdsGRPC.Stop()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := flushTraces(shutdownCtx); err != nil {
			d.log.Warn("flushing traces", "error", err)
		}
		return admin.Shutdown(shutdownCtx)
	})
	err = g.Wait()
	if errors.Is(err, grpc.ErrServerStopped) {
		err = nil
	}
	d.log.Info("stopped")
	return err
}

// Config returns the config in force.
func (d *Daemon) Config() *config.Config { return d.pipe.Config() }

// runConsole runs the console's background work (sampling metrics) when
// it has any, until ctx is done.
func (d *Daemon) runConsole(ctx context.Context) {
	if r, ok := d.console.(interface{ Run(context.Context) }); ok {
		r.Run(ctx)
	}
}
