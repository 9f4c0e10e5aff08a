package gate

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// diffBase is the config in force in the diff tests. Each test parses a
// fresh copy and edits it into the new config.
const diffBase = `
identity:
  device_cookie: gm_device
  jwt:
    cookie: gm_token
releases:
  - name: shop-v2
    env: gray
    salt: s1
    blacklist: [carol]
    whitelist: [alice, qa-bot]
    claims:
      - {claim: tier, in: [beta, gold]}
      - {claim: org, in: [acme]}
    cidrs: [10.0.0.0/8, 192.168.1.0/24]
    headers:
      - {name: x-app-version, prefix: "2.9."}
      - {name: x-canary, exact: "on"}
    percent: 30
  - name: search-canary
    env: canary
    whitelist: [dave]
    traffic_percent: 5
`

// hour is h hours after diffAt.
func hour(h int) time.Time { return diffAt.Add(time.Duration(h) * time.Hour) }

// diffAt is when the diff tests apply the new config.
var diffAt = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func parseDiff(t testing.TB, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return cfg
}

// withMembership turns sticky membership on.
func withMembership(c *config.Config) {
	c.Membership.Enabled = true
	c.Lane.Key = strings.Repeat("k", 32)
}

func errStrings(errs []error) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

// refusedChanges are edits of diffBase (old applied to both configs, change
// to the new one) that evict subjects, with the evictions they report.
var refusedChanges = []struct {
	name   string
	old    func(c *config.Config) // edits the config in force; nil keeps diffBase
	change func(c *config.Config)
	want   []string
}{
	{"percent lowered", nil, func(c *config.Config) { c.Releases[0].Percent = 20 },
		[]string{"release shop-v2: rule percent-lowered: percent lowered 30 → 20 (10.00% of subjects leave gray)"}},
	{"percent to zero", nil, func(c *config.Config) { c.Releases[0].Percent = 0 },
		[]string{"release shop-v2: rule percent-lowered: percent lowered 30 → 0 (30.00% of subjects leave gray)"}},
	{"salt changed", nil, func(c *config.Config) { c.Releases[0].Salt = "s2" },
		[]string{`release shop-v2: rule salt-changed: salt changed ("s1" → "s2"): subjects are re-bucketed`}},
	{"salt changed and percent lowered", nil, func(c *config.Config) { c.Releases[0].Salt, c.Releases[0].Percent = "s2", 20 },
		[]string{
			`release shop-v2: rule salt-changed: salt changed ("s1" → "s2"): subjects are re-bucketed`,
			"release shop-v2: rule percent-lowered: percent lowered 30 → 20",
		}},
	{"whitelist entry removed", nil, func(c *config.Config) { c.Releases[0].Whitelist = []string{"qa-bot"} },
		[]string{`release shop-v2: rule whitelist-removed: whitelist entry "alice" removed`}},
	{"blacklist gained", nil, func(c *config.Config) { c.Releases[0].Blacklist = append(c.Releases[0].Blacklist, "bob") },
		[]string{`release shop-v2: rule blacklist-added: blacklist gained "bob"`}},
	{"claim lost value", nil, func(c *config.Config) { c.Releases[0].Claims[0].In = []string{"gold"} },
		[]string{`release shop-v2: rule claims-narrowed: claims[0] (tier) lost value "beta"`}},
	{"claim matcher removed", nil, func(c *config.Config) { c.Releases[0].Claims = c.Releases[0].Claims[:1] },
		[]string{"release shop-v2: rule claims-narrowed: claims[1] (org) removed"}},
	{"cidr narrowed", nil, func(c *config.Config) { c.Releases[0].CIDRs = []string{"10.0.0.0/9", "192.168.1.0/24"} },
		[]string{"release shop-v2: rule cidrs-narrowed: cidrs: 10.0.0.0/8 narrowed or removed"}},
	{"cidr removed", nil, func(c *config.Config) { c.Releases[0].CIDRs = []string{"10.0.0.0/8"} },
		[]string{"release shop-v2: rule cidrs-narrowed: cidrs: 192.168.1.0/24 narrowed or removed"}},
	{"cidr split with a hole", nil, func(c *config.Config) {
		c.Releases[0].CIDRs = []string{"10.0.0.0/9", "10.128.0.0/10", "192.168.1.0/24"}
	}, []string{"release shop-v2: rule cidrs-narrowed: cidrs: 10.0.0.0/8 narrowed or removed"}},
	{"header prefix narrowed", nil, func(c *config.Config) { c.Releases[0].Headers[0].Prefix = "2.9.1" },
		[]string{"release shop-v2: rule headers-narrowed: headers[0] (x-app-version) changed or removed"}},
	{"header exact changed", nil, func(c *config.Config) { c.Releases[0].Headers[1].Exact = "yes" },
		[]string{"release shop-v2: rule headers-narrowed: headers[1] (x-canary) changed or removed"}},
	{"header renamed", nil, func(c *config.Config) { c.Releases[0].Headers[1].Name = "x-beta" },
		[]string{"release shop-v2: rule headers-narrowed: headers[1] (x-canary) changed or removed"}},
	{"release removed", nil, func(c *config.Config) { c.Releases = c.Releases[1:] },
		[]string{"release shop-v2: rule release-removed: removed"}},
	{"env changed", nil, func(c *config.Config) { c.Releases[0].Env = "canary" },
		[]string{"release shop-v2: rule env-changed: env changed gray → canary"}},
	{"traffic_percent lowered", nil, func(c *config.Config) { c.Releases[1].TrafficPercent = 2 },
		[]string{"release search-canary: rule traffic-percent-lowered: traffic_percent lowered 5 → 2 (3.00% of requests without identity leave canary)"}},
	{"schedule steps down", nil, func(c *config.Config) {
		c.Releases[0].Schedule = []config.Step{{At: hour(1), Percent: 50}, {At: hour(2), Percent: 40}}
	}, []string{"release shop-v2: rule schedule-lowered: schedule[1] lowers percent 50 → 40 at 2026-11-21T14:00:00Z"}},
	{"schedule first step below percent", nil, func(c *config.Config) {
		c.Releases[0].Schedule = []config.Step{{At: hour(1), Percent: 10}}
	}, []string{"release shop-v2: rule schedule-lowered: schedule[0] lowers percent 30 → 10 at 2026-11-21T13:00:00Z"}},
	{"schedule in force dropped", func(c *config.Config) {
		c.Releases[0].Schedule = []config.Step{{At: hour(-2), Percent: 50}}
	}, func(c *config.Config) { c.Releases[0].Schedule = nil },
		[]string{"release shop-v2: rule percent-lowered: percent in force lowered 50 → 30 (20.00% of subjects leave gray)"}},
	{"effective_at after an old step", func(c *config.Config) {
		c.Releases[0].Percent, c.Releases[0].Schedule = 10, []config.Step{{At: hour(1), Percent: 40}}
	}, func(c *config.Config) {
		at := hour(3)
		c.EffectiveAt = &at
		c.Releases[0].Percent, c.Releases[0].Schedule = 30, nil
	}, []string{"release shop-v2: rule percent-lowered: percent in force lowered 40 → 30 (10.00% of subjects leave gray)"}},
	{"subject claim changed", nil, func(c *config.Config) { c.Identity.JWT.SubjectClaim = "uid" },
		[]string{`rule subject-claim-changed: identity.jwt.subject_claim changed "sub" → "uid": every verified subject is re-keyed`}},
	{"device cookie removed", nil, func(c *config.Config) { c.Identity.DeviceCookie = "" },
		[]string{`rule device-cookie-changed: identity.device_cookie changed "gm_device" → "": anonymous callers lose their bucketing key`}},
	{"token cookie renamed", nil, func(c *config.Config) { c.Identity.JWT.Cookie = "tok" },
		[]string{`rule token-cookie-changed: identity.jwt.cookie changed "gm_token" → "tok": callers whose token is in that cookie become anonymous`}},
	{"membership turned off", withMembership, func(c *config.Config) { c.Membership.Enabled = false },
		[]string{"rule membership-disabled: membership.enabled turned off: subjects gray by their membership token alone go to stable"}},
	{"membership cookie renamed", withMembership, func(c *config.Config) { c.Membership.Cookie = "member" },
		[]string{`rule membership-cookie-changed: membership.cookie changed "gm_member" → "member": tokens in the old cookie are no longer read`}},
	{"membership header renamed", withMembership, func(c *config.Config) { c.Membership.Header = "x-member" },
		[]string{`rule membership-header-changed: membership.header changed "x-graymesh-member" → "x-member": tokens sent back in the old header are no longer read`}},
	{"lane key changed", withMembership, func(c *config.Config) { c.Lane.Key = strings.Repeat("n", 32) },
		[]string{"rule lane-key-changed: lane key changed (lane.key or lane.key_file): membership tokens signed with the old key no longer verify (keep it in lane.verify_keys or verify_key_files while they expire)"}},
	{"release added in front with another env", nil, func(c *config.Config) {
		r := config.Release{Name: "pay-v3", Env: "blue", Salt: "pay-v3", Percent: 5, State: config.StateActive}
		c.Releases = append([]config.Release{r}, c.Releases...)
	}, []string{
		"release pay-v3: rule order-changed: added before shop-v2, whose env is gray: subjects both admit move from gray to blue",
		"release pay-v3: rule order-changed: added before search-canary, whose env is canary: subjects both admit move from canary to blue",
	}},
	{"releases reordered", nil, func(c *config.Config) { c.Releases[0], c.Releases[1] = c.Releases[1], c.Releases[0] },
		[]string{"release search-canary: rule order-changed: moved before shop-v2, whose env is gray: subjects both admit move from gray to canary"}},
	{"killed release reactivated in front", func(c *config.Config) {
		c.Releases[0], c.Releases[1] = c.Releases[1], c.Releases[0]
		c.Releases[0].State = config.StateKilled
	}, func(c *config.Config) { c.Releases[0].State = config.StateActive },
		[]string{"release search-canary: rule order-changed: reactivated before shop-v2, whose env is gray: subjects both admit move from gray to canary"}},
	{"several at once, in release then rule order", nil, func(c *config.Config) {
		c.Identity.JWT.SubjectClaim = "uid"
		c.Releases[1].Whitelist = nil
		c.Releases[0].Percent = 25
		c.Releases[0].Whitelist = []string{"qa-bot"}
		c.Releases[0].Blacklist = []string{"carol", "eve"}
		c.Releases[0].Claims[1].In = []string{"initech"}
		c.Releases[0].Env = "blue"
	}, []string{
		`rule subject-claim-changed: identity.jwt.subject_claim changed "sub" → "uid": every verified subject is re-keyed`,
		"release shop-v2: rule env-changed: env changed gray → blue",
		`release shop-v2: rule blacklist-added: blacklist gained "eve"`,
		`release shop-v2: rule whitelist-removed: whitelist entry "alice" removed`,
		`release shop-v2: rule claims-narrowed: claims[1] (org) lost value "acme"`,
		"release shop-v2: rule percent-lowered: percent lowered 30 → 25 (5.00% of subjects leave gray)",
		`release search-canary: rule whitelist-removed: whitelist entry "dave" removed`,
	}},
}

