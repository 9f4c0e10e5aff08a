package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/graymesh/graymesh/envoy"
	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/lane"
	"github.com/graymesh/graymesh/internal/testing/testutil"
	"github.com/graymesh/graymesh/internal/testing/toolcache"
)

// jaegerConfig runs Jaeger v2 all-in-one with in-memory storage on the given
// loopback ports only.
const jaegerConfig = `
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics: {level: none}
    logs: {level: warn}
extensions:
  jaeger_query:
    storage: {traces: mem}
    enable_tracing: false # no self-traces to a default localhost:4317 (examples/jaeger.yaml)
    http: {endpoint: "127.0.0.1:{{QUERY}}"}
    grpc: {endpoint: "127.0.0.1:{{QUERY_GRPC}}"}
  jaeger_storage:
    backends:
      mem: {memory: {max_traces: 100000}}
  healthcheckv2:
    use_v2: true
    http: {endpoint: "127.0.0.1:{{HEALTH}}"}
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:{{OTLP}}"}
processors:
  batch: {timeout: 200ms}
exporters:
  jaeger_storage_exporter: {trace_storage: mem}
`

func findJaeger() (string, error) {
	return toolcache.Find("JAEGER_BIN", "jaeger-v1.76.0", "jaeger")
}

// startJaeger starts a real Jaeger and returns its OTLP gRPC address and
// query base URL.
func startJaeger(t *testing.T, dir string) (otlp, query string) {
	t.Helper()
	bin, err := findJaeger()
	if err != nil {
		missingPart(t, err, "make jaeger (or set JAEGER_BIN)")
	}
	ports := map[string]int{}
	cfg := jaegerConfig
	for _, k := range []string{"QUERY", "QUERY_GRPC", "HEALTH", "OTLP"} {
		ports[k] = freePort(t)
		cfg = strings.ReplaceAll(cfg, "{{"+k+"}}", fmt.Sprint(ports[k]))
	}
	path := filepath.Join(dir, "jaeger.yaml")
	must(t, os.WriteFile(path, []byte(cfg), 0o600))
	start(t, dir, "jaeger", bin, "--config", path)
	query = fmt.Sprintf("http://127.0.0.1:%d", ports["QUERY"])
	waitFor(t, "jaeger", 30*time.Second, httpOK(query+"/api/services"))
	return fmt.Sprintf("127.0.0.1:%d", ports["OTLP"]), query
}

// fourHop is the mesh of examples/mesh.yaml on free ports.
type fourHop struct {
	*mesh
	query    string
	edge     string
	ports    map[int]int // example port → free port
	laneKey  string
	otlp     string
	services map[string]*process
	// envoyAdmins is each sidecar's admin base URL, by service.
	envoyAdmins map[string]string
}

var exampleApps = []struct {
	service, env, version string
	port                  int
	calls                 string
	outbound              int
}{
	{"frontend", "stable", "v1", 9201, "orders", 15001},
	{"frontend", "gray", "v2", 9207, "orders", 15001},
	{"orders", "stable", "v1", 9202, "inventory", 15002},
	{"orders", "gray", "v2", 9203, "inventory", 15002},
	{"inventory", "stable", "v1", 9204, "pricing", 15003},
	{"pricing", "stable", "v1", 9205, "", 0},
	{"pricing", "gray", "v2", 9206, "", 0},
}

