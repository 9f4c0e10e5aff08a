package identity

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/MicahParks/jwkset"
)

// EnvoyKeys is the JSON Web Key Set an Envoy needs to verify a caller's
// token itself, as graymesh would (mesh.native_returning_callers): the
// public keys of the one issuer, with its issuer, audiences and subject
// claim. Only keys that stay as they are while the config is in force
// qualify: the config's own public keys. An HMAC secret is left out (it
// would be readable in Envoy's config dump); a token it signs fails in
// Envoy and goes to graymesh, as does every token when the issuer's keys
// are fetched or read from a JWKS file, which change under a config.
type EnvoyKeys struct {
	JWKS         string
	Issuer       string
	Audiences    []string
	SubjectClaim string
	// SubjectPrefix is put before the subject claim's value to make the
	// subject graymesh buckets on.
	SubjectPrefix string
}

// ForEnvoy returns the keys an Envoy verifies callers' tokens with, or why
// there are none.
func (v *Verifier) ForEnvoy() (EnvoyKeys, error) {
	if len(v.providers) != 1 {
		return EnvoyKeys{}, errors.New("identity.jwt: one issuer is needed, not " + fmt.Sprint(len(v.providers)))
	}
	p := v.providers[0]
	if p.remote != nil || p.jwksPath != "" {
		return EnvoyKeys{}, errors.New(p.field + ": keys are fetched or read from a JWKS file, which can change while the config is in force")
	}
	var keys []jwkset.JWKMarshal
	for _, k := range p.static {
		if !isAsymmetric(k.alg) {
			continue
		}
		j, err := jwkset.NewJWKFromKey(k.key, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{ALG: jwkset.ALG(k.alg), KID: k.kid, USE: jwkset.UseSig}})
		if err != nil {
			return EnvoyKeys{}, fmt.Errorf("%s: key %q: %w", p.field, k.kid, err)
		}
		keys = append(keys, j.Marshal())
	}
	if len(keys) == 0 {
		return EnvoyKeys{}, errors.New(p.field + ": no public key (an HMAC secret is not given to Envoy)")
	}
	b, err := json.Marshal(jwkset.JWKSMarshal{Keys: keys})
	if err != nil {
		return EnvoyKeys{}, err
	}
	out := EnvoyKeys{JWKS: string(b), Issuer: p.issuer, SubjectClaim: p.subjectClaim, SubjectPrefix: p.subjectPrefix}
	out.Audiences = slices.Clone(p.audiences)
	return out, nil
}
