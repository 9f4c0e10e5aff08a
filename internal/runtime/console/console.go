// Package console is graymesh's web console: server-rendered pages under
// /ui/ on the admin server, with its assets embedded in the binary. It
// shows every release (state, percentage in force, schedule, configured
// and observed gray share, change timeline), explains a caller through the
// same entry point as Envoy, draws recent call chains read from Jaeger, and
// acts on a release after a confirmation that shows the consequence.
//
// It reads and changes nothing on its own: every page is built from the
// daemon's functions that the admin API's handlers call (Releases,
// History, Explain, Preview, Act), so the console cannot disagree with the
// API, the CLI or Envoy.
//
// Security: a login form exchanges the admin token (or, where the admin
// API needs none, a console token kept in the state directory) for a
// session cookie (HttpOnly, SameSite=Strict, Path=/ui/); every POST
// carries the session's CSRF token; pages carry a Content-Security-Policy
// that allows only the console's own script and style sheet.
package console

import (
	"context"
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/graymesh/graymesh/internal/runtime/admin"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options tune the console.
type Options struct {
	// Jaeger is the Jaeger query API the chains page reads
	// (e.g. http://127.0.0.1:16686); "" shows no chains.
	Jaeger string
	// JaegerUI, when set, links each chain to its trace there
	// (JaegerUI + "/trace/" + id).
	JaegerUI string
	// TraceService is the edge service whose traces the chains page reads.
	TraceService string
	// TraceWindow is how far back the chains page reads (default 10m).
	TraceWindow time.Duration
	// TraceSearches bounds the Jaeger searches of one read of the chains
	// page (default tracecheck.DefaultMaxRequests, as verify-traces).
	TraceSearches int
	// SampleEvery is how often the observed gray share is sampled from
	// graymesh's decision counters (default 2s).
	SampleEvery time.Duration
	// PreviewSample is the number of synthetic subjects a confirmation's
	// blast radius decides (default 20000: 0.005% steps).
	PreviewSample int
}

// Console serves /ui/.
type Console struct {
	d        *admin.Service
	opts     Options
	log      *slog.Logger
	pages    map[string]*template.Template
	mux      *http.ServeMux
	auth     *auth
	observed *observer
	jaeger   *http.Client
	chains   chainStore
}

// New builds the console for d. Where the admin API needs no token it
// reads, or creates, the console token in d's state directory.
func New(d *admin.Service, opts Options, log *slog.Logger) (*Console, error) {
	if opts.TraceService == "" {
		opts.TraceService = "frontend"
	}
	if opts.TraceWindow <= 0 {
		opts.TraceWindow = 10 * time.Minute
	}
	if opts.SampleEvery <= 0 {
		opts.SampleEvery = 2 * time.Second
	}
	if opts.PreviewSample <= 0 {
		opts.PreviewSample = 20000
	}
	log = log.With("component", "console")
	a, err := newAuth(d, log)
	if err != nil {
		return nil, err
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	c := &Console{
		d: d, opts: opts, log: log, pages: pages, auth: a, observed: newObserver(d),
		jaeger: &http.Client{Timeout: 10 * time.Second},
	}
	c.routes()
	return c, nil
}

// TokenFile is the file holding the console token ("" when the admin
// token is the console's).
func (c *Console) TokenFile() string { return c.auth.tokenFile }

// Run samples the decision counters every SampleEvery while a page
// shows them, and when the config version changes, until ctx is done.
func (c *Console) Run(ctx context.Context) {
	t := time.NewTicker(c.opts.SampleEvery)
	defer t.Stop()
	c.sampleOn(ctx, t.C)
}

// sampleOn samples once, then at each tick the sampler is due.
func (c *Console) sampleOn(ctx context.Context, ticks <-chan time.Time) {
	c.observed.sample()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ticks:
			c.tick(now)
		}
	}
}

// tick samples when the sampler is due at now.
func (c *Console) tick(now time.Time) {
	if c.observed.due(now) {
		c.observed.sample()
	}
}

var _ http.Handler = (*Console)(nil)

// ServeHTTP serves the console with its security headers.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// same-origin, not no-referrer: with no-referrer a form POST carries
	// "Origin: null", which sameOrigin would have to let through.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if !c.hostAllowed(r) {
		http.Error(w, "the console answers only on the admin server's own address", http.StatusMisdirectedRequest)
		return
	}
	c.mux.ServeHTTP(w, r)
}

// contentSecurityPolicy allows the console's own script, style sheet and
// fetches, nothing inline, no frames, forms posting only to itself.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func (c *Console) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", staticHandler(static)))
	m.HandleFunc("GET /ui/login", c.loginPage)
	m.HandleFunc("POST /ui/login", c.login)
	m.HandleFunc("POST /ui/logout", c.action(c.logout))
	m.HandleFunc("GET /ui/{$}", c.page(c.releasesPage))
	m.HandleFunc("GET /ui/live/releases", c.fragment(c.releasesFragment))
	m.HandleFunc("GET /ui/releases/{name}", c.page(c.releasePage))
	m.HandleFunc("GET /ui/live/releases/{name}", c.fragment(c.releaseFragment))
	m.HandleFunc("GET /ui/releases/{name}/confirm", c.page(c.confirmPage))
	m.HandleFunc("POST /ui/releases/{name}/act", c.action(c.act))
	m.HandleFunc("GET /ui/explain", c.page(c.explainPage))
	m.HandleFunc("POST /ui/explain", c.action(c.explain))
	m.HandleFunc("GET /ui/chains", c.page(c.chainsPage))
	m.HandleFunc("GET /ui/live/chains", c.fragment(c.chainsFragment))
	m.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such console page", http.StatusNotFound)
	})
	c.mux = m
}

// staticHandler serves the embedded assets; they change with the binary,
// so a short cache is enough.
func staticHandler(fsys fs.FS) http.Handler {
	files := http.FileServer(http.FS(fsys))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "private, max-age=60")
		files.ServeHTTP(w, r)
	})
}
