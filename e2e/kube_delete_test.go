package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// versionWatch polls one node's x-gray-version and /status version until
// stopped, and fails the test the moment either goes below the highest
// it has seen.
type versionWatch struct {
	mu     sync.Mutex
	max    map[string]int64
	polls  int
	cancel context.CancelFunc
	done   sync.WaitGroup
}

func watchVersions(t *testing.T, nodes []*fleetNode) *versionWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &versionWatch{max: map[string]int64{}, cancel: cancel}
	for _, nd := range nodes {
		w.done.Add(1)
		go func() {
			defer w.done.Done()
			for ctx.Err() == nil {
				w.poll(t, nd)
			}
		}()
	}
	return w
}

// poll reads both versions once and checks them against the highest seen.
func (w *versionWatch) poll(t *testing.T, nd *fleetNode) {
	seen := map[string]string{}
	if r, err := nd.get("u1"); err == nil {
		seen[nd.name+" x-gray-version"] = r.Gray["x-gray-version"]
	}
	if st, err := nd.status(); err == nil {
		seen[nd.name+" /status config_version"] = fmt.Sprint(st["config_version"])
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.polls++
	for what, s := range seen {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Errorf("%s: %q", what, s)
			continue
		}
		if v < w.max[what] {
			t.Errorf("%s went down: %d after %d", what, v, w.max[what])
		}
		w.max[what] = max(w.max[what], v)
	}
}

func (w *versionWatch) stop() int {
	w.cancel()
	w.done.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.polls
}

// fleetRecord reads ConfigMap graymesh-fleet's record.
func (k *kubeCP) fleetRecord() (map[string]any, error) {
	b, err := k.do(http.MethodGet, "/api/v1/namespaces/graymesh/configmaps/graymesh-fleet", "", nil)
	if err != nil {
		return nil, err
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := json.Unmarshal(b, &cm); err != nil {
		return nil, err
	}
	var rec map[string]any
	return rec, json.Unmarshal([]byte(cm.Data["fleet-version"]), &rec)
}

// TestKubeDeleteKeepsVersionMonotonic: two releases; one is deleted.
// Polled all along, no node's x-gray-version or /status version ever goes
// down (the deletion raises the object's generation, and its final
// generation stays counted through the fleet record); all five agree
// afterwards; the deleted release serves nobody gray; a node restarted
// with an empty state directory computes the same version from its
// initial lists. A release created and deleted at once (perhaps before
// the writer added the finalizer) keeps it monotonic too.
//
//nolint:funlen // one fleet, one story
func TestKubeDeleteKeepsVersionMonotonic(t *testing.T) {
	k := startKube(t)
	k.installCRD()
	nodes := startFleet(t, k, fleetNodes)

	k.mustKubectl(grayRelease("checkout", "  env: gray\n  percent: 0\n"), "apply", "-f", "-")
	k.mustKubectl(grayRelease("search", "  env: gray\n  percent: 0\n"), "apply", "-f", "-")
	k.mustKubectl(grayRelease("checkout", "  env: gray\n  percent: 100\n"), "apply", "-f", "-")
	eachNode(t, "checkout at 100% (generation 2) + search (generation 1): version 3", nodes, func(nd *fleetNode) error { return nd.serves("u1", "gray", "3") })
	waitFor(t, "the writer's finalizer on both objects", 30*time.Second, func() error {
		for _, name := range []string{"checkout", "search"} {
			obj, err := k.release(name)
			if err != nil {
				return err
			}
			meta, _ := obj["metadata"].(map[string]any)
			if fins := fmt.Sprint(meta["finalizers"]); fins != "[graymesh.io/fleet-version]" {
				return fmt.Errorf("%s finalizers %s", name, fins)
			}
			if g := generation(obj); g != map[string]int64{"checkout": 2, "search": 1}[name] {
				return fmt.Errorf("%s generation %d: the finalizer moved it", name, g)
			}
		}
		return nil
	})

	w := watchVersions(t, nodes)
	k.mustKubectl("", "delete", "grayrelease", "checkout", "--wait=false")
	// Deleting raised checkout to generation 3: 3 + 1.
	eachNode(t, "deleted release serves nobody gray, version 4", nodes, func(nd *fleetNode) error { return nd.serves("u1", "stable", "4") })
	waitFor(t, "checkout gone, its generation in the fleet record", 30*time.Second, func() error {
		if _, err := k.release("checkout"); err == nil {
			return fmt.Errorf("checkout still there")
		}
		rec, err := k.fleetRecord()
		if err != nil {
			return err
		}
		if tomb, _ := rec["tombstones"].(map[string]any); len(tomb) != 1 {
			return fmt.Errorf("record %v", rec)
		}
		return nil
	})
	eachNode(t, "every node at version 4 after the object is gone", nodes, func(nd *fleetNode) error {
		st, err := nd.status()
		if err != nil {
			return err
		}
		if st["config_version"] != "4" {
			return fmt.Errorf("%s: /status config_version %v", nd.name, st["config_version"])
		}
		return nd.serves("u1", "stable", "4")
	})

	// Created and deleted at once: whichever path it takes (finalizer or
	// not), the version goes up and every node agrees.
	k.mustKubectl(grayRelease("quick", "  env: gray\n  percent: 0\n"), "apply", "-f", "-")
	k.mustKubectl("", "delete", "grayrelease", "quick", "--wait=false")
	waitFor(t, "quick gone and recorded", 30*time.Second, func() error {
		if _, err := k.release("quick"); err == nil {
			return fmt.Errorf("quick still there")
		}
		rec, err := k.fleetRecord()
		if err != nil {
			return err
		}
		if tomb, _ := rec["tombstones"].(map[string]any); len(tomb) != 2 {
			return fmt.Errorf("record %v", rec)
		}
		return nil
	})
	var agreed string
	eachNode(t, "all five agree after quick", nodes, func(nd *fleetNode) error {
		r, err := nd.get("u1")
		if err != nil {
			return err
		}
		v := r.Gray["x-gray-version"]
		if agreed == "" || nodes[0] == nd {
			agreed = v
		}
		if n, _ := strconv.Atoi(v); n < 5 || v != agreed {
			return fmt.Errorf("%s at %s, node-0 at %s", nd.name, v, agreed)
		}
		return nil
	})
	t.Logf("version after quick: %s", agreed)
	if polls := w.stop(); polls < 20 {
		t.Errorf("only %d polls during the deletions", polls)
	}

	restarted := nodes[1]
	restarted.graymesh.kill()
	restarted.startGraymesh(filepath.Join(restarted.dir, "state-after-delete"))
	if err := restarted.serves("u1", "stable", agreed); err != nil {
		t.Fatalf("restarted node's first answer: %v", err)
	}
	t.Log(k.mustKubectl("", "get", "configmap", "graymesh-fleet", "-o", "jsonpath={.data}"))
}
