package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/testing/toolcache"
)

// envoyGatewayVersion is the Envoy Gateway scripts/install-envoy-gateway.sh
// builds, the one whose CRDs TestManifestsAcceptedByTheAPIServer installs.
const envoyGatewayVersion = "v1.9.1"

// findEnvoyGateway is the envoy-gateway binary in the graymesh cache
// ($ENVOY_GATEWAY_BIN first).
func findEnvoyGateway() (string, error) {
	return toolcache.Find("ENVOY_GATEWAY_BIN", "envoy-gateway-"+envoyGatewayVersion, "envoy-gateway")
}

// inNetns marks the test binary run again inside its own network
// namespace.
const inNetns = "GRAYMESH_E2E_NETNS"

// TestEnvoyGatewayAsksGraymesh: Envoy Gateway (standalone: resources from
// files, its Envoy a host process — the project's Envoy 1.40) serves the
// objects `graymesh render gateway-api --gateway --backends` prints from a
// graymesh config: its Envoy asks graymesh (the EnvoyExtensionPolicy) and
// the HTTPRoute sends a whitelisted user to gray and everyone else to
// stable; a client-sent x-gray-env is removed (the ClientTrafficPolicy);
// with graymesh stopped the Gateway fails open to stable.
//
// Envoy Gateway listens on fixed ports on every interface (its xDS server
// on 18000, health on 8081, its Envoy's readiness on 19003), which cannot
// be moved: so the test runs again inside a network namespace of its own
// (unshare --net, as root or in a user namespace of its own), where every
// interface is loopback and nothing collides with the machine's ports.
func TestEnvoyGatewayAsksGraymesh(t *testing.T) {
	eg, err := findEnvoyGateway()
	if err != nil {
		missingPart(t, err, "make envoy-gateway")
	}
	if os.Getenv(inNetns) != "1" {
		runInNetns(t)
		return
	}
	must(t, exec.Command("ip", "link", "set", "lo", "up").Run())
	m := newMesh(t, `releases:
  - {name: shop-v2, env: gray, whitelist: [alice], percent: 0}`)
	listener := freePort(t)
	dir := t.TempDir()
	resources := filepath.Join(dir, "resources")
	must(t, os.MkdirAll(resources, 0o755))
	rendered, err := exec.Command(filepath.Join(binDir, "graymesh"), "render", "gateway-api", "--config", m.configPath,
		"--namespace", "default", "--gateway", "eg", "--backends").Output()
	must(t, err)
	must(t, os.WriteFile(filepath.Join(resources, "graymesh.yaml"), rendered, 0o600))
	must(t, os.WriteFile(filepath.Join(resources, "gateway.yaml"), fmt.Appendf(nil, egGateway, listener), 0o600))
	home := filepath.Join(dir, "eg")
	// Envoy Gateway's host mode runs Envoy through func-e, which uses an
	// Envoy already in its data directory for the version the EnvoyProxy
	// names, and would download one otherwise.
	envoyDir := filepath.Join(home, "data", "envoy-versions", "1.40.0", "bin")
	must(t, os.MkdirAll(envoyDir, 0o755))
	must(t, os.Symlink(envoyBin, filepath.Join(envoyDir, "envoy")))
	cfg := filepath.Join(dir, "envoy-gateway.yaml")
	must(t, os.WriteFile(cfg, fmt.Appendf(nil, egConfig, resources, home, home, home, home, freePort(t)), 0o600))
	if out, err := exec.Command(eg, "certgen", "--local", "--config-home", filepath.Join(home, "config")).CombinedOutput(); err != nil {
		t.Fatalf("envoy-gateway certgen: %v\n%s", err, out)
	}
	start(t, dir, "envoy-gateway", eg, "server", "--config-path", cfg)

	gw := fmt.Sprintf("http://127.0.0.1:%d/", listener)
	alice := "Bearer " + m.token("alice", time.Now().Add(time.Hour))
	waitFor(t, "Envoy Gateway's Envoy routing alice to gray", 90*time.Second, func() error {
		r, err := gatewayGet(gw, map[string]string{"Authorization": alice})
		if err == nil && r.Env != "gray" {
			err = fmt.Errorf("alice served by %s", r.Env)
		}
		return err
	})
	for _, c := range []struct {
		name    string
		headers map[string]string
		env     string
	}{
		{"alice (whitelisted)", map[string]string{"Authorization": alice}, "gray"},
		{"bob", map[string]string{"Authorization": "Bearer " + m.token("bob", time.Now().Add(time.Hour))}, "stable"},
		{"anonymous", nil, "stable"},
		{"anonymous sending x-gray-env: gray", map[string]string{"x-gray-env": "gray"}, "stable"},
	} {
		for range 5 {
			r, err := gatewayGet(gw, c.headers)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if r.Env != c.env || r.Gray["x-gray-env"] != c.env {
				t.Fatalf("%s: served by %s with x-gray-env %q, want %s", c.name, r.Env, r.Gray["x-gray-env"], c.env)
			}
		}
	}
	if n := metricValue(m.metrics(t), "graymesh_decisions_total"); n < 20 {
		t.Errorf("graymesh counted %v decisions for the Gateway's 20 requests", n)
	}
	// Fail open: with graymesh gone, the Gateway serves stable.
	m.graymesh.kill()
	waitFor(t, "the Gateway failing open to stable", 30*time.Second, func() error {
		r, err := gatewayGet(gw, map[string]string{"Authorization": alice})
		if err == nil && r.Env != "stable" {
			err = fmt.Errorf("alice served by %s with graymesh stopped", r.Env)
		}
		return err
	})
}

