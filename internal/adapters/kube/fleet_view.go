package kube

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"

	"github.com/graymesh/graymesh/internal/runtime/control"
)

// maxViewNodes bounds the nodes one fleet view lists (the rest are
// counted): a page of thousands of rows helps nobody.
const maxViewNodes = 200

// FleetView is the fleet status of a release as the console shows it:
// the GrayRelease's status from the informer's cache, and every live node
// report read afresh. It is part of Fleet (control.Fleet).
type FleetView struct {
	src *Source

	once   sync.Once
	leases coordinationv1.LeaseInterface
	err    error
}

// NewFleetView reads through src's cache and connection.
func NewFleetView(src *Source) *FleetView { return &FleetView{src: src} }

func (v *FleetView) leaseClient() (coordinationv1.LeaseInterface, error) {
	v.once.Do(func() {
		coord, err := coordinationv1.NewForConfig(v.src.client.Config)
		if err != nil {
			v.err = err
			return
		}
		v.leases = coord.Leases(v.src.client.Namespace)
	})
	return v.leases, v.err
}

// ReleaseFleet is part of control.Fleet.
func (v *FleetView) ReleaseFleet(ctx context.Context, name string) (*control.FleetRelease, error) {
	obj, ok, err := v.src.inf.GetStore().GetByKey(v.src.client.Namespace + "/" + name)
	if err != nil || !ok {
		return nil, err
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, nil
	}
	gr, err := fromUnstructured(u)
	if err != nil {
		return nil, err
	}
	leases, err := v.leaseClient()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	reports, err := v.src.nodeReports(ctx, leases)
	if err != nil {
		return nil, err
	}
	st := gr.Status
	fr := &control.FleetRelease{Release: name, Generation: gr.Generation, AcceptedGeneration: st.AcceptedGeneration,
		State: st.State, Percent: st.Percent, Version: st.Version, Nodes: st.Nodes,
		NodesAccepted: st.NodesAccepted, NodesRefused: st.NodesRefused, ReadAt: time.Now().UTC()}
	for _, c := range st.Conditions {
		if c.Type == CondAccepted {
			fr.Accepted, fr.AcceptedReason, fr.AcceptedMessage = string(c.Status), c.Reason, c.Message
		}
	}
	fr.NodeList, fr.NodesMore = viewNodes(reports, name)
	return fr, nil
}

// viewNodes is what each report says of release name, the first
// maxViewNodes by node name, and how many more there are.
func viewNodes(reports []nodeReport, name string) ([]control.FleetNode, int) {
	out := []control.FleetNode{}
	for _, r := range reports {
		if len(out) == maxViewNodes {
			return out, len(reports) - maxViewNodes
		}
		n := control.FleetNode{Name: r.Node, Generation: r.Accepted[name], Version: r.Version}
		if ref, ok := r.Refused[name]; ok {
			n.RefusedGeneration, n.Refused = ref.Gen, ref.Reason
		}
		out = append(out, n)
	}
	return out, 0
}
