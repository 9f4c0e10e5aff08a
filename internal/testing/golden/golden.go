// Package golden compares test output with files kept under testdata and
// rewrites them on request (go test -update), printing a line diff on
// mismatch so a reviewer sees what changed, not the whole output. A test
// that Owns a set of golden files fails on one it no longer writes, and
// -update removes it, so testdata holds only what some test pins.
package golden

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Update is set by -update: golden files are rewritten from the output.
var Update = flag.Bool("update", false, "rewrite the golden files from the output")

// Check compares got with the file at path.
func Check(t testing.TB, path string, got []byte) {
	t.Helper()
	markChecked(path)
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

// checked holds the absolute paths of the golden files Check compared in
// this test binary.
var checked = struct {
	sync.Mutex
	paths map[string]bool
}{paths: map[string]bool{}}

func markChecked(path string) {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	checked.Lock()
	defer checked.Unlock()
	checked.paths[abs] = true
}

func wasChecked(path string) bool {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	checked.Lock()
	defer checked.Unlock()
	return checked.paths[abs]
}

// Own makes the calling test answer for every file matching glob (a
// filepath.Match pattern such as "testdata/*.golden"): when the test ends
// without failing, a matching file that Check did not compare is stale.
// With -update it is removed; otherwise the test fails naming it. When
// -run or -skip picks subtests, some of the test's files are not compared
// on purpose, so nothing is judged.
func Own(t testing.TB, glob string) {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() || t.Skipped() || subtestsFiltered() {
			return
		}
		stale, err := Stale(glob)
		if err != nil {
			t.Error(err)
			return
		}
		for _, path := range stale {
			if !*Update {
				t.Errorf("%s: stale golden file, no test compares it any more (rerun with -update to remove it)", path)
				continue
			}
			if err := os.Remove(path); err != nil {
				t.Error(err)
				continue
			}
			t.Logf("removed stale golden file %s", path)
		}
	})
}

// Stale lists the files matching glob that Check has not compared in this
// test binary, sorted.
func Stale(glob string) ([]string, error) {
	paths, err := filepath.Glob(glob)
	if err != nil {
		return nil, fmt.Errorf("golden glob %q: %w", glob, err)
	}
	var stale []string
	for _, p := range paths {
		if !wasChecked(p) {
			stale = append(stale, p)
		}
	}
	slices.Sort(stale)
	return stale, nil
}

// subtestsFiltered tells whether -run or -skip may have left out subtests
// (a pattern with a slash, or any -skip).
func subtestsFiltered() bool {
	run, skip := flag.Lookup("test.run"), flag.Lookup("test.skip")
	return (run != nil && strings.Contains(run.Value.String(), "/")) ||
		(skip != nil && skip.Value.String() != "")
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
