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
	go inf.Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return
	}
	t := time.NewTicker(statusEvery)
	defer t.Stop()
	written := map[types.UID]time.Time{}
	for {
		reports := cachedReports(inf)
		if err := s.keepFleetVersion(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("keeping the fleet version's record of deleted GrayReleases", "error", err)
		}
		now := time.Now()
		for _, u := range s.objects() {
			if !statusDue(written[u.GetUID()], now) {
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
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.passed:
		}
	}
}

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

// forgetWritten drops the write times of objects no longer listed.
func forgetWritten(written map[types.UID]time.Time, objs []*unstructured.Unstructured) {
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
