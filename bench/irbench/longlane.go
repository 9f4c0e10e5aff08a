package irbench

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	jwtauthnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"

	"github.com/graymesh/graymesh/internal/contract/wire"
)

// The lane as graymesh signed it before issue 27 shortened it (258 bytes
// for the bench's lane): a header with kid and typ, the claims env, rel,
// ver (a string) and sts, the issuer graymesh-lane. The N1-long and
// H0-lane-long configurations send it, so what the shorter lane saves is
// measured in the same run as N1. It is signed with a key of the bench's
// own, which N1-long's provider is given instead of graymesh's.
const (
	longLaneIssuer = "graymesh-lane"
	// longLaneKid has the length of the kid graymesh wrote (9 bytes of
	// SHA-256, base64url).
	longLaneKid = "irbenchlong0"
)

var longLaneKey = func() ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("irbench: the lane before issue 27"))
	return ed25519.NewKeyFromSeed(seed[:])
}()

// longLane is the lane of env, release and version expiring at exp, in
// the long format.
func longLane(env, release, version string, exp time.Time) string {
	b64 := base64.RawURLEncoding.EncodeToString
	in := b64([]byte(`{"alg":"EdDSA","kid":"`+longLaneKid+`","typ":"JWT"}`)) + "." +
		b64(fmt.Appendf(nil, `{"env":%q,"rel":%q,"ver":%q,"iss":%q,"exp":%d}`, env, release, version, longLaneIssuer, exp.Unix()))
	return in + "." + b64(ed25519.Sign(longLaneKey, []byte(in)))
}

// longLaneProvider makes the lane's provider read the long format: its
// issuer, its claim names, the bench's key.
func longLaneProvider(p *jwtauthnv3.JwtProvider) {
	p.Issuer = longLaneIssuer
	names := map[string]string{wire.LaneClaimEnv: "env", wire.LaneClaimRelease: "rel", wire.LaneClaimVersion: "ver", wire.LaneClaimStress: "sts"}
	for _, c := range p.GetClaimToHeaders() {
		c.ClaimName = names[c.GetClaimName()]
	}
	pub, _ := longLaneKey.Public().(ed25519.PublicKey)
	jwks := `{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","use":"sig","kid":"` + longLaneKid + `","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}]}`
	p.JwksSourceSpecifier = &jwtauthnv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
		Specifier: &corev3.DataSource_InlineString{InlineString: jwks},
	}}
}

// longLaneVariants are N1 and H0-lane with the long lane.
func longLaneVariants() []Config {
	return []Config{
		{
			Name: "H0-lane-long", What: "H0-lane with the lane as it was before issue 27 shortened it (kid and typ in the header, claims env/rel/ver/sts, issuer graymesh-lane), which nothing reads",
			build: (*sidecars).plainHeader, longLane: true,
			headers: func(l string) map[string]string { return map[string]string{wire.HeaderLane: l, wire.HeaderEnv: "gray"} },
		},
		{
			Name: "N1-long", What: "N1 with the lane as it was before issue 27 shortened it, and the provider reading that format (its issuer and claim names; a key of the bench's own): N1 as it was",
			build: editLane(longLaneProvider, nil), longLane: true,
			headers: func(l string) map[string]string { return map[string]string{wire.HeaderLane: l} },
		},
	}
}