// newFourHop starts the four-hop example mesh; edits change the example
// config before graymesh reads it.
func newFourHop(t *testing.T, edits ...func(cfg string) string) *fourHop {
	t.Helper()
	dir := t.TempDir()
	otlp, query := startJaeger(t, dir)
	example, err := os.ReadFile(filepath.Join(repoRoot, "examples", "mesh.yaml"))
	must(t, err)
	// Give every port the example names a free one, and point tracing at
	// this test's Jaeger.
	m := &fourHop{mesh: &mesh{t: t, dir: dir}, query: query, otlp: otlp, ports: map[int]int{}, services: map[string]*process{}, envoyAdmins: map[string]string{}}
	cfg := regexp.MustCompile(`(127\.0\.0\.1:|_port: )(\d+)`).ReplaceAllStringFunc(string(example), func(s string) string {
		i := strings.LastIndexAny(s, ": ") + 1
		var p int
		fmt.Sscan(s[i:], &p)
		if p == 4317 {
			return s[:i] + strings.TrimPrefix(otlp, "127.0.0.1:")
		}
		if _, ok := m.ports[p]; !ok {
			m.ports[p] = freePort(t)
		}
		return s[:i] + fmt.Sprint(m.ports[p])
	})
	// A generous ext_proc budget: these tests check routing, and a
	// decision that misses the 50 ms budget on a loaded 2-core machine
	// would (correctly) fail open to stable and muddy the check.
	cfg = strings.Replace(cfg, "message_timeout: 50ms", "message_timeout: 1s", 1)
	for _, edit := range edits {
		cfg = edit(cfg)
	}
	m.laneKey = regexp.MustCompile(`(?m)^\s+key: (\S+)`).FindStringSubmatch(cfg)[1]
	m.secret = []byte(regexp.MustCompile(`secret: ([^}\s]+)`).FindStringSubmatch(cfg)[1])
	m.issuer = regexp.MustCompile(`issuer: (\S+)`).FindStringSubmatch(cfg)[1]
	m.audience = regexp.MustCompile(`audience: (\S+)`).FindStringSubmatch(cfg)[1]
	m.configPath = filepath.Join(dir, "mesh.yaml")
	must(t, os.WriteFile(m.configPath, []byte(cfg), 0o600))
	m.admin = fmt.Sprintf("http://127.0.0.1:%d", m.ports[18180])
	m.edge = fmt.Sprintf("http://127.0.0.1:%d", m.ports[10001])
	m.listener = m.edge

	for _, a := range exampleApps {
		m.startApp(a.service, a.env, a.version, a.port, a.calls, a.outbound)
	}
	m.graymesh = start(t, dir, "graymesh", filepath.Join(binDir, "graymesh"), "serve", "--config", m.configPath, "--log-level", "debug", "--state-dir", filepath.Join(dir, "state"))
	waitFor(t, "graymesh", 10*time.Second, httpOK(m.admin+"/readyz"))
	for _, svc := range []string{"frontend", "orders", "inventory", "pricing"} {
		b, err := envoy.Load("sidecar.yaml")
		must(t, err)
		adminPort := freePort(t)
		m.envoyAdmins[svc] = fmt.Sprintf("http://127.0.0.1:%d", adminPort)
		boot, err := envoy.Render(b, envoy.Overrides{NodeID: "sidecar-" + svc, NodeCluster: svc, AdminPort: uint32(adminPort), XDSHost: "127.0.0.1", XDSPort: uint32(m.ports[18100])})
		must(t, err)
		path := filepath.Join(dir, "envoy-"+svc+".json")
		must(t, os.WriteFile(path, boot, 0o600))
		start(t, dir, "envoy-"+svc, envoyBin, "-c", path, "--disable-hot-restart", "--concurrency", "1", "-l", "info")
	}
	m.client = newClient(t)
	for _, p := range []int{10004, 10003, 10002, 10001} {
		waitFor(t, fmt.Sprintf("sidecar inbound %d", p), 20*time.Second, httpOK(fmt.Sprintf("http://127.0.0.1:%d/", m.ports[p])))
	}
	return m
}

func (m *fourHop) startApp(service, env, version string, port int, calls string, outbound int, extra ...string) {
	args := []string{"--service", service, "--env", env, "--version", version, "--listen", fmt.Sprintf("127.0.0.1:%d", m.ports[port]), "--otlp", m.otlp}
	if calls != "" {
		args = append(args, "--calls", calls, "--outbound", fmt.Sprintf("127.0.0.1:%d", m.ports[outbound]))
	}
	args = append(args, extra...)
	name := service + "-" + env
	if len(extra) > 0 {
		name += "-" + strings.TrimLeft(extra[0], "-")
	}
	m.services[service+"-"+env] = start(m.t, m.dir, name, filepath.Join(binDir, "demo-service"), args...)
	waitFor(m.t, name, 10*time.Second, httpOK(fmt.Sprintf("http://127.0.0.1:%d/healthz", m.ports[port])))
}

// chainReply is demo-service's answer with the calls it made.
type chainReply struct {
	Service string            `json:"service"`
	Env     string            `json:"env"`
	Gray    map[string]string `json:"graymesh_headers"`
	Calls   []chainReply      `json:"calls"`
	Errors  []string          `json:"errors"`
}

// hops flattens a single-call chain into "service:env" steps.
func (c chainReply) hops() []string {
	out := []string{c.Service + ":" + c.Env}
	for _, next := range c.Calls {
		out = append(out, next.hops()...)
	}
	return out
}

func newTraceID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// chain sends one request through the edge, in a trace whose id the test
// chose, and returns the whole chain's answer.
func (m *fourHop) chain(traceID string, headers map[string]string) (chainReply, error) {
	h := map[string]string{"traceparent": "00-" + traceID + "-" + traceID[:16] + "-01"}
	for k, v := range headers {
		h[k] = v
	}
	body, err := m.getBody(h)
	if err != nil {
		return chainReply{}, err
	}
	var r chainReply
	if err := json.Unmarshal(body, &r); err != nil {
		return chainReply{}, fmt.Errorf("%w: %s", err, body)
	}
	return r, nil
}

