package fleetbench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/graymesh/graymesh/internal/adapters/kube"
	"github.com/graymesh/graymesh/internal/testing/kubeharness"
)

// releaseStatus is what the failover measure reads of the release.
type releaseStatus struct {
	generation, accepted int64
	nodes                string
	version              int64 // 0 until the status names one
}

func readStatus(cp *kubeharness.ControlPlane) (releaseStatus, error) {
	b, err := cp.Do(http.MethodGet, "/apis/graymesh.io/v1alpha1/namespaces/graymesh/grayreleases/"+release, "", nil)
	if err != nil {
		return releaseStatus{}, err
	}
	var gr struct {
		Metadata struct {
			Generation int64 `json:"generation"`
		} `json:"metadata"`
		Status struct {
			Nodes              string `json:"nodes"`
			AcceptedGeneration int64  `json:"acceptedGeneration"`
			Version            string `json:"version"`
		} `json:"status"`
	}
	if err := json.Unmarshal(b, &gr); err != nil {
		return releaseStatus{}, err
	}
	v, _ := strconv.ParseInt(gr.Status.Version, 10, 64)
	return releaseStatus{generation: gr.Metadata.Generation, accepted: gr.Status.AcceptedGeneration, nodes: gr.Status.Nodes, version: v}, nil
}

// leaseHolder is the status writer Lease's holder.
func leaseHolder(cp *kubeharness.ControlPlane) (string, error) {
	b, err := cp.Do(http.MethodGet, "/apis/coordination.k8s.io/v1/namespaces/graymesh/leases/"+kube.LeaseName, "", nil)
	if err != nil {
		return "", err
	}
	var l struct {
		Spec struct {
			HolderIdentity string `json:"holderIdentity"`
		} `json:"spec"`
	}
	err = json.Unmarshal(b, &l)
	return l.Spec.HolderIdentity, err
}

// measureFailover stops the leading controller as a rolling update does
// (its Lease released) and patches the release at once, so the change
// lands while no controller writes status. It measures the time until
// the other replica holds the Lease and until the status shows every node
// on the change, and records every status version seen meanwhile: the
// fleet version must never go down.
func measureFailover(ctx context.Context, cp *kubeharness.ControlPlane, controllers []*vnode, res *Result) error {
	holder, err := leaseHolder(cp)
	if err != nil {
		return err
	}
	var leader, other *vnode
	for _, c := range controllers {
		if c.name == holder {
			leader = c
		} else {
			other = c
		}
	}
	if leader == nil {
		return fmt.Errorf("failover: the status writer Lease is held by %q, not a controller", holder)
	}
	before, err := readStatus(cp)
	if err != nil {
		return err
	}
	t0 := time.Now()
	leader.stop()
	if err := patchPercent(cp, 60); err != nil {
		return err
	}
	want := before.generation + 1
	last := before.version
	res.FailoverVersions = []int64{last}
	err = waitUntil(ctx, res.Timeout, "failover: the status on the change", func() (bool, error) {
		if res.FailoverLeader == 0 {
			if h, err := leaseHolder(cp); err == nil && h == other.name {
				res.FailoverLeader = time.Since(t0)
			}
		}
		st, err := readStatus(cp)
		if err != nil {
			return false, err
		}
		if st.version != 0 && st.version != last {
			if st.version < last {
				res.FailoverRegressions++
			}
			last = st.version
			res.FailoverVersions = append(res.FailoverVersions, st.version)
		}
		n, of, ok := strings.Cut(st.nodes, "/")
		return st.accepted == want && ok && n == of && n == strconv.Itoa(res.Nodes) && res.FailoverLeader > 0, nil
	})
	if err != nil {
		return err
	}
	res.FailoverStatus = time.Since(t0)
	if g := mustGeneration(cp); g != want {
		return fmt.Errorf("failover: generation %d after one patch, want %d", g, want)
	}
	res.logf("failover: %s leads after %s, status %d/%d on the change after %s, versions %v (%d down)", other.name,
		res.FailoverLeader.Round(time.Millisecond), res.Nodes, res.Nodes, res.FailoverStatus.Round(time.Millisecond), res.FailoverVersions, res.FailoverRegressions)
	return nil
}

func mustGeneration(cp *kubeharness.ControlPlane) int64 {
	st, err := readStatus(cp)
	if err != nil {
		return -1
	}
	return st.generation
}

func patchPercent(cp *kubeharness.ControlPlane, percent int) error {
	return patchSpec(cp, fmt.Sprintf(`{"percent":%d,"change":{"reason":"fleetbench failover"}}`, percent))
}
