package identity

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkVerify measures one token verification per algorithm, with the
// verified-token cache off (uncached) and on (cached, the steady state for
// a returning caller).
func BenchmarkVerify(b *testing.B) {
	t := b
	k := newKeys(t)
	now := time.Now()
	exp := now.Add(time.Hour)
	tokens := map[string]string{
		"HS256": sign(t, jwt.SigningMethodHS256, "hs", claims("alice", exp), k.hs),
		"RS256": sign(t, jwt.SigningMethodRS256, "rs", claims("alice", exp), k.rs),
		"ES256": sign(t, jwt.SigningMethodES256, "es", claims("alice", exp), k.es),
		"EdDSA": sign(t, jwt.SigningMethodEdDSA, "ed", claims("alice", exp), k.ed),
	}
	for _, cached := range []bool{false, true} {
		cfg := k.identity()
		cfg.JWT.CacheSize = 0
		mode := "uncached"
		if cached {
			cfg.JWT.CacheSize = 1000
			mode = "cached"
		}
		v := k.verifier(t, cfg, &now)
		for _, alg := range []string{"HS256", "RS256", "ES256", "EdDSA"} {
			tok := tokens[alg]
			b.Run(mode+"/"+alg, func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					if _, err := v.Verify(tok); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
