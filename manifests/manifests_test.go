package manifests

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	networkingv1 "istio.io/api/networking/v1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/gray"
	"github.com/graymesh/graymesh/xds"
)

// Names the manifests and the tests agree on.
const (
	namespace       = "graymesh"
	appName         = "graymesh"
	configMapPrefix = "graymesh-config-"
	configKey       = "graymesh.yaml"
	keysSecret      = "graymesh-keys"
	bootstrapPrefix = "graymesh-envoy-bootstrap-"
	bootstrapKey    = "envoy.yaml"
	adminPort       = 18080
	extProcPort     = 18081
	xdsPort         = 18000
	// defaultDrain is graymesh serve's --drain-timeout default.
	defaultDrain = 10 * time.Second
	// shutdownMargin covers graymesh's admin shutdown (2 s) after the drain.
	shutdownMargin = 2 * time.Second
)

// build is one kustomization's output, decoded.
type build struct {
	dir     string
	objects []Object
	// typed holds the Kubernetes API object (core, apps, rbac) or, for
	// Istio kinds, the Istio API spec, per object.
	typed []any
}

var (
	buildsOnce sync.Once
	builds     []*build
	buildsErr  error
)

// allBuilds builds and strictly decodes the base and every overlay once.
func allBuilds(t *testing.T) []*build {
	t.Helper()
	buildsOnce.Do(func() {
		overlays, err := Overlays()
		if err != nil {
			buildsErr = err
			return
		}
		for _, dir := range append([]string{"base"}, overlays...) {
			objs, err := Build(dir)
			if err != nil {
				buildsErr = fmt.Errorf("kustomize build %s: %w", dir, err)
				return
			}
			b := &build{dir: dir, objects: objs}
			for _, o := range objs {
				v, err := decodeStrict(o)
				if err != nil {
					buildsErr = fmt.Errorf("%s: %s %s/%s: %w", dir, o.Kind, o.Namespace, o.Name, err)
					return
				}
				b.typed = append(b.typed, v)
			}
			builds = append(builds, b)
		}
	})
	if buildsErr != nil {
		t.Fatal(buildsErr)
	}
	return builds
}

func buildOf(t *testing.T, dir string) *build {
	t.Helper()
	for _, b := range allBuilds(t) {
		if b.dir == dir {
			return b
		}
	}
	t.Fatalf("no build %s", dir)
	return nil
}

var kubeDecoder = func() runtime.Decoder {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, rbacv1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	// Strict: unknown and duplicate fields are errors, as with
	// `kubectl apply --validate=strict`.
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}()

