// Package e2e runs graymesh, a real Envoy 1.40 and demo upstreams as
// separate processes on loopback and checks what a client sees.
package e2e

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/graymesh/graymesh/envoy"
	"github.com/graymesh/graymesh/internal/testing/testutil"
)

var (
	binDir   string
	envoyBin string
	repoRoot string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	repoRoot = filepath.Dir(wd)
	envoyBin, err = findEnvoy()
	if err != nil {
		if !partsRequired() {
			fmt.Fprintf(os.Stderr, "e2e: skipped, %v: run make e2e (installs Envoy and the other real parts, then runs these tests)\n", err)
			return 0
		}
		fmt.Fprintf(os.Stderr, "e2e: %v\n  install it with: make envoy   (or set ENVOY_BIN to an Envoy 1.40 binary)\n", err)
		return 1
	}
	binDir, err = os.MkdirTemp("", "graymesh-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(binDir)
	build := exec.Command("go", "build", "-o", binDir+"/", "./cmd/graymesh", "./cmd/demo-service")
	build.Dir = repoRoot
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building binaries: %v\n", err)
		return 1
	}
	return m.Run()
}

// partsRequired tells whether a missing real part (Envoy, Jaeger,
// Keycloak, Kafka, Chromium, etcd and kube-apiserver) fails the run: in CI
// (CI=true, as CI services set it) and under make e2e, which installs them
// all first (GRAYMESH_E2E_STRICT=1). A plain go test ./... on a fresh clone
// skips the e2e tests instead, naming what to run.
func partsRequired() bool {
	ci := os.Getenv("CI")
	return (ci != "" && ci != "false" && ci != "0") || os.Getenv("GRAYMESH_E2E_STRICT") == "1"
}

// missingPart fails the test (partsRequired) or skips it when a real part
// it needs is not installed; install is the command that installs it.
// Never a skip in CI: a test without its real part proves nothing.
func missingPart(t *testing.T, err error, install string) {
	t.Helper()
	if partsRequired() {
		t.Fatalf("%v; install it with: %s", err, install)
	}
	t.Skipf("e2e: skipped, %v: run %s, or make e2e", err, install)
}

func findEnvoy() (string, error) {
	candidates := []string{os.Getenv("ENVOY_BIN"), filepath.Join(repoRoot, ".tools", "bin", "envoy")}
	if p, err := exec.LookPath("envoy"); err == nil {
		candidates = append(candidates, p)
	}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		out, err := exec.Command(c, "--version").Output()
		if err != nil {
			continue
		}
		if !strings.Contains(string(out), "/1.40.") {
			return "", fmt.Errorf("%s is not Envoy 1.40: %s", c, strings.TrimSpace(string(out)))
		}
		return c, nil
	}
	return "", fmt.Errorf("no Envoy 1.40 binary found (ENVOY_BIN, .tools/bin/envoy, PATH)")
}

// freePort returns an unused loopback port below the kernel's ephemeral
// range (32768 and up on Linux). A port the kernel hands out for :0 is
// ephemeral, and between our check and the child's bind, any outgoing
// connection on the machine (Envoy's, the test client's) may take it.
func freePort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 200; i++ {
		port := 20000 + rand.IntN(12000)
		if taken[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		taken[port] = true
		return port
	}
	t.Fatal("no free loopback port in 20000–32000")
	return 0
}

// taken remembers the ports handed out in this run, so two tests never get
// the same one while an earlier test's process may still hold it.
var taken = map[int]bool{}

// process is a child process whose output goes to a log file.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func start(t *testing.T, dir, name string, bin string, args ...string) *process {
	t.Helper()
	return startEnv(t, dir, name, nil, bin, args...)
}

// startEnv is start with env added to the test's environment.
func startEnv(t *testing.T, dir, name string, env []string, bin string, args ...string) *process {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("---- %s log ----\n%s", name, tail(b, 4000))
		}
	})
	return p
}

