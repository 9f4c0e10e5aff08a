package gate

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/identity"
)

// Identity, membership and lane changes touch every release: a caller whose
// token no longer verifies, or whose subject is read from another claim, is
// someone else (or anonymous) under the new config, whatever the rules say.

// identityChanges compares how callers are identified: where the token and
// the device id are read, and, issuer by issuer, which tokens verify and
// how they name the subject.
func identityChanges(old, new *config.Config) []change {
	o, n := old.Identity, new.Identity
	l := changeList{}
	if o.JWT.Cookie != "" && o.JWT.Cookie != n.JWT.Cookie {
		l.refuse(TokenCookieChanged, "identity.jwt.cookie", "identity.jwt.cookie changed %q → %q: callers whose token is in that cookie become anonymous", o.JWT.Cookie, n.JWT.Cookie)
	}
	if o.DeviceCookie != "" && o.DeviceCookie != n.DeviceCookie {
		l.refuse(DeviceCookieChanged, "identity.device_cookie", "identity.device_cookie changed %q → %q: anonymous callers lose their bucketing key", o.DeviceCookie, n.DeviceCookie)
	}
	oldP, newP := o.JWT.Providers(), n.JWT.Providers()
	// One issuer on each side is compared as one, whatever its iss (a
	// changed issuer is reported as such); several are paired by issuer.
	single := len(oldP) == 1 && len(newP) == 1
	paired := map[int]bool{}
	for i, op := range oldP {
		j := 0
		if !single {
			j = slices.IndexFunc(newP, func(np config.Provider) bool { return np.Issuer == op.Issuer })
		}
		if j < 0 {
			if op.HasKeySource() {
				field := o.JWT.ProviderField(i)
				l.refuse(IssuerRemoved, field, "%s (issuer %q) removed: tokens it issued become anonymous", field, op.Issuer)
			}
			continue
		}
		paired[j] = true
		l.out = append(l.out, issuerChanges(old, new, o.JWT.ProviderField(i), n.JWT.ProviderField(j), op, newP[j])...)
	}
	for j, np := range newP {
		if !paired[j] && np.HasKeySource() {
			field := n.JWT.ProviderField(j)
			l.note(field, "%s (issuer %q) added", field, np.Issuer)
		}
	}
	return l.out
}

// issuerChanges compares one issuer in the old and the new config; of and
// nf name it in each.
func issuerChanges(old, new *config.Config, of, nf string, o, n config.Provider) []change {
	l := changeList{}
	if o.SubjectClaim != n.SubjectClaim {
		l.refuse(SubjectClaimChanged, nf+".subject_claim", "%s.subject_claim changed %q → %q: every verified subject is re-keyed", nf, o.SubjectClaim, n.SubjectClaim)
	}
	if o.SubjectPrefix != n.SubjectPrefix {
		l.refuse(SubjectPrefixChanged, nf+".subject_prefix", "%s.subject_prefix changed %q → %q: every verified subject is re-keyed", nf, o.SubjectPrefix, n.SubjectPrefix)
	}
	for _, name := range slices.Sorted(maps.Keys(mergedKeys(o.Claims, n.Claims))) {
		if from, to := o.Claims[name], n.Claims[name]; from != to {
			l.refuse(ClaimSourceChanged, nf+".claims", "%s.claims: %q read from %s, now from %s: callers admitted by a claim rule on it may leave", nf, name, claimSource(name, from), claimSource(name, to))
		}
	}
	switch {
	case n.Issuer == "" || o.Issuer == n.Issuer:
		// Unset, a token's iss is not checked: nobody loses.
	case o.Issuer == "":
		l.refuse(IssuerChanged, nf+".issuer", "%s.issuer set to %q: tokens with another or no iss become anonymous", nf, n.Issuer)
	default:
		l.refuse(IssuerChanged, nf+".issuer", "%s.issuer changed %q → %q: tokens with iss %q become anonymous", nf, o.Issuer, n.Issuer, o.Issuer)
	}
	l.out = append(l.out, audienceChanges(nf, o, n)...)
	l.out = append(l.out, sourceChanges(nf, o, n)...)
	l.out = append(l.out, keyChanges(old, new, of, nf, o, n)...)
	return l.out
}

func mergedKeys(a, b map[string]string) map[string]string {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, b)
	return out
}

func claimSource(name, from string) string {
	if from == "" {
		return fmt.Sprintf("the token's own %q claim", name)
	}
	return fmt.Sprintf("%q", from)
}

// audienceChanges: a token's aud must name one of the audiences; an
// audience no longer listed loses the tokens that name it alone.
func audienceChanges(nf string, o, n config.Provider) []change {
	l := changeList{}
	oa, na := o.AllAudiences(), n.AllAudiences()
	field := nf + ".audience"
	if len(n.Audiences) > 0 {
		field = nf + ".audiences"
	}
	switch {
	case len(na) == 0:
	case len(oa) == 0:
		l.refuse(AudienceChanged, field, "%s set to %q: tokens with another or no aud become anonymous", field, strings.Join(na, ", "))
	case len(oa) == 1 && len(na) == 1 && oa[0] != na[0]:
		l.refuse(AudienceChanged, field, "%s changed %q → %q: tokens with aud %q become anonymous", field, oa[0], na[0], oa[0])
	default:
		for _, a := range oa {
			if !slices.Contains(na, a) {
				l.refuse(AudienceChanged, field, "%s: %q removed: tokens whose aud names only %q become anonymous", field, a, a)
			}
		}
	}
	return l.out
}

