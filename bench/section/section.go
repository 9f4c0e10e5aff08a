// Package section keeps the parts of bench/RESULTS.md that one harness
// writes and another must not erase: each lives between a begin and an
// end marker named after it. The load harness rewrites the file and keeps
// the marked sections; the instruction-count harness replaces its own.
package section

import "strings"

func begin(name string) string {
	return "<!-- section " + name + " begin: written by its harness, kept by the others -->\n"
}
func end(name string) string { return "<!-- section " + name + " end -->\n" }

// Replace returns doc with the section name set to body: in place when
// doc has it, else appended.
func Replace(doc, name, body string) string {
	block := begin(name) + strings.TrimRight(body, "\n") + "\n" + end(name)
	if i, j, ok := find(doc, name); ok {
		return doc[:i] + block + doc[j:]
	}
	if doc != "" && !strings.HasSuffix(doc, "\n\n") {
		doc = strings.TrimRight(doc, "\n") + "\n\n"
	}
	return doc + block
}

// Kept returns every marked section of doc, markers included, in order,
// for a harness that rewrites the rest of the file to append.
func Kept(doc string) string {
	var out strings.Builder
	const prefix = "<!-- section "
	for {
		i := strings.Index(doc, prefix)
		if i < 0 {
			return out.String()
		}
		name, _, _ := strings.Cut(doc[i+len(prefix):], " ")
		from, to, ok := find(doc, name)
		if !ok {
			return out.String()
		}
		out.WriteString("\n" + doc[from:to])
		doc = doc[to:]
	}
}

// find locates the section name in doc: from its begin marker to just
// after its end marker.
func find(doc, name string) (int, int, bool) {
	i := strings.Index(doc, begin(name))
	if i < 0 {
		return 0, 0, false
	}
	j := strings.Index(doc[i:], end(name))
	if j < 0 {
		return 0, 0, false
	}
	return i, i + j + len(end(name)), true
}
