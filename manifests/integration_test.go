package manifests

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	earlymutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/early_header_mutation/header_mutation/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	networkingv1 "istio.io/api/networking/v1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	appsv1 "k8s.io/api/apps/v1"

	"github.com/graymesh/graymesh/envoy"
	"github.com/graymesh/graymesh/internal/core/plan"
	"github.com/graymesh/graymesh/xds"
)

const (
	extProcFilterName = "envoy.filters.http.ext_proc"
	hcmFilterName     = "envoy.filters.network.http_connection_manager"
	routerFilterName  = "envoy.filters.http.router"
)

// edgeHCM is the HTTP connection manager graymesh pushes to its own edge
// Envoys for cfg: the reference the Istio patches must match.
func edgeHCM(t *testing.T, b *build) *hcmv3.HttpConnectionManager {
	t.Helper()
	p, err := plan.Build(loadConfigMapConfig(t, b))
	if err != nil {
		t.Fatal(err)
	}
	res, err := xds.Build(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range res.Listeners {
		if l.GetName() != xds.ListenerName {
			continue
		}
		hcm := &hcmv3.HttpConnectionManager{}
		must(t, l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm))
		return hcm
	}
	t.Fatalf("xds.Build has no listener %s", xds.ListenerName)
	return nil
}

// TestIstioEnvoyFilter: the EnvoyFilter's patches parse into Envoy's own
// protos, pass Envoy's validation, and configure the gateway exactly as
// graymesh configures its own edge Envoys (only the ext_proc cluster's
// name differs: Istio's outbound cluster for the node-local Service).
func TestIstioEnvoyFilter(t *testing.T) {
	b := buildOf(t, "overlays/istio")
	filters := objectsOf[*networkingv1alpha3.EnvoyFilter](b, "EnvoyFilter")
	if len(filters) != 1 {
		t.Fatalf("%d EnvoyFilters, want 1", len(filters))
	}
	ef := filters[0]
	if len(ef.GetWorkloadSelector().GetLabels()) == 0 {
		t.Error("no workloadSelector: the filter would apply to every proxy in its namespace, or the whole mesh in the root namespace")
	}
	ref := edgeHCM(t, b)

	var sawExtProc, sawStrip bool
	for i, p := range ef.GetConfigPatches() {
		match := p.GetMatch()
		if match.GetContext() != networkingv1alpha3.EnvoyFilter_GATEWAY {
			t.Errorf("patch %d: context %s; graymesh decides once, at the edge", i, match.GetContext())
		}
		if got := match.GetListener().GetFilterChain().GetFilter().GetName(); got != hcmFilterName {
			t.Errorf("patch %d: matches filter %q", i, got)
		}
		value, err := protojson.Marshal(p.GetPatch().GetValue())
		if err != nil {
			t.Fatal(err)
		}
		switch p.GetApplyTo() {
		case networkingv1alpha3.EnvoyFilter_HTTP_FILTER:
			sawExtProc = true
			if p.GetPatch().GetOperation() != networkingv1alpha3.EnvoyFilter_Patch_INSERT_BEFORE || match.GetListener().GetFilterChain().GetFilter().GetSubFilter().GetName() != routerFilterName {
				t.Errorf("patch %d: want INSERT_BEFORE the router", i)
			}
			checkExtProcPatch(t, b, value, ref)
		case networkingv1alpha3.EnvoyFilter_NETWORK_FILTER:
			sawStrip = true
			if p.GetPatch().GetOperation() != networkingv1alpha3.EnvoyFilter_Patch_MERGE {
				t.Errorf("patch %d: want MERGE into the HTTP connection manager", i)
			}
			checkStripPatch(t, value, ref)
		default:
			t.Errorf("patch %d: unexpected applyTo %s", i, p.GetApplyTo())
		}
	}
	if !sawExtProc || !sawStrip {
		t.Errorf("ext_proc patch %v, header-strip patch %v; want both", sawExtProc, sawStrip)
	}
}

