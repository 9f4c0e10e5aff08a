package xds

import (
	"fmt"
	"time"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	mutationrulesv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matchingv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/matching/v3"
	skipactionv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/matcher/action/v3"
	compositev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/composite/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	jwtauthnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/plan"
)

// An edge routing returning callers itself (mesh.native_returning_callers,
// plan.Callers): two HTTP filters before ext_proc, and the proof routes
// first in each virtual host.
//
//  1. graymesh.proof (jwt_authn), only on a request that carries a proof:
//     verifies it with the lane keys, copies the end of the token it was
//     handed for, the decision and (for the analysis's access log) the
//     caller hash into x-gray-proof-* headers and clears the route cache.
//  2. graymesh.proof_bound (header_mutation): x-gray-proof-bound is
//     "true" when the request's authorization header ends with that token
//     end (a CEL expression: Envoy's route matchers compare a header with
//     a constant, never with another header). The caller's token itself
//     is not verified here: graymesh verified it when it handed the
//     proof, and no other token ends with those 132 bits of its
//     signature.
//
// Envoy picks a route as the request arrives and again the next time a
// filter asks for it after a clear. jwt_authn clears it; header_mutation
// applies its mutations before it asks for the route (for its per-route
// config), so the route picked then sees x-gray-proof-bound. Nothing may
// ask for the route between the two: wrapping the header_mutation in a
// matcher (ExtensionWithMatcher) would, since the wrapper looks up its own
// per-route config first.
//
// The proof routes then match a bound proof of the config version in
// force, and Envoy does not build the ext_proc filter for them
// (builtOnlyWhereAsked); any other request reaches graymesh as before.
// graymesh's answer to a caller it decided carries the caller's new proof
// as dynamic metadata, which the routes that ask graymesh copy into the
// response.

// Names of the filters and their jwt_authn provider.
const (
	proofFilterName      = "graymesh.proof"
	proofBoundFilterName = "graymesh.proof_bound"
	proofProvider        = "graymesh_proof"
	// proofCacheSize bounds each worker's cache of verified proofs: one
	// entry per returning caller, so the callers of a busy edge fit; a
	// caller past it costs a full signature check, not a wrong answer.
	proofCacheSize = 10000
)

// proofBound is the CEL expression of x-gray-proof-bound.
//
// Without either header (no verified proof, no token) the expression
// fails and the header is not "true": testing for them first cost every
// returning caller more (bench-ir, EDGE-returning) than the failure costs
// the requests without a proof.
var proofBound = fmt.Sprintf("%%CEL(request.headers['authorization'].endsWith(request.headers['%s']))%%", wire.HeaderProofToken)

// proofFilters are an edge listener's proof filters, in order, and the
// proof check's config. Like the inner hops' lane check, the check comes
// over ADS as an extension config (ECDS), not inside the listener: a new
// key set or proof TTL then applies to the next request on every
// connection, where a changed listener would be replaced and its open
// connections drained on the old keys.
type proofFilters struct {
	filters []*hcmv3.HttpFilter
	check   *corev3.TypedExtensionConfig
}

