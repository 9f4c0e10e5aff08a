package gray

import (
	"fmt"
	"net/netip"

	"github.com/graymesh/graymesh/config"
)

// compileCIDRs admits a client whose address, as Envoy saw it, is in one
// of the ranges. IPv4-mapped IPv6 addresses match IPv4 ranges.
func compileCIDRs(r *config.Release, _ map[string]bool) ([]rule, error) {
	if len(r.CIDRs) == 0 {
		return nil, nil
	}
	prefixes := make([]netip.Prefix, 0, len(r.CIDRs))
	for i, c := range r.CIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("cidrs[%d]: %w", i, err)
		}
		prefixes = append(prefixes, p.Masked())
	}
	return []rule{{name: "cidrs", reason: ReasonCIDR, admits: func(f *Facts) bool {
		if !f.IP.IsValid() {
			return false
		}
		ip := f.IP.Unmap()
		for _, p := range prefixes {
			if p.Contains(ip) {
				return true
			}
		}
		return false
	}}}, nil
}
