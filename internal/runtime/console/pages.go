package console

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
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
	// Next is the next schedule step, if any.
	Next *config.Step
	// Window is the observed share over the last minute; Since the share
	// since SinceVersion took effect.
	Window       share
	Since        share
	SinceVersion string
	// Changed is the newest accepted change that touched the release.
	Changed *admin.Change
}

// StepNumber is the schedule step in force, counted from 1.
func (r releaseRow) StepNumber() int { return r.ScheduleStep + 1 }

// Frozen reports a frozen release.
func (r releaseRow) Frozen() bool { return r.State == config.StateFrozen }

// Killed reports the kill switch.
func (r releaseRow) Killed() bool { return r.State == config.StateKilled }

func (c *Console) releaseRows(ctx context.Context) []releaseRow {
	c.observed.fresh()
	cfg := c.d.Config()
	now := time.Now()
	var rows []releaseRow
	releases, _ := c.d.Releases(ctx)
	for _, rs := range releases {
		row := releaseRow{ReleaseStatus: rs}
		for i := range cfg.Releases {
			if cfg.Releases[i].Name == rs.Name {
				row.Release = cfg.Releases[i]
			}
		}
		for i, st := range row.Release.Schedule {
			if st.At.After(now) {
				row.Next = &row.Release.Schedule[i]
				break
			}
		}
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
	return rows
}

// releasesView is the releases page.
type releasesView struct {
	Rows []releaseRow
	// LastResult, LastSource and LastError are the last change's outcome.
	LastResult, LastSource, LastError string
}

func (c *Console) releasesView(ctx context.Context) releasesView {
	v := releasesView{Rows: c.releaseRows(ctx)}
	if last := c.d.Last(); last != nil {
		v.LastResult, v.LastSource, v.LastError = last.Result, last.Source, last.Error
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
		v.Chart = newChart(c.observed.series(name, chartStep), row.Percent)
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
