package console

import (
	"bytes"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/graymesh/graymesh/internal/contract/wire"
)

// pageNames are the templates/NAME.html files; each defines "content"
// (and any live fragments) and is rendered inside layout.html.
var pageNames = []string{"login", "releases", "release", "confirm", "explain", "chains"}

func parsePages() (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, err
		}
		pages[name] = t
	}
	return pages, nil
}

// view is what every page is rendered from.
type view struct {
	Title string
	// Nav is the section the page belongs to (releases, chains, explain).
	Nav string
	// CSRF is the session's token for the page's forms ("" on the login
	// page).
	CSRF string
	// Live is the fragment URL the page's script polls ("" for none).
	Live string
	// Version is the config version in force.
	Version string
	Page    any
}

// render executes page's layout (or, for a fragment, the named template)
// into a buffer first, so a template error is a clean 500.
func (c *Console) renderTemplate(w http.ResponseWriter, code int, page, name string, data any) {
	var buf bytes.Buffer
	if err := c.pages[page].ExecuteTemplate(&buf, name, data); err != nil {
		c.log.Error("console: rendering", "page", page, "template", name, "error", err)
		http.Error(w, "console: rendering failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = buf.WriteTo(w)
}

// render renders a whole page; data is a view or, for the login page, a
// map.
func (c *Console) render(w http.ResponseWriter, code int, page string, data any) {
	c.renderTemplate(w, code, page, "layout", data)
}

func (c *Console) newView(s *session, nav, title string, page any) view {
	v := view{Title: title, Nav: nav, Version: c.d.Config().Version, Page: page}
	if s != nil {
		v.CSRF = s.csrf
	}
	return v
}

var funcs = template.FuncMap{
	"pct":         func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) + "%" },
	"pct1":        func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) + "%" },
	"share":       func(v float64) string { return strconv.FormatFloat(100*v, 'f', 2, 64) + "%" },
	"count":       count,
	"intcount":    func(n int) string { return count(float64(n)) },
	"ts":          func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"iso":         func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"ago":         ago,
	"envClass":    envClass,
	"join":        strings.Join,
	"lower":       strings.ToLower,
	"add":         func(a, b float64) float64 { return a + b },
	"unavailable": func(fallback string) bool { return strings.HasSuffix(fallback, wire.UnavailableSuffix) },
	"sub":         func(a, b float64) float64 { return a - b },
}

// count formats a counter value with thousands separators.
func count(v float64) string {
	s := strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ago says how long before now t was, or how long after ("in 3 h").
func ago(t time.Time) string {
	d := time.Since(t)
	if d < 0 {
		return "in " + roughly(-d)
	}
	if d < 2*time.Second {
		return "just now"
	}
	return roughly(d) + " ago"
}

func roughly(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%.1f h", d.Hours())
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

// envClass is the CSS class of an environment's colour. The text of the
// environment is always shown too: colour is never the only sign.
func envClass(env string) string {
	switch env {
	case "stable":
		return "env-stable"
	case "gray", "canary":
		return "env-" + env
	case "":
		return "env-none"
	}
	return "env-other"
}
