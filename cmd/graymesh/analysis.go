package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/graymesh/graymesh/internal/core/analysis"
	"github.com/graymesh/graymesh/internal/runtime/admin"
)

const analysisUsage = `Usage: graymesh analysis NAME [flags]

Shows a release's gray-versus-stable analysis from a running graymesh
(GET /v1/releases/NAME/analysis): every window's requests, errors and
latency percentiles on each side, the share gray served against the
configured percent, each test's statistic, p-value, effect and threshold,
the verdict and the action taken. docs/analysis.md explains how to read it.

With --until, waits (polling) until a window has one of the given
verdicts, then prints; exit status 1 if none came within --timeout. Every
window the running graymesh keeps counts (its last 100), not only the
shown ones: a fail judged a minute ago ends the wait at once, and is
printed with the latest windows.`

func analysisCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("analysis", analysisUsage, stderr)
	adminURL, tokenFile := adminFlags(fs)
	asJSON := fs.Bool("json", false, "print the admin API's JSON")
	windows := fs.Int("windows", 5, "how many of the latest windows to show")
	until := fs.String("until", "", "comma-separated verdicts to wait for (pass, inconclusive, fail, critical)")
	timeout := fs.Duration("timeout", time.Minute, "how long --until waits")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fs.Usage()
		return errUsage
	}
	name := args[0]
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	want, err := verdictSet(*until)
	if err != nil {
		return err
	}
	c, err := admin.NewClient(*adminURL, *tokenFile)
	if err != nil {
		return err
	}
	// Waiting for a verdict reads every window graymesh keeps, so a
	// verdict older than the latest few is not missed.
	fetch := max(1, *windows)
	if len(want) > 0 {
		fetch = 0
	}
	deadline := time.Now().Add(*timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
		st, err := c.Analysis(ctx, name, fetch)
		cancel()
		if err != nil {
			return err
		}
		match := newestWith(st.Windows, want)
		done := len(want) == 0 || match >= 0
		if done || time.Now().After(deadline) {
			st.Windows = shownWindows(st.Windows, max(1, *windows), match)
			if *asJSON {
				err = printJSON(stdout, st)
			} else {
				printAnalysis(stdout, st)
			}
			if err == nil && !done {
				err = fmt.Errorf("no window judged %s within %s", *until, *timeout)
			}
			return err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// newestWith is the position of the newest window (windows are oldest
// first) whose verdict is wanted, or -1.
func newestWith(windows []admin.Window, want map[analysis.Verdict]bool) int {
	for i := len(windows) - 1; i >= 0; i-- {
		if want[windows[i].Verdict] {
			return i
		}
	}
	return -1
}

// shownWindows is the latest n windows and, when the window at match is
// older than those, that one before them: the window that ended a wait is
// always shown.
func shownWindows(windows []admin.Window, n, match int) []admin.Window {
	first := max(0, len(windows)-n)
	shown := windows[first:]
	if match >= 0 && match < first {
		shown = append([]admin.Window{windows[match]}, shown...)
	}
	return shown
}

func verdictSet(s string) (map[analysis.Verdict]bool, error) {
	out := map[analysis.Verdict]bool{}
	if s == "" {
		return out, nil
	}
	for _, v := range strings.Split(s, ",") {
		if !slices.Contains(analysis.Verdicts, analysis.Verdict(v)) {
			return nil, fmt.Errorf("--until: %q is not one of pass, inconclusive, fail, critical", v)
		}
		out[analysis.Verdict(v)] = true
	}
	return out, nil
}

func printAnalysis(w io.Writer, st *admin.AnalysisStatus) {
	a := st.Settings
	schedule := "no schedule"
	if st.ScheduleSteps > 0 {
		schedule = fmt.Sprintf("schedule[%d] of %d steps in force (-1: none yet)", st.ScheduleStep, st.ScheduleSteps)
	}
	fmt.Fprintf(w, "release %s → %s: state %s, percent %g, %s\n", st.Release, st.Env, st.State, st.Percent, schedule)
	fmt.Fprintf(w, "analysis: %s method, %s source, windows of %s, services %s, at least %d requests a side, alpha %g; on fail: %s, on critical: %s\n",
		a.Method, a.Source, a.Interval.Duration, strings.Join(st.Services, ", "), a.MinRequests, a.Alpha, a.OnFail, a.OnCritical)
	if st.FleetError != "" {
		fmt.Fprintf(w, "\nthe fleet's windows could not be read: %s\n", st.FleetError)
	}
	if len(st.Windows) == 0 {
		fmt.Fprintf(w, "\nno window judged yet (the first ends %s after graymesh started analysing)\n", a.Interval.Duration)
		return
	}
	for i := len(st.Windows) - 1; i >= 0; i-- {
		printWindow(w, &st.Windows[i])
	}
}

func printWindow(w io.Writer, win *admin.Window) {
	version := "config " + win.ConfigVersion
	if win.ConfigVersion == "" {
		version = fmt.Sprintf("generation %d", win.Generation) // the fleet analyser's window
	}
	fmt.Fprintf(w, "\nwindow %d  %s – %s  %s  state %s  configured %g%%\n", win.Index,
		win.From.Local().Format("15:04:05"), win.To.Local().Format("15:04:05"), version, win.State, win.Percent)
	fmt.Fprintf(w, "  verdict: %s — %s\n", strings.ToUpper(string(win.Verdict)), win.Reason)
	action := win.Action
	if win.ActionError != "" {
		action += " (refused: " + win.ActionError + ")"
	}
	fmt.Fprintf(w, "  action:  %s\n", action)
	if win.ActedBy != "" {
		fmt.Fprintf(w, "  fleet:   evidence of %d of %d reporting nodes merged; judged and acted on by %s (GrayRelease generation %d)\n",
			win.Nodes, win.NodesReporting, win.ActedBy, win.Generation)
	}
	if win.Error != "" {
		fmt.Fprintf(w, "  source:  %s\n", win.Error)
	}
	for _, s := range win.Services {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "  %s\trequests\terrors\tp50 ms\tp90 ms\tp99 ms\tcallers\t\n", s.Service)
		for _, side := range []struct {
			name string
			s    analysis.SideSummary
		}{{"gray", s.Gray}, {"stable", s.Stable}} {
			fmt.Fprintf(tw, "    %s\t%d\t%d (%.2f%%)\t%.1f\t%.1f\t%.1f\t%d\t\n", side.name, side.s.Requests, side.s.Errors, side.s.ErrorRate, side.s.P50, side.s.P90, side.s.P99, side.s.Callers)
		}
		_ = tw.Flush()
		callers := "no caller known"
		if s.GrayCallerShare != nil {
			callers = fmt.Sprintf("%.1f%% of distinct callers", *s.GrayCallerShare)
		}
		fmt.Fprintf(w, "    gray served %.1f%% of requests, %s (configured %g%%)\n", s.GrayRequestShare, callers, win.Percent)
		for _, t := range s.Tests {
			fmt.Fprintf(w, "    %-15s %-21s stat %-9.4g", t.Name(), t.Method, t.Statistic)
			if t.Boundary > 0 {
				fmt.Fprintf(w, " boundary %-7.4g", t.Boundary)
			}
			fmt.Fprintf(w, " p %-9.3g alpha %-7.3g effect %+.2f  threshold %.2f", t.P, t.Alpha, t.Effect, t.Threshold)
			if t.Critical > 0 {
				fmt.Fprintf(w, "  critical %.2f", t.Critical)
			}
			fmt.Fprintf(w, "  → %s\n", t.Verdict)
		}
		if len(s.Tests) == 0 {
			fmt.Fprintf(w, "    %s: %s\n", s.Verdict, s.Reason)
		}
	}
}
