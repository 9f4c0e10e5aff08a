package gate

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func inTable(id Rule) bool {
	return slices.ContainsFunc(rules, func(r RuleInfo) bool { return r.ID == id })
}

// ruleID is the shape of a rule ID: lower-case words joined by dashes, as
// the CRD's CEL messages write them.
var ruleID = regexp.MustCompile(`^[a-z]+(-[a-z]+)+$`)

// TestRuleTable: every Rule constant is a row of the table, once, and
// every row reads.
func TestRuleTable(t *testing.T) {
	declared := ruleConstants(t)
	if len(declared) != len(rules) {
		t.Errorf("%d Rule constants, %d rows in the table", len(declared), len(rules))
	}
	seen := map[Rule]bool{}
	for _, r := range Rules() {
		if seen[r.ID] {
			t.Errorf("rule %s: twice in the table", r.ID)
		}
		seen[r.ID] = true
		if !ruleID.MatchString(string(r.ID)) {
			t.Errorf("rule %q: not lower-case words joined by dashes", r.ID)
		}
		if r.Refuses == "" {
			t.Errorf("rule %s: says nothing of what it refuses", r.ID)
		}
	}
	for name, id := range declared {
		if !seen[id] {
			t.Errorf("constant %s (%s) is not in the table", name, id)
		}
	}
}

// ruleConstants reads the constants of type Rule declared in rules.go, by
// name.
func ruleConstants(t *testing.T) map[string]Rule {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "rules.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Rule{}
	ast.Inspect(f, func(n ast.Node) bool {
		spec, ok := n.(*ast.ValueSpec)
		if !ok || spec.Type == nil || typeName(spec.Type) != "Rule" {
			return true
		}
		for i, name := range spec.Names {
			lit, ok := spec.Values[i].(*ast.BasicLit)
			if !ok {
				t.Fatalf("constant %s: not a string literal", name.Name)
			}
			v, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatal(err)
			}
			out[name.Name] = Rule(v)
		}
		return true
	})
	return out
}

func typeName(e ast.Expr) string {
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

// TestConfigDocNamesEveryRule: docs/config.md's eviction table names every
// rule, and marks CEL exactly the rules the table does.
func TestConfigDocNamesEveryRule(t *testing.T) {
	b, err := os.ReadFile("../../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, r := range Rules() {
		name := "`" + string(r.ID) + "`"
		if !strings.Contains(doc, name) {
			t.Errorf("docs/config.md does not name rule %s", r.ID)
		}
		if strings.Contains(doc, name+" (CEL)") != r.CEL {
			t.Errorf("docs/config.md: rule %s marked (CEL) %v, the table says %v", r.ID, !r.CEL, r.CEL)
		}
	}
}
