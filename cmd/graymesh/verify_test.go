package main

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/tracecheck"
	"github.com/graymesh/graymesh/internal/core/tracecheck/jaegertest"
)

// meshTrace is a four-hop chain as the mesh reports it, in the trace
// vocabulary: per hop the sidecar's inbound span and the service's span;
// decided adds graymesh's edge decision span. served lists what served
// each hop.
func meshTrace(id string, start time.Time, decided bool, lane string, served ...string) tracecheck.Trace {
	return chainTrace(id, start, decided, lane, false, served...)
}

// legacyMeshTrace is meshTrace in the names traces carried before the
// trace vocabulary (graymesh.decision, graymesh.env, graymesh.served_env).
func legacyMeshTrace(id string, start time.Time, lane string, served ...string) tracecheck.Trace {
	return chainTrace(id, start, true, lane, true, served...)
}

func chainTrace(id string, start time.Time, decided bool, lane string, legacy bool, served ...string) tracecheck.Trace {
	t := tracecheck.Trace{TraceID: id, Processes: map[string]tracecheck.Process{"gm": {ServiceName: "graymesh"}}}
	us := start.UnixMicro()
	parent := ""
	add := func(process, op string, tags ...tracecheck.Tag) string {
		t.Processes[process] = tracecheck.Process{ServiceName: process}
		var kept []tracecheck.Tag
		for _, tag := range tags {
			if tag.Value != "" {
				kept = append(kept, tag)
			}
		}
		s := tracecheck.Span{SpanID: fmt.Sprintf("%s-%d", id, len(t.Spans)), OperationName: op, StartTime: us + int64(len(t.Spans)), ProcessID: process, Tags: kept}
		if parent != "" {
			s.References = []tracecheck.Reference{{RefType: "CHILD_OF", SpanID: parent}}
		}
		t.Spans = append(t.Spans, s)
		return s.SpanID
	}
	tag := func(k, v string) tracecheck.Tag { return tracecheck.Tag{Key: k, Value: v} }
	services := []string{"frontend", "orders", "inventory", "pricing"}
	for i, env := range served {
		svc := services[i]
		fallback := ""
		if lane != "" && env != lane && svc == "inventory" {
			// inventory has no gray version.
			fallback = "no-" + lane + "-version"
		}
		in := add(svc+"-sidecar", "inbound "+svc, tag("span.kind", "server"), tag(wire.AttrLane, lane))
		if i == 0 && decided {
			parent = in
			if legacy {
				add("gm", "graymesh.decision", tag(wire.AttrHop, "edge"), tag("graymesh.env", lane), tag("graymesh.reason", "whitelist"))
			} else {
				add("gm", "decide "+svc, tag(wire.AttrHop, "edge"), tag(wire.AttrVariant, lane), tag(wire.AttrLane, lane), tag(wire.AttrReason, "whitelist"))
			}
		}
		parent = in
		variant := wire.AttrVariant
		if legacy {
			variant = "graymesh.served_env"
		}
		parent = add(svc, "serve "+svc+" "+env, tag(variant, env), tag(wire.AttrLane, lane), tag(wire.AttrFallback, fallback))
	}
	return t
}

func fakeJaeger(t *testing.T, traces ...tracecheck.Trace) string {
	t.Helper()
	s := &jaegertest.Store{MaxTraces: 100000}
	s.Add(traces...)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv.URL
}

func verifyJSON(t *testing.T, args ...string) (int, tracecheck.Report, string) {
	t.Helper()
	code, out, errOut := runCLI(append([]string{"verify-traces", "--json"}, args...)...)
	var r tracecheck.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("exit %d: %v: %s %s", code, err, out, errOut)
	}
	return code, r, errOut
}

