package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/graymesh/graymesh/internal/core/analysis"
	"github.com/graymesh/graymesh/internal/runtime/analyser"
	"github.com/graymesh/graymesh/internal/runtime/control"
)

// The fleet's analysis travels through two kinds of ConfigMap
// (docs/analysis.md, "Fleet"):
//
//   - graymesh-evidence-NODE, one per node, written by that node only:
//     per analysed release, its evidence of the last aligned windows
//     (counts, the latency histogram's non-empty buckets, the callers'
//     HyperLogLog registers, route groups). One update per node and
//     window; the fleet analyser reads them all with one LIST a window.
//   - graymesh-analysis-RELEASE, one per analysed release, written by the
//     fleet analyser only, each write preconditioned on the
//     resourceVersion it read: the rollout's sequential test, the last
//     window judged, the action under way and the window records, which
//     every node's `graymesh analysis` and console show.
const (
	evidenceLabel  = "graymesh.io/analysis-evidence"
	analysisLabel  = "graymesh.io/analysis-state"
	annNode        = "graymesh.io/node"
	stateKey       = "state"
	evidencePrefix = "graymesh-evidence-"
	analysisPrefix = "graymesh-analysis-"
	// evidenceRetention is how long a node keeps a window's evidence in
	// its ConfigMap: long enough for a new analyser to be elected
	// (leaseDuration) and judge the windows its predecessor left.
	evidenceRetention = 4 * leaseDuration
	// minEvidenceWindows are kept whatever their age; maxEvidenceBytes
	// bounds one release's entry (a ConfigMap holds at most 1 MiB).
	minEvidenceWindows = 2
	maxEvidenceBytes   = 256 << 10
	// reportingWindows: a node whose newest evidence of a release is this
	// many windows old or less counts as reporting it.
	reportingWindows = 3
)

// objectName is prefix+name as a valid object name.
func objectName(prefix, name string) string {
	n := prefix + strings.ToLower(name)
	if errs := validation.IsDNS1123Subdomain(n); len(errs) > 0 {
		n = fmt.Sprintf("%s%x", prefix, name)
	}
	return n
}

// windowEvidence is one window of one node, as its ConfigMap holds it.
type windowEvidence struct {
	Index    int64              `json:"index"`
	Evidence *analysis.Evidence `json:"evidence"`
}

// FleetAnalysis is the node side in Kubernetes mode: the runner publishes
// its evidence here and reads the fleet analyser's windows
// (analyser.FleetNode).
type FleetAnalysis struct {
	cms      corev1client.ConfigMapInterface
	identity string

	mu sync.Mutex
	// last is this node's evidence ConfigMap as last written: the next
	// window is one update with its resourceVersion, no read first.
	last *corev1.ConfigMap
}

var _ analyser.FleetNode = (*FleetAnalysis)(nil)

// NewFleetAnalysis is node identity's side of the fleet analysis.
func NewFleetAnalysis(c *Client, identity string) (*FleetAnalysis, error) {
	core, err := corev1client.NewForConfig(c.Config)
	if err != nil {
		return nil, err
	}
	return &FleetAnalysis{cms: core.ConfigMaps(c.Namespace), identity: identity}, nil
}

// PublishEvidence implements analyser.FleetNode: one update of the node's
// ConfigMap (two after a conflict or at the first window).
func (f *FleetAnalysis) PublishEvidence(ctx context.Context, release string, index int64, e *analysis.Evidence) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for attempt := 0; ; attempt++ {
		cm := f.last
		if cm == nil {
			var err error
			if cm, err = f.read(ctx); err != nil {
				return err
			}
		}
		cm = cm.DeepCopy()
		entry, err := withWindow(cm.Data[release], index, e, time.Now())
		if err != nil {
			return err
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[release] = entry
		if cm.ResourceVersion == "" {
			f.last, err = f.cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: "graymesh"})
		} else {
			f.last, err = f.cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: "graymesh"})
		}
		if err == nil {
			return nil
		}
		f.last = nil
		retry := apierrors.IsConflict(err) || apierrors.IsNotFound(err) || apierrors.IsAlreadyExists(err)
		if attempt > 0 || !retry {
			return err
		}
	}
}

// read is the node's evidence ConfigMap, a new one when it has none.
func (f *FleetAnalysis) read(ctx context.Context) (*corev1.ConfigMap, error) {
	name := objectName(evidencePrefix, f.identity)
	cm, err := f.cms.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name,
			Labels:      map[string]string{evidenceLabel: "true", "app.kubernetes.io/part-of": "graymesh"},
			Annotations: map[string]string{annNode: f.identity}}}, nil
	}
	return cm, err
}

// withWindow is a release's entry with window index added, windows past
// their retention dropped.
func withWindow(entry string, index int64, e *analysis.Evidence, now time.Time) (string, error) {
	var ws []windowEvidence
	if entry != "" {
		_ = json.Unmarshal([]byte(entry), &ws) // an unreadable entry is replaced
	}
	kept := []windowEvidence{}
	for _, w := range ws {
		if w.Index != index && w.Evidence != nil && w.Evidence.Env == e.Env {
			kept = append(kept, w)
		}
	}
	kept = append(kept, windowEvidence{Index: index, Evidence: e})
	for len(kept) > minEvidenceWindows && now.Sub(kept[0].Evidence.To) > evidenceRetention {
		kept = kept[1:]
	}
	for {
		b, err := json.Marshal(kept)
		if err != nil || len(b) <= maxEvidenceBytes || len(kept) == 1 {
			return string(b), err
		}
		kept = kept[1:]
	}
}

