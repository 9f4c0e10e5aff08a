package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"gopkg.in/yaml.v3"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/gate"
	"github.com/graymesh/graymesh/internal/core/gray"
	"github.com/graymesh/graymesh/internal/runtime/control"
)

// Limits of POST /v1/diff: a config file is small, and sampling is CPU the
// admin server spends while Envoy is being served.
const (
	maxDiffBody   = 4 << 20
	maxDiffSample = 1_000_000
)

// maxReason bounds a reason: a sentence, not a document.
const maxReason = 500

// Handler serves the API on admin_listen, with health, readiness and
// metrics, and the console (when not nil) under /ui/. Listening beyond
// loopback without a token, only health, readiness, metrics and the lane
// state (public keys and kills) answer.
func (s *Service) Handler(console http.Handler) http.Handler {
	open := s.Open()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := s.ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if s.rt.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.rt.Gatherer, promhttp.HandlerOpts{}))
	}
	// The lane state is public: the keys are public keys (every sidecar
	// holds them), and a consumer that follows lanes must not need the
	// admin token, which can kill releases.
	mux.HandleFunc("GET /v1/lanes", func(w http.ResponseWriter, _ *http.Request) {
		if s.laneReads != nil {
			s.laneReads.Inc()
		}
		answer(w, s.Lanes(), nil)
	})
	authed := func(h http.HandlerFunc) http.HandlerFunc { return s.authed(open, h) }
	mux.HandleFunc("GET /status", authed(func(w http.ResponseWriter, r *http.Request) {
		st, err := s.Status(r.Context())
		answer(w, st, err)
	}))
	mux.HandleFunc("POST /reload", authed(func(w http.ResponseWriter, _ *http.Request) {
		if _, err := s.pipe.Submit(control.Reload{}); err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		fmt.Fprintln(w, "in force:", s.pipe.Config().Version)
	}))
	mux.HandleFunc("GET /v1/releases", authed(func(w http.ResponseWriter, r *http.Request) {
		rs, err := s.Releases(r.Context())
		answer(w, rs, err)
	}))
	mux.HandleFunc("POST /v1/releases/{name}/{action}", authed(s.handleAction))
	mux.HandleFunc("POST /v1/releases/{name}/stress-marker", authed(s.handleStressMarker))
	mux.HandleFunc("POST /v1/releases/{name}/{action}/preview", authed(s.handlePreview))
	mux.HandleFunc("GET /v1/releases/{name}/analysis", authed(s.handleAnalysis))
	mux.HandleFunc("GET /v1/releases/{name}/fleet", authed(func(w http.ResponseWriter, r *http.Request) {
		fr, err := s.Fleet(r.Context(), r.PathValue("name"))
		answer(w, fr, err)
	}))
	mux.HandleFunc("GET /v1/history", authed(func(w http.ResponseWriter, r *http.Request) {
		h, err := s.History(r.Context(), r.URL.Query().Get("release"))
		answer(w, h, err)
	}))
	mux.HandleFunc("POST /v1/explain", authed(s.handleExplain))
	mux.HandleFunc("POST /v1/diff", authed(s.handleDiff))
	mux.HandleFunc("GET /v1/config", authed(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		enc := yaml.NewEncoder(w)
		enc.SetIndent(2)
		_ = enc.Encode(redacted(s.pipe.Config()))
	}))
	if console != nil {
		// The console has its own login (a session cookie for the same
		// token), and is off wherever the admin API is.
		mux.Handle("/ui/", consoleGate(open, console))
	}
	return mux
}

// ready is nil when the process serves: listening, the fleet's initial
// list in force, every issuer's key set fetched once.
func (s *Service) ready() error {
	if s.rt.Ready != nil {
		if err := s.rt.Ready(); err != nil {
			return err
		}
	}
	// Kubernetes mode: not ready before the initial list of GrayRelease
	// objects is in force, so a pod never serves a release killed while
	// it was away.
	if on, synced := s.pipe.FleetMode(); on && !synced {
		return errors.New("not ready: waiting for the initial list of GrayRelease objects")
	}
	// Until an issuer's key set has been fetched once, its tokens are
	// anonymous: not ready, so a rollout waits for the provider.
	if pending := s.pipe.Policy().Verifier.Pending(); len(pending) > 0 {
		return errors.New("not ready: " + strings.Join(pending, "; "))
	}
	return nil
}

