// Package daemon runs graymesh: the ext_proc server, the xDS server and the
// admin HTTP server, fed by one config file that can be reloaded in place.
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
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/graymesh/graymesh/analysis"
	"github.com/graymesh/graymesh/config"
	"github.com/graymesh/graymesh/extproc"
	"github.com/graymesh/graymesh/gray"
	"github.com/graymesh/graymesh/identity"
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
	Clock Clock
	// AnalysisSource, when set, gives every analysed release's
	// observations instead of Envoy's access log or Prometheus (tests).
	AnalysisSource analysis.Source
	// Console, when set, builds the web console served under /ui/ on the
	// admin server (package console); nil serves none. If the handler
	// has a Run(context.Context) method, Run runs it beside the servers.
	Console func(*Daemon) (http.Handler, error)
	// Fleet, when set, is Kubernetes mode: releases come from it through
	// ApplyFleet, the file gives the static settings only, and local
	// overrides are refused.
	Fleet Fleet
	// FleetActor, with Fleet, is how the analysis acts in that mode.
	FleetActor FleetActor
	// FleetView, with Fleet, gives the fleet status of a release.
	FleetView FleetView
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
	// analyser judges analysed releases and acts on the verdicts.
	analyser *analyser
	// sources fetches issuers' key sets for every config compiled, so a
	// reload finds them already fetched.
	sources *identity.Sources

	mu sync.Mutex // serialises changes to the config in force
	// file is the last accepted config file, before overrides.
	file  *config.Config
	state *state
	// pending is an accepted config waiting for its effective_at.
	pending *config.Config
	// stopPending cancels the timer that puts pending in force.
	stopPending func() bool
	// held is, in Kubernetes mode, per release, the change waiting for its
	// effective_at: one release's future change never holds (or is
	// pulled forward by) another's.
	held     map[string]*heldChange
	fileHash [32]byte

	lastReload atomic.Pointer[reloadStatus]
	history    history
	console    http.Handler
	// api is the admin handler APIGet serves from, built once.
	apiOnce sync.Once
	api     http.Handler
	ready   atomic.Bool
	// adminOpen is false when the admin server listens beyond loopback
	// without a token: then only health, readiness and metrics answer.
	adminOpen bool
}

type reloadStatus struct {
	At      time.Time `json:"at"`
	Source  string    `json:"source"`
	Result  string    `json:"result"`
	Version string    `json:"version,omitempty"`
	Error   string    `json:"error,omitempty"`
	// Reason is the declared reason of the change (change.reason, or the
	// analysis verdict that made it).
	Reason string `json:"reason,omitempty"`
}

// New loads the state and the config and prepares the servers; it does no
// network I/O. When the file is refused and the state directory holds the
// last config in force, that config is served instead.
func New(ctx context.Context, path string, opts Options, log *slog.Logger) (*Daemon, error) {
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = 10 * time.Second
	}
	if opts.Clock == nil {
		opts.Clock = wallClock{}
	}
	st, err := loadState(opts.StateDir)
	if err != nil {
		return nil, err
	}
	d := &Daemon{path: path, opts: opts, log: log, state: st, held: map[string]*heldChange{}}
	d.xds = xds.New(ctx, log)
	d.sources = identity.NewSources(log.With("component", "identity"))
	d.metrics = newMetrics(func() int64 { return d.ext.ActiveStreams() }, d.xds, d.sources)
	d.analyser = newAnalyser(d, log, newAnalysisMetrics(d.metrics.registry), opts.AnalysisSource)
	if opts.Fleet != nil {
		d.metrics.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "graymesh_fleet_stale_seconds",
			Help: "How long the Kubernetes watch of GrayRelease objects has not been known to be current (0: healthy). The last state keeps being served meanwhile.",
		}, func() float64 { return opts.Fleet.Staleness().Seconds() }))
	}

	file, next, err := d.readFile()
	if err == nil && st.InForce != nil && !next.Change.Rollback && opts.Fleet == nil {
		err = evictionError(st.InForce, next)
	}
	if err != nil {
		if st.InForce == nil || opts.Fleet != nil {
			return nil, err
		}
		log.Error("config refused at startup; serving the last config in force", "file", path, "version", st.Version)
		file, next = st.InForce, st.InForce
	}
	d.file = file
	if err := d.put(next, "startup"); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err != nil {
		d.refused("startup", err, nil)
	}
	d.adminOpen = isLoopback(next.Server.AdminListen) || opts.AdminToken != ""
	if opts.Console != nil {
		if d.console, err = opts.Console(d); err != nil {
			return nil, fmt.Errorf("console: %w", err)
		}
	}
	return d, nil
}

