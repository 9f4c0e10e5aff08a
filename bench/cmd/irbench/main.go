// Command irbench counts the instructions an inner hop's Envoy spends per
// request under valgrind's callgrind — the lane verified in Envoy, a plain
// header, the lane in baggage, and the ext_proc inner hop of before — and
// the edge's (with graymesh, for callers returning with a proof, anonymous
// and first-seen), and writes its section of bench/RESULTS.md. `make
// bench-ir` runs it.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/graymesh/graymesh/bench/irbench"
	"github.com/graymesh/graymesh/bench/loadbench"
	"github.com/graymesh/graymesh/bench/section"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "irbench:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	o, out, err := parseFlags(args)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := irbench.Run(ctx, o)
	if err != nil {
		return err
	}
	if *microFlag {
		if res.CachedDecision, res.CachedDecisionCommand, err = cachedDecision(ctx); err != nil {
			return err
		}
	}
	var buf bytes.Buffer
	if err := irbench.WriteSection(&buf, res, command(args)); err != nil {
		return err
	}
	if out == "" {
		_, err := os.Stdout.Write(buf.Bytes())
		return err
	}
	old, err := os.ReadFile(out)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	return os.WriteFile(out, []byte(section.Replace(string(old), irbench.SectionName, buf.String())), 0o644)
}

// microFlag: also run BenchmarkCachedDecision (needs the source tree and
// go).
var microFlag = new(bool)

// cachedDecision runs BenchmarkCachedDecision with -benchmem.
func cachedDecision(ctx context.Context) (*loadbench.BenchRow, string, error) {
	args := []string{"test", "-run", "^$", "-bench", "^BenchmarkCachedDecision$", "-benchmem", "-count", "1", "./bench/loadbench"}
	cmd := "go " + strings.Join(args, " ")
	out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
	if err != nil {
		return nil, cmd, fmt.Errorf("%s: %w: %s", cmd, err, out)
	}
	m, err := loadbench.ParseMicro(bytes.NewReader(out), cmd)
	if err != nil {
		return nil, cmd, err
	}
	for i := range m.Rows {
		if m.Rows[i].Name == "BenchmarkCachedDecision" && m.Rows[i].HasMem {
			return &m.Rows[i], cmd, nil
		}
	}
	return nil, cmd, fmt.Errorf("%s: no BenchmarkCachedDecision line with -benchmem figures: %s", cmd, out)
}

func parseFlags(args []string) (irbench.Options, string, error) {
	fs := flag.NewFlagSet("irbench", flag.ContinueOnError)
	envoyDefault := os.Getenv("ENVOY_BIN")
	if envoyDefault == "" {
		envoyDefault = ".tools/bin/envoy"
	}
	var o irbench.Options
	fs.StringVar(&o.Envoy, "envoy", envoyDefault, "Envoy 1.40 binary")
	fs.StringVar(&o.Graymesh, "graymesh", "bin/graymesh", "graymesh binary (answers the edge configuration)")
	fs.StringVar(&o.GraymeshBefore, "graymesh-before", "", "graymesh built from before this change (answers the ext_proc inner hop of before; make bench-ir builds it)")
	fs.StringVar(&o.Noop, "noop", "bin/loadbench", "the load harness's binary, whose noop command is the naive no-op ext_proc server")
	fs.IntVar(&o.Callers, "callers", 1000, "distinct callers the edge configurations with callers cycle through (HS256 tokens; the returning callers send the proofs graymesh hands them as well)")
	fs.StringVar(&o.Valgrind, "valgrind", "valgrind", "valgrind binary")
	fs.StringVar(&o.Control, "callgrind-control", "callgrind_control", "callgrind_control binary")
	fs.StringVar(&o.WorkDir, "work", "bench/out/ir", "directory for configs, logs and callgrind dumps")
	fs.IntVar(&o.Warmup, "warmup", 50, "requests before counting starts")
	fs.IntVar(&o.Small, "small", 200, "requests of the first count")
	fs.IntVar(&o.Large, "large", 400, "requests of the second count")
	fs.IntVar(&o.GraymeshScale, "graymesh-scale", 5, "multiply --small and --large for the configurations that count graymesh (Go's garbage collection needs longer counts)")
	fs.IntVar(&o.Rounds, "rounds", 2, "rounds of every configuration, interleaved")
	fs.BoolVar(microFlag, "micro", true, "also run BenchmarkCachedDecision (go test -benchmem, from the source tree) for the cached decision's allocations")
	fs.DurationVar(&o.Idle, "idle", 30*time.Second, "how long graymesh idles, with and without its console, while its own instructions are counted (0: skip)")
	configs := fs.String("configs", "", "comma-separated configurations (default: all)")
	out := fs.String("out", "bench/RESULTS.md", "report whose bench-ir section to replace (empty: print the section)")
	if err := fs.Parse(args); err != nil {
		return o, "", err
	}
	if o.Small <= 0 || o.Large <= o.Small || o.Rounds <= 0 || o.Warmup < 0 || o.GraymeshScale <= 0 || o.Callers <= 0 {
		return o, "", fmt.Errorf("need 0 < --small < --large, --rounds > 0, --graymesh-scale > 0, --callers > 0 and --warmup ≥ 0")
	}
	if *configs != "" {
		o.Configs = strings.Split(*configs, ",")
	}
	for _, p := range []*string{&o.Envoy, &o.Graymesh, &o.GraymeshBefore, &o.Noop, &o.WorkDir} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return o, "", err
		}
		*p = abs
	}
	o.Log = os.Stderr
	return o, *out, nil
}

// command is how this process was invoked, for the report.
func command(args []string) string {
	return strings.Join(append([]string{"bin/irbench"}, args...), " ")
}