func TestEvictionsRefused(t *testing.T) {
	for _, tt := range refusedChanges {
		t.Run(tt.name, func(t *testing.T) {
			old, next := parseDiff(t, diffBase), parseDiff(t, diffBase)
			if tt.old != nil {
				tt.old(old)
				tt.old(next)
			}
			tt.change(next)
			errs := EvictionsAt(old, next, diffAt)
			if got := errStrings(errs); !slices.Equal(got, tt.want) {
				t.Fatalf("evictions:\n got  %q\n want %q", got, tt.want)
			}
			for _, err := range errs {
				var ev *Eviction
				if !errors.As(err, &ev) || !inTable(ev.Rule) || ev.Field == "" {
					t.Fatalf("%v: not an *Eviction naming a rule of the table and its field", err)
				}
				global := strings.HasPrefix(ev.Field, "identity.") || strings.HasPrefix(ev.Field, "membership.") || ev.Field == "lane.key"
				if global != (ev.Release == "") {
					t.Errorf("%v: release %q for field %s", err, ev.Release, ev.Field)
				}
			}
		})
	}
}

// additiveChanges are edits of diffBase that evict nobody.
var additiveChanges = []struct {
	name   string
	old    func(c *config.Config)
	change func(c *config.Config)
}{
	{"unchanged", nil, func(*config.Config) {}},
	{"percent raised", nil, func(c *config.Config) { c.Releases[0].Percent = 45.5 }},
	{"whitelist gained", nil, func(c *config.Config) { c.Releases[0].Whitelist = append(c.Releases[0].Whitelist, "zoe") }},
	{"whitelist reordered", nil, func(c *config.Config) { c.Releases[0].Whitelist = []string{"qa-bot", "alice"} }},
	{"blacklist entry removed", nil, func(c *config.Config) { c.Releases[0].Blacklist = nil }},
	{"blacklisted whitelist entry removed", func(c *config.Config) {
		c.Releases[0].Whitelist = append(c.Releases[0].Whitelist, "carol")
	}, func(c *config.Config) { c.Releases[0].Whitelist = []string{"alice", "qa-bot"} }},
	{"claim value added", nil, func(c *config.Config) { c.Releases[0].Claims[0].In = append(c.Releases[0].Claims[0].In, "vip") }},
	{"claim matcher added", nil, func(c *config.Config) {
		c.Releases[0].Claims = append(c.Releases[0].Claims, config.ClaimMatcher{Claim: "dept", In: []string{"qa"}})
	}},
	{"claim value moved to another matcher", nil, func(c *config.Config) {
		c.Releases[0].Claims[0].In = []string{"gold"}
		c.Releases[0].Claims = append(c.Releases[0].Claims, config.ClaimMatcher{Claim: "tier", In: []string{"beta"}})
	}},
	{"cidr widened", nil, func(c *config.Config) { c.Releases[0].CIDRs = []string{"10.0.0.0/7", "192.168.0.0/16"} }},
	{"cidr split into halves", nil, func(c *config.Config) {
		c.Releases[0].CIDRs = []string{"10.0.0.0/9", "10.128.0.0/10", "10.192.0.0/10", "192.168.1.0/24"}
	}},
	{"cidr added", nil, func(c *config.Config) { c.Releases[0].CIDRs = append(c.Releases[0].CIDRs, "fd00::/8") }},
	{"header prefix widened", nil, func(c *config.Config) { c.Releases[0].Headers[0].Prefix = "2." }},
	{"header exact to covering prefix", nil, func(c *config.Config) {
		c.Releases[0].Headers[1] = config.HeaderMatcher{Name: "x-canary", Prefix: "o"}
	}},
	{"header exact to matching regex", nil, func(c *config.Config) {
		c.Releases[0].Headers[1] = config.HeaderMatcher{Name: "x-canary", Regex: "^(on|yes)$"}
	}},
	{"header added", nil, func(c *config.Config) {
		c.Releases[0].Headers = append(c.Releases[0].Headers, config.HeaderMatcher{Name: "x-beta", Exact: "1"})
	}},
	{"traffic_percent raised", nil, func(c *config.Config) { c.Releases[1].TrafficPercent = 10 }},
	{"frozen", nil, func(c *config.Config) { c.Releases[0].State = config.StateFrozen }},
	{"unfrozen", func(c *config.Config) { c.Releases[0].State = config.StateFrozen },
		func(c *config.Config) { c.Releases[0].State = config.StateActive }},
	{"lane key rotated, the old one still verifying", func(c *config.Config) {
		c.Membership.Enabled, c.Lane.Key = true, strings.Repeat("o", 32)
	}, func(c *config.Config) {
		c.Lane.Key, c.Lane.VerifyKeys = strings.Repeat("n", 32), []string{strings.Repeat("o", 32)}
	}},
	// Killing is the emergency stop: never held back for a rollback.
	{"killed", nil, func(c *config.Config) { c.Releases[0].State = config.StateKilled }},
	{"killed and cut back", nil, func(c *config.Config) {
		c.Releases[0].State, c.Releases[0].Percent, c.Releases[0].Whitelist = config.StateKilled, 0, nil
	}},
	{"killed release removed", func(c *config.Config) { c.Releases[0].State = config.StateKilled },
		func(c *config.Config) { c.Releases = c.Releases[1:] }},
	{"salt changed at 0%", func(c *config.Config) { c.Releases[0].Percent = 0 },
		func(c *config.Config) { c.Releases[0].Salt = "s2" }},
	{"salt changed at 100%", func(c *config.Config) { c.Releases[0].Percent = 100 },
		func(c *config.Config) { c.Releases[0].Salt = "s2" }},
	{"release appended", nil, func(c *config.Config) {
		c.Releases = append(c.Releases, config.Release{Name: "pay-v3", Env: "blue", Salt: "pay-v3", Percent: 5, State: config.StateActive})
	}},
	{"release with the same env added in front", func(c *config.Config) { c.Releases = c.Releases[:1] }, func(c *config.Config) {
		r := config.Release{Name: "shop-v3", Env: "gray", Salt: "shop-v3", Percent: 5, State: config.StateActive}
		c.Releases = append([]config.Release{r}, c.Releases...)
	}},
	{"killed release revived behind the others", func(c *config.Config) {
		c.Releases[0], c.Releases[1] = c.Releases[1], c.Releases[0]
		c.Releases[1].State = config.StateKilled
	}, func(c *config.Config) { c.Releases[1].State, c.Releases[1].Percent = config.StateActive, 5 }},
	{"schedule ramps up", nil, func(c *config.Config) {
		c.Releases[0].Schedule = []config.Step{{At: diffAt.Add(time.Hour), Percent: 50}, {At: diffAt.Add(2 * time.Hour), Percent: 80}}
	}},
	{"schedule reached and written as percent", func(c *config.Config) {
		c.Releases[0].Schedule = []config.Step{{At: diffAt.Add(-time.Hour), Percent: 50}}
	}, func(c *config.Config) { c.Releases[0].Percent, c.Releases[0].Schedule = 50, nil }},
	{"accepted drop kept", func(c *config.Config) {
		c.Releases[0].Schedule = []config.Step{{At: diffAt.Add(time.Hour), Percent: 20}}
	}, func(c *config.Config) { c.Releases[0].Whitelist = append(c.Releases[0].Whitelist, "zoe") }},
	{"effective_at", nil, func(c *config.Config) {
		at := diffAt.Add(24 * time.Hour)
		c.EffectiveAt = &at
		c.Change = config.Change{Reason: "timed"}
	}},
}

func TestEvictionsAdditive(t *testing.T) {
	for _, tt := range additiveChanges {
		t.Run(tt.name, func(t *testing.T) {
			old, next := parseDiff(t, diffBase), parseDiff(t, diffBase)
			if tt.old != nil {
				tt.old(old)
				tt.old(next)
			}
			tt.change(next)
			if errs := EvictionsAt(old, next, diffAt); len(errs) > 0 {
				t.Fatalf("additive change reported as evictions: %q", errStrings(errs))
			}
		})
	}
}
