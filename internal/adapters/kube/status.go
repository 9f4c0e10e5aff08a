package kube

import (
	"context"
	"encoding/json"
	"reflect"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/graymesh/graymesh/api/v1alpha1"
	"github.com/graymesh/graymesh/internal/contract/config"
)

// Leader election timing, client-go's usual values: a writer that died is
// replaced within LeaseDuration; status is never on the kill path, so a
// few seconds without a writer only delay the conditions.
const (
	leaseDuration = 15 * time.Second
	renewDeadline = 10 * time.Second
	retryPeriod   = 2 * time.Second
	// statusEvery bounds how stale the status is on the writer, and how
	// often it writes one object's status.
	statusEvery = 2 * time.Second
	// LeaseName is the Lease the nodes elect the status writer with.
	LeaseName = "graymesh-status-writer"
)

// RunStatusWriter takes part in the election of the one node that writes
// every GrayRelease's status (so 50 nodes never race on one status) and,
// while elected, writes it from this node's outcome: Accepted with the
// reason, the accepted generation and spec, the percentage in force and
// the fleet version. It returns when ctx is done.
func (s *Source) RunStatusWriter(ctx context.Context, identity string) error {
	coord, err := coordinationv1.NewForConfig(s.client.Config)
	if err != nil {
		return err
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: LeaseName, Namespace: s.client.Namespace},
		Client:     coord,
		LockConfig: resourcelock.ResourceLockConfig{Identity: identity},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: lock, LeaseDuration: leaseDuration, RenewDeadline: renewDeadline, RetryPeriod: retryPeriod,
			ReleaseOnCancel: true, Name: LeaseName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					s.log.Info("elected status writer", "identity", identity)
					s.startElectedDuties(ctx)
					s.writeStatusLoop(ctx, coord.Leases(s.client.Namespace))
				},
				OnStoppedLeading: func() { s.log.Info("no longer the status writer", "identity", identity) },
			},
		})
		if err != nil {
			return err
		}
		le.Run(ctx) // returns when leadership is lost; stand again
	}
	return nil
}

// writeStatusLoop looks at the status every statusEvery and after every
// pass, and writes a release's status only when its content changed and
// at most once per minStatusGap per object: a status write is an event on
// every node's watch, and the leader's own write comes back as a pass, so
// without the limit node reports arriving one by one as the fleet
// converges would each become one, round trip after round trip.
func (s *Source) writeStatusLoop(ctx context.Context, leases coordinationv1.LeaseInterface) {
	inf := reportInformer(leases)
	reported := make(chan struct{}, 1)
	poke := func(any) {
		select {
		case reported <- struct{}{}:
		default:
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: poke, UpdateFunc: func(_, n any) { poke(n) }})
	go inf.Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return
	}
	t := time.NewTicker(statusEvery)
	defer t.Stop()
	written := map[types.UID]time.Time{}
	firstSeen := map[types.UID]sighting{}
	for {
		reports := cachedReports(inf)
		if err := s.keepFleetVersion(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("keeping the fleet version's record of deleted GrayReleases", "error", err)
		}
		now := time.Now()
		for _, u := range s.objects() {
			seen := sightingOf(firstSeen[u.GetUID()], u.GetGeneration(), now)
			firstSeen[u.GetUID()] = seen
			if !statusDue(written[u.GetUID()], now) || !generationSettled(u, seen, reports, now) {
				continue // the tick comes back for it
			}
			wrote, err := s.writeStatus(ctx, u, reports)
			if err != nil && ctx.Err() == nil {
				s.log.Warn("writing GrayRelease status", "release", u.GetName(), "error", err)
			}
			if wrote {
				written[u.GetUID()] = now
			}
		}
		forgetWritten(written, s.objects())
		forgetWritten(firstSeen, s.objects())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.passed:
		case <-reported:
			// A report moved: the fleet may have converged on a held
			// generation. Reports come by the thousand after a change,
			// so look again at most once per reportLook.
			select {
			case <-ctx.Done():
				return
			case <-time.After(reportLook):
			}
		}
	}
}

// reportLook is how often at most the writer looks at the status again
// because node reports moved (each look reads every report from the cache).
const reportLook = 250 * time.Millisecond

// minStatusGap is the least time between two status writes of one
// object: a little under statusEvery, so the tick after a write (which
// comes statusEvery after the round that wrote, less that round's own
// duration) finds the object due.
const minStatusGap = statusEvery * 3 / 4

// statusDue reports whether an object whose status was last written at
// last may be written again at now.
func statusDue(last, now time.Time) bool {
	return now.Sub(last) >= minStatusGap
}