// runInNetns runs this test again in a network namespace of its own and
// fails with its output when it fails.
func runInNetns(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		missingPart(t, err, "apt-get install util-linux")
	}
	args := []string{"--net"}
	if os.Geteuid() != 0 {
		// Without root, a user namespace of its own maps the caller to
		// root in it (where the kernel allows unprivileged ones).
		args = append(args, "--map-root-user")
	}
	args = append(args, "--", os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v", "-test.timeout=10m")
	cmd := exec.Command("unshare", args...)
	cmd.Env = append(os.Environ(), inNetns+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		// The failure itself, then the end of the output (the processes'
		// logs follow a failure).
		var failures []string
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "envoygateway_test.go:") {
				failures = append(failures, line)
			}
		}
		t.Fatalf("the test inside its network namespace: %v\n%s\n...\n%s", err, strings.Join(failures, "\n"), tail(out, 6000))
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("the test inside its network namespace did not pass:\n%s", tail(out, 8000))
	}
	t.Logf("passed inside its network namespace:\n%s", tail(out, 1500))
}

func gatewayGet(url string, headers map[string]string) (shopReply, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return shopReply{}, err
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return shopReply{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return shopReply{}, fmt.Errorf("%s: %s", resp.Status, body)
	}
	var r shopReply
	if err := json.Unmarshal(body, &r); err != nil {
		return shopReply{}, fmt.Errorf("%w: %s", err, body)
	}
	return r, nil
}

// egGateway is the GatewayClass (its Envoy: the project's 1.40, run as a
// host process), and the Gateway "eg" the rendered routes attach to, on a
// loopback port.
const egGateway = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: eg
spec:
  controllerName: gateway.envoyproxy.io/gatewayclass-controller
  parametersRef:
    group: gateway.envoyproxy.io
    kind: EnvoyProxy
    name: host-envoy
    namespace: default
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: EnvoyProxy
metadata:
  name: host-envoy
  namespace: default
spec:
  provider:
    type: Host
    host:
      envoyVersion: "1.40.0"
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: eg
  namespace: default
spec:
  gatewayClassName: eg
  listeners:
    - name: http
      protocol: HTTP
      port: %d
`

// egConfig is Envoy Gateway standalone: resources from a directory,
// Envoy as a host process, Backends enabled, no metrics server.
const egConfig = `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: EnvoyGateway
gateway:
  controllerName: gateway.envoyproxy.io/gatewayclass-controller
provider:
  type: Custom
  custom:
    resource:
      type: File
      file:
        paths: [%q]
    infrastructure:
      type: Host
      host:
        configHome: %s/config
        dataHome: %s/data
        stateHome: %s/state
        runtimeDir: %s/runtime
admin:
  address:
    host: 127.0.0.1
    port: %d
telemetry:
  metrics:
    prometheus:
      disable: true
extensionApis:
  enableBackend: true
`