// readFile loads the config file and applies the overrides.
func (d *Daemon) readFile() (file, next *config.Config, err error) {
	data, err := os.ReadFile(d.path)
	if err != nil {
		return nil, nil, err
	}
	d.fileHash = sha256.Sum256(data)
	file, err = config.Parse(data, d.path)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", d.path, err)
	}
	if d.opts.Fleet != nil {
		if err := d.fleetFile(file); err != nil {
			return nil, nil, err
		}
	}
	for _, w := range file.Warnings() {
		d.log.Warn("config warning", "file", d.path, "warning", w)
	}
	next, err = effective(file, d.state.Overrides)
	if err != nil {
		return nil, nil, fmt.Errorf("%s with admin overrides: %w", d.path, err)
	}
	return file, next, nil
}

// evictionError refuses a change that would move subjects who are gray
// now back to stable, naming every cause.
func evictionError(cur, next *config.Config) error {
	errs := gray.Evictions(cur, next)
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("change would move gray subjects back to stable; to allow it, declare change: {rollback: true, reason: ...} in the config file (graymesh release: pass --rollback):\n%w", errors.Join(errs...))
}

// Reload re-reads the config file. A file that fails validation, or that
// would evict gray subjects without declaring a rollback, is refused and
// the config in force stays.
func (d *Daemon) Reload() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	file, next, err := d.readFile()
	if err == nil {
		err = d.apply(next, "file")
	}
	if err != nil {
		d.refused("file", err, next)
		return err
	}
	d.file = file
	return nil
}

// gate is the eviction gate: a change that would move gray subjects back
// to stable passes only when it declares a rollback.
func gate(cur, next *config.Config) error {
	if next.Change.Rollback {
		return nil
	}
	return evictionError(cur, next)
}

// apply puts next in force now, or at its effective_at. The caller holds mu.
func (d *Daemon) apply(next *config.Config, source string) error {
	cur := d.ext.Policy().Config
	if err := gate(cur, next); err != nil {
		return err
	}
	if d.stopPending != nil {
		d.stopPending()
		d.pending, d.stopPending = nil, nil
	}
	if at := next.EffectiveAt; at != nil && d.opts.Clock.Now().Before(*at) {
		// Every node holds the change until the same instant.
		if err := d.compiles(next); err != nil {
			return err
		}
		d.pending = next
		d.stopPending = d.opts.Clock.AfterFunc(at.Sub(d.opts.Clock.Now()), func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			if d.pending != next {
				return
			}
			d.pending, d.stopPending = nil, nil
			if err := d.put(next, source+" (effective_at)"); err != nil {
				d.refused(source+" (effective_at)", err, next)
			}
		})
		d.notePending(source, *at, cur, next)
		return nil
	}
	return d.put(next, source)
}

// compiles checks that next compiles, as a change held for its
// effective_at must before it is accepted.
func (d *Daemon) compiles(next *config.Config) error {
	_, err := gray.Compile(next, identity.WithSources(d.sources))
	return err
}

// notePending logs, reports in /status and records in the history a
// change accepted to take effect at at.
func (d *Daemon) notePending(source string, at time.Time, cur, next *config.Config, logAttrs ...any) {
	d.log.Info("change accepted; takes effect later", append([]any{"source", source, "effective_at", at.Format(time.RFC3339)}, logAttrs...)...)
	d.lastReload.Store(&reloadStatus{At: d.opts.Clock.Now(), Source: source, Result: "pending until " + at.Format(time.RFC3339), Version: cur.Version})
	d.recordChange("pending", source, cur, next, nil)
}

