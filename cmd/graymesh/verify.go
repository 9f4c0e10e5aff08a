package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/graymesh/graymesh/tracecheck"
)

var errLeaks = errors.New("lane leaks found")

func verifyTraces(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("verify-traces", `Usage: graymesh verify-traces --jaeger URL --service NAME [--since 15m] [--json]

Reads the traces of a service from Jaeger's query API and checks every hop of
every trace: the environment that served it must be the one the edge decided
(graymesh's decision span), unless the hop carries an explained fallback to
stable. Prints traces and hops checked, leaks, the leak rate and the first
leaking traces. Exit status 1 on any leak or when no trace could be checked.`, stderr)
	jaeger := fs.String("jaeger", "http://127.0.0.1:16686", "Jaeger query base URL")
	service := fs.String("service", "frontend", "service whose traces to read (the edge service)")
	since := fs.Duration("since", 15*time.Minute, "window: traces that started this long ago until now")
	limit := fs.Int("limit", 1000, "most traces to read")
	show := fs.Int("show", 5, "leaking traces to print")
	asJSON := fs.Bool("json", false, "print the full report as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	end := time.Now()
	q := url.Values{}
	q.Set("service", *service)
	q.Set("start", strconv.FormatInt(end.Add(-*since).UnixMicro(), 10))
	q.Set("end", strconv.FormatInt(end.UnixMicro(), 10))
	q.Set("limit", strconv.Itoa(*limit))
	u := strings.TrimRight(*jaeger, "/") + "/api/traces?" + q.Encode()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("jaeger: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 512<<20))
	if err != nil {
		return fmt.Errorf("jaeger: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("jaeger %s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	traces, err := tracecheck.Parse(body)
	if err != nil {
		return err
	}
	r := tracecheck.Check(traces)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "traces: %d read, %d checked, %d without an edge decision\nhops:   %d checked, %d explained fallbacks\nleaks:  %d (leak rate %.4f)\n",
			r.TracesSeen, r.TracesChecked, r.Undecided, r.HopsChecked, r.Fallbacks, r.Leaks, r.LeakRate)
		for _, t := range r.LeakingTraces(*show) {
			fmt.Fprintf(stdout, "\nleaking trace %s (edge decided %s, reason %s):\n", t.TraceID, t.Lane, t.Reason)
			for _, h := range t.Hops {
				mark := "  "
				if h.Leak {
					mark = "✗ "
				}
				fmt.Fprintf(stdout, "  %s%-12s served by %-8s lane %-8s fallback %s\n", mark, h.Service, h.Served, dash(h.Lane), dash(h.Fallback))
			}
		}
	}
	switch {
	case r.Leaks > 0:
		return errLeaks
	case r.TracesChecked == 0:
		return fmt.Errorf("no trace of service %q with an edge decision in the last %s", *service, *since)
	}
	return nil
}
