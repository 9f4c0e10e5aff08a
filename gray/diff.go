package gray

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/graymesh/graymesh/config"
)

// A config change evicts when it can move a subject who is gray now — admitted
// to a release's environment by the config in force — back to stable (or to
// another release's environment). Such a change must be declared a rollback
// (change: {rollback: true, reason: …}) to take effect; see docs/config.md.
//
// Two comparisons are made here and they differ on purpose:
//
//   - EvictionsAt reads the rules and reports every change that CAN evict
//     someone, whoever the callers are (claims, addresses and headers
//     included). It is the gate.
//   - DiffAt measures how many subjects DO move, by deciding synthetic
//     identity-only subjects under both configs. It is the report.

// Eviction is one change that can move subjects who are gray now to stable.
type Eviction struct {
	// Release is the release the change is about; "" for a change to the
	// identity, membership or lane settings, which affects every release.
	Release string
	// Rule names what changed: "percent", "salt", "whitelist",
	// "claims[0]", "schedule[2]", "order", "identity.device_cookie"…
	Rule string
	// Detail says how, e.g. `percent lowered 30 → 20 (10.00% of subjects
	// leave gray)`.
	Detail string
}

func (e *Eviction) Error() string {
	if e.Release == "" {
		return e.Detail
	}
	return "release " + e.Release + ": " + e.Detail
}

// DefaultSample is the number of synthetic subjects Diff decides when asked
// for fewer than one. 100,000 puts a share within about ±0.3 percentage
// points of the whole subject space.
const DefaultSample = 100000

// ReleaseDiff is how one release's membership changes between two configs.
type ReleaseDiff struct {
	Release string
	// ToGray is the share (0–1) of the sampled subject space that is stable
	// under the old config and admitted by this release under the new one;
	// ToStable the share admitted by this release under the old config and
	// stable under the new one.
	ToGray, ToStable float64
	// ToOther is the share admitted by this release under the old config
	// that the new one sends to a different non-stable environment.
	ToOther float64
	// Causes name the rule changes of this release (evicting or not) and
	// any whitelisted or blacklisted subject whose environment changes.
	Causes []string
}

// Evictions is EvictionsAt with the change applied now.
func Evictions(old, new *config.Config) []error {
	return EvictionsAt(old, new, time.Now())
}

// EvictionsAt returns one *Eviction per change from old to new that can move
// a currently-gray subject to stable, in release order (releases of old in
// its order, then releases new adds) and, within a release, in rule order.
// Identity, membership and lane changes, which touch every release, come
// first.
//
// at is when new is applied; a later new.EffectiveAt postpones it. The
// percentage compared is the one in force at that moment (the last schedule
// step at or before it, else percent), and every later schedule step of new
// must not lower it.
//
// Not evictions: raising a percentage, adding whitelist entries, claim
// values, wider CIDRs or header matchers, removing blacklist entries, adding
// a release behind the others, freezing and unfreezing. Killing a release is
// not an eviction either, although it moves everyone it admitted to stable:
// state: killed is the emergency stop and must never wait for a rollback
// declaration. Changes to a release that is killed in either config evict
// nobody (no one is gray through it, or everyone leaves anyway). Freezing is
// the other emergency stop and is never held back, even with membership
// off, when it sends the release's subjects to stable until unfrozen.
//
// The rules are compared as if no subject held a membership token: tokens
// can be lost (cleared cookies, services that do not send the header back),
// so a rule change that tokens would cover is still reported. Changes that
// invalidate tokens (membership turned off, its cookie or header renamed,
// the lane key changed) are evictions of their own. Token verification
// settings (keys, issuer, audience, algorithms) are not compared: they
// decide whether a token is valid, not who is gray.
func EvictionsAt(old, new *config.Config, at time.Time) []error {
	var errs []error
	for _, c := range changes(old, new, effectiveTime(new, at)) {
		if c.evicts {
			errs = append(errs, &Eviction{Release: c.release, Rule: c.rule, Detail: c.detail})
		}
	}
	return errs
}

