package gate

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"testing"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/gray"
)

// sampleShares counts, over the subjects DiffAt samples, those whose bucket
// under (saltOld, pOld) admits them and under (saltNew, pNew) does not, and
// the reverse, straight from Bucket.
func sampleShares(n int, saltOld string, pOld float64, saltNew string, pNew float64) (toGray, toStable float64) {
	var in, out int
	for i := range n {
		key := fmt.Sprintf("subject-%d", i)
		was := gray.Bucket(saltOld, key) < int(config.BasisPoints(pOld))
		is := gray.Bucket(saltNew, key) < int(config.BasisPoints(pNew))
		switch {
		case was && !is:
			out++
		case !was && is:
			in++
		}
	}
	return float64(in) / float64(n), float64(out) / float64(n)
}

func TestDiffShares(t *testing.T) {
	const sample = 20000
	// Only shop-v2 buckets: search-canary has no percent, and the sampled
	// subjects are on no list, so Bucket alone predicts every move.
	tests := []struct {
		name               string
		change             func(c *config.Config)
		saltNew            string
		pNew               float64
		wantGray, wantStab float64 // analytic expectation
		cause              string
	}{
		{"percent 30 → 20", func(c *config.Config) { c.Releases[0].Percent = 20 }, "s1", 20, 0, 0.10,
			"percent lowered 30 → 20 (10.00% of subjects leave gray)"},
		{"percent 30 → 45", func(c *config.Config) { c.Releases[0].Percent = 45 }, "s1", 45, 0.15, 0,
			"percent raised 30 → 45"},
		// Independent salts: P(in before, out after) = 0.3 × 0.7.
		{"salt change at 30%", func(c *config.Config) { c.Releases[0].Salt = "s2" }, "s2", 30, 0.21, 0.21,
			`salt changed ("s1" → "s2"): subjects are re-bucketed`},
		{"killed", func(c *config.Config) { c.Releases[0].State = config.StateKilled }, "s1", 0, 0, 0.30,
			"state active → killed: everyone it admitted goes to stable (kill switch: allowed without rollback)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old, next := parseDiff(t, diffBase), parseDiff(t, diffBase)
			tt.change(next)
			diffs := DiffAt(old, next, sample, diffAt)
			if len(diffs) != 2 || diffs[0].Release != "shop-v2" || diffs[1].Release != "search-canary" {
				t.Fatalf("releases: %+v", diffs)
			}
			d := diffs[0]
			exactGray, exactStable := sampleShares(sample, "s1", 30, tt.saltNew, tt.pNew)
			if d.ToGray != exactGray || d.ToStable != exactStable {
				t.Errorf("Diff: to gray %.4f, to stable %.4f; counted from Bucket: %.4f, %.4f", d.ToGray, d.ToStable, exactGray, exactStable)
			}
			if math.Abs(d.ToGray-tt.wantGray) > 0.01 || math.Abs(d.ToStable-tt.wantStab) > 0.01 {
				t.Errorf("Diff: to gray %.4f, to stable %.4f; want %.2f, %.2f ± 0.01", d.ToGray, d.ToStable, tt.wantGray, tt.wantStab)
			}
			if !slices.Contains(d.Causes, tt.cause) {
				t.Errorf("causes %q lack %q", d.Causes, tt.cause)
			}
			// dave, on search-canary's whitelist, may be bucketed into
			// shop-v2 and listed as moving; no sampled subject is.
			if other := diffs[1]; other.ToGray != 0 || other.ToStable != 0 || other.ToOther != 0 {
				t.Errorf("unchanged release moved: %+v", other)
			}
		})
	}
}

