package e2e

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/graymesh/graymesh/lanequeue"
)

// meshDemoKafkaPorts are scripts/run-mesh.sh's ports with
// GRAYMESH_DEMO_KAFKA=1: the mesh demo's and Kafka's and the notifiers'.
func meshDemoKafkaPorts() map[string]int {
	ports := meshDemoPorts()
	maps.Copy(ports, map[string]int{"KAFKA": 9092, "KAFKA_CONTROLLER": 9093, "NOTIFIER_STABLE": 9208, "NOTIFIER_GRAY": 9209})
	return ports
}

// TestMeshDemoKafkaKeepsEventsInTheirLane: `make run DEMO=mesh KAFKA=1`
// (scripts/run-mesh.sh with GRAYMESH_DEMO_KAFKA=1), every port moved,
// starts a real one-node Kafka, orders publishing an event per request
// and a stable and a gray notifier, and its banner names the notifiers'
// /consumed. alice's chains (gray) and carol's (stable, blacklisted) each
// leave one event, consumed once, by the notifier of the chain's
// environment.
func TestMeshDemoKafkaKeepsEventsInTheirLane(t *testing.T) {
	if _, _, err := findKafka(); err != nil {
		missingPart(t, err, "make kafka (or set KAFKA_HOME)")
	}
	d, ports := startMeshDemoWith(t, meshDemoKafkaPorts(), []string{"GRAYMESH_DEMO_KAFKA=1"},
		"work/kafka.log", "work/orders-gray.log", "work/notifier-stable.log", "work/notifier-gray.log")
	notifiers := map[string]string{}
	for _, env := range []string{lanequeue.Stable, "gray"} {
		notifiers[env] = fmt.Sprintf("http://127.0.0.1:%d", ports["NOTIFIER_"+strings.ToUpper(env)])
		if cmd := "curl -s " + notifiers[env] + "/consumed"; !strings.Contains(d.output(), cmd) {
			t.Errorf("the banner lacks %q:\n%s", cmd, d.output())
		}
	}
	// The script is up only once the stable notifier has seen the gray
	// one: from the first request on, gray's events are gray's.
	if c, err := getConsumed(notifiers[lanequeue.Stable]); err != nil || !c.GrayLive {
		t.Fatalf("the stable notifier, once the demo is up: gray live %v (%v)", c.GrayLive, err)
	}

	edge := &mesh{t: t, listener: fmt.Sprintf("http://127.0.0.1:%d", ports["FRONTEND_INBOUND"]), client: newClient(t)}
	tokens := map[string]string{"alice": d.token("alice"), "carol": d.token("carol")}
	want := map[string]string{} // trace id → the environment whose notifier consumes its event
	for i := range 6 {
		id, who, env := newTraceID(), "alice", "gray"
		if i%2 == 1 {
			who, env = "carol", lanequeue.Stable
		}
		body, err := edge.getBody(map[string]string{
			"traceparent": "00-" + id + "-" + id[:16] + "-01", "Authorization": "Bearer " + tokens[who],
		})
		must(t, err)
		if !strings.Contains(string(body), `"service":"orders","env":"`+env+`"`) || strings.Contains(string(body), "publish: ") {
			t.Fatalf("%s's chain, want orders %s and no publish error: %s", who, env, body)
		}
		want[id] = env
	}

	got := map[string][]string{} // trace id → the notifiers that consumed its event, as lanes
	waitFor(t, "every event consumed", 60*time.Second, func() error {
		clear(got)
		for env, url := range notifiers {
			c, err := getConsumed(url)
			if err != nil {
				return err
			}
			for _, r := range c.Records {
				got[r.Key] = append(got[r.Key], env+"/"+r.Lane)
			}
		}
		if len(got) < len(want) {
			return fmt.Errorf("%d of %d events consumed", len(got), len(want))
		}
		return nil
	})
	if len(got) != len(want) {
		t.Errorf("%d events consumed, want %d: %v", len(got), len(want), got)
	}
	for id, env := range want {
		if g := got[id]; len(g) != 1 || g[0] != env+"/"+env {
			t.Errorf("event of trace %s consumed as %v (notifier/lane), want once as %s/%s", id, g, env, env)
		}
	}
}
