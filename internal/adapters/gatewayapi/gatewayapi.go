// Package gatewayapi translates graymesh's routing plan into Kubernetes
// Gateway API objects (gateway.networking.k8s.io/v1 HTTPRoute) that route on
// graymesh's decision as graymesh's own Envoys do, and, for a Gateway run by
// Envoy Gateway, the policies (gateway.envoyproxy.io/v1alpha1) that make
// the Gateway ask graymesh and strip the headers a client must not send.
//
// Two kinds of route come out of one plan: one per service whose parent is
// the service itself (the Gateway API mesh profile, GAMMA: east-west
// traffic addressed to the Service), and, with a Gateway named, one per
// service attached to that Gateway (north-south). Gateway API has no
// subsets, so each environment of a service is its own Service,
// SERVICE-ENV (shop-stable, shop-gray), selecting that environment's pods
// — or, with Options.Backends, an Envoy Gateway Backend of that name
// holding the environment's endpoints from the config.
package gatewayapi

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/plan"
)

// Options say where the objects go.
type Options struct {
	// Source names the config file in the header comment.
	Source string
	// Namespace of the services, their routes and backends ("": kubectl's
	// current).
	Namespace string
	// Port is the port of every service and environment backend.
	Port int32
	// Gateway, when set, is the Gateway north-south routes attach to, and
	// which the Envoy Gateway policies target; GatewayNamespace its
	// namespace ("": Namespace).
	Gateway, GatewayNamespace string
	// ExtProc is graymesh's Service the Gateway calls: name, namespace
	// and port.
	ExtProc ServiceRef
	// Backends makes every backend an Envoy Gateway Backend
	// (gateway.envoyproxy.io/v1alpha1) written from the config's
	// endpoints — each environment's, and mesh.extproc_address for
	// graymesh — instead of a Kubernetes Service: for Envoy Gateway run
	// without Kubernetes (standalone, resources from files) or endpoints
	// outside the cluster. It needs a Gateway, and no mesh (GAMMA) route
	// comes out: a mesh routes to Services.
	Backends bool
}

// ServiceRef names a Kubernetes Service port.
type ServiceRef struct {
	Name, Namespace string
	Port            int32
}

// ExtProcRef derives graymesh's Service from the config's
// mesh.extproc_address when it is a cluster Service name
// (NAME.NAMESPACE.svc...); ok is false otherwise.
func ExtProcRef(e plan.Endpoint) (ServiceRef, bool) {
	labels := strings.Split(e.Host, ".")
	if e.IsIP() || len(labels) < 3 || labels[2] != "svc" {
		return ServiceRef{}, false
	}
	return ServiceRef{Name: labels[0], Namespace: labels[1], Port: int32(e.Port)}, true
}

