// Package fleetbench simulates a graymesh fleet in Kubernetes mode against
// a real etcd and kube-apiserver (internal/testing/kubeharness) and
// measures what it costs the API server and how fast a change reaches
// every node.
//
// Each virtual node is graymesh's own Kubernetes source (the informer on
// GrayRelease objects, the fleet version, the node report and, by design,
// the status writer's election) feeding graymesh's own change pipeline
// (gate, holds, compile) — the code of `graymesh serve --kube` without the
// xDS and ext_proc sinks, which serve Envoy and cost the API server
// nothing. Every virtual node has its own client and connections, as a
// pod has. Many run in one process.
package fleetbench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/graymesh/graymesh/internal/adapters/kube"
	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/identity"
	"github.com/graymesh/graymesh/internal/runtime/control"
	"github.com/graymesh/graymesh/internal/testing/kubeharness"
)

// Designs the simulator can run.
const (
	// DesignToday is every pod in role all: each stands for the status
	// writer's election and heartbeats its report every 10 s (graymesh
	// before the roles were split).
	DesignToday = "today"
	// DesignController is node pods in role node (reports on change, a
	// 2-minute heartbeat, no election) and two controller replicas.
	DesignController = "controller"
)

// Options of one run.
type Options struct {
	// Nodes is how many virtual nodes run.
	Nodes int
	// Design is DesignToday or DesignController.
	Design string
	// Rest is how long the fleet idles while the API server's request
	// rate is measured.
	Rest time.Duration
	// Kills is how many kill (then revive) rounds are timed.
	Kills int
	// Work holds the control plane's data and the config.
	Work string
	// CRD is the GrayRelease CRD file.
	CRD string
	// Timeout bounds every wait (nodes synced, a change in force).
	Timeout time.Duration
	// RampEvery is the time between the ramp's steps (default 3 s).
	RampEvery time.Duration
	// RestartWindow is how long requests are counted after kube-apiserver
	// is ready again (default 30 s).
	RestartWindow time.Duration
	// KillProfile, when set, receives a CPU profile of the simulator
	// (every virtual node and controller) during the kill rounds.
	KillProfile io.Writer
	// Logf reports progress.
	Logf func(format string, args ...any)
}

// Result is what one run measured.
type Result struct {
	Options
	// RampRates are the API server's requests per second during a ramp:
	// rampSteps raises of the percentage, RampEvery apart, per
	// verb and resource; RampSeconds how long it took.
	RampRates   []rate
	RampSeconds float64
	// RestRates are the API server's requests per second at rest, per
	// verb and resource, largest first.
	RestRates []rate
	// EventsPerChange and BytesPerChange are the GrayRelease watch events
	// the API server sent, and their bytes, per spec change (averaged over
	// the kill and revive changes).
	EventsPerChange, BytesPerChange float64
	// Kill is the time from the PATCH to each node having the kill in
	// force, over every node and round.
	Kill []time.Duration
	// Status is, per round, the time from the PATCH until the status says
	// every node serves the kill's generation.
	Status []time.Duration
	// Restart: after kube-apiserver is killed and started again, the time
	// from its start until it is ready and until every node's watch is
	// current again, the requests from its start until RestartWindow
	// after it was ready, and the largest rate between two one-second
	// samples.
	RestartReady       time.Duration
	RestartCurrent     time.Duration
	RestartRequests    float64
	RestartPeakPerSec  float64
	HeapPerNodeKiB     float64
	NodesSyncedAfter   time.Duration
	ControllerReplicas int
	// ControllersHeapKiB is what the two controller replicas added to the
	// heap once the status showed every node (controller design).
	ControllersHeapKiB float64
	// Failover (controller design): the leading controller is stopped the
	// way a rolling update stops it (its Lease released) and a spec change
	// lands at once; the time until the other replica holds the Lease and
	// until the status shows every node on the change, the status
	// versions seen meanwhile, and how many went down.
	FailoverLeader, FailoverStatus time.Duration
	FailoverVersions               []int64
	FailoverRegressions            int
}

