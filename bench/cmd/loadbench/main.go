// Command loadbench runs graymesh's load harness through a real Envoy and
// writes bench/RESULTS.md and its chart; `make bench` runs it after the
// micro-benchmarks. It is also the harness's upstream ("loadbench
// upstream") and no-op ext_proc server ("loadbench noop"), each a child
// process so its CPU is measured and pinned on its own.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/graymesh/graymesh/bench/loadbench"
	"github.com/graymesh/graymesh/bench/section"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "upstream":
			fs := flag.NewFlagSet("upstream", flag.ContinueOnError)
			stable := fs.String("stable", "127.0.0.1:9101", "stable's listen address")
			gray := fs.String("gray", "127.0.0.1:9102", "gray's listen address")
			if err := fs.Parse(args[1:]); err != nil {
				return err
			}
			return loadbench.ServeUpstream(ctx, *stable, *gray)
		case "noop":
			fs := flag.NewFlagSet("noop", flag.ContinueOnError)
			listen := fs.String("listen", "127.0.0.1:18091", "listen address")
			if err := fs.Parse(args[1:]); err != nil {
				return err
			}
			return loadbench.ServeNoop(ctx, *listen)
		}
	}
	o, f, err := parseFlags(args)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
		return err
	}
	in := loadbench.ReportInput{Command: command(args)}
	if in.Micro, err = loadMicro(ctx, o.WorkDir, f); err != nil {
		return err
	}
	if f.cacheTest {
		in.Cache = runCacheTest(ctx)
	}
	res, err := loadbench.RunBench(ctx, o)
	if res != nil {
		if b, jerr := json.MarshalIndent(res, "", "  "); jerr == nil {
			_ = os.WriteFile(filepath.Join(o.WorkDir, "results.json"), b, 0o644)
		}
	}
	if err != nil {
		return err
	}
	in.Result = res
	if err := writeOutputs(in, f); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "loadbench: wrote %s and %s in %s\n", f.out, f.chart, res.Took.Round(time.Second))
	for _, t := range loadbench.Evaluate(res, in.Micro, in.Cache) {
		state := "not measured"
		if t.Known {
			state = map[bool]string{true: "met", false: "MISSED"}[t.Met]
		}
		fmt.Fprintf(os.Stderr, "  %-8s %s: %s\n", state, t.Name, t.Measured)
	}
	return nil
}

// outputFlags are the flags about what the run reads and writes besides
// the load itself.
type outputFlags struct {
	out, chart          string
	micro, microCmd     string
	microRun, cacheTest bool
}

// parseFlags reads the harness's flags into its options and the output
// flags; paths in the options are made absolute.
func parseFlags(args []string) (loadbench.Options, outputFlags, error) {
	var o loadbench.Options
	fs := flag.NewFlagSet("loadbench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: loadbench [flags]   (run from the repository root; `make bench` does)\n\nFlags:\n")
		fs.PrintDefaults()
	}
	envoyDefault := os.Getenv("ENVOY_BIN")
	if envoyDefault == "" {
		envoyDefault = ".tools/bin/envoy"
	}
	var (
		envoy     = fs.String("envoy", envoyDefault, "Envoy 1.40 binary")
		graymesh  = fs.String("graymesh", "bin/graymesh", "graymesh binary")
		work      = fs.String("work", "bench/out", "directory for configs, logs, profiles and results.json")
		out       = fs.String("out", "bench/RESULTS.md", "report to write")
		chart     = fs.String("chart", "bench/latency.svg", "chart to write (referenced from the report)")
		micro     = fs.String("micro", "", "go test -bench -benchmem output to include in the report instead of running the micro-benchmarks")
		microCmd  = fs.String("micro-cmd", microCommand, "the command that produced --micro")
		microRun  = fs.Bool("micro-run", true, "run the micro-benchmarks (after waiting up to 60 s for a quiet machine) when --micro is not given; output to WORK/micro.txt")
		cacheTest = fs.Bool("cache-test", true, "run identity's token-cache test (bounded, honours exp) for the targets table")
		rounds    = fs.Int("rounds", 3, "interleaved rounds of every configuration")
		fixed     = fs.String("fixed", "500,1000,2000", "fixed rates (requests/s), run in every round")
		ladder    = fs.String("ladder", "2500,3000,3500,4000,4500,5000,6000,7000,8000", "step-up rates, run until one is not sustainable")
		fixedDur  = fs.Duration("fixed-duration", 3*time.Second, "length of a fixed-rate step")
		stepDur   = fs.Duration("step-duration", 2*time.Second, "length of a step-up step")
		warmup    = fs.Duration("warmup", time.Second, "warm-up before the first step of every run (at 1,000 rps)")
		subjects  = fs.Int("subjects", 1000, "distinct callers")
		configs   = fs.String("configs", "", "comma-separated configurations to run (default: all)")
		pin       = fs.Bool("pin", true, "pin Envoy to core 0 and everything else, this process included, to core 1 (taskset)")
		profile   = fs.String("profile", "auto", "profile graymesh: auto (when a target is missed), always, never")
	)
	if err := fs.Parse(args); err != nil {
		return o, outputFlags{}, err
	}
	self, err := os.Executable()
	if err != nil {
		return o, outputFlags{}, err
	}
	o = loadbench.Options{
		Envoy: *envoy, Graymesh: *graymesh, Self: self, WorkDir: *work,
		Rounds: *rounds, FixedDuration: *fixedDur, StepDuration: *stepDur, Warmup: *warmup, Subjects: *subjects,
		Pin: *pin, PinSelf: *pin, Profile: *profile, Log: os.Stderr,
	}
	f := outputFlags{out: *out, chart: *chart, micro: *micro, microCmd: *microCmd, microRun: *microRun, cacheTest: *cacheTest}
	if o.Fixed, err = rates(*fixed); err != nil {
		return o, f, fmt.Errorf("--fixed: %w", err)
	}
	if o.Ladder, err = rates(*ladder); err != nil {
		return o, f, fmt.Errorf("--ladder: %w", err)
	}
	if *configs != "" {
		o.Configs = strings.Split(*configs, ",")
	}
	for _, p := range []*string{&o.Envoy, &o.Graymesh, &o.WorkDir} {
		if *p, err = filepath.Abs(*p); err != nil {
			return o, f, err
		}
	}
	return o, f, nil
}

