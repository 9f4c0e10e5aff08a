package irbench

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The run outside valgrind: the ext_proc server's peak resident set and
// what graymesh's own metrics say over the same requests.

// OutsideRun is what graymesh's Go metrics (admin /metrics) said over
// the run outside valgrind: the garbage collections it made and the bytes
// it allocated, over Requests requests (zero for the no-op server, which
// has no metrics).
type OutsideRun struct {
	Requests int
	GCs      float64
	Bytes    float64
}

// peakRSS runs c's requests (warm-up and both counts) once outside
// valgrind and returns the ext_proc server's VmHWM in kB — the memory its
// settings cost, which valgrind's own would hide — and, for graymesh, its
// collections and allocations over the counted requests.
func (h *harness) peakRSS(ctx context.Context, c Config) (uint64, OutsideRun, error) {
	var out OutsideRun
	adminPort, err := freePorts(1)
	if err != nil {
		return 0, out, err
	}
	boot, err := h.sidecarsOf(c).bootstrap(c, adminPort[0])
	if err != nil {
		return 0, out, err
	}
	tag := c.Name + "-rss"
	bootPath := filepath.Join(h.o.WorkDir, tag+".json")
	if err := os.WriteFile(bootPath, boot, 0o600); err != nil {
		return 0, out, err
	}
	e, err := startEnvoy(ctx, h.o, tag, bootPath, adminPort[0], false)
	if err != nil {
		return 0, out, err
	}
	defer e.stop()
	srv, err := h.startServer(ctx, c, tag, false)
	if err != nil {
		return 0, out, err
	}
	defer srv.stop()
	client := newClient(c.h2)
	defer client.CloseIdleConnections()
	if err := h.send(ctx, client, c, h.warmup(c)); err != nil {
		return 0, out, err
	}
	out.Requests = (h.o.Small + h.o.Large) * h.o.GraymeshScale
	gcs, bytes := h.goMetrics(c)
	if err := h.send(ctx, client, c, out.Requests); err != nil {
		return 0, out, err
	}
	gcs2, bytes2 := h.goMetrics(c)
	out.GCs, out.Bytes = gcs2-gcs, bytes2-bytes
	kb, err := srv.peakRSS()
	return kb, out, err
}

// goMetrics reads graymesh's collections and allocated bytes so far from
// its admin /metrics (zero for the no-op server).
func (h *harness) goMetrics(c Config) (gcs, bytes float64) {
	if c.graymesh == graymeshNoop {
		return 0, 0
	}
	resp, err := http.Get("http://" + h.cfg.Server.AdminListen + "/metrics")
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return metricValue(string(b), "go_gc_duration_seconds_count"), metricValue(string(b), "go_memstats_alloc_bytes_total")
}

// metricValue is the value of an unlabelled metric in Prometheus's text
// format (0 when absent).
func metricValue(text, name string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}
