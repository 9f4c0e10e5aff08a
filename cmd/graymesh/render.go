package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"sort"

	"gopkg.in/yaml.v3"

	"github.com/graymesh/graymesh/config"
	"github.com/graymesh/graymesh/gray"
	"github.com/graymesh/graymesh/wire"
)

const renderSynopsis = `Usage: graymesh render istio --config FILE [--namespace NS] [--subset-label KEY]

Prints, for each service in FILE, an Istio VirtualService and DestinationRule
(networking.istio.io/v1) that route on graymesh's decision, as the routes
graymesh pushes to its own Envoys do:

  x-gray-env: <env>        → subset <env>, for each environment of the service
  x-gray-env: anything else → subset stable (header kept for later hops)
  no x-gray-env            → subset stable, stamping x-gray-env: stable; with a
                             traffic_percent release, a weighted choice whose
                             branches stamp the environment they chose

Each service is the Kubernetes Service of the same name; each environment is
the subset of its pods labelled KEY=<env>. The endpoints listed under the
config's environments are not used. Apply the output with kubectl apply -f -.`

// render dispatches "graymesh render <target>"; istio is the only target.
func render(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprintln(stderr, renderSynopsis)
		return flag.ErrHelp
	}
	if len(args) == 0 || args[0] != "istio" {
		fmt.Fprintln(stderr, renderSynopsis)
		return errUsage
	}
	fs := newFlags("render istio", renderSynopsis, stderr)
	path := fs.String("config", "", "config file (required)")
	namespace := fs.String("namespace", "", "namespace of the services and of the objects printed (default: none, kubectl's current)")
	label := fs.String("subset-label", "graymesh.io/env", "pod label whose value is the pod's environment")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *path == "" || fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	out, err := renderIstio(cfg, istioOptions{Source: filepath.Base(*path), Namespace: *namespace, SubsetLabel: *label})
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}

type istioOptions struct {
	// Source names the config file in the header comment.
	Source      string
	Namespace   string
	SubsetLabel string
}

// Istio objects, with only the fields graymesh sets. Field order is output
// order; yaml.v3 sorts map keys, so the output is deterministic.
type (
	istioObject struct {
		APIVersion string    `yaml:"apiVersion"`
		Kind       string    `yaml:"kind"`
		Metadata   istioMeta `yaml:"metadata"`
		Spec       any       `yaml:"spec"`
	}
	istioMeta struct {
		Name        string            `yaml:"name"`
		Namespace   string            `yaml:"namespace,omitempty"`
		Labels      map[string]string `yaml:"labels,omitempty"`
		Annotations map[string]string `yaml:"annotations,omitempty"`
	}
	virtualServiceSpec struct {
		Hosts []string    `yaml:"hosts"`
		HTTP  []httpRoute `yaml:"http"`
	}
	httpRoute struct {
		Name    string             `yaml:"name"`
		Match   []httpMatch        `yaml:"match,omitempty"`
		Route   []routeDestination `yaml:"route"`
		Headers *headerRules       `yaml:"headers,omitempty"`
	}
	httpMatch struct {
		Headers map[string]stringMatch `yaml:"headers"`
	}
	stringMatch struct {
		Exact string `yaml:"exact,omitempty"`
		Regex string `yaml:"regex,omitempty"`
	}
	routeDestination struct {
		Destination destination  `yaml:"destination"`
		Weight      int32        `yaml:"weight,omitempty"`
		Headers     *headerRules `yaml:"headers,omitempty"`
	}
	destination struct {
		Host   string `yaml:"host"`
		Subset string `yaml:"subset"`
	}
	headerRules struct {
		Request headerOps `yaml:"request"`
	}
	headerOps struct {
		Set map[string]string `yaml:"set"`
	}
	destinationRuleSpec struct {
		Host    string   `yaml:"host"`
		Subsets []subset `yaml:"subsets"`
	}
	subset struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	}
)

