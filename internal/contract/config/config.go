// Package config defines graymesh's configuration file: the identity
// settings, the releases that decide gray membership and the services whose
// environments the mesh routes to. Load decodes strictly and validates; a file
// that fails validation is never returned, so the config in force stays.
package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/graymesh/graymesh/internal/contract/wire"
)

// Stable is the environment every request lands in unless a release says
// otherwise.
const Stable = "stable"

// Config is the whole graymesh configuration file.
type Config struct {
	Server   Server   `yaml:"server"`
	Mesh     Mesh     `yaml:"mesh"`
	Identity Identity `yaml:"identity"`
	Lane     Lane     `yaml:"lane"`
	// Membership makes gray membership sticky.
	Membership Membership `yaml:"membership"`
	Tracing    Tracing    `yaml:"tracing"`
	Releases   []Release  `yaml:"releases"`
	Services   []Service  `yaml:"services"`
	// EffectiveAt, when set, is the instant this config takes effect on
	// every node; until then the config in force stays.
	EffectiveAt *time.Time `yaml:"effective_at"`
	// Change describes the change this file makes to the config in force.
	Change Change `yaml:"change"`

	// Source is the file the config was read from ("" when parsed from
	// bytes); relative key paths resolve against its directory.
	Source string `yaml:"-"`
	// Version is the version of the config in force, the one every
	// response (x-gray-version), lane, log line and explanation shows:
	// graymesh's counter of accepted configs, which only grows. It is ""
	// for a file that no graymesh has put in force (offline tools).
	Version string `yaml:"-"`
	// Content is a short hash of the file's bytes: it tells two files
	// apart; it is not a version.
	Content string `yaml:"-"`
	// FleetVersion: Version is the fleet's (Kubernetes mode), the same
	// number on every node for the same changes, so a version another
	// node signed into a lane compares with this one. In file mode each
	// node counts its own configs, and versions of two nodes do not
	// compare.
	FleetVersion bool `yaml:"-"`
}

// Server holds the addresses graymesh listens on.
type Server struct {
	ExtProcListen string `yaml:"extproc_listen"`
	XDSListen     string `yaml:"xds_listen"`
	AdminListen   string `yaml:"admin_listen"`
}

// Mesh holds what graymesh pushes to Envoy over xDS besides the services.
type Mesh struct {
	// ListenerAddress and ListenerPort are where Envoy accepts traffic.
	ListenerAddress string `yaml:"listener_address"`
	ListenerPort    uint32 `yaml:"listener_port"`
	// ExtProcAddress is host:port at which Envoy reaches graymesh's ext_proc
	// server; it defaults to Server.ExtProcListen.
	ExtProcAddress string `yaml:"extproc_address"`
	// MessageTimeout bounds how long Envoy waits for a decision before it
	// fails open to stable.
	MessageTimeout Duration `yaml:"message_timeout"`
	// NativeTrafficSplit lets Envoy split anonymous requests for a
	// traffic-weighted release itself (weighted clusters carrying the
	// window's lane), without asking graymesh.
	NativeTrafficSplit bool `yaml:"native_traffic_split"`
	// NativeReturningCallers hands each caller graymesh decided a signed
	// proof of the decision, which Envoy verifies and routes on itself on
	// the caller's later requests, without asking graymesh.
	NativeReturningCallers bool `yaml:"native_returning_callers" json:",omitzero"`
	// CallerProofTTL is how long a proof routes (default 5m).
	CallerProofTTL Duration `yaml:"caller_proof_ttl" json:",omitzero"`
}

// Identity configures how the caller's identity is read from a request.
type Identity struct {
	JWT JWT `yaml:"jwt"`
	// DeviceCookie names a cookie whose value is the bucketing key of an
	// anonymous caller. It never grants whitelist or claim membership.
	DeviceCookie string `yaml:"device_cookie"`
}

