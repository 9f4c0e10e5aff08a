package irbench

// The bench mesh's graymesh configs and its callers' tokens.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// writeConfig writes the bench mesh's graymesh config: an edge and an
// inner service, both with a stable and a gray version (the upstreams),
// and HS256 callers; the same config with the token cache off is written
// beside it.
func (h *harness) writeConfig() (string, error) {
	ports, err := freePorts(7)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(h.o.WorkDir, "hs.secret"), []byte(hsSecret), 0o600); err != nil {
		return "", err
	}
	// The release admits by a header rule; the anonymous config's instead
	// splits anonymous traffic in half, in Envoy (native_traffic_split,
	// which a header rule would rule out); the returning config's admits
	// every identified caller (percent 100, which a proof can stand for:
	// no headers, cidrs or claims rule) and splits anonymous traffic in
	// half in Envoy.
	release := fmt.Sprintf(`{name: shop-v2, env: gray, salt: irbench, headers: [{name: %s, exact: "1"}], percent: 100}`, betaHeader)
	render := func(cacheSize int, kind meshKind) string {
		mesh, rel := "{message_timeout: 10s}", release
		algs, keys := "[HS256]", "[{kid: hs, alg: HS256, secret_file: hs.secret}]"
		switch kind {
		case meshAnonymous:
			mesh, rel = "{message_timeout: 10s, native_traffic_split: true}", "{name: shop-v2, env: gray, salt: irbench, traffic_percent: 50}"
		case meshReturning:
			mesh = "{message_timeout: 10s, native_traffic_split: true, native_returning_callers: true, caller_proof_ttl: " + proofTTL + "}"
			rel = "{name: shop-v2, env: gray, salt: irbench, percent: 100, traffic_percent: 50}"
		}
		return fmt.Sprintf(`server: {extproc_listen: "127.0.0.1:%d", xds_listen: "127.0.0.1:%d", admin_listen: "127.0.0.1:%d"}
mesh: %s
lane: {key: %s, ttl: 5m}
identity:
  jwt:
    algorithms: %s
    issuer: %s
    cache_size: %d
    keys: %s
releases: [%s]
services:
  - name: %s
    sidecar: {inbound_port: %d, outbound_port: %d, edge: true}
    environments: {stable: ["%s"], gray: ["%s"]}
  - name: %s
    sidecar: {inbound_port: %d, outbound_port: %d}
    environments: {stable: ["%s"], gray: ["%s"]}
`, ports[0], ports[1], ports[2], mesh, laneKey, algs, tokenIssuer, cacheSize, keys, rel,
			edgeService, ports[3], ports[4], h.upstreams.stable, h.upstreams.gray,
			innerService, ports[5], ports[6], h.upstreams.stable, h.upstreams.gray)
	}
	h.noCachePath = filepath.Join(h.o.WorkDir, "graymesh-nocache.yaml")
	if err := os.WriteFile(h.noCachePath, []byte(render(0, meshPlain)), 0o600); err != nil {
		return "", err
	}
	h.anonymousPath = filepath.Join(h.o.WorkDir, "graymesh-anonymous.yaml")
	if err := os.WriteFile(h.anonymousPath, []byte(render(tokenCacheSize, meshAnonymous)), 0o600); err != nil {
		return "", err
	}
	h.returningPath = filepath.Join(h.o.WorkDir, "graymesh-returning.yaml")
	if err := os.WriteFile(h.returningPath, []byte(render(tokenCacheSize, meshReturning)), 0o600); err != nil {
		return "", err
	}
	path := filepath.Join(h.o.WorkDir, "graymesh.yaml")
	return path, os.WriteFile(path, []byte(render(tokenCacheSize, meshPlain)), 0o600)
}

// meshKind says which of the bench mesh's configs to render.
type meshKind int

const (
	meshPlain meshKind = iota
	meshAnonymous
	meshReturning
)

// proofTTL is the returning config's mesh.caller_proof_ttl: its bound, so
// a proof obtained in a round's warm-up outlives the round under
// valgrind (the default, 5m, might not). It changes nothing Envoy does
// per request but the lifetime it accepts.
const proofTTL = "1h"

// The callers' tokens: HS256 with this secret and issuer; graymesh's
// production token cache size.
const (
	hsSecret       = "irbench-hs256-secret-0123456789abcdef"
	tokenIssuer    = "irbench"
	tokenCacheSize = 10000
)

// callerTokens signs one HS256 token for each of n callers, user-0 …
func callerTokens(n int, now time.Time) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		var err error
		if out[i], err = callerToken("user-"+strconv.Itoa(i), now); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// callerToken is subject's HS256 token.
func callerToken(subject string, now time.Time) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": subject, "iss": tokenIssuer, "iat": now.Unix(), "exp": now.Add(12 * time.Hour).Unix(),
	})
	t.Header["kid"] = "hs"
	return t.SignedString([]byte(hsSecret))
}
