package gray

import (
	"testing"

	"github.com/graymesh/graymesh/internal/contract/config"
)

func TestRuleWhitelist(t *testing.T) {
	checkKind(t, compileWhitelist, config.Release{Whitelist: []string{"alice", "bob"}}, []ruleCase{
		{"listed subject", Facts{Subject: "alice"}, "whitelist"},
		{"other subject", Facts{Subject: "carol"}, ""},
		{"device id with a listed name", Facts{DeviceID: "alice"}, ""},
		{"anonymous", Facts{}, ""},
	})
	checkKind(t, compileWhitelist, config.Release{}, []ruleCase{{"empty list admits nobody", Facts{Subject: "alice"}, ""}})
}