func TestVerifyTracesReadsEveryTraceInTheWindow(t *testing.T) {
	// 2,913 traces in the window, more than one search returns: the
	// default run must read them all, and find the one leak among the
	// oldest (which Jaeger's memory store returns last).
	now := time.Now()
	var traces []tracecheck.Trace
	for i := 0; i < 2913; i++ {
		start := now.Add(-14 * time.Minute).Add(time.Duration(i) * 250 * time.Millisecond)
		served := []string{"gray", "gray", "stable", "gray"}
		if i == 3 {
			served[3] = "stable" // the lane dropped before pricing
		}
		traces = append(traces, meshTrace(fmt.Sprintf("%032x", i+1), start, true, "gray", served...))
	}
	url := fakeJaeger(t, traces...)
	code, r, errOut := verifyJSON(t, "--jaeger", url, "--since", "15m")
	if code != 1 || r.TracesSeen != 2913 || r.TracesChecked != 2913 || r.Leaks != 1 || r.Read == nil || !r.Read.Complete {
		t.Fatalf("exit %d, %d traces read, %d checked, %d leaks, read %+v: %s", code, r.TracesSeen, r.TracesChecked, r.Leaks, r.Read, errOut)
	}

	// A budget too small to read them all: say so, and fail unless told
	// otherwise. Only the newest traces are read, so the leak is missed.
	clean := fakeJaeger(t, traces[4:]...)
	code, r, errOut = verifyJSON(t, "--jaeger", clean, "--since", "15m", "--max-requests", "1")
	if code != 1 || r.Read.Complete || len(r.Read.Unread) != 2 || !strings.Contains(errOut, "not every trace in the window was read") {
		t.Fatalf("exit %d, read %+v: %s", code, r.Read, errOut)
	}
	code, _, errOut = verifyJSON(t, "--jaeger", clean, "--since", "15m", "--max-requests", "1", "--allow-unread")
	if code != 0 {
		t.Fatalf("--allow-unread: exit %d: %s", code, errOut)
	}
	code, out, _ := runCLI("verify-traces", "--jaeger", clean, "--since", "15m", "--max-requests", "1", "--allow-unread")
	if code != 0 || !strings.Contains(out, "INCOMPLETE: 2 windows may hold traces not read") || !strings.Contains(out, "not read completely: traces starting") {
		t.Fatalf("text report does not say what was left unread: %s", out)
	}
}

func TestVerifyTracesChecksUndecidedTraces(t *testing.T) {
	now := time.Now().Add(-time.Minute)
	decided := meshTrace("aa", now, true, "gray", "gray", "gray", "stable", "gray")
	// graymesh down: no decision span, no lane; everything stable.
	down := meshTrace("bb", now.Add(time.Second), false, "", "stable", "stable", "stable", "stable")
	// Recorded before the trace vocabulary: still checked.
	old := legacyMeshTrace("dd", now.Add(2*time.Second), "gray", "gray", "gray", "stable", "gray")
	url := fakeJaeger(t, decided, down, old)
	code, r, errOut := verifyJSON(t, "--jaeger", url, "--since", "5m")
	if code != 0 || r.TracesChecked != 3 || r.Undecided != 1 || r.Leaks != 0 || r.HopsChecked != 12 || r.Fallbacks != 2 {
		t.Fatalf("exit %d, %d checked, %d undecided, %d leaks, %d hops, %d fallbacks: %s", code, r.TracesChecked, r.Undecided, r.Leaks, r.HopsChecked, r.Fallbacks, errOut)
	}
	code, _, errOut = verifyJSON(t, "--jaeger", url, "--since", "5m", "--fail-undecided")
	if code != 1 || !strings.Contains(errOut, "1 traces without an edge decision span") {
		t.Fatalf("--fail-undecided: exit %d: %s", code, errOut)
	}
	_, out, _ := runCLI("verify-traces", "--jaeger", url, "--since", "5m")
	if !strings.Contains(out, "1 undecided") || !strings.Contains(out, "bb lane stable, 4 hops, 0 leaks") {
		t.Fatalf("text report does not list the undecided trace: %s", out)
	}

	// An undecided trace whose spans show a gray hop in a stable chain is
	// a leak, decision span or not.
	leaky := meshTrace("cc", now, false, "", "stable", "gray", "stable", "stable")
	code, r, _ = verifyJSON(t, "--jaeger", fakeJaeger(t, leaky), "--since", "5m")
	if code != 1 || r.Leaks != 1 || r.Undecided != 1 {
		t.Fatalf("exit %d, %d leaks, %d undecided", code, r.Leaks, r.Undecided)
	}
}

