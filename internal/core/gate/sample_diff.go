package gate

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/gray"
)

// DefaultSample is the number of synthetic subjects Diff decides when asked
// for fewer than one. 100,000 puts a share within about ±0.3 percentage
// points of the whole subject space.
const DefaultSample = 100000

// ReleaseDiff is how one release's membership changes between two configs.
type ReleaseDiff struct {
	Release string `json:"release"`
	// ToGray is the share (0–1) of the sampled subject space that is stable
	// under the old config and admitted by this release under the new one;
	// ToStable the share admitted by this release under the old config and
	// stable under the new one.
	ToGray   float64 `json:"to_gray"`
	ToStable float64 `json:"to_stable"`
	// ToOther is the share admitted by this release under the old config
	// that the new one sends to a different non-stable environment.
	ToOther float64 `json:"to_other_env"`
	// Causes name the rule changes of this release (evicting or not) and
	// any whitelisted or blacklisted subject whose environment changes.
	Causes []string `json:"causes"`
	// Leaving names the whitelisted or blacklisted subjects this release
	// admitted under the old config that leave its environment.
	Leaving []string `json:"leaving,omitempty"`
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
// gray.New(cfg).Decide at that time, so the shares measure the salted
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
	te := new.TakesEffect(at)
	s := sampling{
		new: new, te: te, index: map[string]int{},
		// Under old, the members of a frozen release are (about) the
		// subjects its rules match: decide those releases as if active.
		oe: mustCompile(old, old.Membership.Enabled), ne: mustCompile(new, false),
	}
	for _, name := range releaseNames(old, new) {
		s.index[name] = len(s.out)
		s.out = append(s.out, ReleaseDiff{Release: name})
	}
	s.addCauses(old, new)
	s.measure(sample)
	s.addNamedMoves(old, new)
	return s.out
}

// sampling is one DiffAt in progress: the two engines and the report per
// release, indexed by name.
type sampling struct {
	oe, ne *gray.Engine
	new    *config.Config
	te     time.Time
	out    []ReleaseDiff
	index  map[string]int
}

// addCauses lists every rule change under its release.
func (s *sampling) addCauses(old, new *config.Config) {
	var global []string
	for _, c := range changes(old, new, s.te) {
		if c.release == "" {
			global = append(global, c.detail)
			continue
		}
		d := &s.out[s.index[c.release]]
		d.Causes = append(d.Causes, c.detail)
	}
	// Identity, membership and lane changes touch every subject: they are
	// a cause of every release that admitted anyone.
	for _, r := range old.Releases {
		if len(global) > 0 && r.AdmitsAt(s.te) {
			d := &s.out[s.index[r.Name]]
			d.Causes = append(slices.Clone(global), d.Causes...)
		}
	}
}

// measure decides the synthetic subjects under both configs and sets the
// shares moving each way.
func (s *sampling) measure(sample int) {
	toGray := make([]int, len(s.out))
	toStable := make([]int, len(s.out))
	toOther := make([]int, len(s.out))
	for i := range sample {
		before, after := s.decideBoth("subject-" + strconv.Itoa(i))
		bin, ain := admitted(before), admitted(after)
		switch {
		case bin && !ain:
			toStable[s.index[before.Release]]++
		case !bin && ain:
			toGray[s.index[after.Release]]++
		case bin && ain && before.Env != after.Env:
			toOther[s.index[before.Release]]++
		}
	}
	for i := range s.out {
		s.out[i].ToGray = float64(toGray[i]) / float64(sample)
		s.out[i].ToStable = float64(toStable[i]) / float64(sample)
		s.out[i].ToOther = float64(toOther[i]) / float64(sample)
	}
}

// addNamedMoves lists every whitelisted or blacklisted subject whose
// environment changes.
func (s *sampling) addNamedMoves(old, new *config.Config) {
	for _, name := range listedSubjects(old, new) {
		before, after := s.decideBoth(name)
		if before.Env == after.Env {
			continue
		}
		release := before.Release
		if !admitted(before) {
			release = after.Release
		}
		d := &s.out[s.index[release]]
		d.Causes = append(d.Causes, fmt.Sprintf("subject %q moves %s → %s", name, before.Env, after.Env))
		if admitted(before) {
			d.Leaving = append(d.Leaving, name)
		}
	}
}

// decideBoth decides subject under old's engine and new's at te. A subject
// old admits to a release that new freezes keeps it as a member when new
// has membership on (its token says so).
func (s *sampling) decideBoth(subject string) (before, after gray.Decision) {
	req := gray.Facts{Subject: subject, Now: s.te}
	before = s.oe.Decide(&req)
	if admitted(before) && s.new.Membership.Enabled {
		if r := findRelease(s.new, before.Release); r != nil && r.State == config.StateFrozen {
			req.Member = before.Release
		}
	}
	return before, s.ne.Decide(&req)
}

// mustCompile compiles cfg, with its frozen releases decided as active
// when frozenActive is set.
func mustCompile(cfg *config.Config, frozenActive bool) *gray.Engine {
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
	e, err := gray.New(c)
	if err != nil {
		panic(fmt.Sprintf("gate: diff of a config that does not compile: %v", err))
	}
	return e
}

func admitted(d gray.Decision) bool { return d.Env != "" && d.Env != config.Stable }

// releaseNames lists the releases of old in order, then those new adds.
func releaseNames(old, new *config.Config) []string {
	return eachOnce(old, new, func(r *config.Release) []string { return []string{r.Name} })
}

// listedSubjects are the subjects named by a whitelist or blacklist of
// either config, in config order, each once.
func listedSubjects(old, new *config.Config) []string {
	return eachOnce(old, new, func(r *config.Release) []string { return slices.Concat(r.Whitelist, r.Blacklist) })
}

// eachOnce lists the names of returns for the releases of old, then of
// new, in order, each name once.
func eachOnce(old, new *config.Config, of func(*config.Release) []string) []string {
	var names []string
	seen := map[string]bool{}
	for _, cfg := range []*config.Config{old, new} {
		for i := range cfg.Releases {
			for _, s := range of(&cfg.Releases[i]) {
				if !seen[s] {
					seen[s] = true
					names = append(names, s)
				}
			}
		}
	}
	return names
}
