// Package gray is graymesh's domain core: it compiles releases from the
// config and decides, for one request, which environment serves it. It
// imports no gRPC and no Envoy types; extproc and xds adapt it to Envoy.
// It decides under one config; which change from one config to the next
// may take effect is package gate's.
//
// Evaluation order. Releases are tried in config order and the first one that
// admits the request decides. Within a release:
//
//  1. blacklist — a verified subject on it is never admitted by this release
//     (it still may be by a later release that does not blacklist it);
//  2. whitelist — a verified subject on it is admitted;
//  3. claims — a verified claim holding a listed value admits;
//  4. cidrs — the client address Envoy saw in one of the ranges admits;
//  5. headers — a request header matching exact/prefix/regex admits;
//  6. percent — the salted bucket of the subject (or, for an anonymous
//     caller, its device id) below the percentage admits.
//
// When no release admits: a caller with an identity is stable; a caller with
// none is left undecided (Env == "") so the route default applies, which is
// stable or, with a traffic-weighted release, a per-request weighted choice.
package gray

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/contract/wire"
)

// Reason says why a decision came out the way it did.
type Reason string

// Reasons, as they appear in headers, logs and explain output.
const (
	ReasonBlacklisted  Reason = "blacklisted"
	ReasonWhitelist    Reason = "whitelist"
	ReasonClaim        Reason = "claim"
	ReasonCIDR         Reason = "cidr"
	ReasonHeader       Reason = "header"
	ReasonPercent      Reason = "percent"
	ReasonNotSelected  Reason = "not-selected"
	ReasonNoIdentity   Reason = "no-identity"
	ReasonInvalidToken Reason = "invalid-token"
	// Inner hops: the lane the edge signed, or why it was not honoured.
	// Inner hops' Envoys say these themselves (their routes), so they are
	// part of the wire contract.
	ReasonLane        Reason = wire.ReasonLane
	ReasonLaneMissing Reason = wire.ReasonLaneMissing
	ReasonLaneRefused Reason = wire.ReasonLaneRefused
	// Operating a release.
	ReasonMember Reason = "member"
	ReasonFrozen Reason = "frozen"
	ReasonKilled Reason = wire.ReasonKilled
	// ReasonTraffic: a traffic-weighted release split a request that no
	// rule decided and that carries no identity.
	ReasonTraffic Reason = "traffic"
	// ReasonTrafficEnvoy: the edge's Envoy split an anonymous request by
	// the traffic-weighted release itself, without asking graymesh
	// (mesh.native_traffic_split); its route says so.
	ReasonTrafficEnvoy Reason = wire.ReasonTrafficEnvoy
	// ReasonProof: the edge's Envoy routed a returning caller on the proof
	// graymesh handed it, without asking graymesh
	// (mesh.native_returning_callers); its route says so.
	ReasonProof Reason = wire.ReasonProof
	// ReasonStress: a verified stress marker sent the request to its
	// release's environment whatever the percentage, schedule or freeze
	// (a kill still wins): a load test, not a caller.
	ReasonStress Reason = "stress"
)

// NoBucket marks a decision that computed no bucket.
const NoBucket = -1

// Facts are what Engine.Decide looks at: what is known about the caller
// once its token is verified. Subject and Claims are set only from a
// verified token; DeviceID only buckets an anonymous caller.
type Facts struct {
	Subject      string
	Claims       map[string][]string
	DeviceID     string
	InvalidToken bool
	IP           netip.Addr
	// Headers are keyed by lower-case name.
	Headers map[string]string
	// Member names the release a verified membership token for this
	// subject admits it to ("" when none).
	Member string
	// Now is the decision's time; schedules are evaluated at it.
	Now time.Time
	// RequestID identifies the request (Envoy's x-request-id): a
	// traffic-weighted release draws on it.
	RequestID string
	// Stress names the release a verified stress marker loads ("" when
	// none).
	Stress string
}

// Decision is the outcome for one request.
type Decision struct {
	// Env is the environment to serve the request, or "" when nothing
	// decided and the route default applies.
	Env     string
	Release string
	// Rule names the rule inside the release that decided, e.g.
	// "claims[0]:tier".
	Rule   string
	Reason Reason
	// Bucket is the subject's bucket in 0..9999 for the deciding release,
	// or NoBucket.
	Bucket  int
	Version string
	// Fallback, when set, says why the hop is served by stable although
	// Env names another environment (e.g. "no-gray-version"); Env keeps
	// the lane so later hops serve it again.
	Fallback string
}

// Engine holds compiled releases. It is immutable and safe for concurrent use.
type Engine struct {
	version     string
	releases    []release
	headerNames map[string]bool
	// traffic is the traffic-weighted release, if any.
	traffic *trafficSplit
}

type release struct {
	name, env, salt string
	blacklist       map[string]struct{}
	// rules admit by who or what the request is, in evaluation order;
	// the percentage comes after them.
	rules       []rule
	basisPoints uint32
	percentRule string
	steps       []step
	// ramps is true when any percentage (now or scheduled) is above 0.
	ramps bool
	state string
}

type step struct {
	at          time.Time
	basisPoints uint32
	rule        string
}

