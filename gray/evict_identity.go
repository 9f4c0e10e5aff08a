package gray

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"

	"github.com/graymesh/graymesh/config"
	"github.com/graymesh/graymesh/identity"
)

// Identity, membership and lane changes touch every release: a caller whose
// token no longer verifies, or whose subject is read from another claim, is
// someone else (or anonymous) under the new config, whatever the rules say.

// identityChanges compares how callers are identified: where the token and
// the device id are read, which tokens verify, and which claim names the
// subject.
func identityChanges(old, new *config.Config) []change {
	o, n := old.Identity, new.Identity
	l := changeList{}
	if o.JWT.SubjectClaim != n.JWT.SubjectClaim {
		l.add(true, "identity.jwt.subject_claim", "identity.jwt.subject_claim changed %q → %q: every verified subject is re-keyed", o.JWT.SubjectClaim, n.JWT.SubjectClaim)
	}
	if o.JWT.Cookie != "" && o.JWT.Cookie != n.JWT.Cookie {
		l.add(true, "identity.jwt.cookie", "identity.jwt.cookie changed %q → %q: callers whose token is in that cookie become anonymous", o.JWT.Cookie, n.JWT.Cookie)
	}
	if o.DeviceCookie != "" && o.DeviceCookie != n.DeviceCookie {
		l.add(true, "identity.device_cookie", "identity.device_cookie changed %q → %q: anonymous callers lose their bucketing key", o.DeviceCookie, n.DeviceCookie)
	}
	for _, c := range []struct{ field, old, new, claim string }{
		{"identity.jwt.issuer", o.JWT.Issuer, n.JWT.Issuer, "iss"},
		{"identity.jwt.audience", o.JWT.Audience, n.JWT.Audience, "aud"},
	} {
		switch {
		case c.new == "" || c.old == c.new:
			// Unset, a token's claim is not checked: nobody loses.
		case c.old == "":
			l.add(true, c.field, "%s set to %q: tokens with another or no %s become anonymous", c.field, c.new, c.claim)
		default:
			l.add(true, c.field, "%s changed %q → %q: tokens with %s %q become anonymous", c.field, c.old, c.new, c.claim, c.old)
		}
	}
	return append(l.out, keyChanges(old, new)...)
}

// keyChanges compares the verification keys. A token verifies under new
// when new holds a key it reaches — by its kid, or by its algorithm when
// the key has no kid — with the same material, and allows its algorithm.
// Keys are compared by the material in their files now (identity
// .ConfiguredKeys): a key file moved or re-encoded is the same key; a file
// replaced in place is not visible here, as both configs read it.
func keyChanges(old, new *config.Config) []change {
	oldKeys := identity.ConfiguredKeys(old.Identity, old.ResolvePath)
	newKeys := identity.ConfiguredKeys(new.Identity, new.ResolvePath)
	l := changeList{}
	for _, k := range oldKeys {
		if k.Unread != "" && k.Alg == "" { // a JWKS file that does not read
			if !slices.ContainsFunc(newKeys, func(m identity.KeyRef) bool { return m.Unread == k.Unread }) {
				l.add(true, k.Field, "%s: %s could not be read to compare its keys, and the new config no longer uses it: tokens signed with its keys may become anonymous", k.Field, k.Unread)
			}
			continue
		}
		if slices.ContainsFunc(newKeys, reaches(k)) {
			continue
		}
		i := slices.IndexFunc(newKeys, func(m identity.KeyRef) bool { return k.Kid != "" && m.Kid == k.Kid })
		if i < 0 {
			l.add(true, k.Field, "%s: %s removed: tokens signed with it become anonymous", k.Field, k.Name())
		} else {
			l.add(true, k.Field, "%s: %s replaced by a different key (%s): tokens signed with the old key become anonymous", k.Field, k.Name(), newKeys[i].Alg)
		}
	}
	for _, k := range newKeys {
		if k.Unread == "" && !slices.ContainsFunc(oldKeys, reaches(k)) {
			l.add(false, k.Field, "%s: %s added", k.Field, k.Name())
		}
	}
	return append(l.out, algorithmChanges(old.Identity.JWT, new.Identity.JWT, oldKeys)...)
}

