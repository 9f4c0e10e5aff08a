// Package testutil holds what tests across graymesh share: one way to wait
// for a condition that holds a little later (a process ready, a snapshot
// restored, a span in Jaeger).
package testutil

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// DefaultEvery is the pause between two tries of a Poll built by Within.
const DefaultEvery = 50 * time.Millisecond

// Poll bounds a wait by a count: at most Tries calls of the check, with a
// pause of Every between two of them. The pause only spares the machine;
// whether the wait succeeds is decided by the check alone.
type Poll struct {
	Tries int
	Every time.Duration
}

// Within is a Poll of DefaultEvery pauses that spans about d when each
// check returns at once: at least one try.
func Within(d time.Duration) Poll {
	return Poll{Tries: max(1, int(d/DefaultEvery)), Every: DefaultEvery}
}

// Until calls check until it returns nil or Tries calls have failed; it
// returns nil or the last check's error, with the count of tries.
func (p Poll) Until(check func() error) error {
	var err error
	for i := range max(1, p.Tries) {
		if i > 0 {
			time.Sleep(p.Every)
		}
		if err = check(); err == nil {
			return nil
		}
	}
	return fmt.Errorf("still failing after %d tries %s apart: %w", max(1, p.Tries), p.Every, err)
}

// Eventually fails the test (t.Fatalf, so only from the test's goroutine)
// when check has not returned nil within p, naming what was awaited and the
// last error.
func Eventually(t testing.TB, what string, p Poll, check func() error) {
	t.Helper()
	if err := p.Until(check); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// Holds turns a yes/no condition into a check for Until and Eventually.
func Holds(ok func() bool) func() error {
	return func() error {
		if !ok() {
			return errNotYet
		}
		return nil
	}
}

var errNotYet = errors.New("condition not met")