// sourceChanges compares where keys are fetched from. Fetched keys are
// known only at runtime, so pointing an issuer elsewhere (another
// jwks_uri, discovery on or off) cannot be shown to keep every key: it is
// reported as an eviction. So is no longer allowing an algorithm of a
// fetched set.
func sourceChanges(nf string, o, n config.Provider) []change {
	l := changeList{}
	os, ns := keySource(o), keySource(n)
	switch {
	case os == "" || os == ns:
	case ns == "":
		l.refuse(KeySourceChanged, nf+".jwks_uri", "%s: keys are no longer fetched from %s: tokens signed with them become anonymous", nf, os)
	default:
		l.refuse(KeySourceChanged, nf+".jwks_uri", "%s: keys fetched from %s, now from %s: tokens signed with keys only the first publishes become anonymous", nf, os, ns)
	}
	if os == "" || os != ns || len(n.Algorithms) == 0 {
		return l.out
	}
	var lost []string
	for _, a := range config.SupportedAlgorithms {
		was := !strings.HasPrefix(a, "HS") && (len(o.Algorithms) == 0 || slices.Contains(o.Algorithms, a))
		if was && !slices.Contains(n.Algorithms, a) {
			lost = append(lost, a)
		}
	}
	if len(lost) > 0 {
		l.refuse(AlgorithmRemoved, nf+".algorithms", "%s.algorithms: %s no longer allowed: tokens signed with them by keys from %s become anonymous", nf, strings.Join(lost, ", "), os)
	}
	return l.out
}

// keySource names where an issuer's keys are fetched from ("" when none).
func keySource(p config.Provider) string {
	switch {
	case p.Discovery:
		return "the discovery document of " + p.Issuer
	case p.JWKSURI != "":
		return p.JWKSURI
	}
	return ""
}

// keyChanges compares the verification keys from the config and files. A
// token verifies under new when new holds a key it reaches — by its kid,
// or by its algorithm when the key has no kid — with the same material,
// and allows its algorithm. Keys are compared by the material in their
// files now (identity.ConfiguredKeys): a key file moved or re-encoded is
// the same key; a file replaced in place is not visible here, as both
// configs read it.
func keyChanges(old, new *config.Config, of, nf string, o, n config.Provider) []change {
	oldKeys := identity.ConfiguredKeys(o, of, old.ResolvePath)
	newKeys := identity.ConfiguredKeys(n, nf, new.ResolvePath)
	l := changeList{}
	for _, k := range oldKeys {
		if k.Unread != "" && k.Alg == "" { // a JWKS file that does not read
			if !slices.ContainsFunc(newKeys, func(m identity.KeyRef) bool { return m.Unread == k.Unread }) {
				l.refuse(UnreadKeysDropped, k.Field, "%s: %s could not be read to compare its keys, and the new config no longer uses it: tokens signed with its keys may become anonymous", k.Field, k.Unread)
			}
			continue
		}
		if slices.ContainsFunc(newKeys, reaches(k)) {
			continue
		}
		i := slices.IndexFunc(newKeys, func(m identity.KeyRef) bool { return k.Kid != "" && m.Kid == k.Kid })
		if i < 0 {
			l.refuse(KeyRemoved, k.Field, "%s: %s removed: tokens signed with it become anonymous", k.Field, k.Name())
		} else {
			l.refuse(KeyReplaced, k.Field, "%s: %s replaced by a different key (%s): tokens signed with the old key become anonymous", k.Field, k.Name(), newKeys[i].Alg)
		}
	}
	for _, k := range newKeys {
		if k.Unread == "" && !slices.ContainsFunc(oldKeys, reaches(k)) {
			l.note(k.Field, "%s: %s added", k.Field, k.Name())
		}
	}
	return append(l.out, algorithmChanges(nf, o, n, oldKeys)...)
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
func algorithmChanges(nf string, o, n config.Provider, oldKeys []identity.KeyRef) []change {
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
			l.refuse(AlgorithmRemoved, nf+".algorithms", "%s.algorithms: %s removed: tokens signed with %s become anonymous", nf, k.Alg, k.Alg)
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
		l.refuse(MembershipDisabled, "membership.enabled", "membership.enabled turned off: subjects gray by their membership token alone go to stable")
		return l.out
	}
	if o.Cookie != n.Cookie {
		l.refuse(MembershipCookieChanged, "membership.cookie", "membership.cookie changed %q → %q: tokens in the old cookie are no longer read", o.Cookie, n.Cookie)
	}
	if o.Header != n.Header {
		l.refuse(MembershipHeaderChanged, "membership.header", "membership.header changed %q → %q: tokens sent back in the old header are no longer read", o.Header, n.Header)
	}
	laneKeyChanged := old.Lane.Key != new.Lane.Key || !sameFile(old.ResolvePath(old.Lane.KeyFile), new.ResolvePath(new.Lane.KeyFile))
	if laneKeyChanged && !stillVerifies(old, new) {
		l.refuse(LaneKeyChanged, "lane.key", "lane key changed (lane.key or lane.key_file): membership tokens signed with the old key no longer verify (keep it in lane.verify_keys or verify_key_files while they expire)")
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
