package irbench

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtauthnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/xds"
)

// innerVariants are N1 changed one thing at a time, to say where an inner
// hop's instructions go (the report's reading). The last four are for
// attribution only: each leaves out part of the check.
func innerVariants() []Config {
	lane := func(l string) map[string]string { return map[string]string{wire.HeaderLane: l} }
	laneAndEnv := func(l string) map[string]string { return map[string]string{wire.HeaderLane: l, wire.HeaderEnv: "gray"} }
	return append([]Config{
		{
			Name: "H0-h2", What: "H0 with the client speaking HTTP/2 (cleartext, prior knowledge) on its one connection: HPACK sends a header seen before as an index",
			build: (*sidecars).plainHeader, h2: true,
			headers: func(string) map[string]string { return map[string]string{wire.HeaderEnv: "gray"} },
		},
		{
			Name: "N1-h2", What: "N1 with the client speaking HTTP/2 (cleartext, prior knowledge): the lane, the same on every request of a window, travels as an HPACK index",
			build: (*sidecars).native, h2: true, headers: lane,
		},
		{
			Name: "H0-lane", What: "H0 with the lane sent too, which nothing reads: what carrying the lane's header costs before anything verifies it",
			build: (*sidecars).plainHeader, headers: laneAndEnv,
		},
		{
			Name: "N1-sources", What: "N1 on a listener split by the connection's source address, as lane.mesh_cidrs pushes it: the lane-checking chain for 127.0.0.1/32 (the client's address), a default chain for every other; Envoy picks the chain once per connection",
			build: (*sidecars).native, chains: splitBySource, headers: lane,
		},
		{
			Name: "N1-claims3", What: "N1 as pushed before this change: the lane's config version copied to x-gray-version too (a third claim header) and copied back to the response by the inner virtual host",
			build: editLane(func(p *jwtauthnv3.JwtProvider) {
				p.ClaimToHeaders = append(p.ClaimToHeaders, &jwtauthnv3.JwtClaimToHeader{HeaderName: wire.HeaderVersion, ClaimName: wire.LaneClaimVersion})
			}, func(hcm *hcmv3.HttpConnectionManager) {
				hcm.GetRouteConfig().GetVirtualHosts()[0].ResponseHeadersToAdd = []*corev3.HeaderValueOption{{
					Header:       &corev3.HeaderValue{Key: wire.HeaderVersion, Value: "%REQ(" + wire.HeaderVersion + ")%"},
					AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
				}}
			}),
			headers: lane,
		},
		{
			Name: "N1-env", What: "N1 with the environment the only claim header (no x-gray-release): not kept, killed releases' routes and the span's release tag read it",
			build:   editLane(func(p *jwtauthnv3.JwtProvider) { p.ClaimToHeaders = p.ClaimToHeaders[:1] }, nil),
			headers: lane,
		},
		{
			Name: "N1-metadata", What: "N1 routing on the lane's payload in dynamic metadata (payload_in_metadata, route dynamic_metadata matchers) instead of claim headers",
			build: editLane(func(p *jwtauthnv3.JwtProvider) {
				p.ClaimToHeaders, p.PayloadInMetadata = nil, "lane"
			}, metadataRoutes),
			headers: lane,
		},
		{
			Name: "N1-perroute", What: "N1 with the requirement named per route (requirement_map, the virtual host's per-filter config) instead of a rule matching every path",
			build: editConfig(func(c *jwtauthnv3.JwtAuthentication) {
				c.RequirementMap = map[string]*jwtauthnv3.JwtRequirement{"lane": c.GetRules()[0].GetRequires()}
				c.Rules = nil
			}, perRouteRequirement),
			headers: lane,
		},
		{
			Name: "N1-nostrip", What: "N1 without the early x-gray-* strip (attribution only: a caller's x-gray-env would route)",
			build: editLane(nil, noStrip), headers: lane,
		},
		{
			Name: "N1-bare", What: "jwt_authn verifying the cached lane with no claim headers, no route cache clearing and no strip; the client sends x-gray-env (attribution only)",
			build: editLane(func(p *jwtauthnv3.JwtProvider) {
				p.ClaimToHeaders, p.ClearRouteCache = nil, false
			}, noStrip),
			headers: laneAndEnv,
		},
		{
			Name: "N1-bare-clear", What: "N1-bare clearing the route cache: the route picked a second time (attribution only)",
			build:   editLane(func(p *jwtauthnv3.JwtProvider) { p.ClaimToHeaders = nil }, noStrip),
			headers: laneAndEnv,
		},
		{
			Name: "N1-norules", What: "jwt_authn in the chain with no rules, so it verifies nothing; no strip; the client sends x-gray-env and the lane (attribution only)",
			build:   editConfig(func(c *jwtauthnv3.JwtAuthentication) { c.Rules = nil }, noStrip),
			headers: laneAndEnv,
		},
	}, longLaneVariants()...)
}

