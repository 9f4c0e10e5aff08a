package gray

import "github.com/graymesh/graymesh/internal/contract/config"

// whitelistRule admits the verified subjects listed in whitelist.
type whitelistRule struct{ listed map[string]struct{} }

func compileWhitelist(r *config.Release, _ map[string]bool) ([]rule, error) {
	if len(r.Whitelist) == 0 {
		return nil, nil
	}
	return []rule{{name: "whitelist", reason: ReasonWhitelist, whitelist: &whitelistRule{listed: set(r.Whitelist)}}}, nil
}

func (w *whitelistRule) admits(f *Facts) bool {
	_, ok := w.listed[f.Subject]
	return ok && f.Subject != ""
}