// Diff is DiffAt with the change applied now.
func Diff(old, new *config.Config, sample int) []ReleaseDiff {
	return DiffAt(old, new, sample, time.Now())
}

// DiffAt measures, for every release of either config (releases of old in
// its order, then releases new adds), the share of subjects that move when
// new replaces old at time at (or at new.EffectiveAt, when later). It decides
// the synthetic subjects "subject-0" … "subject-<sample-1>" — verified
// subjects with no claims, headers or address — under both configs with
// New(cfg).Decide at that time, so the shares measure the salted
// percentages (schedules included), release order and states; whitelist and
// blacklist entries are decided by name and listed in Causes when their
// environment changes. sample < 1 means DefaultSample.
//
// Shares are what the rules decide, not what membership tokens keep, with
// one exception: a frozen release admits only its members, so where
// membership is enabled, subjects a frozen release's rules match under old
// count as its members, and subjects old admits to a release new freezes
// keep it. With membership off, freezing sends them to stable.
//
// Both configs must be valid (from config.Load or config.Parse); DiffAt
// panics if one does not compile.
func DiffAt(old, new *config.Config, sample int, at time.Time) []ReleaseDiff {
	if sample < 1 {
		sample = DefaultSample
	}
	te := effectiveTime(new, at)
	// Under old, the members of a frozen release are (about) the subjects
	// its rules match: decide those releases as if active.
	oe, ne := mustCompile(old, old.Membership.Enabled), mustCompile(new, false)

	var out []ReleaseDiff
	index := map[string]int{}
	for _, name := range releaseNames(old, new) {
		index[name] = len(out)
		out = append(out, ReleaseDiff{Release: name})
	}
	var global []string
	for _, c := range changes(old, new, te) {
		if c.release == "" {
			global = append(global, c.detail)
			continue
		}
		d := &out[index[c.release]]
		d.Causes = append(d.Causes, c.detail)
	}
	// Identity, membership and lane changes touch every subject: they are
	// a cause of every release that admitted anyone.
	for _, r := range old.Releases {
		if len(global) > 0 && admitsAnyone(&r, te) {
			d := &out[index[r.Name]]
			d.Causes = append(slices.Clone(global), d.Causes...)
		}
	}

	toGray := make([]int, len(out))
	toStable := make([]int, len(out))
	toOther := make([]int, len(out))
	for i := range sample {
		before, after := decideBoth(oe, ne, new, "subject-"+strconv.Itoa(i), te)
		bin, ain := admitted(before), admitted(after)
		switch {
		case bin && !ain:
			toStable[index[before.Release]]++
		case !bin && ain:
			toGray[index[after.Release]]++
		case bin && ain && before.Env != after.Env:
			toOther[index[before.Release]]++
		}
	}
	for i := range out {
		out[i].ToGray = float64(toGray[i]) / float64(sample)
		out[i].ToStable = float64(toStable[i]) / float64(sample)
		out[i].ToOther = float64(toOther[i]) / float64(sample)
	}

	for _, name := range listedSubjects(old, new) {
		before, after := decideBoth(oe, ne, new, name, te)
		if before.Env == after.Env {
			continue
		}
		release := before.Release
		if !admitted(before) {
			release = after.Release
		}
		d := &out[index[release]]
		d.Causes = append(d.Causes, fmt.Sprintf("subject %q moves %s → %s", name, before.Env, after.Env))
	}
	return out
}

// decideBoth decides subject under old's engine and new's at te. A subject
// old admits to a release that new freezes keeps it as a member when new
// has membership on (its token says so).
func decideBoth(oe, ne *Engine, new *config.Config, subject string, te time.Time) (before, after Decision) {
	req := Facts{Subject: subject, Now: te}
	before = oe.Decide(&req)
	if admitted(before) && new.Membership.Enabled {
		if r := findRelease(new, before.Release); r != nil && r.State == config.StateFrozen {
			req.Member = before.Release
		}
	}
	return before, ne.Decide(&req)
}

