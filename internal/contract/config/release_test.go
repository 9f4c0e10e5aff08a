package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPercentAtAndStepAt(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	r := Release{Percent: 5, Schedule: []Step{{At: t0, Percent: 10}, {At: t0.Add(time.Hour), Percent: 50}}}
	tests := []struct {
		name    string
		at      time.Time
		percent float64
		step    int
	}{
		{"before the first step", t0.Add(-time.Nanosecond), 5, -1},
		{"at the first step", t0, 10, 0},
		{"between steps", t0.Add(30 * time.Minute), 10, 0},
		{"at the last step", t0.Add(time.Hour), 50, 1},
		{"after the last step", t0.Add(48 * time.Hour), 50, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, s := r.PercentAt(tt.at), r.StepAt(tt.at); p != tt.percent || s != tt.step {
				t.Fatalf("at %s: percent %v step %d, want %v %d", tt.at, p, s, tt.percent, tt.step)
			}
		})
	}
	if p := (&Release{Percent: 7}).PercentAt(t0); p != 7 {
		t.Fatalf("without a schedule: %v", p)
	}
}

func TestAdmitsAt(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		r    Release
		want bool
	}{
		{"nothing", Release{State: StateActive}, false},
		{"whitelist", Release{State: StateActive, Whitelist: []string{"alice"}}, true},
		{"header", Release{State: StateActive, Headers: []HeaderMatcher{{Name: "x-a", Exact: "1"}}}, true},
		{"percent", Release{State: StateActive, Percent: 1}, true},
		{"traffic_percent", Release{State: StateActive, TrafficPercent: 1}, true},
		{"killed", Release{State: StateKilled, Percent: 50}, false},
		{"frozen still admits its members", Release{State: StateFrozen, Percent: 50}, true},
		{"schedule not reached", Release{State: StateActive, Schedule: []Step{{At: t0.Add(time.Hour), Percent: 10}}}, false},
		{"schedule reached", Release{State: StateActive, Schedule: []Step{{At: t0, Percent: 10}}}, true},
		{"schedule down to 0", Release{State: StateActive, Percent: 10, Schedule: []Step{{At: t0, Percent: 0}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.AdmitsAt(t0); got != tt.want {
				t.Fatalf("AdmitsAt = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTakesEffect(t *testing.T) {
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	later, earlier := now.Add(time.Hour), now.Add(-time.Hour)
	for _, tt := range []struct {
		effective *time.Time
		want      time.Time
	}{{nil, now}, {&later, later}, {&earlier, now}} {
		if got := (&Config{EffectiveAt: tt.effective}).TakesEffect(now); !got.Equal(tt.want) {
			t.Errorf("effective_at %v: %s, want %s", tt.effective, got, tt.want)
		}
	}
}

// A release at 0% whose schedule ramps it up admits someone later: no
// "admits nobody" warning.
func TestWarningsAdmitsNobody(t *testing.T) {
	cfg, err := Parse([]byte(`
releases:
  - {name: empty, env: gray}
  - {name: ramped, env: gray, schedule: [{at: 2026-12-01T10:00:00Z, percent: 5}]}
`), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var nobody []string
	for _, w := range cfg.Warnings() {
		if strings.Contains(w, "admits nobody") {
			nobody = append(nobody, w)
		}
	}
	if want := []string{"releases[0] (empty): admits nobody (no whitelist, matchers or percentage)"}; !slices.Equal(nobody, want) {
		t.Fatalf("warnings %q, want %q", nobody, want)
	}
}
