package gate

// Rule coverage: a change to a release's claims, CIDRs or header matchers
// evicts when some caller the old rules admit is admitted by none of the new
// ones. Each kind is compared as the set of callers it admits, not as text.

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// claimChanges compares claim matchers as the set of (claim, value) pairs
// they admit: matchers are OR-ed, so moving a value to another matcher of
// the same claim changes nobody.
func claimChanges(o, n *config.Release) []change {
	l := changeList{release: n.Name}
	oldPairs, newPairs := claimPairs(o.Claims), claimPairs(n.Claims)
	for i, m := range o.Claims {
		field := fmt.Sprintf("claims[%d]", i)
		if newPairs[m.Claim] == nil {
			l.refuse(ClaimsNarrowed, field, "claims[%d] (%s) removed", i, m.Claim)
			continue
		}
		for _, v := range m.In {
			if !newPairs[m.Claim][v] {
				l.refuse(ClaimsNarrowed, field, "claims[%d] (%s) lost value %q", i, m.Claim, v)
			}
		}
	}
	for j, m := range n.Claims {
		field := fmt.Sprintf("claims[%d]", j)
		if oldPairs[m.Claim] == nil {
			l.note(field, "claims[%d] (%s) added", j, m.Claim)
			continue
		}
		for _, v := range m.In {
			if !oldPairs[m.Claim][v] {
				l.note(field, "claims[%d] (%s) gained value %q", j, m.Claim, v)
			}
		}
	}
	return l.out
}

// cidrChanges reports every old range the new ranges do not cover, and
// every new range the old ones did not.
func cidrChanges(o, n *config.Release) []change {
	l := changeList{release: n.Name}
	oldCIDRs, newCIDRs := prefixes(o.CIDRs), prefixes(n.CIDRs)
	for _, p := range oldCIDRs {
		if !covered(p, newCIDRs) {
			l.refuse(CIDRsNarrowed, "cidrs", "cidrs: %s narrowed or removed", p)
		}
	}
	for _, p := range newCIDRs {
		if !covered(p, oldCIDRs) {
			l.note("cidrs", "cidrs: %s added or widened", p)
		}
	}
	return l.out
}

// headerChanges reports every old header matcher that no new one covers,
// and every new one that no old one did.
func headerChanges(o, n *config.Release) []change {
	l := changeList{release: n.Name}
	for i, m := range o.Headers {
		if !slices.ContainsFunc(n.Headers, func(w config.HeaderMatcher) bool { return headerCovers(w, m) }) {
			l.refuse(HeadersNarrowed, fmt.Sprintf("headers[%d]", i), "headers[%d] (%s) changed or removed", i, m.Name)
		}
	}
	for j, m := range n.Headers {
		if !slices.ContainsFunc(o.Headers, func(w config.HeaderMatcher) bool { return headerCovers(w, m) }) {
			l.note(fmt.Sprintf("headers[%d]", j), "headers[%d] (%s) added or widened", j, m.Name)
		}
	}
	return l.out
}

// headerCovers reports whether matcher w admits every request that m admits.
// Regular expressions are compared as text: a changed one counts as
// narrowed.
func headerCovers(w, m config.HeaderMatcher) bool {
	if w == m {
		return true
	}
	if w.Name != m.Name {
		return false
	}
	switch {
	case m.Exact != "":
		if w.Exact != "" {
			return w.Exact == m.Exact
		}
		if w.Prefix != "" {
			return strings.HasPrefix(m.Exact, w.Prefix)
		}
		re, err := regexp.Compile(w.Regex)
		return err == nil && re.MatchString(m.Exact)
	case m.Prefix != "":
		return w.Prefix != "" && strings.HasPrefix(m.Prefix, w.Prefix)
	}
	return false
}

// covered reports whether the union of by contains every address of p: one
// prefix containing p, or both halves of p covered.
func covered(p netip.Prefix, by []netip.Prefix) bool {
	inside := false
	for _, q := range by {
		if q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
			return true
		}
		if q.Bits() > p.Bits() && p.Contains(q.Addr()) {
			inside = true
		}
	}
	// Split only where a narrower prefix could help; otherwise the half
	// without one fails at once, which bounds the recursion.
	if !inside || p.Bits() >= p.Addr().BitLen() {
		return false
	}
	b := p.Addr().AsSlice()
	lo := netip.PrefixFrom(p.Addr(), p.Bits()+1)
	b[p.Bits()/8] |= 0x80 >> (p.Bits() % 8)
	hiAddr, _ := netip.AddrFromSlice(b)
	return covered(lo, by) && covered(netip.PrefixFrom(hiAddr, p.Bits()+1), by)
}

// prefixes parses CIDRs the way gray.New does; an unparsable one is
// skipped.
func prefixes(cidrs []string) []netip.Prefix {
	var out []netip.Prefix
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(c); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

func claimPairs(ms []config.ClaimMatcher) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, m := range ms {
		if out[m.Claim] == nil {
			out[m.Claim] = map[string]bool{}
		}
		for _, v := range m.In {
			out[m.Claim][v] = true
		}
	}
	return out
}
