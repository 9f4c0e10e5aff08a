// Package plan is graymesh's routing plan: the one intermediate
// representation between the config and every output that routes on a
// decision. The config says what the operator wants; the plan says, once,
// which environments each service has and in what order they are matched,
// how undecided traffic is split, where sidecars listen and where their
// fallback goes. Each output is a translator of the plan: xds for
// graymesh's own Envoys, the Istio render for meshes run by Istio. Nothing
// downstream of the plan derives environment order or weights again.
package plan

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/contract/wire"
)

// TotalWeight is the sum of the weights of a split: weights are in basis
// points, the unit of config.BasisPoints and of the decision's buckets.
const TotalWeight = 10000

// Plan is what graymesh routes, built from one config. It is immutable.
type Plan struct {
	// Version is the config version the plan was built from ("" for a
	// file not in force); Content is the file's content hash.
	Version  string
	Content  string
	Services []Service
	Mesh     Mesh
	// Lane is how inner hops verify the lane the edge signs; nil without
	// a lane key (inner hops then have nothing to verify: stable).
	// gray.Compile sets it from the compiled key set.
	Lane *Lane
	// Killed names the killed releases, in config order: inner hops send
	// the lanes of these releases to stable.
	Killed []string
	// KilledThrough, when set, is the newest lane version the kills stop:
	// Version, when it is the fleet's (config.Config.FleetVersion). A
	// lane of a killed release issued under a newer version comes from an
	// edge that has put in force a change this node has not yet — the
	// kill was lifted there — and is honoured. nil: the kills stop every
	// lane of their releases (file mode, whose nodes count versions each
	// on their own, or nothing killed).
	KilledThrough *int64
	// Callers, when set, has the edge's Envoy route returning callers on
	// their proofs (Service.Returning); gray.Compile sets it.
	Callers *Callers
	// ProofVersion is the version a proof of this plan names
	// (returning.go: proofVersion); "" when no proof routes.
	ProofVersion string
}

// Lane is what an inner hop's Envoy needs to verify lanes itself.
type Lane struct {
	// Keys is the JSON Web Key Set of every public key a lane verifies
	// with (the signing key and the verify keys).
	Keys string
	// TTL is the longest a lane lives after the edge hands it out;
	// ClockSkew how long past its expiry it is still honoured.
	TTL, ClockSkew time.Duration
	// Window is how long the edge hands out the same lane (the signer's
	// expiry window); Signer signs the lanes Envoy's own split hands out
	// (Service.Anonymous). A nil Signer builds no such route.
	Window time.Duration
	Signer Signer
}

// Signer signs the lane of a decision made at now (lane.Signer): the same
// token for every call in one window.
type Signer interface {
	Sign(env, release, version string, now time.Time) string
}

// Mesh is where the default listener accepts traffic and how Envoy reaches
// graymesh and the trace collector.
type Mesh struct {
	Listener Endpoint
	ExtProc  Endpoint
	// MessageTimeout bounds how long Envoy waits for a decision.
	MessageTimeout time.Duration
	// OTLP is the trace collector; nil turns Envoy's tracing off.
	OTLP        *Endpoint
	SampleRatio float64
	// AccessLog asks Envoy to stream each request it routes to an
	// environment to graymesh (for a release's analysis), with the caller
	// graymesh decided for.
	AccessLog bool
	// DecisionHeaders are the request headers graymesh's decision reads
	// (lower case, sorted): Envoy's ext_proc filter sends graymesh only
	// these, and the x-gray-* headers graymesh removes.
	DecisionHeaders []string
	// PeerAddress: a release has a cidrs rule, which needs the client
	// address Envoy saw (the request attribute source.address).
	PeerAddress bool
	// LaneSources, when set, are the only address ranges a sidecar takes
	// a lane from (lane.mesh_cidrs): a connection from anywhere else has
	// its lane removed on arrival.
	LaneSources []netip.Prefix
}

// Endpoint is one host and port.
type Endpoint struct {
	Host string
	Port uint32
}

// IsIP reports whether Host is an IP address (not a name to resolve).
func (e Endpoint) IsIP() bool {
	_, err := netip.ParseAddr(e.Host)
	return err == nil
}

