package golden

import (
	"fmt"
	"os"
	"path/filepath"
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

// recorder stands in for the owning test: it keeps the cleanups Own
// registers and what they report.
type recorder struct {
	testing.TB
	cleanups []func()
	errors   []string
	logs     []string
}

func (r *recorder) Helper()                 {}
func (r *recorder) Cleanup(f func())        { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Failed() bool            { return len(r.errors) > 0 }
func (r *recorder) Skipped() bool           { return false }
func (r *recorder) Error(args ...any)       { r.errors = append(r.errors, fmt.Sprint(args...)) }
func (r *recorder) Fatal(args ...any)       { r.Error(args...) }
func (r *recorder) Logf(f string, a ...any) { r.logs = append(r.logs, fmt.Sprintf(f, a...)) }
func (r *recorder) Errorf(f string, a ...any) {
	r.errors = append(r.errors, fmt.Sprintf(f, a...))
}
func (r *recorder) Fatalf(f string, a ...any) { r.Errorf(f, a...) }

// end runs the owning test's cleanups, as the testing package does when
// the test returns.
func (r *recorder) end() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

// ownedDir is a testdata directory with a golden file a test still
// compares (kept.golden), one nothing compares any more (gone.golden) and
// a config that is no golden file.
func ownedDir(t *testing.T) (dir, kept, gone string) {
	t.Helper()
	dir = t.TempDir()
	kept, gone = filepath.Join(dir, "kept.golden"), filepath.Join(dir, "gone.golden")
	for _, p := range []string{kept, gone, filepath.Join(dir, "kept.yaml")} {
		if err := os.WriteFile(p, []byte("x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, kept, gone
}

func TestOwnFailsOnAStaleGoldenFile(t *testing.T) {
	dir, kept, gone := ownedDir(t)
	r := &recorder{}
	Own(r, filepath.Join(dir, "*.golden"))
	Check(r, kept, []byte("x\n"))
	r.end()
	if len(r.errors) != 1 || !strings.Contains(r.errors[0], gone) || !strings.Contains(r.errors[0], "stale") {
		t.Fatalf("errors %q: want one naming %s as stale", r.errors, gone)
	}
	if _, err := os.Stat(gone); err != nil {
		t.Errorf("the stale file is removed without -update: %v", err)
	}
}

func TestOwnRemovesStaleFilesOnUpdate(t *testing.T) {
	dir, kept, gone := ownedDir(t)
	*Update = true
	t.Cleanup(func() { *Update = false })
	r := &recorder{}
	Own(r, filepath.Join(dir, "*.golden"))
	Check(r, kept, []byte("y\n"))
	r.end()
	if len(r.errors) != 0 {
		t.Fatalf("errors %q", r.errors)
	}
	if _, err := os.Stat(gone); !os.IsNotExist(err) {
		t.Errorf("stale %s still there (%v)", gone, err)
	}
	for _, p := range []string{kept, filepath.Join(dir, "kept.yaml")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
}

func TestOwnJudgesNothingWhenTheTestFailed(t *testing.T) {
	dir, _, gone := ownedDir(t)
	r := &recorder{errors: []string{"an earlier failure"}}
	*Update = true
	t.Cleanup(func() { *Update = false })
	Own(r, filepath.Join(dir, "*.golden"))
	r.end()
	if len(r.errors) != 1 {
		t.Errorf("errors %q: want only the earlier failure", r.errors)
	}
	if _, err := os.Stat(gone); err != nil {
		t.Errorf("a failed test's files are pruned: %v", err)
	}
}