// verifyTraces runs `graymesh verify-traces --json` against the test's
// Jaeger and returns the report and the exit code.
func (m *fourHop) verifyTraces() (report, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "graymesh"), "verify-traces", "--jaeger", m.query, "--service", "frontend", "--since", "10m", "--json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	case err != nil:
		return report{}, -1, err
	}
	var r report
	if err := json.Unmarshal(out, &r); err != nil {
		return report{}, code, fmt.Errorf("%w: %s %s", err, out, stderr.String())
	}
	return r, code, nil
}

type report struct {
	TracesChecked int     `json:"traces_checked"`
	Undecided     int     `json:"undecided"`
	Native        int     `json:"native"`
	HopsChecked   int     `json:"hops_checked"`
	Leaks         int     `json:"leaks"`
	LeakRate      float64 `json:"leak_rate"`
	FailOpens     int     `json:"fail_opens"`
	Stress        int     `json:"stress"`
	StressLost    int     `json:"stress_lost"`
	Traces        []struct {
		TraceID     string `json:"trace_id"`
		Decided     bool   `json:"decided"`
		Native      bool   `json:"native"`
		Reason      string `json:"reason"`
		Lane        string `json:"lane"`
		FailOpen    bool   `json:"fail_open"`
		DecidedLane string `json:"decided_lane"`
		Hops        []struct {
			Service, Served, Lane, Fallback, Reason, From string
			Leak                                          bool
		} `json:"hops"`
		Leaks int `json:"leaks"`
	} `json:"traces"`
	Read struct {
		Requests int  `json:"requests"`
		Complete bool `json:"complete"`
	} `json:"read"`
}

