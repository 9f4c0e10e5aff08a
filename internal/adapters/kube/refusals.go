package kube

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/graymesh/graymesh/api/v1alpha1"
)

// maxRefusedBy is how many refusing nodes status.refusedBy names (the
// CRD's MaxItems); status.nodesRefused counts them all.
const maxRefusedBy = 5

// ReasonRefusedOnNodes is the Accepted=False reason when this node put
// the generation in force but other nodes refused it.
const ReasonRefusedOnNodes = "RefusedOnNodes"

// tallyNodes fills st's per-node counts for generation gen of release
// name from the live reports, and turns Accepted to False when any node
// refused that generation: a change some nodes refused is not in force
// on the fleet, whatever the writer's own node did.
func tallyNodes(st *v1alpha1.GrayReleaseStatus, reports []nodeReport, name string, gen int64, old []metav1.Condition) {
	st.NodesAccepted, st.NodesRefused, st.RefusedBy = 0, 0, nil
	for _, r := range reports {
		if r.Accepted[name] == gen {
			st.NodesAccepted++
		}
		if ref, ok := r.Refused[name]; ok && ref.Gen == gen {
			st.NodesRefused++
			if len(st.RefusedBy) < maxRefusedBy {
				st.RefusedBy = append(st.RefusedBy, v1alpha1.NodeRefusal{Node: r.Node, Reason: ref.Reason})
			}
		}
	}
	if st.NodesRefused == 0 {
		return
	}
	for i := range st.Conditions {
		c := &st.Conditions[i]
		if c.Type != CondAccepted || c.Status == metav1.ConditionFalse {
			continue
		}
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, ReasonRefusedOnNodes, refusedMessage(st, len(reports))
		c.LastTransitionTime = transitionTime(old, metav1.ConditionFalse)
	}
}

// refusedMessage names the refusing nodes (the first few) and the first
// one's reason.
func refusedMessage(st *v1alpha1.GrayReleaseStatus, reporting int) string {
	names := make([]string, 0, len(st.RefusedBy))
	for _, r := range st.RefusedBy {
		names = append(names, r.Node)
	}
	more := ""
	if st.NodesRefused > len(names) {
		more = fmt.Sprintf(" and %d more", st.NodesRefused-len(names))
	}
	return fmt.Sprintf("refused on %d of %d nodes (%s%s): %s", st.NodesRefused, reporting, strings.Join(names, ", "), more, st.RefusedBy[0].Reason)
}

// transitionTime keeps the Accepted condition's transition time while its
// status stays the same, as metav1.Condition's contract asks.
func transitionTime(old []metav1.Condition, status metav1.ConditionStatus) metav1.Time {
	for _, c := range old {
		if c.Type == CondAccepted && c.Status == status {
			return c.LastTransitionTime
		}
	}
	return metav1.Now()
}