// FleetWindows implements analyser.FleetNode: the records in the release's
// analysis ConfigMap.
func (f *FleetAnalysis) FleetWindows(ctx context.Context, release string) ([]analyser.Window, error) {
	st, err := loadState(ctx, f.cms, release)
	if err != nil || st == nil {
		return nil, err
	}
	return st.Windows, nil
}

func loadState(ctx context.Context, cms corev1client.ConfigMapInterface, release string) (*analyser.FleetState, error) {
	cm, err := cms.Get(ctx, objectName(analysisPrefix, release), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st analyser.FleetState
	if err := json.Unmarshal([]byte(cm.Data[stateKey]), &st); err != nil {
		return nil, fmt.Errorf("ConfigMap %s: %w", cm.Name, err)
	}
	st.Version = cm.ResourceVersion
	return &st, nil
}

// fleetStore is analyser.FleetStore on the API server: the releases from
// the source's watch, the evidence and state from the ConfigMaps.
type fleetStore struct {
	src *Source
	cms corev1client.ConfigMapInterface
}

var _ analyser.FleetStore = (*fleetStore)(nil)

func (s *fleetStore) Releases(context.Context) ([]analyser.FleetRelease, error) {
	var out []analyser.FleetRelease
	for _, u := range s.src.objects() {
		gr, err := fromUnstructured(u)
		if err != nil || u.GetDeletionTimestamp() != nil {
			continue
		}
		r, err := Release(gr.Name, &gr.Spec)
		if err != nil {
			continue // refused by every node: nothing in force to judge
		}
		out = append(out, analyser.FleetRelease{Release: r, Generation: gr.Generation})
	}
	return out, nil
}

// NodeEvidence lists every node's evidence ConfigMap (one LIST) and takes
// each one's window index of release.
func (s *fleetStore) NodeEvidence(ctx context.Context, release string, index int64) ([]*analysis.Evidence, int, error) {
	list, err := s.cms.List(ctx, metav1.ListOptions{LabelSelector: evidenceLabel + "=true"})
	if err != nil {
		return nil, 0, err
	}
	var out []*analysis.Evidence
	reporting := 0
	for i := range list.Items {
		var ws []windowEvidence
		if json.Unmarshal([]byte(list.Items[i].Data[release]), &ws) != nil || len(ws) == 0 {
			continue
		}
		if ws[len(ws)-1].Index >= index-reportingWindows {
			reporting++
		}
		for _, w := range ws {
			if w.Index == index && w.Evidence != nil {
				out = append(out, w.Evidence)
			}
		}
	}
	return out, reporting, nil
}

func (s *fleetStore) LoadState(ctx context.Context, release string) (*analyser.FleetState, error) {
	return loadState(ctx, s.cms, release)
}

// SaveState writes the state preconditioned on the resourceVersion it was
// read or last written as: a second analyser's write fails with 409.
func (s *fleetStore) SaveState(ctx context.Context, release string, st *analyser.FleetState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: objectName(analysisPrefix, release), ResourceVersion: st.Version,
		Labels:      map[string]string{analysisLabel: "true", "app.kubernetes.io/part-of": "graymesh"},
		Annotations: map[string]string{"graymesh.io/release": release}},
		Data: map[string]string{stateKey: string(b)}}
	var out *corev1.ConfigMap
	if st.Version == "" {
		out, err = s.cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: "graymesh-analysis"})
	} else {
		out, err = s.cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: "graymesh-analysis"})
	}
	switch {
	case apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err):
		return analyser.ErrStateMoved
	case err != nil:
		return err
	}
	st.Version = out.ResourceVersion
	return nil
}

// fleetActor is the Actor with the fleet analyser's name in every reason.
type fleetActor struct {
	*Actor
	identity string
}

func (a fleetActor) ActOnFleet(ctx context.Context, fa control.FleetAction) (string, error) {
	return a.actWithReason(ctx, fa, "fleet analysis by "+a.identity+": "+fa.Reason)
}

// NewFleetJudge is the fleet's one analyser, run by the one-per-fleet
// role (identity names it): it reads the releases from src's watch (src
// must be started) and the nodes' evidence from their ConfigMaps, and
// acts through a preconditioned patch of the GrayRelease. Its windows are
// counted on reg when not nil.
func NewFleetJudge(c *Client, src *Source, identity string, log *slog.Logger, reg prometheus.Registerer) (*analyser.FleetJudge, error) {
	core, err := corev1client.NewForConfig(c.Config)
	if err != nil {
		return nil, err
	}
	store := &fleetStore{src: src, cms: core.ConfigMaps(c.Namespace)}
	return analyser.NewFleetJudge(store, fleetActor{Actor: NewActor(c, identity), identity: identity}, identity, log, reg), nil
}

// WhileElected adds a duty the elected status writer runs, with a context
// that ends when it loses the election (call before RunStatusWriter).
func (s *Source) WhileElected(duty func(ctx context.Context)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.electedDuties = append(s.electedDuties, duty)
}

// startElectedDuties starts the duties of an elected writer.
func (s *Source) startElectedDuties(ctx context.Context) {
	s.mu.Lock()
	duties := append([]func(context.Context){}, s.electedDuties...)
	s.mu.Unlock()
	for _, d := range duties {
		go d(ctx)
	}
}