// authed requires the admin bearer token when one is configured.
func (s *Service) authed(open bool, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !open {
			http.Error(w, "admin API disabled: listening beyond loopback without an admin token (--admin-token-file)", http.StatusForbidden)
			return
		}
		if fromOtherSite(r) {
			http.Error(w, "refused: a browser sent this request from another site", http.StatusForbidden)
			return
		}
		if s.rt.Token != "" && !s.TokenIs(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")) {
			http.Error(w, "admin token required", http.StatusUnauthorized)
			return
		}
		h(w, r)
	}
}

// ParseAction reads an action from the admin API's path values and query
// (value, rollback, reason). reset is a rollback unless rollback=false.
func ParseAction(release, kind string, q url.Values) (Action, error) {
	a := Action{Release: release, Kind: kind, Rollback: q.Get("rollback") == "true", Reason: q.Get("reason")}
	switch kind {
	case "freeze", "unfreeze", "revive", "kill":
	case "reset":
		a.Rollback = a.Rollback || q.Get("rollback") == ""
	case "percent":
		v, err := strconv.ParseFloat(q.Get("value"), 64)
		if err != nil {
			return Action{}, &Error{Code: http.StatusBadRequest, Message: "percent needs ?value=0..100"}
		}
		a.Percent = v
	default:
		return Action{}, &Error{Code: http.StatusNotFound, Message: fmt.Sprintf("unknown action %q: %s", kind, strings.Join(control.ActionKinds, ", "))}
	}
	if len(a.Reason) > maxReason {
		return Action{}, &Error{Code: http.StatusBadRequest, Message: fmt.Sprintf("reason longer than %d bytes", maxReason)}
	}
	return a, nil
}

// actionQuery is the query ParseAction reads back.
func actionQuery(a Action) url.Values {
	q := url.Values{}
	if a.Kind == "percent" {
		q.Set("value", strconv.FormatFloat(a.Percent, 'f', -1, 64))
	}
	if a.Rollback {
		q.Set("rollback", "true")
	} else if a.Kind == "reset" {
		q.Set("rollback", "false")
	}
	if a.Reason != "" {
		q.Set("reason", a.Reason)
	}
	return q
}

func (s *Service) handleAction(w http.ResponseWriter, r *http.Request) {
	a, err := ParseAction(r.PathValue("name"), r.PathValue("action"), r.URL.Query())
	if err == nil {
		var rs ReleaseStatus
		rs, err = s.Act(r.Context(), a)
		answer(w, rs, err)
		return
	}
	answer(w, nil, err)
}

func (s *Service) handlePreview(w http.ResponseWriter, r *http.Request) {
	a, err := ParseAction(r.PathValue("name"), r.PathValue("action"), r.URL.Query())
	if err != nil {
		answer(w, nil, err)
		return
	}
	sample, err := sampleOf(r.URL.Query())
	if err != nil {
		answer(w, nil, err)
		return
	}
	rep, err := s.Preview(r.Context(), a, sample)
	answer(w, rep, err)
}

// handleAnalysis answers GET /v1/releases/{name}/analysis[?windows=N]:
// the release's analysis settings and its last windows, newest last.
func (s *Service) handleAnalysis(w http.ResponseWriter, r *http.Request) {
	n := 0
	if v := r.URL.Query().Get("windows"); v != "" {
		i, err := strconv.Atoi(v)
		if err != nil || i < 1 {
			http.Error(w, fmt.Sprintf("windows: %q is not a positive number", v), http.StatusBadRequest)
			return
		}
		n = i
	}
	st, err := s.Analysis(r.Context(), r.PathValue("name"), n)
	answer(w, st, err)
}