// decodeStrict decodes one object into its API type and fails on any field
// the type does not have. Istio kinds are decoded into istio.io/api's
// types with protojson (strict); their Kubernetes envelope into a strict
// struct (see cmd/graymesh/render_test.go for why not istio.io/client-go).
func decodeStrict(o Object) (any, error) {
	if strings.HasSuffix(o.APIVersion, ".istio.io/v1alpha3") || strings.HasSuffix(o.APIVersion, ".istio.io/v1") {
		var env struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name        string            `json:"name"`
				Namespace   string            `json:"namespace"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
			Spec json.RawMessage `json:"spec"`
		}
		dec := json.NewDecoder(bytes.NewReader(o.JSON))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&env); err != nil {
			return nil, err
		}
		var spec proto.Message
		switch o.APIVersion + " " + o.Kind {
		case "networking.istio.io/v1alpha3 EnvoyFilter":
			spec = &networkingv1alpha3.EnvoyFilter{}
		case "networking.istio.io/v1 VirtualService":
			spec = &networkingv1.VirtualService{}
		case "networking.istio.io/v1 DestinationRule":
			spec = &networkingv1.DestinationRule{}
		default:
			return nil, fmt.Errorf("no Istio type for %s %s", o.APIVersion, o.Kind)
		}
		return spec, protojson.Unmarshal(env.Spec, spec)
	}
	obj, _, err := kubeDecoder.Decode(o.JSON, nil, nil)
	return obj, err
}

func TestDecodeIsStrict(t *testing.T) {
	for name, o := range map[string]Object{
		"unknown field":   {APIVersion: "v1", Kind: "Service", JSON: []byte(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"a"},"spec":{"internalTraficPolicy":"Local"}}`)},
		"duplicate field": {APIVersion: "v1", Kind: "ConfigMap", JSON: []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","name":"b"}}`)},
		"unknown kind":    {APIVersion: "v1", Kind: "Widget", JSON: []byte(`{"apiVersion":"v1","kind":"Widget","metadata":{"name":"a"}}`)},
		"istio spec":      {APIVersion: "networking.istio.io/v1alpha3", Kind: "EnvoyFilter", JSON: []byte(`{"apiVersion":"networking.istio.io/v1alpha3","kind":"EnvoyFilter","metadata":{"name":"a"},"spec":{"configPatch":[]}}`)},
		"istio metadata":  {APIVersion: "networking.istio.io/v1", Kind: "VirtualService", JSON: []byte(`{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"a","labelz":{}},"spec":{}}`)},
	} {
		if _, err := decodeStrict(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestEveryKustomizationBuilds(t *testing.T) {
	bs := allBuilds(t)
	var dirs []string
	for _, b := range bs {
		dirs = append(dirs, b.dir)
	}
	for _, want := range []string{"base", "overlays/graymesh-sidecars", "overlays/istio"} {
		if !slices.Contains(dirs, want) {
			t.Errorf("no kustomization %s (have %v)", want, dirs)
		}
	}
	for _, b := range bs {
		t.Run(b.dir, func(t *testing.T) {
			seen := map[string]bool{}
			for _, o := range b.objects {
				id := o.Kind + " " + o.Namespace + "/" + o.Name
				if seen[id] {
					t.Errorf("%s twice", id)
				}
				seen[id] = true
				// Secrets are created by the operator, never shipped.
				if o.Kind == "Secret" {
					t.Errorf("%s: manifests must not carry secrets", id)
				}
				if o.Kind != "Namespace" && o.Namespace == "" {
					t.Errorf("%s has no namespace; kubectl would put it in the current one", id)
				}
			}
			for _, kind := range []string{"Namespace", "ServiceAccount", "Role", "RoleBinding", "ConfigMap", "DaemonSet", "Service"} {
				if len(objectsOf[any](b, kind)) == 0 {
					t.Errorf("no %s", kind)
				}
			}
		})
	}
}

// objectsOf returns the decoded objects of one kind.
func objectsOf[T any](b *build, kind string) []T {
	var out []T
	for i, o := range b.objects {
		if o.Kind == kind {
			if v, ok := b.typed[i].(T); ok {
				out = append(out, v)
			}
		}
	}
	return out
}

func daemonSet(t *testing.T, b *build) *appsv1.DaemonSet {
	t.Helper()
	for _, ds := range objectsOf[*appsv1.DaemonSet](b, "DaemonSet") {
		if ds.Name == appName {
			return ds
		}
	}
	t.Fatalf("%s: no DaemonSet %s", b.dir, appName)
	return nil
}

func graymeshService(t *testing.T, b *build) *corev1.Service {
	t.Helper()
	for _, s := range objectsOf[*corev1.Service](b, "Service") {
		if s.Name == appName {
			return s
		}
	}
	t.Fatalf("%s: no Service %s", b.dir, appName)
	return nil
}

func configMap(t *testing.T, b *build, prefix string) *corev1.ConfigMap {
	t.Helper()
	for _, cm := range objectsOf[*corev1.ConfigMap](b, "ConfigMap") {
		if strings.HasPrefix(cm.Name, prefix) {
			return cm
		}
	}
	t.Fatalf("%s: no ConfigMap %s…", b.dir, prefix)
	return nil
}

// workload is a pod template with the object that owns it.
type workload struct {
	id       string
	selector map[string]string
	pod      corev1.PodTemplateSpec
}

func workloads(b *build) []workload {
	var out []workload
	for _, ds := range objectsOf[*appsv1.DaemonSet](b, "DaemonSet") {
		out = append(out, workload{"DaemonSet " + ds.Name, ds.Spec.Selector.MatchLabels, ds.Spec.Template})
	}
	for _, d := range objectsOf[*appsv1.Deployment](b, "Deployment") {
		out = append(out, workload{"Deployment " + d.Name, d.Spec.Selector.MatchLabels, d.Spec.Template})
	}
	return out
}

// TestPodInvariants holds for every workload in every build: the
// "restricted" Pod Security Standard and more — non-root, read-only root
// filesystem, no privilege escalation, all capabilities dropped, pinned
// images, resources, readiness probes on named ports, no API token.
func TestPodInvariants(t *testing.T) {
	for _, b := range allBuilds(t) {
		for _, w := range workloads(b) {
			t.Run(b.dir+"/"+w.id, func(t *testing.T) {
				checkPod(t, b, w)
			})
		}
	}
}

func checkPod(t *testing.T, b *build, w workload) {
	pod := w.pod.Spec
	if !labels.SelectorFromSet(w.selector).Matches(labels.Set(w.pod.Labels)) || len(w.selector) == 0 {
		t.Errorf("selector %v does not select the template's labels %v", w.selector, w.pod.Labels)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken is not false: nothing here calls the Kubernetes API")
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Error("host namespaces shared")
	}
	psc := pod.SecurityContext
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod seccompProfile is not RuntimeDefault")
	}
	if pod.ServiceAccountName != "" && !hasObject(b, "ServiceAccount", pod.ServiceAccountName) {
		t.Errorf("serviceAccountName %s is not in the build", pod.ServiceAccountName)
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
		if v.ConfigMap != nil && !hasObject(b, "ConfigMap", v.ConfigMap.Name) {
			t.Errorf("volume %s: ConfigMap %s is not in the build", v.Name, v.ConfigMap.Name)
		}
		if v.Projected != nil {
			for _, s := range v.Projected.Sources {
				if s.ConfigMap != nil && !hasObject(b, "ConfigMap", s.ConfigMap.Name) {
					t.Errorf("volume %s: ConfigMap %s is not in the build", v.Name, s.ConfigMap.Name)
				}
			}
		}
	}
	if len(pod.InitContainers) > 0 {
		t.Error("init containers are not checked here; add them to the test")
	}
	for _, c := range pod.Containers {
		t.Run(c.Name, func(t *testing.T) { checkContainer(t, c, psc, volumes) })
	}
}

// checkContainer: a pinned image, named ports its probes use, requests and
// a memory limit, a locked-down security context, mounts of real volumes.
func checkContainer(t *testing.T, c corev1.Container, psc *corev1.PodSecurityContext, volumes map[string]corev1.Volume) {
	t.Helper()
	if err := imageError(c.Image); err != nil {
		t.Error(err)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		if errs := validation.IsValidPortName(p.Name); len(errs) > 0 {
			t.Errorf("port %d: name %q: %v", p.ContainerPort, p.Name, errs)
		}
		ports[p.Name] = p.ContainerPort
	}
	if c.ReadinessProbe == nil {
		t.Error("no readiness probe")
	}
	for _, pr := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
		if pr == nil {
			continue
		}
		var port string
		switch {
		case pr.HTTPGet != nil:
			port = pr.HTTPGet.Port.String()
		case pr.TCPSocket != nil:
			port = pr.TCPSocket.Port.String()
		}
		if _, ok := ports[port]; !ok {
			t.Errorf("probe port %q is not a named port of the container", port)
		}
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if q, ok := c.Resources.Requests[r]; !ok || q.IsZero() {
			t.Errorf("no %s request", r)
		}
	}
	if q, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok || q.IsZero() {
		t.Error("no memory limit")
	} else if q.Cmp(c.Resources.Requests[corev1.ResourceMemory]) < 0 {
		t.Error("memory limit below request")
	}
	checkContainerSecurity(t, c.SecurityContext, psc)
	for _, m := range c.VolumeMounts {
		if _, ok := volumes[m.Name]; !ok {
			t.Errorf("volumeMount %s: no such volume", m.Name)
		}
	}
}

