package gray

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/graymesh/graymesh/internal/contract/config"
)

func TestRuleCIDRs(t *testing.T) {
	ip := netip.MustParseAddr
	checkKind(t, compileCIDRs, config.Release{CIDRs: []string{"10.1.0.0/16", "2001:db8::/32"}}, []ruleCase{
		{"inside v4", Facts{IP: ip("10.1.2.3")}, "cidrs"},
		{"v4-mapped v6", Facts{IP: ip("::ffff:10.1.2.3")}, "cidrs"},
		{"inside v6", Facts{IP: ip("2001:db8::1")}, "cidrs"},
		{"outside", Facts{IP: ip("10.2.0.1")}, ""},
		{"no address", Facts{}, ""},
	})
	if _, err := compileCIDRs(&config.Release{CIDRs: []string{"10.0.0.0/33"}}, nil); err == nil || !strings.Contains(err.Error(), "cidrs[0]") {
		t.Fatalf("bad range: %v", err)
	}
}
