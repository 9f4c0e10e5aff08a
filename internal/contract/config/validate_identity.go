// Validation of the identity section: issuers, key sources and keys.

package config

import (
	"fmt"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"
)

// warnings lists the identity settings that are legal but risky.
func (j *JWT) warnings() []string {
	var out []string
	providers := j.Providers()
	prefixes := map[string]bool{}
	for i, p := range providers {
		field := j.ProviderField(i)
		if p.HasKeySource() && len(p.AllAudiences()) == 0 {
			out = append(out, field+".audience: not set, so a token the identity provider issued for any other audience (another service, another app) is accepted here; set the audience your tokens carry in aud")
		}
		for k, key := range p.Keys {
			if key.Secret != "" {
				out = append(out, fmt.Sprintf("%s.keys[%d].secret: inline secret; use secret_file from a mounted Secret outside demos", field, k))
			}
		}
		if p.Remote() && len(p.Algorithms) == 0 {
			out = append(out, field+".algorithms: not set, so a token signed with any asymmetric algorithm the key set publishes a key for is accepted; list the one your provider signs with (RS256 for Keycloak, Auth0, Okta, Dex)")
		}
		prefixes[p.SubjectPrefix] = true
	}
	if len(providers) > 1 && len(prefixes) < len(providers) {
		out = append(out, "identity.jwt.issuers: two issuers share a subject_prefix, so a subject one issues (a user name, an id) may name a different person at the other and match its whitelist entries; give each issuer its own subject_prefix unless they share one user directory")
	}
	return out
}

func (id Identity) validate() []error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("identity.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	j := id.JWT
	if j.Leeway.Duration < 0 || j.Leeway.Duration > 5*time.Minute {
		add("jwt.leeway", "%s is outside [0, 5m]", j.Leeway.Duration)
	}
	if j.CacheSize < 0 {
		add("jwt.cache_size", "%d is negative", j.CacheSize)
	}
	if len(j.Issuers) == 0 {
		errs = append(errs, j.validate("jwt")...)
	} else {
		if !reflect.DeepEqual(j.Provider, Provider{}) {
			add("jwt", "issuer settings (issuer, audience, keys, jwks_uri, …) are written either directly under jwt or in jwt.issuers, not both: move them into an entry of issuers")
		}
		seen := map[string]int{}
		for i, p := range j.Issuers {
			field := fmt.Sprintf("jwt.issuers[%d]", i)
			if p.Issuer == "" {
				add(field+".issuer", "is empty; each entry of issuers names the iss its tokens carry")
			} else if k, dup := seen[p.Issuer]; dup {
				add(field+".issuer", "%q duplicates issuers[%d]", p.Issuer, k)
			}
			seen[p.Issuer] = i
			if !p.HasKeySource() {
				add(field, "no keys: set keys, jwks_file, jwks_uri or discovery: true")
			}
			errs = append(errs, p.validate(field)...)
		}
	}
	if id.DeviceCookie != "" && id.DeviceCookie == j.Cookie {
		add("device_cookie", "must differ from jwt.cookie")
	}
	return errs
}

// validate checks one issuer's fields; field is "jwt" or "jwt.issuers[i]".
func (p Provider) validate(field string) []error {
	var errs []error
	add := func(sub, format string, args ...any) {
		errs = append(errs, fmt.Errorf("identity.%s.%s: %s", field, sub, fmt.Sprintf(format, args...)))
	}
	for i, a := range p.Algorithms {
		if !isSupported(a) {
			add(fmt.Sprintf("algorithms[%d]", i), "%q is not one of %s", a, strings.Join(SupportedAlgorithms, ", "))
		}
	}
	if strings.TrimSpace(p.SubjectClaim) == "" {
		add("subject_claim", "is empty")
	}
	for i, k := range p.Keys {
		sub := fmt.Sprintf("keys[%d]", i)
		if k.ID != "" {
			sub = fmt.Sprintf("keys[%d] (%s)", i, k.ID)
		}
		for _, e := range k.validate(p.Algorithms) {
			add(sub+e.sub, "%s", e.msg)
		}
	}
	for i, a := range p.Audiences {
		if strings.TrimSpace(a) == "" {
			add(fmt.Sprintf("audiences[%d]", i), "is empty")
		}
	}
	for name, from := range p.Claims {
		if strings.TrimSpace(name) == "" || strings.TrimSpace(from) == "" {
			add("claims", "%q: %q: name a claim and the token claim it is read from", name, from)
		}
	}
	errs = append(errs, p.validateRemote(field)...)
	return errs
}

