package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/gonum/stat/distuv"
)

// binomialInterval is the central interval holding all but 1e-6 of
// Binomial(n, p): a seeded count outside it is a broken fault, not bad luck.
func binomialInterval(n int, p float64) (lo, hi int) {
	b := distuv.Binomial{N: float64(n), P: p}
	lo, hi = 0, n
	for lo < n && b.CDF(float64(lo)) < 0.5e-6 {
		lo++
	}
	for hi > 0 && b.CDF(float64(hi-1)) > 1-0.5e-6 {
		hi--
	}
	return lo, hi
}

// recordingSleeper records the delays asked for and never waits.
type recordingSleeper struct{ asked []time.Duration }

func (s *recordingSleeper) sleep(_ context.Context, d time.Duration) bool {
	s.asked = append(s.asked, d)
	return true
}

// serveAll sends one GET per path through f and returns the status codes.
func serveAll(f *fault, paths []string) []int {
	h := f.wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	codes := make([]int, len(paths))
	for i, p := range paths {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		codes[i] = rec.Code
	}
	return codes
}

func repeat(path string, n int) []string {
	paths := make([]string, n)
	for i := range paths {
		paths[i] = path
	}
	return paths
}

func mustSet(t *testing.T, f *fault, c faultConfig) {
	t.Helper()
	if err := f.set(c); err != nil {
		t.Fatal(err)
	}
}

func TestFaultSpreadsErrorsEvenly(t *testing.T) {
	f := newFault(1)
	mustSet(t, f, faultConfig{errorRate: 0.05, spread: spreadEven})
	codes := serveAll(f, repeat("/", 200))
	for w := 0; w < 200; w += 20 {
		failed := 0
		for _, c := range codes[w : w+20] {
			if c == http.StatusInternalServerError {
				failed++
			}
		}
		if failed != 1 {
			t.Fatalf("requests %d–%d: %d failed at 5%%, want exactly 1 in every 20", w, w+19, failed)
		}
	}
}

func TestFaultRandomSpreadFailsAtTheRateUnevenly(t *testing.T) {
	const n, rate, window = 20_000, 0.05, 200
	f := newFault(7)
	mustSet(t, f, faultConfig{errorRate: rate, spread: spreadRandom})
	codes := serveAll(f, repeat("/", n))
	failed, uneven := 0, 0
	for w := 0; w < n; w += window {
		inWindow := 0
		for _, c := range codes[w : w+window] {
			if c == http.StatusInternalServerError {
				inWindow++
			}
		}
		failed += inWindow
		if inWindow != window*rate {
			uneven++
		}
	}
	lo, hi := binomialInterval(n, rate)
	if failed < lo || failed > hi {
		t.Fatalf("%d of %d failed at %g; Binomial's interval is [%d, %d]", failed, n, rate, lo, hi)
	}
	// Evenly spread, every window of 200 would hold exactly 10; at random
	// most do not (P(exactly 10) ≈ 0.13).
	if uneven < n/window/2 {
		t.Fatalf("only %d of %d windows of %d held other than %g failures: not random", uneven, n/window, window, window*rate)
	}
	t.Logf("%d of %d failed (interval [%d, %d]); %d of %d windows uneven", failed, n, lo, hi, uneven, n/window)
}

func TestFaultFailsOnlyItsPath(t *testing.T) {
	const perPath, rate = 5_000, 0.4
	f := newFault(11)
	mustSet(t, f, faultConfig{spread: spreadRandom, pathPrefix: "/checkout", pathErrorRate: rate})
	var paths []string
	for i := 0; i < perPath; i++ {
		paths = append(paths, "/checkout/pay", "/", "/cart/42")
	}
	failed := map[string]int{}
	for i, c := range serveAll(f, paths) {
		if c == http.StatusInternalServerError {
			failed[paths[i]]++
		}
	}
	lo, hi := binomialInterval(perPath, rate)
	if got := failed["/checkout/pay"]; got < lo || got > hi {
		t.Fatalf("/checkout/pay: %d of %d failed at %g; Binomial's interval is [%d, %d]", got, perPath, rate, lo, hi)
	}
	if failed["/"]+failed["/cart/42"] != 0 {
		t.Fatalf("other paths failed: %v", failed)
	}
}

