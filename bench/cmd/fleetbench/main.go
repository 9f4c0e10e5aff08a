// Command fleetbench simulates a graymesh fleet in Kubernetes mode against
// a real etcd and kube-apiserver and writes what it measured to its
// section of bench/RESULTS.md (make bench-fleet).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"

	"github.com/graymesh/graymesh/bench/fleetbench"
	"github.com/graymesh/graymesh/bench/section"
)

func main() {
	var o fleetbench.Options
	flag.IntVar(&o.Nodes, "nodes", 100, "virtual nodes")
	flag.StringVar(&o.Design, "design", fleetbench.DesignController, "controller: node pods report only, two controller replicas write status; today: every pod stands for the status writer's election and heartbeats every 10 s")
	flag.DurationVar(&o.Rest, "rest", 60*time.Second, "how long the settled fleet idles while the API server's request rate is measured")
	flag.IntVar(&o.Kills, "kills", 3, "kill (then revive) rounds timed")
	flag.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "bound of every wait")
	flag.DurationVar(&o.RampEvery, "ramp-every", 3*time.Second, "time between the ramp's ten raises of the percentage (50 → 100)")
	flag.DurationVar(&o.RestartWindow, "restart-window", 30*time.Second, "how long requests are counted after kube-apiserver is ready again")
	flag.StringVar(&o.Work, "work", "bench/out/fleet", "working directory (control plane data)")
	flag.StringVar(&o.CRD, "crd", "manifests/crd/graymesh.io_grayreleases.yaml", "the GrayRelease CRD")
	out := flag.String("out", "bench/RESULTS.md", "file whose section fleet-DESIGN-NODES is rewritten (empty: print only)")
	profile := flag.String("kill-profile", "", "file that receives a CPU profile of the simulator during the kill rounds (empty: none)")
	flag.Parse()
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			fail(err)
		}
		defer f.Close()
		o.KillProfile = f
	}
	o.Logf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, "fleetbench: "+format+"\n", args...) }
	raiseOpenFiles()
	// client-go's leader election logs through klog on every attempt of
	// every virtual node; the harness reports what it measures instead.
	klog.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := os.RemoveAll(o.Work); err != nil {
		fail(err)
	}
	res, err := fleetbench.Run(ctx, o)
	if err != nil {
		fail(err)
	}
	var b strings.Builder
	res.Markdown(&b, strings.Join(append([]string{"bin/fleetbench"}, os.Args[1:]...), " "))
	fmt.Print(b.String())
	if *out == "" {
		return
	}
	doc, err := os.ReadFile(*out)
	if err != nil && !os.IsNotExist(err) {
		fail(err)
	}
	name := fmt.Sprintf("fleet-%s-%d", o.Design, o.Nodes)
	if err := os.WriteFile(*out, []byte(section.Replace(string(doc), name, b.String())), 0o644); err != nil {
		fail(err)
	}
}

// raiseOpenFiles lifts the soft limit of open files to the hard one: each
// virtual node holds its own connections to the API server.
func raiseOpenFiles() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "fleetbench:", err)
	os.Exit(1)
}