// New compiles a validated config.
func New(cfg *config.Config) (*Engine, error) {
	e := &Engine{version: cfg.Version, headerNames: map[string]bool{}}
	for i := range cfg.Releases {
		r := &cfg.Releases[i]
		cr := release{
			name:        r.Name,
			env:         r.Env,
			salt:        r.Salt,
			blacklist:   set(r.Blacklist),
			basisPoints: config.BasisPoints(r.Percent),
			percentRule: fmt.Sprintf("percent:%.2f", r.Percent),
			state:       r.State,
			ramps:       r.Percent > 0,
		}
		for i, st := range r.Schedule {
			cr.steps = append(cr.steps, step{at: st.At, basisPoints: config.BasisPoints(st.Percent), rule: fmt.Sprintf("schedule[%d]:%.2f", i, st.Percent)})
			cr.ramps = cr.ramps || st.Percent > 0
		}
		for _, kind := range ruleKinds {
			rules, err := kind.compile(r, e.headerNames)
			if err != nil {
				return nil, fmt.Errorf("release %s: %w", r.Name, err)
			}
			cr.rules = append(cr.rules, rules...)
		}
		e.releases = append(e.releases, cr)
		if r.TrafficPercent > 0 {
			e.traffic = newTrafficSplit(r)
		}
	}
	return e, nil
}

// Version is the config version the engine was compiled from.
func (e *Engine) Version() string { return e.version }

// Decide returns the environment for req. It is pure: the same engine and
// request always give the same decision.
func (e *Engine) Decide(req *Facts) Decision {
	if req.Stress != "" {
		if d, ok := e.stress(req.Stress); ok {
			return d
		}
	}
	verified := req.Subject != ""
	key := req.Subject
	if !verified {
		key = req.DeviceID
	}
	var blacklistedBy, killedBy, frozenBy string
	firstBucket, firstRelease := NoBucket, ""
	for i := range e.releases {
		r := &e.releases[i]
		if verified {
			if _, ok := r.blacklist[req.Subject]; ok {
				if blacklistedBy == "" {
					blacklistedBy = r.name
				}
				continue
			}
		}
		member := req.Member != "" && req.Member == r.name
		m, matched := r.match(req, key)
		if m.bucket != NoBucket && firstBucket == NoBucket {
			firstBucket, firstRelease = m.bucket, r.name
		}
		switch {
		case r.state == config.StateKilled:
			if (matched || member) && killedBy == "" {
				killedBy = r.name
			}
		case member:
			// Existing membership wins over re-evaluation, frozen or not.
			return e.admit(r, "membership", ReasonMember, m.bucket)
		case r.state == config.StateFrozen:
			if matched && frozenBy == "" {
				frozenBy = r.name
			}
		case matched:
			return e.admit(r, m.rule, m.reason, m.bucket)
		}
	}
	d := Decision{Env: config.Stable, Bucket: firstBucket, Release: firstRelease, Version: e.version}
	switch {
	case blacklistedBy != "":
		d.Release, d.Rule, d.Reason, d.Bucket = blacklistedBy, "blacklist", ReasonBlacklisted, NoBucket
	case killedBy != "":
		d.Release, d.Rule, d.Reason = killedBy, "state", ReasonKilled
	case frozenBy != "":
		d.Release, d.Rule, d.Reason = frozenBy, "state", ReasonFrozen
	case key != "":
		d.Reason = ReasonNotSelected
	case req.InvalidToken:
		d.Env, d.Reason = "", ReasonInvalidToken
		d = e.split(req, d)
	default:
		d.Env, d.Reason = "", ReasonNoIdentity
		d = e.split(req, d)
	}
	return d
}

// match is the rule of a release that admits a request.
type match struct {
	rule   string
	reason Reason
	bucket int
}

// match applies r's admitting rules (not blacklist, state or membership)
// in order. The bucket is computed whenever the release has a ramp, so a
// non-admitted subject can still be told where it stands.
func (r *release) match(f *Facts, key string) (match, bool) {
	for i := range r.rules {
		if r.rules[i].admits(f) {
			return match{r.rules[i].name, r.rules[i].reason, NoBucket}, true
		}
	}
	if key == "" || !r.ramps {
		return match{bucket: NoBucket}, false
	}
	b := Bucket(r.salt, key)
	bp, rule := r.percentAt(f.Now)
	if uint32(b) < bp {
		return match{rule, ReasonPercent, b}, true
	}
	return match{bucket: b}, false
}

// percentAt is the percentage in force at now, in basis points, and the
// rule that names it: the last schedule step at or before now, else the
// release's percent.
func (r *release) percentAt(now time.Time) (uint32, string) {
	bp, rule := r.basisPoints, r.percentRule
	for i := range r.steps {
		if now.Before(r.steps[i].at) {
			break
		}
		bp, rule = r.steps[i].basisPoints, r.steps[i].rule
	}
	return bp, rule
}

// Has reports whether the config has a release of that name.
func (e *Engine) Has(name string) bool {
	return slices.ContainsFunc(e.releases, func(r release) bool { return r.name == name })
}

// stress decides a request a stress marker for release carries: the
// release's environment as if it were at 100%, whatever its percentage,
// schedule or freeze; stable while it is killed (killed means nobody).
// False when no release has that name: the rules decide as without a
// marker.
func (e *Engine) stress(name string) (Decision, bool) {
	for i := range e.releases {
		r := &e.releases[i]
		if r.name != name {
			continue
		}
		if r.state == config.StateKilled {
			return Decision{Env: config.Stable, Release: r.name, Rule: "state", Reason: ReasonKilled, Bucket: NoBucket, Version: e.version}, true
		}
		return e.admit(r, "stress-marker", ReasonStress, NoBucket), true
	}
	return Decision{}, false
}

func (e *Engine) admit(r *release, rule string, reason Reason, bucket int) Decision {
	return Decision{Env: r.env, Release: r.name, Rule: rule, Reason: reason, Bucket: bucket, Version: e.version}
}

func set(list []string) map[string]struct{} {
	if len(list) == 0 {
		return nil
	}
	m := make(map[string]struct{}, len(list))
	for _, s := range list {
		m[s] = struct{}{}
	}
	return m
}
