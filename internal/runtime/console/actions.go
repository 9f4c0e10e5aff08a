package console

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/graymesh/graymesh/internal/core/gate"
	"github.com/graymesh/graymesh/internal/runtime/admin"
)

// confirmView is the confirmation of an action: what it will do (the
// blast radius of the config it would put in force), then the form that
// does it.
type confirmView struct {
	Release string
	Action  admin.Action
	// Verb is the action in words ("ramp to 50%", "kill").
	Verb string
	// Report is the blast radius; PreviewError is why there is none.
	Report       *gate.Report
	PreviewError string
	// ReasonRequired: freeze, unfreeze, kill, revive, reset and every
	// declared rollback ask why; the reason is recorded.
	ReasonRequired bool
	// Problem is a form problem; Refused is the server's message when it
	// refused the action.
	Problem string
	Refused string
}

// readAction reads an action from a query or a form.
func readAction(release string, q url.Values) (admin.Action, error) {
	kind := q.Get("action")
	if !slices.Contains(admin.ActionKinds, kind) {
		return admin.Action{}, fmt.Errorf("unknown action %q", kind)
	}
	a := admin.Action{Release: release, Kind: kind, Reason: strings.TrimSpace(q.Get("reason"))}
	a.Rollback = q.Get("rollback") == "on" || kind == "reset"
	if kind == "percent" {
		v, err := strconv.ParseFloat(strings.TrimSpace(q.Get("value")), 64)
		if err != nil {
			return admin.Action{}, errors.New("the percentage must be a number from 0 to 100")
		}
		a.Percent = v
	}
	return a, nil
}

func verb(a admin.Action) string {
	switch {
	case a.Kind == "percent" && a.Rollback:
		return fmt.Sprintf("roll back to %g%%", a.Percent)
	case a.Kind == "percent":
		return fmt.Sprintf("ramp to %g%%", a.Percent)
	case a.Kind == "reset":
		return "reset to the file's values"
	}
	return a.Kind
}

// Leaving is the share (0–1) of the sampled subjects that leave gray —
// back to stable or to another environment — whatever the change's kind:
// a kill or a freeze sends people back without being an eviction the
// change gate refuses.
func (v confirmView) Leaving() float64 {
	if v.Report == nil {
		return 0
	}
	total := 0.0
	for _, r := range v.Report.Releases {
		total += r.ToStable + r.ToOther
	}
	return total
}

// LeavingCount is how many of the sampled subjects leave gray.
func (v confirmView) LeavingCount() int {
	if v.Report == nil {
		return 0
	}
	return int(math.Round(v.Leaving() * float64(v.Report.Sample)))
}

// LeavingNamed are the listed subjects (whitelist, blacklist) that leave
// gray.
func (v confirmView) LeavingNamed() []string {
	if v.Report == nil {
		return nil
	}
	var out []string
	for _, r := range v.Report.Releases {
		out = append(out, r.Leaving...)
	}
	return out
}

// NobodyLeaves is the one case the all-clear is shown for: no sampled
// subject and no listed subject leaves gray, and nothing is evicted.
func (v confirmView) NobodyLeaves() bool {
	return v.Report != nil && v.LeavingCount() == 0 && v.Leaving() == 0 && len(v.LeavingNamed()) == 0 && len(v.Report.Evictions) == 0
}

func (c *Console) confirmView(ctx context.Context, a admin.Action) confirmView {
	v := confirmView{Release: a.Release, Action: a, Verb: verb(a), ReasonRequired: a.Kind != "percent" || a.Rollback}
	rep, err := c.d.Preview(ctx, a, c.opts.PreviewSample)
	if err != nil {
		v.PreviewError = err.Error()
	} else {
		v.Report = &rep
	}
	return v
}

func (c *Console) confirmPage(w http.ResponseWriter, r *http.Request, s *session) {
	a, err := readAction(r.PathValue("name"), r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cv := c.confirmView(r.Context(), a)
	c.render(w, http.StatusOK, "confirm", c.newView(s, "releases", "Confirm: "+cv.Verb+" "+a.Release, cv))
}

// act does a confirmed action. A refusal (an evicting change without a
// rollback declaration, a percentage out of range) shows the confirmation
// again with graymesh's own message.
func (c *Console) act(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	a, err := readAction(name, r.PostForm)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cv := c.confirmView(r.Context(), a)
	title := "Confirm: " + cv.Verb + " " + name
	if cv.ReasonRequired && a.Reason == "" {
		cv.Problem = "Say why: the reason is recorded in the release's timeline."
		c.render(w, http.StatusBadRequest, "confirm", c.newView(s, "releases", title, cv))
		return
	}
	a.Source = "console"
	if _, err := c.d.Act(r.Context(), a); err != nil {
		cv.Refused = err.Error()
		c.log.Info("console: action refused", "release", name, "action", a.Kind, "error", err)
		c.render(w, http.StatusUnprocessableEntity, "confirm", c.newView(s, "releases", title, cv))
		return
	}
	// Counting "since this version" starts now, not at the next tick.
	c.observed.sample()
	c.log.Info("console: action", "release", name, "action", a.Kind, "percent", a.Percent, "rollback", a.Rollback, "reason", a.Reason)
	http.Redirect(w, r, "/ui/releases/"+url.PathEscape(name)+"?done="+a.Kind, http.StatusSeeOther)
}
