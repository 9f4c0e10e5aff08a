package gray

import (
	"testing"

	"github.com/graymesh/graymesh/internal/contract/config"
)

func TestRuleClaims(t *testing.T) {
	r := config.Release{Claims: []config.ClaimMatcher{{Claim: "tier", In: []string{"beta", "staff"}}, {Claim: "tenant", In: []string{"acme"}}}}
	checkKind(t, compileClaims, r, []ruleCase{
		{"listed value", Facts{Subject: "u", Claims: map[string][]string{"tier": {"beta"}}}, "claims[0]:tier"},
		{"one of several values", Facts{Subject: "u", Claims: map[string][]string{"tier": {"free", "staff"}}}, "claims[0]:tier"},
		{"second matcher", Facts{Subject: "u", Claims: map[string][]string{"tenant": {"acme"}}}, "claims[1]:tenant"},
		{"unlisted value", Facts{Subject: "u", Claims: map[string][]string{"tier": {"free"}}}, ""},
		{"claims without a verified subject", Facts{Claims: map[string][]string{"tier": {"beta"}}}, ""},
	})
}
