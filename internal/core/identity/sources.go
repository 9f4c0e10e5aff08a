package identity

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Sources fetches the key sets of the providers that publish their keys
// over HTTP(S), for every Verifier built with it (WithSources): a config
// reload builds a new Verifier that finds the sets the one before had
// fetched, so a reload never makes tokens unverifiable while a set is
// fetched again. A daemon has one for its life.
type Sources struct {
	log *slog.Logger
	now func() time.Time

	mu    sync.Mutex
	ctx   context.Context // nil until Start
	byKey map[string]*remote
}

// NewSources returns a registry that fetches nothing until Start.
func NewSources(log *slog.Logger) *Sources {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Sources{log: log, now: time.Now, byKey: map[string]*remote{}}
}

// Start fetches every key set known now, and those added later, in the
// background until ctx ends.
func (s *Sources) Start(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ctx = ctx
	for _, r := range s.byKey {
		s.startLocked(r)
	}
}

func (s *Sources) startLocked(r *remote) {
	if r.stop != nil {
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	r.stop = cancel
	go r.run(ctx, s.log.With("source", r.spec.name()))
}

// source returns the registry's fetcher for spec, creating it when none
// fetches that URL for those algorithms yet. An existing one takes the
// spec's CA bundle and intervals; a new one starts from the last set a
// fetcher of the same URL (for other algorithms) accepted.
func (s *Sources) source(spec remoteSpec) *remote {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.byKey[spec.key()]; ok {
		r.update(spec)
		return r
	}
	r := newRemote(spec, s.now)
	for _, o := range s.byKey {
		if cur := o.current(); cur != nil && o.specNow().name() == spec.name() {
			if ks, err := r.accept(cur.uri, cur.body, cur.fetched); err == nil {
				r.keys.Store(ks)
			}
			break
		}
	}
	s.byKey[spec.key()] = r
	if s.ctx != nil {
		s.startLocked(r)
	}
	return r
}

// Retain stops fetching the key sets none of vs uses (a provider removed
// from the config); the verifiers that hold them keep their last sets.
func (s *Sources) Retain(vs ...*Verifier) {
	keep := map[*remote]bool{}
	for _, v := range vs {
		for _, p := range v.providers {
			if p.remote != nil {
				keep[p.remote] = true
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, r := range s.byKey {
		if !keep[r] {
			if r.stop != nil {
				r.stop()
			}
			delete(s.byKey, k)
		}
	}
}

// SourceStatus is one fetched key set's state, for metrics, readiness and
// the admin API.
type SourceStatus struct {
	// Source is the configured jwks_uri or the discovery document URL;
	// JWKSURI is where the set in force came from.
	Source     string    `json:"source"`
	JWKSURI    string    `json:"jwks_uri,omitempty"`
	Algorithms []string  `json:"algorithms,omitempty"`
	Fetched    time.Time `json:"fetched,omitzero"`
	Keys       []string  `json:"kids,omitempty"`
	// Ignored lists the keys of the set in force that verify nothing
	// (encryption keys, HMAC keys, algorithms not configured) and why.
	Ignored             []string `json:"ignored,omitempty"`
	Fetches             int64    `json:"fetches"`
	Errors              int64    `json:"errors"`
	UnknownKidRefreshes int64    `json:"unknown_kid_refreshes"`
	LastError           string   `json:"last_error,omitempty"`
}

// Status lists every key set the registry fetches, by source.
func (s *Sources) Status() []SourceStatus {
	s.mu.Lock()
	rs := make([]*remote, 0, len(s.byKey))
	for _, r := range s.byKey {
		rs = append(rs, r)
	}
	s.mu.Unlock()
	out := make([]SourceStatus, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.status())
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		return a.Source < b.Source || a.Source == b.Source && strings.Join(a.Algorithms, ",") < strings.Join(b.Algorithms, ",")
	})
	return out
}

func (r *remote) status() SourceStatus {
	spec := r.specNow()
	st := SourceStatus{
		Source: spec.name(), Algorithms: spec.algs,
		Fetches: r.fetches.Load(), Errors: r.errors.Load(), UnknownKidRefreshes: r.unknownKid.Load(),
	}
	if e := r.lastErr.Load(); e != nil {
		st.LastError = *e
	}
	if cur := r.current(); cur != nil {
		st.JWKSURI, st.Fetched = cur.uri, cur.fetched
		for kid := range cur.set.byKid {
			st.Keys = append(st.Keys, kid)
		}
		slices.Sort(st.Keys)
		for _, sk := range cur.skipped {
			st.Ignored = append(st.Ignored, sk.String())
		}
	}
	return st
}

// update takes a new spec for the same URL and algorithms; a changed CA
// bundle or interval asks for a fetch.
func (r *remote) update(spec remoteSpec) {
	r.mu.Lock()
	changed := r.spec.caFile != spec.caFile || r.spec.every != spec.every || r.spec.least != spec.least
	r.spec = spec
	r.mu.Unlock()
	if changed {
		r.kick(false)
	}
}