// staticConfig is each node's static settings (Kubernetes mode's
// ConfigMap); its listeners are never opened: the pipeline has no sinks.
const staticConfig = `
server:
  extproc_listen: 127.0.0.1:1
  xds_listen: 127.0.0.1:2
  admin_listen: 127.0.0.1:3
mesh:
  listener_port: 4
identity:
  device_cookie: gm_device
services:
  - name: shop
    domains: ["*"]
    environments:
      stable: [127.0.0.1:5]
      gray: [127.0.0.1:6]
`

const release = "checkout"

// vnode is one virtual node.
type vnode struct {
	name string
	// stop ends the process: its watches, reports and, for a controller,
	// its election (the Lease released, as on a graceful shutdown).
	stop   context.CancelFunc
	src    *kube.Source
	pipe   atomic.Pointer[control.Pipeline]
	mu     sync.Mutex
	armed  bool
	killed time.Time
}

// changed is the pipeline's Changed hook: the first time the release is
// killed after arm, it notes the time.
func (n *vnode) changed() {
	p := n.pipe.Load()
	if p == nil {
		return
	}
	now := time.Now()
	killed := false
	for _, r := range p.Config().Releases {
		if r.Name == release && r.State == config.StateKilled {
			killed = true
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.armed && killed && n.killed.IsZero() {
		n.killed = now
	}
}

func (n *vnode) arm() {
	n.mu.Lock()
	n.armed, n.killed = true, time.Time{}
	n.mu.Unlock()
}

func (n *vnode) killedAt() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.killed
}

// Run runs one simulation.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Design != DesignToday && o.Design != DesignController {
		return nil, fmt.Errorf("design %q: want %s or %s", o.Design, DesignToday, DesignController)
	}
	bin, err := kubeharness.Find()
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, kubeharness.Install)
	}
	// Absolute: the kubeconfig names the API server's certificate by path.
	if o.Work, err = filepath.Abs(o.Work); err != nil {
		return nil, err
	}
	dir := filepath.Join(o.Work, "kube")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cp, err := kubeharness.Start(bin, dir, freePort)
	if err != nil {
		return nil, err
	}
	defer cp.Stop()
	if err := cp.InstallCRD(o.CRD); err != nil {
		return nil, err
	}
	cfg := filepath.Join(o.Work, "graymesh.yaml")
	if err := os.WriteFile(cfg, []byte(staticConfig), 0o600); err != nil {
		return nil, err
	}
	if out, err := cp.Kubectl(grayRelease("active"), "apply", "-f", "-"); err != nil {
		return nil, fmt.Errorf("create the release: %w\n%s", err, out)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res := &Result{Options: o}
	nodes, controllers, err := startFleet(ctx, cp, cfg, res)
	if err != nil {
		return nil, err
	}
	if err := measureRest(ctx, cp, res); err != nil {
		return nil, err
	}
	if err := measureKills(ctx, cp, nodes, res); err != nil {
		return nil, err
	}
	if err := measureRamp(ctx, cp, res); err != nil {
		return nil, err
	}
	if controllers != nil {
		if err := measureFailover(ctx, cp, controllers, res); err != nil {
			return nil, err
		}
	}
	if err := measureRestart(ctx, cp, nodes, res); err != nil {
		return nil, err
	}
	return res, nil
}

func grayRelease(state string) string {
	return "apiVersion: graymesh.io/v1alpha1\nkind: GrayRelease\nmetadata:\n  name: " + release +
		"\n  namespace: graymesh\nspec:\n  env: gray\n  percent: 50\n  state: " + state + "\n"
}

// freePort is a loopback port free now.
func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startProcess starts one virtual process (a node or a controller
// replica) of the design: its own client, source and pipeline.
func startProcess(ctx context.Context, cp *kubeharness.ControlPlane, cfg, name string, duties kube.Duties, errs chan<- error) (*vnode, error) {
	c, err := kube.Connect(cp.Kubeconfig, "graymesh")
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.DiscardHandler)
	ctx, stop := context.WithCancel(ctx)
	n := &vnode{name: name, stop: stop, src: kube.NewSource(c, log)}
	pipe, err := control.New(control.Options{
		Path:    cfg,
		Fleet:   kube.Fleet{Source: n.src, Actor: kube.NewNodeActor(name), FleetView: kube.NewFleetView(n.src)},
		Sources: identity.NewSources(log),
		Changed: n.changed,
		Log:     log,
	})
	if err != nil {
		return nil, err
	}
	n.pipe.Store(pipe)
	if err := n.src.Start(ctx); err != nil {
		stop()
		return nil, err
	}
	n.src.Sync(pipe)
	go func() {
		if err := n.src.Serve(ctx, pipe, duties); err != nil && ctx.Err() == nil {
			errs <- fmt.Errorf("%s: %w", name, err)
		}
	}()
	return n, nil
}