// change is one difference between two configs. detail is the message
// without the "release NAME: " prefix.
type change struct {
	release, rule, detail string
	evicts                bool
}

// changes compares old and new as applied at te.
func changes(old, new *config.Config, te time.Time) []change {
	var out []change
	if anyAdmits(old, te) {
		out = append(out, identityChanges(old.Identity, new.Identity)...)
		out = append(out, membershipChanges(old, new)...)
	}
	for i := range old.Releases {
		o := &old.Releases[i]
		n := findRelease(new, o.Name)
		if n == nil {
			out = append(out, change{release: o.Name, rule: "release", detail: "removed", evicts: admitsAnyone(o, te)})
			continue
		}
		out = append(out, releaseChanges(o, n, te, new.Membership.Enabled)...)
		out = append(out, orderChanges(old, new, n, te)...)
	}
	for i := range new.Releases {
		n := &new.Releases[i]
		if findRelease(old, n.Name) != nil {
			continue
		}
		out = append(out, change{release: n.Name, rule: "release", detail: "added"})
		out = append(out, orderChanges(old, new, n, te)...)
	}
	return out
}

func identityChanges(o, n config.Identity) []change {
	var out []change
	if o.JWT.SubjectClaim != n.JWT.SubjectClaim {
		out = append(out, change{rule: "identity.jwt.subject_claim", evicts: true,
			detail: fmt.Sprintf("identity.jwt.subject_claim changed %q → %q: every verified subject is re-keyed", o.JWT.SubjectClaim, n.JWT.SubjectClaim)})
	}
	if o.JWT.Cookie != "" && o.JWT.Cookie != n.JWT.Cookie {
		out = append(out, change{rule: "identity.jwt.cookie", evicts: true,
			detail: fmt.Sprintf("identity.jwt.cookie changed %q → %q: callers whose token is in that cookie become anonymous", o.JWT.Cookie, n.JWT.Cookie)})
	}
	if o.DeviceCookie != "" && o.DeviceCookie != n.DeviceCookie {
		out = append(out, change{rule: "identity.device_cookie", evicts: true,
			detail: fmt.Sprintf("identity.device_cookie changed %q → %q: anonymous callers lose their bucketing key", o.DeviceCookie, n.DeviceCookie)})
	}
	return out
}

// membershipChanges reports changes that make membership tokens (which
// keep a subject gray whatever the rules say) unreadable or invalid. A
// rotated key_file with the same path is not visible here.
func membershipChanges(old, new *config.Config) []change {
	o, n := old.Membership, new.Membership
	if !o.Enabled {
		return nil
	}
	var out []change
	add := func(rule, format string, args ...any) {
		out = append(out, change{rule: rule, detail: fmt.Sprintf(format, args...), evicts: true})
	}
	if !n.Enabled {
		add("membership.enabled", "membership.enabled turned off: subjects gray by their membership token alone go to stable")
		return out
	}
	if o.Cookie != n.Cookie {
		add("membership.cookie", "membership.cookie changed %q → %q: tokens in the old cookie are no longer read", o.Cookie, n.Cookie)
	}
	if o.Header != n.Header {
		add("membership.header", "membership.header changed %q → %q: tokens sent back in the old header are no longer read", o.Header, n.Header)
	}
	if old.Lane.Key != new.Lane.Key || old.Lane.KeyFile != new.Lane.KeyFile {
		add("lane.key", "lane key changed (lane.key or lane.key_file): membership tokens signed with the old key no longer verify")
	}
	return out
}

