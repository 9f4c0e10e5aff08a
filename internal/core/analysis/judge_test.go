package analysis

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// defaults are the settings of an analysis section with every default.
func defaults(t *testing.T) Settings {
	t.Helper()
	a := &config.Analysis{}
	a.ApplyDefaults()
	return SettingsFrom(a)
}

// sim draws one side of a window: n requests failing with probability
// errRate, durations log-normal around medianMS (σ of the log 0.5) plus
// addMS.
func sim(rng *rand.Rand, n int, errRate, medianMS, addMS float64) Side {
	s := Side{Requests: n}
	for i := 0; i < n; i++ {
		if rng.Float64() < errRate {
			s.Errors++
			continue
		}
		if len(s.Latencies) < MaxLatencySamples {
			s.Latencies = append(s.Latencies, medianMS*math.Exp(0.5*rng.NormFloat64())+addMS)
		}
	}
	slices.Sort(s.Latencies)
	return s
}

func one(gray, stable Side) *Observations {
	return &Observations{Services: []Observation{{Service: "shop", Gray: gray, Stable: stable}}}
}

func TestJudgeNeverPassesOnTooLittleData(t *testing.T) {
	s := defaults(t)
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name         string
		gray, stable Side
		reason       string
	}{
		{"no data at all", Side{}, Side{}, "gray served 0 requests; at least 100 needed"},
		{"no gray traffic", Side{}, sim(rng, 5000, 0, 20, 0), "gray served 0 requests"},
		{"gray under the gate, even failing everything", Side{Requests: 99, Errors: 99}, sim(rng, 5000, 0, 20, 0), "gray served 99 requests"},
		{"stable under the gate", sim(rng, 500, 0, 20, 0), sim(rng, 12, 0, 20, 0), "stable served 12 requests"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := Judge(s, one(tt.gray, tt.stable))
			if rep.Verdict != Inconclusive || !strings.Contains(rep.Reason, tt.reason) {
				t.Fatalf("verdict %s (%s), want inconclusive: %s", rep.Verdict, rep.Reason, tt.reason)
			}
		})
	}
	if rep := Judge(s, &Observations{}); rep.Verdict != Inconclusive {
		t.Fatalf("no services: %s", rep.Verdict)
	}
}

func TestJudgeVerdicts(t *testing.T) {
	s := defaults(t)
	s.LatencyCritical = 500 * time.Millisecond
	rng := rand.New(rand.NewPCG(3, 4))
	tests := []struct {
		name         string
		gray, stable Side
		want         Verdict
		metric       string
	}{
		{"healthy gray", sim(rng, 1000, 0.01, 20, 0), sim(rng, 1000, 0.01, 20, 0), Pass, ""},
		{"+5 points of errors", sim(rng, 400, 0.06, 20, 0), sim(rng, 400, 0.01, 20, 0), Fail, "errors"},
		{"+30 points of errors", sim(rng, 400, 0.31, 20, 0), sim(rng, 400, 0.01, 20, 0), Critical, "errors"},
		{"50 ms slower", sim(rng, 400, 0, 20, 50), sim(rng, 400, 0, 20, 0), Fail, "latency"},
		{"600 ms slower", sim(rng, 400, 0, 20, 600), sim(rng, 400, 0, 20, 0), Critical, "latency"},
		{"2 ms slower: significant but under min_effect", sim(rng, 1000, 0, 20, 2), sim(rng, 1000, 0, 20, 0), Pass, ""},
		{"gray better", sim(rng, 400, 0, 10, 0), sim(rng, 400, 0.05, 20, 0), Pass, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := Judge(s, one(tt.gray, tt.stable))
			if rep.Verdict != tt.want {
				t.Fatalf("verdict %s, want %s: %s\n%+v", rep.Verdict, tt.want, rep.Reason, rep.Services[0].Tests)
			}
			if tt.metric != "" && !strings.Contains(rep.Reason, "shop: "+tt.metric+": ") {
				t.Fatalf("reason %q does not name %s", rep.Reason, tt.metric)
			}
		})
	}
}

// aaFalseFailRate judges n windows where gray and stable are the same
// version and returns the share judged fail or critical.
func aaFalseFailRate(s Settings, n, perSide int, seed uint64) float64 {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	fails := 0
	for i := 0; i < n; i++ {
		rep := Judge(s, one(sim(rng, perSide, 0.02, 20, 0), sim(rng, perSide, 0.02, 20, 0)))
		if rep.Verdict == Fail || rep.Verdict == Critical {
			fails++
		}
	}
	return float64(fails) / float64(n)
}

// TestAAFalseFailRate runs 1,000 A/A windows (gray is stable: 2% errors,
// the same latency distribution): the share judged worse stays within
// alpha plus a 2-point margin, with every tolerance at 0 (significance
// alone decides) and with the defaults (where tolerances make it lower).
func TestAAFalseFailRate(t *testing.T) {
	strict := defaults(t)
	strict.ErrorTolerance, strict.LatencyTolerance, strict.MinEffect = 0, 0, 0
	for _, c := range []struct {
		name string
		s    Settings
	}{{"significance alone", strict}, {"defaults", defaults(t)}} {
		t.Run(c.name, func(t *testing.T) {
			rate := aaFalseFailRate(c.s, 1000, 200, 42)
			t.Logf("false-fail rate %.3f at alpha %.2f", rate, c.s.Alpha)
			if rate > c.s.Alpha+0.02 {
				t.Fatalf("false-fail rate %.3f > alpha %.2f + 0.02", rate, c.s.Alpha)
			}
		})
	}
}

// Documented power (docs/analysis.md): with the defaults and 400 requests a
// side, a gray version with 5 more points of errors than a 1% stable fails
// in at least 90% of windows, and one 50 ms slower (stable median 20 ms)
// in at least 99%.
func TestPower(t *testing.T) {
	s := defaults(t)
	rng := rand.New(rand.NewPCG(7, 8))
	cases := []struct {
		name          string
		grayErr, addM float64
		want          float64
	}{
		{"+5 points of errors over 1%", 0.06, 0, 0.90},
		{"50 ms slower", 0.01, 50, 0.99},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			caught := 0
			const windows = 500
			for i := 0; i < windows; i++ {
				rep := Judge(s, one(sim(rng, 400, c.grayErr, 20, c.addM), sim(rng, 400, 0.01, 20, 0)))
				if rep.Verdict == Fail || rep.Verdict == Critical {
					caught++
				}
			}
			power := float64(caught) / windows
			t.Logf("power %.3f", power)
			if power < c.want {
				t.Fatalf("power %.3f < documented %.2f", power, c.want)
			}
		})
	}
}

func TestSharesAndSummary(t *testing.T) {
	gray := Side{Requests: 30, Errors: 3, Latencies: []float64{1, 2, 3}, Callers: 5}
	stable := Side{Requests: 90, Latencies: []float64{1, 2, 3}, Callers: 45}
	rep := Judge(defaults(t), &Observations{Services: []Observation{{Service: "shop", Gray: gray, Stable: stable, Callers: 50}}})
	sr := rep.Services[0]
	if sr.GrayRequestShare != 25 || sr.GrayCallerShare == nil || *sr.GrayCallerShare != 10 {
		t.Fatalf("shares %v %v", sr.GrayRequestShare, sr.GrayCallerShare)
	}
	if sr.Gray.ErrorRate != 10 || sr.Gray.P50 != 2 || sr.Stable.Requests != 90 {
		t.Fatalf("summary %+v %+v", sr.Gray, sr.Stable)
	}
}