// checkContainerSecurity: non-root with a non-zero uid (the container's or
// the pod's), no privilege escalation, a read-only root, all capabilities
// dropped.
func checkContainerSecurity(t *testing.T, sc *corev1.SecurityContext, psc *corev1.PodSecurityContext) {
	t.Helper()
	if sc == nil {
		t.Fatal("no securityContext")
	}
	nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
	uid := sc.RunAsUser
	if uid == nil && psc != nil {
		uid = psc.RunAsUser
	}
	if !nonRoot || uid == nil || *uid == 0 {
		t.Error("not runAsNonRoot with a non-zero runAsUser")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("privileged")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem is not true")
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		t.Error("capabilities: want drop [ALL] and nothing added")
	}
}

// imageError says why image is not pinned by tag or digest, or returns nil.
func imageError(image string) error {
	if _, digest, ok := strings.Cut(image, "@"); ok {
		if !strings.HasPrefix(digest, "sha256:") || len(digest) != len("sha256:")+64 {
			return fmt.Errorf("image %s: malformed digest", image)
		}
		return nil
	}
	slash := strings.LastIndex(image, "/")
	colon := strings.LastIndex(image, ":")
	if colon < slash+1 {
		return fmt.Errorf("image %s has no tag (means latest); pin a version", image)
	}
	if tag := image[colon+1:]; tag == "latest" || strings.HasSuffix(tag, "-latest") {
		return fmt.Errorf("image %s: tag %s floats; pin a version", image, tag)
	}
	return nil
}