// releaseChanges compares two versions of one release, in rule order.
// membership says whether the new config has membership tokens on.
func releaseChanges(o, n *config.Release, te time.Time, membership bool) []change {
	var out []change
	add := func(evicts bool, rule, format string, args ...any) {
		out = append(out, change{release: n.Name, rule: rule, detail: fmt.Sprintf(format, args...), evicts: evicts})
	}

	if o.State != n.State {
		switch {
		case n.State == config.StateKilled:
			add(false, "state", "state %s → killed: everyone it admitted goes to stable (kill switch: allowed without rollback)", o.State)
		case o.State == config.StateKilled:
			add(false, "state", "state killed → %s: the release admits again", n.State)
		case n.State == config.StateFrozen && membership:
			add(false, "state", "state %s → frozen: no new subject enters %s; members keep it", o.State, n.Env)
		case n.State == config.StateFrozen:
			add(false, "state", "state %s → frozen: membership is off, so everyone it admitted goes to stable until unfrozen (emergency stop: allowed without rollback)", o.State)
		default:
			add(false, "state", "state %s → %s", o.State, n.State)
		}
	}
	if o.Env != n.Env {
		add(admitsAnyone(o, te), "env", "env changed %s → %s", o.Env, n.Env)
	}

	for _, s := range n.Blacklist {
		if !slices.Contains(o.Blacklist, s) {
			add(true, "blacklist", "blacklist gained %q", s)
		}
	}
	for _, s := range o.Blacklist {
		if !slices.Contains(n.Blacklist, s) {
			add(false, "blacklist", "blacklist entry %q removed", s)
		}
	}
	for _, s := range o.Whitelist {
		if !slices.Contains(n.Whitelist, s) {
			if slices.Contains(o.Blacklist, s) {
				add(false, "whitelist", "whitelist entry %q removed (it was blacklisted)", s)
			} else {
				add(true, "whitelist", "whitelist entry %q removed", s)
			}
		}
	}
	for _, s := range n.Whitelist {
		if !slices.Contains(o.Whitelist, s) {
			add(false, "whitelist", "whitelist gained %q", s)
		}
	}

	out = append(out, claimChanges(o, n)...)

	oldCIDRs, newCIDRs := prefixes(o.CIDRs), prefixes(n.CIDRs)
	for _, p := range oldCIDRs {
		if !covered(p, newCIDRs) {
			add(true, "cidrs", "cidrs: %s narrowed or removed", p)
		}
	}
	for _, p := range newCIDRs {
		if !covered(p, oldCIDRs) {
			add(false, "cidrs", "cidrs: %s added or widened", p)
		}
	}

	for i, m := range o.Headers {
		if !slices.ContainsFunc(n.Headers, func(w config.HeaderMatcher) bool { return headerCovers(w, m) }) {
			add(true, fmt.Sprintf("headers[%d]", i), "headers[%d] (%s) changed or removed", i, m.Name)
		}
	}
	for j, m := range n.Headers {
		if !slices.ContainsFunc(o.Headers, func(w config.HeaderMatcher) bool { return headerCovers(w, m) }) {
			add(false, fmt.Sprintf("headers[%d]", j), "headers[%d] (%s) added or widened", j, m.Name)
		}
	}

	po, pn := percentAt(o, te), percentAt(n, te)
	if o.Salt != n.Salt {
		// Nobody is bucketed in at 0%, and at 100% everyone stays in.
		add(po > 0 && pn < 100, "salt", "salt changed (%q → %q): subjects are re-bucketed", o.Salt, n.Salt)
	}
	word := "percent"
	if scheduled(o, te) || scheduled(n, te) {
		word = "percent in force"
	}
	bo, bn := config.BasisPoints(po), config.BasisPoints(pn)
	switch {
	case bn < bo && o.Salt == n.Salt:
		add(true, "percent", "%s lowered %s → %s (%.2f%% of subjects leave %s)", word, pct(po), pct(pn), float64(bo-bn)/100, o.Env)
	case bn < bo:
		add(true, "percent", "%s lowered %s → %s", word, pct(po), pct(pn))
	case bn > bo:
		add(false, "percent", "%s raised %s → %s", word, pct(po), pct(pn))
	}
	level := pn
	for i, st := range n.Schedule {
		if !st.At.After(te) {
			continue
		}
		at := st.At.UTC().Format(time.RFC3339)
		rule := fmt.Sprintf("schedule[%d]", i)
		kept := slices.ContainsFunc(o.Schedule, sameStep(st))
		switch {
		case st.Percent < level:
			// A step the config in force already had, from no higher a
			// level, was accepted with it; only a new drop evicts.
			if !kept || levelBefore(o, st.At) < level {
				add(true, rule, "%s lowers percent %s → %s at %s", rule, pct(level), pct(st.Percent), at)
			}
		case st.Percent > level && !kept:
			add(false, rule, "%s raises percent %s → %s at %s", rule, pct(level), pct(st.Percent), at)
		}
		level = st.Percent
	}
	for _, st := range o.Schedule {
		if st.At.After(te) && !slices.ContainsFunc(n.Schedule, sameStep(st)) {
			add(false, "schedule", "schedule step %s at %s removed", pct(st.Percent), st.At.UTC().Format(time.RFC3339))
		}
	}

	switch to, tn := o.TrafficPercent, n.TrafficPercent; {
	case config.BasisPoints(tn) < config.BasisPoints(to):
		add(true, "traffic_percent", "traffic_percent lowered %s → %s (%.2f%% of requests without identity leave %s)",
			pct(to), pct(tn), float64(config.BasisPoints(to)-config.BasisPoints(tn))/100, o.Env)
	case config.BasisPoints(tn) > config.BasisPoints(to):
		add(false, "traffic_percent", "traffic_percent raised %s → %s", pct(to), pct(tn))
	}

	// Nobody is gray through a release killed now, and killing is the
	// emergency stop: neither case asks for a rollback declaration.
	if o.State == config.StateKilled || n.State == config.StateKilled {
		for i := range out {
			out[i].evicts = false
		}
	}
	return out
}