// waitForTraces polls verify-traces until every id has its edge decision
// span (or its edge span says Envoy split it itself) and all four hops read from the services' own spans (until a
// service's span arrives, verify-traces reads that hop from its sidecar's
// span).
func (m *fourHop) waitForTraces(ids []string) (report, int) {
	m.t.Helper()
	const hops = 4
	var (
		r       report
		code    int
		missing []string
	)
	err := testutil.Poll{Tries: 90, Every: 500 * time.Millisecond}.Until(func() error {
		var err error
		r, code, err = m.verifyTraces()
		if err != nil {
			m.t.Fatal(err)
		}
		complete := map[string]bool{}
		for _, tr := range r.Traces {
			own := 0 // hops read from the service's own span
			for _, h := range tr.Hops {
				if h.From == "" {
					own++
				}
			}
			if own >= hops && (tr.Decided || tr.Native) {
				complete[tr.TraceID] = true
			}
		}
		missing = missing[:0]
		for _, id := range ids {
			if !complete[id] {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%d of %d traces not complete in Jaeger, e.g. %v", len(missing), len(ids), missing[:min(3, len(missing))])
		}
		return nil
	})
	if err != nil {
		m.t.Fatal(err)
	}
	return r, code
}

//nolint:funlen // one mesh, one story: send, then prove every trace in Jaeger
func TestMeshLanesProvenByTraces(t *testing.T) {
	m := newFourHop(t)
	const subjects, perSubject = 100, 2
	type sent struct {
		subject, explained string
		hops               []string
	}
	sentByTrace := map[string]sent{}
	var ids []string
	streamsBefore := m.extProcStreams()
	missesBefore := m.envoyStats(`jwt_authn\.jwt_cache_miss$`)
	for i := 0; i < subjects; i++ {
		subject := fmt.Sprintf("user-%d", i)
		if i == 0 {
			subject = "alice"
		}
		ex, err := m.explain("--subject", subject)
		must(t, err)
		for j := 0; j < perSubject; j++ {
			id := newTraceID()
			r, err := m.chain(id, bearer(m.token(subject, time.Now().Add(time.Hour))))
			if err != nil {
				t.Fatalf("%s: %v", subject, err)
			}
			sentByTrace[id] = sent{subject: subject, explained: ex["served"].(string), hops: r.hops()}
			ids = append(ids, id)
		}
	}
	grayChain := []string{"frontend:gray", "orders:gray", "inventory:stable", "pricing:gray"}
	stableChain := []string{"frontend:stable", "orders:stable", "inventory:stable", "pricing:stable"}
	grays := 0
	for id, s := range sentByTrace {
		want := stableChain
		if s.explained == "gray" {
			want = grayChain
			grays++
		}
		if strings.Join(s.hops, " ") != strings.Join(want, " ") {
			t.Fatalf("trace %s (%s, explain says %s): chain %v, want %v", id, s.subject, s.explained, s.hops, want)
		}
	}
	if grays == 0 || grays == len(sentByTrace) {
		t.Fatalf("%d of %d requests gray: the sample must mix gray and stable", grays, len(sentByTrace))
	}
	// Each 4-hop request opened exactly one ext_proc stream, at the edge:
	// the inner sidecars verified the lane in Envoy.
	streams := m.extProcStreams()
	for _, svc := range []string{"frontend", "orders", "inventory", "pricing"} {
		want := 0
		if svc == "frontend" {
			want = len(ids)
		}
		if got := streams[svc] - streamsBefore[svc]; got != want {
			t.Fatalf("%s's Envoy opened %d ext_proc streams for %d chains, want %d (all: before %v, after %v)", svc, got, len(ids), want, streamsBefore, streams)
		}
	}
	// Every chain carried one of a handful of lanes (gray or stable, one
	// per window), so each inner sidecar verified a signature only for
	// the first of each; the rest came from its JWT cache.
	misses, hits := m.envoyStats(`jwt_authn\.jwt_cache_miss$`), m.envoyStats(`jwt_authn\.jwt_cache_hit$`)
	for _, svc := range []string{"orders", "inventory", "pricing"} {
		if n := misses[svc] - missesBefore[svc]; n > 4 || hits[svc] < len(ids)-4 {
			t.Fatalf("%s's Envoy verified %d lanes (cache hits %d) for %d chains: the lane is not one per window", svc, n, hits[svc], len(ids))
		}
	}
	t.Logf("ext_proc streams for %d chains: %v; lane signatures verified by the inner sidecars: %v, the rest from their JWT cache: %v", len(ids), streams, misses, hits)

	r, code := m.waitForTraces(ids)
	if code != 0 || r.Leaks != 0 || !r.Read.Complete {
		t.Fatalf("verify-traces exit %d, %d leaks in %d traces, read complete %v", code, r.Leaks, r.TracesChecked, r.Read.Complete)
	}
	byID := map[string]int{}
	for i, tr := range r.Traces {
		byID[tr.TraceID] = i
	}
	for _, id := range ids {
		tr := r.Traces[byID[id]]
		var got []string
		for _, h := range tr.Hops {
			step := h.Service + ":" + h.Served
			if h.Fallback != "" {
				step += "(fallback)"
			}
			got = append(got, step)
		}
		want := "frontend:stable orders:stable inventory:stable pricing:stable"
		if sentByTrace[id].explained == "gray" {
			want = "frontend:gray orders:gray inventory:stable(fallback) pricing:gray"
		}
		if strings.Join(got, " ") != want || tr.Lane != sentByTrace[id].explained {
			t.Fatalf("trace %s in Jaeger: lane %s hops %v, want %s", id, tr.Lane, got, want)
		}
		// Each hop's reason comes from its own sidecar's span: the edge's
		// decision at frontend, the followed lane at every inner hop.
		for i, h := range tr.Hops {
			if (i == 0) == (h.Reason == "lane") || h.Reason == "" || h.From != "" {
				t.Fatalf("trace %s: hop %d %s reason %q from %q", id, i, h.Service, h.Reason, h.From)
			}
		}
	}
	t.Logf("verify-traces: %d traces checked (%d ours, %d gray, %d undecided), %d hops, %d leaks, %d searches", r.TracesChecked, len(ids), grays, r.Undecided, r.HopsChecked, r.Leaks, r.Read.Requests)
	m.assertDecisionUnderEnvoy(ids[0])
	m.assertGrayTraceVocabulary(ids[0])

	anonymous := newTraceID()
	if r, err := m.chain(anonymous, nil); err != nil || strings.Join(r.hops(), " ") != strings.Join(stableChain, " ") {
		t.Fatalf("anonymous chain %v: %v", r.hops(), err)
	}
	m.assertAnonymousTraceVocabulary(anonymous)
}

// extProcStreams reads, from each sidecar's Envoy admin /stats, how many
// ext_proc streams it has opened (every ext_proc filter's streams_started;
// 0 where it has none).
func (m *fourHop) extProcStreams() map[string]int {
	return m.envoyStats(`ext_proc\.streams_started$`)
}

// envoyStats sums, per sidecar, the counters of its Envoy whose names
// match the regular expression filter.
func (m *fourHop) envoyStats(filter string) map[string]int {
	out := map[string]int{}
	for svc, admin := range m.envoyAdmins {
		out[svc] = sumEnvoyCounters(m.t, admin, filter)
	}
	return out
}

// sumEnvoyCounters sums the counters whose names match the regular
// expression filter on the Envoy whose admin address is admin (/stats).
func sumEnvoyCounters(t *testing.T, admin, filter string) int {
	t.Helper()
	sum := 0
	for _, line := range strings.Split(getText(t, admin+"/stats?filter="+url.QueryEscape(filter)), "\n") {
		if _, v, ok := strings.Cut(line, ": "); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			must(t, err)
			sum += n
		}
	}
	return sum
}