func checkExtProcPatch(t *testing.T, b *build, value []byte, ref *hcmv3.HttpConnectionManager) {
	t.Helper()
	f := &hcmv3.HttpFilter{}
	if err := protojson.Unmarshal(value, f); err != nil {
		t.Fatalf("ext_proc patch value is not an Envoy HttpFilter: %v", err)
	}
	if err := f.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	if f.GetName() != extProcFilterName {
		t.Errorf("filter name %q", f.GetName())
	}
	got := &extprocv3.ExternalProcessor{}
	if err := f.GetTypedConfig().UnmarshalTo(got); err != nil {
		t.Fatalf("typed_config is not an ExternalProcessor: %v", err)
	}
	if err := got.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	if !got.GetFailureModeAllow() || got.GetProcessingMode().GetResponseHeaderMode() != extprocv3.ProcessingMode_SKIP {
		t.Error("want failure_mode_allow and response_header_mode SKIP")
	}
	if got.GetDisableClearRouteCache() || got.GetRouteCacheAction() == extprocv3.ExternalProcessor_RETAIN {
		t.Error("the route cache must be cleared when graymesh asks, or the router never sees x-gray-env")
	}

	// Istio's cluster for the graymesh Service's ext_proc port.
	s := graymeshService(t, b)
	cluster := fmt.Sprintf("outbound|%d||%s.%s.svc.cluster.local", servicePort(t, s, "grpc-extproc"), s.Name, s.Namespace)
	if c := got.GetGrpcService().GetEnvoyGrpc().GetClusterName(); c != cluster {
		t.Errorf("grpc_service cluster %q, want %q", c, cluster)
	}

	var want *extprocv3.ExternalProcessor
	for _, hf := range ref.GetHttpFilters() {
		if hf.GetName() == extProcFilterName {
			want = &extprocv3.ExternalProcessor{}
			must(t, hf.GetTypedConfig().UnmarshalTo(want))
		}
	}
	if want == nil {
		t.Fatal("graymesh's edge listener has no ext_proc filter")
	}
	want.GetGrpcService().TargetSpecifier = got.GetGrpcService().GetTargetSpecifier()
	// graymesh narrows what its own edge Envoys send to what the config in
	// force reads (forward_rules; request_attributes only for a cidrs
	// rule). The static patch cannot follow the ConfigMap, so it sends
	// the superset any config reads: every header, and source.address.
	if got.GetForwardRules() != nil || len(got.GetRequestAttributes()) != 1 || got.GetRequestAttributes()[0] != "source.address" {
		t.Errorf("the gateway's ext_proc filter must forward every header and source.address (any config's inputs): forward_rules %v, request_attributes %v",
			got.GetForwardRules(), got.GetRequestAttributes())
	}
	want.ForwardRules, want.RequestAttributes = nil, got.GetRequestAttributes()
	if !proto.Equal(got, want) {
		t.Errorf("the gateway's ext_proc filter differs from graymesh's own edge filter:\n got %v\nwant %v", got, want)
	}
}

func checkStripPatch(t *testing.T, value []byte, ref *hcmv3.HttpConnectionManager) {
	t.Helper()
	f := &listenerv3.Filter{}
	if err := protojson.Unmarshal(value, f); err != nil {
		t.Fatalf("header-strip patch value is not an Envoy network filter: %v", err)
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
		t.Fatalf("typed_config is not an HttpConnectionManager: %v", err)
	}
	// A MERGE value is a fragment, so only the fields it sets are checked.
	got, want := hcm.GetEarlyHeaderMutationExtensions(), ref.GetEarlyHeaderMutationExtensions()
	if len(got) == 0 || len(got) != len(want) {
		t.Fatalf("early_header_mutation_extensions: %d, want %d as graymesh pushes", len(got), len(want))
	}
	for i := range got {
		if err := got[i].ValidateAll(); err != nil {
			t.Fatal(err)
		}
		g, w := &earlymutationv3.HeaderMutation{}, &earlymutationv3.HeaderMutation{}
		must(t, got[i].GetTypedConfig().UnmarshalTo(g))
		must(t, want[i].GetTypedConfig().UnmarshalTo(w))
		if err := g.ValidateAll(); err != nil {
			t.Fatal(err)
		}
		if got[i].GetName() != want[i].GetName() || !proto.Equal(g, w) {
			t.Errorf("early header mutation %d differs from graymesh's own:\n got %s %v\nwant %s %v", i, got[i].GetName(), g, want[i].GetName(), w)
		}
	}
	hcm.EarlyHeaderMutationExtensions = nil
	if !proto.Equal(hcm, &hcmv3.HttpConnectionManager{}) {
		t.Errorf("the MERGE patch changes more than the header strip: %v", hcm)
	}
}

