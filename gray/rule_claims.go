package gray

import (
	"fmt"

	"github.com/graymesh/graymesh/config"
)

// compileClaims admits a verified caller whose token claim holds one of
// the listed values; claims of an unverified token are never read.
func compileClaims(r *config.Release, _ map[string]bool) ([]rule, error) {
	out := make([]rule, 0, len(r.Claims))
	for i, m := range r.Claims {
		claim, in := m.Claim, set(m.In)
		out = append(out, rule{name: fmt.Sprintf("claims[%d]:%s", i, m.Claim), reason: ReasonClaim, admits: func(f *Facts) bool {
			if f.Subject == "" {
				return false
			}
			for _, v := range f.Claims[claim] {
				if _, ok := in[v]; ok {
					return true
				}
			}
			return false
		}})
	}
	return out, nil
}