// assertDecisionUnderEnvoy checks that graymesh's edge decision span
// descends from the span the edge Envoy opened for its ext_proc call: the
// trace context crossed the gRPC metadata.
func (m *fourHop) assertDecisionUnderEnvoy(traceID string) {
	t := m.t
	t.Helper()
	spans, err := m.traceSpans(traceID)
	must(t, err)
	byID := map[string]int{}
	decision := -1
	for i, s := range spans {
		byID[s.ID] = i
		if s.tag(wire.AttrHop) == wire.HopEdge {
			decision = i
		}
	}
	if decision < 0 {
		t.Fatalf("trace %s has no edge decision span", traceID)
	}
	var chain []string
	for i, hops := decision, 0; hops < 5; hops++ {
		s := spans[i]
		chain = append(chain, s.Process+":"+s.Name)
		if s.Process == "frontend-sidecar" {
			t.Logf("decision span ancestry: %s", strings.Join(chain, " ← "))
			return
		}
		next, ok := byID[s.Parent]
		if !ok {
			break
		}
		i = next
	}
	t.Fatalf("edge decision span does not descend from the edge Envoy's span: %s", strings.Join(chain, " ← "))
}

// assertGrayTraceVocabulary checks, on one of alice's gray chains, that
// every span says in the trace vocabulary which environment served its
// hop and why: the edge decides gray by whitelist, each inner sidecar
// follows the lane its Envoy verified (no graymesh span: graymesh is not
// asked), inventory (no gray version) is served by stable with the lane
// kept, and the outbound spans are the client side of each call.
func (m *fourHop) assertGrayTraceVocabulary(traceID string) {
	m.t.Helper()
	got := m.waitForSpans(traceID,
		"frontend-sidecar inbound frontend gray", "orders-sidecar inbound orders", "inventory-sidecar inbound inventory", "pricing-sidecar inbound pricing",
		"frontend-sidecar outbound frontend->orders", "orders-sidecar outbound orders->inventory", "inventory-sidecar outbound inventory->pricing",
		"graymesh decide frontend",
		"frontend serve frontend gray", "orders serve orders gray", "inventory serve inventory stable", "pricing serve pricing gray")
	m.assertOnlyTheEdgeAsksGraymesh(traceID)
	const (
		variant, reason, lane, fallback = wire.AttrVariant, wire.AttrReason, wire.AttrLane, wire.AttrFallback
	)
	gray := func(r string) map[string]string {
		return map[string]string{variant: "gray", reason: r, lane: "gray", fallback: ""}
	}
	inventory := map[string]string{variant: "stable", reason: "lane", lane: "gray", fallback: "no-gray-version"}
	for name, want := range map[string]map[string]string{
		"frontend-sidecar inbound frontend gray": gray("whitelist"),
		"graymesh decide frontend":               gray("whitelist"),
		"orders-sidecar inbound orders":          gray("lane"),
		"inventory-sidecar inbound inventory":    inventory,
		"pricing-sidecar inbound pricing":        gray("lane"),
		"orders serve orders gray":               {variant: "gray", lane: "gray", fallback: ""},
		"inventory serve inventory stable":       {variant: "stable", lane: "gray", fallback: "no-gray-version"},
	} {
		m.expectTags(got[name], want)
	}
	m.expectTags(got["graymesh decide frontend"], map[string]string{
		wire.AttrFlagKey: wire.FlagKey, wire.AttrProvider: wire.ProviderName, wire.AttrRelease: "shop-v2", wire.AttrHop: wire.HopEdge,
	})
	for _, name := range []string{"frontend-sidecar outbound frontend->orders", "orders-sidecar outbound orders->inventory", "inventory-sidecar outbound inventory->pricing"} {
		m.expectTags(got[name], map[string]string{"span.kind": "client", variant: "", reason: "", lane: ""})
	}
	m.assertNoEmptyAttributes(traceID)
	m.assertDocumentedSearchesFind(traceID)
	m.logTrace(traceID)
}

