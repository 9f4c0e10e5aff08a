package e2e

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/graymesh/graymesh/internal/testing/kubeharness"
)

// kubeCP is a real etcd and kube-apiserver on loopback
// (internal/testing/kubeharness), stopped when the test ends.
type kubeCP struct {
	*kubeharness.ControlPlane
	t          *testing.T
	kubeconfig string
}

// startKube starts etcd and kube-apiserver with their data in a fresh
// temporary directory.
func startKube(t *testing.T) *kubeCP {
	t.Helper()
	bin, err := kubeharness.Find()
	if err != nil {
		missingPart(t, err, kubeharness.Install)
	}
	cp, err := kubeharness.Start(bin, t.TempDir(), func() int { return freePort(t) })
	if err != nil {
		t.Fatal(err)
	}
	k := &kubeCP{ControlPlane: cp, t: t, kubeconfig: cp.Kubeconfig}
	t.Cleanup(func() {
		cp.Stop()
		if t.Failed() {
			t.Logf("---- kube-apiserver log ----\n%s", cp.Log("kube-apiserver", 4000))
		}
	})
	return k
}

// do calls the API server as the admin user.
func (k *kubeCP) do(method, path, contentType string, body []byte) ([]byte, error) {
	return k.Do(method, path, contentType, body)
}

// kubectl runs the real kubectl against the API server.
func (k *kubeCP) kubectl(stdin string, args ...string) (string, error) {
	return k.Kubectl(stdin, args...)
}

func (k *kubeCP) mustKubectl(stdin string, args ...string) string {
	k.t.Helper()
	out, err := k.kubectl(stdin, args...)
	if err != nil {
		k.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// releasePath is the API path of GrayRelease name in namespace graymesh.
func releasePath(name string) string {
	return "/apis/graymesh.io/v1alpha1/namespaces/graymesh/grayreleases/" + name
}

// patchRelease merge-patches GrayRelease name's spec.
func (k *kubeCP) patchRelease(name string, spec map[string]any) error {
	b, err := json.Marshal(map[string]any{"spec": spec})
	if err != nil {
		return err
	}
	_, err = k.do(http.MethodPatch, releasePath(name), "application/merge-patch+json", b)
	return err
}

// release reads GrayRelease name.
func (k *kubeCP) release(name string) (map[string]any, error) {
	b, err := k.do(http.MethodGet, releasePath(name), "", nil)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	return out, json.Unmarshal(b, &out)
}

// installCRD applies the generated CRD with kubectl and waits until it is
// served, then creates the namespace.
func (k *kubeCP) installCRD() {
	k.t.Helper()
	must(k.t, k.InstallCRD(filepath.Join(repoRoot, "manifests", "crd", "graymesh.io_grayreleases.yaml")))
}
