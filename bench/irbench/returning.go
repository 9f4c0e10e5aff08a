package irbench

import (
	"fmt"
	"strings"

	matchingv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/matching/v3"
	compositev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/composite/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/graymesh/graymesh/internal/contract/wire"
)

// The edge routing returning callers itself (mesh.native_returning_callers,
// issue 27 item 5): a returning caller, an anonymous request and a
// first-seen caller under the same config, and the mix of them the issue
// takes for an edge's traffic.

// returningConfigs are the edge routing returning callers: the three
// requests of the mix under one config, then three attribution
// configurations.
func returningConfigs() []Config {
	return []Config{
		{
			Name: "EDGE-returning", What: "the edge sidecar's inbound listener as graymesh pushes it with `mesh.native_returning_callers` (and `native_traffic_split`) for a release admitting every identified caller (`percent: 100`, `traffic_percent: 50`): 1,000 distinct callers cycled, each sending its HS256 token and the proof graymesh handed it (`x-graymesh-proof`, obtained in the warm-up from the real graymesh, one first request per caller), the proof already verified once by Envoy (its JWT cache warm); Envoy verifies the proof (a cache lookup), copies its token end and decision to headers (no caller hash: no analysis reads this bench's access log), checks that the authorization header ends with that token end (CEL), re-picks the route and routes without building ext_proc — 0 ext_proc streams in the counts (Envoy's stats), graymesh not asked",
			graymesh: graymeshCurrent, edge: true, returning: true, proofs: true,
			headers: minimalHeaders,
		},
		{
			Name: "EDGE-firstseen", What: "EDGE-returning's listener and graymesh for a caller graymesh has never seen: a new subject's HS256 token on every request, no proof; ext_proc to graymesh, which verifies the token (not in its cache), decides (gray, percent 100) and signs the caller's proof, handed back as dynamic metadata that the route copies into a response header (no second ext_proc message)",
			graymesh: graymeshCurrent, edge: true, returning: true, firstSeen: true,
			headers: minimalHeaders,
		},
		{
			Name: noProofConfig, What: "EDGE-returning's listener and graymesh for returning callers that do not send their proofs back (a client that ignores `x-graymesh-proof`): 1,000 callers cycled, each with its HS256 token only; ext_proc to graymesh, which finds the token in its cache, decides, and hands the caller the proof it handed it before (its proof cache), copied into a response header as for a first-seen caller",
			graymesh: graymeshCurrent, edge: true, returning: true, callers: true,
			headers: minimalHeaders,
		},
		{
			Name: "EDGE-anonymous-proofs", What: "EDGE-anonymous under EDGE-returning's config: an anonymous request (no authorization or cookie) split 50/50 by Envoy, the proof filters in the chain, which the anonymous route, like ext_proc, has Envoy not build",
			edge: true, anonymous: true, returning: true,
			headers: minimalHeaders,
		},
		{
			Name: "H0-returning", What: "H0 with a returning caller's HS256 token and proof sent too (1,000 callers cycled), which nothing reads: what carrying them through Envoy costs (attribution only; the proofs signed by the harness as graymesh signs them)",
			build: (*sidecars).plainHeader, proofs: true,
			headers: func(string) map[string]string {
				return map[string]string{"accept": "application/json", wire.HeaderEnv: "gray"}
			},
		},
		{
			Name: "EDGE-returning-nocel", What: "EDGE-returning with x-gray-proof-bound set to a constant \"true\" instead of the CEL expression checking that the authorization header ends with the proof's token end: what the binding costs (attribution only: any caller's proof would route; the proofs signed by the harness as graymesh signs them)",
			edge: true, returning: true, proofs: true, build: constantBinding,
			headers: minimalHeaders,
		},
		{
			Name: "EDGE-returning-noextproc", What: "EDGE-returning without the ext_proc filter in the chain: what the filter costs a request whose route turns it off, since Envoy still builds it for every request (attribution only: nobody else would be decided; the proofs signed by the harness as graymesh signs them)",
			edge: true, returning: true, proofs: true, build: withoutExtProc, noExtProc: true,
			headers: minimalHeaders,
		},
	}
}