func TestDiffListsNamedSubjectsAndReleases(t *testing.T) {
	old, next := parseDiff(t, diffBase), parseDiff(t, diffBase)
	old.Releases[0].Percent, next.Releases[0].Percent = 0, 0
	next.Releases[0].Whitelist = []string{"qa-bot", "zoe"}
	next.Releases[1].Env = "blue"
	next.Releases = append(next.Releases, config.Release{Name: "pay-v3", Env: "gray", Salt: "pay-v3", Percent: 10, State: config.StateActive})
	diffs := DiffAt(old, next, 10000, diffAt)
	var names []string
	for _, d := range diffs {
		names = append(names, d.Release)
	}
	if want := []string{"shop-v2", "search-canary", "pay-v3"}; !slices.Equal(names, want) {
		t.Fatalf("releases %q, want %q", names, want)
	}
	wantCauses := map[string][]string{
		"shop-v2": {
			`whitelist entry "alice" removed`,
			`whitelist gained "zoe"`,
			`subject "alice" moves gray → stable`,
			`subject "zoe" moves stable → gray`,
		},
		"search-canary": {"env changed canary → blue", `subject "dave" moves canary → blue`},
		"pay-v3":        {"added"},
	}
	for _, d := range diffs {
		if !slices.Equal(d.Causes, wantCauses[d.Release]) {
			t.Errorf("%s causes:\n got  %q\n want %q", d.Release, d.Causes, wantCauses[d.Release])
		}
	}
	if d := diffs[2]; math.Abs(d.ToGray-0.10) > 0.01 || d.ToStable != 0 {
		t.Errorf("added pay-v3 at 10%%: %+v", d)
	}
	if d := diffs[0]; d.ToGray != 0 || d.ToStable != 0 {
		t.Errorf("shop-v2 buckets nobody: %+v", d)
	}
}

func TestDiffEnvChangeMovesToOther(t *testing.T) {
	old, next := parseDiff(t, diffBase), parseDiff(t, diffBase)
	next.Releases[0].Env = "blue"
	d := DiffAt(old, next, 10000, diffAt)[0]
	if d.ToStable != 0 || d.ToGray != 0 || math.Abs(d.ToOther-0.30) > 0.01 {
		t.Fatalf("env change: %+v", d)
	}
}

func TestDiffFreeze(t *testing.T) {
	tests := []struct {
		name             string
		old, change      func(c *config.Config)
		toGray, toStable float64
		cause            string
	}{
		{"members keep a frozen release", withMembership, func(c *config.Config) { c.Releases[0].State = config.StateFrozen },
			0, 0, "state active → frozen: no new subject enters gray; members keep it"},
		{"without membership freezing empties it", nil, func(c *config.Config) { c.Releases[0].State = config.StateFrozen },
			0, 0.30, "state active → frozen: membership is off, so everyone it admitted goes to stable until unfrozen (emergency stop: allowed without rollback)"},
		{"frozen release takes nobody new", withMembership, func(c *config.Config) {
			c.Releases[0].State, c.Releases[0].Percent = config.StateFrozen, 60
		}, 0, 0, "percent raised 30 → 60"},
		{"unfrozen with a raise admits the difference", func(c *config.Config) {
			withMembership(c)
			c.Releases[0].State = config.StateFrozen
		}, func(c *config.Config) { c.Releases[0].State, c.Releases[0].Percent = config.StateActive, 40 },
			0.10, 0, "state frozen → active"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old, next := parseDiff(t, diffBase), parseDiff(t, diffBase)
			if tt.old != nil {
				tt.old(old)
				tt.old(next)
			}
			tt.change(next)
			d := DiffAt(old, next, 10000, diffAt)[0]
			if math.Abs(d.ToGray-tt.toGray) > 0.01 || math.Abs(d.ToStable-tt.toStable) > 0.01 {
				t.Errorf("to gray %.4f, to stable %.4f; want %.2f, %.2f ± 0.01", d.ToGray, d.ToStable, tt.toGray, tt.toStable)
			}
			if !slices.Contains(d.Causes, tt.cause) {
				t.Errorf("causes %q lack %q", d.Causes, tt.cause)
			}
			if errs := EvictionsAt(old, next, diffAt); len(errs) > 0 {
				t.Errorf("freezing and unfreezing are not evictions: %q", errStrings(errs))
			}
		})
	}
}

func TestDiffDeterministic(t *testing.T) {
	old, next := parseDiff(t, diffBase), parseDiff(t, diffBase)
	next.Releases[0].Salt = "s2"
	next.Releases[0].Whitelist = nil
	next.Releases[1].TrafficPercent = 1
	a, b := DiffAt(old, next, 5000, diffAt), DiffAt(old, next, 5000, diffAt)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("two runs differ:\n%+v\n%+v", a, b)
	}
	e1, e2 := errStrings(EvictionsAt(old, next, diffAt)), errStrings(EvictionsAt(old, next, diffAt))
	if !slices.Equal(e1, e2) || len(e1) != 4 {
		t.Fatalf("evictions differ or are missing:\n%q\n%q", e1, e2)
	}
	if d := Diff(old, next, 1000); len(d) != 2 {
		t.Fatalf("Diff now: %+v", d)
	}
}
