package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/tracecheck"
)

var (
	errLeaks         = errors.New("lane leaks found")
	errLaggingSplits = errors.New("chains split by a node behind the edge's version")
	errStressLost    = errors.New("stress-test chains whose mark was lost at a hop")
)

func verifyTraces(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("verify-traces", `Usage: graymesh verify-traces --jaeger URL --service NAME [--since 15m] [--json]

Reads every trace of a service in the window from Jaeger's query API and
checks every hop: the environment that served it must be the one the edge
decided (graymesh's decision span), unless the hop carries an explained
fallback to stable or the chain switched to stable because its release was
killed mid-flight (reason "killed" on the switching hop). A chain stopped
as killed at a hop whose kill, by the version its sidecar's span says,
stops only lanes older than the one the edge decided under is no kill: that
hop's node had not applied the revive yet. It is counted as a lagging-node
split, apart from kills.

Jaeger's search returns at most --page-size traces and no total, so a full
answer is split in two halves of the window, and so on, until every search
comes back short: then every trace was read. Windows still full when
--max-requests runs out are reported unread.

A chain whose edge decision never took effect (the edge sidecar's span
says reason "error": ext_proc's message timeout expired and the filter
failed open) is a fail-open, checked against what the edge routed on, not
against graymesh's late decision. Traces whose newest span started within
--settle are pending, not judged: their other spans may still be on their
way to Jaeger.

Traces without an edge decision span (graymesh down, or killed before it
exported) are checked against the lane their sidecar and service spans
carry and reported as undecided.

Exit status 1 on any leak or lagging-node split, when no trace could be
checked, when traces were left unread (unless --allow-unread) and, with
--fail-undecided, on any undecided trace.`, stderr)
	jaeger := fs.String("jaeger", "http://127.0.0.1:16686", "Jaeger query base URL")
	service := fs.String("service", "frontend", "service whose traces to read (the edge service)")
	since := fs.Duration("since", 15*time.Minute, "window: traces that started this long ago until now")
	pageSize := fs.Int("page-size", tracecheck.DefaultPageSize, "traces per Jaeger search (its limit; Jaeger's memory store refuses more than its max_traces)")
	maxRequests := fs.Int("max-requests", tracecheck.DefaultMaxRequests, "most Jaeger searches; windows left are reported unread")
	allowUnread := fs.Bool("allow-unread", false, "exit 0 even when some traces in the window were not read")
	failUndecided := fs.Bool("fail-undecided", false, "exit 1 when a trace has no edge decision span")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up reading Jaeger after this long")
	settle := fs.Duration("settle", 10*time.Second, "leave traces whose newest span is younger than this unjudged (their spans may still be arriving)")
	show := fs.Int("show", 5, "leaking and undecided traces to print")
	asJSON := fs.Bool("json", false, "print the full report as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *pageSize < 1 || *maxRequests < 1 || *since <= 0 {
		fmt.Fprintln(stderr, "verify-traces: --page-size, --max-requests and --since must be positive")
		return errUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	end := time.Now()
	rd := &tracecheck.Reader{BaseURL: *jaeger, PageSize: *pageSize, MaxRequests: *maxRequests}
	traces, stats, err := rd.Read(ctx, *service, tracecheck.Window{Start: end.Add(-*since), End: end})
	if err != nil {
		return err
	}
	r := tracecheck.CheckSettled(traces, end, *settle)
	r.Read = stats
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		printReport(stdout, r, *show)
	}
	return verdict(r, *allowUnread, *failUndecided, *service, *since)
}

// verdict is verify-traces' exit: an error for what fails the check.
func verdict(r *tracecheck.Report, allowUnread, failUndecided bool, service string, since time.Duration) error {
	switch {
	case r.Leaks > 0:
		return errLeaks
	case r.LaggingSplits > 0:
		return errLaggingSplits
	case r.StressLost > 0:
		return errStressLost
	case !r.Read.Complete && !allowUnread:
		return fmt.Errorf("%s: not every trace in the window was read (raise --max-requests, or --allow-unread)", unreadSummary(r.Read))
	case r.Undecided > 0 && failUndecided:
		return fmt.Errorf("%d traces without an edge decision span", r.Undecided)
	case r.TracesChecked == 0:
		return fmt.Errorf("no trace of service %q to check in the last %s", service, since)
	}
	return nil
}

