package kube

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A stale source lists the objects to learn whether its watch has caught
// up again: first probeInterval after the watch broke, then twice as long
// after each probe that finds it behind (or cannot ask), up to
// maxProbeInterval, each wait drawn from its upper half (jitter). A fleet
// that lost its API server together would otherwise probe it in step once
// a second each when it comes back, on top of every informer's relist: at
// 5,000 nodes, 5,000 LISTs a second into a starting kube-apiserver, each
// cancelled after 2 s and sent again (fleetbench). The data is current as
// soon as the watch resumes; only the stale flag (graymesh_fleet_stale_seconds,
// /status) can lag, by at most maxProbeInterval.
const (
	probeInterval    = time.Second
	maxProbeInterval = 8 * time.Second
)

// probeBackoff is the wait after a probe that found the source still
// behind, given the interval before it, and a uniform draw u in [0, 1).
func probeBackoff(prev time.Duration, u float64) (next, wait time.Duration) {
	next = min(2*prev, maxProbeInterval)
	return next, next/2 + time.Duration(u*float64(next/2))
}

// markStale records that the watch broke: logged once per outage.
func (s *Source) markStale(err error) {
	if s.staleSince.CompareAndSwap(0, time.Now().UnixNano()) {
		s.log.Warn("GrayRelease watch broken; serving the last state and reconnecting with backoff", "error", err)
	}
}

// probe lists the objects and compares them with the cache: once they
// agree, the watch has caught up and the source is current again (true).
func (s *Source) probe(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	list, err := s.client.Resource().List(ctx, metav1.ListOptions{})
	if err != nil {
		return false
	}
	live := map[string]string{}
	for _, u := range list.Items {
		live[u.GetName()] = u.GetResourceVersion()
	}
	cached := map[string]string{}
	for _, u := range s.objects() {
		cached[u.GetName()] = u.GetResourceVersion()
	}
	if !mapsEqual(live, cached) {
		return false
	}
	since := s.staleSince.Swap(0)
	if since != 0 {
		s.log.Info("GrayRelease watch current again", "stale_for", time.Since(time.Unix(0, since)).Round(time.Millisecond).String())
	}
	s.poke()
	return true
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Staleness is part of control.Fleet.
func (s *Source) Staleness() time.Duration {
	since := s.staleSince.Load()
	if since == 0 {
		return 0
	}
	return time.Since(time.Unix(0, since))
}