func TestImageError(t *testing.T) {
	for image, ok := range map[string]bool{
		"ghcr.io/graymesh/graymesh:v0.1.0":                         true,
		"envoyproxy/envoy:v1.40.0":                                 true,
		"registry:5000/graymesh@sha256:" + strings.Repeat("a", 64): true,
		"ghcr.io/graymesh/graymesh":                                false,
		"registry:5000/graymesh":                                   false,
		"envoyproxy/envoy:latest":                                  false,
		"envoyproxy/envoy:v1.40-latest":                            false,
		"graymesh@sha256:abc":                                      false,
	} {
		if err := imageError(image); (err == nil) != ok {
			t.Errorf("%s: %v, want accepted=%v", image, err, ok)
		}
	}
}

func hasObject(b *build, kind, name string) bool {
	for _, o := range b.objects {
		if o.Kind == kind && o.Name == name {
			return true
		}
	}
	return false
}

// TestDaemonSet checks what makes graymesh a well-behaved node agent.
func TestDaemonSet(t *testing.T) {
	for _, b := range allBuilds(t) {
		t.Run(b.dir, func(t *testing.T) {
			ds := daemonSet(t, b)
			pod := ds.Spec.Template.Spec
			if len(pod.Containers) != 1 {
				t.Fatalf("%d containers, want graymesh alone", len(pod.Containers))
			}
			c := pod.Containers[0]

			u := ds.Spec.UpdateStrategy
			if u.Type != appsv1.RollingUpdateDaemonSetStrategyType || u.RollingUpdate == nil || u.RollingUpdate.MaxUnavailable == nil {
				t.Fatal("updateStrategy: want RollingUpdate with an explicit maxUnavailable")
			}
			if u.RollingUpdate.MaxUnavailable.IntValue() == 0 && (u.RollingUpdate.MaxSurge == nil || u.RollingUpdate.MaxSurge.IntValue() < 1) {
				t.Error("maxUnavailable 0 needs maxSurge ≥ 1")
			}
			if pod.PriorityClassName != "system-node-critical" {
				t.Errorf("priorityClassName %q", pod.PriorityClassName)
			}
			if len(pod.Tolerations) == 0 {
				t.Error("no tolerations: tainted nodes would run Envoys without graymesh")
			}
			for _, tol := range pod.Tolerations {
				// Tolerating every NoExecute taint would keep graymesh on
				// nodes being emptied for maintenance or failure.
				if tol.Key == "" && tol.Operator == corev1.TolerationOpExists && (tol.Effect == "" || tol.Effect == corev1.TaintEffectNoExecute) {
					t.Errorf("toleration %+v tolerates every NoExecute taint", tol)
				}
			}
			if pod.SecurityContext.RunAsUser == nil || *pod.SecurityContext.RunAsUser != 65532 {
				t.Error("pod runAsUser is not 65532 (the image's nonroot user)")
			}
			if len(c.Command) > 0 || len(c.Args) == 0 || c.Args[0] != "serve" {
				t.Errorf("container runs %v %v; want the image's entrypoint with serve", c.Command, c.Args)
			}

			ports := map[string]int32{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
			want := map[string]int32{"grpc-extproc": extProcPort, "grpc-xds": xdsPort, "http-admin": adminPort}
			for name, port := range want {
				if ports[name] != port {
					t.Errorf("container port %s = %d, want %d", name, ports[name], port)
				}
			}
			for probe, p := range map[string]*corev1.Probe{"/readyz": c.ReadinessProbe, "/healthz": c.LivenessProbe} {
				if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != probe || ports[p.HTTPGet.Port.String()] != adminPort {
					t.Errorf("want an HTTP probe on %s at the admin port", probe)
				}
			}

			checkGraceCoversDrain(t, pod, c)

			ann := ds.Spec.Template.Annotations
			if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != strconv.Itoa(adminPort) || ann["prometheus.io/path"] != "/metrics" {
				t.Errorf("prometheus annotations %v", ann)
			}

			vol := checkConfigVolume(t, pod, c)

			// The root filesystem is read-only: the state directory must be
			// a writable volume, and the admin token a file from the Secret.
			stateDir := flagValue(c.Args, "--state-dir")
			if stateDir == "" {
				t.Fatal("no --state-dir: the default is under $HOME on the read-only root filesystem")
			}
			if v, _ := mountFor(t, pod, c, stateDir); v.EmptyDir == nil {
				t.Errorf("--state-dir %s is not on an emptyDir", stateDir)
			}
			for _, m := range c.VolumeMounts {
				if strings.HasPrefix(stateDir+"/", m.MountPath+"/") && m.ReadOnly {
					t.Errorf("--state-dir %s is mounted read-only", stateDir)
				}
			}
			tokenFile := flagValue(c.Args, "--admin-token-file")
			if v, rel := mountFor(t, pod, c, tokenFile); v.Name != vol.Name || !secretItem(v, rel) {
				t.Errorf("--admin-token-file %q is not an item of the %s Secret: the admin API would stay closed", tokenFile, keysSecret)
			}
		})
	}
}

// checkGraceCoversDrain: the termination grace period covers the preStop
// sleep, graymesh's drain and a margin to exit.
func checkGraceCoversDrain(t *testing.T, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	drain := flagValue(c.Args, "--drain-timeout")
	d := defaultDrain
	if drain != "" {
		var err error
		if d, err = time.ParseDuration(drain); err != nil {
			t.Fatal(err)
		}
	}
	var preStop time.Duration
	if h := c.Lifecycle; h != nil && h.PreStop != nil && h.PreStop.Sleep != nil {
		preStop = time.Duration(h.PreStop.Sleep.Seconds) * time.Second
	}
	grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	if grace < preStop+d+shutdownMargin {
		t.Errorf("terminationGracePeriodSeconds %s < preStop %s + drain %s + %s", grace, preStop, d, shutdownMargin)
	}
}

// checkConfigVolume: the config path lies in a mount whose volume projects
// the generated ConfigMap's graymesh.yaml and the keys Secret; it returns
// that volume.
func checkConfigVolume(t *testing.T, pod corev1.PodSpec, c corev1.Container) corev1.Volume {
	t.Helper()
	cfgPath := flagValue(c.Args, "--config")
	vol, rel := mountFor(t, pod, c, cfgPath)
	if vol.Projected == nil {
		t.Fatalf("volume %s is not projected", vol.Name)
	}
	var haveConfig, haveSecret bool
	for _, s := range vol.Projected.Sources {
		if s.ConfigMap != nil && strings.HasPrefix(s.ConfigMap.Name, configMapPrefix) {
			for _, it := range s.ConfigMap.Items {
				haveConfig = haveConfig || (it.Key == configKey && it.Path == rel)
			}
		}
		if s.Secret != nil && s.Secret.Name == keysSecret {
			haveSecret = len(s.Secret.Items) > 0
			if s.Secret.Optional != nil && *s.Secret.Optional {
				t.Error("the keys Secret is optional; graymesh cannot start without it")
			}
		}
	}
	if !haveConfig || !haveSecret {
		t.Errorf("%s: config item %v, secret %v", cfgPath, haveConfig, haveSecret)
	}
	if m := vol.Projected.DefaultMode; m == nil || *m&0o007 != 0 {
		t.Error("projected files are world-readable; keys should not be")
	}
	return vol
}

// secretItem reports whether rel is where v projects an item of the keys
// Secret.
func secretItem(v corev1.Volume, rel string) bool {
	for _, s := range v.Projected.Sources {
		if s.Secret == nil || s.Secret.Name != keysSecret {
			continue
		}
		for _, it := range s.Secret.Items {
			if it.Path == rel {
				return true
			}
		}
	}
	return false
}

// flagValue returns the value of --name=value or --name value in args.
func flagValue(args []string, name string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// mountFor finds the volume mounted over path and path's place in it.
func mountFor(t *testing.T, pod corev1.PodSpec, c corev1.Container, path string) (corev1.Volume, string) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		rel, err := filepath.Rel(m.MountPath, path)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name {
				return v, rel
			}
		}
	}
	t.Fatalf("%s is not inside any volume mount", path)
	return corev1.Volume{}, ""
}