// kill stops the process with SIGKILL and waits for it.
func (p *process) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// waitFor polls check until it succeeds, for about timeout when each
// check answers at once (a bounded count of tries, see testutil.Poll).
func waitFor(t *testing.T, what string, timeout time.Duration, check func() error) {
	t.Helper()
	testutil.Eventually(t, what+" not ready", testutil.Within(timeout), check)
}

func httpOK(url string) func() error {
	return func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	}
}

// mesh is one graymesh + one Envoy + shop stable and gray, on free ports.
type mesh struct {
	t          *testing.T
	dir        string
	configPath string
	listener   string
	admin      string
	extproc    string
	envoyAdmin string
	graymesh   *process
	secret     []byte
	issuer     string
	audience   string
	rsa        *rsa.PrivateKey
	rsaPEM     []byte
	client     *http.Client
}

// meshConfig is rendered with the mesh's ports. {{IDENTITY}} and
// {{RELEASES}} are replaced by the test's identity and releases sections.
const meshConfig = `
server:
  extproc_listen: 127.0.0.1:{{EXTPROC}}
  xds_listen: 127.0.0.1:{{XDS}}
  admin_listen: 127.0.0.1:{{ADMIN}}
mesh:
  listener_port: {{LISTENER}}
  message_timeout: 200ms
{{IDENTITY}}
{{RELEASES}}
services:
  - name: shop
    domains: ["*"]
    environments:
      stable: [127.0.0.1:{{STABLE}}]
      gray: [127.0.0.1:{{GRAY}}]
`

// meshIdentity is the identity section of most tests: the mesh's own HS256
// secret and RSA key, issuer and audience e2e.
const meshIdentity = `identity:
  device_cookie: gm_device
  jwt:
    algorithms: [HS256, RS256]
    issuer: e2e
    audience: e2e
    cache_size: 1000
    keys:
      - {kid: hs, alg: HS256, secret_file: hs.secret}
      - {kid: rs, alg: RS256, public_key_file: rs.pem}`

func newMesh(t *testing.T, releases string) *mesh {
	t.Helper()
	return newMeshWith(t, meshIdentity, releases)
}

