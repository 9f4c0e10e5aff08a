package gray

import (
	"net/netip"
	"testing"

	"github.com/graymesh/graymesh/internal/contract/config"
)

func mustEngine(t testing.TB, yaml string) *Engine {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return e
}

const precedenceConfig = `
releases:
  - name: shop-v2
    env: gray
    salt: s1
    blacklist: [vip-1, both]
    whitelist: [alice, both]
    claims:
      - {claim: tier, in: [beta]}
    cidrs: [10.1.0.0/16]
    headers:
      - {name: x-region, exact: hz}
      - {name: x-app-version, prefix: "3."}
      - {name: user-agent, regex: "(?i)iphone"}
    percent: 0
  - name: search-v3
    env: canary
    whitelist: [vip-1]
`

func TestDecidePrecedence(t *testing.T) {
	e := mustEngine(t, precedenceConfig)
	tests := []struct {
		name    string
		req     Facts
		env     string
		release string
		rule    string
		reason  Reason
	}{
		{"whitelisted subject", Facts{Subject: "alice"}, "gray", "shop-v2", "whitelist", ReasonWhitelist},
		{"blacklist beats whitelist", Facts{Subject: "both"}, "stable", "shop-v2", "blacklist", ReasonBlacklisted},
		{"blacklist beats claims", Facts{Subject: "vip-1", Claims: map[string][]string{"tier": {"beta"}}}, "canary", "search-v3", "whitelist", ReasonWhitelist},
		{"blacklist beats header", Facts{Subject: "both", Headers: map[string]string{"x-region": "hz"}}, "stable", "shop-v2", "blacklist", ReasonBlacklisted},
		{"claim admits", Facts{Subject: "bob", Claims: map[string][]string{"tier": {"free", "beta"}}}, "gray", "shop-v2", "claims[0]:tier", ReasonClaim},
		{"claim other value", Facts{Subject: "bob", Claims: map[string][]string{"tier": {"free"}}}, "stable", "", "", ReasonNotSelected},
		{"cidr admits anonymous", Facts{IP: netip.MustParseAddr("10.1.2.3")}, "gray", "shop-v2", "cidrs", ReasonCIDR},
		{"cidr admits v4-mapped", Facts{IP: netip.MustParseAddr("::ffff:10.1.2.3")}, "gray", "shop-v2", "cidrs", ReasonCIDR},
		{"cidr outside", Facts{Subject: "bob", IP: netip.MustParseAddr("10.2.0.1")}, "stable", "", "", ReasonNotSelected},
		{"header exact", Facts{Headers: map[string]string{"x-region": "hz"}}, "gray", "shop-v2", "headers[0]:x-region", ReasonHeader},
		{"header exact mismatch", Facts{Headers: map[string]string{"x-region": "hzz"}}, "", "", "", ReasonNoIdentity},
		{"header prefix", Facts{Headers: map[string]string{"x-app-version": "3.1.0"}}, "gray", "shop-v2", "headers[1]:x-app-version", ReasonHeader},
		{"header regex", Facts{Headers: map[string]string{"user-agent": "Mozilla (iPhone)"}}, "gray", "shop-v2", "headers[2]:user-agent", ReasonHeader},
		{"invalid token is anonymous", Facts{InvalidToken: true}, "", "", "", ReasonInvalidToken},
		{"claims without a verified subject are ignored", Facts{Claims: map[string][]string{"tier": {"beta"}}}, "", "", "", ReasonNoIdentity},
		{"device id never whitelists", Facts{DeviceID: "alice"}, "stable", "", "", ReasonNotSelected},
		{"second release whitelist", Facts{Subject: "vip-1"}, "canary", "search-v3", "whitelist", ReasonWhitelist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.Decide(&tt.req)
			if d.Env != tt.env || d.Release != tt.release || d.Rule != tt.rule || d.Reason != tt.reason {
				t.Fatalf("got env=%q release=%q rule=%q reason=%q, want env=%q release=%q rule=%q reason=%q",
					d.Env, d.Release, d.Rule, d.Reason, tt.env, tt.release, tt.rule, tt.reason)
			}
			if d.Version != e.Version() {
				t.Fatalf("version %q, want %q", d.Version, e.Version())
			}
		})
	}
}

func TestDecidePercent(t *testing.T) {
	e := mustEngine(t, `
releases:
  - name: r
    env: gray
    salt: vectors
    percent: 50
`)
	// Buckets for salt "vectors" are pinned in TestBucketVectors.
	for _, v := range bucketVectors {
		if v.salt != "vectors" {
			continue
		}
		d := e.Decide(&Facts{Subject: v.key})
		wantGray := v.bucket < 5000
		if (d.Env == "gray") != wantGray || d.Bucket != v.bucket {
			t.Errorf("%s: env=%q bucket=%d, want gray=%v bucket=%d", v.key, d.Env, d.Bucket, wantGray, v.bucket)
		}
		// An anonymous caller is bucketed on its device id the same way.
		dd := e.Decide(&Facts{DeviceID: v.key})
		if dd.Env != d.Env || dd.Bucket != d.Bucket {
			t.Errorf("device %s: %+v differs from subject %+v", v.key, dd, d)
		}
	}
}

func TestDecideDeterministic(t *testing.T) {
	a := mustEngine(t, precedenceConfig+"\n")
	b := mustEngine(t, precedenceConfig+"\n")
	for i := 0; i < 1000; i++ {
		req := Facts{Subject: subject(i)}
		if da, db := a.Decide(&req), b.Decide(&req); da != db {
			t.Fatalf("%s: %+v != %+v", req.Subject, da, db)
		}
	}
}

func subject(i int) string { return "user-" + itoa(i) }

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	return string(b[n:])
}