// assertAnonymousTraceVocabulary checks an anonymous caller's chain:
// stable everywhere, the edge says why (no-identity), and the inner hops,
// handed no lane, are served by default — not in error.
func (m *fourHop) assertAnonymousTraceVocabulary(traceID string) {
	m.t.Helper()
	got := m.waitForSpans(traceID,
		"frontend-sidecar inbound frontend stable", "orders-sidecar inbound orders", "inventory-sidecar inbound inventory", "pricing-sidecar inbound pricing",
		"graymesh decide frontend")
	for _, name := range []string{"frontend-sidecar inbound frontend stable", "graymesh decide frontend"} {
		m.expectTags(got[name], map[string]string{wire.AttrVariant: "stable", wire.AttrReason: "no-identity"})
	}
	for _, svc := range []string{"orders", "inventory", "pricing"} {
		m.expectTags(got[svc+"-sidecar inbound "+svc], map[string]string{
			// Handed no lane: stable by default, and no lane named.
			wire.AttrVariant: "stable", wire.AttrReason: wire.ReasonDefault, wire.AttrLane: "", wire.AttrFallback: "", wire.AttrLaneProblem: "",
		})
	}
	m.assertOnlyTheEdgeAsksGraymesh(traceID)
	m.assertNoEmptyAttributes(traceID)
}

// assertOnlyTheEdgeAsksGraymesh fails when a trace holds a graymesh span
// other than the edge's decision, or an ext_proc call from an inner
// sidecar: inner hops verify the lane in Envoy.
func (m *fourHop) assertOnlyTheEdgeAsksGraymesh(traceID string) {
	m.t.Helper()
	spans, err := m.traceSpans(traceID)
	must(m.t, err)
	for _, s := range spans {
		innerCall := strings.HasSuffix(s.Process, "-sidecar") && s.Process != "frontend-sidecar" && strings.Contains(s.Name, "ExternalProcessor")
		if strings.HasPrefix(s.Name, wire.SpanFollow) || s.tag(wire.AttrHop) == wire.HopInner || innerCall {
			m.t.Errorf("trace %s: %s — an inner hop asked graymesh", traceID, s)
		}
	}
}

func TestMeshForgedLaneAtEdgeStaysStable(t *testing.T) {
	m := newFourHop(t)
	signer, err := lane.NewSigner([]byte(m.laneKey), time.Minute)
	must(t, err)
	other, err := lane.NewSigner([]byte("not-the-mesh-key-0123456789abcdef-0123"), time.Minute)
	must(t, err)
	genuine := signer.Sign("gray", "shop-v2", "any", time.Now())
	forged := map[string]map[string]string{
		"x-gray-env header":              {"x-gray-env": "gray"},
		"lane signed with another key":   {wire.HeaderLane: other.Sign("gray", "shop-v2", "any", time.Now())},
		"replayed genuine lane":          {wire.HeaderLane: genuine},
		"genuine lane in baggage":        {"baggage": "userId=1,graymesh-lane=" + genuine},
		"genuine lane and forged header": {wire.HeaderLane: genuine, "x-gray-env": "gray", "x-gray-fallback": "x"},
	}
	for name, h := range forged {
		t.Run(name, func(t *testing.T) {
			r, err := m.chain(newTraceID(), h)
			must(t, err)
			if got := strings.Join(r.hops(), " "); got != "frontend:stable orders:stable inventory:stable pricing:stable" {
				t.Fatalf("chain %s", got)
			}
		})
	}
}

// TestMeshFailOpenIsNotALeak gives ext_proc a 1 ms budget, so that on
// this machine some of alice's requests go on before graymesh's answer
// arrives (Envoy fails open: every hop stable) while graymesh, a moment
// later, still decides gray and reports that decision's span. The edge
// sidecar's span says reason "error"; verify-traces must count such a
// chain as a fail-open, not a leak, and exit 0.
func TestMeshFailOpenIsNotALeak(t *testing.T) {
	m := newFourHop(t, func(cfg string) string {
		return strings.Replace(cfg, "message_timeout: 1s", "message_timeout: 1ms", 1)
	})
	alice := bearer(m.token("alice", time.Now().Add(time.Hour)))
	var ids []string
	stable := map[string]bool{}
	for i := 0; i < 60; i++ {
		id := newTraceID()
		r, err := m.chain(id, alice)
		must(t, err)
		ids = append(ids, id)
		stable[id] = strings.Join(r.hops(), " ") == "frontend:stable orders:stable inventory:stable pricing:stable"
	}
	var (
		r    report
		code int
	)
	waitFor(t, "a fail-open chain judged", 60*time.Second, func() error {
		var err error
		if r, code, err = m.verifyTraces(); err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, tr := range r.Traces {
			seen[tr.TraceID] = true
		}
		for _, id := range ids {
			if !seen[id] {
				return fmt.Errorf("trace %s not judged yet", id)
			}
		}
		if r.FailOpens == 0 {
			return errors.New("no fail-open among the chains yet")
		}
		return nil
	})
	failOpens := 0
	for _, tr := range r.Traces {
		allStable, ours := stable[tr.TraceID]
		if !tr.FailOpen || !ours {
			// Only this test's chains: the window also holds the
			// mesh's own start-up traces.
			continue
		}
		failOpens++
		// graymesh's decision span may be missing altogether when Envoy
		// gave up on the stream before graymesh answered.
		if !allStable || tr.Lane != "stable" || (tr.DecidedLane != "gray" && tr.DecidedLane != "") || tr.Leaks != 0 {
			t.Errorf("fail-open trace %s: lane %s, decided %s, %d leaks, served all stable %v", tr.TraceID, tr.Lane, tr.DecidedLane, tr.Leaks, allStable)
		}
	}
	if r.Leaks != 0 || code != 0 {
		t.Fatalf("verify-traces exit %d with %d leaks over %d fail-opens", code, r.Leaks, failOpens)
	}
	t.Logf("%d of %d chains failed open (ext_proc budget 1 ms); 0 leaks", failOpens, len(ids))
}

