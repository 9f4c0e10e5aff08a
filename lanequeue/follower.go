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
}

// state is a lane state ready to decide with.
type state struct {
	keys          *lane.KeySet // nil: no lane key, every lane refused
	killed        []string
	killedThrough *int64 // nil: the kills stop every lane of their releases
	version       string
	// body is the answer the state was parsed from: an unchanged answer
	// keeps the state, and with it the cache of verified lanes.
	body []byte
	// verified caches the lanes that verified under these keys: the edge
	// hands out one lane per environment, release and version per
	// window, so a consumer sees a handful, and verifying an Ed25519
	// signature per message would cost it most of its time.
	verified verifiedCache
}

// maxVerified bounds the cache; past it, it starts over.
const maxVerified = 1024

type verifiedCache struct {
	mu    sync.Mutex
	lanes map[string]lane.Lane
}

// verify is keys.Verify, cached: a cached lane is used until it expires.
func (st *state) verify(token string, now time.Time) (lane.Lane, error) {
	c := &st.verified
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
// http://127.0.0.1:18080/v1/lanes) and refreshed by Run. Safe for
// concurrent use.
type Follower struct {
	url    string
	client *http.Client
	state  atomic.Pointer[state]
	// Refreshes and Failures count reads of the lane state (a failed read
	// keeps the state in force).
	Refreshes, Failures atomic.Int64
}

// NewFollower reads the lane state at url once: a consumer that cannot
// read it cannot tell gray from stable, and should not start.
func NewFollower(ctx context.Context, url string) (*Follower, error) {
	f := &Follower{url: url, client: &http.Client{Timeout: 5 * time.Second}}
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

// Refresh reads the lane state now; an answer like the last keeps the
// state in force (and its verified lanes).
func (f *Follower) Refresh(ctx context.Context) error {
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
	if cur := f.state.Load(); cur != nil && bytes.Equal(cur.body, body) {
		return nil
	}
	st, err := parseState(body)
	if err != nil {
		return fmt.Errorf("lane state %s: %w", f.url, err)
	}
	f.state.Store(st)
	return nil
}

func parseState(body []byte) (*state, error) {
	var doc laneState
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, err
	}
	st := &state{killed: doc.Killed, version: doc.ConfigVersion, body: body}
	if len(doc.Keys) > 0 && string(doc.Keys) != "null" {
		ks, err := lane.ParseKeySet(doc.Keys)
		if err != nil {
			return nil, err
		}
		st.keys = ks
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

// Decide is the environment a message's lane names at now, as an inner
// hop's sidecar would route it: no lane, stable; a lane that does not
// verify, stable; a lane of a killed release, stable (unless issued under
// a version newer than the kill, in Kubernetes mode); otherwise the
// lane's environment.
func (f *Follower) Decide(token string, now time.Time) Decision {
	return f.state.Load().decide(token, now)
}

func (st *state) decide(token string, now time.Time) Decision {
	if token == "" {
		return Decision{Env: Stable, Reason: wire.ReasonLaneMissing}
	}
	if st.keys == nil {
		return Decision{Env: Stable, Reason: wire.ReasonLaneRefused, Problem: "graymesh publishes no lane key"}
	}
	l, err := st.verify(token, now)
	if err != nil {
		return Decision{Env: Stable, Reason: wire.ReasonLaneRefused, Problem: err.Error()}
	}
	if slices.Contains(st.killed, l.Release) && lane.KillStops(st.killedThrough, l.Version) {
		return Decision{Env: Stable, Release: l.Release, Reason: wire.ReasonKilled, Stress: l.Stress}
	}
	return Decision{Env: l.Env, Release: l.Release, Reason: wire.ReasonLane, Stress: l.Stress}
}
