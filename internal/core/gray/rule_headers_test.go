package gray

import (
	"strings"
	"testing"

	"github.com/graymesh/graymesh/internal/contract/config"
)

func TestRuleHeaders(t *testing.T) {
	r := config.Release{Headers: []config.HeaderMatcher{
		{Name: "x-region", Exact: "hz"},
		{Name: "x-app-version", Prefix: "3."},
		{Name: "user-agent", Regex: `iPhone`},
	}}
	read := checkKind(t, compileHeaders, r, []ruleCase{
		{"exact", Facts{Headers: map[string]string{"x-region": "hz"}}, "headers[0]:x-region"},
		{"exact mismatch", Facts{Headers: map[string]string{"x-region": "hzz"}}, ""},
		{"prefix", Facts{Headers: map[string]string{"x-app-version": "3.1.0"}}, "headers[1]:x-app-version"},
		{"regex", Facts{Headers: map[string]string{"user-agent": "Mozilla (iPhone)"}}, "headers[2]:user-agent"},
		{"absent", Facts{}, ""},
	})
	for _, name := range []string{"x-region", "x-app-version", "user-agent"} {
		if !read[name] {
			t.Errorf("header %s not registered as read", name)
		}
	}
	if _, err := compileHeaders(&config.Release{Headers: []config.HeaderMatcher{{Name: "a", Regex: "("}}}, map[string]bool{}); err == nil || !strings.Contains(err.Error(), "headers[0].regex") {
		t.Fatalf("bad regex: %v", err)
	}
}
