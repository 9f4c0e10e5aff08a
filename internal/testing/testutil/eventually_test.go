package testutil

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestUntilStopsAtTheFirstSuccess(t *testing.T) {
	calls := 0
	err := Poll{Tries: 5}.Until(func() error {
		calls++
		if calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("err %v after %d calls, want nil after 3", err, calls)
	}
}

func TestUntilIsBoundedByTheCount(t *testing.T) {
	calls := 0
	last := errors.New("port closed")
	err := Poll{Tries: 4}.Until(func() error { calls++; return last })
	if calls != 4 {
		t.Fatalf("%d calls, want 4", calls)
	}
	if !errors.Is(err, last) || !strings.Contains(err.Error(), "4 tries") {
		t.Fatalf("error %v: want the last check's error and the count", err)
	}
}

func TestUntilTriesAtLeastOnce(t *testing.T) {
	calls := 0
	if err := (Poll{}).Until(func() error { calls++; return nil }); err != nil || calls != 1 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
	if w := Within(0); w.Tries != 1 {
		t.Fatalf("Within(0) tries %d, want 1", w.Tries)
	}
}

func TestHolds(t *testing.T) {
	if Holds(func() bool { return true })() != nil || Holds(func() bool { return false })() == nil {
		t.Fatal("Holds does not follow the condition")
	}
}

// fatalRecorder stands in for *testing.T to see what Eventually reports.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
}

func TestEventuallyNamesWhatWasAwaited(t *testing.T) {
	var f fatalRecorder
	Eventually(&f, "envoy listener", Poll{Tries: 2}, func() error { return errors.New("connection refused") })
	for _, want := range []string{"envoy listener", "connection refused", "2 tries"} {
		if !strings.Contains(f.msg, want) {
			t.Errorf("failure %q lacks %q", f.msg, want)
		}
	}
	f.msg = ""
	Eventually(&f, "ready", Poll{Tries: 2}, func() error { return nil })
	if f.msg != "" {
		t.Errorf("failed on a check that holds: %q", f.msg)
	}
}
