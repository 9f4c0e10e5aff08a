package analysis

import (
	"context"
	"testing"
	"time"
)

func TestCollectorWindows(t *testing.T) {
	c := NewCollector()
	t0 := time.Unix(1000, 0)
	q := Query{Release: "shop-v2", Env: "gray", Services: []string{"shop"}, From: t0, To: t0.Add(time.Second)}
	c.Observe(Sample{Service: "shop", Env: "gray"}) // before Watch: not counted
	c.Watch(q)
	for i := 0; i < 10; i++ {
		c.Observe(Sample{Service: "shop", Env: "gray", Duration: time.Duration(i) * time.Millisecond, Caller: "a"})
		c.Observe(Sample{Service: "shop", Env: "stable", Failed: i%5 == 0, Caller: "b"})
	}
	c.Observe(Sample{Service: "shop", Env: "canary"}) // another environment
	c.Observe(Sample{Service: "search", Env: "gray"}) // another service
	c.Observe(Sample{Service: "shop", Env: "gray", Caller: "b"})
	obs, err := c.Collect(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	o := obs.Services[0]
	if o.Gray.Requests != 11 || o.Stable.Requests != 10 || o.Stable.Errors != 2 || len(o.Stable.Latencies) != 8 {
		t.Fatalf("sides %+v %+v", o.Gray, o.Stable)
	}
	if o.Gray.Callers != 2 || o.Stable.Callers != 1 || o.Callers != 2 {
		t.Fatalf("callers gray %d stable %d all %d", o.Gray.Callers, o.Stable.Callers, o.Callers)
	}
	if o.Gray.Latencies[0] != 0 || o.Gray.Latencies[10] != 9 || !obs.From.Equal(t0) {
		t.Fatalf("latencies %v from %v", o.Gray.Latencies, obs.From)
	}
	// The next window starts empty.
	q.From, q.To = q.To, q.To.Add(time.Second)
	obs, _ = c.Collect(context.Background(), q)
	if obs.Services[0].Gray.Requests != 0 || !obs.From.Equal(q.From) {
		t.Fatalf("second window %+v", obs)
	}
}

func TestCollectorBoundsLatencySamples(t *testing.T) {
	c := NewCollector()
	q := Query{Release: "r", Env: "gray", Services: []string{"shop"}}
	c.Watch(q)
	for i := 0; i < 3*MaxLatencySamples; i++ {
		c.Observe(Sample{Service: "shop", Env: "gray", Duration: time.Duration(i) * time.Millisecond})
	}
	obs, _ := c.Collect(context.Background(), q)
	g := obs.Services[0].Gray
	if g.Requests != 3*MaxLatencySamples || len(g.Latencies) != MaxLatencySamples {
		t.Fatalf("%d requests, %d latencies", g.Requests, len(g.Latencies))
	}
	// A uniform sample of 0..2999 ms: its median is near 1500.
	if m := Median(g.Latencies); m < 1200 || m > 1800 {
		t.Fatalf("median of the reservoir %v", m)
	}
}