// TestMeshFallbackListenerTakesNoCallerText calls orders' fallback
// listener directly, as anyone who reaches it can: the x-gray-fallback the
// service sees is one of graymesh's own values or none, never built from
// the caller's x-gray-env, and verify-traces (reading orders' traces) does
// not take the caller's x-gray-env for a lane and count leaks.
func TestMeshFallbackListenerTakesNoCallerText(t *testing.T) {
	m := newFourHop(t)
	m.listener = fmt.Sprintf("http://127.0.0.1:%d", m.ports[16002])
	var ids []string
	for _, c := range []struct{ env, wantFallback string }{
		{"<b>evil</b>", ""}, {"gray", "gray-unavailable"}, {"", ""},
	} {
		id := newTraceID()
		h := map[string]string{"x-gray-fallback": "forged-by-the-caller"}
		if c.env != "" {
			h["x-gray-env"] = c.env
		}
		r, err := m.chain(id, h)
		must(t, err)
		ids = append(ids, id)
		if got := r.Gray["x-gray-fallback"]; got != c.wantFallback {
			t.Errorf("x-gray-env %q: orders saw x-gray-fallback %q, want %q", c.env, got, c.wantFallback)
		}
		if strings.Contains(fmt.Sprint(r.Gray), "evil") {
			t.Errorf("the caller's text reached orders: %v", r.Gray)
		}
	}
	waitFor(t, "verify-traces over orders' traces", 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, filepath.Join(binDir, "graymesh"), "verify-traces", "--jaeger", m.query,
			"--service", "orders", "--since", "10m", "--json").Output()
		var r report
		if jerr := json.Unmarshal(out, &r); jerr != nil {
			return fmt.Errorf("%w (exit: %w) %s", jerr, err, out)
		}
		seen := map[string]bool{}
		for _, tr := range r.Traces {
			seen[tr.TraceID] = true
		}
		for _, id := range ids {
			if !seen[id] {
				return fmt.Errorf("trace %s not judged yet", id)
			}
		}
		if r.Leaks != 0 || err != nil {
			for _, tr := range r.Traces {
				if tr.Leaks > 0 {
					m.logTrace(tr.TraceID)
					t.Logf("leaking trace %+v", tr)
				}
			}
			t.Fatalf("verify-traces --service orders: %d leaks, %v", r.Leaks, err)
		}
		return nil
	})
}

func TestMeshVerifyTracesCatchesADroppedLane(t *testing.T) {
	m := newFourHop(t)
	// inventory, rebuilt to call pricing without the incoming baggage.
	m.services["inventory-stable"].kill()
	a := exampleApps[4]
	m.startApp(a.service, a.env, a.version, a.port, a.calls, a.outbound, "--drop-lane")
	var ids []string
	for i := 0; i < 10; i++ {
		id := newTraceID()
		r, err := m.chain(id, bearer(m.token("alice", time.Now().Add(time.Hour))))
		must(t, err)
		if got := strings.Join(r.hops(), " "); got != "frontend:gray orders:gray inventory:stable pricing:stable" {
			t.Fatalf("chain with a dropped lane: %s", got)
		}
		ids = append(ids, id)
	}
	r, code := m.waitForTraces(ids)
	if code != 1 || r.Leaks < len(ids) {
		t.Fatalf("verify-traces exit %d with %d leaks; want exit 1 and ≥ %d leaks", code, r.Leaks, len(ids))
	}
	leakedAt := map[string]int{}
	for _, tr := range r.Traces {
		for _, h := range tr.Hops {
			if h.Leak {
				leakedAt[h.Service]++
			}
		}
	}
	keys := make([]string, 0, len(leakedAt))
	for k := range leakedAt {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) != 1 || keys[0] != "pricing" {
		t.Fatalf("leaks at %v, want only pricing", leakedAt)
	}
}

