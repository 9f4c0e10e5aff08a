package gray

import "github.com/graymesh/graymesh/internal/contract/config"

// rule is one compiled admitting rule of a release: it admits a request by
// who or what it is. Blacklist, state, membership and the percentage are
// not rules: they are the release's own evaluation order (see Decide).
type rule struct {
	// name says which rule decided, e.g. "claims[0]:tier".
	name   string
	reason Reason
	// Exactly one kind is set. The kinds are called directly, not through
	// a func value or an interface: an indirect call would make the
	// request's Facts escape to the heap on every decision.
	whitelist *whitelistRule
	claim     *claimRule
	cidrs     *cidrRule
	header    *headerRule
}

func (r *rule) admits(f *Facts) bool {
	switch {
	case r.whitelist != nil:
		return r.whitelist.admits(f)
	case r.claim != nil:
		return r.claim.admits(f)
	case r.cidrs != nil:
		return r.cidrs.admits(f)
	case r.header != nil:
		return r.header.admits(f)
	}
	return false
}

// ruleKind compiles one kind of rule from a release. headerNames collects
// the request headers the kind reads, so adapters copy only those.
type ruleKind struct {
	compile func(r *config.Release, headerNames map[string]bool) ([]rule, error)
}

// ruleKinds are tried in this order within a release. A new kind is a
// file of its own (rule_<kind>.go with its table test), one line here, a
// field and a case in rule, its config field and its docs
// (docs/config.md).
var ruleKinds = []ruleKind{
	{compileWhitelist},
	{compileClaims},
	{compileCIDRs},
	{compileHeaders},
}