// Service is one service: its environments, its routes and, when it has
// its own Envoy, its sidecar.
type Service struct {
	Name    string
	Domains []string
	// Envs are the service's environments, stable first, the rest sorted.
	Envs []Env
	// Routes are matched in order; the last one matches every request.
	// Edges route on them: the shared listener and edge sidecars, where
	// graymesh decides.
	Routes []Route
	// InnerRoutes are the routes of an inner sidecar (nil without one),
	// which follows the lane its Envoy verified: no graymesh is asked, so
	// each route also says the hop's reason.
	InnerRoutes []Route
	// Anonymous, when set, is an edge's first route: Envoy splits the
	// requests that carry no identity at all by the traffic-weighted
	// release itself, each branch setting the decision and the signed
	// lane, and graymesh is not asked (mesh.native_traffic_split). Its
	// backends carry no lane until Plan.Signed signs them for a window.
	Anonymous *Route
	// Returning are an edge's proof routes, first of all (returning.go):
	// a caller graymesh decided before, sending back the proof of it, is
	// routed by Envoy on the proof. Their backends carry no lane until
	// Plan.Signed signs them; without Plan.Callers they are not pushed.
	Returning []Route
	Sidecar   *Sidecar
}

// Env is one environment of a service and its endpoints.
type Env struct {
	Name      string
	Endpoints []Endpoint
}

// Has reports whether the service has its own endpoints for env.
func (s *Service) Has(env string) bool {
	for _, e := range s.Envs {
		if e.Name == env {
			return true
		}
	}
	return false
}

// FallbackFor names why the service serves stable to a request whose lane
// names env: "" when it can serve env itself or env is stable or empty.
func (s *Service) FallbackFor(env string) string {
	if env == "" || env == config.Stable || s.Has(env) {
		return ""
	}
	return NoVersion(env)
}

// NoVersion is the fallback reason of a service that has no version of
// env.
func NoVersion(env string) string { return "no-" + env + "-version" }

// Sidecar is a service's own Envoy.
type Sidecar struct {
	Address      string
	InboundPort  uint32
	OutboundPort uint32
	// FallbackPort is 0 when the sidecar has no fallback listener.
	FallbackPort uint32
	// Edge sidecars decide; the others follow the lane.
	Edge bool
	// Peers are the other sidecars this service calls, in config order.
	Peers []Peer
}

// Peer is another service's sidecar, reached at its inbound listener.
type Peer struct {
	Name    string
	Inbound Endpoint
}

// MatchKind is what a route looks at.
type MatchKind int

// Route matches, in the order a service's routes use them.
const (
	// MatchEnv matches the environment header equal to Match.Env.
	MatchEnv MatchKind = iota
	// MatchOtherEnv matches the environment header with any value.
	MatchOtherEnv
	// MatchAll matches every request: nothing was decided.
	MatchAll
	// MatchRelease matches the release header equal to Match.Release
	// (inner hops: the release of a lane that verified).
	MatchRelease
	// MatchLane matches a request that carries a lane header (inner
	// hops: after the environment routes, a lane that did not verify).
	MatchLane
	// MatchAnonymous matches a request that has none of the headers in
	// Match.Absent: nothing a decision could read identifies its caller.
	MatchAnonymous
)

// Match is a route's condition.
type Match struct {
	Kind    MatchKind
	Env     string
	Release string
	// MaxVersion, when set, narrows a MatchRelease to lanes issued under
	// a config version of at most MaxVersion, or whose version does not
	// read as an integer (a kill stops a lane it cannot place).
	MaxVersion *int64
	// Absent, for MatchAnonymous and MatchProof, are the headers the
	// request must not have (lower case, sorted).
	Absent []string
	// Version, for MatchProof, is the config version the proof must be of.
	Version string
}

// Route sends the requests it matches to one backend, or splits them over
// several by weight.
type Route struct {
	// Name is short and unique within the service: the environment,
	// "other-env" or "default".
	Name     string
	Match    Match
	Backends []Backend
	// Reason is what an inner hop says (x-gray-reason) about the requests
	// this route serves; "" on edge routes, where graymesh decides.
	Reason string
	// DropLane: the lane is not honoured here; the request goes on
	// without it, its environment header naming the backend's.
	DropLane bool
	// Fallback: the route serves stable for a lane whose environment the
	// service has no version of, and says so (NoVersion of the lane's).
	Fallback bool
	// Release and Version, on the Anonymous route, are the decision it
	// stands for: the traffic-weighted release and the config version.
	Release, Version string
}

