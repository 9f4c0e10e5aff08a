package gray

import (
	"fmt"
	"net/netip"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// cidrRule admits a client whose address, as Envoy saw it, is in one of
// the ranges. IPv4-mapped IPv6 addresses match IPv4 ranges.
type cidrRule struct{ prefixes []netip.Prefix }

func compileCIDRs(r *config.Release, _ map[string]bool) ([]rule, error) {
	if len(r.CIDRs) == 0 {
		return nil, nil
	}
	c := &cidrRule{prefixes: make([]netip.Prefix, 0, len(r.CIDRs))}
	for i, s := range r.CIDRs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("cidrs[%d]: %w", i, err)
		}
		c.prefixes = append(c.prefixes, p.Masked())
	}
	return []rule{{name: "cidrs", reason: ReasonCIDR, cidrs: c}}, nil
}

func (c *cidrRule) admits(f *Facts) bool {
	if !f.IP.IsValid() {
		return false
	}
	ip := f.IP.Unmap()
	for _, p := range c.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
