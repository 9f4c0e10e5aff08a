package wire

// Trace vocabulary: the span attributes graymesh's decision spans, the
// sidecar Envoys (custom tags) and the services of the mesh write, and
// verify-traces reads. Every span that knows which environment served its
// hop says so with the same names; an attribute with nothing to say is
// left off (no empty strings, no bucket -1). docs/traces.md has the table.
//
// Names follow OpenTelemetry's feature_flag semantic conventions where
// they fit: the flag is "which environment serves this request"
// (FlagKey), a variant is an environment.
const (
	// AttrFlagKey is the flag evaluated: always FlagKey (decision spans).
	AttrFlagKey = "feature_flag.key"
	// AttrProvider names the provider: always ProviderName (decision spans).
	AttrProvider = "feature_flag.provider.name"
	// AttrVariant is the environment that serves the hop — stable at a
	// fallback, whatever the lane says.
	AttrVariant = "feature_flag.result.variant"
	// AttrReason says why the hop is served by AttrVariant: graymesh's
	// reason (whitelist, percent, lane, killed, …; ReasonDefault when an
	// inner hop was handed no lane).
	AttrReason = "feature_flag.result.reason"
	// AttrVersion is the config version that decided. On an inner hop's
	// sidecar span it is set only where a kill stopped the lane: the
	// version of that node's config, the newest lane version its kill
	// stops.
	AttrVersion = "feature_flag.version"
	// AttrContextID is the keyed hash of the caller's subject, never the
	// subject itself.
	AttrContextID = "feature_flag.context.id"

	// AttrLane is the environment the request's lane names: what later
	// hops serve. It differs from AttrVariant only at a fallback.
	AttrLane = "graymesh.lane"
	// AttrFallback says why stable serves the hop although the lane names
	// another environment (no-gray-version, gray-unavailable).
	AttrFallback = "graymesh.fallback"
	// AttrRelease is the release that decided.
	AttrRelease = "graymesh.release"
	// AttrRule is the rule inside the release that decided.
	AttrRule = "graymesh.rule"
	// AttrBucket is the caller's bucket (0..9999) for the deciding
	// release, when one was computed.
	AttrBucket = "graymesh.bucket"
	// AttrHop is HopEdge or HopInner; only decision spans carry it.
	AttrHop = "graymesh.hop"
	// AttrService is the service the hop belongs to.
	AttrService = "graymesh.service"
	// AttrTokenProblem says why the caller's token was rejected.
	AttrTokenProblem = "graymesh.token_problem"
	// AttrLaneProblem says why an inner hop refused the lane it was
	// handed (Envoy's words: "Jwt is expired", "Jwt verification fails").
	AttrLaneProblem = "graymesh.lane_problem"
	// AttrStress is "1" on every span of a stress-test request (decision
	// spans and sidecar spans alike): shadow load, kept apart from real
	// load. The edge's decision span also says AttrReason "stress".
	AttrStress = "graymesh.stress"
)

// Values of the trace vocabulary.
const (
	// FlagKey is the flag every decision evaluates.
	FlagKey = "graymesh.env"
	// ProviderName is graymesh as a feature-flag provider.
	ProviderName = "graymesh"
	// ReasonDefault is the reason of an inner hop handed no lane (an
	// anonymous caller's request, or a service that dropped the lane):
	// the default environment, stable, serves it. OpenTelemetry's
	// well-known reason "default"; graymesh's decision calls it
	// lane-missing.
	ReasonDefault = "default"
	// ReasonError is what an edge sidecar's span says when graymesh's
	// answer never reached it (ext_proc's message timeout expired, or
	// graymesh was down) and the filter failed open: the request went on
	// without graymesh's headers. OpenTelemetry's well-known reason
	// "error".
	ReasonError = "error"
	// UnavailableSuffix follows the environment a fallback stands in for
	// when that environment's endpoints did not answer
	// (graymesh.fallback "gray-unavailable").
	UnavailableSuffix = "-unavailable"
)

// Span names. Sidecar spans are named "<direction> <service>" (outbound:
// "outbound <service>-><peer>"); graymesh's decision spans
// "decide <service>" at the edge and "follow-lane <service>" at inner hops.
const (
	SpanInbound  = "inbound"
	SpanOutbound = "outbound"
	SpanFallback = "fallback"
	SpanDecide   = "decide"
	SpanFollow   = "follow-lane"
)

// Envoy metadata graymesh writes for its sidecars' spans, all in
// MetadataNamespace: endpoint metadata on every environment's endpoints
// (which environment an endpoint serves, and why a fallback endpoint
// does), and dynamic metadata from ext_proc (the decision's reason in the
// trace vocabulary).
const (
	MetadataNamespace = "graymesh"
	// MetadataEnv is the environment an endpoint serves.
	MetadataEnv = "env"
	// MetadataFallback is why a fallback endpoint serves stable.
	MetadataFallback = "fallback"
	// MetadataReason is the decision's reason, as AttrReason says it.
	MetadataReason = "reason"
	// MetadataVersion is, on an inner hop's kill route, the newest lane
	// version the kill stops: the node's config version (AttrVersion on
	// the sidecar's span).
	MetadataVersion = "version"
)
