package gray

import (
	"strings"
	"testing"
	"time"
)

func TestScheduleStepsAtTheirTimes(t *testing.T) {
	e := mustEngine(t, `
releases:
  - name: ramp
    env: gray
    salt: vectors
    percent: 1
    schedule:
      - {at: 2026-12-01T00:00:00Z, percent: 5}
      - {at: 2026-12-02T00:00:00Z, percent: 20}
      - {at: 2026-12-03T00:00:00Z, percent: 100}
`)
	// Pinned buckets (TestBucketVectors): carol 4728, bob 5442, alice 9835.
	at := func(s string) time.Time { tm, _ := time.Parse(time.RFC3339, s); return tm }
	tests := []struct {
		now     string
		subject string
		env     string
		rule    string
	}{
		{"2026-11-30T23:59:59Z", "carol", "stable", ""},
		{"2026-12-02T00:00:00Z", "carol", "stable", ""},
		{"2026-12-03T00:00:00Z", "carol", "gray", "schedule[2]:100.00"},
		{"2026-12-03T00:00:00Z", "alice", "gray", "schedule[2]:100.00"},
		{"2026-12-02T12:00:00Z", "alice", "stable", ""},
	}
	for _, tt := range tests {
		d := e.Decide(&Facts{Subject: tt.subject, Now: at(tt.now)})
		if d.Env != tt.env || d.Rule != tt.rule {
			t.Errorf("%s at %s: env %s rule %q, want %s %q", tt.subject, tt.now, d.Env, d.Rule, tt.env, tt.rule)
		}
	}
	// A subject in at 5% (bucket < 500) stays in at every later step.
	for i := 0; i < 2000; i++ {
		s := subject(i)
		wasIn := false
		for _, now := range []string{"2026-11-30T00:00:00Z", "2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z", "2026-12-03T00:00:00Z"} {
			in := e.Decide(&Facts{Subject: s, Now: at(now)}).Env == "gray"
			if wasIn && !in {
				t.Fatalf("%s left gray at %s", s, now)
			}
			wasIn = in
		}
	}
}

func TestFreezeKillMember(t *testing.T) {
	base := `
lane: {key: "gray-test-lane-key-0123456789abcdef"}
membership: {enabled: true}
releases:
  - name: shop-v2
    env: gray
    state: STATE
    whitelist: [alice]
    blacklist: [vip]
    percent: 100
`
	tests := []struct {
		state, subject, member string
		env                    string
		reason                 Reason
	}{
		{"active", "bob", "", "gray", ReasonPercent},
		{"active", "bob", "shop-v2", "gray", ReasonMember},
		{"active", "vip", "shop-v2", "stable", ReasonBlacklisted},
		{"frozen", "bob", "", "stable", ReasonFrozen},
		{"frozen", "alice", "", "stable", ReasonFrozen},
		{"frozen", "bob", "shop-v2", "gray", ReasonMember},
		{"frozen", "bob", "other", "stable", ReasonFrozen},
		{"killed", "alice", "", "stable", ReasonKilled},
		{"killed", "bob", "shop-v2", "stable", ReasonKilled},
		{"killed", "vip", "", "stable", ReasonBlacklisted},
	}
	for _, tt := range tests {
		e := mustEngine(t, strings.Replace(base, "STATE", tt.state, 1))
		d := e.Decide(&Facts{Subject: tt.subject, Member: tt.member})
		if d.Env != tt.env || d.Reason != tt.reason {
			t.Errorf("%s %s member=%q: env %s reason %s, want %s %s", tt.state, tt.subject, tt.member, d.Env, d.Reason, tt.env, tt.reason)
		}
	}
}
