package lanequeue

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/lane"
)

// DefaultRefresh is how often a Follower reads graymesh's lane state: a
// kill reaches the consumer within it.
const DefaultRefresh = time.Second

// laneState is GET /v1/lanes as graymesh's admin API answers it.
type laneState struct {
	ConfigVersion string          `json:"config_version"`
	Keys          json.RawMessage `json:"keys"`
	Killed        []string        `json:"killed"`
	KilledThrough string          `json:"killed_through"`
	Kills         []kill          `json:"kills"`
	AsOf          time.Time       `json:"as_of"`
}

// kill is one release's kill: from KilledAt (zero: always) until
// RevivedAt (nil: still killed).
type kill struct {
	Release   string     `json:"release"`
	KilledAt  time.Time  `json:"killed_at"`
	RevivedAt *time.Time `json:"revived_at"`
}

// covers reports whether the kill was in force at t.
func (k kill) covers(t time.Time) bool {
	return !t.Before(k.KilledAt) && (k.RevivedAt == nil || t.Before(*k.RevivedAt))
}

// state is a lane state ready to decide with.
type state struct {
	keys *lane.KeySet // nil: no lane key, every lane refused
	// keysJSON is the key set keys was parsed from: a refresh with the
	// same keys keeps them, and the cache of lanes they verified.
	keysJSON      []byte
	killed        []string
	kills         []kill
	killedThrough *int64 // nil: the kills stop every lane of their releases
	version       string
	// asOf is the instant the state is true of; zero from a graymesh that
	// does not say (then kills are decided as in force when read).
	asOf time.Time
	// verified caches the lanes that verified under these keys: the edge
	// hands out one lane per environment, release and version per
	// window, so a consumer sees a handful, and verifying an Ed25519
	// signature per message would cost it most of its time.
	verified *verifiedCache
}

// maxVerified bounds the cache; past it, it starts over.
const maxVerified = 1024

type verifiedCache struct {
	mu    sync.Mutex
	lanes map[string]lane.Lane
}

// verify is keys.Verify, cached: a cached lane is used until it expires.
func (st *state) verify(token string, now time.Time) (lane.Lane, error) {
	c := st.verified
	c.mu.Lock()
	l, ok := c.lanes[token]
	c.mu.Unlock()
	if ok && !now.After(l.Expires.Add(lane.ClockSkew)) {
		return l, nil
	}
	l, err := st.keys.Verify(token, now)
	if err != nil {
		return l, err
	}
	c.mu.Lock()
	if c.lanes == nil || len(c.lanes) >= maxVerified {
		c.lanes = map[string]lane.Lane{}
	}
	c.lanes[token] = l
	c.mu.Unlock()
	return l, nil
}

// Follower decides messages' environments from their lanes with
// graymesh's lane state, read from url (graymesh's admin API, e.g.
// http://127.0.0.1:18080/v1/lanes) and refreshed by Run, and on demand
// when a message is newer than the state (Decide). Safe for concurrent
// use.
type Follower struct {
	url    string
	client *http.Client
	state  atomic.Pointer[state]
	// catchingUp serialises on-demand refreshes: messages waiting for a
	// newer state share one read.
	catchingUp  sync.Mutex
	lastRefresh atomic.Int64 // unix nanoseconds of the last read's start
	// unreachable is set when a wait for a newer state ran out, and
	// cleared by the next read that succeeds: while graymesh cannot be
	// read, messages are decided with the state in force at once, rather
	// than each waiting FenceWait.
	unreachable atomic.Bool
	fenceWait   time.Duration // FenceWait; shorter in tests
	// Refreshes and Failures count reads of the lane state (a failed read
	// keeps the state in force); Unfenced counts messages decided with a
	// state older than they are, because no newer one came in time
	// (FenceWait).
	Refreshes, Failures, Unfenced atomic.Int64
}

// FenceWait bounds how long Decide waits for a lane state newer than a
// message: past it (graymesh unreachable, or the producer's clock ahead
// of graymesh's by more), the message is decided with the state in force,
// and so are the next ones, at once, until a read of graymesh succeeds.
const FenceWait = 5 * time.Second

// refreshGap spaces on-demand reads: at most one per gap per consumer
// process, whatever its message rate.
const refreshGap = 50 * time.Millisecond

// NewFollower reads the lane state at url once: a consumer that cannot
// read it cannot tell gray from stable, and should not start.
func NewFollower(ctx context.Context, url string) (*Follower, error) {
	f := &Follower{url: url, client: &http.Client{Timeout: 5 * time.Second}, fenceWait: FenceWait}
	if err := f.Refresh(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

// Run refreshes the lane state every interval (DefaultRefresh when ≤ 0)
// until ctx ends.
func (f *Follower) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultRefresh
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := f.Refresh(ctx); err != nil && ctx.Err() == nil {
				f.Failures.Add(1)
			}
		}
	}
}