func TestVerifyTracesFlags(t *testing.T) {
	for _, args := range [][]string{{"--page-size", "0"}, {"--max-requests", "0"}, {"--since", "-1m"}} {
		if code, _, _ := runCLI(append([]string{"verify-traces"}, args...)...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	url := fakeJaeger(t)
	if code, _, errOut := runCLI("verify-traces", "--jaeger", url); code != 1 || !strings.Contains(errOut, "no trace of service") {
		t.Fatalf("empty Jaeger: exit %d %s", code, errOut)
	}
}

// killedChain is a two-hop chain stopped as killed at orders: the edge
// decided gray under version decided, orders' sidecar span says its kill
// stops lanes through killedThrough.
func killedChain(id string, start time.Time, decided, killedThrough string) tracecheck.Trace {
	t := tracecheck.Trace{TraceID: id, Processes: map[string]tracecheck.Process{}}
	parent := ""
	add := func(process, op string, kv ...string) {
		t.Processes[process] = tracecheck.Process{ServiceName: process}
		s := tracecheck.Span{SpanID: fmt.Sprintf("%s-%d", id, len(t.Spans)), OperationName: op, StartTime: start.UnixMicro() + int64(len(t.Spans)), ProcessID: process}
		for i := 0; i+1 < len(kv); i += 2 {
			s.Tags = append(s.Tags, tracecheck.Tag{Key: kv[i], Value: kv[i+1]})
		}
		if parent != "" {
			s.References = []tracecheck.Reference{{RefType: "CHILD_OF", SpanID: parent}}
		}
		t.Spans = append(t.Spans, s)
		parent = s.SpanID
	}
	add("frontend-sidecar", "inbound frontend", "span.kind", "server", wire.AttrLane, "gray")
	add("graymesh", "decide frontend", wire.AttrHop, "edge", wire.AttrVariant, "gray", wire.AttrLane, "gray", wire.AttrReason, "percent", wire.AttrVersion, decided)
	t.Spans[1].References = []tracecheck.Reference{{RefType: "CHILD_OF", SpanID: t.Spans[0].SpanID}}
	parent = t.Spans[0].SpanID
	add("frontend", "serve frontend gray", wire.AttrVariant, "gray", wire.AttrLane, "gray")
	add("orders-sidecar", "inbound orders", "span.kind", "server", wire.AttrVariant, "stable", wire.AttrLane, "stable",
		wire.AttrReason, "killed", wire.AttrVersion, killedThrough)
	add("orders", "serve orders stable", wire.AttrVariant, "stable", wire.AttrLane, "stable")
	return t
}

// TestVerifyTracesTellsALaggingNodeFromAKill: a chain stopped as killed
// at a hop whose kill stops lanes only through a version older than the
// edge's decision is a lagging-node split — counted apart, shown, and a
// failure; one whose kill covers the edge's version is a kill.
func TestVerifyTracesTellsALaggingNodeFromAKill(t *testing.T) {
	now := time.Now().Add(-time.Minute)
	kill := killedChain("aa", now, "3", "3")
	code, r, errOut := verifyJSON(t, "--jaeger", fakeJaeger(t, kill), "--since", "5m")
	if code != 0 || r.Switches != 1 || r.LaggingSplits != 0 || r.Leaks != 0 {
		t.Fatalf("a kill: exit %d, %d switches, %d splits, %d leaks: %s", code, r.Switches, r.LaggingSplits, r.Leaks, errOut)
	}
	lagging := killedChain("bb", now.Add(time.Second), "3", "2")
	url := fakeJaeger(t, kill, lagging)
	code, r, errOut = verifyJSON(t, "--jaeger", url, "--since", "5m")
	if code != 1 || r.Switches != 1 || r.LaggingSplits != 1 || r.Leaks != 0 || !strings.Contains(errOut, "split by a node behind") {
		t.Fatalf("a lagging node: exit %d, %d switches, %d splits, %d leaks: %s", code, r.Switches, r.LaggingSplits, r.Leaks, errOut)
	}
	_, out, _ := runCLI("verify-traces", "--jaeger", url, "--since", "5m")
	for _, want := range []string{"splits: 1 chains", "lagging-node split bb (edge decided gray under version 3; orders stopped it)",
		"≠ orders", "kill stops lanes through version 2", "1 chains switched to stable by a kill"} {
		if !strings.Contains(out, want) {
			t.Fatalf("text report lacks %q:\n%s", want, out)
		}
	}
}
