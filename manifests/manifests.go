// Package manifests holds graymesh's Kubernetes manifests — a kustomize
// base and one overlay per integration mode — and builds them the way
// `kubectl apply -k` does, so tests check exactly what a cluster receives.
package manifests

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

//go:embed base overlays components crd
var files embed.FS

// Object is one Kubernetes object of a build.
type Object struct {
	APIVersion string
	Kind       string
	Namespace  string
	Name       string
	// JSON is the whole object.
	JSON []byte
}

// Overlays lists the overlay directories, e.g. "overlays/istio".
func Overlays() ([]string, error) {
	entries, err := files.ReadDir("overlays")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, path.Join("overlays", e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

// Build runs kustomize on dir ("base", "overlays/istio") over an in-memory
// copy of the embedded manifests and returns the objects in kustomize's
// output order.
func Build(dir string) ([]Object, error) { return kustomize(dir, nil) }

// Compose builds a kustomization of one's own made of resources (e.g.
// "overlays/graymesh-sidecars") and components (e.g.
// "components/kubernetes-mode"), as a user's overlay would.
func Compose(resources, components []string) ([]Object, error) {
	var k strings.Builder
	k.WriteString("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n")
	for _, r := range resources {
		fmt.Fprintf(&k, "  - ../%s\n", r)
	}
	if len(components) > 0 {
		k.WriteString("components:\n")
		for _, c := range components {
			fmt.Fprintf(&k, "  - ../%s\n", c)
		}
	}
	return kustomize("composed", map[string]string{"composed/kustomization.yaml": k.String()})
}

// kustomize is Build with extra files (path → content, relative to the
// manifests directory) beside the embedded ones, e.g. an overlay of one's
// own.
func kustomize(dir string, extra map[string]string) ([]Object, error) {
	mem := filesys.MakeFsInMemory()
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		return mem.WriteFile(path.Join("/", p), data)
	})
	if err != nil {
		return nil, err
	}
	for p, data := range extra {
		if err := mem.WriteFile(path.Join("/", p), []byte(data)); err != nil {
			return nil, err
		}
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(mem, path.Join("/", dir))
	if err != nil {
		return nil, err
	}
	var out []Object
	for _, r := range m.Resources() {
		j, err := r.MarshalJSON()
		if err != nil {
			return nil, err
		}
		out = append(out, Object{
			APIVersion: r.GetApiVersion(),
			Kind:       r.GetKind(),
			Namespace:  r.GetNamespace(),
			Name:       r.GetName(),
			JSON:       j,
		})
	}
	return out, nil
}
