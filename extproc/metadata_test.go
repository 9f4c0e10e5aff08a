package extproc

import (
	"log/slog"
	"testing"
	"time"

	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/gray"
)

// TestCallerMetadataOnlyWithAnalysis: the caller's hash rides in dynamic
// metadata when Envoy streams its access log to graymesh, and not
// otherwise; an anonymous caller without a device id is not named.
func TestCallerMetadataOnlyWithAnalysis(t *testing.T) {
	withAnalysis := testConfig + `    analysis: {interval: 10s}
services:
  - name: shop
    environments: {stable: ["127.0.0.1:9101"], gray: ["127.0.0.1:9102"]}
`
	tests := []struct {
		name    string
		policy  *gray.Policy
		headers []string
		want    bool
	}{
		{"analysis, verified caller", compile(t, withAnalysis), []string{"authorization", "Bearer " + token(t, "alice")}, true},
		{"analysis, anonymous", compile(t, withAnalysis), nil, false},
		{"no analysis", testPolicy(t), []string{"authorization", "Bearer " + token(t, "alice")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(tt.policy, slog.New(slog.DiscardHandler), nil)
			p, o := s.decide(t.Context(), &streamState{}, &extprocsvcv3.HttpHeaders{Headers: headers(tt.headers...)}, nil)
			resp := Response(&o, nil)
			setCallerMetadata(resp, p, &o)
			got := resp.GetDynamicMetadata().GetFields()[wire.MetadataNamespace].GetStructValue().GetFields()[wire.MetadataCaller].GetStringValue()
			if (got != "") != tt.want {
				t.Fatalf("caller metadata %q, want set=%v", got, tt.want)
			}
			if tt.want && got != p.SubjectHash("alice") {
				t.Fatalf("caller %q is not alice's hash", got)
			}
		})
	}
}

// TestProofRidesInMetadata: the proof graymesh hands a returning caller
// goes in the answer's dynamic metadata, which the edge's Envoy copies
// into the response (xds), so the request needs no second message for
// its response headers; a membership token still asks for one.
func TestProofRidesInMetadata(t *testing.T) {
	cfg, err := config.Parse([]byte(`
mesh: {native_returning_callers: true}
lane: {key: graymesh-extproc-test-lane-key-0123456789}
identity:
  jwt:
    algorithms: [HS256]
    keys: [{kid: k, alg: HS256, secret: "`+testSecret+`"}]
releases:
  - {name: shop-v2, env: gray, salt: s, whitelist: [alice]}
services:
  - {name: shop, environments: {stable: ["127.0.0.1:9101"], gray: ["127.0.0.1:9102"]}}
`), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Version = "7"
	p, err := gray.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := New(p, slog.New(slog.DiscardHandler), nil)
	st := &streamState{hop: gray.Hop{Service: "shop"}}
	resp, err := s.answer(t.Context(), st, &extprocsvcv3.ProcessingRequest{Request: &extprocsvcv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocsvcv3.HttpHeaders{Headers: headers("authorization", "Bearer "+token(t, "alice"))},
	}})
	if err != nil {
		t.Fatal(err)
	}
	proof := resp.GetDynamicMetadata().GetFields()[wire.MetadataNamespace].GetStructValue().GetFields()[wire.MetadataProof].GetStringValue()
	if _, err := p.Lanes.VerifyProof(proof, time.Now()); err != nil {
		t.Fatalf("proof in metadata %q: %v", proof, err)
	}
	if resp.ModeOverride != nil || st.responseHeaders != nil {
		t.Fatalf("a proof alone asks for the response headers (%v, %v)", resp.ModeOverride, st.responseHeaders)
	}
}
