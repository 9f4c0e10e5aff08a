// Package kube is graymesh's Kubernetes mode: it lists and watches
// GrayRelease objects (package v1alpha1) with a client-go informer and puts
// each change in force through the daemon's one change path
// (control.Pipeline.Submit: validate, eviction gate, effective_at, compile, xDS
// push, ext_proc swap), reports staleness while the watch is broken, and,
// on the one elected node, writes each object's status. The core packages
// never import it.
package kube

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/graymesh/graymesh/api/v1alpha1"
	"github.com/graymesh/graymesh/internal/contract/config"
)

// fromUnstructured decodes an object the informer holds.
func fromUnstructured(u *unstructured.Unstructured) (*v1alpha1.GrayRelease, error) {
	gr := &v1alpha1.GrayRelease{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, gr); err != nil {
		return nil, fmt.Errorf("GrayRelease %s: %w", u.GetName(), err)
	}
	return gr, nil
}

// Release is the config file's releases[] item that spec stands for, with
// name as its name and the file's defaults applied. The spec's JSON form
// (the file's field names) is decoded by the same strict YAML decoder as
// the file, so a field the file does not know is an error rather than
// something silently dropped.
func Release(name string, spec *v1alpha1.GrayReleaseSpec) (config.Release, error) {
	s := *spec
	s.EffectiveAt, s.Change = nil, nil
	b, err := json.Marshal(&s)
	if err != nil {
		return config.Release{}, err
	}
	var r config.Release
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil {
		return config.Release{}, fmt.Errorf("GrayRelease %s: spec: %w", name, err)
	}
	r.Name = name
	r.ApplyDefaults()
	return r, nil
}

// declaration is spec's change declaration and effective_at.
func declaration(spec *v1alpha1.GrayReleaseSpec) (config.Change, *time.Time) {
	var ch config.Change
	if spec.Change != nil {
		ch = config.Change{Rollback: spec.Change.Rollback, Reason: spec.Change.Reason}
	}
	if spec.EffectiveAt == nil {
		return ch, nil
	}
	at := spec.EffectiveAt.UTC()
	return ch, &at
}
