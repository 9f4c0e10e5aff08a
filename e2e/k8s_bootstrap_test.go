package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/graymesh/graymesh/envoy"
	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/manifests"
)

// k8sEnvoy is what the graymesh-sidecars overlay ships for an Envoy: the
// bootstrap from its ConfigMap and the args of its edge gateway container.
type k8sEnvoy struct {
	bootstrap []byte
	args      []string
}

func loadK8sEnvoy(t *testing.T) k8sEnvoy {
	t.Helper()
	objs, err := manifests.Build("overlays/graymesh-sidecars")
	if err != nil {
		t.Fatal(err)
	}
	var out k8sEnvoy
	for _, o := range objs {
		switch {
		case o.Kind == "ConfigMap" && strings.HasPrefix(o.Name, "graymesh-envoy-bootstrap-"):
			var cm struct {
				Data map[string]string `json:"data"`
			}
			must(t, json.Unmarshal(o.JSON, &cm))
			out.bootstrap = []byte(cm.Data["envoy.yaml"])
		case o.Kind == "Deployment":
			var d struct {
				Spec struct {
					Template struct {
						Spec struct {
							Containers []struct {
								Name string   `json:"name"`
								Args []string `json:"args"`
							} `json:"containers"`
						} `json:"spec"`
					} `json:"template"`
				} `json:"spec"`
			}
			must(t, json.Unmarshal(o.JSON, &d))
			for _, c := range d.Spec.Template.Spec.Containers {
				if c.Name == "envoy" {
					out.args = c.Args
				}
			}
		}
	}
	if out.bootstrap == nil || out.args == nil {
		t.Fatal("the graymesh-sidecars overlay has no Envoy bootstrap ConfigMap or Envoy container")
	}
	return out
}

// TestK8sSidecarBootstrap starts a real Envoy from the sidecar bootstrap
// ConfigMap, with the args of the overlay's Envoy container, its ADS
// address rewritten from the graymesh Service's DNS name to a loopback
// graymesh and its admin port to a free one. It must come up, take its
// listener and clusters from graymesh over ADS and route through
// graymesh's ext_proc decision.
func TestK8sSidecarBootstrap(t *testing.T) {
	k := loadK8sEnvoy(t)
	dir := t.TempDir()

	secret := []byte("k8s-e2e-secret-0123456789abcdef-0123456789")
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	must(t, err)
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "rs.pem"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "hs.secret"), secret, 0o600))
	ports := map[string]int{}
	for _, name := range []string{"EXTPROC", "XDS", "ADMIN", "LISTENER", "STABLE", "GRAY", "ENVOY_ADMIN"} {
		ports[name] = freePort(t)
	}
	cfg := strings.Replace(strings.Replace(meshConfig, "{{RELEASES}}", "releases:\n  - {name: shop-v2, env: gray, whitelist: [alice]}", 1), "{{IDENTITY}}", meshIdentity, 1)
	for name, port := range ports {
		cfg = strings.ReplaceAll(cfg, "{{"+name+"}}", fmt.Sprint(port))
	}
	cfgPath := filepath.Join(dir, "graymesh.yaml")
	must(t, os.WriteFile(cfgPath, []byte(cfg), 0o600))
	admin := fmt.Sprintf("http://127.0.0.1:%d", ports["ADMIN"])
	listener := fmt.Sprintf("http://127.0.0.1:%d/", ports["LISTENER"])

	start(t, dir, "shop-stable", filepath.Join(binDir, "demo-service"), "--listen", fmt.Sprintf("127.0.0.1:%d", ports["STABLE"]), "--env", "stable", "--version", "v1")
	start(t, dir, "shop-gray", filepath.Join(binDir, "demo-service"), "--listen", fmt.Sprintf("127.0.0.1:%d", ports["GRAY"]), "--env", "gray", "--version", "v2")
	start(t, dir, "graymesh", filepath.Join(binDir, "graymesh"), "serve", "--config", cfgPath)
	waitFor(t, "graymesh", 10*time.Second, httpOK(admin+"/readyz"))

	b, err := envoy.Parse(k.bootstrap)
	must(t, err)
	boot, err := envoy.Render(b, envoy.Overrides{
		NodeID: t.Name(), AdminPort: uint32(ports["ENVOY_ADMIN"]),
		XDSHost: "127.0.0.1", XDSPort: uint32(ports["XDS"]),
	})
	must(t, err)
	bootPath := filepath.Join(dir, "envoy.json")
	must(t, os.WriteFile(bootPath, boot, 0o600))
	args := sidecarArgs(t, k.args, bootPath)
	proxy := start(t, dir, "envoy", envoyBin, args...)

	envoyAdmin := fmt.Sprintf("http://127.0.0.1:%d", ports["ENVOY_ADMIN"])
	waitFor(t, "envoy listener from graymesh's xDS", 20*time.Second, func() error {
		select {
		case <-proxy.done:
			t.Fatalf("Envoy exited with the Kubernetes bootstrap and args %v", args)
		default:
		}
		return httpOK(listener)()
	})
	stats := getText(t, envoyAdmin+"/stats?filter=^control_plane.connected_state$")
	if !strings.Contains(stats, "control_plane.connected_state: 1") {
		t.Fatalf("Envoy is not connected to graymesh's ADS: %q", stats)
	}

	client := newClient(t)
	for _, tc := range []struct {
		name, auth, env, reason string
	}{
		{"anonymous", "", "stable", "no-identity"},
		{"whitelisted", "Bearer " + hsToken(t, secret, "alice"), "gray", "whitelist"},
	} {
		req, err := http.NewRequest(http.MethodGet, listener, nil)
		must(t, err)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := client.Do(req)
		must(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		must(t, err)
		var r shopReply
		if err := json.Unmarshal(body, &r); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s %s", tc.name, resp.Status, body)
		}
		if r.Env != tc.env || r.Gray["x-gray-reason"] != tc.reason {
			t.Errorf("%s: served by %s with reason %q; want %s, %q", tc.name, r.Env, r.Gray["x-gray-reason"], tc.env, tc.reason)
		}
	}
}