// claimChanges compares claim matchers as the set of (claim, value) pairs
// they admit: matchers are OR-ed, so moving a value to another matcher of
// the same claim changes nobody.
func claimChanges(o, n *config.Release) []change {
	var out []change
	add := func(evicts bool, rule, format string, args ...any) {
		out = append(out, change{release: n.Name, rule: rule, detail: fmt.Sprintf(format, args...), evicts: evicts})
	}
	oldPairs, newPairs := claimPairs(o.Claims), claimPairs(n.Claims)
	for i, m := range o.Claims {
		rule := fmt.Sprintf("claims[%d]", i)
		if newPairs[m.Claim] == nil {
			add(true, rule, "claims[%d] (%s) removed", i, m.Claim)
			continue
		}
		for _, v := range m.In {
			if !newPairs[m.Claim][v] {
				add(true, rule, "claims[%d] (%s) lost value %q", i, m.Claim, v)
			}
		}
	}
	for j, m := range n.Claims {
		rule := fmt.Sprintf("claims[%d]", j)
		if oldPairs[m.Claim] == nil {
			add(false, rule, "claims[%d] (%s) added", j, m.Claim)
			continue
		}
		for _, v := range m.In {
			if !oldPairs[m.Claim][v] {
				add(false, rule, "claims[%d] (%s) gained value %q", j, m.Claim, v)
			}
		}
	}
	return out
}