// TestServices: every port named and typed by appProtocol; graymesh's
// Service node-local, gRPC where Envoy needs HTTP/2.
func TestServices(t *testing.T) {
	for _, b := range allBuilds(t) {
		t.Run(b.dir, func(t *testing.T) {
			for _, s := range objectsOf[*corev1.Service](b, "Service") {
				var pods []corev1.PodTemplateSpec
				for _, w := range workloads(b) {
					if len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(w.pod.Labels)) {
						pods = append(pods, w.pod)
					}
				}
				if len(pods) != 1 {
					t.Errorf("Service %s selects %d workloads, want 1", s.Name, len(pods))
					continue
				}
				for _, p := range s.Spec.Ports {
					if errs := validation.IsValidPortName(p.Name); len(errs) > 0 {
						t.Errorf("Service %s port %d: name %q: %v", s.Name, p.Port, p.Name, errs)
					}
					if p.AppProtocol == nil || *p.AppProtocol == "" {
						t.Errorf("Service %s port %s: no appProtocol", s.Name, p.Name)
					}
					if p.TargetPort.String() != p.Name || !containerHasPort(pods[0], p.Name) {
						t.Errorf("Service %s port %s: targetPort %s is not the container port of that name", s.Name, p.Name, p.TargetPort.String())
					}
				}
			}
			s := graymeshService(t, b)
			if s.Spec.InternalTrafficPolicy == nil || *s.Spec.InternalTrafficPolicy != corev1.ServiceInternalTrafficPolicyLocal {
				t.Error("graymesh Service: internalTrafficPolicy is not Local")
			}
			want := map[string]struct {
				port  int32
				proto string
			}{"grpc-extproc": {extProcPort, "grpc"}, "grpc-xds": {xdsPort, "grpc"}, "http-admin": {adminPort, "http"}}
			for _, p := range s.Spec.Ports {
				w, ok := want[p.Name]
				if !ok || p.Port != w.port || *p.AppProtocol != w.proto {
					t.Errorf("graymesh Service port %s %d %v; want %+v", p.Name, p.Port, *p.AppProtocol, w)
				}
				delete(want, p.Name)
			}
			if len(want) > 0 {
				t.Errorf("graymesh Service lacks ports %v", want)
			}
		})
	}
}

