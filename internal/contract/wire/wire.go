// Package wire is graymesh's wire contract: the names that cross a process
// boundary between graymesh, Envoy and the services of the mesh. It is a
// leaf: it imports nothing of graymesh, and every other package takes these
// names from here instead of spelling them out.
package wire

// HeaderPrefix is reserved: every request header graymesh sets starts with
// it, and every client-supplied header with it is removed before routing.
const HeaderPrefix = "x-gray-"

// Request headers graymesh sets after a decision; Envoy routes on Env.
const (
	// HeaderEnv names the environment that serves the request.
	HeaderEnv = HeaderPrefix + "env"
	// HeaderRelease names the release that decided.
	HeaderRelease = HeaderPrefix + "release"
	// HeaderReason says why (a gray.Reason).
	HeaderReason = HeaderPrefix + "reason"
	// HeaderVersion is the config version the decision was made with; it
	// is copied to the response so clients see when the rules changed.
	HeaderVersion = HeaderPrefix + "version"
	// HeaderFallback says why a hop is served by stable despite its lane.
	HeaderFallback = HeaderPrefix + "fallback"
)

// HeaderRequestID is the request id Envoy sets on every request it
// accepts (x-request-id); a traffic-weighted release draws on it.
const HeaderRequestID = "x-request-id"

// HeaderLane carries the signed lane from hop to hop: a compact JWS that
// graymesh signs at the edge and each inner hop's Envoy verifies itself
// (jwt_authn). It is its own header, not a W3C baggage member: Envoy's
// extractor takes a header's whole value, and OpenTelemetry does not keep
// baggage members in order. It does not start with HeaderPrefix because
// inner hops must keep it: only edge listeners strip it from clients.
const HeaderLane = "x-graymesh-lane"

// HeaderLaneProblem says why an inner hop refused the lane it was handed
// (Envoy's jwt_authn status message, e.g. "Jwt is expired").
const HeaderLaneProblem = HeaderPrefix + "lane-problem"

// The lane's JWS: its issuer and the claims an inner hop's Envoy copies
// into the decision's headers. Every byte of the lane is carried, parsed
// and forwarded by every hop of every request (a 258-byte lane cost an
// inner hop's Envoy ~17k instructions per request just to carry, bench-ir
// H0-lane), hence names of one or two letters.
const (
	// LaneIssuer is the iss of every lane; Envoy accepts no other. It is
	// not StressIssuer, so a stress marker never passes for a lane.
	LaneIssuer = "gl"
	// LaneClaimEnv and LaneClaimRelease become HeaderEnv and
	// HeaderRelease at an inner hop; LaneClaimVersion becomes
	// HeaderVersion only while a kill's route compares it (Kubernetes
	// mode), and otherwise stays in the lane. The version is a JSON
	// number when it is an integer (Envoy's claim_to_headers writes an
	// integral number as its decimal text, which the kill route's
	// range_match reads), else a string.
	LaneClaimEnv     = "e"
	LaneClaimRelease = "r"
	LaneClaimVersion = "v"
	// LaneClaimStress is 1 in the lane of a stress-test request: every
	// inner hop's Envoy copies it into HeaderStress ("1").
	LaneClaimStress = "s"
)

// Stress tests: load a release's environment as if it were fully ramped,
// with requests marked so that every hop and every service can tell them
// from real ones.
const (
	// HeaderStressMarker carries the stress marker a load test sends to
	// the edge: a JWS graymesh minted (StressIssuer) naming one release.
	// graymesh verifies it at the edge; it does not travel further, the
	// lane carries what it decided.
	HeaderStressMarker = "x-graymesh-stress"
	// StressIssuer is the iss of every stress marker. It is not
	// LaneIssuer, so a marker can never pass for a lane.
	StressIssuer = "graymesh-stress"
	// HeaderStress is "1" on every hop of a stress-test request (set by
	// the edge's decision and, at inner hops, from the lane's
	// LaneClaimStress): what a service reads to keep shadow data apart.
	HeaderStress = HeaderPrefix + "stress"
)

// Reasons an inner hop gives in HeaderReason: its sidecar's route says
// them (graymesh is not asked). The edge's reasons are the decision's.
const (
	// ReasonLane: the lane verified and this hop serves it.
	ReasonLane = "lane"
	// ReasonLaneMissing: no lane came with the request (traces say
	// ReasonDefault).
	ReasonLaneMissing = "lane-missing"
	// ReasonLaneRefused: a lane came but did not verify (forged, altered,
	// expired, signed with a key no longer published); HeaderLaneProblem
	// says why.
	ReasonLaneRefused = "lane-refused"
	// ReasonKilled: the lane's release is killed.
	ReasonKilled = "killed"
)

