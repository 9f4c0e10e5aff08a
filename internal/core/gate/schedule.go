package gate

// Schedule maths: the percentage a release admits at an instant, and how a
// change of percent, salt or schedule moves subjects bucketed by it.

import (
	"fmt"
	"slices"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// percentChanges compares the salt and the percentage in force at te.
func percentChanges(o, n *config.Release, te time.Time) []change {
	l := changeList{release: n.Name}
	po, pn := o.PercentAt(te), n.PercentAt(te)
	if o.Salt != n.Salt {
		// Nobody is bucketed in at 0%, and at 100% everyone stays in.
		l.refuseIf(po > 0 && pn < 100, SaltChanged, "salt", "salt changed (%q → %q): subjects are re-bucketed", o.Salt, n.Salt)
	}
	word := "percent"
	if o.StepAt(te) >= 0 || n.StepAt(te) >= 0 {
		word = "percent in force"
	}
	bo, bn := config.BasisPoints(po), config.BasisPoints(pn)
	switch {
	case bn < bo && o.Salt == n.Salt:
		l.refuse(PercentLowered, "percent", "%s lowered %s → %s (%.2f%% of subjects leave %s)", word, pct(po), pct(pn), float64(bo-bn)/100, o.Env)
	case bn < bo:
		l.refuse(PercentLowered, "percent", "%s lowered %s → %s", word, pct(po), pct(pn))
	case bn > bo:
		l.note("percent", "%s raised %s → %s", word, pct(po), pct(pn))
	}
	return l.out
}

// scheduleChanges reports the steps of n after te that lower the
// percentage, the new ones that raise it, and removed future steps.
func scheduleChanges(o, n *config.Release, te time.Time) []change {
	l := changeList{release: n.Name}
	level := n.PercentAt(te)
	for i, st := range n.Schedule {
		if !st.At.After(te) {
			continue
		}
		at := st.At.UTC().Format(time.RFC3339)
		field := fmt.Sprintf("schedule[%d]", i)
		kept := slices.ContainsFunc(o.Schedule, sameStep(st))
		switch {
		case st.Percent < level:
			// A step the config in force already had, from no higher a
			// level, was accepted with it; only a new drop evicts.
			if !kept || o.PercentAt(justBefore(st.At)) < level {
				l.refuse(ScheduleLowered, field, "%s lowers percent %s → %s at %s", field, pct(level), pct(st.Percent), at)
			}
		case st.Percent > level && !kept:
			l.note(field, "%s raises percent %s → %s at %s", field, pct(level), pct(st.Percent), at)
		}
		level = st.Percent
	}
	for _, st := range o.Schedule {
		if st.At.After(te) && !slices.ContainsFunc(n.Schedule, sameStep(st)) {
			l.note("schedule", "schedule step %s at %s removed", pct(st.Percent), st.At.UTC().Format(time.RFC3339))
		}
	}
	return l.out
}

// trafficChanges compares traffic_percent.
func trafficChanges(o, n *config.Release) []change {
	l := changeList{release: n.Name}
	switch to, tn := config.BasisPoints(o.TrafficPercent), config.BasisPoints(n.TrafficPercent); {
	case tn < to:
		l.refuse(TrafficPercentLowered, "traffic_percent", "traffic_percent lowered %s → %s (%.2f%% of requests without identity leave %s)",
			pct(o.TrafficPercent), pct(n.TrafficPercent), float64(to-tn)/100, o.Env)
	case tn > to:
		l.note("traffic_percent", "traffic_percent raised %s → %s", pct(o.TrafficPercent), pct(n.TrafficPercent))
	}
	return l.out
}

// sameStep matches a step at the same instant with the same percentage.
func sameStep(a config.Step) func(config.Step) bool {
	return func(b config.Step) bool { return a.At.Equal(b.At) && a.Percent == b.Percent }
}

// justBefore is the last instant before t: a release's level just before a
// step is its PercentAt(justBefore(step.At)).
func justBefore(t time.Time) time.Time { return t.Add(-time.Nanosecond) }