func containerHasPort(pod corev1.PodTemplateSpec, name string) bool {
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}

// TestRBACGrantsNothing: graymesh reads its config and keys as mounted
// files, so its Role is empty and no token is mounted (rbac.yaml says why).
func TestRBACGrantsNothing(t *testing.T) {
	for _, b := range allBuilds(t) {
		t.Run(b.dir, func(t *testing.T) {
			for _, r := range objectsOf[*rbacv1.Role](b, "Role") {
				if len(r.Rules) > 0 {
					t.Errorf("Role %s grants %v", r.Name, r.Rules)
				}
			}
			if n := len(objectsOf[*rbacv1.ClusterRole](b, "ClusterRole")) + len(objectsOf[*rbacv1.ClusterRoleBinding](b, "ClusterRoleBinding")); n > 0 {
				t.Errorf("%d cluster-wide RBAC objects", n)
			}
			for _, rb := range objectsOf[*rbacv1.RoleBinding](b, "RoleBinding") {
				if rb.RoleRef.Kind != "Role" || !hasObject(b, "Role", rb.RoleRef.Name) {
					t.Errorf("RoleBinding %s refers to %s %s outside the build", rb.Name, rb.RoleRef.Kind, rb.RoleRef.Name)
				}
				for _, s := range rb.Subjects {
					if s.Kind != "ServiceAccount" || s.Namespace != namespace || !hasObject(b, "ServiceAccount", s.Name) {
						t.Errorf("RoleBinding %s subject %+v", rb.Name, s)
					}
				}
			}
			for _, sa := range objectsOf[*corev1.ServiceAccount](b, "ServiceAccount") {
				if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
					t.Errorf("ServiceAccount %s mounts a token", sa.Name)
				}
			}
		})
	}
}