// Objects, with only the fields graymesh sets; yaml.v3 sorts map keys, so
// the output is deterministic.
type (
	object struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   meta   `yaml:"metadata"`
		Spec       any    `yaml:"spec"`
	}
	meta struct {
		Name        string            `yaml:"name"`
		Namespace   string            `yaml:"namespace,omitempty"`
		Labels      map[string]string `yaml:"labels,omitempty"`
		Annotations map[string]string `yaml:"annotations,omitempty"`
	}
	httpRouteSpec struct {
		ParentRefs []parentRef `yaml:"parentRefs"`
		Hostnames  []string    `yaml:"hostnames,omitempty"`
		Rules      []rule      `yaml:"rules"`
	}
	parentRef struct {
		Group     *string `yaml:"group,omitempty"`
		Kind      string  `yaml:"kind,omitempty"`
		Name      string  `yaml:"name"`
		Namespace string  `yaml:"namespace,omitempty"`
		Port      int32   `yaml:"port,omitempty"`
	}
	rule struct {
		Name        string       `yaml:"name"`
		Matches     []match      `yaml:"matches,omitempty"`
		Filters     []filter     `yaml:"filters,omitempty"`
		BackendRefs []backendRef `yaml:"backendRefs"`
	}
	match struct {
		Headers []headerMatch `yaml:"headers"`
	}
	headerMatch struct {
		Type  string `yaml:"type"`
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	}
	filter struct {
		Type                  string         `yaml:"type"`
		RequestHeaderModifier headerModifier `yaml:"requestHeaderModifier"`
	}
	headerModifier struct {
		Set []header `yaml:"set"`
	}
	header struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	}
	backendRef struct {
		Group     string   `yaml:"group,omitempty"`
		Kind      string   `yaml:"kind,omitempty"`
		Name      string   `yaml:"name"`
		Namespace string   `yaml:"namespace,omitempty"`
		Port      int32    `yaml:"port,omitempty"`
		Weight    *int32   `yaml:"weight,omitempty"`
		Filters   []filter `yaml:"filters,omitempty"`
	}
	targetRef struct {
		Group string `yaml:"group"`
		Kind  string `yaml:"kind"`
		Name  string `yaml:"name"`
	}
	extensionPolicySpec struct {
		TargetRefs []targetRef `yaml:"targetRefs"`
		ExtProc    []extProc   `yaml:"extProc"`
	}
	extProc struct {
		BackendRefs    []backendRef   `yaml:"backendRefs"`
		FailOpen       bool           `yaml:"failOpen"`
		MessageTimeout string         `yaml:"messageTimeout"`
		ProcessingMode processingMode `yaml:"processingMode"`
	}
	processingMode struct {
		AllowModeOverride bool           `yaml:"allowModeOverride"`
		Request           requestProcess `yaml:"request"`
	}
	requestProcess struct {
		Attributes []string `yaml:"attributes,omitempty"`
	}
	clientTrafficSpec struct {
		TargetRefs []targetRef `yaml:"targetRefs"`
		Headers    struct {
			EarlyRequestHeaders struct {
				Remove []string `yaml:"remove"`
			} `yaml:"earlyRequestHeaders"`
		} `yaml:"headers"`
	}
	referenceGrantSpec struct {
		From []grantFrom `yaml:"from"`
		To   []grantTo   `yaml:"to"`
	}
	grantFrom struct {
		Group     string `yaml:"group"`
		Kind      string `yaml:"kind"`
		Namespace string `yaml:"namespace"`
	}
	grantTo struct {
		Group string `yaml:"group"`
		Kind  string `yaml:"kind"`
		Name  string `yaml:"name"`
	}
	backendSpec struct {
		Endpoints []backendEndpoint `yaml:"endpoints"`
	}
	backendEndpoint struct {
		IP   *backendAddress `yaml:"ip,omitempty"`
		FQDN *backendHost    `yaml:"fqdn,omitempty"`
	}
	backendAddress struct {
		Address string `yaml:"address"`
		Port    int    `yaml:"port"`
	}
	backendHost struct {
		Hostname string `yaml:"hostname"`
		Port     int    `yaml:"port"`
	}
)

// ClientHeaders are the headers a client must never send: graymesh's own.
// The Gateway removes them before any filter runs, so a client cannot pick
// an environment even while graymesh does not answer.
var ClientHeaders = []string{
	wire.HeaderEnv, wire.HeaderRelease, wire.HeaderReason, wire.HeaderVersion,
	wire.HeaderFallback, wire.HeaderLaneProblem, wire.HeaderLane,
}

// dnsLabel is what Kubernetes accepts as a Service name.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

const (
	gatewayGroup = "gateway.networking.k8s.io"
	envoyGroup   = "gateway.envoyproxy.io"
)

