package console

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/plan"
	"github.com/graymesh/graymesh/internal/runtime/admin"
)

// observedWindow is the window of the "last minute" observed share.
const observedWindow = time.Minute

// releaseRow is one release as the releases page and the release page
// show it.
type releaseRow struct {
	admin.ReleaseStatus
	// Release is the release as in force (rules, schedule).
	Release config.Release
	// Next is the next schedule step, if any; NextWaits what it waits for
	// besides its time ("" for nothing else).
	Next      *config.Step
	NextWaits string
	// Window is the observed share over the last minute; Since the share
	// since SinceVersion took effect.
	Window       share
	Since        share
	SinceVersion string
	// EnvoyRoutes names the requests of the release the edge's Envoy
	// routes without asking graymesh, which no decision count sees (""
	// for none).
	EnvoyRoutes string
	// Changed is the newest accepted change that touched the release.
	Changed *admin.Change
	// Down is where the release's environment was down lately (its
	// sidecars failed over to stable), from the traces; nil when none was
	// seen or no Jaeger is configured.
	Down *grayDown
	// DownKnown: traces are read (a Jaeger is configured), so no Down
	// means no failover was seen.
	DownKnown bool
}

// envoyRoutes says what the edge's Envoy routes itself: the requests of
// returning callers carrying their proofs, and the anonymous requests it
// splits for the release.
func envoyRoutes(returning, anonymous bool) string {
	var parts []string
	if returning {
		parts = append(parts, "the requests of returning callers carrying their proofs (each caller was decided once per version, counted above)")
	}
	if anonymous {
		parts = append(parts, "the anonymous requests it splits for this release")
	}
	return strings.Join(parts, "; ")
}

// waitsForAnalysis is what a step held by an analysis waits for.
func waitsForAnalysis(at, now time.Time) string {
	if at.After(now) {
		return "waits for its time, then a passing analysis window"
	}
	return "waits for a passing analysis window"
}

// nextStep is r's next schedule step: the first one an analysis still
// holds, else the first whose time has not come.
func nextStep(r *config.Release, now time.Time) (*config.Step, string) {
	if len(r.HeldSchedule) > 0 {
		return &r.HeldSchedule[0], waitsForAnalysis(r.HeldSchedule[0].At, now)
	}
	for i, st := range r.Schedule {
		if st.At.After(now) {
			return &r.Schedule[i], ""
		}
	}
	return nil, ""
}

// stepRow is one schedule step as the release page lists it.
type stepRow struct {
	Index   int
	At      time.Time
	Percent float64
	// Status is "in force", "done", "to come" or what a held step waits
	// for.
	Status  string
	Current bool
}

// Steps are the release's schedule steps, those in force and those an
// analysis still holds.
func (r releaseRow) Steps() []stepRow {
	now := time.Now()
	var out []stepRow
	for i, st := range r.Release.Schedule {
		row := stepRow{Index: i, At: st.At, Percent: st.Percent, Status: "to come", Current: i == r.ScheduleStep}
		switch {
		case row.Current:
			row.Status = "in force"
		case i < r.ScheduleStep:
			row.Status = "done"
		}
		out = append(out, row)
	}
	for i, st := range r.Release.HeldSchedule {
		out = append(out, stepRow{Index: len(r.Release.Schedule) + i, At: st.At, Percent: st.Percent, Status: "to come: " + waitsForAnalysis(st.At, now)})
	}
	return out
}

// StepNumber is the schedule step in force, counted from 1.
func (r releaseRow) StepNumber() int { return r.ScheduleStep + 1 }

// Frozen reports a frozen release.
func (r releaseRow) Frozen() bool { return r.State == config.StateFrozen }

// Killed reports the kill switch.
func (r releaseRow) Killed() bool { return r.State == config.StateKilled }

// InForce is the percentage the release admits now: 0 while killed, its
// configured percentage kept for a revive.
func (r releaseRow) InForce() float64 { return percentInForce(r.ReleaseStatus) }

// InForceWhy says why the percentage in force is not the configured one
// ("" when it is).
func (r releaseRow) InForceWhy() string {
	switch r.State {
	case config.StateKilled:
		return fmt.Sprintf("killed: everyone is served by stable; %s applies again on revive", strconv.FormatFloat(r.Percent, 'f', -1, 64)+"%")
	case config.StateFrozen:
		return "frozen: nobody new joins; members stay in gray"
	}
	return ""
}

func (c *Console) releaseRows(ctx context.Context) []releaseRow {
	c.observed.fresh()
	cfg := c.d.Config()
	now := time.Now()
	var rows []releaseRow
	releases, _ := c.d.Releases(ctx)
	returning, anonymousFor := plan.EnvoyRoutesItself(cfg)
	for _, rs := range releases {
		row := releaseRow{ReleaseStatus: rs, EnvoyRoutes: envoyRoutes(returning, anonymousFor == rs.Name)}
		for i := range cfg.Releases {
			if cfg.Releases[i].Name == rs.Name {
				row.Release = cfg.Releases[i]
			}
		}
		row.Next, row.NextWaits = nextStep(&row.Release, now)
		row.Window = c.observed.window(rs.Name, observedWindow)
		row.Since, row.SinceVersion = c.observed.sinceVersion(rs.Name)
		history, _ := c.d.History(ctx, rs.Name)
		for _, ch := range history {
			if ch.Result == "accepted" {
				ch := ch
				row.Changed = &ch
				break
			}
		}
		rows = append(rows, row)
	}
	var envs []string
	for _, row := range rows {
		envs = append(envs, row.Env)
	}
	down := c.grayDownFor(ctx, envs)
	for i := range rows {
		rows[i].Down, rows[i].DownKnown = down[rows[i].Env], down != nil
	}
	return rows
}