// loadMicro returns the micro-benchmarks for the report: the --micro file,
// else a fresh run into WORK/micro.txt (--micro-run), else none.
func loadMicro(ctx context.Context, workDir string, f outputFlags) (*loadbench.Micro, error) {
	if f.micro == "" && f.microRun {
		f.micro = filepath.Join(workDir, "micro.txt")
		if err := runMicro(ctx, f.micro); err != nil {
			return nil, err
		}
		f.microCmd = microCommand
	}
	if f.micro == "" {
		return nil, nil
	}
	file, err := os.Open(f.micro)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	return loadbench.ParseMicro(file, f.microCmd)
}

// writeOutputs writes the chart (when --chart is set) and the report.
func writeOutputs(in loadbench.ReportInput, f outputFlags) error {
	if f.chart != "" {
		var buf bytes.Buffer
		if err := loadbench.WriteChart(&buf, in.Result); err != nil {
			return err
		}
		if err := os.WriteFile(f.chart, buf.Bytes(), 0o644); err != nil {
			return err
		}
		rel, err := filepath.Rel(filepath.Dir(f.out), f.chart)
		if err != nil {
			rel = f.chart
		}
		in.Chart = rel
	}
	var buf bytes.Buffer
	if err := loadbench.WriteReport(&buf, in); err != nil {
		return err
	}
	// Sections other harnesses wrote (make bench-ir, the Kubernetes kill
	// convergence) stay.
	if old, err := os.ReadFile(f.out); err == nil {
		buf.WriteString(section.Kept(string(old)))
	}
	return os.WriteFile(f.out, buf.Bytes(), 0o644)
}

func rates(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := strconv.Atoi(f)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("%q is not a positive rate", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// command is how this process was invoked, for the report.
func command(args []string) string {
	parts := []string{"bin/loadbench"}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " '\"$*?|") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// microCommand runs the micro-benchmarks: the decision core, token
// verification, the ext_proc adapter and the harness's handler benchmarks.
const microCommand = "go test -run='^$' -bench=. -benchmem ./internal/core/gray ./internal/core/identity ./extproc ./bench/loadbench"

func runMicro(ctx context.Context, out string) error {
	waited, quiet := loadbench.WaitQuiet(ctx, time.Minute, 0)
	fmt.Fprintf(os.Stderr, "loadbench: micro-benchmarks (waited %s for a quiet machine, quiet: %v): %s\n", waited.Round(time.Second), quiet, microCommand)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "test", "-run=^$", "-bench=.", "-benchmem", "./internal/core/gray", "./internal/core/identity", "./extproc", "./bench/loadbench")
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.MultiWriter(&buf, os.Stderr), os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", microCommand, err)
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}

// runCacheTest runs identity's token-cache test: the cache stays within
// cache_size and never serves a token at or past its exp.
func runCacheTest(ctx context.Context) *loadbench.Check {
	args := []string{"test", "-count=1", "-run", "^TestCacheHonoursExpAndBound$", "./internal/core/identity"}
	c := &loadbench.Check{Command: "go test -count=1 -run '^TestCacheHonoursExpAndBound$' ./internal/core/identity"}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
	c.Output = string(out)
	c.Passed = err == nil && strings.Contains(c.Output, "ok")
	return c
}