// JWT configures token verification: where the token is read and who may
// issue it. One issuer is written directly under jwt (every config before
// issuers had that form); several go in Issuers, each with its own keys,
// audiences and claims.
type JWT struct {
	// Cookie, when set, is read when there is no Authorization header.
	Cookie string   `yaml:"cookie"`
	Leeway Duration `yaml:"leeway"`
	// CacheSize bounds the verified-token cache; 0 turns it off.
	CacheSize int `yaml:"cache_size"`
	// Provider is the single issuer written directly under jwt. It must
	// stay empty when Issuers is set.
	Provider `yaml:",inline"`
	// Issuers, when set, are the issuers tokens may come from: a token is
	// verified by the entry whose issuer its iss claim names.
	Issuers []Provider `yaml:"issuers" json:",omitempty"`
}

// Provider is one token issuer: what its tokens must say and where its
// verification keys are. The fields added with OpenID Connect support are
// omitted from the JSON form when unset, so a config written before them
// keeps its content hash.
type Provider struct {
	SubjectClaim string `yaml:"subject_claim"`
	// SubjectPrefix is put before every subject this issuer's tokens name,
	// so that two issuers' subjects never collide ("staff:").
	SubjectPrefix string   `yaml:"subject_prefix" json:",omitzero"`
	Algorithms    []string `yaml:"algorithms"`
	Issuer        string   `yaml:"issuer"`
	// Audience and Audiences: a token's aud must name one of them.
	Audience  string   `yaml:"audience"`
	Audiences []string `yaml:"audiences" json:",omitzero"`
	// Claims maps a claim name the releases match on to the token claim
	// it is read from: a top-level name, or a dotted path into nested
	// objects (realm_access.roles).
	Claims   map[string]string `yaml:"claims" json:",omitzero"`
	Keys     []Key             `yaml:"keys"`
	JWKSFile string            `yaml:"jwks_file"`
	// Discovery reads the JWKS URI from Issuer/.well-known/openid-configuration.
	Discovery bool `yaml:"discovery" json:",omitzero"`
	// JWKSURI is where the issuer publishes its key set.
	JWKSURI string `yaml:"jwks_uri" json:",omitzero"`
	// CAFile is a PEM bundle of the CAs trusted for discovery and JWKS
	// fetches (default: the system's).
	CAFile string `yaml:"ca_file" json:",omitzero"`
	// RefreshInterval is the longest a fetched key set is used before it
	// is fetched again; the provider's Cache-Control max-age or Expires
	// shortens it, down to MinRefreshInterval.
	RefreshInterval Duration `yaml:"refresh_interval" json:",omitzero"`
	// MinRefreshInterval is the least time between two fetches, whatever
	// asks for them (cache headers, tokens naming an unknown kid).
	MinRefreshInterval Duration `yaml:"min_refresh_interval" json:",omitzero"`
}

// Remote reports whether the provider fetches its keys over HTTP(S).
func (p *Provider) Remote() bool { return p.Discovery || p.JWKSURI != "" }

// HasKeySource reports whether any key can verify the provider's tokens.
func (p *Provider) HasKeySource() bool {
	return len(p.Keys) > 0 || p.JWKSFile != "" || p.Remote()
}

// AllAudiences lists Audience and Audiences together.
func (p *Provider) AllAudiences() []string {
	var out []string
	if p.Audience != "" {
		out = append(out, p.Audience)
	}
	return append(out, p.Audiences...)
}

// Providers lists the issuers tokens may come from: those of Issuers, or
// else the one written directly under jwt.
func (j *JWT) Providers() []Provider {
	if len(j.Issuers) > 0 {
		return j.Issuers
	}
	return []Provider{j.Provider}
}

// ProviderField names the i-th of Providers in messages: "identity.jwt"
// or "identity.jwt.issuers[1]".
func (j *JWT) ProviderField(i int) string {
	if len(j.Issuers) > 0 {
		return fmt.Sprintf("identity.jwt.issuers[%d]", i)
	}
	return "identity.jwt"
}

// Key is one verification key. Exactly one of Secret, SecretFile and
// PublicKeyFile is set.
type Key struct {
	ID            string `yaml:"kid"`
	Algorithm     string `yaml:"alg"`
	Secret        string `yaml:"secret"`
	SecretFile    string `yaml:"secret_file"`
	PublicKeyFile string `yaml:"public_key_file"`
}

