package gray

import (
	"testing"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// ruleCase is one request a rule kind's table test decides.
type ruleCase struct {
	name string
	f    Facts
	// rule is the name of the admitting rule, "" when none admits.
	rule string
}

// checkKind compiles one rule kind from r and runs its cases.
func checkKind(t *testing.T, compile func(*config.Release, map[string]bool) ([]rule, error), r config.Release, cases []ruleCase) map[string]bool {
	t.Helper()
	headers := map[string]bool{}
	rules, err := compile(&r, headers)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			for _, ru := range rules {
				if ru.admits(&tc.f) {
					got = ru.name
					break
				}
			}
			if got != tc.rule {
				t.Fatalf("admitted by %q, want %q", got, tc.rule)
			}
		})
	}
	return headers
}
