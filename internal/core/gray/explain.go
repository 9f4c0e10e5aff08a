package gray

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/plan"
)

// Explanation is a decision told to a person: what Envoy is told for the
// request, where it is served, and who the caller was taken to be. The
// explain CLI, the admin API and the console all print this one shape.
type Explanation struct {
	// Env is what the hop sets in x-gray-env ("" = nothing decided).
	Env string `json:"env"`
	// Served is where the request goes once Envoy routes it.
	Served  string `json:"served"`
	Release string `json:"release"`
	Rule    string `json:"rule"`
	Reason  Reason `json:"reason"`
	Bucket  int    `json:"bucket"`
	Version string `json:"version"`
	// Fallback says why the hop's service serves stable instead of Env.
	Fallback     string `json:"fallback,omitempty"`
	Hop          string `json:"hop"`
	Service      string `json:"service,omitempty"`
	Subject      string `json:"subject"`
	Identity     string `json:"identity"`
	TokenProblem string `json:"token_problem,omitempty"`
	// Issuer, KeyID and KeySource say what verified the token: the
	// configured issuer, the key's kid, and where the key is configured or
	// the URL of the fetched key set it came from.
	Issuer    string `json:"issuer,omitempty"`
	KeyID     string `json:"kid,omitempty"`
	KeySource string `json:"key_source,omitempty"`
	// LaneProblem says why an inner hop refused the lane.
	LaneProblem string `json:"lane_problem,omitempty"`
	// Membership is true when the response would hand the caller a
	// membership token.
	Membership bool `json:"membership"`
	// Proof is true when the response would hand the caller a proof of
	// the decision, which the edge's Envoy routes its later requests on
	// (mesh.native_returning_callers).
	Proof bool `json:"proof"`
}

// Explain decides r exactly as for Envoy and tells why. A request the
// edge's Envoy splits itself (nativeRoute) is explained as that split:
// graymesh is not asked, and Envoy draws the environment per request.
func (p *Policy) Explain(r Request) Explanation {
	if a := p.nativeRoute(r); a != nil {
		return p.explainNative(r, a)
	}
	o := p.Decide(r)
	ex := Explanation{
		Env: o.Env, Served: p.servedBy(o.Decision), Release: o.Release, Rule: o.Rule, Reason: o.Reason,
		Bucket: o.Bucket, Version: o.Version, Fallback: o.Fallback, Hop: r.Hop.Name(), Service: r.Hop.Service,
		Subject: o.Caller.Subject, Identity: identitySource(r, o), TokenProblem: o.Caller.Problem, LaneProblem: o.LaneProblem,
		Issuer: o.Caller.Issuer, KeyID: o.Caller.KeyID, KeySource: o.Caller.KeySource,
		Membership: o.Membership != "", Proof: o.Proof != "",
	}
	if o.Reason == ReasonProof {
		ex.Served += " (on the caller's proof: the edge's Envoy routes it without asking graymesh)"
	}
	return ex
}

// servedBy names where a decision sends the request once Envoy routes it.
func (p *Policy) servedBy(d Decision) string {
	switch {
	case d.Fallback != "":
		return fmt.Sprintf("%s (fallback: %s)", config.Stable, d.Fallback)
	case d.Env != "":
		return d.Env
	}
	for _, r := range p.Config.Releases {
		if r.TrafficPercent > 0 {
			return fmt.Sprintf("route default: %s, or %s for %.2f%% of such requests (traffic-weighted release %s)", config.Stable, r.Env, r.TrafficPercent, r.Name)
		}
	}
	return config.Stable
}

// nativeRoute is the route the edge's Envoy splits r on without asking
// graymesh (plan.Service.Anonymous), or nil: r is an edge request with
// none of the route's absent headers, to a service that has the route
// (to the shared listener, whose service the Host picks: when any has).
func (p *Policy) nativeRoute(r Request) *plan.Route {
	if r.Hop.Inner || r.Asserted != nil || r.Authorization != "" || r.Cookie != "" || r.Membership != "" || r.Proof != "" || p.Lanes == nil {
		return nil
	}
	if r.Hop.Service != "" {
		if s := p.Plan.Service(r.Hop.Service); s != nil {
			return s.Anonymous
		}
		return nil
	}
	for i := range p.Plan.Services {
		if a := p.Plan.Services[i].Anonymous; a != nil {
			return a
		}
	}
	return nil
}

