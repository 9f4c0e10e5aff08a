package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// soakDuration is GRAYMESH_SOAK_DURATION (default 60 s; `make soak` runs
// 10 minutes).
func soakDuration(t *testing.T) time.Duration {
	if v := os.Getenv("GRAYMESH_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("GRAYMESH_SOAK_DURATION: %v", err)
		}
		return d
	}
	return time.Minute
}

// processStats reads graymesh's own gauges from /metrics.
func (m *mesh) processStats(t *testing.T) (rss, goroutines float64) {
	t.Helper()
	resp, err := http.Get(m.admin + "/metrics")
	must(t, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "process_resident_memory_bytes "); ok {
			rss, _ = strconv.ParseFloat(v, 64)
		}
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			goroutines, _ = strconv.ParseFloat(v, 64)
		}
	}
	return rss, goroutines
}

// TestSoak runs steady load through a real Envoy and graymesh while the
// config changes every few seconds, and fails on any error, any lane leak
// (a request whose upstream saw an x-gray-env other than the environment
// that served it, or a whitelisted/blacklisted subject served by the wrong
// one), or graymesh RSS growing more than 20% after warm-up.
//
//nolint:funlen // one soak, one story: load, config changes and the checks they feed
func TestSoak(t *testing.T) {
	dur := soakDuration(t)
	m := newMesh(t, `
releases:
  - name: shop-v2
    env: gray
    salt: soak
    whitelist: [alice]
    blacklist: [mallory]
    percent: 1
`)
	var (
		sent, errs, leaks atomic.Int64
		failOpens         atomic.Int64
		firstProblem      atomic.Value
		stop              = make(chan struct{})
		wg                sync.WaitGroup
	)
	problem := func(format string, args ...any) {
		firstProblem.CompareAndSwap(nil, fmt.Sprintf(format, args...))
	}
	deadline := time.Now().Add(dur + time.Minute) // bounded even if stop is lost
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				select {
				case <-stop:
					return
				default:
				}
				subject := fmt.Sprintf("soak-%d-%d", w, i%200)
				switch i % 10 {
				case 0:
					subject = "alice"
				case 5:
					subject = "mallory"
				}
				sent.Add(1)
				r, err := m.get(bearer(m.token(subject, time.Now().Add(time.Hour))))
				if err != nil {
					errs.Add(1)
					problem("request: %v", err)
					continue
				}
				switch {
				case r.Gray["x-gray-env"] != r.Env:
					leaks.Add(1)
					problem("%s served by %s, upstream saw %v", subject, r.Env, r.Gray)
				case r.Gray["x-gray-reason"] == "":
					// No decision reached Envoy in time: it failed open to
					// stable, as designed. Counted, not a leak.
					failOpens.Add(1)
					if r.Env != "stable" {
						leaks.Add(1)
						problem("%s failed open to %s", subject, r.Env)
					}
				case (subject == "alice" && r.Env != "gray") || (subject == "mallory" && r.Env != "stable"):
					leaks.Add(1)
					problem("%s served by %s, upstream saw %v", subject, r.Env, r.Gray)
				}
			}
		}(w)
	}

	start := time.Now()
	warm := start.Add(dur / 6)
	var warmRSS, warmG float64
	startRSS, startG := m.processStats(t)
	percent, changes := 1, 0
	tick := time.NewTicker(3 * time.Second)
	for time.Since(start) < dur {
		<-tick.C
		if warmRSS == 0 && time.Now().After(warm) {
			warmRSS, warmG = m.processStats(t)
		}
		if percent < 99 {
			if r := m.editConfig(t, fmt.Sprintf("percent: %d\n", percent), fmt.Sprintf("percent: %d\n", percent+1)); r != "accepted" {
				t.Fatalf("ramp %d → %d: %s", percent, percent+1, r)
			}
			percent++
			changes++
		}
	}
	tick.Stop()
	close(stop)
	wg.Wait()
	endRSS, endG := m.processStats(t)
	t.Logf("soak %s: %d requests, %d errors, %d lane leaks, %d failed open to stable (no decision within the budget), %d config changes (percent 1 → %d)", dur, sent.Load(), errs.Load(), leaks.Load(), failOpens.Load(), changes, percent)
	t.Logf("graymesh RSS %.1f MiB at start, %.1f MiB after warm-up, %.1f MiB at end; goroutines %.0f / %.0f / %.0f",
		startRSS/(1<<20), warmRSS/(1<<20), endRSS/(1<<20), startG, warmG, endG)
	if errs.Load() > 0 || leaks.Load() > 0 {
		t.Fatalf("%d errors, %d leaks; first: %v", errs.Load(), leaks.Load(), firstProblem.Load())
	}
	if warmRSS > 0 && endRSS > warmRSS*1.2 {
		t.Fatalf("RSS grew %.0f%% after warm-up (%.1f → %.1f MiB)", (endRSS/warmRSS-1)*100, warmRSS/(1<<20), endRSS/(1<<20))
	}
	if sent.Load() == 0 || changes == 0 {
		t.Fatal("the soak did nothing")
	}
}