// sidecarArgs are the Envoy container's args with --config-path at the
// test's bootstrap and the pod name filled in.
func sidecarArgs(t *testing.T, podArgs []string, bootPath string) []string {
	t.Helper()
	args := append([]string(nil), podArgs...)
	for i := range args {
		switch {
		case i > 0 && args[i-1] == "--config-path":
			args[i] = bootPath
		case strings.Contains(args[i], "$(POD_NAME)"):
			args[i] = strings.ReplaceAll(args[i], "$(POD_NAME)", "graymesh-edge-e2e")
		}
	}
	if !slices.Contains(args, bootPath) {
		t.Fatalf("the Envoy container's args %v name no --config-path", podArgs)
	}
	return args
}

func getText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	must(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	return string(b)
}

func hsToken(t *testing.T, secret []byte, subject string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": subject, "iss": "e2e", "aud": "e2e", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(secret)
	must(t, err)
	return s
}

// TestK8sDaemonSetPod runs the graymesh binary as the DaemonSet's pod
// would: its args, its ConfigMap's config (listen addresses moved to free
// loopback ports), its volumes laid out in a temporary directory (the
// projected config and stand-in Secret items, the emptyDir state), and
// checks the probes, the admin token, the state directory and a drain on
// SIGTERM well within the grace period.
func TestK8sDaemonSetPod(t *testing.T) {
	ds, configMaps := baseDaemonSet(t)
	pod := ds.Spec.Template.Spec
	c := pod.Containers[0]
	dir := t.TempDir()
	ports := map[string]int{}
	for _, name := range []string{"EXTPROC", "XDS", "ADMIN"} {
		ports[name] = freePort(t)
	}

	volumeDirs := layOutVolumes(t, dir, pod, c, configMaps, ports)
	args := mountedArgs(c.Args, volumeDirs)
	gm := start(t, dir, "graymesh-daemonset", filepath.Join(binDir, "graymesh"), args...)

	admin := fmt.Sprintf("http://127.0.0.1:%d", ports["ADMIN"])
	waitFor(t, "readiness probe "+c.ReadinessProbe.HTTPGet.Path, 10*time.Second, func() error {
		select {
		case <-gm.done:
			t.Fatalf("graymesh exited with the DaemonSet's args %v", args)
		default:
		}
		return httpOK(admin + c.ReadinessProbe.HTTPGet.Path)()
	})
	must(t, httpOK(admin+c.LivenessProbe.HTTPGet.Path)())
	if metrics := getText(t, admin+ds.Spec.Template.Annotations["prometheus.io/path"]); !strings.Contains(metrics, "graymesh_config_info") {
		t.Errorf("scrape path serves no graymesh metrics:\n%s", tail([]byte(metrics), 500))
	}

	mapped := func(flag string) string {
		for _, a := range args {
			if v, ok := strings.CutPrefix(a, flag+"="); ok {
				return v
			}
		}
		t.Fatalf("the DaemonSet passes no %s=", flag)
		return ""
	}
	token, err := os.ReadFile(mapped("--admin-token-file"))
	must(t, err)
	for _, tc := range []struct {
		auth string
		want int
	}{{"", http.StatusUnauthorized}, {"Bearer " + strings.TrimSpace(string(token)), http.StatusOK}} {
		req, err := http.NewRequest(http.MethodGet, admin+"/status", nil)
		must(t, err)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("/status with %q: %s, want %d", tc.auth, resp.Status, tc.want)
		}
	}
	if entries, err := os.ReadDir(mapped("--state-dir")); err != nil || len(entries) == 0 {
		t.Errorf("nothing in the state volume (%v): --state-dir is not where the DaemonSet mounts it", err)
	}

	// SIGTERM after the preStop sleep: graymesh drains and exits 0 well
	// within the grace period.
	grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		grace -= time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	must(t, gm.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-gm.done:
		if code := gm.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("exit status %d after SIGTERM", code)
		}
	case <-time.After(grace):
		t.Fatalf("still running %s after SIGTERM: the kubelet would kill it", grace)
	}
}