// returningFilters are the two filters; none without Callers or lane keys.
func returningFilters(p *plan.Plan) (proofFilters, error) {
	c := p.Callers
	if c == nil || p.Lane == nil {
		return proofFilters{}, nil
	}
	claims := []*jwtauthnv3.JwtClaimToHeader{
		{HeaderName: wire.HeaderProofToken, ClaimName: wire.ProofClaimToken},
		{HeaderName: wire.HeaderProofDecision, ClaimName: wire.ProofClaimDecision},
	}
	if p.Mesh.AccessLog {
		// The analysis's caller, which the access log reads; each claim
		// header costs every returning caller's request.
		claims = append(claims, &jwtauthnv3.JwtClaimToHeader{HeaderName: wire.HeaderProofCallerHash, ClaimName: wire.ProofClaimCallerHash})
	}
	provider := &jwtauthnv3.JwtProvider{
		Issuer:              wire.ProofIssuer,
		FromHeaders:         []*jwtauthnv3.JwtHeader{{Name: wire.HeaderProof}},
		JwksSourceSpecifier: &jwtauthnv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: p.Lane.Keys}}},
		ClaimToHeaders:      claims,
		ClearRouteCache:     true,
		RequireExpiration:   true,
		MaxLifetime:         durationpb.New(c.ProofTTL + p.Lane.ClockSkew),
		ClockSkewSeconds:    uint32(max(p.Lane.ClockSkew/time.Second, 1)),
		JwtCacheConfig:      &jwtauthnv3.JwtCacheConfig{JwtCacheSize: proofCacheSize},
	}
	check := &jwtauthnv3.JwtAuthentication{
		Providers: map[string]*jwtauthnv3.JwtProvider{proofProvider: provider},
		Rules:     []*jwtauthnv3.RequirementRule{requirementWhen(presentHeader(wire.HeaderProof), orAllowed(providerNamed(proofProvider)))},
	}
	bound := &headermutationv3.HeaderMutation{Mutations: &headermutationv3.Mutations{
		RequestMutations: []*mutationrulesv3.HeaderMutation{{Action: &mutationrulesv3.HeaderMutation_Append{Append: overwrite(wire.HeaderProofBound, proofBound)}}},
	}}
	checkAny, err := anypb.New(check)
	if err != nil {
		return proofFilters{}, err
	}
	boundAny, err := anypb.New(bound)
	if err != nil {
		return proofFilters{}, err
	}
	return proofFilters{
		filters: []*hcmv3.HttpFilter{discoveredJWTFilter(proofFilterName), {Name: proofBoundFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: boundAny}}},
		check:   &corev3.TypedExtensionConfig{Name: proofFilterName, TypedConfig: checkAny},
	}, nil
}

// builtOnlyWhereAsked wraps an edge's ext_proc filter so that Envoy builds
// it only for a request whose route asks graymesh. A returning caller's
// route is picked again after the proof filters ran, so the route picked
// as the request arrived, which decides which filters Envoy builds, is not
// the proof route; an ext_proc filter built and then turned off by the
// proof route costs every returning request 30k–36k instructions
// (bench-ir's EDGE-returning-noextproc). Wrapped in a composite filter
// behind a matcher, ext_proc is built when the matcher runs, on the
// request's route at that point: the matcher of the listener builds it
// (on_no_match), a proof route's own matcher (proofRouteSkipsExtProc)
// builds nothing.
func builtOnlyWhereAsked(extProc *anypb.Any) (*anypb.Any, error) {
	composite, err := anypb.New(&compositev3.Composite{})
	if err != nil {
		return nil, err
	}
	execute, err := anypb.New(&compositev3.ExecuteFilterAction{TypedConfig: &corev3.TypedExtensionConfig{Name: wire.ExtProcFilterName, TypedConfig: extProc}})
	if err != nil {
		return nil, err
	}
	return anypb.New(&matchingv3.ExtensionWithMatcher{
		ExtensionConfig: &corev3.TypedExtensionConfig{Name: "graymesh.decide", TypedConfig: composite},
		XdsMatcher:      onNoMatch(&xdscorev3.TypedExtensionConfig{Name: "decide", TypedConfig: execute}),
	})
}

// proofRouteSkipsExtProc is a proof route's per-filter config of the
// wrapped ext_proc filter: its matcher builds nothing.
func proofRouteSkipsExtProc() (*anypb.Any, error) {
	skip, err := anypb.New(&skipactionv3.SkipFilter{})
	if err != nil {
		return nil, err
	}
	return anypb.New(&matchingv3.ExtensionWithMatcherPerRoute{XdsMatcher: onNoMatch(&xdscorev3.TypedExtensionConfig{Name: "skip", TypedConfig: skip})})
}

