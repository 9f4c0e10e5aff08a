package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/graymesh/graymesh/internal/contract/wire"
)

// SupportedAlgorithms are the JWT algorithms graymesh verifies. "none" is
// never among them.
var SupportedAlgorithms = []string{
	"HS256", "HS384", "HS512",
	"RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512",
	"EdDSA",
}

var (
	nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,62})$`)
	envRE  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30})$`)
)

// Validate reports every problem in the config, each naming the field
// (and the release or service) it is about.
//
//nolint:funlen // one check per field, read top to bottom like the config reference
func (c *Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}

	for _, a := range []struct{ field, addr string }{
		{"server.extproc_listen", c.Server.ExtProcListen},
		{"server.xds_listen", c.Server.XDSListen},
		{"server.admin_listen", c.Server.AdminListen},
		{"mesh.extproc_address", c.Mesh.ExtProcAddress},
	} {
		if err := checkHostPort(a.addr); err != nil {
			add(a.field, "%v", err)
		}
	}
	if _, err := netip.ParseAddr(c.Mesh.ListenerAddress); err != nil {
		add("mesh.listener_address", "%q is not an IP address", c.Mesh.ListenerAddress)
	}
	if c.Mesh.ListenerPort > 65535 {
		add("mesh.listener_port", "%d is not a port", c.Mesh.ListenerPort)
	}
	if d := c.Mesh.MessageTimeout.Duration; d <= 0 || d > 10*time.Second {
		add("mesh.message_timeout", "%s is outside (0, 10s]", d)
	}
	if c.Mesh.NativeReturningCallers {
		if d := c.Mesh.CallerProofTTL.Duration; d < time.Second || d > MaxCallerProofTTL {
			add("mesh.caller_proof_ttl", "%s is outside [1s, %s]", d, MaxCallerProofTTL)
		}
		if c.Lane.Key == "" && c.Lane.KeyFile == "" {
			add("mesh.native_returning_callers", "needs a lane key (lane.key_file): proofs are signed with it")
		}
	}

	errs = append(errs, c.Identity.validate()...)
	if c.EffectiveAt != nil {
		if err := checkRFC3339(*c.EffectiveAt); err != nil {
			add("effective_at", "%v", err)
		}
	}
	errs = append(errs, c.validateLaneAndTracing()...)

	names := map[string]int{}
	weighted := ""
	for i, r := range c.Releases {
		field := fmt.Sprintf("releases[%d]", i)
		if r.Name != "" {
			field = fmt.Sprintf("releases[%d] (%s)", i, r.Name)
		}
		errs = append(errs, r.validate(field)...)
		if r.Name != "" {
			if j, dup := names[r.Name]; dup {
				add(field+".name", "duplicates releases[%d]", j)
			}
			names[r.Name] = i
		}
		if r.TrafficPercent > 0 {
			if weighted != "" {
				add(field+".traffic_percent", "only one release may be traffic-weighted; %s already is", weighted)
			}
			weighted = r.Name
		}
	}

	for i := range c.Releases {
		r := &c.Releases[i]
		if r.Analysis != nil {
			errs = append(errs, r.Analysis.validate(fmt.Sprintf("releases[%d] (%s)", i, r.Name), r, c)...)
		}
		if r.State == StateFrozen && !c.Membership.Enabled {
			errs = append(errs, fmt.Errorf("releases[%d] (%s).state: frozen keeps only subjects holding a membership token, and membership.enabled is off, so it would send everyone to stable: turn membership on, or kill the release", i, r.Name))
		}
	}

	services := map[string]int{}
	domains := map[string]string{}
	for i, s := range c.Services {
		field := fmt.Sprintf("services[%d]", i)
		if s.Name != "" {
			field = fmt.Sprintf("services[%d] (%s)", i, s.Name)
		}
		errs = append(errs, s.validate(field)...)
		if s.Name != "" {
			if j, dup := services[s.Name]; dup {
				add(field+".name", "duplicates services[%d]", j)
			}
			services[s.Name] = i
		}
		for _, d := range s.Domains {
			if other, dup := domains[d]; dup {
				add(field+".domains", "%q is already routed to service %s", d, other)
			}
			domains[d] = s.Name
		}
	}
	return errors.Join(errs...)
}