// newMeshWith is newMesh with another identity section (a real identity
// provider's issuer, for one).
func newMeshWith(t *testing.T, identity, releases string) *mesh {
	t.Helper()
	dir := t.TempDir()
	m := &mesh{t: t, dir: dir, issuer: "e2e", audience: "e2e", secret: []byte("e2e-secret-0123456789abcdef-0123456789")}
	var err error
	if m.rsa, err = rsa.GenerateKey(crand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&m.rsa.PublicKey)
	m.rsaPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	must(t, os.WriteFile(filepath.Join(dir, "rs.pem"), m.rsaPEM, 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "hs.secret"), m.secret, 0o600))

	ports := map[string]int{}
	for _, k := range []string{"EXTPROC", "XDS", "ADMIN", "LISTENER", "STABLE", "GRAY", "ENVOY_ADMIN"} {
		ports[k] = freePort(t)
	}
	cfg := strings.Replace(strings.Replace(meshConfig, "{{RELEASES}}", releases, 1), "{{IDENTITY}}", identity, 1)
	for k, v := range ports {
		cfg = strings.ReplaceAll(cfg, "{{"+k+"}}", fmt.Sprint(v))
	}
	m.configPath = filepath.Join(dir, "graymesh.yaml")
	must(t, os.WriteFile(m.configPath, []byte(cfg), 0o600))
	m.listener = fmt.Sprintf("http://127.0.0.1:%d", ports["LISTENER"])
	m.admin = fmt.Sprintf("http://127.0.0.1:%d", ports["ADMIN"])
	m.extproc = fmt.Sprintf("127.0.0.1:%d", ports["EXTPROC"])
	m.envoyAdmin = fmt.Sprintf("http://127.0.0.1:%d", ports["ENVOY_ADMIN"])

	start(t, dir, "shop-stable", filepath.Join(binDir, "demo-service"), "--listen", fmt.Sprintf("127.0.0.1:%d", ports["STABLE"]), "--env", "stable", "--version", "v1")
	start(t, dir, "shop-gray", filepath.Join(binDir, "demo-service"), "--listen", fmt.Sprintf("127.0.0.1:%d", ports["GRAY"]), "--env", "gray", "--version", "v2")
	m.graymesh = start(t, dir, "graymesh", filepath.Join(binDir, "graymesh"), "serve", "--config", m.configPath, "--log-level", "debug", "--state-dir", filepath.Join(dir, "state"))
	waitFor(t, "graymesh", 10*time.Second, httpOK(m.admin+"/readyz"))

	b, err := envoy.Load("bootstrap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	boot, err := envoy.Render(b, envoy.Overrides{NodeID: t.Name(), AdminPort: uint32(ports["ENVOY_ADMIN"]), XDSHost: "127.0.0.1", XDSPort: uint32(ports["XDS"])})
	if err != nil {
		t.Fatal(err)
	}
	bootPath := filepath.Join(dir, "envoy.json")
	must(t, os.WriteFile(bootPath, boot, 0o600))
	start(t, dir, "envoy", envoyBin, "-c", bootPath, "--disable-hot-restart", "--concurrency", "2", "-l", "info")

	m.client = newClient(t)
	waitFor(t, "shop upstreams", 10*time.Second, func() error {
		if err := httpOK(fmt.Sprintf("http://127.0.0.1:%d/healthz", ports["STABLE"]))(); err != nil {
			return err
		}
		return httpOK(fmt.Sprintf("http://127.0.0.1:%d/healthz", ports["GRAY"]))()
	})
	waitFor(t, "envoy listener from xDS", 20*time.Second, httpOK(m.listener+"/"))
	return m
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// shopReply is demo-service's answer.
type shopReply struct {
	Env     string            `json:"env"`
	Version string            `json:"version"`
	Gray    map[string]string `json:"graymesh_headers"`
}

func newClient(t *testing.T) *http.Client {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// getBody sends GET / through Envoy with the given headers and returns the
// body of a 200 answer.
func (m *mesh) getBody(headers map[string]string) ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, m.listener+"/", nil)
	if err != nil {
		return nil, err
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s: %s", resp.Status, body)
	}
	return body, nil
}

// get sends GET / through Envoy with the given headers.
func (m *mesh) get(headers map[string]string) (shopReply, error) {
	body, err := m.getBody(headers)
	if err != nil {
		return shopReply{}, err
	}
	var r shopReply
	if err := json.Unmarshal(body, &r); err != nil {
		return shopReply{}, fmt.Errorf("%w: %s", err, body)
	}
	return r, nil
}

func (m *mesh) mustGet(headers map[string]string) shopReply {
	m.t.Helper()
	r, err := m.get(headers)
	if err != nil {
		m.t.Fatal(err)
	}
	return r
}

// token signs claims for subject with the mesh's HS256 secret, issuer and
// audience.
func (m *mesh) token(subject string, exp time.Time) string {
	m.t.Helper()
	claims := jwt.MapClaims{"sub": subject, "iss": m.issuer, "exp": exp.Unix()}
	if m.audience != "" {
		claims["aud"] = m.audience
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(m.secret)
	must(m.t, err)
	return s
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

// explain runs `graymesh explain --json` against the mesh's config.
func (m *mesh) explain(args ...string) (map[string]any, error) {
	return runExplain(append([]string{"--config", m.configPath}, args...))
}

// explainInForce runs `graymesh explain --json` against the running
// graymesh's admin API: the config in force, overrides included.
func (m *mesh) explainInForce(args ...string) (map[string]any, error) {
	return runExplain(append([]string{"--admin", m.admin}, args...))
}

func runExplain(args []string) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "graymesh"), append([]string{"explain", "--json"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("explain %v: %w: %s", args, err, stderr.String())
	}
	var v map[string]any
	return v, json.Unmarshal(out, &v)
}

// parallel runs f(i) for i in [0,n) on a few goroutines and returns the
// first error.
func parallel(n, workers int, f func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int)
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}