func TestFaultDelaysASlowTail(t *testing.T) {
	const n, share = 20_000, 0.02
	const base, slow = 5 * time.Millisecond, 300 * time.Millisecond
	f := newFault(13)
	s := &recordingSleeper{}
	f.sleep = s.sleep
	mustSet(t, f, faultConfig{spread: spreadRandom, latency: base, slowShare: share, slowDelay: slow})
	for i, c := range serveAll(f, repeat("/", n)) {
		if c != http.StatusOK {
			t.Fatalf("request %d answered %d: a slow tail must not fail", i, c)
		}
	}
	if len(s.asked) != n {
		t.Fatalf("%d sleeps for %d requests, each delayed by --add-latency", len(s.asked), n)
	}
	delayed := 0
	for _, d := range s.asked {
		switch d {
		case base:
		case base + slow:
			delayed++
		default:
			t.Fatalf("asked to sleep %s; want %s or %s", d, base, base+slow)
		}
	}
	lo, hi := binomialInterval(n, share)
	if delayed < lo || delayed > hi {
		t.Fatalf("%d of %d delayed at %g; Binomial's interval is [%d, %d]", delayed, n, share, lo, hi)
	}
}

func TestFaultStopsWhenTheRequestIsCancelled(t *testing.T) {
	f := newFault(1)
	f.sleep = func(context.Context, time.Duration) bool { return false }
	mustSet(t, f, faultConfig{spread: spreadEven, latency: time.Second})
	called := false
	h := f.wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true }))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if called {
		t.Fatal("the handler ran after the client went away during the delay")
	}
}

func TestFaultConfigRefusesOutOfRange(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    faultConfig
		want string
	}{
		{"negative error rate", faultConfig{errorRate: -0.1}, "error_rate -0.1 is outside 0–1"},
		{"error rate over 1", faultConfig{errorRate: 1.5}, "error_rate 1.5"},
		{"negative latency", faultConfig{latency: -time.Second}, "latency -1s"},
		{"unknown spread", faultConfig{spread: "bursty"}, `spread "bursty"`},
		{"path rate without path", faultConfig{pathErrorRate: 0.5}, "path_error_rate needs a path"},
		{"path rate over 1", faultConfig{pathPrefix: "/a", pathErrorRate: 2}, "path_error_rate 2"},
		{"slow share without delay", faultConfig{slowShare: 0.1}, "slow_share needs a slow_delay"},
		{"slow delay over a minute", faultConfig{slowShare: 0.1, slowDelay: 2 * time.Minute}, "slow_delay 2m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.c.spread == "" {
				tc.c.spread = spreadEven
			}
			err := newFault(1).set(tc.c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
	ok := faultConfig{spread: spreadRandom, errorRate: 1, pathPrefix: "/a", pathErrorRate: 1, slowShare: 1, slowDelay: time.Minute}
	if err := newFault(1).set(ok); err != nil {
		t.Fatalf("the limits themselves: %v", err)
	}
}

func TestFaultEndpoint(t *testing.T) {
	f := newFault(1)
	post := func(query string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		f.handle(rec, httptest.NewRequest(http.MethodPost, "/fault?"+query, nil))
		return rec
	}
	rec := post("error_rate=0.25&latency=50ms")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"error_rate":0.25`) || !strings.Contains(rec.Body.String(), `"latency":"50ms"`) {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if fail, delay := f.next("/"); fail || delay != 50*time.Millisecond {
		t.Fatalf("first request: fail %v delay %s", fail, delay)
	}
	rec = post("spread=random&path=/checkout&path_error_rate=0.3&slow_share=0.02&slow_delay=300ms")
	want := faultSettings{Latency: "0s", Spread: spreadRandom, Path: "/checkout", PathErrorRate: 0.3, SlowShare: 0.02, SlowDelay: "300ms"}
	if s := f.settings(); rec.Code != http.StatusOK || s != want {
		t.Fatalf("%d %s: settings %+v, want %+v", rec.Code, rec.Body, s, want)
	}
	for _, bad := range []struct{ query, want string }{
		{"error_rate=x", "error_rate: "},
		{"slow_delay=soon", "slow_delay: "},
		{"spread=bursty", `spread "bursty"`},
	} {
		rec = post(bad.query)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), bad.want) {
			t.Errorf("%s: %d %s", bad.query, rec.Code, rec.Body)
		}
	}
	if s := f.settings(); s != want {
		t.Fatalf("a refused change replaced the settings: %+v", s)
	}
	post("") // clears
	if s := f.settings(); s != (faultSettings{Latency: "0s", Spread: spreadEven, SlowDelay: "0s"}) {
		t.Fatalf("cleared: %+v", s)
	}
}