// editLane is native with the lane's provider changed by edit and the
// connection manager by hcmEdit (either may be nil).
func editLane(edit func(*jwtauthnv3.JwtProvider), hcmEdit func(*hcmv3.HttpConnectionManager)) func(*sidecars, *hcmv3.HttpConnectionManager) error {
	return editConfig(func(c *jwtauthnv3.JwtAuthentication) {
		if edit != nil {
			for _, p := range c.GetProviders() {
				edit(p)
			}
		}
	}, hcmEdit)
}

// editConfig is native with the lane check's whole config changed.
func editConfig(edit func(*jwtauthnv3.JwtAuthentication), hcmEdit func(*hcmv3.HttpConnectionManager)) func(*sidecars, *hcmv3.HttpConnectionManager) error {
	return func(s *sidecars, hcm *hcmv3.HttpConnectionManager) error {
		if err := s.native(hcm); err != nil {
			return err
		}
		for _, f := range hcm.GetHttpFilters() {
			if f.GetName() != xds.LaneFilterName {
				continue
			}
			cfg := &jwtauthnv3.JwtAuthentication{}
			if err := f.GetTypedConfig().UnmarshalTo(cfg); err != nil {
				return err
			}
			edit(cfg)
			a, err := anypb.New(cfg)
			if err != nil {
				return err
			}
			f.ConfigType = &hcmv3.HttpFilter_TypedConfig{TypedConfig: a}
			if hcmEdit != nil {
				hcmEdit(hcm)
			}
			return nil
		}
		return fmt.Errorf("the inner listener has no %s filter", xds.LaneFilterName)
	}
}

func noStrip(hcm *hcmv3.HttpConnectionManager) { hcm.EarlyHeaderMutationExtensions = nil }

// splitBySource gives the listener's chain a source-range match the bench
// client's connection falls in, and a default chain (a copy, never chosen
// here) for connections from elsewhere, the shape lane.mesh_cidrs gives
// every sidecar listener (xds listener).
func splitBySource(l *listenerv3.Listener) {
	def, _ := proto.Clone(l.FilterChains[0]).(*listenerv3.FilterChain)
	def.Name = "outside-mesh"
	l.FilterChains[0].Name = "mesh"
	l.FilterChains[0].FilterChainMatch = &listenerv3.FilterChainMatch{SourcePrefixRanges: []*corev3.CidrRange{
		{AddressPrefix: "127.0.0.1", PrefixLen: wrapperspb.UInt32(32)},
	}}
	l.DefaultFilterChain = def
}