// onNoMatch is a matcher that always takes action.
func onNoMatch(action *xdscorev3.TypedExtensionConfig) *xdsmatcherv3.Matcher {
	return &xdsmatcherv3.Matcher{OnNoMatch: &xdsmatcherv3.Matcher_OnMatch{OnMatch: &xdsmatcherv3.Matcher_OnMatch_Action{Action: action}}}
}

func providerNamed(name string) *jwtauthnv3.JwtRequirement {
	return &jwtauthnv3.JwtRequirement{RequiresType: &jwtauthnv3.JwtRequirement_ProviderName{ProviderName: name}}
}

// orAllowed is r, or else nothing: a request whose tokens do not verify
// goes on without their headers, to graymesh.
func orAllowed(r *jwtauthnv3.JwtRequirement) *jwtauthnv3.JwtRequirement {
	return &jwtauthnv3.JwtRequirement{RequiresType: &jwtauthnv3.JwtRequirement_RequiresAny{RequiresAny: &jwtauthnv3.JwtRequirementOrList{
		Requirements: []*jwtauthnv3.JwtRequirement{r, {RequiresType: &jwtauthnv3.JwtRequirement_AllowMissingOrFailed{AllowMissingOrFailed: &emptypb.Empty{}}}},
	}}}
}

// requirementWhen applies r to the requests with header h: no other
// request is checked at all.
func requirementWhen(h *routev3.HeaderMatcher, r *jwtauthnv3.JwtRequirement) *jwtauthnv3.RequirementRule {
	return &jwtauthnv3.RequirementRule{
		Match:           &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{h}},
		RequirementType: &jwtauthnv3.RequirementRule_Requires{Requires: r},
	}
}

// proofRoute is a proof route of service: r's backend, the decision's
// headers and lane, ext_proc not built.
func proofRoute(service string, r *plan.Route) (*routev3.Route, error) {
	off, err := proofRouteSkipsExtProc()
	if err != nil {
		return nil, err
	}
	b := r.Backends[0]
	return &routev3.Route{
		Name:                service + "/" + r.Name,
		Match:               routeMatch(r.Match),
		Action:              clusterAction(plan.ClusterName(service, b.Env)),
		RequestHeadersToAdd: routedHeaders(r, b),
		// What the proof check set for the route, not for the service.
		RequestHeadersToRemove: []string{wire.HeaderProofToken, wire.HeaderProofDecision, wire.HeaderProofBound},
		TypedPerFilterConfig:   map[string]*anypb.Any{wire.ExtProcFilterName: off},
	}, nil
}

// routesProofs reports whether svc's edge routes proofs: it has proof
// routes, signed for a window (plan.Plan.Signed signs them all or none;
// without a lane the chain would leave its lane at the next hop).
func routesProofs(p *plan.Plan, svc *plan.Service) bool {
	return p.Callers != nil && len(svc.Returning) > 0 && svc.Returning[0].Backends[0].Lane != ""
}

// withReturning puts a service's proof routes first in its virtual host
// when the plan routes returning callers.
func withReturning(vh *routev3.VirtualHost, p *plan.Plan, svc *plan.Service) error {
	if !routesProofs(p, svc) {
		return nil
	}
	var routes []*routev3.Route
	for i := range svc.Returning {
		r, err := proofRoute(svc.Name, &svc.Returning[i])
		if err != nil {
			return err
		}
		routes = append(routes, r)
	}
	vh.Routes = append(routes, vh.Routes...)
	// The proof graymesh hands a caller comes in its answer's dynamic
	// metadata, not as a response header: a header would need ext_proc to
	// process the response too, a second message per first-seen caller.
	// Only the routes that ask graymesh copy it (a formatter per response
	// costs the others for nothing); an empty value is not added
	// (keep_empty_value), so a response without a fresh proof carries none.
	handProof := overwrite(wire.HeaderProof, "%DYNAMIC_METADATA("+wire.MetadataNamespace+":"+wire.MetadataProof+")%")
	for _, r := range vh.Routes {
		if _, off := r.GetTypedPerFilterConfig()[wire.ExtProcFilterName]; !off {
			r.ResponseHeadersToAdd = append(r.ResponseHeadersToAdd, handProof)
		}
	}
	arrival, err := withArrivalRoutes(vh.Routes, len(routes), svc.Name+"/"+plan.RouteAnonymous)
	if err != nil {
		return err
	}
	vh.Routes = arrival
	return nil
}