// Backend is one environment a route sends requests to.
type Backend struct {
	Env string
	// Weight is the backend's share in TotalWeight; 0 for a route's only
	// backend.
	Weight uint32
	// StampEnv adds the environment header (when absent) naming Env, so
	// every later hop sees what this hop chose.
	StampEnv bool
	// Lane, on a signed Anonymous route, is the lane the branch hands
	// out: the one graymesh would sign for Env in the window signed for.
	Lane string
}

// Route names.
const (
	RouteOtherEnv    = "other-env"
	RouteDefault     = "default"
	RouteLaneRefused = "lane-refused"
	RouteAnonymous   = "anonymous"
	// RouteKilledPrefix precedes a killed release's name.
	RouteKilledPrefix = "killed:"
)

// Build makes the plan for a config. cfg is expected to be valid (from
// config.Load); Build still refuses what no output could route, naming the
// field.
func Build(cfg *config.Config) (*Plan, error) {
	p := &Plan{Version: cfg.Version, Content: cfg.Content, ProofVersion: proofVersion(cfg)}
	var errs []error
	mesh, err := buildMesh(cfg)
	if err != nil {
		errs = append(errs, err)
	}
	p.Mesh = mesh
	split := weightedRelease(cfg)
	anon := anonymousSplit(cfg, split)
	sidecars := cfg.Sidecars()
	for _, r := range cfg.Releases {
		if r.State == config.StateKilled {
			p.Killed = append(p.Killed, r.Name)
		}
	}
	if len(p.Killed) > 0 {
		p.KilledThrough = killedThrough(cfg)
	}
	for i, s := range cfg.Services {
		svc, err := buildService(i, s, split, sidecars)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		svc.Anonymous = anonymousRoute(svc, anon, cfg.Version)
		if svc.Sidecar == nil || svc.Sidecar.Edge {
			svc.Returning = returningRoutes(cfg, svc, p.ProofVersion)
		}
		if svc.Sidecar != nil && !svc.Sidecar.Edge {
			svc.InnerRoutes = innerRoutes(svc, p.Killed, p.KilledThrough)
		}
		p.Services = append(p.Services, svc)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// Service returns the named service, or nil.
func (p *Plan) Service(name string) *Service {
	for i := range p.Services {
		if p.Services[i].Name == name {
			return &p.Services[i]
		}
	}
	return nil
}

// Sidecars returns the services that have their own Envoy, in config order.
func (p *Plan) Sidecars() []*Service {
	var out []*Service
	for i := range p.Services {
		if p.Services[i].Sidecar != nil {
			out = append(out, &p.Services[i])
		}
	}
	return out
}

func buildMesh(cfg *config.Config) (Mesh, error) {
	m := Mesh{
		Listener:        Endpoint{Host: cfg.Mesh.ListenerAddress, Port: cfg.Mesh.ListenerPort},
		MessageTimeout:  cfg.Mesh.MessageTimeout.Duration,
		AccessLog:       cfg.AnalysesFromEnvoy(),
		DecisionHeaders: decisionHeaders(cfg),
	}
	for i := range cfg.Releases {
		if len(cfg.Releases[i].CIDRs) > 0 {
			m.PeerAddress = true
		}
	}
	var errs []error
	for i, c := range cfg.Lane.MeshCIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			errs = append(errs, fmt.Errorf("lane.mesh_cidrs[%d]: %w", i, err))
			continue
		}
		m.LaneSources = append(m.LaneSources, p)
	}
	ep, err := ParseEndpoint(cfg.Mesh.ExtProcAddress)
	if err != nil {
		errs = append(errs, fmt.Errorf("mesh.extproc_address: %w", err))
	}
	m.ExtProc = ep
	if cfg.Tracing.OTLPEndpoint != "" {
		ep, err := ParseEndpoint(cfg.Tracing.OTLPEndpoint)
		if err != nil {
			errs = append(errs, fmt.Errorf("tracing.otlp_endpoint: %w", err))
		}
		m.OTLP = &ep
		m.SampleRatio = 1
		if cfg.Tracing.SampleRatio != nil {
			m.SampleRatio = *cfg.Tracing.SampleRatio
		}
	}
	return m, errors.Join(errs...)
}