// writeInnerReading says where N1's instructions go, from the variants
// that ran.
func writeInnerReading(p func(string, ...any), res *Result) {
	m := res.mean
	h0, n1 := m("H0"), m("N1")
	if h0 == 0 || n1 == 0 {
		return
	}
	if lane := m("H0-lane"); lane > 0 {
		p("- Of that, %s is only carrying the lane (H0-lane − H0): Envoy parses, checks and forwards a request header byte by byte, and the lane is %d bytes (86 of them the Ed25519 signature). H0-lane alone is %s H0, so a check of a lane this size, in a header, fits in %.2f× H0 only if it costs at most %s; the check proper (N1 − H0-lane) is %s.\n",
			thousands(lane-h0), res.LaneBytes, ratio(lane, h0), nativeBound, thousands(max(nativeBound*h0-lane, 0)), thousands(n1-lane))
		if long, longLane := m("N1-long"), m("H0-lane-long"); long > 0 && longLane > 0 {
			p("- The lane as it was before issue 27 shortened it was %d bytes (kid and typ in its header, the claims env/rel/ver/sts, the issuer graymesh-lane). In this run, carrying it cost %s more than carrying today's %d bytes (H0-lane-long − H0-lane), and the whole inner hop with it %s more: N1-long %s, %s H0 (N1-long − N1).\n",
				res.LongLaneBytes, thousands(longLane-lane), res.LaneBytes, thousands(long-n1), thousands(long), ratio(long, h0))
		}
	}
	if h2, n2 := m("H0-h2"), m("N1-h2"); h2 > 0 && n2 > 0 {
		p("- Over HTTP/2 (cleartext, prior knowledge, as a caller's sidecar may speak), where HPACK sends the window's lane as an index after its first request: N1-h2 is %s H0-h2 (N1-h2 %s, H0-h2 %s). The plain-header floor costs more over HTTP/2 (H0-h2 − H0: %s) and the native lane about the same (N1-h2 − N1: %s).\n",
			ratio(n2, h2), thousands(n2), thousands(h2), signed(h2-h0), signed(n2-n1))
	}
	if src := m("N1-sources"); src > 0 {
		p("- Taking lanes only from the mesh's addresses (lane.mesh_cidrs: the listener split by source range, N1-sources − N1): %s per request. Envoy picks the filter chain when it accepts a connection, not per request; the bench sends every request on one kept-alive connection.\n", signed(src-n1))
	}
	if c3 := m("N1-claims3"); c3 > 0 {
		p("- The config version as a third claim header, x-gray-version, copied back to the response (N1-claims3 − N1): %s. Nothing at an inner hop reads it, so this change dropped it (the version stays in the lane).\n", thousands(c3-n1))
	}
	if env := m("N1-env"); env > 0 {
		p("- x-gray-release as a claim header (N1 − N1-env): %s. Kept: killed releases' routes and the sidecar span's release tag read it.\n", thousands(n1-env))
	}
	if md := m("N1-metadata"); md > 0 {
		p("- Routing on the lane's payload in dynamic metadata instead of claim headers (N1-metadata − N1): %s. Not kept: jwt_authn copies the payload into the metadata, and the metadata matchers cost more than the headers they replace.\n", signed(md-n1))
	}
	if pr := m("N1-perroute"); pr > 0 {
		p("- The requirement named per route instead of a rule matching every path (N1-perroute − N1): %s. Not kept: no gain beyond the runs' spread, and a route without the per-filter config would go unchecked.\n", signed(pr-n1))
	}
	lane, norules, bare, clear, nostrip := m("H0-lane"), m("N1-norules"), m("N1-bare"), m("N1-bare-clear"), m("N1-nostrip")
	if lane > 0 && norules > 0 && bare > 0 && clear > 0 && nostrip > 0 {
		p("- The check proper, step by step: jwt_authn in the filter chain, verifying nothing (N1-norules − H0-lane) %s; verifying the cached lane (N1-bare − N1-norules) %s; clearing the route cache, so the route is picked again (N1-bare-clear − N1-bare) %s; the claims set as headers instead of the client's x-gray-env (N1-nostrip − N1-bare-clear) %s; the early x-gray-* strip (N1 − N1-nostrip) %s.\n",
			thousands(norules-lane), thousands(bare-norules), thousands(clear-bare), thousands(nostrip-clear), thousands(n1-nostrip))
	}
}

// metadataRoutes has the routes match the lane's payload in dynamic
// metadata instead of claim headers.
func metadataRoutes(hcm *hcmv3.HttpConnectionManager) {
	claim := map[string]string{wire.HeaderEnv: wire.LaneClaimEnv, wire.HeaderRelease: wire.LaneClaimRelease}
	for _, r := range hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes() {
		var kept []*routev3.HeaderMatcher
		for _, h := range r.GetMatch().GetHeaders() {
			c, ok := claim[h.GetName()]
			if !ok {
				kept = append(kept, h)
				continue
			}
			v := &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_PresentMatch{PresentMatch: true}}
			if exact := h.GetStringMatch().GetExact(); exact != "" {
				v = &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: exact}}}}
			}
			r.Match.DynamicMetadata = append(r.Match.DynamicMetadata, &matcherv3.MetadataMatcher{
				Filter: "envoy.filters.http.jwt_authn",
				Path:   []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: "lane"}}, {Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: c}}},
				Value:  v,
			})
		}
		r.Match.Headers = kept
	}
}

// perRouteRequirement names the lane's requirement on the inner virtual
// host (N1-perroute).
func perRouteRequirement(hcm *hcmv3.HttpConnectionManager) {
	a, _ := anypb.New(&jwtauthnv3.PerRouteConfig{RequirementSpecifier: &jwtauthnv3.PerRouteConfig_RequirementName{RequirementName: "lane"}})
	hcm.GetRouteConfig().GetVirtualHosts()[0].TypedPerFilterConfig = map[string]*anypb.Any{xds.LaneFilterName: a}
}

// signed is thousands with a sign.
func signed(n float64) string {
	if n >= 0 {
		return "+" + thousands(n)
	}
	return thousands(n)
}