// orderChanges reports releases of new that n now precedes although they
// did not in old, when their environments differ: a subject both admit
// moved from the later release's environment to n's.
func orderChanges(old, new *config.Config, n *config.Release, te time.Time) []change {
	if !admitsAnyone(n, te) {
		return nil
	}
	var out []change
	on := findRelease(old, n.Name)
	after := false
	for i := range new.Releases {
		m := &new.Releases[i]
		if m.Name == n.Name {
			after = true
			continue
		}
		if !after {
			continue
		}
		om := findRelease(old, m.Name)
		if om == nil || !admitsAnyone(om, te) || om.Env == n.Env {
			continue
		}
		verb := "added"
		switch {
		case on != nil && on.State == config.StateKilled:
			verb = "reactivated"
		case on != nil && releaseIndex(old, on.Name) < releaseIndex(old, m.Name):
			continue // n already came first
		case on != nil:
			verb = "moved"
		}
		out = append(out, change{release: n.Name, rule: "order", evicts: true,
			detail: fmt.Sprintf("%s before %s, whose env is %s: subjects both admit move from %s to %s", verb, m.Name, om.Env, om.Env, n.Env)})
	}
	return out
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

// prefixes parses CIDRs the way New does; an unparsable one is skipped.
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

// percentAt is the percentage r admits at t: that of the last schedule step
// at or before t, else r.Percent. Steps are in time order (validated).
func percentAt(r *config.Release, t time.Time) float64 {
	p := r.Percent
	for _, st := range r.Schedule {
		if !st.At.After(t) {
			p = st.Percent
		}
	}
	return p
}

// sameStep matches a step at the same instant with the same percentage.
func sameStep(a config.Step) func(config.Step) bool {
	return func(b config.Step) bool { return a.At.Equal(b.At) && a.Percent == b.Percent }
}

// levelBefore is the percentage r admits just before t.
func levelBefore(r *config.Release, t time.Time) float64 {
	p := r.Percent
	for _, st := range r.Schedule {
		if st.At.Before(t) {
			p = st.Percent
		}
	}
	return p
}

// scheduled reports whether a schedule step sets r's percentage at t.
func scheduled(r *config.Release, t time.Time) bool {
	return len(r.Schedule) > 0 && !r.Schedule[0].At.After(t)
}

// admitsAnyone reports whether r can admit a caller at t.
func admitsAnyone(r *config.Release, t time.Time) bool {
	if r.State == config.StateKilled {
		return false
	}
	return len(r.Whitelist)+len(r.Claims)+len(r.CIDRs)+len(r.Headers) > 0 ||
		percentAt(r, t) > 0 || r.TrafficPercent > 0
}

func anyAdmits(cfg *config.Config, t time.Time) bool {
	return slices.ContainsFunc(cfg.Releases, func(r config.Release) bool { return admitsAnyone(&r, t) })
}

// effectiveTime is when new takes over from old if applied at at.
func effectiveTime(new *config.Config, at time.Time) time.Time {
	if new.EffectiveAt != nil && new.EffectiveAt.After(at) {
		return *new.EffectiveAt
	}
	return at
}

// mustCompile compiles cfg, with its frozen releases decided as active
// when frozenActive is set.
func mustCompile(cfg *config.Config, frozenActive bool) *Engine {
	c := cfg
	if frozenActive {
		copied := *cfg
		copied.Releases = slices.Clone(cfg.Releases)
		for i := range copied.Releases {
			if copied.Releases[i].State == config.StateFrozen {
				copied.Releases[i].State = config.StateActive
			}
		}
		c = &copied
	}
	e, err := New(c)
	if err != nil {
		panic(fmt.Sprintf("gray: diff of a config that does not compile: %v", err))
	}
	return e
}

func admitted(d Decision) bool { return d.Env != "" && d.Env != config.Stable }

func findRelease(cfg *config.Config, name string) *config.Release {
	if i := releaseIndex(cfg, name); i >= 0 {
		return &cfg.Releases[i]
	}
	return nil
}

func releaseIndex(cfg *config.Config, name string) int {
	return slices.IndexFunc(cfg.Releases, func(r config.Release) bool { return r.Name == name })
}

// releaseNames lists the releases of old in order, then those new adds.
func releaseNames(old, new *config.Config) []string {
	var names []string
	for _, cfg := range []*config.Config{old, new} {
		for _, r := range cfg.Releases {
			if !slices.Contains(names, r.Name) {
				names = append(names, r.Name)
			}
		}
	}
	return names
}

// listedSubjects are the subjects named by a whitelist or blacklist of
// either config, in config order, each once.
func listedSubjects(old, new *config.Config) []string {
	var names []string
	seen := map[string]bool{}
	for _, cfg := range []*config.Config{old, new} {
		for _, r := range cfg.Releases {
			for _, s := range slices.Concat(r.Whitelist, r.Blacklist) {
				if !seen[s] {
					seen[s] = true
					names = append(names, s)
				}
			}
		}
	}
	return names
}

// pct formats a percentage without trailing zeros: 30, 33.33, 0.5.
func pct(p float64) string { return strconv.FormatFloat(p, 'f', -1, 64) }