func (c *Config) validateLaneAndTracing() []error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	l := c.Lane
	switch {
	case l.Key != "" && l.KeyFile != "":
		add("lane", "set one of key, key_file")
	case l.Key != "" && len(l.Key) < MinSecretBytes:
		add("lane.key", "%d bytes; the mesh key needs at least %d", len(l.Key), MinSecretBytes)
	case l.Key == "" && l.KeyFile == "" && len(c.Sidecars()) > 0:
		add("lane", "services have sidecars, so the lane needs a signing key: set key_file (or key)")
	}
	if (len(l.VerifyKeys) > 0 || len(l.VerifyKeyFiles) > 0) && l.Key == "" && l.KeyFile == "" {
		add("lane", "verify_keys and verify_key_files are accepted beside a signing key: set key_file (or key)")
	}
	for i, k := range l.VerifyKeys {
		if len(k) < MinSecretBytes {
			add(fmt.Sprintf("lane.verify_keys[%d]", i), "%d bytes; a mesh key needs at least %d", len(k), MinSecretBytes)
		}
	}
	if l.TTL.Duration < time.Second || l.TTL.Duration > 24*time.Hour {
		add("lane.ttl", "%s is outside [1s, 24h]", l.TTL.Duration)
	}
	if d := l.MessageKillDelay.Duration; d < 0 || d > MaxMessageKillDelay {
		add("lane.message_kill_delay", "%s is outside [0s, %s]", d, MaxMessageKillDelay)
	}
	for i, cidr := range l.MeshCIDRs {
		if p, err := netip.ParsePrefix(cidr); err != nil || p != p.Masked() {
			add(fmt.Sprintf("lane.mesh_cidrs[%d]", i), "%q is not a CIDR range like 10.0.0.0/8 (no host bits set)", cidr)
		}
	}
	if m := c.Membership; m.Enabled {
		if l.Key == "" && l.KeyFile == "" {
			add("membership.enabled", "membership tokens are signed with the lane key: set lane.key_file")
		}
		if strings.HasPrefix(strings.ToLower(m.Header), wire.HeaderPrefix) || m.Header != strings.ToLower(m.Header) {
			add("membership.header", "%q must be lower case and must not start with %s (Envoy strips those from requests)", m.Header, wire.HeaderPrefix)
		}
		if m.TTL.Duration < time.Minute {
			add("membership.ttl", "%s is shorter than a minute", m.TTL.Duration)
		}
	}
	if e := c.Tracing.OTLPEndpoint; e != "" {
		if err := checkHostPort(e); err != nil {
			add("tracing.otlp_endpoint", "%v", err)
		}
	}
	if r := *c.Tracing.SampleRatio; math.IsNaN(r) || r < 0 || r > 1 {
		add("tracing.sample_ratio", "%v is outside 0–1", r)
	}
	ports := map[string]string{}
	for i, s := range c.Services {
		sc := s.Sidecar
		if sc == nil {
			continue
		}
		field := fmt.Sprintf("services[%d] (%s).sidecar", i, s.Name)
		if _, err := netip.ParseAddr(sc.Address); err != nil {
			add(field+".address", "%q is not an IP address", sc.Address)
		}
		for _, p := range []struct {
			name string
			port uint32
		}{{"inbound_port", sc.InboundPort}, {"outbound_port", sc.OutboundPort}, {"fallback_port", sc.FallbackPort}} {
			if p.name == "fallback_port" && p.port == 0 {
				continue // optional
			}
			if p.port == 0 || p.port > 65535 {
				add(field+"."+p.name, "%d is not a port", p.port)
				continue
			}
			key := fmt.Sprintf("%s:%d", sc.Address, p.port)
			if other, dup := ports[key]; dup {
				add(field+"."+p.name, "%s is already used by %s", key, other)
			}
			ports[key] = field + "." + p.name
		}
	}
	return errs
}

