package xds

import (
	"os"
	"slices"
	"testing"

	jwtauthnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/plan"
)

// TestKillRouteComparesFleetVersions: with fleet versions the inner hop's
// kill route stops only lanes issued under the node's version or before
// (an inverted range on x-gray-version that a missing header matches),
// says the bound in its metadata, and the lane check copies the version
// claim for it; in file mode the route stops every lane of the release
// and the version stays in the lane.
func TestKillRouteComparesFleetVersions(t *testing.T) {
	doc, err := os.ReadFile("testdata/killed-fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		fleet bool
	}{{"file mode", false}, {"kubernetes mode", true}} {
		t.Run(tt.name, func(t *testing.T) {
			p := parsePlanAt(t, string(doc), "12", tt.fleet)
			res, err := BuildSidecar(p, p.Service("orders"))
			if err != nil {
				t.Fatal(err)
			}
			kill := res.Routes[0].GetVirtualHosts()[0].GetRoutes()[0]
			if kill.GetName() != "orders/"+plan.RouteKilledPrefix+"shop-v2" {
				t.Fatalf("first inner route %s", kill.GetName())
			}
			headers := kill.GetMatch().GetHeaders()
			version := kill.GetMetadata().GetFilterMetadata()[wire.MetadataNamespace].GetFields()[wire.MetadataVersion].GetStringValue()
			if !tt.fleet {
				if len(headers) != 1 || version != "" || copiesVersion(t, res) {
					t.Fatalf("file mode: matchers %v, version metadata %q, version claim copied %v", headers, version, copiesVersion(t, res))
				}
				return
			}
			if len(headers) != 2 {
				t.Fatalf("matchers %v", headers)
			}
			v := headers[1]
			if v.GetName() != wire.HeaderVersion || v.GetRangeMatch().GetStart() != 13 || !v.GetInvertMatch() || !v.GetTreatMissingHeaderAsEmpty() {
				t.Fatalf("version matcher %v, want versions from 13 on, inverted, missing as empty", v)
			}
			if version != "12" || !copiesVersion(t, res) {
				t.Fatalf("version metadata %q, version claim copied %v", version, copiesVersion(t, res))
			}
		})
	}
}

func copiesVersion(t *testing.T, res *Resources) bool {
	t.Helper()
	var check jwtauthnv3.JwtAuthentication
	if err := res.Extensions[0].GetTypedConfig().UnmarshalTo(&check); err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(check.GetProviders()[laneProvider].GetClaimToHeaders(), func(c *jwtauthnv3.JwtClaimToHeader) bool {
		return c.GetHeaderName() == wire.HeaderVersion && c.GetClaimName() == wire.LaneClaimVersion
	})
}
