package daemon

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"gopkg.in/yaml.v3"

	"github.com/graymesh/graymesh/config"
	"github.com/graymesh/graymesh/gray"
)

// ReleaseStatus is one release as the admin API reports it.
type ReleaseStatus struct {
	Name  string `json:"name"`
	Env   string `json:"env"`
	State string `json:"state"`
	// Percent is the percentage in force now (the schedule's current step
	// when there is one).
	Percent        float64 `json:"percent"`
	TrafficPercent float64 `json:"traffic_percent,omitempty"`
	// ScheduleStep is the index of the schedule step in force (-1 before
	// the first step or without a schedule); ScheduleSteps counts them.
	ScheduleStep  int       `json:"schedule_step"`
	ScheduleSteps int       `json:"schedule_steps"`
	Whitelist     int       `json:"whitelist"`
	Blacklist     int       `json:"blacklist"`
	Override      *override `json:"override,omitempty"`
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

func (d *Daemon) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !d.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		// Kubernetes mode: not ready before the initial list of
		// GrayRelease objects is in force, so a pod never serves a
		// release killed while it was away.
		if f := d.opts.Fleet; f != nil && !f.Synced() {
			http.Error(w, "not ready: waiting for the initial list of GrayRelease objects", http.StatusServiceUnavailable)
			return
		}
		// Until an issuer's key set has been fetched once, its tokens are
		// anonymous: not ready, so a rollout waits for the provider.
		if pending := d.ext.Policy().Verifier.Pending(); len(pending) > 0 {
			http.Error(w, "not ready: "+strings.Join(pending, "; "), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.metrics.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /status", d.authed(d.handleStatus))
	mux.HandleFunc("POST /reload", d.authed(func(w http.ResponseWriter, _ *http.Request) {
		if err := d.Reload(); err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		fmt.Fprintln(w, "in force:", d.ext.Policy().Config.Version)
	}))
	mux.HandleFunc("GET /v1/releases", d.authed(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, d.releases())
	}))
	mux.HandleFunc("POST /v1/releases/{name}/{action}", d.authed(d.handleReleaseAction))
	mux.HandleFunc("GET /v1/releases/{name}/analysis", d.authed(d.handleAnalysis))
	mux.HandleFunc("GET /v1/releases/{name}/fleet", d.authed(d.handleFleet))
	mux.HandleFunc("POST /v1/explain", d.authed(d.handleExplain))
	mux.HandleFunc("POST /v1/diff", d.authed(d.handleDiff))
	mux.HandleFunc("GET /v1/config", d.authed(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		enc := yaml.NewEncoder(w)
		enc.SetIndent(2)
		_ = enc.Encode(redacted(d.ext.Policy().Config))
	}))
	if d.console != nil {
		// The console has its own login (a session cookie for the same
		// token), and is off wherever the admin API is.
		mux.Handle("/ui/", d.consoleGate(d.console))
	}
	return mux
}

// authed requires the admin bearer token when one is configured.
func (d *Daemon) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !d.adminOpen {
			http.Error(w, "admin API disabled: listening beyond loopback without an admin token (--admin-token-file)", http.StatusForbidden)
			return
		}
		if fromOtherSite(r) {
			http.Error(w, "refused: a browser sent this request from another site", http.StatusForbidden)
			return
		}
		if tok := d.opts.AdminToken; tok != "" {
			got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			if subtle.ConstantTimeCompare([]byte(got), []byte(tok)) != 1 {
				http.Error(w, "admin token required", http.StatusUnauthorized)
				return
			}
		}
		h(w, r)
	}
}

func (d *Daemon) releases() []ReleaseStatus {
	cfg := d.ext.Policy().Config
	now := d.opts.Clock.Now()
	d.mu.Lock()
	overrides := d.state.Overrides
	d.mu.Unlock()
	out := []ReleaseStatus{}
	for i := range cfg.Releases {
		r := &cfg.Releases[i]
		rs := ReleaseStatus{Name: r.Name, Env: r.Env, State: r.State, Percent: r.PercentAt(now), TrafficPercent: r.TrafficPercent,
			ScheduleStep: r.StepAt(now), ScheduleSteps: len(r.Schedule) + len(r.HeldSchedule), Whitelist: len(r.Whitelist), Blacklist: len(r.Blacklist)}
		if o, ok := overrides[r.Name]; ok {
			o := o
			rs.Override = &o
		}
		out = append(out, rs)
	}
	return out
}

func (d *Daemon) handleReleaseAction(w http.ResponseWriter, r *http.Request) {
	a, err := ParseAction(r.PathValue("name"), r.PathValue("action"), r.URL.Query())
	if err != nil {
		code := http.StatusBadRequest
		if !slices.Contains(ActionKinds, r.PathValue("action")) {
			code = http.StatusNotFound
		}
		http.Error(w, strings.TrimPrefix(err.Error(), errBadAction.Error()+": "), code)
		return
	}
	rs, err := d.Act(a)
	if err != nil {
		code := http.StatusUnprocessableEntity
		if errors.Is(err, errNoRelease) {
			code = http.StatusNotFound
		}
		http.Error(w, err.Error(), code)
		return
	}
	writeJSON(w, http.StatusOK, rs)
}

// handleExplain answers what the decision is for a described caller
// (a gray.Ask) and why, with the policy in force: the same entry point
// Envoy's requests go through.
func (d *Daemon) handleExplain(w http.ResponseWriter, r *http.Request) {
	var ask gray.Ask
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ask); err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	ex, err := d.Explain(ask)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	writeJSON(w, http.StatusOK, ex)
}

func (d *Daemon) handleStatus(w http.ResponseWriter, _ *http.Request) {
	p := d.ext.Policy()
	d.mu.Lock()
	var pending string
	if d.pending != nil && d.pending.EffectiveAt != nil {
		pending = d.pending.EffectiveAt.Format("2006-01-02T15:04:05Z07:00")
	}
	held := d.heldReleases()
	content := d.state.ContentHash
	d.mu.Unlock()
	var fleet map[string]any
	if d.opts.Fleet != nil {
		fleet = d.opts.Fleet.Status()
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"fleet":                  fleet,
		"config_file":            d.path,
		"config_version":         p.Config.Version,
		"config_content_hash":    content,
		"pending_effective_at":   pending,
		"pending_releases":       held,
		"xds_version":            d.xds.Version(),
		"last_reload":            d.lastReload.Load(),
		"releases":               d.releases(),
		"extproc_active_streams": d.ext.ActiveStreams(),
		"xds": map[string]int64{
			"pushes": d.xds.Stats.Pushes.Load(), "acks": d.xds.Stats.ACKs.Load(), "nacks": d.xds.Stats.NACKs.Load(),
			"restores": d.xds.Stats.Restores.Load(),
		},
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
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
