package gray

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/graymesh/graymesh/config"
)

// compileHeaders admits a request whose header matches exactly, by prefix
// or by regular expression. Header names are lower case.
func compileHeaders(r *config.Release, headerNames map[string]bool) ([]rule, error) {
	out := make([]rule, 0, len(r.Headers))
	for i, h := range r.Headers {
		match, err := headerValueMatcher(h)
		if err != nil {
			return nil, fmt.Errorf("headers[%d].regex: %w", i, err)
		}
		name := h.Name
		headerNames[name] = true
		out = append(out, rule{name: fmt.Sprintf("headers[%d]:%s", i, h.Name), reason: ReasonHeader, admits: func(f *Facts) bool {
			v, ok := f.Headers[name]
			return ok && match(v)
		}})
	}
	return out, nil
}

func headerValueMatcher(h config.HeaderMatcher) (func(string) bool, error) {
	switch {
	case h.Regex != "":
		re, err := regexp.Compile(h.Regex)
		if err != nil {
			return nil, err
		}
		return re.MatchString, nil
	case h.Prefix != "":
		prefix := h.Prefix
		return func(v string) bool { return strings.HasPrefix(v, prefix) }, nil
	default:
		exact := h.Exact
		return func(v string) bool { return v == exact }, nil
	}
}
