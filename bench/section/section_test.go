package section

import (
	"strings"
	"testing"
)

func TestReplaceAndKeep(t *testing.T) {
	doc := "# Results\n\ntable\n"
	doc = Replace(doc, "ir", "## IR\n\nfirst\n")
	if !strings.HasPrefix(doc, "# Results\n\ntable\n\n<!-- section ir begin") || !strings.Contains(doc, "first\n<!-- section ir end -->\n") {
		t.Fatalf("appended:\n%s", doc)
	}
	doc = Replace(doc, "ir", "## IR\n\nsecond")
	if strings.Contains(doc, "first") || strings.Count(doc, "section ir begin") != 1 {
		t.Fatalf("replaced:\n%s", doc)
	}
	doc = Replace(doc, "other", "more")
	kept := Kept(doc)
	rewritten := "# Results\n\nnew table\n" + kept
	if Kept(rewritten) != kept || !strings.Contains(rewritten, "second") || !strings.Contains(rewritten, "more") || strings.Contains(kept, "table") {
		t.Fatalf("kept:\n%s", rewritten)
	}
	if Kept("no sections") != "" || Kept("<!-- section x begin: written by its harness, kept by the others -->\nunterminated") != "" {
		t.Fatal("kept something that is no whole section")
	}
}