// extProcConfig is the ext_proc config of filter f: the filter's own, or
// the one a composite filter builds behind a matcher (an edge routing
// returning callers).
func extProcConfig(f *hcmv3.HttpFilter) (*extprocv3.ExternalProcessor, error) {
	ep := &extprocv3.ExternalProcessor{}
	if f.GetTypedConfig().MessageIs(ep) {
		return ep, f.GetTypedConfig().UnmarshalTo(ep)
	}
	wrapped := &matchingv3.ExtensionWithMatcher{}
	if err := f.GetTypedConfig().UnmarshalTo(wrapped); err != nil {
		return nil, err
	}
	execute := &compositev3.ExecuteFilterAction{}
	if err := wrapped.GetXdsMatcher().GetOnNoMatch().GetAction().GetTypedConfig().UnmarshalTo(execute); err != nil {
		return nil, err
	}
	return ep, execute.GetTypedConfig().GetTypedConfig().UnmarshalTo(ep)
}

// withoutExtProc drops the ext_proc filter from the listener.
func withoutExtProc(_ *sidecars, hcm *hcmv3.HttpConnectionManager) error {
	for i, f := range hcm.HttpFilters {
		if f.GetName() == wire.ExtProcFilterName {
			hcm.HttpFilters = append(hcm.HttpFilters[:i], hcm.HttpFilters[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("the edge listener has no %s filter", wire.ExtProcFilterName)
}

// proofBoundFilter is the name of the edge's binding filter
// (xds/returning.go).
const proofBoundFilter = "graymesh.proof_bound"

// constantBinding sets x-gray-proof-bound to "true" on every request
// instead of checking that the authorization header ends with the
// proof's token end.
func constantBinding(_ *sidecars, hcm *hcmv3.HttpConnectionManager) error {
	for _, f := range hcm.HttpFilters {
		if f.GetName() != proofBoundFilter {
			continue
		}
		hm := &headermutationv3.HeaderMutation{}
		if err := f.GetTypedConfig().UnmarshalTo(hm); err != nil {
			return err
		}
		muts := hm.GetMutations().GetRequestMutations()
		if len(muts) != 1 || muts[0].GetAppend().GetHeader().GetKey() != wire.HeaderProofBound {
			return fmt.Errorf("%s: %d mutations, want the one of %s", proofBoundFilter, len(muts), wire.HeaderProofBound)
		}
		muts[0].GetAppend().Header.Value = "true"
		a, err := anypb.New(hm)
		if err != nil {
			return err
		}
		f.ConfigType = &hcmv3.HttpFilter_TypedConfig{TypedConfig: a}
		return nil
	}
	return fmt.Errorf("the edge listener has no %s filter", proofBoundFilter)
}

// minimalHeaders are what a client sends besides what identifies it (or
// not): a token, a proof, a cookie.
func minimalHeaders(string) map[string]string { return map[string]string{"accept": "application/json"} }

// Configs are every configuration, in report order; the first is the
// floor the others are compared with.
func Configs() []Config {
	laneHeader := func(lane string) map[string]string { return map[string]string{wire.HeaderLane: lane} }
	return append([]Config{
		{
			Name: "H0", What: "plain header: the inner listener's routes, no lane check, no x-gray-* strip; the client sends x-gray-env: gray (nobody verifies it — the floor)",
			build:   (*sidecars).plainHeader,
			headers: func(string) map[string]string { return map[string]string{wire.HeaderEnv: "gray"} },
		},
		{
			Name: "N1", What: "native lane (this change): the inner listener exactly as graymesh pushes it — x-gray-* strip, jwt_authn with the lane's public keys (inlined here, pushed over ECDS in the mesh), the routes; one lane for every request (one per window in the mesh), so Envoy's JWT cache verifies it once",
			build:   (*sidecars).native,
			headers: laneHeader,
		},
		{
			Name: "N1-fresh", What: "N1 with a lane Envoy has not seen on every request: a full Ed25519 verification each time (what signing a lane per request would cost every inner hop)",
			freshLanes: true,
			build:      (*sidecars).native,
			headers:    laneHeader,
		},
		{
			Name: "N1-baggage", What: "the lane as a W3C baggage member instead of its own header: a Lua filter extracts it (OpenTelemetry reorders members; jwt_authn reads a header to its end), then N1",
			build: (*sidecars).baggage,
			headers: func(lane string) map[string]string {
				return map[string]string{"baggage": "userId=alice,graymesh-lane=" + lane + ",session=s-1"}
			},
		},
		{
			Name: "E1", What: "before this change: the inner listener with graymesh's ext_proc filter (hop inner) and routes on the x-gray-env graymesh sets; graymesh as built before this change (`--graymesh-before`) verifies the lane it signed then (HMAC, in baggage)",
			graymesh: graymeshBefore, beforeLane: true,
			build: (*sidecars).extProc,
			headers: func(lane string) map[string]string {
				return map[string]string{"baggage": "userId=alice,graymesh-lane=" + lane + ",session=s-1"}
			},
		},
		{
			Name: "EDGE", What: "the edge sidecar's inbound listener as graymesh pushes it (x-gray-* and lane strip, ext_proc); graymesh decides gray by a header rule and hands out the window's lane (for the whole chain)",
			graymesh: graymeshCurrent, edge: true,
			headers: func(string) map[string]string { return map[string]string{betaHeader: "1"} },
		},
		{
			Name: "EDGE-before", What: "EDGE answered by graymesh as built before this change, which signed an HMAC lane into baggage",
			graymesh: graymeshBefore, edge: true,
			headers: func(string) map[string]string { return map[string]string{betaHeader: "1"} },
		},
		{
			Name: "EDGE-noop", What: "EDGE's listener answered by the repository's naive no-op ext_proc server (`loadbench noop`: default `grpc.NewServer()`, default GOGC, CONTINUE with an empty response); the same requests as EDGE-cached, served by stable (the floor the edge targets compare with)",
			graymesh: graymeshNoop, edge: true, callers: true, stable: true,
			headers: browserHeaders,
		},
		{
			Name: "EDGE-cached", What: "EDGE with graymesh deciding from an HS256 JWT: 1,000 distinct callers cycled (each verified once in the warm-up), token cache on, admitted by a 100% percentage rule",
			graymesh: graymeshCurrent, edge: true, callers: true,
			headers: browserHeaders,
		},
		{
			Name: "EDGE-anonymous", What: "the edge sidecar's inbound listener as graymesh pushes it with `mesh.native_traffic_split` for a release splitting anonymous traffic 50/50: a request with no authorization or cookie matches the first route, whose weighted clusters set the decision's headers and the window's lane; the route has Envoy not build the ext_proc filter (graymesh not asked)",
			edge: true, anonymous: true,
			headers: func(string) map[string]string { return map[string]string{"accept": "application/json"} },
		},
		{
			Name: "EDGE-uncached", What: "EDGE-cached with graymesh's token cache off (`jwt.cache_size: 0`): every request's HS256 token is verified",
			graymesh: graymeshCurrent, edge: true, callers: true, noCache: true,
			headers: browserHeaders,
		},
	}, append(returningConfigs(), innerVariants()...)...)
}

// The mix: shares of returning callers, anonymous requests and first-seen
// callers.
const (
	mixReturning = 0.8
	mixAnonymous = 0.1
	mixFirstSeen = 0.1
)

// The goals: the mix against Envoy alone routing on a plain
// header (H0) and against today's edge path (EDGE, Envoy + graymesh); a
// returning caller against an inner hop (N1).
const (
	mixH0Bound       = 1.30
	mixEdgeBound     = 0.50
	returningN1Bound = 1.25
)

// The three requests of the mix, by configuration.
const (
	returningConfig   = "EDGE-returning"
	anonymousConfig   = "EDGE-anonymous-proofs"
	firstSeenConfig   = "EDGE-firstseen"
	noProofConfig     = "EDGE-returning-noproof"
	returningCommand  = "make bench-ir BENCH_IR_FLAGS='--configs H0,N1,E1,EDGE,EDGE-before,EDGE-anonymous," + returningConfig + "," + firstSeenConfig + "," + anonymousConfig + "," + noProofConfig + ",EDGE-cached'"
	turn2ChainDefault = 2.64e6
)

// total is a configuration's Envoy and graymesh instructions per request
// (0 when it did not run).
func (r *Result) total(name string) float64 { return r.mean(name) + r.graymeshMean(name) }

// mixShares are the mix's requests, by configuration, and their shares.
var mixShares = []struct {
	name  string
	share float64
}{{returningConfig, mixReturning}, {anonymousConfig, mixAnonymous}, {firstSeenConfig, mixFirstSeen}}

// mix is the mix's instructions per request in Envoy and in graymesh;
// ok when all three of its requests ran.
func (r *Result) mix() (envoy, graymesh float64, ok bool) {
	ok = true
	for _, s := range mixShares {
		if len(r.Counts[s.name]) == 0 {
			ok = false
		}
		envoy += s.share * r.mean(s.name)
		graymesh += s.share * r.graymeshMean(s.name)
	}
	return envoy, graymesh, ok
}

// streams is the ext_proc streams Envoy opened over the counted requests
// of name's rounds, and those requests; ok false when not read.
func (r *Result) streams(name string) (streams, requests int, ok bool) {
	for _, c := range r.Counts[name] {
		if c.Streams < 0 {
			return 0, 0, false
		}
		streams, requests = streams+c.Streams, requests+c.SmallN+c.LargeN
	}
	return streams, requests, requests > 0
}

// streamsPerRequest says name's ext_proc streams per counted request.
func (r *Result) streamsPerRequest(name string) string {
	streams, requests, ok := r.streams(name)
	if !ok {
		return "—"
	}
	return formatFloat(float64(streams)/float64(requests)) + " (" + thousands(float64(streams)) + " in " + thousands(float64(requests)) + ")"
}

// mixStreams is the mix's ext_proc streams per request, from each
// request's measured streams; ok false when one was not read.
func (r *Result) mixStreams() (float64, bool) {
	var sum float64
	for _, s := range mixShares {
		streams, requests, ok := r.streams(s.name)
		if !ok {
			return 0, false
		}
		sum += s.share * float64(streams) / float64(requests)
	}
	return sum, true
}

// formatFloat formats f with up to three decimals, trailing zeros cut.
func formatFloat(f float64) string {
	s := strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", f), "0"), ".")
	if s == "" || s == "-" {
		return "0"
	}
	return s
}

// writeReturningTable is the edge routing returning callers: each request
// of the mix, the mix, and today's edge for comparison.
func writeReturningTable(p func(string, ...any), res *Result) {
	if len(res.Counts[returningConfig])+len(res.Counts[anonymousConfig])+len(res.Counts[firstSeenConfig]) == 0 {
		return
	}
	h0, n1, edge := res.mean("H0"), res.mean("N1"), res.total("EDGE")
	p("The edge routing returning callers itself (`mesh.native_returning_callers`, issue 27 item 5): each request of the mix under the same config (`%s`, `%s`, `%s`), the mix computed from them (%.0f%% returning, %.0f%% anonymous, %.0f%% first-seen), and today's edge (EDGE) beside them. Envoy + graymesh per request; ext_proc streams from the edge Envoy's stats (`ext_proc.streams_started`) over the counted requests:\n\n",
		returningConfig, anonymousConfig, firstSeenConfig, 100*mixReturning, 100*mixAnonymous, 100*mixFirstSeen)
	p("| request | share | Envoy | graymesh | Envoy + graymesh | × H0 | × N1 | × EDGE | ext_proc streams per request |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	row := func(name, share string, envoy, graymesh float64, asked bool, streams string) {
		gm := "0 (not asked)"
		if asked {
			gm = thousands(graymesh)
		}
		total := envoy + graymesh
		p("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", name, share, thousands(envoy), gm, thousands(total), ratio(total, h0), ratio(total, n1), ratio(total, edge), streams)
	}
	for _, r := range []struct {
		name  string
		share float64
		asked bool
	}{{returningConfig, mixReturning, false}, {anonymousConfig, mixAnonymous, false}, {firstSeenConfig, mixFirstSeen, true}} {
		if len(res.Counts[r.name]) > 0 {
			row(r.name, formatFloat(100*r.share)+"%", res.mean(r.name), res.graymeshMean(r.name), r.asked, res.streamsPerRequest(r.name))
		}
	}
	if envoy, graymesh, ok := res.mix(); ok {
		streams := "—"
		if per, ok := res.mixStreams(); ok {
			streams = formatFloat(per) + " (" + thousands(1000*per) + " per 1,000 requests)"
		}
		row("**mix**", "100%", envoy, graymesh, true, streams)
	}
	if edge > 0 {
		row("EDGE (today: every request to graymesh)", "—", res.mean("EDGE"), res.graymeshMean("EDGE"), true, res.streamsPerRequest("EDGE"))
	}
	if anon := res.mean("EDGE-anonymous"); anon > 0 {
		row("EDGE-anonymous (no proof filters)", "—", anon, 0, false, res.streamsPerRequest("EDGE-anonymous"))
	}
	if noProof := res.mean(noProofConfig); noProof > 0 {
		row(noProofConfig+" (a caller that does not send its proof back)", "—", noProof, res.graymeshMean(noProofConfig), true, res.streamsPerRequest(noProofConfig))
	}
	p("\nTo measure these rows alone:\n\n```sh\n%s\n```\n\n", returningCommand)
}

// writeReturningTargets are the goals rows for the returning callers.
func writeReturningTargets(p func(string, ...any), res *Result) {
	h0, n1, edge := res.mean("H0"), res.mean("N1"), res.total("EDGE")
	if ret := res.total(returningConfig); len(res.Counts[returningConfig]) > 0 {
		p("| a returning caller at the edge (Envoy; graymesh not asked) vs an inner hop | %s ≤ %.2f × N1 | %s (returning %s, N1 %s) | %s |\n",
			returningConfig, returningN1Bound, ratio(ret, n1), thousands(ret), thousands(n1), verdict(n1 > 0, ret <= returningN1Bound*n1))
	}
	envoy, graymesh, ok := res.mix()
	if !ok {
		return
	}
	mix := envoy + graymesh
	p("| the mix at the edge (80%% returning, 10%% anonymous, 10%% first-seen; Envoy + graymesh) vs Envoy alone on a plain header | mix ≤ %.2f × H0 | %s (mix %s = Envoy %s + graymesh %s, H0 %s) | %s |\n",
		mixH0Bound, ratio(mix, h0), thousands(mix), thousands(envoy), thousands(graymesh), thousands(h0), verdict(h0 > 0, mix <= mixH0Bound*h0))
	p("| the mix vs today's edge path (EDGE: Envoy + graymesh) | mix ≤ %.2f × EDGE | %s (mix %s, EDGE %s) | %s |\n",
		mixEdgeBound, ratio(mix, edge), thousands(mix), thousands(edge), verdict(edge > 0, mix <= mixEdgeBound*edge))
	if n1 > 0 {
		chain := mix + chainHops*n1
		turn2, how := res.total("EDGE-before")+chainHops*res.total("E1"), "EDGE-before + 3 × E1, this run"
		if res.mean("EDGE-before") == 0 || res.mean("E1") == 0 {
			turn2, how = turn2ChainDefault, "the figure of before"
		}
		p("| the 4-hop chain for the mix (mix + 3 × N1) vs turn 2 and today | none set | %s (%s) of turn 2 (%s, %s); %s of today (EDGE + 3 × N1: %s) | — |\n",
			ratio(chain, turn2), thousands(chain), thousands(turn2), how, ratio(chain, edge+chainHops*n1), thousands(edge+chainHops*n1))
	}
}

// writeReturningReading says what the returning callers' figures mean.
func writeReturningReading(p func(string, ...any), res *Result) {
	ret, anonP, fe, fg := res.mean(returningConfig), res.mean(anonymousConfig), res.mean(firstSeenConfig), res.graymeshMean(firstSeenConfig)
	h0, n1, edgeEnvoy, edge := res.mean("H0"), res.mean("N1"), res.mean("EDGE"), res.total("EDGE")
	if ret == 0 || h0 == 0 || n1 == 0 || edge == 0 {
		return
	}
	p("- A returning caller (%s: its HS256 token, %d bytes, which Envoy does not verify, and its proof, %d bytes, verified by Envoy once and then found in jwt_authn's cache) costs %s instructions, all in Envoy, graymesh not asked (0 ext_proc streams in the counts): %s H0, %s N1, %s today's edge (EDGE, Envoy %s + graymesh %s). Over N1 (%s more), Envoy carries a token and a proof instead of a lane, looks the proof up in its JWT cache, copies the token end and decision it names to headers and clears the route cache, runs the CEL binding, matches the proof route's headers, and sets the decision's headers and the window's lane on the route.\n",
		returningConfig, res.TokenBytes, res.ProofBytes, thousands(ret), ratio(ret, h0), ratio(ret, n1), ratio(ret, edge), thousands(edgeEnvoy), thousands(res.graymeshMean("EDGE")), thousands(ret-n1))
	if carry, nocel := res.mean("H0-returning"), res.mean("EDGE-returning-nocel"); carry > 0 && nocel > 0 {
		p("- Where a returning caller's %s over H0 go (attribution): carrying its token and proof (and the accept header the mix's requests send) through Envoy, which nothing reads (H0-returning − H0), %s; the CEL binding (EDGE-returning − EDGE-returning-nocel), %s; the rest — the edge listener's strip, the jwt_authn proof lookup and claim headers, the route picked again, the proof route's match, the decision's headers and lane it sets, the matcher that does not build ext_proc (EDGE-returning-nocel − H0-returning) — %s.\n",
			thousands(ret-h0), thousands(carry-h0), thousands(ret-nocel), thousands(nocel-carry))
		if bare := res.mean("EDGE-returning-noextproc"); bare > 0 {
			p("  The ext_proc filter, wrapped so that Envoy builds it only where the route asks graymesh, costs a returning caller %s (EDGE-returning − EDGE-returning-noextproc, which has no ext_proc filter at all).\n", thousands(ret-bare))
		}
		if anon := res.mean("EDGE-anonymous"); anon > 0 {
			p("  For scale: an anonymous request on the edge listener without the proof filters, whose route sets the decision's headers and lane with ext_proc not built, costs %s over H0 (EDGE-anonymous − H0).\n", thousands(anon-h0))
		}
	}
	if anon := res.mean("EDGE-anonymous"); anonP > 0 && anon > 0 {
		p("- An anonymous request under the same config (%s) costs %s, all in Envoy: %s H0; %s more than EDGE-anonymous (%s), though the anonymous route has Envoy build neither the proof filters nor ext_proc (not attributed further; the proof routes Envoy tries before it are one part).\n",
			anonymousConfig, thousands(anonP), ratio(anonP, h0), thousands(anonP-anon), thousands(anon))
	}
	if fe > 0 {
		p("- A first-seen caller (%s: a new HS256 token on every request) costs %s in Envoy and %s in graymesh: %s H0, %s EDGE. graymesh verifies the HS256 token (not in its cache), decides and signs an Ed25519 proof; Envoy spends %s more than EDGE's Envoy: the ext_proc filter built behind its matcher, the token's header, and the proof copied from graymesh's answer into the response (the proof filters are not built: the request has no proof).", firstSeenConfig, thousands(fe), thousands(fg), ratio(fe+fg, h0), ratio(fe+fg, edge), thousands(fe-edgeEnvoy))
		if un := res.graymeshMean("EDGE-uncached"); un > 0 {
			p(" graymesh's %s is %s more than EDGE-uncached's %s (the same HS256 token verification every request, no proof to sign or hand back): mostly the proof's Ed25519 signature, which costs Go's crypto/ed25519 about 293k instructions (`BenchmarkEd25519Sign` in internal/core/lane under callgrind).", thousands(fg), thousands(fg-un), thousands(un))
		}
		p(" The callers' tokens are HS256 in every row of the mix, as in EDGE-cached: Envoy never verifies them, so any issuer's will do.\n")
	}
	if ne, ng := res.mean(noProofConfig), res.graymeshMean(noProofConfig); ne > 0 {
		p("- A returning caller that does not send its proof back (%s: 1,000 callers cycled, each with its HS256 token, in graymesh's token cache) costs %s in Envoy and %s in graymesh: graymesh decides and hands the caller the proof it handed it before, from its proof cache, without signing again.", noProofConfig, thousands(ne), thousands(ng))
		if ce, cg := res.mean("EDGE-cached"), res.graymeshMean("EDGE-cached"); ce > 0 {
			p(" EDGE-cached, the same callers without returning callers on, costs %s in Envoy and %s in graymesh; graymesh's difference is the proof handed back as dynamic metadata and the garbage it collects for it.", thousands(ce), thousands(cg))
		}
		p("\n")
	}
	if envoy, graymesh, ok := res.mix(); ok {
		mix := envoy + graymesh
		p("- The mix (%.0f%% returning, %.0f%% anonymous, %.0f%% first-seen) costs %s per request (Envoy %s, graymesh %s): %s H0 (goal ≤ %.2f×), %s EDGE (goal ≤ %.2f×). Its first-seen tenth is %.0f%% of it, its returning eight tenths %.0f%%.\n",
			100*mixReturning, 100*mixAnonymous, 100*mixFirstSeen, thousands(mix), thousands(envoy), thousands(graymesh),
			ratio(mix, h0), mixH0Bound, ratio(mix, edge), mixEdgeBound, 100*mixFirstSeen*(fe+fg)/mix, 100*mixReturning*ret/mix)
		writeMixBudget(p, res)
	}
}

// returningBudget is what a returning caller may cost for the mix to cost
// at most bound when its anonymous request costs anon and its first-seen
// caller firstSeen.
func returningBudget(bound, anon, firstSeen float64) float64 {
	return (bound - mixAnonymous*anon - mixFirstSeen*firstSeen) / mixReturning
}

// writeMixBudget says what the mix's goals leave a returning caller with
// the other two requests at their floors: an anonymous request at H0, and
// a first-seen caller, which the item 1 sends through ext_proc, at
// EDGE's Envoy (an edge asking graymesh about a request with no token to
// carry) plus EDGE-cached's graymesh (a decision on a cached token, no
// proof to sign). A budget below H0-returning, which only carries the
// token and proof, is out of reach whatever the proof route costs.
func writeMixBudget(p func(string, ...any), res *Result) {
	h0, carry, edge, cached := res.mean("H0"), res.mean("H0-returning"), res.total("EDGE"), res.graymeshMean("EDGE-cached")
	firstSeenFloor := res.mean("EDGE") + cached
	if h0 == 0 || carry == 0 || edge == 0 || cached == 0 {
		return
	}
	reach := func(budget float64, why string) string {
		if budget < carry {
			return "below H0-returning: out of reach " + why
		}
		return "not below H0-returning"
	}
	const atFloor, asMeasured = "while a first-seen caller goes through ext_proc", "at these costs"
	onH0 := returningBudget(mixH0Bound*h0, h0, firstSeenFloor)
	onEdge := returningBudget(mixEdgeBound*edge, h0, firstSeenFloor)
	p("- What the mix's goals leave a returning caller, the other two requests at their floors: an anonymous request at H0 (%s), a first-seen caller, which item 1 sends through ext_proc, at EDGE's Envoy plus EDGE-cached's graymesh (%s: an edge asking graymesh about a request with no token to carry, answered from a cached token with no proof to sign). A returning caller's own floor is carrying its token and proof with nothing reading them (H0-returning, %s). Mix ≤ %.2f× H0 leaves it %s (%s H0, %s N1): %s. Mix ≤ %.2f× EDGE leaves it %s: %s",
		thousands(h0), thousands(firstSeenFloor), thousands(carry), mixH0Bound, thousands(onH0), ratio(onH0, h0), ratio(onH0, res.mean("N1")), reach(onH0, atFloor),
		mixEdgeBound, thousands(onEdge), reach(onEdge, atFloor))
	if anon, fs := res.mean(anonymousConfig), res.total(firstSeenConfig); anon > 0 && res.mean(firstSeenConfig) > 0 {
		measured := returningBudget(mixEdgeBound*edge, anon, fs)
		p("; with the anonymous and first-seen requests as measured (%s, %s), %s: %s", thousands(anon), thousands(fs), thousands(measured), reach(measured, asMeasured))
	}
	p(".\n")
}
