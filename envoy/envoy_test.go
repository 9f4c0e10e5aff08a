package envoy

import (
	"strings"
	"testing"
	"time"
)

func TestEveryBootstrapParsesAndValidates(t *testing.T) {
	names, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("no bootstrap files embedded")
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			b, err := Load(name)
			if err != nil {
				t.Fatal(err)
			}
			if b.GetDynamicResources().GetAdsConfig() == nil {
				t.Fatal("no ADS config")
			}
			if a := b.GetAdmin().GetAddress().GetSocketAddress().GetAddress(); a != "127.0.0.1" {
				t.Fatalf("admin bound to %q, want loopback", a)
			}
		})
	}
}

func TestParseRejectsUnknownFields(t *testing.T) {
	if _, err := Parse([]byte("node: {id: x, clutser: y}")); err == nil {
		t.Fatal("unknown field accepted")
	}
}

func TestRender(t *testing.T) {
	b, err := Load("bootstrap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := Render(b, Overrides{NodeID: "e2e", AdminPort: 19901, XDSHost: "127.0.0.1", XDSPort: 28000})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"id":"e2e"`, `"portValue":19901`, `"portValue":28000`} {
		if !strings.Contains(strings.ReplaceAll(string(out), " ", ""), want) {
			t.Errorf("rendered bootstrap lacks %s", want)
		}
	}
	if _, err := Parse(out); err != nil {
		t.Fatalf("rendered bootstrap does not parse back: %v", err)
	}
}

// TestRequestTimeBucketsAreFineEnough: every bootstrap gives
// upstream_rq_time (whole milliseconds, what the prometheus analysis source
// reads its latency from) a bucket per millisecond to 20 ms and buckets at
// most 10% wide from there to 30 s, and flushes its histograms every
// second.
func TestRequestTimeBucketsAreFineEnough(t *testing.T) {
	names, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			b, err := Load(name)
			if err != nil {
				t.Fatal(err)
			}
			if d := b.GetStatsFlushInterval().AsDuration(); d != time.Second {
				t.Errorf("stats_flush_interval %s, want 1s", d)
			}
			var buckets []float64
			for _, s := range b.GetStatsConfig().GetHistogramBucketSettings() {
				if s.GetMatch().GetSuffix() == "upstream_rq_time" {
					buckets = s.GetBuckets()
				}
			}
			if len(buckets) == 0 || buckets[0] != 1 || buckets[len(buckets)-1] < 30000 {
				t.Fatalf("upstream_rq_time buckets %v: want 1 ms to at least 30 s", buckets)
			}
			for i := 1; i < len(buckets); i++ {
				lo, hi := buckets[i-1], buckets[i]
				if hi <= lo || (hi > 20 && hi > lo*1.1) || (hi <= 20 && hi-lo > 1) {
					t.Errorf("bucket (%v, %v] is too wide", lo, hi)
				}
			}
		})
	}
}