// handleStressMarker answers POST /v1/releases/{name}/stress-marker?ttl=D
// (default DefaultStressTTL).
func (s *Service) handleStressMarker(w http.ResponseWriter, r *http.Request) {
	ttl := DefaultStressTTL
	if v := r.URL.Query().Get("ttl"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			answer(w, nil, &Error{Code: http.StatusBadRequest, Message: "ttl: " + err.Error()})
			return
		}
		ttl = d
	}
	m, err := s.StressMarker(r.Context(), r.PathValue("name"), ttl)
	answer(w, m, err)
}

// DefaultStressTTL is a stress marker's lifetime when none is asked for.
const DefaultStressTTL = time.Hour

// handleExplain answers what the decision is for a described caller
// (a gray.Ask) and why, with the policy in force: the same entry point
// Envoy's requests go through.
func (s *Service) handleExplain(w http.ResponseWriter, r *http.Request) {
	var ask gray.Ask
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ask); err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	ex, err := s.Explain(r.Context(), ask)
	answer(w, ex, err)
}

// handleDiff answers POST /v1/diff: the body is a candidate config file
// (YAML), diffed against the config in force as a reload would see it —
// unredacted, with the admin overrides applied on top of the candidate —
// and answered as a gate.Report in JSON. Query parameters: source, the
// candidate's path on the caller's machine (relative key paths resolve
// against its directory, read by this graymesh); sample; at (RFC 3339).
func (s *Service) handleDiff(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := DiffRequest{Source: q.Get("source")}
	var err error
	if d.Sample, err = sampleOf(q); err != nil {
		answer(w, nil, err)
		return
	}
	if v := q.Get("at"); v != "" {
		if d.At, err = time.Parse(time.RFC3339, v); err != nil {
			http.Error(w, fmt.Sprintf("at: %q is not an RFC 3339 time", v), http.StatusBadRequest)
			return
		}
	}
	if d.Data, err = io.ReadAll(http.MaxBytesReader(w, r.Body, maxDiffBody)); err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	rep, err := s.Diff(r.Context(), d)
	answer(w, rep, err)
}

// sampleOf reads ?sample= (gate.DefaultSample when absent).
func sampleOf(q url.Values) (int, error) {
	v := q.Get("sample")
	if v == "" {
		return gate.DefaultSample, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxDiffSample {
		return 0, &Error{Code: http.StatusBadRequest, Message: fmt.Sprintf("sample: %q is not a number in 1..%d", v, maxDiffSample)}
	}
	return n, nil
}

// answer writes v as JSON, or err with its status.
func answer(w http.ResponseWriter, v any, err error) {
	if err != nil {
		code := http.StatusInternalServerError
		var e *Error
		if errors.As(err, &e) {
			code = e.Code
		}
		http.Error(w, err.Error(), code)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Open reports whether the API answers: it listens on loopback only, or
// needs a token. Otherwise only health, readiness and metrics answer.
func (s *Service) Open() bool {
	return isLoopback(s.pipe.Config().Server.AdminListen) || s.rt.Token != ""
}

// isLoopback reports whether addr (host:port) only listens on loopback.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
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
func consoleGate(open bool, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !open {
			http.Error(w, "console disabled: the admin API listens beyond loopback without an admin token (--admin-token-file)", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func redactKeys(keys []config.Key) {
	for i := range keys {
		if keys[i].Secret != "" {
			keys[i].Secret = "<redacted>"
		}
	}
}

// redacted is cfg without inline secrets.
func redacted(cfg *config.Config) *config.Config {
	c, err := cfg.Clone()
	if err != nil {
		return &config.Config{}
	}
	redactKeys(c.Identity.JWT.Keys)
	for i := range c.Identity.JWT.Issuers {
		redactKeys(c.Identity.JWT.Issuers[i].Keys)
	}
	if c.Lane.Key != "" {
		c.Lane.Key = "<redacted>"
	}
	for i := range c.Lane.VerifyKeys {
		c.Lane.VerifyKeys[i] = "<redacted>"
	}
	return c
}
