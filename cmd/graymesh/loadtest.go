package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/graymesh/graymesh/internal/runtime/admin"
	"github.com/graymesh/graymesh/internal/runtime/loadtest"
)

const loadtestUsage = `Usage: graymesh loadtest --release NAME --target URL (--rate R | --factor F) [flags]

Stress-tests a release's environment before (or while) real callers are
admitted: shadow requests, marked with a stress marker the graymesh at
--admin mints, go through the real edge to the release's environment as if
it were at 100%, whatever its percentage, schedule or freeze (a kill sends
them to stable). Every hop is told (x-gray-stress), so services keep shadow
data apart; the analysis, the members and the observed share never count
them. Unmarked baseline requests go alongside to compare with stable.

The rate is --rate, or --factor times the edge's request rate graymesh
observes over --observe (what the release carries at 100%). The shadow
rate ramps up over --ramp-up, holds until --duration, and the run stops
early when gray's error rate over the last 5 s passes --abort-error-rate.
The target must be a loopback address unless --allow-remote.

Exit status: 0 when the run completed, 1 when it was aborted or failed.`

func loadtestCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("loadtest", loadtestUsage, stderr)
	adminURL, tokenFile := adminFlags(fs)
	releaseName := fs.String("release", "", "release to stress-test (required)")
	target := fs.String("target", "", "URL of the edge to load, e.g. http://127.0.0.1:10000/ (required)")
	rate := fs.Float64("rate", 0, "shadow requests per second at full rate")
	factor := fs.Float64("factor", 0, "shadow rate as a multiple of the edge's observed request rate (instead of --rate), e.g. 1.5")
	observe := fs.Duration("observe", 10*time.Second, "how long to observe the edge's request rate for --factor")
	duration := fs.Duration("duration", time.Minute, "whole run, at most 1h")
	rampUp := fs.Duration("ramp-up", 10*time.Second, "time for the shadow rate to rise from 0 to full (unset: at most a fifth of --duration)")
	baseline := fs.Float64("baseline-rate", 0, "unmarked requests per second sent alongside (default: a tenth of the shadow rate, at least 1)")
	abortAt := fs.Float64("abort-error-rate", 0.2, "stop when gray's error rate over the last 5s passes this (0..1; 0 never stops)")
	maxRate := fs.Float64("max-rate", loadtest.DefaultMaxRate, "refuse a rate above this")
	allowRemote := fs.Bool("allow-remote", false, "allow a target that is not a loopback address")
	markerTTL := fs.Duration("marker-ttl", 0, "lifetime of the stress marker (default: --duration plus 5m)")
	progress := fs.String("progress", "auto", "progress bar on stderr: auto (when it is a terminal), on, off")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *releaseName == "" || *target == "" || (*rate > 0) == (*factor > 0) {
		fmt.Fprintln(stderr, "graymesh loadtest: --release, --target and one of --rate or --factor are required")
		fs.Usage()
		return errUsage
	}
	if !flagSet(fs, "ramp-up") {
		*rampUp = min(*rampUp, *duration/5)
	}
	c, err := admin.NewClient(*adminURL, *tokenFile)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *factor > 0 {
		observed, err := observeEdgeRate(ctx, c, *observe)
		if err != nil {
			return fmt.Errorf("--factor: %w", err)
		}
		*rate = *factor * observed
		fmt.Fprintf(stdout, "edge rate observed over %s: %.1f requests/s; shadow rate %.1f/s (×%g)\n", *observe, observed, *rate, *factor)
		if *rate <= 0 {
			return errors.New("--factor: the edge served no request while observed; give --rate")
		}
	}
	if *baseline == 0 {
		*baseline = max(*rate/10, 1)
	}
	ttl := *markerTTL
	if ttl == 0 {
		ttl = *duration + 5*time.Minute
	}
	mintCtx, cancel := context.WithTimeout(ctx, adminTimeout)
	m, err := c.StressMarker(mintCtx, *releaseName, ttl)
	cancel()
	if err != nil {
		return err
	}
	opts := loadtest.Options{
		Target: *target, Marker: m.Marker, MarkerHeader: m.Header, Rate: *rate, RampUp: *rampUp, Duration: *duration,
		BaselineRate: *baseline, AbortErrorRate: *abortAt, AllowRemote: *allowRemote, MaxRate: *maxRate,
	}
	if showProgress(*progress, stderr) {
		opts.Progress = stderr
	}
	fmt.Fprintf(stdout, "stress test of %s: %.1f shadow requests/s (ramp %s) and %.1f baseline/s for %s against %s\n",
		*releaseName, *rate, *rampUp, *baseline, *duration, *target)
	rep, err := loadtest.Run(ctx, opts)
	if rep != nil {
		if werr := rep.Write(stdout); werr != nil {
			return werr
		}
	}
	switch {
	case err != nil:
		return err
	case rep.Aborted:
		return fmt.Errorf("aborted: %s", rep.AbortReason)
	}
	return nil
}

// flagSet reports whether the command line set the flag.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// showProgress decides the progress bar: auto shows it when w is a
// terminal (a character device), so logs and CI output stay clean.
func showProgress(mode string, w io.Writer) bool {
	switch mode {
	case "on":
		return true
	case "off":
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// observeEdgeRate is the edge's request rate: graymesh's edge decisions
// (graymesh_decisions_total, hop edge; stress requests are counted apart
// and are not in it) over window, read twice from the admin API's
// /metrics.
func observeEdgeRate(ctx context.Context, c *admin.Client, window time.Duration) (float64, error) {
	if window <= 0 || window > 10*time.Minute {
		return 0, fmt.Errorf("--observe %s: must be positive and at most 10m", window)
	}
	first, err := edgeDecisions(ctx, c)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(window):
	}
	last, err := edgeDecisions(ctx, c)
	if err != nil {
		return 0, err
	}
	return max(last-first, 0) / time.Since(start).Seconds(), nil
}

// edgeDecisions is the sum of graymesh_decisions_total{hop="edge"}.
func edgeDecisions(ctx context.Context, c *admin.Client) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base()+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return 0, fmt.Errorf("GET /metrics: %w", err)
	}
	total := 0.0
	for _, m := range fams["graymesh_decisions_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "hop" && strings.EqualFold(l.GetValue(), "edge") {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total, nil
}
