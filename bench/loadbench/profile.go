package loadbench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Profile is where graymesh's time and allocations go under load: pprof
// CPU and allocation profiles taken from `graymesh serve --pprof` while
// C1 runs at a fixed rate.
type Profile struct {
	Rate     int
	Duration time.Duration
	Step     Step
	// CPUFile and AllocFile are the raw profiles; Commands the exact
	// `go tool pprof` commands that read them.
	CPUFile, AllocFile string
	Commands           []string
	// CPUTotal is the CPU time sampled; Wall the profile's duration.
	CPUTotal, Wall time.Duration
	// Categories is flat CPU time by where it is spent, largest first.
	Categories []Share
	// Cum is the cumulative CPU time of the functions that make up a
	// decision and its transport.
	Cum []Share
	// TopFlat are the functions with the most flat CPU time.
	TopFlat []Share
	// AllocBytes and AllocObjects are what graymesh allocated during the
	// profile; Requests how many requests it served meanwhile (the step's).
	AllocBytes, AllocObjects float64
	// TopAlloc are the functions allocating the most bytes.
	TopAlloc []Share
}

// Share is one line of a profile summary.
type Share struct {
	Name  string
	Value float64 // seconds of CPU, or bytes
	Frac  float64 // of the total
}

// profile runs C1 once more with --pprof and takes a CPU and an
// allocation profile while it serves ProfileRate.
func (h *harness) profile(ctx context.Context, rate int) (*Profile, error) {
	var c1 Config
	for _, c := range Configs() {
		if c.Name == "C1" {
			c1 = c
		}
	}
	o := h.opts
	p := &Profile{Rate: rate, Duration: o.ProfileDuration,
		CPUFile: filepath.Join(o.WorkDir, "graymesh.cpu.pprof"), AllocFile: filepath.Join(o.WorkDir, "graymesh.allocs.pprof")}
	r := &runner{h: h, cfg: c1, round: 0, pprof: h.ports.pprof}
	if err := r.start(ctx); err != nil {
		r.stop()
		return nil, err
	}
	defer r.stop()
	if _, err := r.attack(ctx, o.WarmupRate, o.Warmup, &Step{}); err != nil {
		return nil, err
	}
	secs := int((o.ProfileDuration - time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, f := range []struct{ url, file string }{
		{fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", h.ports.pprof, secs), p.CPUFile},
		// allocs with seconds= is a delta profile: only this window.
		{fmt.Sprintf("http://%s/debug/pprof/allocs?seconds=%d", h.ports.pprof, secs), p.AllocFile},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fetchTo(ctx, f.url, f.file, time.Duration(secs+30)*time.Second)
		}()
	}
	st, err := r.measure(ctx, rate, o.ProfileDuration, "profile")
	wg.Wait()
	if err != nil {
		return nil, err
	}
	for _, e := range errs {
		if e != nil {
			return nil, e
		}
	}
	p.Step = st
	h.logf("profile: C1 at %d rps, sent %d, p99 %.0fµs, graymesh %.0f µs CPU/request", rate, st.Sent, us(st.P99), st.CPU["extproc"])
	if err := p.analyse(h.opts.Graymesh); err != nil {
		return nil, err
	}
	return p, nil
}

func fetchTo(ctx context.Context, url, file string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %s: %s", url, resp.Status, b)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// pprofTop runs `go tool pprof -top` over every node and parses it.
func pprofTop(bin, file string, extra ...string) (cmd string, rows []pprofRow, header string, err error) {
	args := append([]string{"tool", "pprof", "-top", "-nodecount=100000", "-nodefraction=0", "-edgefraction=0"}, extra...)
	args = append(args, bin, file)
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = a
		if strings.ContainsAny(a, "|\\") {
			quoted[i] = "'" + a + "'"
		}
	}
	cmd = "go " + strings.Join(quoted, " ")
	out, err := execOutput("go", args...)
	if err != nil {
		return cmd, nil, "", fmt.Errorf("%s: %w\n%s", cmd, err, out)
	}
	rows, header = parseTop(out)
	return cmd, rows, header, nil
}

type pprofRow struct {
	flat, cum float64
	name      string
}

// parseTop reads `go tool pprof -top` output: the header lines, then
// "flat flat% sum% cum cum% name" rows.
func parseTop(out string) ([]pprofRow, string) {
	var rows []pprofRow
	var header []string
	inRows := false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if !inRows {
			if len(f) >= 5 && f[0] == "flat" && f[1] == "flat%" {
				inRows = true
			} else if strings.TrimSpace(line) != "" {
				header = append(header, strings.TrimSpace(line))
			}
			continue
		}
		if len(f) < 6 {
			continue
		}
		flat, err1 := parseQuantity(f[0])
		cum, err2 := parseQuantity(f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		rows = append(rows, pprofRow{flat: flat, cum: cum, name: strings.Join(f[5:], " ")})
	}
	return rows, strings.Join(header, "\n")
}

// parseQuantity reads pprof's "1.23s", "450ms", "12.50MB", "1024" as
// seconds, bytes or a count.
func parseQuantity(s string) (float64, error) {
	units := []struct {
		suffix string
		mul    float64
	}{
		{"ns", 1e-9}, {"us", 1e-6}, {"µs", 1e-6}, {"ms", 1e-3}, {"min", 60}, {"hrs", 3600}, {"s", 1},
		{"kB", 1 << 10}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"TB", 1 << 40}, {"B", 1},
	}
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			v, err := strconv.ParseFloat(strings.TrimSuffix(s, u.suffix), 64)
			return v * u.mul, err
		}
	}
	return strconv.ParseFloat(s, 64)
}

