package extproc

import (
	"log/slog"
	"testing"

	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

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
