package irbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/graymesh/graymesh/bench/loadbench"
	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/gray"
	"github.com/graymesh/graymesh/internal/core/lane"
	"github.com/graymesh/graymesh/internal/core/plan"
)

// The bench mesh's services: the edge decides, the inner hop is measured.
const (
	edgeService  = "frontend"
	innerService = "orders"
	laneKey      = "irbench-lane-key-0123456789abcdef-0123456789"
)

// Options say what to run.
type Options struct {
	Envoy, Graymesh, Valgrind, Control string
	// GraymeshBefore is graymesh built from before this change, for the
	// ext_proc inner hop it served then.
	GraymeshBefore string
	// Noop is the load harness's binary, whose "noop" command is the
	// naive no-op ext_proc server.
	Noop string
	// Callers is how many distinct callers (HS256 tokens) the
	// configurations with callers cycle through.
	Callers int
	// WorkDir holds configs, logs and callgrind's dumps.
	WorkDir string
	// Warmup requests run before counting starts; Small and Large are the
	// two request counts whose difference is measured.
	Warmup, Small, Large int
	// GraymeshScale multiplies Small and Large for the configurations that
	// ask graymesh: a Go garbage collection every few hundred requests
	// needs longer counts to average out.
	GraymeshScale int
	Rounds        int
	// Configs names the configurations to run (all when empty).
	Configs []string
	// Idle is how long graymesh idles while its own instructions are
	// counted (0: no idle measurement).
	Idle time.Duration
	Log  io.Writer
}

// Count is one measured run of one configuration.
type Count struct {
	// SmallN and LargeN are the two request counts; Small and Large
	// Envoy's instructions over them, GraymeshSmall and GraymeshLarge
	// graymesh's, for a configuration that asks it.
	SmallN, LargeN               int
	Small, Large                 uint64
	GraymeshSmall, GraymeshLarge uint64
	// GCSmall and GCLarge are the garbage collections the ext_proc server
	// began during each count.
	GCSmall, GCLarge int
	// Streams are the ext_proc streams Envoy opened over both counts
	// (its stats; -1 when not read: not an edge).
	Streams int
}

// PerRequest is the difference between Envoy's two counts per request:
// what one more request costs, without start-up, warm-up or per-dump
// overhead.
func (c Count) PerRequest() float64 { return c.perRequest(c.Small, c.Large) }

// GraymeshPerRequest is the same for graymesh (0 when not asked).
func (c Count) GraymeshPerRequest() float64 { return c.perRequest(c.GraymeshSmall, c.GraymeshLarge) }

func (c Count) perRequest(a, b uint64) float64 {
	return float64(int64(b)-int64(a)) / float64(c.LargeN-c.SmallN)
}

// Result is every configuration's counts, round by round.
type Result struct {
	Options  Options
	Envoy    string
	Valgrind string
	Configs  []Config
	Counts   map[string][]Count
	// RSS is the ext_proc server's peak resident set (VmHWM, kB) in a run
	// outside valgrind of the same requests, per configuration.
	RSS map[string]uint64
	// Outside is what graymesh's own metrics said over that run.
	Outside map[string]OutsideRun
	// CachedDecision is BenchmarkCachedDecision's result, when run, and
	// CachedDecisionCommand how.
	CachedDecision        *loadbench.BenchRow
	CachedDecisionCommand string
	// Idle is what graymesh costs with no traffic.
	Idle    []IdleRun
	Started time.Time
	Took    time.Duration
	// LaneBytes is the length of the lane the inner-hop configurations
	// send, LongLaneBytes that of the lane before issue 27 (N1-long);
	// TokenBytes of a returning caller's HS256 token and ProofBytes of
	// the proof graymesh handed it (0 when none was).
	LaneBytes, LongLaneBytes, TokenBytes, ProofBytes int
}