// reaches matches a key of the other config that verifies the tokens k
// verifies: same algorithm and material, and the same kid unless k has
// none (a token without kid is tried on every key of its algorithm).
func reaches(k identity.KeyRef) func(identity.KeyRef) bool {
	return func(m identity.KeyRef) bool {
		return m.Alg == k.Alg && (k.Kid == "" || m.Kid == k.Kid) &&
			(m.Fingerprint == k.Fingerprint && m.Fingerprint != "" || m.Unread == k.Unread && m.Unread != "")
	}
}

// algorithmChanges reports algorithms of keys old verified with that new
// no longer allows by listing jwt.algorithms. (When new lists none, it
// allows the algorithms of its keys, and a key gone is reported as such.)
func algorithmChanges(o, n config.JWT, oldKeys []identity.KeyRef) []change {
	if len(n.Algorithms) == 0 {
		return nil
	}
	l := changeList{}
	var seen []string
	for _, k := range oldKeys {
		if k.Alg == "" || slices.Contains(seen, k.Alg) {
			continue
		}
		seen = append(seen, k.Alg)
		allowed := len(o.Algorithms) == 0 || slices.Contains(o.Algorithms, k.Alg)
		if allowed && !slices.Contains(n.Algorithms, k.Alg) {
			l.add(true, "identity.jwt.algorithms", "identity.jwt.algorithms: %s removed: tokens signed with %s become anonymous", k.Alg, k.Alg)
		}
	}
	return l.out
}

// membershipChanges reports changes that make membership tokens (which
// keep a subject gray whatever the rules say) unreadable or invalid. A
// lane key_file rotated in place is not visible here.
func membershipChanges(old, new *config.Config) []change {
	o, n := old.Membership, new.Membership
	if !o.Enabled {
		return nil
	}
	l := changeList{}
	if !n.Enabled {
		l.add(true, "membership.enabled", "membership.enabled turned off: subjects gray by their membership token alone go to stable")
		return l.out
	}
	if o.Cookie != n.Cookie {
		l.add(true, "membership.cookie", "membership.cookie changed %q → %q: tokens in the old cookie are no longer read", o.Cookie, n.Cookie)
	}
	if o.Header != n.Header {
		l.add(true, "membership.header", "membership.header changed %q → %q: tokens sent back in the old header are no longer read", o.Header, n.Header)
	}
	laneKeyChanged := old.Lane.Key != new.Lane.Key || !sameFile(old.ResolvePath(old.Lane.KeyFile), new.ResolvePath(new.Lane.KeyFile))
	if laneKeyChanged && !stillVerifies(old, new) {
		l.add(true, "lane.key", "lane key changed (lane.key or lane.key_file): membership tokens signed with the old key no longer verify (keep it in lane.verify_keys or verify_key_files while they expire)")
	}
	return l.out
}

// stillVerifies reports whether new keeps old's lane key among its verify
// keys, so tokens old signed still verify.
func stillVerifies(old, new *config.Config) bool {
	if old.Lane.Key != "" {
		return slices.Contains(new.Lane.VerifyKeys, old.Lane.Key)
	}
	for _, f := range new.Lane.VerifyKeyFiles {
		if sameFile(old.ResolvePath(old.Lane.KeyFile), new.ResolvePath(f)) {
			return true
		}
	}
	return false
}

// sameFile reports whether two paths name the same file, or files with the
// same content: a config whose relative paths were made absolute (graymesh
// diff --admin) names the same key.
func sameFile(a, b string) bool {
	if a == b {
		return true
	}
	if a == "" || b == "" {
		return false
	}
	aa, errA := filepath.Abs(a)
	ab, errB := filepath.Abs(b)
	if errA == nil && errB == nil && aa == ab {
		return true
	}
	ca, errA := os.ReadFile(a)
	cb, errB := os.ReadFile(b)
	return errA == nil && errB == nil && bytes.Equal(ca, cb)
}
