package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	coordv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/watch"
	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/cache"
)

// Each node reports what it serves in a small Lease of its own (one write
// per node per change, plus a heartbeat), never in the GrayRelease: the
// elected writer reads the reports and aggregates them into each
// GrayRelease's status.nodes.
const (
	// reportLabel selects the node reports.
	reportLabel = "graymesh.io/node-report"
	// annAccepted holds the report: release → generation in force.
	annAccepted = "graymesh.io/accepted-generations"
	annVersion  = "graymesh.io/version"
	// annRefused holds release → generation refused and why (absent when
	// the node refuses nothing); a reason is cut to maxReportReason bytes
	// so the report stays a small object however long graymesh's
	// explanation is.
	annRefused      = "graymesh.io/refused-generations"
	maxReportReason = 300
	// ReportHeartbeat is the default heartbeat: a node rewrites its
	// report on every change of what it serves and, when nothing changes,
	// once per heartbeat. A report not renewed within reportTTLBeats
	// heartbeats (the Lease's own leaseDurationSeconds, written by the
	// node) is a node that is gone.
	ReportHeartbeat = 2 * time.Minute
	reportTTLBeats  = 3
)

// reportName is the node report's Lease name for identity.
func reportName(identity string) string {
	n := "graymesh-node-" + strings.ToLower(identity)
	if errs := validation.IsDNS1123Subdomain(n); len(errs) > 0 || len(n) > 253 {
		n = fmt.Sprintf("graymesh-node-%x", identity)
	}
	return n
}

// RunReporter keeps this node's report current: after every pass that
// changed what it serves and once per heartbeat. It returns when ctx is
// done.
func (s *Source) RunReporter(ctx context.Context, identity string, heartbeat time.Duration) error {
	if heartbeat <= 0 {
		heartbeat = ReportHeartbeat
	}
	coord, err := coordinationv1.NewForConfig(s.client.Config)
	if err != nil {
		return err
	}
	leases := coord.Leases(s.client.Namespace)
	t := time.NewTicker(heartbeat)
	defer t.Stop()
	last, beat := "", true
	var written *coordv1.Lease
	for {
		// A pass that changed nothing this node serves (a status write,
		// another node's report) writes nothing; the heartbeat always does.
		cur := s.reportContent()
		if !beat && cur != last {
			// The change that moved this report reached every node at
			// once: spread the fleet's writes over reportSpread, and
			// fold in whatever else changes meanwhile.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(reportDelay(rand.Float64())):
			}
			cur = s.reportContent()
		}
		if beat || cur != last {
			// A failed write keeps the lease last written: the next is
			// one PUT again, and report reads the lease only when that
			// PUT conflicts (a timed-out write that did land). Reading
			// it after every failure doubled the requests of an
			// overloaded API server (567 GET leases/s at 5,000 nodes
			// during a ramp, fleetbench).
			if w, err := s.report(ctx, leases, identity, heartbeat, written); err != nil {
				if ctx.Err() == nil {
					s.log.Debug("node report", "error", err)
				}
			} else {
				last, written = cur, w
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			beat = true
		case <-s.reported:
			beat = false
		}
	}
}

// A changed report waits between reportDelayMin and reportDelayMin +
// reportSpread before it is written. A change reaches every node within
// the same second, and every node's report write lands on the API server
// while it is still sending the change to the other nodes' watches:
// 1,000 PUTs in the middle of the fan-out at 1,000 nodes.
const (
	reportDelayMin = 250 * time.Millisecond
	reportSpread   = time.Second
)

// reportDelay is the wait before a changed report is written, for u drawn
// uniformly from [0, 1).
func reportDelay(u float64) time.Duration {
	return reportDelayMin + time.Duration(u*float64(reportSpread))
}

// reportContent is what the report says now: generations in force,
// refusals and the version.
func (s *Source) reportContent() string {
	s.mu.Lock()
	b, _ := json.Marshal(s.acceptedGenerations())
	r, _ := json.Marshal(s.refusedGenerations())
	s.mu.Unlock()
	return string(b) + " " + string(r) + " " + s.versionWith("", objGen{})
}

// reportedRefusal is one refusal in a node report, with short keys: the
// report is rewritten on every change and heartbeat.
type reportedRefusal struct {
	Gen    int64  `json:"g"`
	Reason string `json:"r"`
}

