package gray

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/graymesh/graymesh/config"
	"github.com/graymesh/graymesh/identity"
	"github.com/graymesh/graymesh/lane"
)

// Policy is one compiled config: the release engine and the token verifier.
// It is immutable; a reload builds a new Policy and swaps it in whole.
type Policy struct {
	Config   *config.Config
	Engine   *Engine
	Verifier *identity.Verifier
	// Lanes signs and verifies lanes; nil when no lane key is configured.
	Lanes *lane.Signer
	envs  map[string]map[string]bool
}

// Compile builds a Policy from a validated config, loading key files.
func Compile(cfg *config.Config) (*Policy, error) {
	engine, engErr := New(cfg)
	verifier, idErr := identity.New(cfg.Identity, cfg.ResolvePath)
	signer, laneErr := laneSigner(cfg)
	if err := errors.Join(engErr, idErr, laneErr); err != nil {
		return nil, err
	}
	p := &Policy{Config: cfg, Engine: engine, Verifier: verifier, Lanes: signer, envs: map[string]map[string]bool{}}
	for _, s := range cfg.Services {
		p.envs[s.Name] = map[string]bool{}
		for env := range s.Environments {
			p.envs[s.Name][env] = true
		}
	}
	return p, nil
}

func laneSigner(cfg *config.Config) (*lane.Signer, error) {
	key := []byte(cfg.Lane.Key)
	if cfg.Lane.KeyFile != "" {
		b, err := os.ReadFile(cfg.ResolvePath(cfg.Lane.KeyFile))
		if err != nil {
			return nil, fmt.Errorf("lane.key_file: %w", err)
		}
		key = bytes.TrimRight(b, "\r\n")
	}
	if len(key) == 0 {
		return nil, nil
	}
	s, err := lane.NewSigner(key, cfg.Lane.TTL.Duration)
	if err != nil {
		return nil, fmt.Errorf("lane: %w", err)
	}
	return s, nil
}

// Follow is the decision of an inner hop: it never re-decides, it honours
// the lane in the baggage header if the lane's signature and expiry check
// out, and otherwise serves stable and says why.
func (p *Policy) Follow(baggage string, now time.Time) Decision {
	token := lane.FromBaggage(baggage)
	if token == "" || p.Lanes == nil {
		return Decision{Env: config.Stable, Reason: ReasonLaneMissing, Bucket: NoBucket, Version: p.Engine.version}
	}
	l, err := p.Lanes.Verify(token, now)
	if err != nil {
		return Decision{Env: config.Stable, Reason: Reason(err.Error()), Bucket: NoBucket, Version: p.Engine.version}
	}
	if p.Engine.state(l.Release) == config.StateKilled {
		// A kill reaches lanes already travelling, not only new decisions.
		return Decision{Env: config.Stable, Release: l.Release, Rule: "state", Reason: ReasonKilled, Bucket: NoBucket, Version: p.Engine.version}
	}
	return Decision{Env: l.Env, Release: l.Release, Reason: ReasonLane, Bucket: NoBucket, Version: l.Version}
}

// FallbackFor names why service cannot serve env itself ("" when it can,
// when env is stable, or when service is not a configured service).
func (p *Policy) FallbackFor(service, env string) string {
	envs, known := p.envs[service]
	if !known || env == "" || env == config.Stable || envs[env] {
		return ""
	}
	return "no-" + env + "-version"
}

// Load reads, validates and compiles the config file at path.
func Load(path string) (*Policy, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	p, err := Compile(cfg)
	if err != nil {
		return nil, errors.Join(errors.New(path), err)
	}
	return p, nil
}

// HTTPRequest is the part of an HTTP request a decision reads.
type HTTPRequest struct {
	Authorization string
	Cookie        string
	IP            netip.Addr
	// Headers holds the request headers a header matcher names, keyed by
	// lower-case name.
	Headers map[string]string
	// Membership is the membership request header's value, if any.
	Membership string
	Now        time.Time
}

// Decide resolves the caller and decides. The caller is returned so that
// adapters can log or explain it.
func (p *Policy) Decide(r HTTPRequest) (Decision, identity.Caller) {
	caller := p.Verifier.FromRequest(r.Authorization, r.Cookie)
	req := Request{
		Subject:      caller.Subject,
		Claims:       caller.Claims,
		DeviceID:     caller.DeviceID,
		InvalidToken: caller.Problem != "",
		IP:           r.IP,
		Headers:      r.Headers,
		Now:          r.Now,
	}
	if p.membershipOn() {
		token := r.Membership
		if token == "" {
			token = identity.CookieValue(r.Cookie, p.Config.Membership.Cookie)
		}
		if token != "" {
			if m, err := p.Lanes.VerifyMember(token, bucketKey(caller), r.Now); err == nil {
				req.Member = m.Release
			}
		}
	}
	return p.Engine.Decide(&req), caller
}

func (p *Policy) membershipOn() bool { return p.Config.Membership.Enabled && p.Lanes != nil }

// bucketKey is what identifies a caller for bucketing and membership: the
// verified subject, else the device id.
func bucketKey(c identity.Caller) string {
	if c.Subject != "" {
		return "sub:" + c.Subject
	}
	if c.DeviceID != "" {
		return "dev:" + c.DeviceID
	}
	return ""
}

// MembershipFor returns a membership token to hand the caller when d newly
// admits it to a release ("" when membership is off, the caller has no
// identity, or d is not a fresh admission).
func (p *Policy) MembershipFor(d Decision, c identity.Caller, now time.Time) string {
	if !p.membershipOn() || d.Env == "" || d.Env == config.Stable {
		return ""
	}
	switch d.Reason {
	case ReasonWhitelist, ReasonClaim, ReasonCIDR, ReasonHeader, ReasonPercent:
	default:
		return ""
	}
	key := bucketKey(c)
	if key == "" {
		return ""
	}
	return p.Lanes.SignMember(d.Release, d.Env, d.Version, key, now, p.Config.Membership.TTL.Duration)
}

func (e *Engine) state(release string) string {
	for i := range e.releases {
		if e.releases[i].name == release {
			return e.releases[i].state
		}
	}
	return ""
}

// ReadsHeader reports whether any release has a header matcher on name
// (lower case), so adapters copy only the headers a decision can read.
func (e *Engine) ReadsHeader(name string) bool { return e.headerNames[name] }