// Change declares the intent of a config change.
type Change struct {
	// Rollback allows a change that moves subjects who are gray now back
	// to stable (a lower percentage, a new salt, a removed whitelist
	// entry…); without it such a change is refused.
	Rollback bool   `yaml:"rollback"`
	Reason   string `yaml:"reason"`
}

// Lane configures how the edge's decision travels to later hops: a
// compact JWS in the x-graymesh-lane header, signed with an Ed25519 key
// derived from the mesh key, which every inner hop's Envoy verifies with
// the public key graymesh pushes to it.
type Lane struct {
	// Exactly one of Key and KeyFile is needed when any service has a
	// sidecar; the key is at least 32 bytes and shared by every node.
	Key     string `yaml:"key"`
	KeyFile string `yaml:"key_file"`
	// VerifyKeys and VerifyKeyFiles are other mesh keys whose lanes (and
	// membership tokens) are still accepted, though nothing new is signed
	// with them: the next key, published everywhere before it signs, or
	// the previous one, while the lanes it signed expire.
	VerifyKeys     []string `yaml:"verify_keys"`
	VerifyKeyFiles []string `yaml:"verify_key_files"`
	// TTL bounds how long a lane is honoured after the edge signed it.
	TTL Duration `yaml:"ttl"`
	// MeshCIDRs, when set, are the address ranges the mesh's sidecars and
	// services connect from: a sidecar honours a lane (and passes one on)
	// only on a connection from one of them. From any other address its
	// inner, outbound and fallback listeners remove the lane, so a lane
	// captured off the wire and replayed from outside the mesh is served
	// stable. Empty: lanes are honoured from any address that reaches
	// those listeners.
	MeshCIDRs []string `yaml:"mesh_cidrs" json:",omitempty"`
	// MessageKillDelay is how long after a kill (or a revive) it takes
	// effect for queue messages: a consumer's lane state then holds for
	// that long after graymesh answered it, so consumers read graymesh
	// about once a second rather than for every batch of fresh messages.
	// 0: at once.
	MessageKillDelay Duration `yaml:"message_kill_delay" json:",omitzero"`
}

// MaxMessageKillDelay bounds lane.message_kill_delay.
const MaxMessageKillDelay = time.Minute

// Membership configures sticky membership: a subject admitted to gray gets a signed, expiring token — a cookie for
// browsers, a response header for services to send back — and keeps gray
// while the token is valid, whatever the rules say now, until the release
// is killed. Tokens are signed with the lane key.
type Membership struct {
	Enabled bool   `yaml:"enabled"`
	Cookie  string `yaml:"cookie"`
	// Header is the response header carrying the token, and the request
	// header a service sends it back in. It must not start with x-gray-,
	// which Envoy strips from every request.
	Header string   `yaml:"header"`
	TTL    Duration `yaml:"ttl"`
}

// Tracing configures OpenTelemetry export for graymesh and the Envoys it
// configures.
type Tracing struct {
	// OTLPEndpoint is host:port of an OTLP gRPC collector (Jaeger's 4317);
	// empty turns tracing off.
	OTLPEndpoint string `yaml:"otlp_endpoint"`
	// SampleRatio of requests Envoy traces, 0–1 (default 1).
	SampleRatio *float64 `yaml:"sample_ratio"`
}

// Release decides which callers go to Env instead of stable.
type Release struct {
	Name string `yaml:"name"`
	Env  string `yaml:"env"`
	// Salt makes each release bucket subjects independently; it defaults
	// to the release name.
	Salt      string          `yaml:"salt"`
	Blacklist []string        `yaml:"blacklist"`
	Whitelist []string        `yaml:"whitelist"`
	Claims    []ClaimMatcher  `yaml:"claims"`
	CIDRs     []string        `yaml:"cidrs"`
	Headers   []HeaderMatcher `yaml:"headers"`
	// Percent of the salted subject hash space admitted, 0–100 with 0.01
	// precision.
	Percent float64 `yaml:"percent"`
	// TrafficPercent sends this share of requests that carry no usable
	// identity to Env, chosen by Envoy per request with weighted clusters.
	TrafficPercent float64 `yaml:"traffic_percent"`
	// Schedule ramps Percent over time: from each step's At on, the
	// release admits that step's Percent. Before the first step, Percent
	// applies.
	Schedule []Step `yaml:"schedule"`
	// State is active (default), frozen (no new subject enters gray;
	// subjects already admitted stay) or killed (everyone to stable).
	State string `yaml:"state"`
	// Analysis, when set, compares gray with stable every window and acts
	// on the verdict (docs/analysis.md).
	Analysis *Analysis `yaml:"analysis"`
	// HeldSchedule are the schedule's steps an analysis has not approved
	// yet, taken out of Schedule in the config in force (never read from a
	// file): they wait for their time and a passing window.
	HeldSchedule []Step `yaml:"-" json:"held_schedule,omitempty"`
}

