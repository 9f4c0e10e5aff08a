package gray

import "github.com/graymesh/graymesh/config"

// rule is one compiled admitting rule of a release: it admits a request by
// who or what it is. Blacklist, state, membership and the percentage are
// not rules: they are the release's own evaluation order (see Decide).
type rule struct {
	// name says which rule decided, e.g. "claims[0]:tier".
	name   string
	reason Reason
	admits func(f *Facts) bool
}

// ruleKind compiles one kind of rule from a release. headerNames collects
// the request headers the kind reads, so adapters copy only those.
type ruleKind struct {
	compile func(r *config.Release, headerNames map[string]bool) ([]rule, error)
}

// ruleKinds are tried in this order within a release. A new kind is a
// file of its own (rule_<kind>.go with its table test), one line here,
// its config field and its docs (docs/config.md).
var ruleKinds = []ruleKind{
	{compileWhitelist},
	{compileClaims},
	{compileCIDRs},
	{compileHeaders},
}
