package config

import "time"

// ApplyDefaults fills r's empty fields as Load does: state active, the
// release name as salt, the analysis defaults. A release that did not come
// from a file (a Kubernetes GrayRelease) gets them here.
func (r *Release) ApplyDefaults() {
	if r.State == "" {
		r.State = StateActive
	}
	if r.Salt == "" {
		r.Salt = r.Name
	}
	if r.Analysis != nil {
		r.Analysis.ApplyDefaults()
	}
}

// PercentAt is the percentage r admits at t: that of the last schedule step
// at or before t, else Percent.
func (r *Release) PercentAt(t time.Time) float64 {
	if i := r.StepAt(t); i >= 0 {
		return r.Schedule[i].Percent
	}
	return r.Percent
}

// StepAt is the index of the schedule step in force at t — the last one at
// or before t — or -1 before the first step and without a schedule. Steps
// are in time order (validated).
func (r *Release) StepAt(t time.Time) int {
	step := -1
	for i, st := range r.Schedule {
		if st.At.After(t) {
			break
		}
		step = i
	}
	return step
}

// AdmitsAt reports whether r can admit any caller at t: it is not killed,
// and it names callers (a whitelist entry, a claim, CIDR or header
// matcher), or the percentage in force at t or traffic_percent is above 0.
func (r *Release) AdmitsAt(t time.Time) bool {
	return r.State != StateKilled && r.admitsWith(r.PercentAt(t))
}

// admitsWith reports whether r's rules can admit any caller, whatever its
// state, while percent is the percentage in force.
func (r *Release) admitsWith(percent float64) bool {
	return len(r.Whitelist)+len(r.Claims)+len(r.CIDRs)+len(r.Headers) > 0 || percent > 0 || r.TrafficPercent > 0
}

// TakesEffect is when c replaces the config in force if applied at at:
// at, or c.EffectiveAt when that is later.
func (c *Config) TakesEffect(at time.Time) time.Time {
	if c.EffectiveAt != nil && c.EffectiveAt.After(at) {
		return *c.EffectiveAt
	}
	return at
}

// DecidesOnMoreThanTheCaller reports whether r's rules read more than
// the caller's subject: the request (headers, cidrs) or the token's claims,
// which a new token of the same subject may change. A decision of such a
// release cannot stand for the caller in a proof
// (mesh.native_returning_callers).
func (r *Release) DecidesOnMoreThanTheCaller() bool {
	return len(r.Headers) > 0 || len(r.CIDRs) > 0 || len(r.Claims) > 0
}
