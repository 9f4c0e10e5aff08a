// Package gate decides which config changes evict: a change that can move a
// subject who is gray now back to stable (or to another release's
// environment) is refused unless it declares a rollback. It also measures
// how many subjects a change moves (DiffAt) and puts both in one Report,
// as graymesh diff and the admin API show them.
//
// Package gray decides requests under one config; this package compares two
// configs. Every refusal names one rule of the table below, and the
// GrayRelease CRD's CEL validation messages (kube/v1alpha1) name the same
// rules, so a refusal reads the same whether the API server or graymesh
// gives it.
package gate

import "slices"

// Rule is the ID of one eviction rule: what a refusal names, in its
// message as "rule ID: …" and in Eviction.Rule.
type Rule string

// The eviction rules, one per kind of change that can move gray subjects.
const (
	// Rules of one release.
	ReleaseRemoved        Rule = "release-removed"
	EnvChanged            Rule = "env-changed"
	BlacklistAdded        Rule = "blacklist-added"
	WhitelistRemoved      Rule = "whitelist-removed"
	ClaimsNarrowed        Rule = "claims-narrowed"
	CIDRsNarrowed         Rule = "cidrs-narrowed"
	HeadersNarrowed       Rule = "headers-narrowed"
	SaltChanged           Rule = "salt-changed"
	PercentLowered        Rule = "percent-lowered"
	ScheduleLowered       Rule = "schedule-lowered"
	TrafficPercentLowered Rule = "traffic-percent-lowered"
	OrderChanged          Rule = "order-changed"

	// Rules of identity, which touch every release.
	TokenCookieChanged   Rule = "token-cookie-changed"
	DeviceCookieChanged  Rule = "device-cookie-changed"
	IssuerRemoved        Rule = "issuer-removed"
	SubjectClaimChanged  Rule = "subject-claim-changed"
	SubjectPrefixChanged Rule = "subject-prefix-changed"
	ClaimSourceChanged   Rule = "claim-source-changed"
	IssuerChanged        Rule = "issuer-changed"
	AudienceChanged      Rule = "audience-changed"
	KeySourceChanged     Rule = "key-source-changed"
	AlgorithmRemoved     Rule = "algorithm-removed"
	KeyRemoved           Rule = "key-removed"
	KeyReplaced          Rule = "key-replaced"
	UnreadKeysDropped    Rule = "unread-keys-dropped"

	// Rules of membership tokens, which touch every release.
	MembershipDisabled      Rule = "membership-disabled"
	MembershipCookieChanged Rule = "membership-cookie-changed"
	MembershipHeaderChanged Rule = "membership-header-changed"
	LaneKeyChanged          Rule = "lane-key-changed"
)

// RuleInfo is one row of the rule table.
type RuleInfo struct {
	ID Rule
	// Refuses says which change the rule refuses, for a person.
	Refuses string
	// CEL is set when the GrayRelease CRD's CEL validation checks the
	// rule too, so the API server refuses the object before graymesh sees
	// it. CEL sees one object's old and new spec only: rules that need
	// other releases, the clock (a schedule's percentage in force), the
	// identity and membership settings, or set coverage (CIDRs, header
	// matchers) are graymesh's alone.
	CEL bool
}

// rules is the table: every Rule once, identity and membership first, then
// the rules of a release, as refusals are listed.
var rules = []RuleInfo{
	{TokenCookieChanged, "identity.jwt.cookie renamed: callers whose token is in the old cookie become anonymous", false},
	{DeviceCookieChanged, "identity.device_cookie renamed or removed: anonymous callers lose their bucketing key", false},
	{IssuerRemoved, "an issuer with keys removed: tokens it issued become anonymous", false},
	{SubjectClaimChanged, "subject_claim changed: every verified subject is re-keyed", false},
	{SubjectPrefixChanged, "subject_prefix changed: every verified subject is re-keyed", false},
	{ClaimSourceChanged, "a claim read from another token claim: callers admitted by a claim rule on it may leave", false},
	{IssuerChanged, "issuer set or changed: tokens with another iss become anonymous", false},
	{AudienceChanged, "audience set, changed or dropped: tokens naming only an old audience become anonymous", false},
	{KeySourceChanged, "keys fetched from elsewhere (jwks_uri, discovery) or no longer fetched", false},
	{AlgorithmRemoved, "an algorithm old keys use no longer allowed", false},
	{KeyRemoved, "a verification key removed", false},
	{KeyReplaced, "a verification key replaced by other material under the same kid", false},
	{UnreadKeysDropped, "a key file that cannot be read (so cannot be compared) no longer used", false},
	{MembershipDisabled, "membership turned off: subjects gray by their membership token alone go to stable", false},
	{MembershipCookieChanged, "membership.cookie renamed: tokens in the old cookie are no longer read", false},
	{MembershipHeaderChanged, "membership.header renamed: tokens sent back in the old header are no longer read", false},
	{LaneKeyChanged, "the lane key changed without the old one kept as a verify key: membership tokens no longer verify", false},
	{ReleaseRemoved, "a release that admits anyone removed", false},
	{EnvChanged, "a release's env changed: its gray subjects move", true},
	{BlacklistAdded, "a blacklist entry added", true},
	{WhitelistRemoved, "a whitelist entry removed that the old config does not also blacklist", true},
	{ClaimsNarrowed, "a claim matcher removed or a value dropped from every matcher of its claim", false},
	{CIDRsNarrowed, "an address range no longer covered by the new cidrs", false},
	{HeadersNarrowed, "a header matcher no longer covered by a new one", false},
	{SaltChanged, "salt changed while 0 < percent < 100: subjects are re-bucketed", true},
	{PercentLowered, "the percentage in force lowered (percent, or the schedule step in force)", true},
	{ScheduleLowered, "a new schedule step that lowers the percentage", false},
	{TrafficPercentLowered, "traffic_percent lowered: requests without identity leave the release's env", false},
	{OrderChanged, "a release put before another one that admits the same subjects to another env", false},
}

// Rules returns the rule table.
func Rules() []RuleInfo { return slices.Clone(rules) }