// ReasonTrafficEnvoy is the edge's reason for an anonymous request Envoy
// split itself (mesh.native_traffic_split): its route, not graymesh, says
// it, so it is part of the wire contract like the inner hops' reasons.
const ReasonTrafficEnvoy = "traffic-envoy"

// Default names of the membership token a caller sends back.
const (
	DefaultMembershipCookie = "gm_member"
	DefaultMembershipHeader = "x-graymesh-member"
)

// gRPC initial metadata the ext_proc filter sends (grpc_service
// initial_metadata) to say which hop is calling; one graymesh serves edge
// and inner hops alike.
const (
	MetadataHop     = "x-graymesh-hop"
	MetadataService = "x-graymesh-service"
	// HopEdge decides; HopInner honours the lane it is handed. A stream
	// without the hop key is an edge.
	HopEdge  = "edge"
	HopInner = "inner"
)

// ExtProcFilterName is the ext_proc HTTP filter's name in Envoy's listener
// config. Envoy keys request attributes in a ProcessingRequest by this name.
const ExtProcFilterName = "envoy.filters.http.ext_proc"

// SourceAddressAttribute is the Envoy request attribute holding the
// downstream peer's address as Envoy saw it; unlike X-Forwarded-For, a
// client cannot forge it.
const SourceAddressAttribute = "source.address"

// MetadataCaller is the key, in MetadataNamespace, of the dynamic metadata
// graymesh's ext_proc answer sets at the edge for Envoy's access log to
// carry back to graymesh's analysis: the keyed hash of the caller the
// decision was for.
const MetadataCaller = "caller"

// MetadataProof is the key, in MetadataNamespace, of the proof graymesh's
// answer hands a caller (mesh.native_returning_callers): the edge's
// virtual hosts copy it into the response's HeaderProof, so handing it
// out needs no ext_proc message for the response headers.
const MetadataProof = "proof"

// AccessLogName is the log_name of the access log Envoy streams to
// graymesh.
const AccessLogName = "graymesh.analysis"

// A returning caller's proof (mesh.native_returning_callers): the edge's
// decision for one caller's token, which graymesh hands back with its
// answer and the caller sends on later requests with that token. The
// edge's Envoy verifies the proof, checks that the request's authorization
// header ends with the end of the token the proof names and that the
// proof is of the config in force, and routes on it without asking
// graymesh.
const (
	// HeaderProof carries the proof: a response header the edge's Envoy
	// sets from graymesh's answer (MetadataProof), a request header the
	// caller sends back. It does not start with
	// HeaderPrefix, which the edge strips.
	HeaderProof = "x-graymesh-proof"
	// ProofIssuer is the iss of every proof. It is neither LaneIssuer
	// nor StressIssuer: a proof never passes for a lane or a marker.
	ProofIssuer = "gp"
	// ProofClaimToken is the end of the caller's authorization header
	// (ProofTokenBytes of its token's signature); ProofClaimDecision is
	// the decision (ProofDecision); ProofClaimCallerHash is the keyed
	// caller hash the access log carries to the analysis
	// (MetadataCaller).
	ProofClaimToken      = "t"
	ProofClaimDecision   = "d"
	ProofClaimCallerHash = "h"
	// ProofTokenBytes is how much of the token's end a proof names: 22
	// base64url characters of its signature, 132 bits no one without
	// the token can guess.
	ProofTokenBytes = 22
	// ReasonProof is the edge's reason for a request Envoy routed on the
	// caller's proof: its route, not graymesh, says it.
	ReasonProof = "proof"
)

// ProofDecision is a proof's decision as one claim, and one header the
// proof routes match: the config version, the environment and the release
// ("" for none), joined by "/", which no version or name contains. One
// claim costs Envoy one header to copy and one to match, not three.
func ProofDecision(version, env, release string) string {
	return version + "/" + env + "/" + release
}

// Request headers the edge's Envoy sets while it checks a proof, from
// the verified proof. They start with HeaderPrefix, so a client cannot
// send them.
const (
	HeaderProofToken      = HeaderPrefix + "proof-token"
	HeaderProofDecision   = HeaderPrefix + "proof-decision"
	HeaderProofCallerHash = HeaderPrefix + "proof-caller-hash"
	// HeaderProofBound is "true" when the request's authorization header
	// ends with the proof's token.
	HeaderProofBound = HeaderPrefix + "proof-bound"
)

// JWTAuthnNamespace is where Envoy's jwt_authn writes dynamic metadata,
// whatever the filter is named.
const JWTAuthnNamespace = "envoy.filters.http.jwt_authn"