// TestConfigMapConfig runs the ConfigMap's config through what
// `graymesh validate` does — strict decode, validation, key loading, Envoy
// resources — with stand-in keys written where the DaemonSet projects the
// Secret's items, and checks it against the Service and the DaemonSet.
func TestConfigMapConfig(t *testing.T) {
	for _, b := range allBuilds(t) {
		t.Run(b.dir, func(t *testing.T) {
			cfg := loadConfigMapConfig(t, b)
			for i, k := range cfg.Identity.JWT.Keys {
				if k.Secret != "" {
					t.Errorf("identity.jwt.keys[%d]: inline secret; use secret_file from the keys Secret", i)
				}
			}
			if cfg.Lane.Key != "" {
				t.Error("lane.key: inline key; use key_file from the keys Secret")
			}
			if w := cfg.Warnings(); len(w) > 0 {
				t.Errorf("warnings: %v", w)
			}
			for field, want := range map[string]struct {
				addr string
				port int
			}{
				"server.extproc_listen": {cfg.Server.ExtProcListen, extProcPort},
				"server.xds_listen":     {cfg.Server.XDSListen, xdsPort},
				"server.admin_listen":   {cfg.Server.AdminListen, adminPort},
			} {
				if want.addr != net.JoinHostPort("0.0.0.0", strconv.Itoa(want.port)) {
					t.Errorf("%s = %s; want 0.0.0.0:%d (the pod IP, for probes and node-local Envoys)", field, want.addr, want.port)
				}
			}
			s := graymeshService(t, b)
			wantAddr := net.JoinHostPort(fmt.Sprintf("%s.%s.svc.cluster.local", s.Name, s.Namespace), strconv.Itoa(servicePort(t, s, "grpc-extproc")))
			if cfg.Mesh.ExtProcAddress != wantAddr {
				t.Errorf("mesh.extproc_address = %s; want the node-local Service %s", cfg.Mesh.ExtProcAddress, wantAddr)
			}
		})
	}
}

func servicePort(t *testing.T, s *corev1.Service, name string) int {
	t.Helper()
	for _, p := range s.Spec.Ports {
		if p.Name == name {
			return int(p.Port)
		}
	}
	t.Fatalf("Service %s has no port %s", s.Name, name)
	return 0
}

var (
	testRSAOnce sync.Once
	testRSAPEM  []byte
)

// loadConfigMapConfig writes the build's graymesh.yaml and stand-ins for
// the Secret's items into a directory laid out like the DaemonSet's
// projected volume, then loads and compiles it as graymesh serve does.
func loadConfigMapConfig(t *testing.T, b *build) *config.Config {
	t.Helper()
	ds := daemonSet(t, b)
	cm := configMap(t, b, configMapPrefix)
	data, ok := cm.Data[configKey]
	if !ok {
		t.Fatalf("ConfigMap %s has no %s", cm.Name, configKey)
	}
	parsed, err := config.Parse([]byte(data), configKey)
	if err != nil {
		t.Fatalf("ConfigMap %s: %v", cm.Name, err)
	}
	publicKeys := map[string]bool{}
	for _, k := range parsed.Identity.JWT.Keys {
		publicKeys[k.PublicKeyFile] = k.PublicKeyFile != ""
	}

	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, configKey), []byte(data), 0o600))
	for _, v := range ds.Spec.Template.Spec.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, s := range v.Projected.Sources {
			if s.Secret == nil {
				continue
			}
			for _, it := range s.Secret.Items {
				p := filepath.Join(dir, it.Path)
				must(t, os.MkdirAll(filepath.Dir(p), 0o700))
				must(t, os.WriteFile(p, standInKey(t, publicKeys[it.Path]), 0o600))
			}
		}
	}
	p, err := gray.Load(filepath.Join(dir, configKey))
	if err != nil {
		t.Fatalf("ConfigMap %s with the Secret's items in place: %v", cm.Name, err)
	}
	res, err := xds.Build(p.Plan)
	if err == nil {
		err = res.Validate()
	}
	if err != nil {
		t.Fatalf("envoy resources: %v", err)
	}
	return p.Config
}

// standInKey is a test key: an RSA public key PEM or 32 random bytes as
// hex (an HMAC secret or the lane key).
func standInKey(t *testing.T, public bool) []byte {
	t.Helper()
	if !public {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		return []byte(hex.EncodeToString(b))
	}
	testRSAOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			panic(err)
		}
		testRSAPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	})
	return testRSAPEM
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
