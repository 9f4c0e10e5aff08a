package gray

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// headerRule admits a request whose header matches exactly, by prefix or
// by regular expression. Header names are lower case.
type headerRule struct {
	name, exact, prefix string
	regex               *regexp.Regexp
}

func compileHeaders(r *config.Release, headerNames map[string]bool) ([]rule, error) {
	out := make([]rule, 0, len(r.Headers))
	for i, h := range r.Headers {
		hr := &headerRule{name: h.Name, exact: h.Exact, prefix: h.Prefix}
		if h.Regex != "" {
			re, err := regexp.Compile(h.Regex)
			if err != nil {
				return nil, fmt.Errorf("headers[%d].regex: %w", i, err)
			}
			hr.regex = re
		}
		headerNames[h.Name] = true
		out = append(out, rule{name: fmt.Sprintf("headers[%d]:%s", i, h.Name), reason: ReasonHeader, header: hr})
	}
	return out, nil
}

func (h *headerRule) admits(f *Facts) bool {
	v, ok := f.Headers[h.name]
	if !ok {
		return false
	}
	switch {
	case h.regex != nil:
		return h.regex.MatchString(v)
	case h.prefix != "":
		return strings.HasPrefix(v, h.prefix)
	default:
		return v == h.exact
	}
}