// statusSettle is how long the writer holds the first status of a new
// generation while the fleet's reports still come in. The change is a
// watch event for every node; a status write during that fan-out is a
// second one for every node, sent by the same API server at the same
// moment, and it would only say that some nodes have not caught up yet.
const statusSettle = statusEvery

// sighting is when the writer first saw an object at a generation.
type sighting struct {
	gen int64
	at  time.Time
}

// sightingOf is the sighting of generation gen at now: last when it is
// that generation's.
func sightingOf(last sighting, gen int64, now time.Time) sighting {
	if last.gen == gen && !last.at.IsZero() {
		return last
	}
	return sighting{gen: gen, at: now}
}

// generationSettled reports whether u's status may say something about
// its current generation at now: the status shows it already (later
// writes are rate-limited by statusDue), every live report has decided
// on it, or statusSettle has passed since the writer first saw it.
func generationSettled(u *unstructured.Unstructured, seen sighting, reports []nodeReport, now time.Time) bool {
	observed, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	if observed == u.GetGeneration() || now.Sub(seen.at) >= statusSettle {
		return true
	}
	return len(reports) > 0 && everyNodeDecided(reports, u.GetName(), u.GetGeneration())
}

// everyNodeDecided reports whether every report has generation gen of
// release name in force or refused.
func everyNodeDecided(reports []nodeReport, name string, gen int64) bool {
	for _, r := range reports {
		if r.Accepted[name] != gen && r.Refused[name].Gen != gen {
			return false
		}
	}
	return true
}

// forgetWritten drops the entries of objects no longer listed.
func forgetWritten[T any](written map[types.UID]T, objs []*unstructured.Unstructured) {
	listed := make(map[types.UID]bool, len(objs))
	for _, u := range objs {
		listed[u.GetUID()] = true
	}
	for uid := range written {
		if !listed[uid] {
			delete(written, uid)
		}
	}
}

// writeStatus patches u's status when this node's outcome for its current
// generation differs from what the status says; true when it did.
func (s *Source) writeStatus(ctx context.Context, u *unstructured.Unstructured, reports []nodeReport) (bool, error) {
	gr, err := fromUnstructured(u)
	if err != nil {
		return false, err
	}
	want, ok := s.desiredStatus(gr)
	if ok && reports != nil {
		want.Nodes = nodesServing(reports, gr.Name, want.AcceptedGeneration)
		tallyNodes(&want, reports, gr.Name, gr.Generation, gr.Status.Conditions)
	}
	if !ok || sameStatus(gr.Status, want) {
		return false, nil
	}
	b, err := json.Marshal(map[string]any{"status": want})
	if err != nil {
		return false, err
	}
	_, err = s.client.Resource().Patch(ctx, gr.Name, types.MergePatchType, b, metav1.PatchOptions{FieldManager: "graymesh"}, "status")
	return err == nil, err
}

// desiredStatus is gr's status from this node's outcome; false while this
// node has not yet decided on gr's current generation.
func (s *Source) desiredStatus(gr *v1alpha1.GrayRelease) (v1alpha1.GrayReleaseStatus, bool) {
	s.mu.Lock()
	acc, accepted := s.accepted[gr.Name]
	ref, refused := s.refused[gr.Name]
	s.mu.Unlock()
	og := objGen{uid: gr.UID, gen: gr.Generation}
	st := gr.Status
	st.ObservedGeneration = gr.Generation
	st.Version = s.versionWith("", objGen{})
	cond := metav1.Condition{Type: CondAccepted, ObservedGeneration: gr.Generation}
	switch {
	case refused && ref.objGen == og:
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, "Refused", truncateUTF8(ref.err.Error(), 32000)
	case accepted && acc == og:
		cond.Status, cond.Reason, cond.Message = metav1.ConditionTrue, "InForce", "graymesh put this generation in force"
		spec := gr.Spec
		st.AcceptedGeneration, st.AcceptedSpec = gr.Generation, &spec
		if rel, err := Release(gr.Name, &spec); err == nil {
			st.State, st.Percent = rel.State, percentInForce(&rel, time.Now())
			if rel.State == config.StateKilled {
				st.Percent = 0
			}
		}
	default:
		return st, false
	}
	cond.LastTransitionTime = metav1.Now()
	for _, c := range gr.Status.Conditions {
		if c.Type == CondAccepted && c.Status == cond.Status {
			cond.LastTransitionTime = c.LastTransitionTime
		}
	}
	st.Conditions = []metav1.Condition{cond}
	return st, true
}

// sameStatus compares statuses as JSON, the form they are stored in.
func sameStatus(a, b v1alpha1.GrayReleaseStatus) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	var x, y any
	_ = json.Unmarshal(ja, &x)
	_ = json.Unmarshal(jb, &y)
	return reflect.DeepEqual(x, y)
}