// cpuCategory says where a function's flat CPU time goes.
func cpuCategory(fn string) string {
	has := func(prefixes ...string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(fn, p) {
				return true
			}
		}
		return false
	}
	switch {
	case has("github.com/graymesh/graymesh/"):
		return "graymesh's own code (extproc, gray, identity, daemon)"
	case has("github.com/golang-jwt/", "crypto/", "vendor/golang.org/x/crypto/", "golang.org/x/crypto/"):
		return "JWT parsing and crypto (HMAC, SHA-256 of the token for the cache)"
	case has("google.golang.org/protobuf/", "github.com/envoyproxy/", "github.com/planetscale/vtprotobuf"):
		return "protobuf (un)marshalling"
	case has("google.golang.org/grpc", "golang.org/x/net/http2", "vendor/golang.org/x/net/http2", "golang.org/x/net/http/httpguts"):
		return "gRPC server and HTTP/2 framing"
	case has("go.opentelemetry.io/", "github.com/prometheus/"):
		return "metrics and tracing hooks"
	case has("syscall.", "internal/runtime/syscall", "runtime/internal/syscall", "internal/poll.", "net.", "os.", "time.runtimeNow", "time.Now"):
		return "syscalls (socket I/O, clock) and network polling"
	case has("runtime.gc", "runtime.mallocgc", "runtime.scan", "runtime.greyobject", "runtime.findObject",
		"runtime.(*mspan)", "runtime.(*mheap)", "runtime.(*mcache)", "runtime.(*mcentral)", "runtime.heapBits",
		"runtime.markBits", "runtime.memclrNoHeapPointers", "runtime.wbBuf", "runtime.bulkBarrier", "runtime.(*gcWork)",
		"runtime.sweepone", "runtime.(*sweepLocked)", "runtime.nextFreeFast", "runtime.spanOf", "runtime.typePointers",
		"runtime.(*gcControllerState)", "runtime.markroot", "runtime.newobject", "runtime.makeslice", "runtime.growslice",
		"runtime.(*gcBits)", "runtime.(*unwinder)", "runtime.pcvalue", "runtime.funcInfo", "runtime.step",
		"runtime.heapSetType", "runtime.memmove", "runtime.(*spanSet)", "runtime.deductAssistCredit",
		"runtime.writeHeapBits", "runtime.(*mSpanStateBox)", "runtime.(*pageAlloc)", "runtime.mapassign", "runtime.mapaccess",
		"internal/runtime/maps."):
		return "allocation, maps and garbage collection"
	case has("runtime."):
		return "goroutine scheduling and other runtime (futex wake-ups, netpoll, timers)"
	}
	return "other (standard library)"
}

