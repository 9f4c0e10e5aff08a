// Package golden compares test output with files kept under testdata and
// rewrites them on request (go test -update), printing a line diff on
// mismatch so a reviewer sees what changed, not the whole output.
package golden

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

// Update is set by -update: golden files are rewritten from the output.
var Update = flag.Bool("update", false, "rewrite the golden files from the output")

// Check compares got with the file at path.
func Check(t testing.TB, path string, got []byte) {
	t.Helper()
	if *Update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if d := Diff(string(want), string(got)); d != "" {
		t.Errorf("output differs from %s (- golden, + got); rerun with -update after checking:\n%s", path, d)
	}
}

// Diff is a line diff of want and got ("" when equal): the lines between
// the longest common prefix and suffix, with up to three lines of context.
func Diff(want, got string) string {
	if want == got {
		return ""
	}
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	pre := 0
	for pre < len(w) && pre < len(g) && w[pre] == g[pre] {
		pre++
	}
	suf := 0
	for suf < len(w)-pre && suf < len(g)-pre && w[len(w)-1-suf] == g[len(g)-1-suf] {
		suf++
	}
	var b strings.Builder
	const context = 3
	from := max(0, pre-context)
	fmt.Fprintf(&b, "@@ line %d @@\n", from+1)
	for _, l := range w[from:pre] {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	for _, l := range w[pre : len(w)-suf] {
		fmt.Fprintf(&b, "- %s\n", l)
	}
	for _, l := range g[pre : len(g)-suf] {
		fmt.Fprintf(&b, "+ %s\n", l)
	}
	for _, l := range w[len(w)-suf : min(len(w), len(w)-suf+context)] {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	return b.String()
}
