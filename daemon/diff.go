package daemon

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/graymesh/graymesh/config"
	"github.com/graymesh/graymesh/gate"
)

// Limits of POST /v1/diff: a config file is small, and sampling is CPU the
// admin server spends while Envoy is being served.
const (
	maxDiffBody   = 4 << 20
	maxDiffSample = 1_000_000
)

// AdminHandler serves the admin API (what Run serves on admin_listen), for
// tests and for embedding graymesh in another server.
func (d *Daemon) AdminHandler() http.Handler { return d.adminHandler() }

// handleDiff answers POST /v1/diff: the body is a candidate config file
// (YAML), diffed against the config in force as a reload would see it —
// unredacted, with the admin overrides applied on top of the candidate —
// and answered as a gate.Report in JSON. Query parameters: source, the
// candidate's path on the caller's machine (relative key paths resolve
// against its directory, read by this graymesh); sample; at (RFC 3339).
func (d *Daemon) handleDiff(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	sample := gate.DefaultSample
	if s := q.Get("sample"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxDiffSample {
			http.Error(w, fmt.Sprintf("sample: %q is not a number in 1..%d", s, maxDiffSample), http.StatusBadRequest)
			return
		}
		sample = n
	}
	at := d.opts.Clock.Now()
	if s := q.Get("at"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			http.Error(w, fmt.Sprintf("at: %q is not an RFC 3339 time", s), http.StatusBadRequest)
			return
		}
		at = t
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxDiffBody))
	if err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	source := q.Get("source")
	file, err := config.Parse(data, source)
	if err != nil {
		http.Error(w, fmt.Sprintf("%s: %v", source, err), http.StatusUnprocessableEntity)
		return
	}
	d.mu.Lock()
	next, err := effective(file, d.state.Overrides)
	d.mu.Unlock()
	if err != nil {
		http.Error(w, fmt.Sprintf("%s with admin overrides: %v", source, err), http.StatusUnprocessableEntity)
		return
	}
	next.Version = file.Version
	writeJSON(w, http.StatusOK, d.report(next, sample, at))
}
