package main

import (
	"context"
	"flag"
	"log/slog"

	"golang.org/x/sync/errgroup"

	"github.com/graymesh/graymesh/daemon"
	"github.com/graymesh/graymesh/kube"
)

// kubeFlags select Kubernetes mode and the connection, as kubectl's.
type kubeFlags struct {
	enabled    *bool
	kubeconfig *string
	namespace  *string
}

func kubeServeFlags(fs *flag.FlagSet) kubeFlags {
	return kubeFlags{
		enabled:    fs.Bool("kube", false, "Kubernetes mode: releases are the GrayRelease objects of --namespace (the config file keeps the static settings)"),
		kubeconfig: fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the pod's service account in a cluster)"),
		namespace:  fs.String("namespace", "", "namespace of the GrayRelease objects (default: the kubeconfig context's, or the pod's)"),
	}
}

func (k kubeFlags) on() bool { return *k.enabled }

// serveKube runs the daemon with the GrayRelease objects as its releases:
// the daemon starts with none, the initial list is put in force before any
// listener opens (Envoy meanwhile keeps what it had, and the pod is not
// ready), then the watch feeds every change through the daemon's change
// path.
func serveKube(ctx context.Context, path string, opts daemon.Options, k kubeFlags, log *slog.Logger) error {
	c, err := kube.Connect(*k.kubeconfig, *k.namespace)
	if err != nil {
		return err
	}
	src := kube.NewSource(c, log)
	opts.Fleet = src
	d, err := daemon.New(ctx, path, opts, log)
	if err != nil {
		return err
	}
	if err := src.Start(ctx); err != nil {
		return err
	}
	src.Sync(d)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { src.Run(gctx, d); return nil })
	g.Go(func() error { return d.Run(gctx) })
	return g.Wait()
}
