// Package daemon runs graymesh: the ext_proc server, the xDS server and the
// admin HTTP server, fed by one config file that can be reloaded in place.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/graymesh/graymesh/config"
	"github.com/graymesh/graymesh/extproc"
	"github.com/graymesh/graymesh/gray"
	"github.com/graymesh/graymesh/xds"
)

// Options tune the daemon beyond the config file.
type Options struct {
	// DrainTimeout bounds how long in-flight ext_proc streams may finish
	// after shutdown begins.
	DrainTimeout time.Duration
	// Version is graymesh's build version, reported in traces.
	Version string
}

// envoyKeepalive lets Envoy ping idle ext_proc and ADS connections as often
// as every 10 s without being disconnected for "too many pings".
var envoyKeepalive = keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}

// Daemon is a running graymesh.
type Daemon struct {
	path    string
	opts    Options
	log     *slog.Logger
	ext     *extproc.Server
	xds     *xds.Server
	metrics *metrics

	mu         sync.Mutex // serialises reloads
	lastReload atomic.Pointer[reloadStatus]
	ready      atomic.Bool
}

type reloadStatus struct {
	At      time.Time `json:"at"`
	Result  string    `json:"result"`
	Version string    `json:"version,omitempty"`
	Error   string    `json:"error,omitempty"`
}

// New loads the config at path and prepares the servers; it does no
// network I/O.
func New(ctx context.Context, path string, opts Options, log *slog.Logger) (*Daemon, error) {
	p, err := gray.Load(path)
	if err != nil {
		return nil, err
	}
	for _, w := range p.Config.Warnings() {
		log.Warn("config warning", "file", path, "warning", w)
	}
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = 10 * time.Second
	}
	d := &Daemon{path: path, opts: opts, log: log}
	d.xds = xds.New(ctx, log)
	if err := d.xds.Update(p.Config); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	d.metrics = newMetrics(func() int64 { return d.ext.ActiveStreams() }, d.xds)
	d.ext = extproc.New(p, log, d.metrics)
	d.metrics.setVersion(p.Config.Version)
	d.lastReload.Store(&reloadStatus{At: time.Now(), Result: "accepted", Version: p.Config.Version})
	return d, nil
}

// Reload re-reads the config file. A file that fails validation is refused
// and the config in force stays.
func (d *Daemon) Reload() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, err := gray.Load(d.path)
	if err == nil {
		err = d.xds.Update(p.Config)
	}
	if err != nil {
		d.metrics.reloads.WithLabelValues("refused").Inc()
		d.lastReload.Store(&reloadStatus{At: time.Now(), Result: "refused", Error: err.Error(), Version: d.ext.Policy().Config.Version})
		d.log.Error("config refused; the config in force stays", "file", d.path, "version_in_force", d.ext.Policy().Config.Version, "error", err)
		return err
	}
	for _, w := range p.Config.Warnings() {
		d.log.Warn("config warning", "file", d.path, "warning", w)
	}
	d.ext.Swap(p)
	d.metrics.reloads.WithLabelValues("accepted").Inc()
	d.metrics.setVersion(p.Config.Version)
	d.lastReload.Store(&reloadStatus{At: time.Now(), Result: "accepted", Version: p.Config.Version})
	d.log.Info("config reloaded", "file", d.path, "version", p.Config.Version)
	return nil
}

// Run listens on the configured addresses and serves until ctx is done,
// then drains: readiness goes false, ext_proc streams get DrainTimeout to
// finish, and the xDS streams (which never end by themselves) are closed.
func (d *Daemon) Run(ctx context.Context) error {
	cfg := d.ext.Policy().Config
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

	extOpts := []grpc.ServerOption{grpc.KeepaliveEnforcementPolicy(envoyKeepalive)}
	flushTraces := func(context.Context) error { return nil }
	if ep := cfg.Tracing.OTLPEndpoint; ep != "" {
		if flushTraces, err = startTracing(ctx, ep, d.opts.Version); err != nil {
			extLis.Close()
			xdsLis.Close()
			adminLis.Close()
			return fmt.Errorf("tracing: %w", err)
		}
		// Envoy sends its trace context for the ext_proc call in the gRPC
		// metadata; the stats handler makes it the parent of our spans.
		extOpts = append(extOpts, grpc.StatsHandler(otelgrpc.NewServerHandler()))
	}
	extGRPC := grpc.NewServer(extOpts...)
	d.ext.Register(extGRPC)
	xdsGRPC := grpc.NewServer(grpc.KeepaliveEnforcementPolicy(envoyKeepalive))
	d.xds.Register(xdsGRPC)
	admin := &http.Server{Handler: d.adminHandler(), ReadHeaderTimeout: 5 * time.Second}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	g, gctx := errgroup.WithContext(ctx)
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
	d.ready.Store(true)
	d.log.Info("serving",
		"extproc", extLis.Addr().String(), "xds", xdsLis.Addr().String(), "admin", adminLis.Addr().String(),
		"config", d.path, "version", cfg.Version)

	g.Go(func() error {
		<-gctx.Done()
		d.ready.Store(false)
		d.log.Info("draining", "timeout", d.opts.DrainTimeout)
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

func (d *Daemon) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !d.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		p := d.ext.Policy()
		type release struct {
			Name           string  `json:"name"`
			Env            string  `json:"env"`
			Percent        float64 `json:"percent"`
			TrafficPercent float64 `json:"traffic_percent,omitempty"`
			Whitelist      int     `json:"whitelist"`
			Blacklist      int     `json:"blacklist"`
		}
		out := struct {
			ConfigFile    string           `json:"config_file"`
			ConfigVersion string           `json:"config_version"`
			XDSVersion    string           `json:"xds_version"`
			LastReload    *reloadStatus    `json:"last_reload"`
			Releases      []release        `json:"releases"`
			Streams       int64            `json:"extproc_active_streams"`
			XDS           map[string]int64 `json:"xds"`
		}{
			ConfigFile: d.path, ConfigVersion: p.Config.Version, XDSVersion: d.xds.Version(),
			LastReload: d.lastReload.Load(), Streams: d.ext.ActiveStreams(),
			XDS: map[string]int64{"pushes": d.xds.Stats.Pushes.Load(), "acks": d.xds.Stats.ACKs.Load(), "nacks": d.xds.Stats.NACKs.Load()},
		}
		for _, r := range p.Config.Releases {
			out.Releases = append(out.Releases, release{r.Name, r.Env, r.Percent, r.TrafficPercent, len(r.Whitelist), len(r.Blacklist)})
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
	})
	mux.HandleFunc("POST /reload", func(w http.ResponseWriter, _ *http.Request) {
		if err := d.Reload(); err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		fmt.Fprintln(w, "reloaded", d.ext.Policy().Config.Version)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.metrics.registry, promhttp.HandlerOpts{}))
	return mux
}

// Config returns the config in force.
func (d *Daemon) Config() *config.Config { return d.ext.Policy().Config }