// TestIstioRoutes: the VirtualServices route to subsets their
// DestinationRules define. (cmd/graymesh's golden test keeps them equal to
// `graymesh render istio` of the base config.)
func TestIstioRoutes(t *testing.T) {
	b := buildOf(t, "overlays/istio")
	subsets := map[string]map[string]bool{}
	for _, dr := range objectsOf[*networkingv1.DestinationRule](b, "DestinationRule") {
		subsets[dr.GetHost()] = map[string]bool{}
		for _, s := range dr.GetSubsets() {
			subsets[dr.GetHost()][s.GetName()] = true
		}
	}
	services := loadConfigMapConfig(t, b).Services
	vss := objectsOf[*networkingv1.VirtualService](b, "VirtualService")
	if len(vss) != len(services) || len(subsets) != len(services) {
		t.Fatalf("%d VirtualServices and %d DestinationRules for %d services", len(vss), len(subsets), len(services))
	}
	for _, vs := range vss {
		for _, r := range vs.GetHttp() {
			for _, d := range r.GetRoute() {
				if !subsets[d.GetDestination().GetHost()][d.GetDestination().GetSubset()] {
					t.Errorf("route %s: no subset %s of %s", r.GetName(), d.GetDestination().GetSubset(), d.GetDestination().GetHost())
				}
			}
		}
	}
}

// TestSidecarBootstrap: the bootstrap ConfigMap is a valid Envoy bootstrap
// whose only static cluster is graymesh's node-local xDS port over HTTP/2,
// and the edge gateway runs it and serves graymesh's listener.
func TestSidecarBootstrap(t *testing.T) {
	b := buildOf(t, "overlays/graymesh-sidecars")
	cm := configMap(t, b, bootstrapPrefix)
	boot, err := envoy.Parse([]byte(cm.Data[bootstrapKey]))
	if err != nil {
		t.Fatalf("ConfigMap %s: %v", cm.Name, err)
	}
	if boot.GetDynamicResources().GetAdsConfig() == nil {
		t.Fatal("no ADS config")
	}
	if a := boot.GetAdmin().GetAddress().GetSocketAddress().GetAddress(); a != "127.0.0.1" {
		t.Errorf("admin bound to %q; keep it on loopback", a)
	}
	clusters := boot.GetStaticResources().GetClusters()
	if len(clusters) != 1 || clusters[0].GetName() != "graymesh_xds" {
		t.Fatalf("static clusters %v; want graymesh_xds alone", clusters)
	}
	c := clusters[0]
	sa := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	s := graymeshService(t, b)
	wantHost := fmt.Sprintf("%s.%s.svc.cluster.local", s.Name, s.Namespace)
	if sa.GetAddress() != wantHost || int(sa.GetPortValue()) != servicePort(t, s, "grpc-xds") {
		t.Errorf("ADS at %s:%d; want the node-local Service %s:%d", sa.GetAddress(), sa.GetPortValue(), wantHost, servicePort(t, s, "grpc-xds"))
	}
	if c.GetType() != clusterv3.Cluster_STRICT_DNS {
		t.Errorf("graymesh_xds is %s; a Service name needs STRICT_DNS", c.GetType())
	}
	opts := &upstreamhttpv3.HttpProtocolOptions{}
	must(t, c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].UnmarshalTo(opts))
	if opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		t.Error("graymesh_xds does not speak HTTP/2")
	}

	// The edge gateway runs Envoy with this bootstrap and exposes the
	// listener graymesh pushes.
	cfg := loadConfigMapConfig(t, b)
	var edge *appsv1.Deployment
	for _, d := range objectsOf[*appsv1.Deployment](b, "Deployment") {
		edge = d
	}
	if edge == nil {
		t.Fatal("no edge gateway Deployment")
	}
	pod := edge.Spec.Template.Spec
	envoyC := pod.Containers[0]
	vol, rel := mountFor(t, pod, envoyC, flagValue(envoyC.Args, "--config-path"))
	if vol.ConfigMap == nil || vol.ConfigMap.Name != cm.Name || rel != bootstrapKey {
		t.Errorf("--config-path is not the bootstrap ConfigMap's %s", bootstrapKey)
	}
	for _, a := range envoyC.Args {
		if strings.HasPrefix(a, "-") && strings.Contains(a, "=") {
			t.Errorf("Envoy arg %q: Envoy's parser wants --flag value, not --flag=value", a)
		}
	}
	if flagValue(envoyC.Args, "--service-cluster") == "" || flagValue(envoyC.Args, "--service-node") == "" {
		t.Error("give each Envoy its node id and cluster (--service-node, --service-cluster)")
	}
	if ip := net.ParseIP(cfg.Mesh.ListenerAddress); ip == nil || !ip.IsUnspecified() {
		t.Errorf("mesh.listener_address %s: pods must listen on every interface", cfg.Mesh.ListenerAddress)
	}
	var listenerPort int32
	for _, p := range envoyC.Ports {
		if p.Name == "http" {
			listenerPort = p.ContainerPort
		}
	}
	if uint32(listenerPort) != cfg.Mesh.ListenerPort {
		t.Errorf("container port http %d != mesh.listener_port %d", listenerPort, cfg.Mesh.ListenerPort)
	}
	if p := envoyC.ReadinessProbe; p == nil || p.TCPSocket == nil || p.TCPSocket.Port.String() != "http" {
		t.Error("want readiness when graymesh's listener is up (tcpSocket on http)")
	}
}

