package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/graymesh/graymesh/api/v1alpha1"
)

// TestReportCarriesRefusals: a node's report names the generations it
// refused with a shortened reason, and the writer reads them back per
// node; a node refusing nothing writes no refusal annotation at all.
func TestReportCarriesRefusals(t *testing.T) {
	leases := fake.NewClientset().CoordinationV1().Leases("graymesh")
	long := strings.Repeat("é", maxReportReason) // two bytes each: the cut must not split one
	a := &Source{log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		accepted: map[string]objGen{"search": {uid: "u2", gen: 2}},
		refused:  map[string]refusal{"checkout": {objGen: objGen{uid: "u1", gen: 4}, err: errors.New("release checkout: " + long)}}}
	b := &Source{log: a.log, accepted: map[string]objGen{"checkout": {uid: "u1", gen: 4}, "search": {uid: "u2", gen: 2}}, refused: map[string]refusal{}}
	ctx := context.Background()
	if _, err := a.report(ctx, leases, "node-a", time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.report(ctx, leases, "node-b", time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	l, err := leases.Get(ctx, reportName("node-b"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Annotations[annRefused]; ok {
		t.Errorf("node-b refuses nothing but reports %q", l.Annotations[annRefused])
	}
	reports, err := a.nodeReports(ctx, leases)
	if err != nil {
		t.Fatal(err)
	}
	if len(reports) != 2 || reports[0].Node != "node-a" || reports[1].Node != "node-b" {
		t.Fatalf("reports %+v, want node-a and node-b in order", reports)
	}
	ref := reports[0].Refused["checkout"]
	if ref.Gen != 4 || len(ref.Reason) > maxReportReason || !strings.HasPrefix(ref.Reason, "release checkout: é") || !strings.HasSuffix(ref.Reason, "é") {
		t.Errorf("node-a's refusal %+v: want generation 4 and the reason cut whole characters within %d bytes", ref, maxReportReason)
	}
	if reports[1].Accepted["checkout"] != 4 || len(reports[1].Refused) != 0 {
		t.Errorf("node-b's report %+v", reports[1])
	}
}

// TestTallyNodesRefusedOnSomeNodes: when other nodes refuse the
// generation the writer's node accepted, Accepted turns False, naming the
// refusing nodes (the first few, then a count) and the reason; the counts
// say how many nodes accepted and refused the current generation.
func TestTallyNodesRefusedOnSomeNodes(t *testing.T) {
	s := &Source{accepted: map[string]objGen{"checkout": {uid: "u1", gen: 4}}, refused: map[string]refusal{}}
	gr := &v1alpha1.GrayRelease{ObjectMeta: metav1.ObjectMeta{Name: "checkout", UID: types.UID("u1"), Generation: 4},
		Spec: v1alpha1.GrayReleaseSpec{Env: "gray", Percent: 10}}
	want, ok := s.desiredStatus(gr)
	if !ok || want.Conditions[0].Status != metav1.ConditionTrue {
		t.Fatalf("writer's own outcome: %+v %v", want, ok)
	}
	reports := []nodeReport{{Node: "node-0", Accepted: map[string]int64{"checkout": 4}}}
	for i := 1; i <= 7; i++ {
		reports = append(reports, nodeReport{Node: fmt.Sprintf("node-%d", i), Accepted: map[string]int64{"checkout": 3},
			Refused: map[string]reportedRefusal{"checkout": {Gen: 4, Reason: "membership moves alice back to stable"}}})
	}
	// A refusal of an older generation is history, not this one's.
	reports = append(reports, nodeReport{Node: "node-8", Accepted: map[string]int64{"checkout": 4},
		Refused: map[string]reportedRefusal{"other": {Gen: 4, Reason: "x"}}})
	tallyNodes(&want, reports, "checkout", 4, nil)
	if want.NodesAccepted != 2 || want.NodesRefused != 7 || len(want.RefusedBy) != maxRefusedBy || want.RefusedBy[0].Node != "node-1" {
		t.Fatalf("counts: accepted %d refused %d by %+v", want.NodesAccepted, want.NodesRefused, want.RefusedBy)
	}
	c := want.Conditions[0]
	if c.Status != metav1.ConditionFalse || c.Reason != ReasonRefusedOnNodes ||
		!strings.Contains(c.Message, "refused on 7 of 9 nodes (node-1, node-2, node-3, node-4, node-5 and 2 more)") ||
		!strings.Contains(c.Message, "membership moves alice back to stable") {
		t.Errorf("Accepted condition %+v", c)
	}

	// Every node accepting: the writer's condition stands.
	ok1, _ := s.desiredStatus(gr)
	tallyNodes(&ok1, reports[:1], "checkout", 4, nil)
	if ok1.Conditions[0].Status != metav1.ConditionTrue || ok1.NodesAccepted != 1 || ok1.NodesRefused != 0 || ok1.RefusedBy != nil {
		t.Errorf("all accepted: %+v", ok1)
	}
}

// TestParseReportStale: a report not renewed within the duration its node
// wrote (three heartbeats) is a node that is gone; one without a duration
// is judged by the default heartbeat's.
func TestParseReportStale(t *testing.T) {
	now := time.Now()
	defaultTTL := reportTTLBeats * ReportHeartbeat
	if _, ok := parseReport(leaseRenewed(now.Add(-defaultTTL-time.Second), 0), now); ok {
		t.Error("a stale report counted")
	}
	if r, ok := parseReport(leaseRenewed(now, 0), now); !ok || r.Node != "n1" || r.Accepted["checkout"] != 2 {
		t.Errorf("live report: %+v %v", r, ok)
	}
	if _, ok := parseReport(leaseRenewed(now.Add(-31*time.Second), 30), now); ok {
		t.Error("a report past the 30 s its node wrote counted")
	}
	if _, ok := parseReport(leaseRenewed(now.Add(-5*time.Minute), 360), now); !ok {
		t.Error("a report within the 6 minutes its node wrote did not count")
	}
}

func leaseRenewed(at time.Time, durationSeconds int32) *coordv1.Lease {
	id, rt := "n1", metav1.NewMicroTime(at)
	l := &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: reportName(id), Annotations: map[string]string{annAccepted: `{"checkout":2}`}},
		Spec: coordv1.LeaseSpec{HolderIdentity: &id, RenewTime: &rt}}
	if durationSeconds > 0 {
		l.Spec.LeaseDurationSeconds = &durationSeconds
	}
	return l
}

// TestViewNodes: the console's node list says, per node, the generation in
// force and any refusal of the release, and is bounded.
func TestViewNodes(t *testing.T) {
	var reports []nodeReport
	for i := range maxViewNodes + 3 {
		reports = append(reports, nodeReport{Node: fmt.Sprintf("n%03d", i), Accepted: map[string]int64{"checkout": 2}, Version: "9"})
	}
	reports[1].Refused = map[string]reportedRefusal{"checkout": {Gen: 3, Reason: "why"}}
	nodes, more := viewNodes(reports, "checkout")
	if len(nodes) != maxViewNodes || more != 3 {
		t.Fatalf("%d nodes, %d more", len(nodes), more)
	}
	if n := nodes[1]; n.Name != "n001" || n.Generation != 2 || n.Version != "9" || n.RefusedGeneration != 3 || n.Refused != "why" {
		t.Errorf("node %+v", n)
	}
}