func printReport(w io.Writer, r *tracecheck.Report, show int) {
	st := r.Read
	if st == nil {
		st = &tracecheck.ReadStats{Complete: true}
	}
	read := "every trace in the window"
	if !st.Complete {
		read = "INCOMPLETE: " + unreadSummary(st)
	}
	fmt.Fprintf(w, "traces: %d read in %d searches (%s), %d checked, %d undecided (no edge decision span), %d with nothing to check\n",
		r.TracesSeen, st.Requests, read, r.TracesChecked, r.Undecided, r.Unchecked)
	fmt.Fprintf(w, "hops:   %d checked, %d explained fallbacks, %d chains switched to stable by a kill\n", r.HopsChecked, r.Fallbacks, r.Switches)
	fmt.Fprintf(w, "leaks:  %d chains with a leak, %d leaking hops (leak rate %.4f per hop)\n", r.LeakingChains, r.Leaks, r.LeakRate)
	fmt.Fprintf(w, "fail-opens: %d chains served without graymesh's answer; %d traces pending (younger than the settle time)\n", r.FailOpens, r.Pending)
	fmt.Fprintf(w, "splits: %d chains stopped as killed by a node behind the edge's version (no kill: that node had not applied the revive)\n", r.LaggingSplits)
	if r.Stress > 0 || r.StressLost > 0 {
		fmt.Fprintf(w, "stress: %d stress-test (shadow) chains, checked like the others; %d hops lost the mark (their service saw no %s)\n", r.Stress, r.StressLost, wire.HeaderStress)
	}
	if r.Native > 0 {
		fmt.Fprintf(w, "native: %d chains Envoy's edge routed itself, graymesh not asked (reason %s: an anonymous split; reason %s: a returning caller's proof)\n", r.Native, wire.ReasonTrafficEnvoy, wire.ReasonProof)
	}
	for i, u := range st.Unread {
		if i == show {
			fmt.Fprintf(w, "  … %d more windows not read completely\n", len(st.Unread)-show)
			break
		}
		fmt.Fprintf(w, "  not read completely: traces starting %s … %s\n", u.Start.Format(time.RFC3339Nano), u.End.Format(time.RFC3339Nano))
	}
	for _, t := range r.LeakingTraces(show) {
		fmt.Fprintf(w, "\nleaking trace %s (%s %s, reason %s):\n", t.TraceID, decidedBy(t), t.Lane, dash(t.Reason))
		printHops(w, t)
	}
	for _, t := range r.FailOpenTraces(show) {
		fmt.Fprintf(w, "\nfail-open trace %s (graymesh decided %s too late; the edge routed on %s):\n", t.TraceID, t.DecidedLane, t.Lane)
		printHops(w, t)
	}
	for _, t := range r.SplitTraces(show) {
		fmt.Fprintf(w, "\nlagging-node split %s (edge decided %s under version %s; %s stopped it):\n", t.TraceID, t.Lane, dash(t.Version), t.Split)
		printHops(w, t)
	}
	if r.Undecided > 0 {
		fmt.Fprintf(w, "\nundecided traces (%d; the lane is the one their spans carry):\n", r.Undecided)
		for _, t := range r.UndecidedTraces(show) {
			fmt.Fprintf(w, "  %s lane %s, %d hops, %d leaks\n", t.TraceID, t.Lane, len(t.Hops), t.Leaks)
		}
	}
}

func printHops(w io.Writer, t tracecheck.TraceResult) {
	for _, h := range t.Hops {
		mark := "  "
		switch {
		case h.Leak:
			mark = "✗ "
		case h.Switch:
			mark = "↓ "
		case h.Split:
			mark = "≠ "
		}
		fmt.Fprintf(w, "  %s%-12s served by %-8s lane %-8s fallback %-18s reason %s%s\n", mark, h.Service, h.Served, dash(h.Lane), dash(h.Fallback), dash(h.Reason), killedThrough(h))
	}
}

// killedThrough says up to which version a hop's kill stops lanes, when
// its span says so.
func killedThrough(h tracecheck.Hop) string {
	if h.KilledThrough == "" {
		return ""
	}
	return " (kill stops lanes through version " + h.KilledThrough + ")"
}

func decidedBy(t tracecheck.TraceResult) string {
	if t.Decided {
		return "edge decided"
	}
	return "no edge decision span; lane carried"
}

func unreadSummary(st *tracecheck.ReadStats) string {
	return fmt.Sprintf("%d windows may hold traces not read (each search returns at most %d and Jaeger gives no total; %d searches made)",
		len(st.Unread), st.PageSize, st.Requests)
}