// releasesView is the releases page.
type releasesView struct {
	Rows []releaseRow
	// LastResult, LastSource and LastError are the last change's outcome;
	// LastAt when it was refused (zero when the timeline no longer holds
	// it).
	LastResult, LastSource, LastError string
	LastAt                            time.Time
}

func (c *Console) releasesView(ctx context.Context) releasesView {
	v := releasesView{Rows: c.releaseRows(ctx)}
	if last := c.d.Last(); last != nil {
		v.LastResult, v.LastSource, v.LastError = last.Result, last.Source, last.Error
	}
	if v.LastResult == "refused" {
		history, _ := c.d.History(ctx, "")
		for _, ch := range history {
			if ch.Result == "refused" {
				v.LastAt = ch.At
				break
			}
		}
	}
	return v
}

func (c *Console) releasesPage(w http.ResponseWriter, r *http.Request, s *session) {
	v := c.newView(s, "releases", "Releases", c.releasesView(r.Context()))
	v.Live = "/ui/live/releases"
	c.render(w, http.StatusOK, "releases", v)
}

func (c *Console) releasesFragment(w http.ResponseWriter, r *http.Request, s *session) {
	c.renderTemplate(w, http.StatusOK, "releases", "live", c.newView(s, "releases", "", c.releasesView(r.Context())))
}

// releaseView is the release page.
type releaseView struct {
	releaseRow
	History []admin.Change
	Chart   chart
	// Done names the action just taken (from the redirect after it).
	Done string
	// Analysis is the analysis endpoint's answer, when it has one (its
	// newest windows); AnalysisStatus its HTTP status (404: the release has
	// no analysis).
	Analysis       *admin.AnalysisStatus
	AnalysisStatus int
	// Fleet is how the fleet serves the release, in Kubernetes mode (GET
	// /v1/releases/{name}/fleet); FleetError why it could not be read
	// there. Both are empty in file mode (404).
	Fleet      *admin.FleetRelease
	FleetError string
}

// analysisWindows is how many of the newest analysis windows the release
// page shows.
const analysisWindows = 10

// AnalysisMissing says the release has no analysis (404), or this
// graymesh no analysis endpoint (405: the path only matches the actions'
// POST route).
func (v releaseView) AnalysisMissing() bool {
	return v.AnalysisStatus == http.StatusNotFound || v.AnalysisStatus == http.StatusMethodNotAllowed
}

// Row is the release's row, for the templates shared with the releases
// page.
func (v releaseView) Row() releaseRow { return v.releaseRow }

func (c *Console) releaseView(ctx context.Context, name string) (releaseView, bool) {
	for _, row := range c.releaseRows(ctx) {
		if row.Name != name {
			continue
		}
		history, _ := c.d.History(ctx, name)
		v := releaseView{releaseRow: row, History: history}
		v.Chart = newChart(c.observed.series(name, chartStep), c.observed.targets(name))
		st, err := c.d.Analysis(ctx, name, analysisWindows)
		v.AnalysisStatus = admin.Code(err)
		if err == nil {
			slices.Reverse(st.Windows) // newest first
			v.Analysis = st
		}
		v.Fleet, v.FleetError = c.fleet(ctx, name)
		return v, true
	}
	return releaseView{}, false
}

// fleet reads the release's fleet status through the admin API, as the
// analysis above: a 404 is file mode (or no object yet), shown as not
// available; another failure is shown with its text.
func (c *Console) fleet(ctx context.Context, name string) (*admin.FleetRelease, string) {
	fr, err := c.d.Fleet(ctx, name)
	switch admin.Code(err) {
	case http.StatusOK:
		return fr, ""
	case http.StatusNotFound:
		return nil, ""
	default:
		return nil, err.Error()
	}
}

func (c *Console) releasePage(w http.ResponseWriter, r *http.Request, s *session) {
	rv, ok := c.releaseView(r.Context(), r.PathValue("name"))
	if !ok {
		http.Error(w, "no such release", http.StatusNotFound)
		return
	}
	rv.Done = doneText[r.URL.Query().Get("done")]
	v := c.newView(s, "releases", "Release "+rv.Name, rv)
	v.Live = "/ui/live/releases/" + rv.Name
	c.render(w, http.StatusOK, "release", v)
}

func (c *Console) releaseFragment(w http.ResponseWriter, r *http.Request, s *session) {
	rv, ok := c.releaseView(r.Context(), r.PathValue("name"))
	if !ok {
		http.Error(w, "no such release", http.StatusNotFound)
		return
	}
	c.renderTemplate(w, http.StatusOK, "release", "live", c.newView(s, "releases", "", rv))
}

// doneText is the notice after an action (the redirect names the kind
// only: nothing a person typed travels in a URL).
var doneText = map[string]string{
	"freeze": "Frozen.", "unfreeze": "Unfrozen.", "kill": "Killed: everyone it admitted is served by stable.",
	"revive": "Revived.", "percent": "Percentage changed.", "reset": "Runtime changes dropped: the file's values apply.",
}