// validateRemote checks the settings that fetch keys over HTTP(S).
func (p Provider) validateRemote(field string) []error {
	var errs []error
	add := func(sub, format string, args ...any) {
		errs = append(errs, fmt.Errorf("identity.%s.%s: %s", field, sub, fmt.Sprintf(format, args...)))
	}
	switch {
	case p.Discovery && p.JWKSURI != "":
		add("jwks_uri", "set one of discovery (the key set named by the issuer's discovery document) and jwks_uri")
	case p.Discovery && p.Issuer == "":
		add("discovery", "needs issuer: the discovery document is read from ISSUER/.well-known/openid-configuration")
	case p.Discovery:
		if err := CheckFetchURL(p.Issuer); err != nil {
			add("issuer", "discovery: %v", err)
		}
	case p.JWKSURI != "":
		if err := CheckFetchURL(p.JWKSURI); err != nil {
			add("jwks_uri", "%v", err)
		}
	}
	if !p.Remote() {
		for _, f := range []struct {
			name string
			set  bool
		}{{"ca_file", p.CAFile != ""}, {"refresh_interval", p.RefreshInterval.Duration != 0}, {"min_refresh_interval", p.MinRefreshInterval.Duration != 0}} {
			if f.set {
				add(f.name, "only applies to keys fetched over HTTP(S): set jwks_uri or discovery: true")
			}
		}
		return errs
	}
	lo, hi := p.MinRefreshInterval.Duration, p.RefreshInterval.Duration
	if lo < time.Second || lo > hi || hi > 24*time.Hour {
		add("refresh_interval", "min_refresh_interval %s and refresh_interval %s must satisfy 1s ≤ min_refresh_interval ≤ refresh_interval ≤ 24h", lo, hi)
	}
	if len(p.Algorithms) > 0 && !slices.ContainsFunc(p.Algorithms, func(a string) bool { return !strings.HasPrefix(a, "HS") }) {
		add("algorithms", "lists only HMAC algorithms, and a fetched key set never provides HMAC keys: list the algorithm the issuer signs with (RS256 for most providers)")
	}
	return errs
}

// CheckFetchURL accepts the URL of a discovery document or key set:
// absolute https, or http to a loopback host only (keys fetched in clear
// text from elsewhere could be swapped on the way).
func CheckFetchURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL", raw)
	}
	if u.Host == "" || u.User != nil || u.Fragment != "" {
		return fmt.Errorf("%q must be an absolute URL with a host, no user info and no fragment", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip, err := netip.ParseAddr(host); (err == nil && ip.IsLoopback()) || host == "localhost" {
			return nil
		}
		return fmt.Errorf("%q is plain http to a host that is not loopback: use https", raw)
	}
	return fmt.Errorf("%q: scheme must be https", raw)
}

type keyProblem struct{ sub, msg string }

// validate checks one key; algs is the issuer's algorithms list.
func (k Key) validate(algs []string) []keyProblem {
	var out []keyProblem
	add := func(sub, format string, args ...any) {
		out = append(out, keyProblem{sub, fmt.Sprintf(format, args...)})
	}
	if !isSupported(k.Algorithm) {
		add(".alg", "%q is not one of %s", k.Algorithm, strings.Join(SupportedAlgorithms, ", "))
		return out
	}
	set := 0
	for _, v := range []string{k.Secret, k.SecretFile, k.PublicKeyFile} {
		if v != "" {
			set++
		}
	}
	if set != 1 {
		add("", "set exactly one of secret, secret_file, public_key_file")
		return out
	}
	symmetric := strings.HasPrefix(k.Algorithm, "HS")
	if symmetric && k.PublicKeyFile != "" {
		add(".public_key_file", "%s needs a shared secret, not a public key", k.Algorithm)
	}
	if !symmetric && k.PublicKeyFile == "" {
		add(".public_key_file", "%s needs a public key file", k.Algorithm)
	}
	if k.Secret != "" && len(k.Secret) < MinSecretBytes {
		add(".secret", "%d bytes; a secret needs at least %d", len(k.Secret), MinSecretBytes)
	}
	if len(algs) > 0 && !slices.Contains(algs, k.Algorithm) {
		add(".alg", "%s is not in jwt.algorithms, so this key would never be used", k.Algorithm)
	}
	return out
}