// Warnings lists legal but suspicious settings; they never refuse a config.
func (c *Config) Warnings() []string {
	var out []string
	envs := map[string]bool{}
	for _, s := range c.Services {
		for env := range s.Environments {
			envs[env] = true
		}
	}
	for i, r := range c.Releases {
		field := fmt.Sprintf("releases[%d] (%s)", i, r.Name)
		for j, s := range r.Whitelist {
			if slices.Contains(r.Blacklist, s) {
				out = append(out, fmt.Sprintf("%s.whitelist[%d]: %q is also blacklisted; the blacklist wins", field, j, s))
			}
		}
		if len(c.Services) > 0 && !envs[r.Env] {
			out = append(out, fmt.Sprintf("%s.env: no service has a %q environment, so admitted requests are served by stable", field, r.Env))
		}
		admits := r.admitsWith(r.Percent)
		for _, st := range r.Schedule {
			admits = admits || r.admitsWith(st.Percent)
		}
		if !admits {
			out = append(out, fmt.Sprintf("%s: admits nobody (no whitelist, matchers or percentage)", field))
		}
	}
	out = append(out, c.Identity.JWT.warnings()...)
	if c.Mesh.NativeReturningCallers {
		for i := range c.Releases {
			if r := &c.Releases[i]; r.DecidesOnMoreThanTheCaller() {
				out = append(out, fmt.Sprintf("mesh.native_returning_callers: releases[%d] (%s) has headers, cidrs or claims rules, which decide on more than the caller, so Envoy routes no caller on a proof and graymesh decides every request", i, r.Name))
				break
			}
		}
	}
	if len(c.Lane.MeshCIDRs) == 0 && slices.ContainsFunc(c.Sidecars(), func(s Service) bool { return !s.Sidecar.Edge }) {
		out = append(out, "lane.mesh_cidrs: empty, so inner sidecars honour a lane from any address that reaches them; "+
			"list the ranges the mesh connects from, or keep their listeners reachable only from the mesh (docs/lanes.md)")
	}
	return out
}

func (s Service) validate(field string) []error {
	var errs []error
	add := func(sub, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", field, sub, fmt.Sprintf(format, args...)))
	}
	if !nameRE.MatchString(s.Name) {
		add("name", "%q must be 1–63 characters of a-z 0-9 . _ - starting with a letter or digit", s.Name)
	}
	if len(s.Environments[Stable]) == 0 {
		add("environments", "has no %q endpoints; every service needs a stable version to fall back to", Stable)
	}
	for env, eps := range s.Environments {
		if !envRE.MatchString(env) {
			add("environments", "%q must be 1–31 characters of a-z 0-9 -", env)
		}
		for i, ep := range eps {
			if err := checkHostPort(ep); err != nil {
				add(fmt.Sprintf("environments.%s[%d]", env, i), "%v", err)
			}
		}
	}
	for i, d := range s.Domains {
		if strings.TrimSpace(d) == "" {
			add(fmt.Sprintf("domains[%d]", i), "is empty")
		}
	}
	return errs
}

// checkRFC3339 refuses times RFC 3339 cannot write: YAML accepts zone
// offsets up to ±24:59 and years past 9999, which the persisted state could
// then not read back.
func checkRFC3339(t time.Time) error {
	if _, off := t.Zone(); off <= -24*3600 || off >= 24*3600 {
		return fmt.Errorf("zone offset %s is outside ±23:59", t.Format("-07:00"))
	}
	if y := t.Year(); y < 0 || y > 9999 {
		return fmt.Errorf("year %d is outside 0000–9999", y)
	}
	return nil
}

// checkPercent accepts 0–100 with at most two decimals.
func checkPercent(p float64) error {
	if math.IsNaN(p) || p < 0 || p > 100 {
		return fmt.Errorf("%v is outside 0–100", p)
	}
	if bp := p * 100; math.Abs(bp-math.Round(bp)) > 1e-6 {
		return fmt.Errorf("%v has more than two decimals (precision is 0.01%%)", p)
	}
	return nil
}

// BasisPoints converts a validated percentage to hundredths of a percent.
func BasisPoints(p float64) uint32 { return uint32(math.Round(p * 100)) }

func checkHostPort(addr string) error {
	_, _, err := SplitHostPort(addr)
	return err
}

// SplitHostPort splits an address the config names (an endpoint, the
// ext_proc or collector address) into a host and a port in 1..65535.
func SplitHostPort(addr string) (host string, port uint32, err error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port", addr)
	}
	if host == "" {
		return "", 0, fmt.Errorf("%q has no host", addr)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return "", 0, fmt.Errorf("%q is not host:port with a port in 1..65535", addr)
	}
	return host, uint32(n), nil
}

func isSupported(alg string) bool { return slices.Contains(SupportedAlgorithms, alg) }
