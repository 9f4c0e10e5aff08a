package identity

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// Key sets fetched over HTTP(S): an issuer's jwks_uri, named in the config
// or found by OpenID Connect discovery. Fetches happen in the background
// only; a verification reads the last good set and, when a token names a
// kid it lacks, asks for a fetch without waiting for it.

const (
	// fetchTimeout bounds one discovery or key set request.
	fetchTimeout = 10 * time.Second
	// maxDocumentBytes bounds a discovery document or key set; real ones
	// are a few KiB.
	maxDocumentBytes = 1 << 20
	// firstRetry is the wait after a failed fetch before any key set
	// arrived; it doubles with each failure up to the refresh interval.
	firstRetry = time.Second
)

// remoteSpec is what a provider asks of a fetched key set.
type remoteSpec struct {
	issuer  string // with discovery
	jwksURI string // without
	caFile  string
	algs    []string // asymmetric algorithms keys may have; nil: any
	every   time.Duration
	least   time.Duration
}

func specOf(p config.Provider, resolve func(string) string, algs []string) remoteSpec {
	s := remoteSpec{jwksURI: p.JWKSURI, algs: algs, every: p.RefreshInterval.Duration, least: p.MinRefreshInterval.Duration}
	if p.Discovery {
		s.issuer, s.jwksURI = p.Issuer, ""
	}
	if p.CAFile != "" {
		s.caFile = resolve(p.CAFile)
	}
	if s.every <= 0 {
		s.every = config.DefaultRefreshInterval
	}
	if s.least <= 0 || s.least > s.every {
		s.least = min(config.DefaultMinRefreshInterval, s.every)
	}
	return s
}

// name is how the source is shown: its configured jwks_uri, or the
// discovery document's URL.
func (s remoteSpec) name() string {
	if s.issuer != "" {
		return discoveryURL(s.issuer)
	}
	return s.jwksURI
}

// key tells sources apart in a registry: one per URL and algorithms. The
// CA bundle and the intervals are updated in place.
func (s remoteSpec) key() string { return s.name() + " " + strings.Join(s.algs, ",") }

func (s remoteSpec) allows(alg string) bool { return len(s.algs) == 0 || slices.Contains(s.algs, alg) }

func discoveryURL(issuer string) string {
	return strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
}

// remoteKeys is one accepted key set.
type remoteKeys struct {
	set     *keySet
	fetched time.Time
	// uri is where it came from; body is the document, kept so that a
	// source for other algorithms can start from it.
	uri     string
	body    []byte
	skipped []skippedKey
}

// remote is one fetched key set and the goroutine that keeps it fresh.
type remote struct {
	mu   sync.Mutex // guards spec, client, caSum, discovered
	spec remoteSpec
	// client is rebuilt when the CA bundle's content changes.
	client     *http.Client
	caSum      [sha256.Size]byte
	discovered string // jwks_uri from the discovery document

	keys    atomic.Pointer[remoteKeys]
	lastErr atomic.Pointer[string]
	// wake asks the loop for a fetch; wantKid records that a token named
	// an unknown kid (a rotation), counted when the fetch happens.
	wake    chan struct{}
	wantKid atomic.Bool

	fetches, errors, unknownKid atomic.Int64
	stop                        context.CancelFunc
	now                         func() time.Time
}

func newRemote(spec remoteSpec, now func() time.Time) *remote {
	return &remote{spec: spec, wake: make(chan struct{}, 1), now: now}
}

func (r *remote) current() *remoteKeys { return r.keys.Load() }

