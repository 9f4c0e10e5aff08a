package gray

import "github.com/graymesh/graymesh/config"

// compileWhitelist admits the verified subjects listed in whitelist.
func compileWhitelist(r *config.Release, _ map[string]bool) ([]rule, error) {
	if len(r.Whitelist) == 0 {
		return nil, nil
	}
	listed := set(r.Whitelist)
	return []rule{{name: "whitelist", reason: ReasonWhitelist, admits: func(f *Facts) bool {
		_, ok := listed[f.Subject]
		return ok && f.Subject != ""
	}}}, nil
}
