package config

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDurationJSON(t *testing.T) {
	b, err := json.Marshal(Duration{30 * time.Second})
	if err != nil || string(b) != `"30s"` {
		t.Fatalf("marshalled as %s (%v), want \"30s\"", b, err)
	}
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{`"1m30s"`, 90 * time.Second},
		{`"50ms"`, 50 * time.Millisecond},
		{`1500000`, 1500 * time.Microsecond},
		{`{"Duration": 45000000000}`, 45 * time.Second},
	} {
		var d Duration
		if err := json.Unmarshal([]byte(tc.in), &d); err != nil || d.Duration != tc.want {
			t.Errorf("%s read as %s (%v), want %s", tc.in, d, err, tc.want)
		}
	}
	for _, bad := range []string{`"soon"`, `true`, `[1]`} {
		var d Duration
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("%s read as %s, want an error", bad, d)
		}
	}
}

// TestAnalysisJSON: the analysis is written with its file's names and
// durations as strings, and read back whole; the Go-named form of older
// state files is read too.
func TestAnalysisJSON(t *testing.T) {
	one, twenty := 1.0, 20.0
	a := Analysis{Source: SourceEnvoy, PrometheusURL: "http://127.0.0.1:9090", Interval: Duration{30 * time.Second},
		MinRequests: 100, Alpha: 0.05, Metrics: []string{MetricErrors}, Services: []string{"shop"},
		Errors:  ErrorAnalysis{Tolerance: &one, Critical: &twenty},
		Latency: LatencyAnalysis{Tolerance: &twenty, MinEffect: Duration{5 * time.Millisecond}, Critical: Duration{time.Second}},
		OnFail:  ActionFreeze, OnCritical: ActionKill}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"prometheus_url":"http://127.0.0.1:9090"`, `"interval":"30s"`, `"min_requests":100`,
		`"min_effect":"5ms"`, `"on_fail":"freeze"`, `"on_critical":"kill"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
	var back Analysis
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if again, _ := json.Marshal(back); string(again) != string(b) {
		t.Errorf("read back as\n%s\nwant\n%s", again, b)
	}
	goNames := `{"Source":"envoy","PrometheusURL":"http://127.0.0.1:9090","Interval":{"Duration":30000000000},
		"MinRequests":100,"Alpha":0.05,"Metrics":["errors"],"Services":["shop"],"Errors":{"Tolerance":1,"Critical":20},
		"Latency":{"Tolerance":20,"MinEffect":{"Duration":5000000},"Critical":{"Duration":1000000000}},
		"OnFail":"freeze","OnCritical":"kill"}`
	var old Analysis
	if err := json.Unmarshal([]byte(goNames), &old); err != nil {
		t.Fatal(err)
	}
	if again, _ := json.Marshal(old); string(again) != string(b) {
		t.Errorf("Go-named form read as\n%s\nwant\n%s", again, b)
	}
}
