package daemon

import (
	"bytes"
	"context"
	"crypto/subtle"
	"net/http"
	"net/url"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/graymesh/graymesh/gray"
)

// What the web console (package console) reads and does through the
// daemon: the same functions the admin API's handlers call, so the
// console can never disagree with the API or with Envoy.

// Explain decides a described caller with the policy in force, exactly as
// POST /v1/explain (and so Envoy) does.
func (d *Daemon) Explain(ask gray.Ask) (gray.Explanation, error) {
	p := d.ext.Policy()
	req, err := p.Request(ask, d.opts.Clock.Now())
	if err != nil {
		return gray.Explanation{}, err
	}
	return p.Explain(req), nil
}

// Releases is GET /v1/releases: every release as it stands now.
func (d *Daemon) Releases() []ReleaseStatus { return d.releases() }

// LastReload is the last change's outcome, as /status reports it.
func (d *Daemon) LastReload() (result, source, errText string) {
	st := d.lastReload.Load()
	if st == nil {
		return "", "", ""
	}
	return st.Result, st.Source, st.Error
}

// Gatherer reads graymesh's metrics (what /metrics serves).
func (d *Daemon) Gatherer() prometheus.Gatherer { return d.metrics.registry }

// StateDir is the state directory ("" when state is kept in memory).
func (d *Daemon) StateDir() string { return d.opts.StateDir }

// HasAdminToken reports whether the admin API needs a bearer token.
func (d *Daemon) HasAdminToken() bool { return d.opts.AdminToken != "" }

// AdminTokenIs reports, in constant time, whether tok is the admin token.
// It is false whenever no admin token is set.
func (d *Daemon) AdminTokenIs(tok string) bool {
	want := d.opts.AdminToken
	return want != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(want)) == 1
}

// APIGet serves GET path on the admin API in process, as an authenticated
// caller: the console reads endpoints that other parts of graymesh may or
// may not provide (a 404 says this build has none).
func (d *Daemon) APIGet(ctx context.Context, path string) (int, []byte) {
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, path, nil)
	if err != nil {
		return http.StatusBadRequest, []byte(err.Error())
	}
	if tok := d.opts.AdminToken; tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	w := &bufferWriter{header: http.Header{}, code: http.StatusOK}
	d.apiOnce.Do(func() { d.api = d.adminHandler() })
	d.api.ServeHTTP(w, r)
	return w.code, w.body.Bytes()
}

// bufferWriter is an in-process http.ResponseWriter.
type bufferWriter struct {
	header http.Header
	code   int
	wrote  bool
	body   bytes.Buffer
}

func (w *bufferWriter) Header() http.Header { return w.header }
func (w *bufferWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
}

func (w *bufferWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.body.Write(b)
}

// fromOtherSite reports a request that a browser sent on behalf of a page
// from another site. Any web page can make the operator's browser POST to
// a loopback admin API that needs no token (a form needs no CORS
// preflight); the CLI and curl send neither header, and the console's
// pages are same-origin.
func fromOtherSite(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
		return true
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	return err != nil || u.Host != r.Host
}

// consoleGate turns the console off wherever the admin API is off
// (listening beyond loopback without a token).
func (d *Daemon) consoleGate(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !d.adminOpen {
			http.Error(w, "console disabled: the admin API listens beyond loopback without an admin token (--admin-token-file)", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// runConsole runs the console's background work (sampling metrics) when
// it has any, until ctx is done.
func (d *Daemon) runConsole(ctx context.Context) {
	if r, ok := d.console.(interface{ Run(context.Context) }); ok {
		r.Run(ctx)
	}
}