// refusedGenerations is release → generation refused and why. The caller
// holds mu.
func (s *Source) refusedGenerations() map[string]reportedRefusal {
	ref := map[string]reportedRefusal{}
	for n, r := range s.refused {
		ref[n] = reportedRefusal{Gen: r.gen, Reason: truncateUTF8(r.err.Error(), maxReportReason)}
	}
	return ref
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// acceptedGenerations is release → generation in force. The caller holds mu.
func (s *Source) acceptedGenerations() map[string]int64 {
	acc := map[string]int64{}
	for n, a := range s.accepted {
		acc[n] = a.gen
	}
	return acc
}

// report writes the node report. last is the report as this node last
// wrote it: updating it saves the GET before every write (a heartbeat is
// then one request); when another writer moved it (a conflict) or it is
// gone, report reads it again. It returns the report as written.
func (s *Source) report(ctx context.Context, leases coordinationv1.LeaseInterface, identity string, heartbeat time.Duration, last *coordv1.Lease) (*coordv1.Lease, error) {
	s.mu.Lock()
	acc, ref := s.acceptedGenerations(), s.refusedGenerations()
	s.mu.Unlock()
	b, err := json.Marshal(acc)
	if err != nil {
		return nil, err
	}
	rb, err := json.Marshal(ref)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	now := metav1.NewMicroTime(time.Now())
	ttl := int32((reportTTLBeats * heartbeat).Seconds())
	name := reportName(identity)
	l := last.DeepCopy()
	if l == nil {
		if l, err = leases.Get(ctx, name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			l = &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{reportLabel: "true"}}}
		} else if err != nil {
			return nil, err
		}
	}
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[annAccepted], l.Annotations[annVersion] = string(b), s.versionWith("", objGen{})
	if len(ref) > 0 {
		l.Annotations[annRefused] = string(rb)
	} else {
		delete(l.Annotations, annRefused)
	}
	l.Spec.HolderIdentity, l.Spec.RenewTime, l.Spec.LeaseDurationSeconds = &identity, &now, &ttl
	var written *coordv1.Lease
	if l.ResourceVersion == "" {
		written, err = leases.Create(ctx, l, metav1.CreateOptions{FieldManager: "graymesh"})
	} else {
		written, err = leases.Update(ctx, l, metav1.UpdateOptions{FieldManager: "graymesh"})
	}
	if last != nil && (apierrors.IsConflict(err) || apierrors.IsNotFound(err)) {
		return s.report(ctx, leases, identity, heartbeat, nil)
	}
	return written, err
}

// nodeReport is one node's live report.
type nodeReport struct {
	// Node is the reporting node's identity (--node-name).
	Node string
	// Accepted is release → generation in force; Refused, release →
	// generation refused and why.
	Accepted map[string]int64
	Refused  map[string]reportedRefusal
	Version  string
}

// nodeReports reads the live node reports, in node name order, with one
// LIST (the console's view, on demand).
func (s *Source) nodeReports(ctx context.Context, leases coordinationv1.LeaseInterface) ([]nodeReport, error) {
	list, err := leases.List(ctx, metav1.ListOptions{LabelSelector: reportLabel + "=true"})
	if err != nil {
		return nil, err
	}
	items := make([]*coordv1.Lease, len(list.Items))
	for i := range list.Items {
		items[i] = &list.Items[i]
	}
	return liveReports(items, time.Now()), nil
}

// liveReports are the reports of items that are live at now, in node name
// order.
func liveReports(items []*coordv1.Lease, now time.Time) []nodeReport {
	out := []nodeReport{}
	for _, l := range items {
		if r, ok := parseReport(l, now); ok {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b nodeReport) int { return strings.Compare(a.Node, b.Node) })
	return out
}

// reportInformer watches the node reports for the status writer, which
// reads them every statusEvery: from its cache, a LIST of every report
// every 2 s (1,000 Leases at 1,000 nodes) becomes one watch that carries
// only the reports that change.
func reportInformer(leases coordinationv1.LeaseInterface) cache.SharedIndexInformer {
	selector := reportLabel + "=true"
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = selector
			return leases.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = selector
			return leases.Watch(ctx, o)
		},
	}
	return cache.NewSharedIndexInformer(lw, &coordv1.Lease{}, 0, cache.Indexers{})
}

// cachedReports are the live reports in inf's cache.
func cachedReports(inf cache.SharedIndexInformer) []nodeReport {
	var items []*coordv1.Lease
	for _, o := range inf.GetStore().List() {
		if l, ok := o.(*coordv1.Lease); ok {
			items = append(items, l)
		}
	}
	return liveReports(items, time.Now())
}

// parseReport reads one report Lease; false when it is stale (not
// renewed within the duration its node wrote: the node is gone) or
// unreadable.
func parseReport(l *coordv1.Lease, now time.Time) (nodeReport, bool) {
	ttl := reportTTLBeats * ReportHeartbeat
	if d := l.Spec.LeaseDurationSeconds; d != nil && *d > 0 {
		ttl = time.Duration(*d) * time.Second
	}
	if l.Spec.RenewTime == nil || now.Sub(l.Spec.RenewTime.Time) > ttl {
		return nodeReport{}, false
	}
	r := nodeReport{Node: l.Name, Accepted: map[string]int64{}, Refused: map[string]reportedRefusal{}, Version: l.Annotations[annVersion]}
	if l.Spec.HolderIdentity != nil {
		r.Node = *l.Spec.HolderIdentity
	}
	if json.Unmarshal([]byte(l.Annotations[annAccepted]), &r.Accepted) != nil {
		return nodeReport{}, false
	}
	// A report without refusals has no annotation; an unreadable one
	// (written by a newer graymesh, say) counts as none.
	if ann, ok := l.Annotations[annRefused]; ok && json.Unmarshal([]byte(ann), &r.Refused) != nil {
		r.Refused = map[string]reportedRefusal{}
	}
	return r, true
}

// nodesServing is status.nodes: reports whose generation in force for
// name is gen, out of all live reports.
func nodesServing(reports []nodeReport, name string, gen int64) string {
	n := 0
	for _, r := range reports {
		if r.Accepted[name] == gen {
			n++
		}
	}
	return fmt.Sprintf("%d/%d", n, len(reports))
}
