package xds

import (
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	jwtauthnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/plan"
)

// Names of the inner hops' lane check in Envoy's config.
const (
	// LaneFilterName names the lane check's HTTP filter and the extension
	// config (ECDS) resource that configures it.
	LaneFilterName = "graymesh.lane"
	// jwtAuthnMetadata is where jwt_authn writes dynamic metadata, whatever
	// the filter is named.
	jwtAuthnMetadata = wire.JWTAuthnNamespace
	// laneProvider names the lane's provider, and the dynamic metadata
	// entry where jwt_authn says why a lane failed (code, message).
	laneProvider = "graymesh_lane"
)

// laneCacheSize bounds each inner sidecar's cache of verified lanes. The
// edge signs one lane per environment, release and config version per
// expiry window, so a sidecar sees a handful at a time; the cache means
// each is verified once per sidecar, not once per request.
const laneCacheSize = 1024

// laneFilter is the inner listener's lane check. Its config (laneConfig)
// comes over ADS as an extension config (ECDS), not inside the listener:
// a new key set then applies to the next request on every connection,
// where a changed listener would be replaced and its open connections
// drained for minutes on the old keys — refusing the lanes of a new key,
// or honouring a retired one.
func laneFilter() *hcmv3.HttpFilter { return discoveredJWTFilter(LaneFilterName) }

// discoveredJWTFilter is a jwt_authn filter whose config, the extension
// config resource of the same name, comes over ADS.
func discoveredJWTFilter(name string) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_ConfigDiscovery{
		ConfigDiscovery: &corev3.ExtensionConfigSource{
			ConfigSource: adsSource(),
			TypeUrls:     []string{"type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"},
		},
	}}
}

// laneConfig verifies the lane an inner hop is handed inside Envoy, with
// the public keys graymesh pushes (nothing to ask, no private key on the
// sidecar):
//
//   - a lane that verifies sets x-gray-env and x-gray-release from its
//     claims and re-picks the route, which then matches on them
//     (plan.Service.InnerRoutes);
//   - a missing or failing lane lets the request go on without those
//     headers (allow_missing_or_failed), so the routes send it to stable;
//     why it failed is left in dynamic metadata for the route to say;
//   - the lane stays on the request (forward) for the service to pass on.
//
// Every x-gray-* header a client sent is gone before this runs (the
// listener's early header mutation), so only a verified lane routes.
//
// With versionHeader (a kill in force whose route compares versions,
// plan.Plan.KilledThrough), the lane's config version becomes
// x-gray-version too.
func laneConfig(l *plan.Lane, versionHeader bool) (*corev3.TypedExtensionConfig, error) {
	claims := []*jwtauthnv3.JwtClaimToHeader{
		{HeaderName: wire.HeaderEnv, ClaimName: wire.LaneClaimEnv},
		{HeaderName: wire.HeaderRelease, ClaimName: wire.LaneClaimRelease},
		// Only a stress-test request's lane has the claim: the service
		// reads the header to keep shadow data apart.
		{HeaderName: wire.HeaderStress, ClaimName: wire.LaneClaimStress},
	}
	if versionHeader {
		claims = append(claims, &jwtauthnv3.JwtClaimToHeader{HeaderName: wire.HeaderVersion, ClaimName: wire.LaneClaimVersion})
	}
	provider := &jwtauthnv3.JwtProvider{
		Issuer:      wire.LaneIssuer,
		FromHeaders: []*jwtauthnv3.JwtHeader{{Name: wire.HeaderLane}},
		// The service passes the lane on to the next hop.
		Forward: true,
		JwksSourceSpecifier: &jwtauthnv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
			Specifier: &corev3.DataSource_InlineString{InlineString: l.Keys},
		}},
		// Only the claims a route, a span or the service reads: the
		// environment (the routes), the release (killed releases'
		// routes, the span's release tag), the stress mark (the
		// service, the span), and the version only while a kill's
		// route compares it. Each header costs every request: the lane's
		// config version as x-gray-version cost an inner hop's Envoy
		// ~7k instructions per request (the claim, the request header
		// and the response header copying it; bench-ir, N1-claims3),
		// so it is paid during a kill only.
		ClaimToHeaders: claims,
		// The route was picked before the claims became headers.
		ClearRouteCache:        true,
		FailedStatusInMetadata: laneProvider,
		RequireExpiration:      true,
		// A lane graymesh signed never lives longer than the TTL (plus
		// the skew): refuse one that claims to.
		MaxLifetime:      durationpb.New(l.TTL + l.ClockSkew),
		ClockSkewSeconds: uint32(max(l.ClockSkew/time.Second, 1)),
		JwtCacheConfig:   &jwtauthnv3.JwtCacheConfig{JwtCacheSize: laneCacheSize},
	}
	cfg := &jwtauthnv3.JwtAuthentication{
		Providers: map[string]*jwtauthnv3.JwtProvider{laneProvider: provider},
		Rules: []*jwtauthnv3.RequirementRule{{
			Match:           routeMatch(plan.Match{Kind: plan.MatchAll}),
			RequirementType: &jwtauthnv3.RequirementRule_Requires{Requires: laneRequirement()},
		}},
	}
	a, err := anypb.New(cfg)
	if err != nil {
		return nil, err
	}
	return &corev3.TypedExtensionConfig{Name: LaneFilterName, TypedConfig: a}, nil
}

// laneRequirement accepts a request whatever its lane (the routes send
// one that did not verify to stable), but names the provider first: only
// an authenticator bound to a provider uses the JWT cache, so a bare
// allow_missing_or_failed would verify the signature of every request.
// The fallback runs only when the lane is missing or did not verify.
func laneRequirement() *jwtauthnv3.JwtRequirement {
	return &jwtauthnv3.JwtRequirement{RequiresType: &jwtauthnv3.JwtRequirement_RequiresAny{RequiresAny: &jwtauthnv3.JwtRequirementOrList{
		Requirements: []*jwtauthnv3.JwtRequirement{
			{RequiresType: &jwtauthnv3.JwtRequirement_ProviderName{ProviderName: laneProvider}},
			{RequiresType: &jwtauthnv3.JwtRequirement_AllowMissingOrFailed{AllowMissingOrFailed: &emptypb.Empty{}}},
		},
	}}}
}

// laneProblem is Envoy's own words for why the lane failed (jwt_authn's
// status message), e.g. "Jwt is expired".
const laneProblem = "%DYNAMIC_METADATA(" + jwtAuthnMetadata + ":" + laneProvider + ":message)%"