// TestBootstrapRendersForLoopback: the e2e harness can rewrite the
// bootstrap for a run on one machine.
func TestBootstrapRendersForLoopback(t *testing.T) {
	b := buildOf(t, "overlays/graymesh-sidecars")
	boot, err := envoy.Parse([]byte(configMap(t, b, bootstrapPrefix).Data[bootstrapKey]))
	if err != nil {
		t.Fatal(err)
	}
	out, err := envoy.Render(boot, envoy.Overrides{NodeID: "t", AdminPort: 19901, XDSHost: "127.0.0.1", XDSPort: 28000})
	if err != nil {
		t.Fatal(err)
	}
	back, err := envoy.Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	sa := back.GetStaticResources().GetClusters()[0].GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	if got := net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))); got != "127.0.0.1:28000" {
		t.Errorf("ADS at %s after Render", got)
	}
}

// TestOwnOverlay is the customisation docs/kubernetes.md describes: an
// overlay of one's own over ours that swaps the image and the config. The
// config lands in a new content-hashed ConfigMap the DaemonSet mounts, and
// nothing else moves.
func TestOwnOverlay(t *testing.T) {
	base, err := Build("overlays/istio")
	if err != nil {
		t.Fatal(err)
	}
	ours := configMap(t, buildOf(t, "overlays/istio"), configMapPrefix).Data[configKey]
	mine := strings.Replace(ours, "percent: 5\n", "percent: 10\n", 1)
	if mine == ours {
		t.Fatal("fixture: the base config has no percent: 5")
	}
	objs, err := kustomize("platform", map[string]string{
		"platform/kustomization.yaml": `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../overlays/istio
images:
  - name: ghcr.io/graymesh/graymesh
    newName: registry.example.com/platform/graymesh
    newTag: v0.2.0
configMapGenerator:
  - name: graymesh-config
    namespace: graymesh
    behavior: replace
    files:
      - graymesh.yaml
`,
		"platform/graymesh.yaml": mine,
	})
	if err != nil {
		t.Fatal(err)
	}
	b := &build{dir: "platform", objects: objs}
	for _, o := range objs {
		v, err := decodeStrict(o)
		if err != nil {
			t.Fatal(err)
		}
		b.typed = append(b.typed, v)
	}
	if len(objs) != len(base) {
		t.Errorf("%d objects, want the %d of overlays/istio", len(objs), len(base))
	}
	for i := range objs {
		if objs[i].Kind != base[i].Kind || objs[i].Namespace != base[i].Namespace {
			t.Errorf("object %d: %s in %q, was %s in %q", i, objs[i].Kind, objs[i].Namespace, base[i].Kind, base[i].Namespace)
		}
	}
	cm := configMap(t, b, configMapPrefix)
	if cm.Data[configKey] != mine {
		t.Error("the ConfigMap does not hold the replacing config")
	}
	ds := daemonSet(t, b)
	if img := ds.Spec.Template.Spec.Containers[0].Image; img != "registry.example.com/platform/graymesh:v0.2.0" {
		t.Errorf("image %s", img)
	}
	mounted := false
	for _, v := range ds.Spec.Template.Spec.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, s := range v.Projected.Sources {
			mounted = mounted || (s.ConfigMap != nil && s.ConfigMap.Name == cm.Name)
		}
	}
	if !mounted || cm.Name == configMap(t, buildOf(t, "overlays/istio"), configMapPrefix).Name {
		t.Errorf("the DaemonSet does not mount the new ConfigMap %s (a new name rolls the pods)", cm.Name)
	}
}
