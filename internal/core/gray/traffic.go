package gray

import (
	"fmt"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// trafficSplit is a traffic-weighted release (traffic_percent): it splits
// the requests no rule decided and that carry no identity, each request on
// its own. The edge draws the environment from the request's id and signs
// it into the lane, so every later hop of the chain serves the same
// environment. (Envoy's weighted route default is the same split for when
// graymesh cannot answer; it stamps the environment, but signs no lane.)
type trafficSplit struct {
	release, env, salt, state string
	basisPoints               uint32
	rule                      string
}

func newTrafficSplit(r *config.Release) *trafficSplit {
	return &trafficSplit{
		release: r.Name, env: r.Env, salt: r.Salt + ":traffic", state: r.State,
		basisPoints: config.BasisPoints(r.TrafficPercent),
		rule:        fmt.Sprintf("traffic_percent:%.2f", r.TrafficPercent),
	}
}

// split decides an undecided request d by the traffic-weighted release:
// unchanged without one, without a request id, or when the release is
// frozen or killed (it then admits no new request).
func (e *Engine) split(f *Facts, d Decision) Decision {
	t := e.traffic
	if t == nil || f.RequestID == "" || t.state == config.StateFrozen || t.state == config.StateKilled {
		return d
	}
	b := Bucket(t.salt, f.RequestID)
	env := config.Stable
	if uint32(b) < t.basisPoints {
		env = t.env
	}
	return Decision{Env: env, Release: t.release, Rule: t.rule, Reason: ReasonTraffic, Bucket: b, Version: e.version}
}
