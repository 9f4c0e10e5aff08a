package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Issuer is a token issuer for tests: an ES256 key whose public half is
// in a PEM file a config's public_key_file names.
type Issuer struct {
	Key     *ecdsa.PrivateKey
	PEMPath string
}

// NewIssuer makes a fresh ES256 key and writes its public key, as PEM,
// to a file in a temporary directory of t.
func NewIssuer(t *testing.T) Issuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "es256.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return Issuer{Key: key, PEMPath: path}
}

// Token is an ES256 token for subject from issuer iss to audience aud,
// valid for an hour.
func (i Issuer) Token(t *testing.T, iss, aud, subject string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"sub": subject, "iss": iss, "aud": aud, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(i.Key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
