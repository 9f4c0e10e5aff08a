package gray

import (
	"errors"
	"net/netip"

	"github.com/graymesh/graymesh/config"
	"github.com/graymesh/graymesh/identity"
)

// Headers graymesh sets on a request. Every one starts with
// config.HeaderPrefix; a client-supplied header with that prefix is removed.
const (
	HeaderEnv     = "x-gray-env"
	HeaderRelease = "x-gray-release"
	HeaderReason  = "x-gray-reason"
	HeaderVersion = "x-gray-version"
)

// Policy is one compiled config: the release engine and the token verifier.
// It is immutable; a reload builds a new Policy and swaps it in whole.
type Policy struct {
	Config   *config.Config
	Engine   *Engine
	Verifier *identity.Verifier
}

// Compile builds a Policy from a validated config, loading key files.
func Compile(cfg *config.Config) (*Policy, error) {
	engine, engErr := New(cfg)
	verifier, idErr := identity.New(cfg.Identity, cfg.ResolvePath)
	if err := errors.Join(engErr, idErr); err != nil {
		return nil, err
	}
	return &Policy{Config: cfg, Engine: engine, Verifier: verifier}, nil
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
	}
	return p.Engine.Decide(&req), caller
}

// ReadsHeader reports whether any release has a header matcher on name
// (lower case), so adapters copy only the headers a decision can read.
func (e *Engine) ReadsHeader(name string) bool { return e.headerNames[name] }