// Render translates the plan, services in config order. It is pure.
func Render(p *plan.Plan, o Options) ([]byte, error) {
	if err := check(p, o); err != nil {
		return nil, err
	}
	labels := map[string]string{"app.kubernetes.io/managed-by": "graymesh"}
	annotations := map[string]string{"graymesh.io/config-content": p.Content}
	var objs []object
	for i := range p.Services {
		s := &p.Services[i]
		rules := rulesOf(s, o)
		if !o.Backends {
			core := ""
			mesh := httpRouteSpec{ParentRefs: []parentRef{{Group: &core, Kind: "Service", Name: s.Name, Port: o.Port}}, Rules: rules}
			objs = append(objs, object{APIVersion: gatewayGroup + "/v1", Kind: "HTTPRoute",
				Metadata: meta{Name: s.Name + "-mesh", Namespace: o.Namespace, Labels: labels, Annotations: annotations}, Spec: mesh})
		}
		if o.Gateway != "" {
			edge := httpRouteSpec{ParentRefs: []parentRef{{Name: o.Gateway, Namespace: o.GatewayNamespace}}, Hostnames: hostnames(s.Domains), Rules: rules}
			objs = append(objs, object{APIVersion: gatewayGroup + "/v1", Kind: "HTTPRoute",
				Metadata: meta{Name: s.Name + "-gateway", Namespace: o.Namespace, Labels: labels, Annotations: annotations}, Spec: edge})
		}
	}
	if o.Gateway != "" {
		objs = append(objs, gatewayPolicies(p, o, labels)...)
	}
	if o.Backends {
		objs = append(objs, backends(p, o, labels)...)
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# Generated by `graymesh render gateway-api` from %s (content %s).\n# Regenerate it after a config change rather than editing it.\n", o.Source, p.Content)
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

// check refuses what Kubernetes would: names that are no DNS labels, a
// Gateway without graymesh's Service to call.
func check(p *plan.Plan, o Options) error {
	var errs []error
	for i := range p.Services {
		s := &p.Services[i]
		if !dnsLabel.MatchString(s.Name) || len(s.Name) > 56 {
			errs = append(errs, fmt.Errorf("services[%d] (%s).name: the Gateway API needs the name of a Kubernetes Service (a DNS label: a-z 0-9 -, at most 56 characters so that NAME-mesh and NAME-gateway fit)", i, s.Name))
		}
		for _, env := range s.Envs {
			if !dnsLabel.MatchString(s.Name + "-" + env.Name) {
				errs = append(errs, fmt.Errorf("services[%d] (%s).environments: %q cannot name the Service %s-%s (a DNS label: a-z 0-9 -)", i, s.Name, env.Name, s.Name, env.Name))
			}
		}
	}
	if len(p.Services) == 0 {
		errs = append(errs, errors.New("services: none to render"))
	}
	if o.Port <= 0 || o.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d: not a port", o.Port))
	}
	if o.Backends && o.Gateway == "" {
		errs = append(errs, errors.New("envoy Gateway Backends are for a Gateway's routes (--gateway): a mesh routes to Services"))
	}
	if o.Gateway != "" && !o.Backends && (o.ExtProc.Name == "" || o.ExtProc.Port <= 0) {
		errs = append(errs, errors.New("a Gateway needs graymesh's Service to call: mesh.extproc_address is not NAME.NAMESPACE.svc...:PORT, so name it (--extproc-service NAME.NAMESPACE:PORT)"))
	}
	return errors.Join(errs...)
}

// hostnames are a service's domains as HTTPRoute hostnames: "*" (any) is
// no hostname at all.
func hostnames(domains []string) []string {
	var out []string
	for _, d := range domains {
		if d != "*" {
			out = append(out, d)
		}
	}
	return out
}

// rulesOf translates a service's routes, in plan order. Gateway API ranks
// a rule with a header match above one without, and among rules with as
// many header matches the first in list order, so the plan's order holds.
func rulesOf(s *plan.Service, o Options) []rule {
	out := make([]rule, 0, len(s.Routes))
	for _, r := range s.Routes {
		ru := rule{Name: r.Name}
		switch r.Match.Kind {
		case plan.MatchEnv:
			ru.Matches = []match{{Headers: []headerMatch{{Type: "Exact", Name: wire.HeaderEnv, Value: r.Match.Env}}}}
		case plan.MatchOtherEnv:
			// Any value: the header is kept for a later hop that has
			// that environment.
			ru.Matches = []match{{Headers: []headerMatch{{Type: "RegularExpression", Name: wire.HeaderEnv, Value: ".*"}}}}
		}
		if len(r.Backends) == 1 {
			b := r.Backends[0]
			ru.BackendRefs = []backendRef{envRef(s.Name, b.Env, o)}
			if b.StampEnv {
				ru.Filters = []filter{setEnv(b.Env)}
			}
		} else {
			ru.BackendRefs = weighted(s.Name, r.Backends, o)
		}
		out = append(out, ru)
	}
	return out
}

// weighted is a weighted split: each branch stamps the environment it
// chose. Weights are relative; whole percentages are written out of 100,
// finer ones out of 10000 (graymesh's 0.01% precision).
func weighted(service string, backends []plan.Backend, o Options) []backendRef {
	scale := uint32(100)
	for _, b := range backends {
		if b.Weight%100 != 0 {
			scale = 1
		}
	}
	out := make([]backendRef, 0, len(backends))
	for _, b := range backends {
		w := int32(b.Weight / scale)
		ref := envRef(service, b.Env, o)
		ref.Weight = &w
		if b.StampEnv {
			ref.Filters = []filter{setEnv(b.Env)}
		}
		out = append(out, ref)
	}
	return out
}

// envRef is the backend of a service's environment: the Service
// SERVICE-ENV on the port, or the Backend of that name.
func envRef(service, env string, o Options) backendRef {
	if o.Backends {
		return backendRef{Group: envoyGroup, Kind: "Backend", Name: service + "-" + env}
	}
	return backendRef{Name: service + "-" + env, Port: o.Port}
}

func setEnv(env string) filter {
	return filter{Type: "RequestHeaderModifier", RequestHeaderModifier: headerModifier{Set: []header{{Name: wire.HeaderEnv, Value: env}}}}
}

// gatewayPolicies make an Envoy Gateway Gateway ask graymesh before routing
// (EnvoyExtensionPolicy: ext_proc, request headers only, failing open
// within the config's message timeout) and remove client-sent graymesh
// headers before any filter (ClientTrafficPolicy); a ReferenceGrant lets
// the policy name graymesh's Service in its own namespace.
func gatewayPolicies(p *plan.Plan, o Options, labels map[string]string) []object {
	ns := o.GatewayNamespace
	if ns == "" {
		ns = o.Namespace
	}
	target := []targetRef{{Group: gatewayGroup, Kind: "Gateway", Name: o.Gateway}}
	graymesh := backendRef{Name: o.ExtProc.Name, Namespace: o.ExtProc.Namespace, Port: o.ExtProc.Port}
	if o.Backends {
		graymesh = backendRef{Group: envoyGroup, Kind: "Backend", Name: extProcBackend}
	}
	ep := extProc{
		BackendRefs: []backendRef{graymesh},
		// A request is never failed by graymesh: when it does not answer
		// in time, the route default serves (stable, or the weighted
		// split), as at graymesh's own edge.
		FailOpen:       true,
		MessageTimeout: duration(p.Mesh.MessageTimeout),
		// graymesh only ever asks for the response headers as well, to
		// hand out a membership cookie.
		ProcessingMode: processingMode{AllowModeOverride: true},
	}
	if p.Mesh.PeerAddress {
		// The releases' cidrs rules need the client address Envoy saw.
		ep.ProcessingMode.Request.Attributes = []string{wire.SourceAddressAttribute}
	}
	var strip clientTrafficSpec
	strip.TargetRefs = target
	strip.Headers.EarlyRequestHeaders.Remove = ClientHeaders
	objs := []object{
		{APIVersion: envoyGroup + "/v1alpha1", Kind: "EnvoyExtensionPolicy", Metadata: meta{Name: "graymesh", Namespace: ns, Labels: labels},
			Spec: extensionPolicySpec{TargetRefs: target, ExtProc: []extProc{ep}}},
		{APIVersion: envoyGroup + "/v1alpha1", Kind: "ClientTrafficPolicy", Metadata: meta{Name: "graymesh-strip", Namespace: ns, Labels: labels},
			Spec: strip},
	}
	if !o.Backends && o.ExtProc.Namespace != "" && o.ExtProc.Namespace != ns {
		objs = append(objs, object{APIVersion: gatewayGroup + "/v1beta1", Kind: "ReferenceGrant",
			Metadata: meta{Name: "graymesh-from-" + ns, Namespace: o.ExtProc.Namespace, Labels: labels},
			Spec: referenceGrantSpec{
				From: []grantFrom{{Group: envoyGroup, Kind: "EnvoyExtensionPolicy", Namespace: ns}},
				To:   []grantTo{{Group: "", Kind: "Service", Name: o.ExtProc.Name}},
			}})
	}
	return objs
}

// extProcBackend names the Backend of graymesh's ext_proc address.
const extProcBackend = "graymesh"

// backends are the Backends the routes and the policy name: one per
// service environment with its endpoints, in the services' namespace, and
// graymesh's, in the Gateway's (the policy's own namespace, so no
// ReferenceGrant).
func backends(p *plan.Plan, o Options, labels map[string]string) []object {
	ns := o.GatewayNamespace
	if ns == "" {
		ns = o.Namespace
	}
	backend := func(name, namespace string, eps []plan.Endpoint) object {
		spec := backendSpec{}
		for _, e := range eps {
			if e.IsIP() {
				spec.Endpoints = append(spec.Endpoints, backendEndpoint{IP: &backendAddress{Address: e.Host, Port: int(e.Port)}})
			} else {
				spec.Endpoints = append(spec.Endpoints, backendEndpoint{FQDN: &backendHost{Hostname: e.Host, Port: int(e.Port)}})
			}
		}
		return object{APIVersion: envoyGroup + "/v1alpha1", Kind: "Backend", Metadata: meta{Name: name, Namespace: namespace, Labels: labels}, Spec: spec}
	}
	var objs []object
	for i := range p.Services {
		s := &p.Services[i]
		for _, env := range s.Envs {
			objs = append(objs, backend(s.Name+"-"+env.Name, o.Namespace, env.Endpoints))
		}
	}
	return append(objs, backend(extProcBackend, ns, []plan.Endpoint{p.Mesh.ExtProc}))
}

// duration writes d as the Gateway API's duration strings do (500ms, 2s).
func duration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}
