package manifests

import (
	"bytes"
	"fmt"
	"os/exec"

	"sigs.k8s.io/kustomize/kyaml/kio"

	"github.com/graymesh/graymesh/internal/testing/toolcache"
)

// HelmVersion is the Helm CLI scripts/install-helm.sh builds (the version
// of helm.sh/helm/v4 in tools/helm/go.mod; a test keeps them equal).
const HelmVersion = "v4.3.2"

// HelmInstall says how to get the Helm CLI FindHelm looks for.
const HelmInstall = "make helm (scripts/install-helm.sh), or set HELM_BIN"

// FindHelm returns the Helm CLI: $HELM_BIN, else the one
// scripts/install-helm.sh built into the graymesh cache.
func FindHelm() (string, error) {
	return toolcache.Find("HELM_BIN", "helm-"+HelmVersion, "helm")
}

// RenderChart runs `helm template` on the chart in chartDir, released as
// "graymesh" into namespace, with more flags of helm template (--values,
// --set…), and returns its objects in Helm's output order.
func RenderChart(helm, chartDir, namespace string, flags ...string) ([]Object, error) {
	args := append([]string{"template", "graymesh", chartDir, "--namespace", namespace}, flags...)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(helm, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("helm %v: %w: %s", args, err, stderr.Bytes())
	}
	// Without the reader's annotations (config.kubernetes.io/index…):
	// the objects as Helm wrote them.
	r := kio.ByteReader{Reader: &stdout, OmitReaderAnnotations: true}
	nodes, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("helm template output: %w", err)
	}
	out := make([]Object, 0, len(nodes))
	for _, n := range nodes {
		j, err := n.MarshalJSON()
		if err != nil {
			return nil, err
		}
		out = append(out, Object{
			APIVersion: n.GetApiVersion(),
			Kind:       n.GetKind(),
			Namespace:  n.GetNamespace(),
			Name:       n.GetName(),
			JSON:       j,
		})
	}
	return out, nil
}