// startFleet starts the design's processes and waits until every node has
// the initial list in force.
func startFleet(ctx context.Context, cp *kubeharness.ControlPlane, cfg string, res *Result) (nodes, controllers []*vnode, err error) {
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	errs := make(chan error, res.Nodes+2)
	duties := kube.Duties{Report: true, Heartbeat: 10 * time.Second, StatusWriter: true}
	if res.Design == DesignController {
		duties = kube.Duties{Report: true, Heartbeat: kube.ReportHeartbeat}
	}
	t0 := time.Now()
	nodes = make([]*vnode, res.Nodes)
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	sem := make(chan struct{}, 32) // start-up concurrency, as a DaemonSet rolls pods out
	for i := range nodes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			d := duties
			d.Identity = fmt.Sprintf("node-%04d", i)
			n, err := startProcess(ctx, cp, cfg, d.Identity, d, errs)
			if err != nil {
				failed.Store(&err)
				return
			}
			nodes[i] = n
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		return nil, nil, *err
	}
	res.NodesSyncedAfter = time.Since(t0)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	res.HeapPerNodeKiB = (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / float64(res.Nodes) / 1024
	if res.Design == DesignController {
		for i := range 2 {
			name := fmt.Sprintf("controller-%d", i)
			c, err := startProcess(ctx, cp, cfg, name, kube.Duties{Identity: name, StatusWriter: true}, errs)
			if err != nil {
				return nil, nil, err
			}
			controllers = append(controllers, c)
		}
		res.ControllerReplicas = 2
	}
	res.logf("%d nodes (%s) synced in %s; heap %.0f KiB per node", res.Nodes, res.Design, res.NodesSyncedAfter.Round(time.Millisecond), res.HeapPerNodeKiB)
	select {
	case err := <-errs:
		return nil, nil, err
	default:
	}
	// The status says every node serves the release before the rest
	// period starts: the fleet is settled.
	if err := waitUntil(ctx, res.Timeout, "status of every node", func() (bool, error) {
		n, err := statusNodes(cp)
		return n == res.Nodes, err
	}); err != nil {
		return nil, nil, err
	}
	if controllers != nil {
		runtime.GC()
		var withControllers runtime.MemStats
		runtime.ReadMemStats(&withControllers)
		res.ControllersHeapKiB = (float64(withControllers.HeapAlloc) - float64(after.HeapAlloc)) / 1024
	}
	return nodes, controllers, nil
}

func (r *Result) logf(format string, args ...any) {
	if r.Logf != nil {
		r.Logf(format, args...)
	}
}

