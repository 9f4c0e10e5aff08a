package golden

import (
	"strings"
	"testing"
)

func TestDiff(t *testing.T) {
	if d := Diff("a\nb\n", "a\nb\n"); d != "" {
		t.Fatalf("equal inputs: %q", d)
	}
	d := Diff("1\n2\n3\n4\n5\n6\n7\n8\n", "1\n2\n3\n4\nX\n6\n7\n8\n")
	for _, want := range []string{"@@ line 2 @@", "  4\n", "- 5\n", "+ X\n", "  6\n"} {
		if !strings.Contains(d, want) {
			t.Errorf("diff lacks %q:\n%s", want, d)
		}
	}
	if strings.Contains(d, "  1\n") {
		t.Errorf("diff shows more than three lines of context:\n%s", d)
	}
	if d := Diff("a\n", "a\nb\n"); !strings.Contains(d, "+ b") {
		t.Errorf("appended line missing:\n%s", d)
	}
}
