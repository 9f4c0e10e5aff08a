package kube

import (
	"strconv"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// node is one node's view in the tests: what it has in force and being
// deleted, the deletions it saw, and the record it last saw.
type node struct {
	accepted, deleting map[string]objGen
	gone               map[types.UID]int64
	record             fleetRecord
}

func (n node) version(t *testing.T) int64 {
	t.Helper()
	s := &Source{accepted: n.accepted, deleting: n.deleting, gone: n.gone, record: n.record}
	if s.accepted == nil {
		s.accepted = map[string]objGen{}
	}
	if s.deleting == nil {
		s.deleting = map[string]objGen{}
	}
	v, err := strconv.ParseInt(s.versionWith("", objGen{}), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestFleetVersionAcrossADeletion walks release b (generation 4) through
// its deletion on nodes that see the two watches in different orders, and
// on a node that starts afterwards: a (generation 2) stays. Every view
// must give the version the fleet agreed on, and none may go below the
// version before the deletion (6).
func TestFleetVersionAcrossADeletion(t *testing.T) {
	a := objGen{uid: "uid-a", gen: 2}
	b := objGen{uid: "uid-b", gen: 4}
	bDeleting := objGen{uid: "uid-b", gen: 5} // DELETE with the finalizer raised it
	at := time.Date(2026, 11, 28, 4, 0, 0, 0, time.UTC)
	rec := fleetRecord{Tombstones: map[types.UID]tombstone{"uid-b": {Generation: 5, At: at}}}
	folded := fleetRecord{Base: 5, Compacted: map[types.UID]time.Time{"uid-b": at.Add(tombstoneTTL)}}
	inForce := map[string]objGen{"a": a}
	tests := []struct {
		name string
		node node
		want int64
	}{
		{"before the deletion", node{accepted: map[string]objGen{"a": a, "b": b}}, 6},
		{"deleting: out of the policy, its raised generation counted", node{accepted: inForce, deleting: map[string]objGen{"b": bDeleting}}, 7},
		{"record arrives while the object is still listed: not counted twice", node{accepted: inForce, deleting: map[string]objGen{"b": bDeleting}, record: rec}, 7},
		{"DELETE seen before the record: held locally", node{accepted: inForce, gone: map[types.UID]int64{"uid-b": 5}}, 7},
		{"DELETE and record both seen: not counted twice", node{accepted: inForce, gone: map[types.UID]int64{"uid-b": 5}, record: rec}, 7},
		{"record seen, DELETE after (node pruned gone)", node{accepted: inForce, record: rec}, 7},
		{"restarted node: the initial lists only", node{accepted: inForce, record: rec}, 7},
		{"tombstone folded into the base", node{accepted: inForce, record: folded}, 7},
		{"folded while this node still holds its own entry: not counted twice", node{accepted: inForce, gone: map[types.UID]int64{"uid-b": 5}, record: folded}, 7},
		{"restarted after folding", node{accepted: inForce, record: folded}, 7},
		{"a release of the same name again: the old object's entry counts apart", node{accepted: map[string]objGen{"a": a, "b": {uid: "uid-b2", gen: 1}}, record: rec}, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.node.version(t); got != tt.want {
				t.Errorf("version %d, want %d", got, tt.want)
			}
			if got := tt.node.version(t); got < 6 {
				t.Errorf("version %d went below 6", got)
			}
		})
	}
}

// TestFleetRecordMerge: entries follow a generation up, never down;
// entries older than tombstoneTTL fold into the base; folded UIDs are
// listed for compactedTTL, and a deletion already folded is not added again.
func TestFleetRecordMerge(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 4, 0, 0, 0, time.UTC)
	var r fleetRecord
	if !r.merge(map[types.UID]int64{"x": 3, "y": 7}, t0) || r.Tombstones["x"].Generation != 3 {
		t.Fatalf("first merge: %+v", r)
	}
	if r.merge(map[types.UID]int64{"x": 2}, t0.Add(time.Minute)) || r.Tombstones["x"].Generation != 3 {
		t.Fatalf("a lower generation changed the entry: %+v", r)
	}
	if !r.merge(map[types.UID]int64{"x": 4}, t0.Add(time.Minute)) || r.Tombstones["x"].Generation != 4 {
		t.Fatalf("a higher generation did not: %+v", r)
	}
	// y is ten minutes old: folded; x (re-stamped a minute later) not yet.
	if !r.merge(nil, t0.Add(tombstoneTTL)) || r.Base != 7 || len(r.Tombstones) != 1 || !r.lists("y") {
		t.Fatalf("folding y: %+v", r)
	}
	if r.merge(map[types.UID]int64{"y": 7}, t0.Add(tombstoneTTL)) || r.Base != 7 {
		t.Fatalf("a folded deletion was added again: %+v", r)
	}
	sum := func(r fleetRecord) int64 { return deletedSum(nil, r, nil) }
	if got := sum(r); got != 11 {
		t.Fatalf("sum %d, want 11", got)
	}
	r.merge(nil, t0.Add(tombstoneTTL+time.Minute))
	if got := sum(r); got != 11 || r.Base != 11 {
		t.Fatalf("after folding x: sum %d, %+v", got, r)
	}
	r.merge(nil, t0.Add(tombstoneTTL+time.Minute+compactedTTL))
	if len(r.Compacted) != 0 || sum(r) != 11 {
		t.Fatalf("after forgetting folded UIDs: %+v", r)
	}
	if got := parseRecord(map[string]string{fleetKey: "not json"}); got.Base != 0 {
		t.Fatalf("unreadable record: %+v", got)
	}
}
