package kube

import (
	"encoding/json"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// The fleet version must never go down, yet it is a sum of generations,
// and a deleted object takes its generation with it. The elected writer
// therefore records every deleted object's final generation in one
// fleet-wide ConfigMap before the object may go (a finalizer holds it
// until then), and every node adds the recorded generations to the sum.
const (
	// FleetConfigMap is the ConfigMap holding the deleted objects' record.
	FleetConfigMap = "graymesh-fleet"
	// fleetKey is its data key: a fleetRecord as JSON.
	fleetKey = "fleet-version"
	// Finalizer holds a deleted GrayRelease until its generation is
	// recorded.
	Finalizer = "graymesh.io/fleet-version"
	// tombstoneTTL is how long a deleted object keeps its own entry before
	// its generation is folded into the base: long enough for every
	// node's two watches to have delivered both the deletion and the entry.
	tombstoneTTL = 10 * time.Minute
	// compactedTTL is how long a folded UID stays listed, so a node that
	// saw the deletion but not the entry knows it is counted in the base.
	compactedTTL = time.Hour
)

// fleetRecord is the ConfigMap's content.
type fleetRecord struct {
	// Base is the sum of the generations of deleted objects folded in.
	Base int64 `json:"base"`
	// Tombstones is, per deleted object, its final generation.
	Tombstones map[types.UID]tombstone `json:"tombstones,omitempty"`
	// Compacted lists the UIDs folded into Base, and when.
	Compacted map[types.UID]time.Time `json:"compacted,omitempty"`
}

type tombstone struct {
	Generation int64     `json:"generation"`
	At         time.Time `json:"at"`
}

// parseRecord reads the ConfigMap's data; an absent or unreadable key is
// an empty record (nothing deleted yet, or a record to be rewritten).
func parseRecord(data map[string]string) fleetRecord {
	var r fleetRecord
	if s, ok := data[fleetKey]; ok {
		_ = json.Unmarshal([]byte(s), &r)
	}
	return r
}

// lists reports whether the record counts uid, in its own entry or in the
// base.
func (r fleetRecord) lists(uid types.UID) bool {
	_, t := r.Tombstones[uid]
	_, c := r.Compacted[uid]
	return t || c
}

// deletedSum is what deleted objects add to the fleet version: the base,
// every tombstone of an object no longer live (a live one still counts
// through its object: never twice), and every object this node saw
// deleted that the record does not list yet (its DELETE event and the
// ConfigMap's update come on two watches, in either order: without this
// the version would dip in between).
func deletedSum(live map[types.UID]bool, rec fleetRecord, gone map[types.UID]int64) int64 {
	sum := rec.Base
	for uid, t := range rec.Tombstones {
		if !live[uid] {
			sum += t.Generation
		}
	}
	for uid, g := range gone {
		if !live[uid] && !rec.lists(uid) {
			sum += g
		}
	}
	return sum
}

// merge adds the deletions in want (uid → final generation) that rec does
// not list, folds tombstones older than tombstoneTTL into the base and
// forgets folded UIDs after compactedTTL. It reports whether rec changed.
func (r *fleetRecord) merge(want map[types.UID]int64, now time.Time) bool {
	changed := false
	if r.Tombstones == nil {
		r.Tombstones = map[types.UID]tombstone{}
	}
	if r.Compacted == nil {
		r.Compacted = map[types.UID]time.Time{}
	}
	for uid, g := range want {
		if _, folded := r.Compacted[uid]; folded {
			continue
		}
		// A spec change of a deleting object raises its generation again:
		// the entry follows it up, never down.
		if t, ok := r.Tombstones[uid]; !ok || t.Generation < g {
			r.Tombstones[uid] = tombstone{Generation: g, At: now}
			changed = true
		}
	}
	for uid, t := range r.Tombstones {
		if now.Sub(t.At) >= tombstoneTTL {
			r.Base += t.Generation
			r.Compacted[uid] = now
			delete(r.Tombstones, uid)
			changed = true
		}
	}
	for uid, at := range r.Compacted {
		if now.Sub(at) >= compactedTTL {
			delete(r.Compacted, uid)
			changed = true
		}
	}
	return changed
}
