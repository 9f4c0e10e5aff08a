package tracecheck

import "testing"

func decision(hop, env string) Span {
	return Span{OperationName: "graymesh.decision", StartTime: 1, Tags: []Tag{{"graymesh.hop", hop}, {"graymesh.env", env}, {"graymesh.reason", "whitelist"}}}
}

func hop(start int64, service, served, lane, fallback string) Span {
	return Span{OperationName: service, StartTime: start, Tags: []Tag{
		{"graymesh.service", service}, {"graymesh.served_env", served}, {"graymesh.lane", lane}, {"graymesh.fallback", fallback},
	}}
}

func TestCheck(t *testing.T) {
	grayChain := Trace{TraceID: "gray", Spans: []Span{
		decision("edge", "gray"),
		hop(2, "frontend", "gray", "gray", ""),
		hop(3, "orders", "gray", "gray", ""),
		hop(4, "inventory", "stable", "gray", "no-gray-version"),
		hop(5, "pricing", "gray", "gray", ""),
	}}
	stableChain := Trace{TraceID: "stable", Spans: []Span{
		decision("edge", "stable"), hop(2, "frontend", "stable", "stable", ""), hop(3, "orders", "stable", "stable", ""),
	}}
	dropped := Trace{TraceID: "dropped", Spans: []Span{
		decision("edge", "gray"),
		hop(2, "frontend", "gray", "gray", ""),
		hop(4, "inventory", "stable", "gray", "no-gray-version"),
		hop(5, "pricing", "stable", "stable", ""), // lane lost: a leak
	}}
	unexplained := Trace{TraceID: "unexplained", Spans: []Span{
		decision("edge", "gray"), hop(2, "orders", "stable", "gray", ""),
	}}
	grayInStable := Trace{TraceID: "gray-in-stable", Spans: []Span{
		decision("edge", "stable"), hop(2, "orders", "gray", "gray", ""),
	}}
	undecided := Trace{TraceID: "undecided", Spans: []Span{hop(2, "orders", "gray", "gray", "")}}
	routeDefault := Trace{TraceID: "route-default", Spans: []Span{decision("edge", "route-default"), hop(2, "orders", "stable", "stable", "")}}

	r := Check([]Trace{grayChain, stableChain, dropped, unexplained, grayInStable, undecided, routeDefault})
	if r.TracesSeen != 7 || r.TracesChecked != 6 || r.Undecided != 1 {
		t.Fatalf("seen %d checked %d undecided %d", r.TracesSeen, r.TracesChecked, r.Undecided)
	}
	if r.HopsChecked != 4+2+3+1+1+1 || r.Leaks != 3 || r.Fallbacks != 2 {
		t.Fatalf("hops %d leaks %d fallbacks %d", r.HopsChecked, r.Leaks, r.Fallbacks)
	}
	leaking := map[string]bool{}
	for _, tr := range r.LeakingTraces(10) {
		leaking[tr.TraceID] = true
	}
	for id, want := range map[string]bool{"gray": false, "stable": false, "dropped": true, "unexplained": true, "gray-in-stable": true, "route-default": false} {
		if leaking[id] != want {
			t.Errorf("trace %s leaking=%v, want %v", id, leaking[id], want)
		}
	}
	if got := r.Traces[0].Hops; len(got) != 4 || got[2].Service != "inventory" || got[2].Fallback == "" {
		t.Fatalf("hops not in call order: %+v", got)
	}
}

func TestParse(t *testing.T) {
	traces, err := Parse([]byte(`{"data":[{"traceID":"t1","spans":[{"spanID":"s","operationName":"x","startTime":5,"tags":[{"key":"graymesh.served_env","type":"string","value":"gray"}],"processID":"p1"}],"processes":{"p1":{"serviceName":"orders"}}}]}`))
	if err != nil || len(traces) != 1 || traces[0].Processes["p1"].ServiceName != "orders" || traces[0].Spans[0].tag("graymesh.served_env") != "gray" {
		t.Fatalf("%v %+v", err, traces)
	}
	if _, err := Parse([]byte("<html>")); err == nil {
		t.Fatal("garbage accepted")
	}
}