// kick asks for a fetch without waiting: the loop fetches when
// min_refresh_interval since the last fetch allows.
func (r *remote) kick(unknownKid bool) {
	if unknownKid {
		r.wantKid.Store(true)
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// run fetches now, then again when the set's lifetime ends (cache headers
// within the provider's bounds), after a failure with a growing backoff,
// and when kicked, never more often than min_refresh_interval.
func (r *remote) run(ctx context.Context, log *slog.Logger) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	next, last, failures := time.Now(), time.Time{}, 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-r.wake:
			soon := last.Add(r.specNow().least)
			if soon.Before(next) {
				next = soon
			}
		}
		now := time.Now()
		if wait := next.Sub(now); wait > 0 {
			resetTimer(timer, wait)
			continue
		}
		last = now
		before := r.current()
		life, err := r.fetch(ctx)
		if err == nil {
			failures = 0
			next = now.Add(life)
			if after := r.current(); before == nil || !slices.Equal(kids(before.set), kids(after.set)) {
				log.Info("key set in force", "jwks_uri", after.uri, "kids", kids(after.set), "ignored", len(after.skipped), "next_fetch_in", life)
			}
		} else {
			failures++
			wait := retryAfter(failures, before != nil, r.specNow())
			next = now.Add(wait)
			if failures == 1 || wait >= r.specNow().every {
				if before == nil {
					log.Warn("no key set yet: tokens of this issuer are anonymous until one is fetched", "error", err, "retry_in", wait)
				} else {
					log.Warn("key set fetch failed; the last good set stays in force", "error", err, "retry_in", wait, "set_age", now.Sub(before.fetched).Round(time.Second))
				}
			}
		}
		resetTimer(timer, time.Until(next))
	}
}

func kids(s *keySet) []string {
	out := make([]string, 0, len(s.byKid))
	for k := range s.byKid {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func resetTimer(t *time.Timer, d time.Duration) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	t.Reset(max(d, 0))
}

// retryAfter is the wait after the n-th failure in a row: from 1 s while
// no key set ever arrived (every token is anonymous until one does), else
// from min_refresh_interval; doubling, at most refresh_interval.
func retryAfter(n int, haveKeys bool, s remoteSpec) time.Duration {
	d := firstRetry
	if haveKeys {
		d = s.least
	}
	for i := 1; i < n && d < s.every; i++ {
		d *= 2
	}
	return min(d, s.every)
}

func (r *remote) specNow() remoteSpec {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.spec
}

// fetch gets the key set once and, when it is a usable set, puts it in
// force; anything else leaves the set in force as it was. It returns how
// long the new set may be used.
func (r *remote) fetch(ctx context.Context) (time.Duration, error) {
	var life time.Duration
	err := func() error {
		ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		defer cancel()
		client, uri, err := r.target(ctx)
		if err != nil {
			return err
		}
		body, header, err := get(ctx, client, uri)
		if err != nil {
			r.forgetDiscovery()
			return err
		}
		set, err := r.accept(uri, body, r.now())
		if err != nil {
			return err
		}
		r.keys.Store(set)
		r.lastErr.Store(nil)
		r.fetches.Add(1)
		if r.wantKid.Swap(false) {
			r.unknownKid.Add(1)
		}
		life = lifetime(header, r.now(), r.specNow())
		return nil
	}()
	if err != nil {
		r.errors.Add(1)
		msg := err.Error()
		r.lastErr.Store(&msg)
		return 0, err
	}
	return life, nil
}

// accept parses a fetched document into a key set for the spec's
// algorithms. A document that is not a key set, holds no key usable here,
// or names a kid twice is refused, so garbage never replaces a good set.
func (r *remote) accept(uri string, body []byte, now time.Time) (*remoteKeys, error) {
	spec := r.specNow()
	keys, skipped, err := parseJWKS(body, spec.allows)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", uri, err)
	}
	if len(keys) == 0 {
		notes := make([]string, len(skipped))
		for i, s := range skipped {
			notes[i] = s.String()
		}
		return nil, fmt.Errorf("%s: no key usable for %s (%s)", uri, algList(spec.algs), strings.Join(notes, "; "))
	}
	set := newKeySet()
	if err := errors.Join(set.addAll(withSource(keys, uri))...); err != nil {
		return nil, fmt.Errorf("%s: %w", uri, err)
	}
	return &remoteKeys{set: set, fetched: now, uri: uri, body: body, skipped: skipped}, nil
}

func algList(algs []string) string {
	if len(algs) == 0 {
		return "any asymmetric algorithm"
	}
	return strings.Join(algs, ", ")
}