// baseDaemonSet is the base build's DaemonSet and its ConfigMaps by name.
func baseDaemonSet(t *testing.T) (appsv1.DaemonSet, map[string]corev1.ConfigMap) {
	t.Helper()
	objs, err := manifests.Build("base")
	must(t, err)
	var ds appsv1.DaemonSet
	configMaps := map[string]corev1.ConfigMap{}
	for _, o := range objs {
		switch o.Kind {
		case "DaemonSet":
			must(t, json.Unmarshal(o.JSON, &ds))
		case "ConfigMap":
			var cm corev1.ConfigMap
			must(t, json.Unmarshal(o.JSON, &cm))
			configMaps[cm.Name] = cm
		}
	}
	return ds, configMaps
}

// layOutVolumes lays each volume the pod mounts out under dir/<volume>:
// the projected ConfigMap items (listen addresses moved to ports on
// loopback) and stand-in Secret items; it returns the local folder of each
// mount path.
func layOutVolumes(t *testing.T, dir string, pod corev1.PodSpec, c corev1.Container, configMaps map[string]corev1.ConfigMap, ports map[string]int) map[string]string {
	t.Helper()
	volumeDirs := map[string]string{}
	for _, m := range c.VolumeMounts {
		volumeDirs[m.MountPath] = filepath.Join(dir, m.Name)
	}
	for _, v := range pod.Volumes {
		root := filepath.Join(dir, v.Name)
		must(t, os.MkdirAll(root, 0o700))
		if v.Projected == nil {
			continue
		}
		var publicKeys []string
		for _, src := range v.Projected.Sources {
			if src.ConfigMap == nil {
				continue
			}
			cm, ok := configMaps[src.ConfigMap.Name]
			if !ok {
				t.Fatalf("volume %s: no ConfigMap %s", v.Name, src.ConfigMap.Name)
			}
			for _, it := range src.ConfigMap.Items {
				cfg := loopbackConfig(t, cm.Data[it.Key], ports)
				parsed, err := config.Parse(cfg, it.Path)
				must(t, err)
				for _, k := range parsed.Identity.JWT.Keys {
					publicKeys = append(publicKeys, k.PublicKeyFile)
				}
				writeFile(t, filepath.Join(root, it.Path), cfg)
			}
		}
		for _, src := range v.Projected.Sources {
			if src.Secret == nil {
				continue
			}
			for _, it := range src.Secret.Items {
				writeFile(t, filepath.Join(root, it.Path), standInSecret(t, slices.Contains(publicKeys, it.Path)))
			}
		}
	}
	return volumeDirs
}

// mountedArgs rewrites each --flag=/path argument under a mount path to
// the mount's local folder.
func mountedArgs(podArgs []string, volumeDirs map[string]string) []string {
	var args []string
	for _, a := range podArgs {
		if name, value, ok := strings.Cut(a, "="); ok && strings.HasPrefix(value, "/") {
			for mount, local := range volumeDirs {
				if rest, ok := strings.CutPrefix(value, mount+"/"); ok {
					a = name + "=" + filepath.Join(local, rest)
				} else if value == mount {
					a = name + "=" + local
				}
			}
		}
		args = append(args, a)
	}
	return args
}

// loopbackConfig moves the config's listen addresses to the test's ports
// on loopback and leaves everything else as shipped.
func loopbackConfig(t *testing.T, data string, ports map[string]int) []byte {
	t.Helper()
	var doc yaml.Node
	must(t, yaml.Unmarshal([]byte(data), &doc))
	set := func(section, key, value string) {
		root := doc.Content[0]
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value != section {
				continue
			}
			m := root.Content[i+1]
			for j := 0; j+1 < len(m.Content); j += 2 {
				if m.Content[j].Value == key {
					m.Content[j+1].Value = value
					return
				}
			}
		}
		t.Fatalf("the config has no %s.%s", section, key)
	}
	set("server", "extproc_listen", fmt.Sprintf("127.0.0.1:%d", ports["EXTPROC"]))
	set("server", "xds_listen", fmt.Sprintf("127.0.0.1:%d", ports["XDS"]))
	set("server", "admin_listen", fmt.Sprintf("127.0.0.1:%d", ports["ADMIN"]))
	set("mesh", "extproc_address", fmt.Sprintf("127.0.0.1:%d", ports["EXTPROC"]))
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	must(t, enc.Encode(&doc))
	must(t, enc.Close())
	return buf.Bytes()
}

// standInSecret is a test value for a Secret item: an RSA public key PEM,
// or 32 random bytes as hex.
func standInSecret(t *testing.T, publicKey bool) []byte {
	t.Helper()
	if publicKey {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		must(t, err)
		der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		must(t, err)
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	b := make([]byte, 32)
	_, err := rand.Read(b)
	must(t, err)
	return []byte(hex.EncodeToString(b))
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o700))
	must(t, os.WriteFile(path, data, 0o600))
}
