package daemon

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/testing/testutil"
)

// TestReadinessWaitsForTheKeySet: until the issuer's key set has been
// fetched once, /readyz says which source it waits for; then it is ready,
// the key set metrics appear, and a reload keeps the set (still ready at
// once, no second fetch).
func TestReadinessWaitsForTheKeySet(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
		"n": b64.EncodeToString(key.N.Bytes()), "e": b64.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
	}}})
	var up atomic.Bool
	var hits atomic.Int64
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		if !up.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(jwks)
	}))
	defer idp.Close()
	cfg := `
identity:
  jwt: {jwks_uri: ` + idp.URL + `, audience: shop, algorithms: [RS256], min_refresh_interval: 1s}
` + good
	path := filepath.Join(t.TempDir(), "graymesh.yaml")
	write(t, path, cfg)
	d := start(t, path, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d.sources.Start(ctx)
	d.ready.Store(true)
	admin := httptest.NewServer(d.AdminHandler())
	defer admin.Close()
	get := func(p string) (int, string) {
		resp, err := http.Get(admin.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	poll := func(what string, ok func() bool) {
		t.Helper()
		testutil.Eventually(t, what, testutil.Within(10*time.Second), testutil.Holds(ok))
	}
	poll("readyz names the source and its error", func() bool {
		code, body := get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, idp.URL) && strings.Contains(body, "503")
	})
	up.Store(true)
	poll("ready once the set is fetched", func() bool { code, _ := get("/readyz"); return code == http.StatusOK })
	_, metrics := get("/metrics")
	for _, want := range []string{
		`graymesh_identity_keyset_age_seconds{algorithms="RS256",source="` + idp.URL + `"}`,
		`graymesh_identity_keyset_keys{algorithms="RS256",source="` + idp.URL + `"} 1`,
		`graymesh_identity_jwks_fetches_total{algorithms="RS256",source="` + idp.URL + `"} 1`,
		`graymesh_identity_jwks_unknown_kid_refreshes_total{algorithms="RS256",source="` + idp.URL + `"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if !strings.Contains(metrics, `graymesh_identity_jwks_fetch_errors_total{algorithms="RS256",source="`+idp.URL+`"} `) {
		t.Error("metrics lack fetch errors")
	}

	before := hits.Load()
	write(t, path, strings.Replace(cfg, "percent: 10", "percent: 20", 1))
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Fatalf("after a reload: %d %s", code, body)
	}
	if n := hits.Load() - before; n != 0 {
		t.Fatalf("a reload fetched the key set %d times", n)
	}
}