// target returns the client for the current CA bundle and the key set's
// URL, reading the discovery document first when needed.
func (r *remote) target(ctx context.Context) (*http.Client, string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.loadCA(); err != nil {
		return nil, "", err
	}
	if r.spec.issuer == "" {
		return r.client, r.spec.jwksURI, nil
	}
	if r.discovered == "" {
		uri, err := discover(ctx, r.client, r.spec.issuer)
		if err != nil {
			return nil, "", err
		}
		r.discovered = uri
	}
	return r.client, r.discovered, nil
}

// forgetDiscovery makes the next fetch read the discovery document again:
// a key set URL that fails may have moved.
func (r *remote) forgetDiscovery() {
	r.mu.Lock()
	r.discovered = ""
	r.mu.Unlock()
}

// loadCA (re)builds the HTTP client when the CA bundle changed; r.mu held.
func (r *remote) loadCA() error {
	var pem []byte
	if r.spec.caFile != "" {
		var err error
		if pem, err = os.ReadFile(r.spec.caFile); err != nil {
			return fmt.Errorf("ca_file: %w", err)
		}
	}
	sum := sha256.Sum256(pem)
	if r.client != nil && sum == r.caSum {
		return nil
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if pem != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("ca_file %s: no PEM certificate", r.spec.caFile)
		}
		tlsConf.RootCAs = pool
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = tlsConf
	r.client = &http.Client{Transport: transport, CheckRedirect: checkRedirect}
	r.caSum = sum
	return nil
}

// checkRedirect follows a few redirects, none to a URL the config would
// refuse (plain http away from loopback).
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("more than 5 redirects")
	}
	return config.CheckFetchURL(req.URL.String())
}

// discover reads the issuer's OpenID Connect discovery document and
// returns its jwks_uri. The document must name the configured issuer
// exactly (OpenID Connect Discovery 1.0, section 4.3).
func discover(ctx context.Context, client *http.Client, issuer string) (string, error) {
	u := discoveryURL(issuer)
	body, _, err := get(ctx, client, u)
	if err != nil {
		return "", err
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("%s: not a discovery document: %w", u, err)
	}
	if doc.Issuer != issuer {
		return "", fmt.Errorf("%s: names issuer %q, not %q", u, doc.Issuer, issuer)
	}
	if err := config.CheckFetchURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("%s: jwks_uri: %w", u, err)
	}
	return doc.JWKSURI, nil
}

func get(ctx context.Context, client *http.Client, u string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("%s: %s", u, resp.Status)
	}
	if len(body) > maxDocumentBytes {
		return nil, nil, fmt.Errorf("%s: larger than %d KiB", u, maxDocumentBytes>>10)
	}
	return bytes.TrimSpace(body), resp.Header, nil
}

// lifetime is how long a fetched set may be used: Cache-Control max-age
// (less Age) or Expires, within [min_refresh_interval, refresh_interval];
// refresh_interval when the answer gives none (or says no-cache/no-store,
// which asks us to check often: then min_refresh_interval would turn every
// instance into a poller, so the configured interval stands).
func lifetime(h http.Header, now time.Time, s remoteSpec) time.Duration {
	life, ok := time.Duration(0), false
	for _, d := range strings.Split(h.Get("Cache-Control"), ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(strings.ToLower(d)), "=")
		switch name {
		case "no-cache", "no-store":
			return s.every
		case "max-age":
			if n, err := strconv.Atoi(strings.Trim(val, `"`)); err == nil && n >= 0 {
				life, ok = time.Duration(n)*time.Second, true
			}
		}
	}
	if ok {
		if age, err := strconv.Atoi(h.Get("Age")); err == nil && age > 0 {
			life -= time.Duration(age) * time.Second
		}
	} else if exp, err := http.ParseTime(h.Get("Expires")); err == nil {
		base := now
		if date, err := http.ParseTime(h.Get("Date")); err == nil {
			base = date
		}
		life, ok = exp.Sub(base), true
	}
	if !ok {
		return s.every
	}
	return min(max(life, s.least), s.every)
}
