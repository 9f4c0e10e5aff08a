package e2e

import (
	"context"
	"strconv"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/graymesh/graymesh/internal/adapters/kube"
)

// releaseEvent is one event a watch of the GrayReleases delivered, as a
// node's watch receives it.
type releaseEvent struct {
	Type, Name string
	Generation int64
	// Version and Nodes are the object's status.version and status.nodes.
	Version, Nodes string
}

// recordReleaseEvents watches namespace graymesh's GrayReleases from now,
// as a node's watch does, until the returned stop is called; stop returns
// the events in the order they arrived.
func (k *kubeCP) recordReleaseEvents(t *testing.T) (stop func() []releaseEvent) {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", k.kubeconfig)
	must(t, err)
	dyn, err := dynamic.NewForConfig(cfg)
	must(t, err)
	res := dyn.Resource(kube.GVR).Namespace("graymesh")
	ctx, cancel := context.WithCancel(context.Background())
	list, err := res.List(ctx, metav1.ListOptions{})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	w, err := res.Watch(ctx, metav1.ListOptions{ResourceVersion: list.GetResourceVersion()})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		events []releaseEvent
		done   = make(chan struct{})
	)
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			u, ok := ev.Object.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			version, _, _ := unstructured.NestedString(u.Object, "status", "version")
			nodes, _, _ := unstructured.NestedString(u.Object, "status", "nodes")
			mu.Lock()
			events = append(events, releaseEvent{Type: string(ev.Type), Name: u.GetName(), Generation: u.GetGeneration(), Version: version, Nodes: nodes})
			mu.Unlock()
		}
	}()
	return func() []releaseEvent {
		w.Stop()
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return events
	}
}

// splitSpecAndStatus counts, of events on one object whose generation was
// gen before them, those that carried a new generation (a spec change)
// and those that did not (a status or metadata write).
func splitSpecAndStatus(events []releaseEvent, gen int64) (spec, status int) {
	for _, ev := range events {
		if ev.Generation != gen {
			spec++
			gen = ev.Generation
		} else {
			status++
		}
	}
	return spec, status
}

// versionRegressions are the events whose status.version is lower than an
// earlier event's.
func versionRegressions(events []releaseEvent) []releaseEvent {
	var out []releaseEvent
	high := int64(-1)
	for _, ev := range events {
		v, err := strconv.ParseInt(ev.Version, 10, 64)
		if err != nil {
			continue // no status yet
		}
		if v < high {
			out = append(out, ev)
		}
		high = max(high, v)
	}
	return out
}