// Run measures every configuration Options.Rounds times, the
// configurations interleaved.
func Run(ctx context.Context, o Options) (*Result, error) {
	res := &Result{Options: o, Counts: map[string][]Count{}, RSS: map[string]uint64{}, Outside: map[string]OutsideRun{}, Started: time.Now()}
	for _, c := range Configs() {
		if len(o.Configs) == 0 || slices.Contains(o.Configs, c.Name) {
			res.Configs = append(res.Configs, c)
		}
	}
	if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
		return nil, err
	}
	h, err := newHarness(o)
	if err != nil {
		return nil, err
	}
	defer h.close()
	res.LaneBytes, res.TokenBytes = len(h.signer.Sign("gray", "shop-v2", h.version, time.Now())), len(h.tokens[0])
	res.LongLaneBytes = len(longLane("gray", "shop-v2", h.version, time.Now()))
	res.Envoy, res.Valgrind = versionOf(ctx, o.Envoy, "--version"), versionOf(ctx, o.Valgrind, "--version")
	for round := 1; round <= o.Rounds; round++ {
		for _, c := range res.Configs {
			cnt, err := h.measure(ctx, c, round)
			if err != nil {
				return nil, fmt.Errorf("%s round %d: %w", c.Name, round, err)
			}
			fmt.Fprintf(o.Log, "irbench: %s round %d: Envoy %.0f, graymesh %.0f instructions/request\n", c.Name, round,
				cnt.PerRequest(), cnt.GraymeshPerRequest())
			res.Counts[c.Name] = append(res.Counts[c.Name], cnt)
			if c.proofs && c.graymesh != graymeshNone {
				res.ProofBytes = len(h.proofs[0])
			}
		}
	}
	for _, c := range res.Configs {
		if c.graymesh == graymeshNone || !c.edge || c.proofs {
			continue
		}
		kb, out, err := h.peakRSS(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("%s, RSS run: %w", c.Name, err)
		}
		fmt.Fprintf(o.Log, "irbench: %s: ext_proc server VmHWM %d kB, %+v\n", c.Name, kb, out)
		res.RSS[c.Name], res.Outside[c.Name] = kb, out
	}
	if o.Idle > 0 {
		if err := h.runIdle(ctx, res); err != nil {
			return nil, err
		}
	}
	res.Took = time.Since(res.Started)
	return res, nil
}

func versionOf(ctx context.Context, bin, flag string) string {
	out, err := exec.CommandContext(ctx, bin, flag).CombinedOutput()
	if err != nil {
		return "unknown"
	}
	s := strings.TrimSpace(string(out))
	if i := strings.LastIndex(s, "version: "); i >= 0 {
		s = s[i+len("version: "):]
	}
	return s
}

// harness is what every measurement shares: the upstreams, graymesh (for
// the configuration that asks it), the lanes and the resources.
type harness struct {
	o         Options
	upstreams *upstreams
	cfgPath   string
	// noCachePath is the same config with the token cache off;
	// anonymousPath the same mesh with Envoy splitting anonymous traffic
	// itself; returningPath the same mesh with Envoy routing returning
	// callers too (HS256 callers).
	noCachePath, anonymousPath, returningPath string
	cfg                                       *config.Config
	// tokens are the callers' HS256 tokens; next is the next caller.
	tokens   []string
	next     int
	sidecars *sidecars
	// anonymous are the resources of anonymousPath, their lanes signed.
	anonymous *sidecars
	signer    *lane.Signer
	version   string
	// proofVersion is the version the proof routes match (returningPolicy).
	proofVersion string
	// The returning callers' mesh (returningPath): its resources (lanes
	// signed, config version version), the proof graymesh handed each
	// caller of tokens (per round), and how many first-seen callers have
	// been made.
	returning *sidecars
	proofs    []string
	firstSeen int
}