// withArrivalRoutes has a request that carries a proof arrive on a route
// of its own, the only one on which Envoy builds the proof filters.
// routes are the virtual host's: the first proofs of them are the proof
// routes, the last is the catch-all, which asks graymesh; anonymous names
// the anonymous route, if the host has one.
//
// Envoy picks a route as a request arrives, before any filter ran, and
// builds the filters that route does not disable. At that point every
// x-gray-* header has been stripped, so a request with a proof cannot
// match a proof route yet. Right after the proof routes, a copy of the
// catch-all matches it (x-graymesh-proof and a token present, no
// environment set): the route picked, after the proof routes, instead of
// after every route of the host. Any other request arrives on the
// anonymous route or the catch-all, which disable the proof filters: they
// cannot move a request without a proof, and building them (jwt_authn
// and its rule, header_mutation and its failing CEL expression) cost each
// first-seen caller about 18,000 instructions (single-round bench-ir runs
// of EDGE-firstseen). An anonymous request stays on its route, and no
// proof could move it (it has no token to bind). The copy asks graymesh
// as the catch-all does, for a proof that does not route; once graymesh
// set the environment, the route picked again is that environment's, and
// the copy no longer matches.
func withArrivalRoutes(routes []*routev3.Route, proofs int, anonymous string) ([]*routev3.Route, error) {
	notBuilt, err := filterNotBuilt()
	if err != nil {
		return nil, err
	}
	last := routes[len(routes)-1]
	withProof, _ := proto.Clone(last).(*routev3.Route)
	withProof.Name += "-with-proof"
	// Only a proof with a token can route: another one goes where it
	// would without the proof.
	withProof.Match.Headers = append(withProof.Match.Headers, presentHeader(wire.HeaderProof), presentHeader("authorization"))
	withProof.Match.Headers = append(withProof.Match.Headers, absentHeaders([]string{wire.HeaderEnv})...)
	for _, r := range routes[proofs:] {
		if r != last && r.GetName() != anonymous {
			continue
		}
		if r.TypedPerFilterConfig == nil {
			r.TypedPerFilterConfig = map[string]*anypb.Any{}
		}
		r.TypedPerFilterConfig[proofFilterName] = notBuilt
		r.TypedPerFilterConfig[proofBoundFilterName] = notBuilt
	}
	out := make([]*routev3.Route, 0, len(routes)+1)
	out = append(out, routes[:proofs]...)
	out = append(out, withProof)
	return append(out, routes[proofs:]...), nil
}

// edgeProofFilters are the proof filters of an edge listener serving
// services: none unless one of them has proof routes.
func edgeProofFilters(p *plan.Plan, services ...plan.Service) (proofFilters, error) {
	for i := range services {
		if routesProofs(p, &services[i]) {
			return returningFilters(p)
		}
	}
	return proofFilters{}, nil
}

// returningAtEdge puts an edge sidecar's proof routes in vh and its proof
// check in r, and returns its proof filters.
func returningAtEdge(r *Resources, vh *routev3.VirtualHost, p *plan.Plan, svc *plan.Service) ([]*hcmv3.HttpFilter, error) {
	if err := withReturning(vh, p, svc); err != nil {
		return nil, err
	}
	proof, err := edgeProofFilters(p, *svc)
	if err != nil {
		return nil, err
	}
	r.addProofCheck(proof)
	return proof.filters, nil
}
