package loadtest

import (
	"fmt"
	"io"
	"strings"
	"time"
)

const (
	// progressEvery is how often the progress line is redrawn at most.
	progressEvery = 500 * time.Millisecond
	// progressBarCells is the width of the bar itself.
	progressBarCells = 20
	// progressLineWidth pads each line so that a shorter one overwrites
	// all of the longer one it replaces; a usual line fits in 80 columns.
	progressLineWidth = 79
)

// progressMark is what the last progress line counted, and when.
type progressMark struct {
	at       time.Time
	requests int
}

// drawProgress redraws the progress line as of now.
func (r *run) drawProgress(now time.Time, pacer rampPacer) {
	elapsed := now.Sub(r.report.Started)
	var rate float64
	if since := now.Sub(r.drawn.at).Seconds(); since > 0 {
		rate = float64(r.shadow.requests-r.drawn.requests) / since
	}
	r.drawn = progressMark{at: now, requests: r.shadow.requests}
	line := progressLine(elapsed, r.o.Duration, rate, pacer.Rate(elapsed), r.shadow.requests, r.shadow.errors)
	// A progress line that cannot be written must not stop a load test.
	_, _ = io.WriteString(r.o.Progress, line)
}

// finishProgress draws the last line and ends it, so that what the
// caller writes next starts on a line of its own.
func (r *run) finishProgress(pacer rampPacer) {
	r.drawProgress(time.Now(), pacer)
	_, _ = io.WriteString(r.o.Progress, "\n")
}

// progressLine is one redraw of the progress bar, starting with '\r':
// how much of the run has passed, the shadow rate sent since the last
// line against the rate scheduled now, and the shadow errors so far.
func progressLine(elapsed, duration time.Duration, rate, scheduled float64, requests, errors int) string {
	done := min(max(int(progressBarCells*elapsed/duration), 0), progressBarCells)
	bar := strings.Repeat("#", done) + strings.Repeat("-", progressBarCells-done)
	var errorPercent float64
	if requests > 0 {
		errorPercent = 100 * float64(errors) / float64(requests)
	}
	body := fmt.Sprintf("[%s] %s/%s  shadow %.0f/%.0f req/s  errors %d/%d (%.1f%%)",
		bar, elapsed.Round(100*time.Millisecond), duration, rate, scheduled, errors, requests, errorPercent)
	return fmt.Sprintf("\r%-*s", progressLineWidth, body)
}
