package gray

import (
	"fmt"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// claimRule admits a verified caller whose token claim holds one of the
// listed values; claims of an unverified token are never read.
type claimRule struct {
	claim string
	in    map[string]struct{}
}

func compileClaims(r *config.Release, _ map[string]bool) ([]rule, error) {
	out := make([]rule, 0, len(r.Claims))
	for i, m := range r.Claims {
		out = append(out, rule{name: fmt.Sprintf("claims[%d]:%s", i, m.Claim), reason: ReasonClaim, claim: &claimRule{claim: m.Claim, in: set(m.In)}})
	}
	return out, nil
}

func (c *claimRule) admits(f *Facts) bool {
	if f.Subject == "" {
		return false
	}
	for _, v := range f.Claims[c.claim] {
		if _, ok := c.in[v]; ok {
			return true
		}
	}
	return false
}