// dnsLabel is what Kubernetes accepts as a Service name and Istio as a
// subset name; label values are a superset.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// renderIstio is the pure part of "render istio": one VirtualService and
// one DestinationRule per service, in config order.
func renderIstio(cfg *config.Config, o istioOptions) ([]byte, error) {
	var weighted *config.Release
	for i := range cfg.Releases {
		if cfg.Releases[i].TrafficPercent > 0 {
			weighted = &cfg.Releases[i]
		}
	}
	var errs []error
	var objs []istioObject
	for i, s := range cfg.Services {
		if !dnsLabel.MatchString(s.Name) {
			errs = append(errs, fmt.Errorf("services[%d] (%s).name: Istio needs the name of a Kubernetes Service (a DNS label: a-z 0-9 -)", i, s.Name))
			continue
		}
		envs := serviceEnvs(s)
		for _, env := range envs {
			if !dnsLabel.MatchString(env) {
				errs = append(errs, fmt.Errorf("services[%d] (%s).environments: %q cannot name an Istio subset (a DNS label: a-z 0-9 -, not ending in -)", i, s.Name, env))
			}
		}
		meta := istioMeta{
			Name:        s.Name,
			Namespace:   o.Namespace,
			Labels:      map[string]string{"app.kubernetes.io/managed-by": "graymesh"},
			Annotations: map[string]string{"graymesh.io/config-version": cfg.Version},
		}
		vs := virtualServiceSpec{Hosts: []string{s.Name}}
		for _, env := range envs[1:] {
			vs.HTTP = append(vs.HTTP, httpRoute{
				Name:  env,
				Match: []httpMatch{{Headers: map[string]stringMatch{wire.HeaderEnv: {Exact: env}}}},
				Route: []routeDestination{{Destination: destination{Host: s.Name, Subset: env}}},
			})
		}
		// Any other value: an environment this service lacks. Serve it
		// from stable and keep the header for later hops.
		vs.HTTP = append(vs.HTTP, httpRoute{
			Name:  "other-env",
			Match: []httpMatch{{Headers: map[string]stringMatch{wire.HeaderEnv: {Regex: ".*"}}}},
			Route: []routeDestination{{Destination: destination{Host: s.Name, Subset: config.Stable}}},
		})
		def := httpRoute{Name: "default"}
		if weighted != nil && len(s.Environments[weighted.Env]) > 0 {
			def.Route = weightedRoute(s.Name, weighted.Env, config.BasisPoints(weighted.TrafficPercent))
		} else {
			def.Route = []routeDestination{{Destination: destination{Host: s.Name, Subset: config.Stable}}}
			def.Headers = setEnv(config.Stable)
		}
		vs.HTTP = append(vs.HTTP, def)
		dr := destinationRuleSpec{Host: s.Name}
		for _, env := range envs {
			dr.Subsets = append(dr.Subsets, subset{Name: env, Labels: map[string]string{o.SubsetLabel: env}})
		}
		objs = append(objs,
			istioObject{APIVersion: "networking.istio.io/v1", Kind: "VirtualService", Metadata: meta, Spec: vs},
			istioObject{APIVersion: "networking.istio.io/v1", Kind: "DestinationRule", Metadata: meta, Spec: dr},
		)
	}
	if len(cfg.Services) == 0 {
		errs = append(errs, errors.New("services: none to render"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# Generated by `graymesh render istio` from %s (config version %s).\n# Regenerate it after a config change rather than editing it.\n", o.Source, cfg.Version)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	for _, obj := range objs {
		if err := enc.Encode(obj); err != nil {
			return nil, err
		}
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// serviceEnvs returns a service's environments, stable first, the rest
// sorted: the order of graymesh's own Envoy routes.
func serviceEnvs(s config.Service) []string {
	out := []string{config.Stable}
	var rest []string
	for env := range s.Environments {
		if env != config.Stable {
			rest = append(rest, env)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

// weightedRoute splits undecided requests: basisPoints of 10000 go to env,
// each branch stamping x-gray-env with its choice. Istio divides by the sum
// of the weights, so whole percentages are written out of 100 and finer
// ones out of 10000 (graymesh's 0.01% precision).
func weightedRoute(service, env string, basisPoints uint32) []routeDestination {
	scale := uint32(1)
	if basisPoints%100 == 0 {
		scale = 100
	}
	var out []routeDestination
	for _, b := range []struct {
		env    string
		weight uint32
	}{{config.Stable, gray.Buckets - basisPoints}, {env, basisPoints}} {
		if b.weight == 0 {
			continue
		}
		out = append(out, routeDestination{
			Destination: destination{Host: service, Subset: b.env},
			Weight:      int32(b.weight / scale),
			Headers:     setEnv(b.env),
		})
	}
	return out
}

func setEnv(env string) *headerRules {
	return &headerRules{Request: headerOps{Set: map[string]string{wire.HeaderEnv: env}}}
}
