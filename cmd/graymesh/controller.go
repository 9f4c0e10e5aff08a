package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/graymesh/graymesh/internal/adapters/kube"
)

// controllerCmd runs graymesh controller: the one-per-fleet duties of
// Kubernetes mode, apart from the DaemonSet's data path.
func controllerCmd(args []string, _, stderr io.Writer) error {
	fs := newFlags("controller", `Usage: graymesh controller --config FILE [--kubeconfig FILE] [--namespace NS] [--identity NAME]

Kubernetes mode's controller (docs/kubernetes.md, "Roles"): run two
replicas as a Deployment. They elect one leader (the Lease
graymesh-status-writer), which writes every GrayRelease's status and
conditions from the node reports, keeps the fleet version's record and the
finalizer, and runs the fleet analysis on the nodes' evidence. The node
pods (graymesh serve --kube --kube-role=node) then only watch and report.

The controller checks each GrayRelease with the same config file and code
as the nodes, so the Accepted condition it writes is the nodes' verdict;
it serves no traffic. --listen serves /healthz, /readyz (the initial list
is checked) and /metrics.`, stderr)
	path := fs.String("config", "", "config file, the nodes' (required): the static settings every GrayRelease is checked with")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the pod's service account in a cluster)")
	namespace := fs.String("namespace", "", "namespace of the GrayRelease objects (default: the kubeconfig context's, or the pod's)")
	name := fs.String("identity", os.Getenv("POD_NAME"), "this replica's name in the leader election (default $POD_NAME, else the host name)")
	listen := fs.String("listen", "127.0.0.1:18090", "address of /healthz, /readyz and /metrics (empty: none)")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	format := fs.String("log-format", "json", "log format: json or text")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *path == "" {
		fs.Usage()
		return errUsage
	}
	log, err := newLogger(stderr, *level, *format)
	if err != nil {
		return err
	}
	id, err := nameOrHost(*name)
	if err != nil {
		return err
	}
	log = log.With("version", version, "controller", id)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return runController(ctx, controllerOptions{path: *path, kubeconfig: *kubeconfig, namespace: *namespace, identity: id, listen: *listen}, log)
}

// runController runs one replica (kube.RunController) and, on --listen,
// its probes and metrics.
func runController(ctx context.Context, o controllerOptions, log *slog.Logger) error {
	c, err := kube.Connect(o.kubeconfig, o.namespace)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	var ready atomic.Bool
	g, gctx := errgroup.WithContext(ctx)
	if o.listen != "" {
		ln, err := net.Listen("tcp", o.listen)
		if err != nil {
			return fmt.Errorf("--listen: %w", err)
		}
		g.Go(func() error { return serveControllerHTTP(gctx, ln, ready.Load, reg) })
	}
	g.Go(func() error {
		return kube.RunController(gctx, kube.ControllerOptions{Client: c, ConfigPath: o.path, Identity: o.identity,
			Registerer: reg, Synced: func() { ready.Store(true) }, Log: log})
	})
	return g.Wait()
}

type controllerOptions struct {
	path, kubeconfig, namespace, identity, listen string
}

// serveControllerHTTP serves the probes and metrics until ctx is done.
func serveControllerHTTP(ctx context.Context, ln net.Listener, synced func() bool, reg *prometheus.Registry) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !synced() {
			http.Error(w, "the initial list of GrayReleases is not checked yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