// put makes next the config in force: a new version when its content
// changed, compiled, pushed to Envoy, swapped into the decision path and
// persisted. The caller holds mu (or is New).
func (d *Daemon) put(next *config.Config, source string) error {
	hash := contentHash(next)
	version := d.state.Version
	if hash != d.state.ContentHash || version == 0 {
		version++
	}
	if d.opts.Fleet == nil {
		next.Version = strconv.Itoa(version)
	}
	p, err := gray.Compile(next, identity.WithSources(d.sources))
	if err != nil {
		return err
	}
	if err := d.xds.Update(p.Plan); err != nil {
		return err
	}
	d.analyser.receiver.SetPlan(p.Plan)
	d.state.Version, d.state.ContentHash, d.state.InForce = version, hash, next
	if err := d.state.save(d.opts.StateDir); err != nil {
		// Serving goes on; only the restart guarantees weaken.
		d.log.Error("saving state", "dir", d.opts.StateDir, "error", err)
	}
	var cur *config.Config
	if d.ext == nil {
		d.ext = extproc.New(p, d.log, d.metrics)
	} else {
		cur = d.ext.Policy().Config
		d.ext.Swap(p)
	}
	d.sources.Retain(p.Verifier)
	d.recordChange("accepted", source, cur, next, nil)
	d.metrics.reloads.WithLabelValues("accepted").Inc()
	d.metrics.setVersion(next.Version)
	d.lastReload.Store(&reloadStatus{At: d.opts.Clock.Now(), Source: source, Result: "accepted", Version: next.Version, Reason: next.Change.Reason})
	d.log.Info("config in force", "source", source, "config_version", next.Version, "content_hash", hash, "reason", next.Change.Reason)
	d.analyser.configChanged()
	return nil
}

// refused records a refused change; next is the config refused, when it
// got as far as being read.
func (d *Daemon) refused(source string, err error, next *config.Config) {
	d.metrics.reloads.WithLabelValues("refused").Inc()
	inForce := ""
	if d.ext != nil {
		inForce = d.ext.Policy().Config.Version
	}
	d.lastReload.Store(&reloadStatus{At: d.opts.Clock.Now(), Source: source, Result: "refused", Error: err.Error(), Version: inForce})
	d.log.Error("config refused; the config in force stays", "source", source, "file", d.path, "version_in_force", inForce, "error", err)
	var cur *config.Config
	if d.ext != nil {
		cur = d.ext.Policy().Config
	}
	d.recordChange("refused", source, cur, next, err)
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
		data, err := os.ReadFile(d.path)
		if err != nil {
			continue
		}
		sum := sha256.Sum256(data)
		d.mu.Lock()
		changed := sum != d.fileHash
		d.mu.Unlock()
		switch {
		case !changed:
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
	cfg := d.ext.Policy().Config
	if !d.adminOpen {
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
	d.analyser.receiver.Register(extGRPC)
	xdsGRPC := grpc.NewServer(grpc.KeepaliveEnforcementPolicy(envoyKeepalive))
	d.xds.Register(xdsGRPC)
	admin := &http.Server{Handler: d.adminHandler(), ReadHeaderTimeout: 5 * time.Second}

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
	g.Go(func() error { d.analyser.run(gctx); return nil })
	g.Go(func() error { d.runConsole(gctx); return nil })
	d.ready.Store(true)
	extHealth.SetServingStatus("", healthgrpc.HealthCheckResponse_SERVING)
	extHealth.SetServingStatus(extprocsvcv3.ExternalProcessor_ServiceDesc.ServiceName, healthgrpc.HealthCheckResponse_SERVING)
	d.log.Info("serving",
		"extproc", extLis.Addr().String(), "xds", xdsLis.Addr().String(), "admin", adminLis.Addr().String(),
		"config", d.path, "config_version", cfg.Version)

	g.Go(func() error {
		<-gctx.Done()
		d.ready.Store(false)
		extHealth.Shutdown()
		d.log.Info("draining", "timeout", d.opts.DrainTimeout)
		// Access-log streams last as long as Envoy: end them, or the
		// graceful stop would wait for the drain timeout.
		d.analyser.receiver.Close()
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
func (d *Daemon) Config() *config.Config { return d.ext.Policy().Config }