func newHarness(o Options) (*harness, error) {
	ups, err := startUpstreams()
	if err != nil {
		return nil, err
	}
	h := &harness{o: o, upstreams: ups}
	cfgPath, err := h.writeConfig()
	if err != nil {
		h.close()
		return nil, err
	}
	p, err := gray.Load(cfgPath)
	if err != nil {
		h.close()
		return nil, err
	}
	h.signer, h.version, h.cfgPath, h.cfg = p.Lanes, p.Config.Version, cfgPath, p.Config
	if h.version == "" {
		// A config no graymesh has put in force has no version; a running
		// graymesh's is a counter from 1, and every lane it hands out
		// carries it (the claim is bytes every hop parses).
		h.version = "1"
	}
	if h.tokens, err = callerTokens(o.Callers, time.Now()); err != nil {
		h.close()
		return nil, err
	}
	if h.sidecars, err = newSidecars(p.Plan); err != nil {
		h.close()
		return nil, err
	}
	anon, err := gray.Load(h.anonymousPath)
	if err != nil {
		h.close()
		return nil, err
	}
	if h.anonymous, err = newSidecars(anon.Plan.Signed(time.Now())); err != nil {
		h.close()
		return nil, err
	}
	if h.returning, err = h.returningSidecars(time.Now()); err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

// returningPolicy compiles returningPath as the graymesh the harness runs
// puts it in force: config version h.version (a fresh state directory's
// first). Proofs must route under it (plan.Callers set).
func (h *harness) returningPolicy() (*gray.Policy, error) {
	cfg, err := config.Load(h.returningPath)
	if err != nil {
		return nil, err
	}
	cfg.Version = h.version
	p, err := gray.Compile(cfg)
	if err != nil {
		return nil, err
	}
	if p.Plan.Callers == nil {
		return nil, fmt.Errorf("%s: Envoy routes no returning caller (plan.ReturningBlocker: %q)", h.returningPath, plan.ReturningBlocker(cfg))
	}
	h.proofVersion = p.Plan.ProofVersion
	return p, nil
}

// returningSidecars are the resources graymesh pushes for returningPath
// in the window of now.
func (h *harness) returningSidecars(now time.Time) (*sidecars, error) {
	p, err := h.returningPolicy()
	if err != nil {
		return nil, err
	}
	return newSidecars(p.Plan.Signed(now))
}

func (h *harness) close() { h.upstreams.close() }

// serverEnv is the environment of every ext_proc server the harness
// runs. Go preempts goroutines with signals, which callgrind 3.19 trips
// over (an assertion in its signal handling); without them the server
// runs the same code, only yielding at function calls. Valgrind runs one
// thread at a time, so with several Ps the runtime's spinning threads
// (idle Ms looking for work, waits for a stop-the-world) would be counted
// for whole time slices: one P.
var serverEnv = []string{"GODEBUG=asyncpreemptoff=1", "GOMAXPROCS=1"}

// startServer runs the ext_proc server a configuration asks — graymesh
// (from a fresh state directory) or the no-op server — under callgrind
// when counted.
func (h *harness) startServer(ctx context.Context, c Config, tag string, counted bool) (*proc, error) {
	addr := h.cfg.Server.ExtProcListen
	if c.graymesh == graymeshNoop {
		if h.o.Noop == "" {
			return nil, errors.New("no --noop: the load harness's binary (bin/loadbench) runs the no-op server")
		}
		return startProc(ctx, h.o, "noop-"+tag, serverEnv, h.o.Noop, []string{"noop", "--listen", addr},
			func() error { return dial(addr) }, counted)
	}
	bin := h.o.Graymesh
	if c.graymesh == graymeshBefore {
		if bin = h.o.GraymeshBefore; bin == "" {
			return nil, errors.New("no --graymesh-before: build graymesh from before this change (make bench-ir does)")
		}
	}
	cfgPath := h.cfgPath
	switch {
	case c.noCache:
		cfgPath = h.noCachePath
	case c.returning:
		cfgPath = h.returningPath
	}
	state := filepath.Join(h.o.WorkDir, "state-"+tag)
	_ = os.RemoveAll(state)
	return startProc(ctx, h.o, "graymesh-"+tag, serverEnv, bin,
		[]string{"serve", "--config", cfgPath, "--state-dir", state},
		func() error { return get("http://" + h.cfg.Server.AdminListen + "/readyz") }, counted)
}

// measure runs one configuration once: Envoy under callgrind with
// instrumentation off, warmed up, then the two counts.
func (h *harness) measure(ctx context.Context, c Config, round int) (Count, error) {
	adminPort, err := freePorts(1)
	if err != nil {
		return Count{}, err
	}
	boot, err := h.sidecarsOf(c).bootstrap(c, adminPort[0])
	if err != nil {
		return Count{}, err
	}
	tag := fmt.Sprintf("%s-r%d", c.Name, round)
	bootPath := filepath.Join(h.o.WorkDir, tag+".json")
	if err := os.WriteFile(bootPath, boot, 0o600); err != nil {
		return Count{}, err
	}
	// procs are counted; all are stopped at the end.
	var procs, all []*proc
	defer func() {
		for _, p := range all {
			p.stop()
		}
	}()
	procs, all, err = h.start(ctx, c, tag, bootPath, adminPort[0])
	if err != nil {
		return Count{}, err
	}
	e := procs[0]
	client := newClient(c.h2)
	defer client.CloseIdleConnections()
	send := func(n int) error { return h.send(ctx, client, c, n) }
	warm := func() error { return send(h.warmup(c)) }
	switch {
	case c.proofs && c.graymesh != graymeshNone:
		warm = func() error { return h.obtainProofs(ctx, client, c) }
	case c.proofs:
		warm = func() error { return h.signProofs(ctx, client, c) }
	}
	if err := warm(); err != nil {
		return Count{}, fmt.Errorf("warm-up: %w (Envoy log: %s)", err, e.logPath)
	}
	streams := -1
	countStreams := c.edge && !c.noExtProc
	if countStreams {
		if streams, err = extProcStreams(adminPort[0]); err != nil {
			return Count{}, err
		}
	}
	for _, p := range procs {
		if err := p.control(ctx, "-i", "on"); err != nil {
			return Count{}, err
		}
	}
	cnt := Count{SmallN: h.o.Small, LargeN: h.o.Large, Streams: -1}
	if len(procs) > 1 {
		cnt.SmallN, cnt.LargeN = cnt.SmallN*h.o.GraymeshScale, cnt.LargeN*h.o.GraymeshScale
	}
	small, smallGC, err := count(ctx, procs, func() error { return send(cnt.SmallN) })
	if err != nil {
		return Count{}, err
	}
	large, largeGC, err := count(ctx, procs, func() error { return send(cnt.LargeN) })
	if err != nil {
		return Count{}, err
	}
	cnt.Small, cnt.Large = small[0], large[0]
	if len(procs) > 1 {
		cnt.GraymeshSmall, cnt.GraymeshLarge = small[1], large[1]
		cnt.GCSmall, cnt.GCLarge = smallGC[1], largeGC[1]
	}
	if countStreams {
		after, err := extProcStreams(adminPort[0])
		if err != nil {
			return Count{}, err
		}
		cnt.Streams = after - streams
	}
	return cnt, checkStreams(c, cnt)
}

// checkStreams checks the ext_proc streams of cnt's counts: none when
// graymesh must not be asked, one per request for first-seen callers.
func checkStreams(c Config, cnt Count) error {
	n := cnt.SmallN + cnt.LargeN
	if c.notAsked() && cnt.Streams != 0 {
		return fmt.Errorf("the edge Envoy opened %d ext_proc streams over the %d counted requests, want 0 (graymesh not asked)", cnt.Streams, n)
	}
	if c.firstSeen && cnt.Streams != n {
		return fmt.Errorf("the edge Envoy opened %d ext_proc streams over the %d counted requests of first-seen callers, want one each", cnt.Streams, n)
	}
	return nil
}

// start starts c's Envoy and ext_proc server: the processes counted
// (Envoy first) and all of them.
func (h *harness) start(ctx context.Context, c Config, tag, bootPath string, adminPort int) (counted, all []*proc, err error) {
	e, err := startEnvoy(ctx, h.o, tag, bootPath, adminPort, true)
	if err != nil {
		return nil, nil, err
	}
	counted, all = []*proc{e}, []*proc{e}
	if c.graymesh != graymeshNone {
		// graymesh answers a returning caller's first request, in the
		// warm-up, and is not asked after: it runs outside valgrind, and
		// the ext_proc streams say it was not asked.
		g, err := h.startServer(ctx, c, tag, !c.proofs)
		if err != nil {
			e.stop()
			return nil, nil, err
		}
		all = append(all, g)
		if !c.proofs {
			counted = append(counted, g)
		}
	}
	return counted, all, nil
}

// extProcStreams is the ext_proc streams the Envoy with admin port port
// has opened (its counters ending in ext_proc.streams_started, which
// must exist).
func extProcStreams(port int) (int, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/stats?filter=%s", port, url.QueryEscape(`ext_proc\.streams_started$`)))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	return sumCounters(string(b))
}

// sumCounters sums the counters of an Envoy /stats answer; an answer
// with none is an error.
func sumCounters(stats string) (int, error) {
	sum, n := 0, 0
	for _, line := range strings.Split(stats, "\n") {
		if _, v, ok := strings.Cut(line, ": "); ok {
			c, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return 0, fmt.Errorf("the Envoy stats line %q: %w", line, err)
			}
			sum, n = sum+c, n+1
		}
	}
	if n == 0 {
		return 0, fmt.Errorf("no ext_proc.streams_started counter in Envoy's stats: %q", stats)
	}
	return sum, nil
}

// sidecarsOf is the resources configuration c runs.
func (h *harness) sidecarsOf(c Config) *sidecars {
	if c.returning {
		return h.returning
	}
	if c.anonymous {
		return h.anonymous
	}
	return h.sidecars
}

// warmup is how many requests warm a configuration up: with callers,
// every caller once at least (each token verified and cached).
func (h *harness) warmup(c Config) int {
	if c.callers && len(h.tokens) > h.o.Warmup {
		return len(h.tokens)
	}
	return h.o.Warmup
}
