package kube

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic/dynamicinformer"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
)

// configMaps is the ConfigMap resource.
var configMaps = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

// newFleetInformer watches the one ConfigMap FleetConfigMap: a field
// selector on metadata.name, which RBAC's resourceNames can authorise for
// list and watch (Kubernetes API docs, "Using RBAC Authorization":
// referring to resources by name).
func newFleetInformer(c *Client) cache.SharedIndexInformer {
	f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(c.Dynamic, 0, c.Namespace, func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", FleetConfigMap).String()
	})
	return f.ForResource(configMaps).Informer()
}

// keepFleetVersion is the status writer's share of the version's
// monotonicity: it records the final generation of every object being
// deleted (or deleted before it held a finalizer) in the fleet record,
// then lets the object go by removing the finalizer, and adds the
// finalizer to every object that lacks it. A failed step is retried on
// the next round of the writer loop.
func (s *Source) keepFleetVersion(ctx context.Context) error {
	objs := s.objects()
	want := s.deletions(objs)
	if len(want) > 0 || s.recordStale(time.Now()) {
		if err := s.writeRecord(ctx, s.core.ConfigMaps(s.client.Namespace), want); err != nil {
			return err
		}
	}
	for _, u := range objs {
		if err := s.keepFinalizer(ctx, u); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// deletions is uid → final generation of the deletions the record does
// not hold yet: objects being deleted under the finalizer, and objects
// this node saw go.
func (s *Source) deletions(objs []*unstructured.Unstructured) map[types.UID]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := map[types.UID]int64{}
	for _, u := range objs {
		t, ok := s.record.Tombstones[u.GetUID()]
		if u.GetDeletionTimestamp() != nil && slices.Contains(u.GetFinalizers(), Finalizer) && (!ok || t.Generation < u.GetGeneration()) {
			want[u.GetUID()] = u.GetGeneration()
		}
	}
	for uid, g := range s.gone {
		if !s.record.lists(uid) {
			want[uid] = g
		}
	}
	return want
}

// recordStale reports whether the record has entries to fold or forget.
func (s *Source) recordStale(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.record
	r.Tombstones, r.Compacted = mapsClone(r.Tombstones), mapsClone(r.Compacted)
	return r.merge(nil, now)
}

func mapsClone[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// writeRecord merges want into the ConfigMap as it is now in the API
// server; the update carries the resourceVersion read, so two writers
// (one losing its lease) never overwrite each other's entries.
func (s *Source) writeRecord(ctx context.Context, cms corev1client.ConfigMapInterface, want map[types.UID]int64) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cm, err := cms.Get(ctx, FleetConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: FleetConfigMap, Labels: map[string]string{"app.kubernetes.io/part-of": "graymesh"}}}
	} else if err != nil {
		return err
	}
	rec := parseRecord(cm.Data)
	if !rec.merge(want, time.Now()) {
		return nil
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	cm.Data = map[string]string{fleetKey: string(b)}
	if cm.ResourceVersion == "" {
		_, err = cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: "graymesh"})
	} else {
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: "graymesh"})
	}
	if err == nil {
		s.mu.Lock()
		s.record = rec
		s.mu.Unlock()
	}
	return err
}

// keepFinalizer adds the finalizer to a live object, or removes it from a
// deleting one whose generation the record holds. The patch carries the
// resourceVersion seen: an object changed since (a spec change while
// deleting raises its generation) is refused with a conflict and looked
// at again next round, so the finalizer never goes before the generation
// it goes with is recorded.
func (s *Source) keepFinalizer(ctx context.Context, u *unstructured.Unstructured) error {
	fins := u.GetFinalizers()
	has := slices.Contains(fins, Finalizer)
	var next []string
	switch {
	case u.GetDeletionTimestamp() == nil && !has:
		next = append(slices.Clone(fins), Finalizer)
	case u.GetDeletionTimestamp() != nil && has && s.recorded(u):
		next = slices.DeleteFunc(slices.Clone(fins), func(f string) bool { return f == Finalizer })
	default:
		return nil
	}
	b, err := json.Marshal(map[string]any{"metadata": map[string]any{"resourceVersion": u.GetResourceVersion(), "finalizers": next}})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = s.client.Resource().Patch(ctx, u.GetName(), types.MergePatchType, b, metav1.PatchOptions{FieldManager: "graymesh"})
	return err
}

// recorded reports whether the record holds u's current generation.
func (s *Source) recorded(u *unstructured.Unstructured) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.record.Tombstones[u.GetUID()]
	return ok && t.Generation >= u.GetGeneration()
}