// decisionHeaders are the request headers a decision reads (what
// extproc.Extract copies): the token's and the cookies' headers, Envoy's
// request id (a traffic-weighted release draws by it), the lane, the
// membership header when membership is on, and every header a release
// matches on.
func decisionHeaders(cfg *config.Config) []string {
	names := []string{"authorization", "cookie", wire.HeaderRequestID, wire.HeaderLane, wire.HeaderStressMarker}
	if cfg.Membership.Enabled {
		names = append(names, strings.ToLower(cfg.Membership.Header))
	}
	if cfg.Mesh.NativeReturningCallers {
		names = append(names, wire.HeaderProof)
	}
	for i := range cfg.Releases {
		for _, h := range cfg.Releases[i].Headers {
			names = append(names, strings.ToLower(h.Name))
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// split is the traffic-weighted release: undecided requests go to env for
// basisPoints of TotalWeight.
type split struct {
	release, env string
	basisPoints  uint32
}

// weightedRelease returns the traffic-weighted release's split, or nil
// (config validation allows at most one). Envoy applies it to requests
// graymesh did not decide (graymesh down, or no request id); graymesh
// makes the same split itself and signs it into the lane.
func weightedRelease(cfg *config.Config) *split {
	var out *split
	for _, r := range cfg.Releases {
		// A frozen or killed release admits no new request: no split.
		if r.TrafficPercent > 0 && (r.State == "" || r.State == config.StateActive) {
			out = &split{release: r.Name, env: r.Env, basisPoints: config.BasisPoints(r.TrafficPercent)}
		}
	}
	return out
}

func buildService(i int, s config.Service, w *split, sidecars []config.Service) (Service, error) {
	field := fmt.Sprintf("services[%d] (%s)", i, s.Name)
	svc := Service{Name: s.Name, Domains: s.Domains}
	var errs []error
	for _, env := range envOrder(s) {
		e := Env{Name: env}
		for j, addr := range s.Environments[env] {
			ep, err := ParseEndpoint(addr)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s.environments.%s[%d]: %w", field, env, j, err))
				continue
			}
			e.Endpoints = append(e.Endpoints, ep)
		}
		svc.Envs = append(svc.Envs, e)
	}
	if len(s.Environments[config.Stable]) == 0 {
		errs = append(errs, fmt.Errorf("%s.environments.%s: every service needs stable endpoints; it is where undecided and fallback traffic goes", field, config.Stable))
	}
	svc.Routes = routes(svc, w)
	if s.Sidecar != nil {
		svc.Sidecar = buildSidecar(s, sidecars)
	}
	return svc, errors.Join(errs...)
}

func (s *Service) endpoints(env string) []Endpoint {
	for _, e := range s.Envs {
		if e.Name == env {
			return e.Endpoints
		}
	}
	return nil
}

func buildSidecar(s config.Service, sidecars []config.Service) *Sidecar {
	sc := &Sidecar{
		Address: s.Sidecar.Address, InboundPort: s.Sidecar.InboundPort, OutboundPort: s.Sidecar.OutboundPort,
		FallbackPort: s.Sidecar.FallbackPort, Edge: s.Sidecar.Edge,
	}
	for _, peer := range sidecars {
		if peer.Name != s.Name {
			sc.Peers = append(sc.Peers, Peer{Name: peer.Name, Inbound: Endpoint{Host: peer.Sidecar.Address, Port: peer.Sidecar.InboundPort}})
		}
	}
	return sc
}

// envOrder returns a service's environments, stable first, the rest
// sorted: the order routes are matched in.
func envOrder(s config.Service) []string {
	out := make([]string, 0, len(s.Environments))
	for env := range s.Environments {
		if env != config.Stable {
			out = append(out, env)
		}
	}
	sort.Strings(out)
	return append([]string{config.Stable}, out...)
}

// ParseEndpoint parses host:port with a port in 1..65535, by the config's
// own rule (config.SplitHostPort).
func ParseEndpoint(s string) (Endpoint, error) {
	host, port, err := config.SplitHostPort(s)
	if err != nil {
		return Endpoint{}, err
	}
	return Endpoint{Host: host, Port: port}, nil
}

// ClusterName is the Envoy cluster of one environment of a service,
// "service|env": what xDS pushes, what routes name and what Envoy's
// access log reports as the upstream cluster.
func ClusterName(service, env string) string { return service + "|" + env }