// decisionPath are the functions whose cumulative time the report shows.
var decisionPath = []struct{ fn, label string }{
	{"google.golang.org/grpc.(*Server).serveStreams", "gRPC: serving the connection (streams, framing, handler)"},
	{"google.golang.org/grpc/internal/transport.(*loopyWriter).run", "gRPC: loopy writer (HTTP/2 frames out)"},
	{"github.com/graymesh/graymesh/extproc.(*Server).Process", "graymesh: the Process handler (Recv, decide, Send)"},
	{"github.com/graymesh/graymesh/extproc.(*Server).decide", "graymesh: decide (Extract + Policy.Decide + observer)"},
	{"github.com/graymesh/graymesh/extproc.Extract", "graymesh: Extract"},
	{"github.com/graymesh/graymesh/gray.(*Policy).Decide", "graymesh: Policy.Decide (token cache + rules)"},
	{"github.com/graymesh/graymesh/identity.(*Verifier).FromRequest", "graymesh: identity from the request (token, cookies)"},
	{"github.com/graymesh/graymesh/extproc.Response", "graymesh: building the response"},
	{"github.com/graymesh/graymesh/daemon.(*metrics).Decided", "graymesh: decision metrics"},
	{"runtime.gcBgMarkWorker", "runtime: background GC marking"},
	{"runtime.mallocgc", "runtime: allocation (mallocgc, incl. assists)"},
	{"runtime.schedule", "runtime: scheduler"},
}

// analyse summarises the two profiles with `go tool pprof`.
func (p *Profile) analyse(bin string) error {
	cmd, rows, header, err := pprofTop(bin, p.CPUFile)
	if err != nil {
		return err
	}
	p.Commands = append(p.Commands, cmd)
	var total float64
	for _, r := range rows {
		total += r.flat
	}
	if total == 0 {
		return fmt.Errorf("CPU profile has no samples:\n%s", header)
	}
	p.CPUTotal = time.Duration(total * float64(time.Second))
	for _, line := range strings.Split(header, "\n") {
		if rest, ok := strings.CutPrefix(line, "Duration: "); ok {
			d, _, _ := strings.Cut(rest, ",")
			if v, err := parseQuantity(strings.TrimSpace(d)); err == nil {
				p.Wall = time.Duration(v * float64(time.Second))
			}
		}
	}
	byCat := map[string]float64{}
	byName := map[string]pprofRow{}
	for _, r := range rows {
		byCat[cpuCategory(r.name)] += r.flat
		byName[r.name] = r
	}
	for name, v := range byCat {
		p.Categories = append(p.Categories, Share{Name: name, Value: v, Frac: v / total})
	}
	sort.Slice(p.Categories, func(i, j int) bool { return p.Categories[i].Value > p.Categories[j].Value })
	for _, d := range decisionPath {
		if r, ok := byName[d.fn]; ok {
			p.Cum = append(p.Cum, Share{Name: d.label + " — `" + shortFn(d.fn) + "`", Value: r.cum, Frac: r.cum / total})
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].flat > rows[j].flat })
	for i := 0; i < len(rows) && i < 12 && rows[i].flat > 0; i++ {
		p.TopFlat = append(p.TopFlat, Share{Name: shortFn(rows[i].name), Value: rows[i].flat, Frac: rows[i].flat / total})
	}

	// The CPU profile runs meanwhile: leave out what pprof itself allocates.
	ignore := `-ignore=runtime/pprof\.|net/http/pprof\.|compress/flate\.|internal/profile\.`
	cmd, rows, _, err = pprofTop(bin, p.AllocFile, "-sample_index=alloc_space", ignore)
	if err != nil {
		return err
	}
	p.Commands = append(p.Commands, cmd)
	for _, r := range rows {
		p.AllocBytes += r.flat
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].flat > rows[j].flat })
	for i := 0; i < len(rows) && i < 10 && rows[i].flat > 0; i++ {
		p.TopAlloc = append(p.TopAlloc, Share{Name: shortFn(rows[i].name), Value: rows[i].flat, Frac: rows[i].flat / p.AllocBytes})
	}
	cmd, rows, _, err = pprofTop(bin, p.AllocFile, "-sample_index=alloc_objects", ignore)
	if err != nil {
		return err
	}
	p.Commands = append(p.Commands, cmd)
	for _, r := range rows {
		p.AllocObjects += r.flat
	}
	return nil
}

var goShape = regexp.MustCompile(`\[go\.shape[^\]]*\]`)

// shortFn drops the module path and generic shape arguments of a
// function name.
func shortFn(fn string) string {
	fn = goShape.ReplaceAllString(fn, "[…]")
	for _, p := range []string{"github.com/graymesh/graymesh/", "google.golang.org/", "github.com/"} {
		if s, ok := strings.CutPrefix(fn, p); ok {
			return s
		}
	}
	return fn
}

func execOutput(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}
