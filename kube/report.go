package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
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
	// reportEvery is the heartbeat; a report older than reportTTL is a
	// node that is gone.
	reportEvery = 10 * time.Second
	reportTTL   = 3 * reportEvery
)

// reportName is the node report's Lease name for identity.
func reportName(identity string) string {
	n := "graymesh-node-" + strings.ToLower(identity)
	if errs := validation.IsDNS1123Subdomain(n); len(errs) > 0 || len(n) > 253 {
		n = fmt.Sprintf("graymesh-node-%x", identity)
	}
	return n
}

// RunReporter keeps this node's report current: after every pass and
// every reportEvery. It returns when ctx is done.
func (s *Source) RunReporter(ctx context.Context, identity string) error {
	coord, err := coordinationv1.NewForConfig(s.client.Config)
	if err != nil {
		return err
	}
	leases := coord.Leases(s.client.Namespace)
	t := time.NewTicker(reportEvery)
	defer t.Stop()
	last, heartbeat := "", true
	for {
		// A pass that changed nothing this node serves (a status write,
		// another node's report) writes nothing; the heartbeat always does.
		if cur := s.reportContent(); heartbeat || cur != last {
			if err := s.report(ctx, leases, identity); err != nil && ctx.Err() == nil {
				s.log.Debug("node report", "error", err)
			} else {
				last = cur
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			heartbeat = true
		case <-s.reported:
			heartbeat = false
		}
	}
}

// reportContent is what the report says now: generations in force and
// the version.
func (s *Source) reportContent() string {
	s.mu.Lock()
	b, _ := json.Marshal(s.acceptedGenerations())
	s.mu.Unlock()
	return string(b) + " " + s.versionWith("", objGen{})
}

// acceptedGenerations is release → generation in force. The caller holds mu.
func (s *Source) acceptedGenerations() map[string]int64 {
	acc := map[string]int64{}
	for n, a := range s.accepted {
		acc[n] = a.gen
	}
	return acc
}

func (s *Source) report(ctx context.Context, leases coordinationv1.LeaseInterface, identity string) error {
	s.mu.Lock()
	acc := s.acceptedGenerations()
	s.mu.Unlock()
	b, err := json.Marshal(acc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	now := metav1.NewMicroTime(time.Now())
	ttl := int32(reportTTL.Seconds())
	name := reportName(identity)
	l, err := leases.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		l = &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{reportLabel: "true"}}}
	} else if err != nil {
		return err
	}
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[annAccepted], l.Annotations[annVersion] = string(b), s.versionWith("", objGen{})
	l.Spec.HolderIdentity, l.Spec.RenewTime, l.Spec.LeaseDurationSeconds = &identity, &now, &ttl
	if l.ResourceVersion == "" {
		_, err = leases.Create(ctx, l, metav1.CreateOptions{FieldManager: "graymesh"})
	} else {
		_, err = leases.Update(ctx, l, metav1.UpdateOptions{FieldManager: "graymesh"})
	}
	return err
}

// nodeReports reads the live node reports: per node, release → generation.
func (s *Source) nodeReports(ctx context.Context, leases coordinationv1.LeaseInterface) ([]map[string]int64, error) {
	list, err := leases.List(ctx, metav1.ListOptions{LabelSelector: reportLabel + "=true"})
	if err != nil {
		return nil, err
	}
	var out []map[string]int64
	for _, l := range list.Items {
		if l.Spec.RenewTime == nil || time.Since(l.Spec.RenewTime.Time) > reportTTL {
			continue
		}
		acc := map[string]int64{}
		if json.Unmarshal([]byte(l.Annotations[annAccepted]), &acc) == nil {
			out = append(out, acc)
		}
	}
	return out, nil
}

// nodesServing is status.nodes: reports whose generation in force for
// name is gen, out of all live reports.
func nodesServing(reports []map[string]int64, name string, gen int64) string {
	n := 0
	for _, r := range reports {
		if r[name] == gen {
			n++
		}
	}
	return fmt.Sprintf("%d/%d", n, len(reports))
}