// Refresh reads the lane state now; an answer with the same keys keeps
// them parsed, and the lanes they verified.
func (f *Follower) Refresh(ctx context.Context) error {
	f.lastRefresh.Store(time.Now().UnixNano())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url, nil)
	if err != nil {
		return err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("lane state %s: %s", f.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	f.Refreshes.Add(1)
	st, err := parseState(body, f.state.Load())
	if err != nil {
		return fmt.Errorf("lane state %s: %w", f.url, err)
	}
	f.state.Store(st)
	f.unreachable.Store(false)
	return nil
}

// parseState parses a lane state; prev's keys and verified lanes carry
// over when the key set is the same.
func parseState(body []byte, prev *state) (*state, error) {
	var doc laneState
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, err
	}
	st := &state{killed: doc.Killed, kills: doc.Kills, version: doc.ConfigVersion, asOf: doc.AsOf, verified: &verifiedCache{}}
	switch {
	case len(doc.Keys) == 0 || string(doc.Keys) == "null":
	case prev != nil && prev.keys != nil && bytes.Equal(prev.keysJSON, doc.Keys):
		st.keys, st.keysJSON, st.verified = prev.keys, prev.keysJSON, prev.verified
	default:
		ks, err := lane.ParseKeySet(doc.Keys)
		if err != nil {
			return nil, err
		}
		st.keys, st.keysJSON = ks, doc.Keys
	}
	if doc.KilledThrough != "" {
		v, err := strconv.ParseInt(doc.KilledThrough, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("killed_through %q: %w", doc.KilledThrough, err)
		}
		st.killedThrough = &v
	}
	return st, nil
}

// ConfigVersion is the config version of the lane state in force.
func (f *Follower) ConfigVersion() string { return f.state.Load().version }

// Decide is the environment a message produced at producedAt names with
// its lane, as an inner hop's sidecar would route it: no lane, stable; a
// lane that does not verify (its expiry checked at producedAt), stable; a
// lane of a release killed when the message was produced, stable (unless
// issued under a version newer than the kill, in Kubernetes mode);
// otherwise the lane's environment.
//
// The kill is the one in force at producedAt, not at reading: every
// consumer decides a message alike, whenever it reads the kill, so none
// is left by both (lost) or taken by both. A message whose lane names an
// environment and that is newer than the state in force waits for a
// newer state (read on demand, at most FenceWait).
func (f *Follower) Decide(ctx context.Context, token string, producedAt time.Time) Decision {
	st := f.state.Load()
	d, killable := st.decide(token, producedAt)
	if !killable || !st.olderThan(producedAt) {
		return d
	}
	if !f.catchUp(ctx, producedAt) {
		f.Unfenced.Add(1)
	}
	d, _ = f.state.Load().decide(token, producedAt)
	return d
}

// olderThan reports whether the state may not know a kill in force at t.
func (st *state) olderThan(t time.Time) bool { return !st.asOf.IsZero() && st.asOf.Before(t) }

// catchUp reads the lane state until it is as new as t: false when no
// such state came within FenceWait, or ctx ended.
func (f *Follower) catchUp(ctx context.Context, t time.Time) bool {
	if time.Until(t) > f.fenceWait || f.unreachable.Load() {
		// A producer clock this far ahead (no state will catch up), or
		// graymesh unreadable since the last wait ran out.
		return false
	}
	f.catchingUp.Lock()
	defer f.catchingUp.Unlock()
	deadline := time.Now().Add(f.fenceWait)
	for f.state.Load().olderThan(t) {
		wait := time.Until(time.Unix(0, f.lastRefresh.Load()).Add(refreshGap))
		if time.Now().Add(wait).After(deadline) || f.unreachable.Load() {
			f.unreachable.Store(true)
			return false
		}
		if wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return false
			case <-timer.C:
			}
		}
		if err := f.Refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return false
			}
			f.Failures.Add(1)
		}
	}
	return true
}

// decide is the decision with this state, and whether a kill or a revive
// the state may not know yet could change it: a verified lane that names
// an environment other than stable.
func (st *state) decide(token string, producedAt time.Time) (d Decision, killable bool) {
	if token == "" {
		return Decision{Env: Stable, Reason: wire.ReasonLaneMissing}, false
	}
	if st.keys == nil {
		return Decision{Env: Stable, Reason: wire.ReasonLaneRefused, Problem: "graymesh publishes no lane key"}, false
	}
	l, err := st.verify(token, producedAt)
	if err != nil {
		return Decision{Env: Stable, Reason: wire.ReasonLaneRefused, Problem: err.Error()}, false
	}
	killable = l.Env != Stable
	if st.killedAt(l.Release, producedAt) && lane.KillStops(st.killedThrough, l.Version) {
		return Decision{Env: Stable, Release: l.Release, Reason: wire.ReasonKilled, Stress: l.Stress}, killable
	}
	return Decision{Env: l.Env, Release: l.Release, Reason: wire.ReasonLane, Stress: l.Stress}, killable
}

// killedAt reports whether release was killed at t: by the kills' times
// when graymesh gives them, by the kills in force otherwise.
func (st *state) killedAt(release string, t time.Time) bool {
	if st.asOf.IsZero() {
		return slices.Contains(st.killed, release)
	}
	return slices.ContainsFunc(st.kills, func(k kill) bool { return k.Release == release && k.covers(t) })
}