// Release states.
const (
	StateActive = "active"
	StateFrozen = "frozen"
	StateKilled = "killed"
)

// Step is one point of a ramp schedule.
type Step struct {
	At      time.Time `yaml:"at"`
	Percent float64   `yaml:"percent"`
}

// ClaimMatcher admits a verified caller whose claim holds one of In.
type ClaimMatcher struct {
	Claim string   `yaml:"claim"`
	In    []string `yaml:"in"`
}

// HeaderMatcher admits a request whose header matches. Exactly one of
// Exact, Prefix and Regex is set.
type HeaderMatcher struct {
	Name   string `yaml:"name"`
	Exact  string `yaml:"exact"`
	Prefix string `yaml:"prefix"`
	Regex  string `yaml:"regex"`
}

// Service is one upstream service and its endpoints per environment.
type Service struct {
	Name string `yaml:"name"`
	// Domains are the Host/:authority values routed to this service; they
	// default to the service name.
	Domains      []string            `yaml:"domains"`
	Environments map[string][]string `yaml:"environments"`
	// Sidecar, when set, gives the service its own Envoy (node cluster =
	// the service name) with an inbound and an outbound listener.
	Sidecar *Sidecar `yaml:"sidecar"`
}

// Sidecar describes a service's own Envoy.
type Sidecar struct {
	// Address the sidecar's listeners bind and peers reach it at.
	Address string `yaml:"address"`
	// InboundPort receives the service's traffic; the sidecar routes it to
	// the service's environment named by the lane.
	InboundPort uint32 `yaml:"inbound_port"`
	// OutboundPort is where the service sends calls to other services
	// (Host header = the service name).
	OutboundPort uint32 `yaml:"outbound_port"`
	// Edge sidecars decide; the others honour the lane they are handed.
	Edge bool `yaml:"edge"`
	// FallbackPort, when set, is a listener of this sidecar that serves
	// stable for requests whose lane's environment has no healthy
	// endpoint here: the service's gray endpoints are health-checked, and
	// when none is healthy (or a connection to one fails) Envoy sends the
	// request to this listener, which marks it x-gray-fallback and keeps
	// the lane, so later hops serve gray again.
	FallbackPort uint32 `yaml:"fallback_port"`
}

// Duration is a time.Duration written as "50ms", "30s".
type Duration struct{ time.Duration }

// UnmarshalYAML parses a Go duration string. Its error is a
// yaml.TypeError, so decoding goes on and reports every bad field at once.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not a duration like 50ms", n.Line, s)}}
	}
	d.Duration = v
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Defaults for fields left empty.
const (
	DefaultExtProcListen  = "127.0.0.1:18081"
	DefaultXDSListen      = "127.0.0.1:18000"
	DefaultAdminListen    = "127.0.0.1:18080"
	DefaultListenerPort   = 10000
	DefaultMessageTimeout = 50 * time.Millisecond
	// DefaultCallerProofTTL is mesh.caller_proof_ttl's default;
	// MaxCallerProofTTL its bound: a proof outlives a change of the
	// caller's token claims by at most that long.
	DefaultCallerProofTTL = 5 * time.Minute
	MaxCallerProofTTL     = time.Hour
	DefaultSubjectClaim   = "sub"
	DefaultCacheSize      = 10000
	DefaultLaneTTL        = 5 * time.Minute
	// DefaultRefreshInterval and DefaultMinRefreshInterval bound how often
	// a provider's key set is fetched.
	DefaultRefreshInterval    = 10 * time.Minute
	DefaultMinRefreshInterval = 30 * time.Second
)

