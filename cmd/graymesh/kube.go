package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"text/tabwriter"
	"time"

	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/graymesh/graymesh/internal/adapters/kube"
	"github.com/graymesh/graymesh/internal/runtime/daemon"
)

// kubeFlags select Kubernetes mode and the connection, as kubectl's.
type kubeFlags struct {
	enabled    *bool
	kubeconfig *string
	namespace  *string
	nodeName   *string
	role       *string
	heartbeat  *time.Duration
}

// Kubernetes-mode roles of graymesh serve (docs/kubernetes.md, "Roles").
const (
	// roleNode serves and reports only; a graymesh controller Deployment
	// writes status and runs the fleet analysis.
	roleNode = "node"
	// roleAll also stands for the status writer's election and runs the
	// fleet analysis while elected: one kind of process, for a few nodes.
	roleAll = "all"
)

func kubeServeFlags(fs *flag.FlagSet) kubeFlags {
	return kubeFlags{
		enabled:    fs.Bool("kube", false, "Kubernetes mode: releases are the GrayRelease objects of --namespace (the config file keeps the static settings)"),
		kubeconfig: fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the pod's service account in a cluster)"),
		namespace:  fs.String("namespace", "", "namespace of the GrayRelease objects (default: the kubeconfig context's, or the pod's)"),
		nodeName:   fs.String("node-name", os.Getenv("NODE_NAME"), "this node's name in its report (and in the status writer election with --kube-role=all) (default $NODE_NAME, else the host name)"),
		role: fs.String("kube-role", roleAll, "node: serve and report only, a graymesh controller writes status and runs the fleet analysis (the DaemonSet's role); "+
			"all: also stand for the status writer's election and run the fleet analysis while elected (no controller; a few nodes)"),
		heartbeat: fs.Duration("report-heartbeat", kube.ReportHeartbeat, "how often the node rewrites its report when nothing it serves changed (a change is reported at once); a report not renewed for three heartbeats is a node that is gone"),
	}
}

// nameOrHost is the node's (or controller's) name: the flag, else the host
// name.
func nameOrHost(name string) (string, error) {
	if name != "" {
		return name, nil
	}
	return os.Hostname()
}

func (k kubeFlags) on() bool { return *k.enabled }

// kubeReleaseFlags are graymesh release's Kubernetes-mode flags.
func kubeReleaseFlags(fs *flag.FlagSet) kubeFlags {
	return kubeFlags{
		enabled:    fs.Bool("kube", false, "patch the GrayRelease object through the Kubernetes API instead of one graymesh's admin API"),
		kubeconfig: fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)"),
		namespace:  fs.String("namespace", "", "namespace of the GrayRelease objects (default: the kubeconfig context's)"),
	}
}

// releaseKube runs graymesh release ACTION NAME --kube.
func releaseKube(k kubeFlags, action, name string, value float64, rollback bool, reason string, stdout io.Writer) error {
	c, err := kube.Connect(*k.kubeconfig, *k.namespace)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if action == "list" {
		list, err := c.Resource().List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSTATE\tPERCENT\tVERSION\tNODES\tACCEPTED")
		for _, u := range list.Items {
			st, _, _ := unstructured.NestedString(u.Object, "status", "state")
			pct, _, _ := unstructured.NestedFieldNoCopy(u.Object, "status", "percent")
			ver, _, _ := unstructured.NestedString(u.Object, "status", "version")
			nodes, _, _ := unstructured.NestedString(u.Object, "status", "nodes")
			fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\n", u.GetName(), st, pct, ver, nodes, kube.AcceptedOf(&u))
		}
		return tw.Flush()
	}
	if action == "percent" && value < 0 {
		return fmt.Errorf("percent needs --value")
	}
	u, err := kube.Act(ctx, c, name, action, value, rollback, reason)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "grayrelease/%s patched (generation %d): every node puts it in force from the watch\n", u.GetName(), u.GetGeneration())
	return nil
}

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
	if *k.role != roleNode && *k.role != roleAll {
		return fmt.Errorf("--kube-role %q: want %s or %s", *k.role, roleNode, roleAll)
	}
	identity, err := nameOrHost(*k.nodeName)
	if err != nil {
		return err
	}
	log = log.With("node", identity)
	src := kube.NewSource(c, log)
	// Runtime overrides are refused in this mode; only the fleet analysis
	// patches a GrayRelease's spec, and a node pod runs it only in role
	// all. The console's release page shows the fleet: status and node
	// reports.
	actor := kube.NewNodeActor(identity)
	if *k.role == roleAll {
		actor = kube.NewActor(c, identity)
	}
	opts.Fleet = kube.Fleet{Source: src, Actor: actor, FleetView: kube.NewFleetView(src)}
	// Nodes publish their analysis evidence; the fleet's one analyser —
	// the elected controller, or the elected node in role all — merges
	// it, judges and acts.
	if opts.FleetAnalysis, err = kube.NewFleetAnalysis(c, identity); err != nil {
		return err
	}
	d, err := daemon.New(ctx, path, opts, log)
	if err != nil {
		return err
	}
	if *k.role == roleAll {
		judge, err := kube.NewFleetJudge(c, src, identity, log, d.Registerer())
		if err != nil {
			return err
		}
		src.WhileElected(judge.Run)
	}
	if err := src.Start(ctx); err != nil {
		return err
	}
	src.Sync(d.Pipeline())
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.Run(gctx) })
	g.Go(func() error {
		return src.Serve(gctx, d.Pipeline(), kube.Duties{Identity: identity, Report: true, Heartbeat: *k.heartbeat, StatusWriter: *k.role == roleAll})
	})
	return g.Wait()
}
