package gray

import (
	"errors"
	"fmt"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/identity"
	"github.com/graymesh/graymesh/internal/core/lane"
	"github.com/graymesh/graymesh/internal/core/plan"
)

// Policy is one compiled config: the release engine and the token verifier.
// It is immutable; a reload builds a new Policy and swaps it in whole.
type Policy struct {
	Config   *config.Config
	Engine   *Engine
	Verifier *identity.Verifier
	// Plan is the routing plan every output translates.
	Plan *plan.Plan
	// Lanes signs and verifies lanes; nil when no lane key is configured.
	Lanes *lane.Signer
	// subjectKey keys the subject hash in logs and traces.
	subjectKey []byte
	// proofs are the returning callers' proofs handed out under this
	// config; nil when no proof routes (Plan.Callers nil).
	proofs *proofCache
}

// Compile builds a Policy from a validated config, loading key files; opts
// go to identity.New (a daemon passes identity.WithSources, so fetched key
// sets survive reloads).
func Compile(cfg *config.Config, opts ...identity.Option) (*Policy, error) {
	engine, engErr := New(cfg)
	verifier, idErr := identity.New(cfg.Identity, cfg.ResolvePath, opts...)
	signer, laneErr := laneSigner(cfg)
	routing, planErr := plan.Build(cfg)
	if err := errors.Join(engErr, idErr, laneErr, planErr); err != nil {
		return nil, err
	}
	// The plan carries the lane's public keys: the signer that holds
	// them reads key files, which building a plan never does.
	routing.Lane = laneCheck(signer)
	routing.Callers = callersCheck(cfg, signer)
	p := &Policy{Config: cfg, Engine: engine, Verifier: verifier, Plan: routing, Lanes: signer}
	p.subjectKey = subjectHashKey(signer)
	if routing.Callers != nil {
		p.proofs = newProofCache(proofCacheSize)
	}
	return p, nil
}

func laneSigner(cfg *config.Config) (*lane.Signer, error) {
	key, err := secret(cfg, cfg.Lane.Key, cfg.Lane.KeyFile, "lane.key_file")
	if err != nil || len(key) == 0 {
		return nil, err
	}
	var verify [][]byte
	for _, k := range cfg.Lane.VerifyKeys {
		verify = append(verify, []byte(k))
	}
	for i, f := range cfg.Lane.VerifyKeyFiles {
		k, err := secret(cfg, "", f, fmt.Sprintf("lane.verify_key_files[%d]", i))
		if err != nil {
			return nil, err
		}
		verify = append(verify, k)
	}
	s, err := lane.NewSigner(key, cfg.Lane.TTL.Duration, verify...)
	if err != nil {
		return nil, fmt.Errorf("lane: %w", err)
	}
	return s, nil
}

// secret is an inline secret, or the content of file when one is named.
func secret(cfg *config.Config, inline, file, what string) ([]byte, error) {
	if file == "" {
		return []byte(inline), nil
	}
	return config.ReadSecret(cfg.ResolvePath(file), what)
}

// laneCheck is what inner hops' Envoys need to verify the lanes s signs.
func laneCheck(s *lane.Signer) *plan.Lane {
	if s == nil {
		return nil
	}
	return &plan.Lane{Keys: s.JWKS(), TTL: s.TTL(), ClockSkew: lane.ClockSkew, Window: s.Window(), Signer: s}
}

// callersCheck is what the edge's Envoy needs to route returning callers
// itself, or nil when proofs cannot route (plan.ReturningBlocker).
func callersCheck(cfg *config.Config, s *lane.Signer) *plan.Callers {
	if s == nil || plan.ReturningBlocker(cfg) != "" {
		return nil
	}
	return &plan.Callers{ProofTTL: cfg.Mesh.CallerProofTTL.Duration}
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