// explainNative explains a request Envoy splits itself on route a.
func (p *Policy) explainNative(r Request, a *plan.Route) Explanation {
	var shares []string
	for _, b := range a.Backends {
		shares = append(shares, fmt.Sprintf("%s %.2f%%", b.Env, float64(b.Weight)*100/plan.TotalWeight))
	}
	return Explanation{
		Served:  fmt.Sprintf("Envoy's weighted clusters, drawn per request: %s (traffic-weighted release %s, graymesh not asked)", strings.Join(shares, ", "), a.Release),
		Release: a.Release, Rule: plan.RouteAnonymous, Reason: ReasonTrafficEnvoy, Bucket: NoBucket, Version: a.Version,
		Hop: r.Hop.Name(), Service: r.Hop.Service, Identity: "none",
	}
}

func identitySource(r Request, o Outcome) string {
	switch {
	case r.Hop.Inner:
		return "none read (inner hop: follows the lane)"
	case r.Asserted != nil:
		return "subject (asserted, not verified)"
	case o.Caller.Problem != "":
		return "token rejected: " + o.Caller.Problem
	case o.Caller.Subject != "":
		return "token"
	case o.Caller.DeviceID != "":
		return "device cookie (anonymous)"
	}
	return "none"
}

// Ask describes a caller to explain, as the explain CLI flags and the
// admin API's POST /v1/explain body state it.
type Ask struct {
	// Token is a JWT, verified as for Envoy.
	Token string `json:"token,omitempty"`
	// Subject (with Claims) is asserted instead of a token.
	Subject string              `json:"subject,omitempty"`
	Claims  map[string][]string `json:"claims,omitempty"`
	// Device is the device cookie's value of an anonymous caller.
	Device  string            `json:"device,omitempty"`
	IP      string            `json:"ip,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	// Membership is a membership token the caller presents.
	Membership string `json:"membership,omitempty"`
	// Proof is a returning caller's proof (x-graymesh-proof) the caller
	// presents.
	Proof string `json:"proof,omitempty"`
	// Service is the sidecar's service that asks ("" = the edge listener).
	Service string `json:"service,omitempty"`
	// Inner asks as an inner hop, which follows Lane (the lane header's
	// value), as its Envoy does.
	Inner bool   `json:"inner,omitempty"`
	Lane  string `json:"lane,omitempty"`
	// RequestID is Envoy's x-request-id (a traffic-weighted release draws
	// on it).
	RequestID string `json:"request_id,omitempty"`
	// At decides at this time instead of now (schedules, effective_at).
	At *time.Time `json:"at,omitempty"`
}

// Request turns an Ask into the Request Envoy would send for it.
func (p *Policy) Request(a Ask, now time.Time) (Request, error) {
	r := Request{
		Hop:        Hop{Inner: a.Inner, Service: a.Service},
		Membership: a.Membership,
		Proof:      a.Proof,
		Lane:       a.Lane,
		RequestID:  a.RequestID,
		Now:        now,
	}
	if a.At != nil {
		r.Now = *a.At
	}
	if a.Token != "" && a.Subject != "" {
		return Request{}, errors.New("token and subject: give one")
	}
	if a.Token != "" {
		r.Authorization = "Bearer " + a.Token
	}
	if a.Subject != "" {
		r.Asserted = &Asserted{Subject: a.Subject, Claims: a.Claims}
	}
	if a.Device != "" {
		name := p.Config.Identity.DeviceCookie
		if name == "" {
			return Request{}, errors.New("device: the config names no identity.device_cookie, so a device id is never read")
		}
		r.Cookie = name + "=" + a.Device
	}
	if a.IP != "" {
		ip, err := netip.ParseAddr(a.IP)
		if err != nil {
			return Request{}, fmt.Errorf("ip: %w", err)
		}
		r.IP = ip
	}
	for k, v := range a.Headers {
		if r.Headers == nil {
			r.Headers = map[string]string{}
		}
		r.Headers[strings.ToLower(k)] = v
	}
	return r, nil
}