// waitUntil polls ok every 50 ms until it holds, ctx ends or timeout.
func waitUntil(ctx context.Context, timeout time.Duration, what string, ok func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		done, err := ok()
		if done {
			return nil
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s (last error: %w)", what, timeout, last)
		}
		if err := pause(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// statusNodes reads the release's status: how many nodes serve its
// current generation (0 until it is accepted and every live node serves
// it).
func statusNodes(cp *kubeharness.ControlPlane) (int, error) {
	b, err := cp.Do(http.MethodGet, "/apis/graymesh.io/v1alpha1/namespaces/graymesh/grayreleases/"+release, "", nil)
	if err != nil {
		return 0, err
	}
	var gr struct {
		Metadata struct {
			Generation int64 `json:"generation"`
		} `json:"metadata"`
		Status struct {
			Nodes              string `json:"nodes"`
			AcceptedGeneration int64  `json:"acceptedGeneration"`
		} `json:"status"`
	}
	if err := json.Unmarshal(b, &gr); err != nil {
		return 0, err
	}
	var n, of int
	if _, err := fmt.Sscanf(gr.Status.Nodes, "%d/%d", &n, &of); err != nil || n != of || gr.Status.AcceptedGeneration != gr.Metadata.Generation {
		return 0, nil // a status not written yet (or of a node not there yet) is "not yet"
	}
	return n, nil
}

func metricsPage(cp *kubeharness.ControlPlane) (string, error) {
	b, err := cp.Do(http.MethodGet, "/metrics", "", nil)
	return string(b), err
}

// Quantile is the q-quantile (nearest rank) of ds.
func Quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// Markdown writes the run as its section of bench/RESULTS.md.
func (r *Result) Markdown(w io.Writer, command string) {
	fmt.Fprintf(w, "## Fleet simulator: %d nodes, design %s\n\n", r.Nodes, r.Design)
	fmt.Fprintf(w, "`%s` — virtual nodes are graymesh's Kubernetes source, node report, election (by design) and change pipeline, one client each, against a real etcd + kube-apiserver %s on this machine (2 cores).\n\n", command, kubeharness.Version)
	fmt.Fprintf(w, "| measure | value |\n|---|---|\n")
	fmt.Fprintf(w, "| nodes synced after start | %s |\n", r.NodesSyncedAfter.Round(time.Millisecond))
	fmt.Fprintf(w, "| heap per virtual node | %.0f KiB |\n", r.HeapPerNodeKiB)
	fmt.Fprintf(w, "| API server requests at rest (%s) | %.1f/s |\n", r.Rest, total(r.RestRates))
	for _, rt := range r.RestRates {
		fmt.Fprintf(w, "| &nbsp;&nbsp;%s | %.1f/s |\n", rt.Request, rt.PerSec)
	}
	fmt.Fprintf(w, "| GrayRelease watch events per spec change | %.0f (%.1f MiB) |\n", r.EventsPerChange, r.BytesPerChange/(1<<20))
	if r.RampSeconds > 0 {
		fmt.Fprintf(w, "| API server requests during a ramp (percent 50 → 100 in %d steps %s apart, %.0fs) | %.1f/s |\n", rampSteps, r.RampEvery, r.RampSeconds, total(r.RampRates))
		for _, rt := range r.RampRates {
			fmt.Fprintf(w, "| &nbsp;&nbsp;%s | %.1f/s |\n", rt.Request, rt.PerSec)
		}
	}
	fmt.Fprintf(w, "| kill in force on every node, p50 / p99 / max (%d rounds × %d nodes) | %s / %s / %s |\n", r.Kills, r.Nodes,
		Quantile(r.Kill, 0.5).Round(time.Millisecond), Quantile(r.Kill, 0.99).Round(time.Millisecond), Quantile(r.Kill, 1).Round(time.Millisecond))
	var st []string
	for _, d := range r.Status {
		st = append(st, d.Round(100*time.Millisecond).String())
	}
	fmt.Fprintf(w, "| status shows %d/%d on the kill's generation, per round | %s |\n", r.Nodes, r.Nodes, strings.Join(st, ", "))
	if r.ControllerReplicas > 0 {
		fmt.Fprintf(w, "| heap of the two controller replicas | %.0f KiB |\n", r.ControllersHeapKiB)
		fmt.Fprintf(w, "| leading controller stopped (Lease released) and a spec change at once: the other leads after, status %d/%d on the change after | %s, %s |\n",
			r.Nodes, r.Nodes, r.FailoverLeader.Round(time.Millisecond), r.FailoverStatus.Round(time.Millisecond))
		fmt.Fprintf(w, "| &nbsp;&nbsp;status versions seen meanwhile, how many went down | %v, %d |\n", r.FailoverVersions, r.FailoverRegressions)
	}
	fmt.Fprintf(w, "| kube-apiserver killed and started again: ready after, every node current after | %s, %s |\n", r.RestartReady.Round(time.Millisecond), r.RestartCurrent.Round(time.Millisecond))
	fmt.Fprintf(w, "| &nbsp;&nbsp;requests from its start until %s after it was ready, peak rate (1 s samples) | %.0f, %.0f/s |\n", r.RestartWindow, r.RestartRequests, r.RestartPeakPerSec)
}