// Load reads, decodes and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := Parse(data, path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes data strictly (unknown fields are errors), applies defaults
// and validates. source names the file for error messages and relative paths.
func Parse(data []byte, source string) (*Config, error) {
	cfg := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, decodeError(data, err)
	}
	cfg.Source = source
	sum := sha256.Sum256(data)
	cfg.Content = hex.EncodeToString(sum[:6])
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (c *Config) applyDefaults() {
	if c.Server.ExtProcListen == "" {
		c.Server.ExtProcListen = DefaultExtProcListen
	}
	if c.Server.XDSListen == "" {
		c.Server.XDSListen = DefaultXDSListen
	}
	if c.Server.AdminListen == "" {
		c.Server.AdminListen = DefaultAdminListen
	}
	if c.Mesh.ListenerAddress == "" {
		c.Mesh.ListenerAddress = "127.0.0.1"
	}
	if c.Mesh.ListenerPort == 0 {
		c.Mesh.ListenerPort = DefaultListenerPort
	}
	if c.Mesh.ExtProcAddress == "" {
		c.Mesh.ExtProcAddress = c.Server.ExtProcListen
	}
	if c.Mesh.MessageTimeout.Duration == 0 {
		c.Mesh.MessageTimeout.Duration = DefaultMessageTimeout
	}
	if c.Mesh.NativeReturningCallers && c.Mesh.CallerProofTTL.Duration == 0 {
		c.Mesh.CallerProofTTL.Duration = DefaultCallerProofTTL
	}
	c.Identity.JWT.applyDefaults()
	if c.Membership.Cookie == "" {
		c.Membership.Cookie = wire.DefaultMembershipCookie
	}
	if c.Membership.Header == "" {
		c.Membership.Header = wire.DefaultMembershipHeader
	}
	if c.Membership.TTL.Duration == 0 {
		c.Membership.TTL.Duration = 30 * 24 * time.Hour
	}
	if c.Lane.TTL.Duration == 0 {
		c.Lane.TTL.Duration = DefaultLaneTTL
	}
	if c.Tracing.SampleRatio == nil {
		one := 1.0
		c.Tracing.SampleRatio = &one
	}
	for i := range c.Services {
		if sc := c.Services[i].Sidecar; sc != nil && sc.Address == "" {
			sc.Address = "127.0.0.1"
		}
	}
	for i := range c.Releases {
		c.Releases[i].ApplyDefaults()
	}
	for i := range c.Services {
		if len(c.Services[i].Domains) == 0 && c.Services[i].Name != "" {
			c.Services[i].Domains = []string{c.Services[i].Name}
		}
	}
}

// Sidecars returns the services that have their own Envoy.
func (c *Config) Sidecars() []Service {
	var out []Service
	for _, s := range c.Services {
		if s.Sidecar != nil {
			out = append(out, s)
		}
	}
	return out
}

// ResolvePath returns p relative to the directory of the config file.
func (c *Config) ResolvePath(p string) string {
	if p == "" || filepath.IsAbs(p) || c.Source == "" {
		return p
	}
	return filepath.Join(filepath.Dir(c.Source), p)
}

func (j *JWT) applyDefaults() {
	if len(j.Issuers) == 0 {
		j.Provider.applyDefaults()
	}
	for i := range j.Issuers {
		j.Issuers[i].applyDefaults()
	}
}

func (p *Provider) applyDefaults() {
	if p.SubjectClaim == "" {
		p.SubjectClaim = DefaultSubjectClaim
	}
	if !p.Remote() {
		return
	}
	if p.RefreshInterval.Duration == 0 {
		p.RefreshInterval.Duration = DefaultRefreshInterval
	}
	if p.MinRefreshInterval.Duration == 0 {
		p.MinRefreshInterval.Duration = min(DefaultMinRefreshInterval, p.RefreshInterval.Duration)
	}
}
