package irbench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// IdleRun is graymesh's own cost with no traffic: what one node of a
// DaemonSet spends while nothing is asked of it.
type IdleRun struct {
	Name, What string
	// Instructions over Seconds, every thread counted; GCs the garbage
	// collections begun meanwhile.
	Instructions uint64
	Seconds      float64
	GCs          int
}

// PerSecond is the run's instructions per second.
func (r IdleRun) PerSecond() float64 { return float64(r.Instructions) / r.Seconds }

// idleRuns are the idle measurements: graymesh as installed (its console
// on, nobody opening it) and without a console.
var idleRuns = []struct {
	name, what string
	args       []string
}{
	{"IDLE", "`graymesh serve` with the bench's edge config and its defaults: the console on, never opened", nil},
	{"IDLE-noconsole", "the same with `--console=false`", []string{"--console=false"}},
}

// measureIdle counts graymesh's instructions over o.Idle with no request
// and no page open, after it is ready.
func (h *harness) measureIdle(ctx context.Context, name string, args []string) (IdleRun, error) {
	state := filepath.Join(h.o.WorkDir, "state-"+name)
	_ = os.RemoveAll(state)
	p, err := startProc(ctx, h.o, "graymesh-"+name, serverEnv, h.o.Graymesh,
		append([]string{"serve", "--config", h.cfgPath, "--state-dir", state}, args...),
		func() error { return get("http://" + h.cfg.Server.AdminListen + "/readyz") }, true)
	if err != nil {
		return IdleRun{}, err
	}
	defer p.stop()
	if err := p.control(ctx, "-i", "on"); err != nil {
		return IdleRun{}, err
	}
	var took time.Duration
	n, gcs, err := count(ctx, []*proc{p}, func() error {
		t0 := time.Now()
		defer func() { took = time.Since(t0) }()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(h.o.Idle):
			return nil
		}
	})
	if err != nil {
		return IdleRun{}, err
	}
	return IdleRun{Name: name, Instructions: n[0], Seconds: took.Seconds(), GCs: gcs[0]}, nil
}

// runIdle measures every idle run once.
func (h *harness) runIdle(ctx context.Context, res *Result) error {
	for _, r := range idleRuns {
		run, err := h.measureIdle(ctx, r.name, r.args)
		if err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
		run.What = r.what
		fmt.Fprintf(h.o.Log, "irbench: %s: %.0f instructions/s over %.0f s, %d GCs\n", r.name, run.PerSecond(), run.Seconds, run.GCs)
		res.Idle = append(res.Idle, run)
	}
	return nil
}

// writeIdleTable reports the idle runs.
func writeIdleTable(p func(string, ...any), res *Result) {
	if len(res.Idle) == 0 {
		return
	}
	p("\n**Idle: graymesh with no traffic** (`--idle %s`: graymesh alone under callgrind, counting from ready, no request and no console page open; instructions per second, every thread):\n\n", res.Options.Idle)
	p("| run | what | instructions/s | GCs |\n|---|---|---:|---:|\n")
	for _, r := range res.Idle {
		p("| %s | %s | %s | %d |\n", r.Name, r.What, thousands(r.PerSecond()), r.GCs)
	}
	p("\n")
}
