package gate

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/gray"
)

// identityBase is the config in force in the identity eviction tests: one
// HS256 key tokens are signed with, and a release that admits someone.
const identityBase = `
identity:
  jwt:
    keys:
      - {kid: k1, alg: HS256, secret: "k1-secret-0123456789abcdef0123456"}
releases:
  - {name: shop-v2, env: gray, percent: 30}
`

var rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// keyFiles writes key files into a test's directory.
type keyFiles struct {
	t   *testing.T
	dir string
}

func newKeyFiles(t *testing.T) keyFiles { return keyFiles{t, t.TempDir()} }

func (f keyFiles) write(name, content string) string {
	f.t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// rsaPEM writes the test RSA public key as PEM.
func (f keyFiles) rsaPEM(name string) string {
	der, err := x509.MarshalPKIXPublicKey(&rsaKey().PublicKey)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.write(name, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
}

// jwks writes a JWKS file holding the test RSA key once per kid.
func (f keyFiles) jwks(name string, kids ...string) string {
	pub := &rsaKey().PublicKey
	var keys []map[string]string
	for _, kid := range kids {
		keys = append(keys, map[string]string{
			"kty": "RSA", "kid": kid, "alg": "RS256",
			"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString([]byte{1, 0, 1}),
		})
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		f.t.Fatal(err)
	}
	return f.write(name, string(b))
}

func hsKey(kid, secret string) config.Key {
	return config.Key{ID: kid, Algorithm: "HS256", Secret: secret}
}

const k1Secret = "k1-secret-0123456789abcdef0123456"

// identityChange is an edit of identityBase (old applied to both configs,
// change to the new one) and the evictions it must report; nil: accepted.
type identityChange struct {
	name        string
	old, change func(c *config.Config)
	want        []string
}

func TestIdentityEvictions(t *testing.T) {
	f := newKeyFiles(t)
	checkIdentityChanges(t, []identityChange{
		{"token key replaced HS256 → RS256", nil, func(c *config.Config) {
			c.Identity.JWT.Keys = []config.Key{{ID: "k1", Algorithm: "RS256", PublicKeyFile: f.rsaPEM("k1.pem")}}
		}, []string{`rule key-replaced: identity.jwt.keys: key "k1" (HS256) replaced by a different key (RS256): tokens signed with the old key become anonymous`}},
		{"secret changed", nil, func(c *config.Config) {
			c.Identity.JWT.Keys[0].Secret = "another-secret-0123456789abcdef01"
		}, []string{`rule key-replaced: identity.jwt.keys: key "k1" (HS256) replaced by a different key (HS256): tokens signed with the old key become anonymous`}},
		{"key removed", nil, func(c *config.Config) {
			c.Identity.JWT.Keys = []config.Key{hsKey("k2", "k2-secret-0123456789abcdef0123456")}
		}, []string{`rule key-removed: identity.jwt.keys: key "k1" (HS256) removed: tokens signed with it become anonymous`}},
		{"kid renamed", nil, func(c *config.Config) { c.Identity.JWT.Keys[0].ID = "k1-new" },
			[]string{`rule key-removed: identity.jwt.keys: key "k1" (HS256) removed: tokens signed with it become anonymous`}},
		{"key without kid removed", func(c *config.Config) {
			c.Identity.JWT.Keys = append(c.Identity.JWT.Keys, hsKey("", "anon-secret-0123456789abcdef01234"))
		}, func(c *config.Config) { c.Identity.JWT.Keys = c.Identity.JWT.Keys[:1] },
			[]string{`rule key-removed: identity.jwt.keys: key without kid (HS256) removed: tokens signed with it become anonymous`}},
		{"algorithm removed", func(c *config.Config) {
			c.Identity.JWT.Algorithms = []string{"HS256", "HS384"}
			c.Identity.JWT.Keys = append(c.Identity.JWT.Keys, config.Key{ID: "k2", Algorithm: "HS384", Secret: "k2-secret-0123456789abcdef0123456"})
		}, func(c *config.Config) {
			c.Identity.JWT.Algorithms = []string{"HS256"}
			c.Identity.JWT.Keys = c.Identity.JWT.Keys[:1]
		}, []string{
			`rule key-removed: identity.jwt.keys: key "k2" (HS384) removed: tokens signed with it become anonymous`,
			"rule algorithm-removed: identity.jwt.algorithms: HS384 removed: tokens signed with HS384 become anonymous",
		}},
		{"algorithm of a JWKS key removed", func(c *config.Config) {
			c.Identity.JWT.Algorithms = []string{"HS256", "RS256"}
			c.Identity.JWT.JWKSFile = f.jwks("algs.json", "j1")
		}, func(c *config.Config) { c.Identity.JWT.Algorithms = []string{"HS256"} },
			[]string{"rule algorithm-removed: identity.jwt.algorithms: RS256 removed: tokens signed with RS256 become anonymous"}},
		{"issuer added", nil, func(c *config.Config) { c.Identity.JWT.Issuer = "https://id.example" },
			[]string{`rule issuer-changed: identity.jwt.issuer set to "https://id.example": tokens with another or no iss become anonymous`}},
		{"issuer changed", func(c *config.Config) { c.Identity.JWT.Issuer = "https://a.example" },
			func(c *config.Config) { c.Identity.JWT.Issuer = "https://b.example" },
			[]string{`rule issuer-changed: identity.jwt.issuer changed "https://a.example" → "https://b.example": tokens with iss "https://a.example" become anonymous`}},
		{"audience changed", func(c *config.Config) { c.Identity.JWT.Audience = "shop" },
			func(c *config.Config) { c.Identity.JWT.Audience = "pay" },
			[]string{`rule audience-changed: identity.jwt.audience changed "shop" → "pay": tokens with aud "shop" become anonymous`}},
		{"subject claim changed", nil, func(c *config.Config) { c.Identity.JWT.SubjectClaim = "uid" },
			[]string{`rule subject-claim-changed: identity.jwt.subject_claim changed "sub" → "uid": every verified subject is re-keyed`}},
		{"JWKS file without one of the keys", func(c *config.Config) { c.Identity.JWT.JWKSFile = f.jwks("a.json", "j1", "j2") },
			func(c *config.Config) { c.Identity.JWT.JWKSFile = f.jwks("b.json", "j2") },
			[]string{`rule key-removed: identity.jwt.jwks_file: key "j1" (RS256) removed: tokens signed with it become anonymous`}},
		{"JWKS file removed", func(c *config.Config) { c.Identity.JWT.JWKSFile = f.jwks("c.json", "j1") },
			func(c *config.Config) { c.Identity.JWT.JWKSFile = "" },
			[]string{`rule key-removed: identity.jwt.jwks_file: key "j1" (RS256) removed: tokens signed with it become anonymous`}},
		{"unreadable JWKS file replaced", func(c *config.Config) { c.Identity.JWT.JWKSFile = filepath.Join(f.dir, "gone.json") },
			func(c *config.Config) { c.Identity.JWT.JWKSFile = f.jwks("d.json", "j1") },
			[]string{"rule unread-keys-dropped: identity.jwt.jwks_file: " + filepath.Join(f.dir, "gone.json") + " could not be read to compare its keys, and the new config no longer uses it: tokens signed with its keys may become anonymous"}},
	})
}

// TestIdentityChangesAccepted: rotation done right, and changes that only
// widen what verifies.
func TestIdentityChangesAccepted(t *testing.T) {
	f := newKeyFiles(t)
	checkIdentityChanges(t, []identityChange{
		{"key added (rotation)", nil, func(c *config.Config) {
			c.Identity.JWT.Keys = append(c.Identity.JWT.Keys, config.Key{ID: "k2", Algorithm: "RS256", PublicKeyFile: f.rsaPEM("k2.pem")})
		}, nil},
		{"old key dropped after rotation to a key without kid", func(c *config.Config) {
			c.Identity.JWT.Keys = []config.Key{hsKey("", k1Secret)}
		}, func(c *config.Config) { c.Identity.JWT.Keys = []config.Key{hsKey("k9", k1Secret)} }, nil},
		{"keys reordered", func(c *config.Config) {
			c.Identity.JWT.Keys = append(c.Identity.JWT.Keys, hsKey("k2", "k2-secret-0123456789abcdef0123456"))
		}, func(c *config.Config) { slices.Reverse(c.Identity.JWT.Keys) }, nil},
		{"inline secret moved to a file", nil, func(c *config.Config) {
			c.Identity.JWT.Keys[0] = config.Key{ID: "k1", Algorithm: "HS256", SecretFile: f.write("k1.secret", k1Secret+"\n")}
		}, nil},
		{"key file moved", func(c *config.Config) {
			c.Identity.JWT.Keys = []config.Key{{ID: "k1", Algorithm: "RS256", PublicKeyFile: f.rsaPEM("old.pem")}}
		}, func(c *config.Config) {
			c.Identity.JWT.Keys = []config.Key{{ID: "k1", Algorithm: "RS256", PublicKeyFile: f.rsaPEM("new.pem")}}
		}, nil},
		{"key moved into the JWKS file", func(c *config.Config) {
			c.Identity.JWT.Keys = append(c.Identity.JWT.Keys, config.Key{ID: "j1", Algorithm: "RS256", PublicKeyFile: f.rsaPEM("j1.pem")})
		}, func(c *config.Config) {
			c.Identity.JWT.Keys = c.Identity.JWT.Keys[:1]
			c.Identity.JWT.JWKSFile = f.jwks("e.json", "j1", "j2")
		}, nil},
		{"algorithms listed", nil, func(c *config.Config) { c.Identity.JWT.Algorithms = []string{"HS256"} }, nil},
		{"issuer removed", func(c *config.Config) { c.Identity.JWT.Issuer = "https://a.example" },
			func(c *config.Config) { c.Identity.JWT.Issuer = "" }, nil},
		{"release killed: nobody is gray", func(c *config.Config) { c.Releases[0].State = config.StateKilled },
			func(c *config.Config) { c.Identity.JWT.Keys[0].ID = "k1-new" }, nil},
	})
}

func checkIdentityChanges(t *testing.T, changes []identityChange) {
	t.Helper()
	for _, tt := range changes {
		t.Run(tt.name, func(t *testing.T) {
			old, next := parseDiff(t, identityBase), parseDiff(t, identityBase)
			if tt.old != nil {
				tt.old(old)
				tt.old(next)
			}
			tt.change(next)
			if err := next.Validate(); err != nil {
				t.Fatalf("the new config does not validate: %v", err)
			}
			if got := errStrings(EvictionsAt(old, next, diffAt)); !slices.Equal(got, tt.want) {
				t.Fatalf("evictions:\n got  %q\n want %q", got, tt.want)
			}
			if _, err := gray.Compile(next); err != nil && !strings.Contains(tt.name, "unreadable") {
				t.Fatalf("the new config does not compile: %v", err)
			}
		})
	}
}

// TestIssuerEvictions: fetched keys are known only at runtime, so pointing
// an issuer's keys elsewhere is an eviction; issuers are paired by iss.
func TestIssuerEvictions(t *testing.T) {
	const kc = "https://kc.example/realms/shop"
	remote := func(c *config.Config) {
		c.Identity.JWT.Keys = nil
		c.Identity.JWT.Issuer, c.Identity.JWT.Audience, c.Identity.JWT.Discovery = kc, "shop", true
		c.Identity.JWT.Algorithms = []string{"RS256"}
	}
	issuers := func(c *config.Config) {
		remote(c)
		c.Identity.JWT.Issuers = []config.Provider{c.Identity.JWT.Provider, {
			Issuer: "https://staff.example", JWKSURI: "https://staff.example/keys", SubjectPrefix: "staff:", Audience: "gm", Algorithms: []string{"ES256"},
		}}
		c.Identity.JWT.Provider = config.Provider{}
	}
	tests := []struct {
		name        string
		old, change func(c *config.Config)
		want        []string
	}{
		{"discovery → explicit jwks_uri", remote, func(c *config.Config) {
			c.Identity.JWT.Discovery, c.Identity.JWT.JWKSURI = false, kc+"/protocol/openid-connect/certs"
		}, []string{"rule key-source-changed: identity.jwt: keys fetched from the discovery document of " + kc + ", now from " + kc + "/protocol/openid-connect/certs: tokens signed with keys only the first publishes become anonymous"}},
		{"issuer changed with discovery", remote, func(c *config.Config) { c.Identity.JWT.Issuer = "https://kc.example/realms/other" }, []string{
			`rule issuer-changed: identity.jwt.issuer changed "` + kc + `" → "https://kc.example/realms/other": tokens with iss "` + kc + `" become anonymous`,
			"rule key-source-changed: identity.jwt: keys fetched from the discovery document of " + kc + ", now from the discovery document of https://kc.example/realms/other: tokens signed with keys only the first publishes become anonymous",
		}},
		{"fetching stopped", remote, func(c *config.Config) {
			c.Identity.JWT.Discovery = false
			c.Identity.JWT.Keys = []config.Key{hsKey("k1", k1Secret)}
		}, []string{"rule key-source-changed: identity.jwt: keys are no longer fetched from the discovery document of " + kc + ": tokens signed with them become anonymous"}},
		{"fetched algorithm dropped", func(c *config.Config) { remote(c); c.Identity.JWT.Algorithms = []string{"RS256", "ES256"} },
			func(c *config.Config) { c.Identity.JWT.Algorithms = []string{"RS256"} },
			[]string{"rule algorithm-removed: identity.jwt.algorithms: ES256 no longer allowed: tokens signed with them by keys from the discovery document of " + kc + " become anonymous"}},
		{"audience added to a list", remote, func(c *config.Config) { c.Identity.JWT.Audiences = []string{"admin"} }, nil},
		{"audience dropped from a list", func(c *config.Config) { remote(c); c.Identity.JWT.Audiences = []string{"admin"} },
			func(c *config.Config) { c.Identity.JWT.Audiences = nil },
			[]string{`rule audience-changed: identity.jwt.audience: "admin" removed: tokens whose aud names only "admin" become anonymous`}},
		{"claims mapping changed", remote, func(c *config.Config) { c.Identity.JWT.Claims = map[string]string{"tier": "plan"} },
			[]string{`rule claim-source-changed: identity.jwt.claims: "tier" read from the token's own "tier" claim, now from "plan": callers admitted by a claim rule on it may leave`}},
		{"moved into issuers", remote, issuers, nil},
		{"issuer removed from issuers", issuers, func(c *config.Config) { c.Identity.JWT.Issuers = c.Identity.JWT.Issuers[:1] },
			[]string{`rule issuer-removed: identity.jwt.issuers[1] (issuer "https://staff.example") removed: tokens it issued become anonymous`}},
		{"issuers reordered", issuers, func(c *config.Config) { slices.Reverse(c.Identity.JWT.Issuers) }, nil},
		{"subject prefix changed", issuers, func(c *config.Config) { c.Identity.JWT.Issuers[1].SubjectPrefix = "s:" },
			[]string{`rule subject-prefix-changed: identity.jwt.issuers[1].subject_prefix changed "staff:" → "s:": every verified subject is re-keyed`}},
		{"CA bundle and intervals changed", remote, func(c *config.Config) {
			c.Identity.JWT.CAFile = "ca.pem"
			c.Identity.JWT.RefreshInterval.Duration = time.Hour
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old, next := parseDiff(t, identityBase), parseDiff(t, identityBase)
			tt.old(old)
			tt.old(next)
			tt.change(next)
			if got := errStrings(EvictionsAt(old, next, diffAt)); !slices.Equal(got, tt.want) {
				t.Fatalf("evictions:\n got  %q\n want %q", got, tt.want)
			}
		})
	}
}
