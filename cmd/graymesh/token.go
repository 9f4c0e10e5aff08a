package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/gray"
)

const tokenUsage = `Usage: graymesh token --subject S (--config FILE | --key PEM) [flags]

Mints a token for demos and tests; production tokens come from your identity
provider.

Without --key it is signed with an HMAC key (HS256/384/512) from the config.
With --key it is signed with the private key in the PEM file (PKCS#8,
PKCS#1 RSA or SEC 1 EC): RS*/PS* for RSA, ES256/384/512 for the P-256/384/521
curves, EdDSA for Ed25519; --alg picks among those the key allows (default
RS256 for RSA, the curve's ES* for EC). The issuer and audience are the
config's when --config is given; --issuer and --audience override them.`

func token(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("token", tokenUsage, stderr)
	path := fs.String("config", "", "config file: its HMAC key (without --key), issuer, audience and subject claim")
	subject := fs.String("subject", "", "subject (required)")
	keyFile := fs.String("key", "", "PEM file with an RSA, EC or Ed25519 private key to sign with")
	alg := fs.String("alg", "", "signing algorithm (default: the HMAC key's, or the one --key's type implies)")
	kid := fs.String("kid", "", "key id: picks the config's HMAC key; with --key, written to the kid header")
	issuer := fs.String("issuer", "", "iss claim (default: the config's identity.jwt.issuer)")
	audience := fs.String("audience", "", "aud claim (default: the config's identity.jwt.audience)")
	ttl := fs.Duration("ttl", 24*time.Hour, "lifetime; exp = now + ttl")
	var claims kvFlag
	fs.Var(&claims, "claim", "claim=value (repeatable)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *subject == "" || (*path == "" && *keyFile == "") {
		fs.Usage()
		return errUsage
	}
	var cfg *config.Config
	if *path != "" {
		var err error
		if cfg, err = config.Load(*path); err != nil {
			return err
		}
		if _, err := gray.Compile(cfg); err != nil {
			return err
		}
	}
	var (
		method jwt.SigningMethod
		key    any
		keyID  = *kid
		err    error
	)
	if *keyFile != "" {
		key, err = readPrivateKey(*keyFile)
		if err != nil {
			return err
		}
		if method, err = signingMethod(key, *alg); err != nil {
			return fmt.Errorf("%s: %w", *keyFile, err)
		}
	} else if method, key, keyID, err = hmacKey(cfg, *kid, *alg); err != nil {
		return err
	}

	subjectClaim, iss, aud := tokenClaims(cfg, *issuer, *audience)
	now := time.Now()
	mc := jwt.MapClaims{subjectClaim: *subject, "exp": now.Add(*ttl).Unix(), "iat": now.Unix()}
	if iss != "" {
		mc["iss"] = iss
	}
	if aud != "" {
		mc["aud"] = aud
	}
	for _, kv := range claims {
		k, v, _ := strings.Cut(kv, "=")
		mc[k] = v
	}
	t := jwt.NewWithClaims(method, mc)
	if keyID != "" {
		t.Header["kid"] = keyID
	}
	s, err := t.SignedString(key)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, s)
	return nil
}

// tokenClaims returns the subject claim, iss and aud to mint with: the
// flags, else the config's first issuer (with jwt.issuers, --issuer picks
// another by its iss).
func tokenClaims(cfg *config.Config, issuer, audience string) (subjectClaim, iss, aud string) {
	if cfg == nil {
		return config.DefaultSubjectClaim, issuer, audience
	}
	prov := cfg.Identity.JWT.Providers()[0]
	for _, p := range cfg.Identity.JWT.Providers() {
		if issuer != "" && p.Issuer == issuer {
			prov = p
		}
	}
	iss, aud = issuer, audience
	if iss == "" {
		iss = prov.Issuer
	}
	if auds := prov.AllAudiences(); aud == "" && len(auds) > 0 {
		aud = auds[0]
	}
	return prov.SubjectClaim, iss, aud
}

// hmacKey finds the config's first HMAC key matching kid and alg (either
// may be empty) and returns its method, secret and key id.
func hmacKey(cfg *config.Config, kid, alg string) (jwt.SigningMethod, []byte, string, error) {
	var keys []config.Key
	for _, p := range cfg.Identity.JWT.Providers() {
		keys = append(keys, p.Keys...)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k.Algorithm, "HS") || (kid != "" && k.ID != kid) || (alg != "" && k.Algorithm != alg) {
			continue
		}
		secret := []byte(k.Secret)
		if k.SecretFile != "" {
			var err error
			if secret, err = config.ReadSecret(cfg.ResolvePath(k.SecretFile), "secret_file"); err != nil {
				return nil, nil, "", err
			}
		}
		return jwt.GetSigningMethod(k.Algorithm), secret, k.ID, nil
	}
	return nil, nil, "", errors.New("the config has no matching HMAC key to sign with (use --key for RS/PS/ES/EdDSA)")
}

// readPrivateKey reads the first PEM block of path as an RSA, ECDSA or
// Ed25519 private key.
func readPrivateKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	var key any
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%s: PEM block %q is not a private key (want PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)", path, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: %T cannot sign", path, key)
	}
	return signer, nil
}

// signingMethod returns the method for alg, or the one the key type implies
// when alg is empty, and refuses an alg the key cannot sign.
func signingMethod(key any, alg string) (jwt.SigningMethod, error) {
	var allowed []string
	switch k := key.(type) {
	case *rsa.PrivateKey:
		allowed = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	case *ecdsa.PrivateKey:
		// ES* fixes the curve: ES256 is P-256 only, and so on.
		byCurve := map[string]string{"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
		a, ok := byCurve[k.Curve.Params().Name]
		if !ok {
			return nil, fmt.Errorf("EC curve %s has no JWT algorithm", k.Curve.Params().Name)
		}
		allowed = []string{a}
	case ed25519.PrivateKey:
		allowed = []string{"EdDSA"}
	default:
		return nil, fmt.Errorf("%T keys are not supported", key)
	}
	if alg == "" {
		alg = allowed[0]
	}
	if !slices.Contains(allowed, alg) {
		return nil, fmt.Errorf("--alg %s cannot be signed with this key (it allows %s)", alg, strings.Join(allowed, ", "))
	}
	return jwt.GetSigningMethod(alg), nil
}