// TestMeshGrayUnavailableFallsBackAndReenters stops pricing's gray version:
// gray requests are served by pricing's stable version through its
// sidecar's fallback listener — none fails, each is marked and the lane is
// kept — and verify-traces counts explained fallbacks, no leaks. When gray
// pricing is back, health checks route gray requests to it again.
func TestMeshGrayUnavailableFallsBackAndReenters(t *testing.T) {
	m := newFourHop(t)
	alice := func() chainReply {
		r, err := m.chain(newTraceID(), bearer(m.token("alice", time.Now().Add(time.Hour))))
		must(t, err)
		return r
	}
	pricing := func(r chainReply) chainReply { return r.Calls[0].Calls[0].Calls[0] }
	// The fallback listener appears after the cluster that fails over to
	// it; wait until pricing's sidecar health-checked it.
	fallbackHost := fmt.Sprintf("pricing|gray::127.0.0.1:%d::health_flags::healthy", m.ports[16004])
	waitFor(t, "pricing's fallback endpoint healthy", 15*time.Second, func() error {
		resp, err := http.Get(m.envoyAdmins["pricing"] + "/clusters")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(body), fallbackHost) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if got := strings.Join(alice().hops(), " "); got != "frontend:gray orders:gray inventory:stable pricing:gray" {
		t.Fatalf("before: %s", got)
	}
	m.services["pricing-gray"].kill()
	var ids []string
	for i := 0; i < 20; i++ {
		id := newTraceID()
		r, err := m.chain(id, bearer(m.token("alice", time.Now().Add(time.Hour))))
		if err != nil {
			t.Fatalf("request %d with gray pricing down: %v", i, err)
		}
		p := pricing(r)
		if p.Env != "stable" || p.Gray["x-gray-env"] != "gray" || p.Gray["x-gray-fallback"] != "gray-unavailable" {
			t.Fatalf("request %d: pricing served by %s with %v", i, p.Env, p.Gray)
		}
		ids = append(ids, id)
	}
	rep, code := m.waitForTraces(ids)
	if code != 0 || rep.Leaks != 0 {
		t.Fatalf("verify-traces exit %d, %d leaks", code, rep.Leaks)
	}
	// pricing's sidecar span says stable served, the lane stayed gray,
	// and why: the endpoint that served is the fallback listener. Its
	// fallback listener's span says the same.
	spans := m.waitForSpans(ids[0], "pricing-sidecar inbound pricing", "pricing-sidecar fallback pricing", "pricing serve pricing stable")
	fellBack := map[string]string{wire.AttrVariant: "stable", wire.AttrLane: "gray", wire.AttrFallback: "gray-unavailable"}
	for _, name := range []string{"pricing-sidecar inbound pricing", "pricing-sidecar fallback pricing", "pricing serve pricing stable"} {
		m.expectTags(spans[name], fellBack)
	}
	m.expectTags(spans["pricing-sidecar inbound pricing"], map[string]string{wire.AttrReason: "lane"})
	m.assertNoEmptyAttributes(ids[0])
	a := exampleApps[6]
	m.startApp(a.service, a.env, a.version, a.port, a.calls, a.outbound)
	waitFor(t, "gray pricing to serve again", 15*time.Second, func() error {
		if p := pricing(alice()); p.Env != "gray" {
			return fmt.Errorf("pricing served by %s", p.Env)
		}
		return nil
	})
}

// TestMeshFreezeKeepsMembers: examples/mesh.yaml turns membership on, so
// `graymesh release freeze` works on the mesh demo (it answers 422 without
// membership) and a frozen release keeps the users it admitted gray on
// every hop that has a gray version.
func TestMeshFreezeKeepsMembers(t *testing.T) {
	m := newFourHop(t)
	req, err := http.NewRequest(http.MethodGet, m.edge+"/", nil)
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+m.token("alice", time.Now().Add(time.Hour)))
	resp, err := m.client.Do(req)
	must(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	var member string
	for _, c := range resp.Cookies() {
		if c.Name == "gm_member" {
			member = c.Value
		}
	}
	if member == "" {
		t.Fatalf("alice admitted at the edge without a gm_member cookie (status %s, headers %v)", resp.Status, resp.Header)
	}
	m.adminPost(t, "/v1/releases/shop-v2/freeze")
	h := bearer(m.token("alice", time.Now().Add(time.Hour)))
	h["Cookie"] = "gm_member=" + member
	r, err := m.chain(newTraceID(), h)
	must(t, err)
	if got := strings.Join(r.hops(), " "); got != "frontend:gray orders:gray inventory:stable pricing:gray" {
		t.Fatalf("member alice after the freeze: %s", got)
	}
	if r.Gray["x-gray-reason"] != "member" {
		t.Fatalf("edge reason %q, want member", r.Gray["x-gray-reason"])
	}
	m.adminPost(t, "/v1/releases/shop-v2/unfreeze")
}
