package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/gray"
)

// FuzzParse feeds arbitrary bytes to the config loader. Parse must never
// panic; what it accepts must be valid, parse the same way again, compile
// into a release engine, and survive the JSON copy the daemon keeps of the
// config in force (daemon/state.go) still valid — otherwise a file
// `graymesh validate` accepts could be refused, or break a restart, later.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"demo.yaml", "mesh.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "..", "examples", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"",
		"---\n...\n",
		"releases: [{name: shop-v2, env: gray, whitelist: [alice], percent: 12.5}]",
		"releases: [{name: shop-v2, env: gray, percent: 120}]",
		"releases: [{name: a, env: gray}, {name: a, env: gray}]",
		"releases: [{name: a, env: gray, headers: [{name: x-gray-env, exact: gray}]}]",
		"releases: [{name: a, env: gray, headers: [{name: x-v, regex: '(['}]}]",
		"releases: [{name: a, env: gray, schedule: [{at: 2026-12-01T10:00:00Z, percent: 5}, {at: 2026-11-01T10:00:00Z, percent: 1}]}]",
		"releases: [{name: a, env: gray, percent: .nan}]",
		"tracing: {sample_ratio: .inf}",
		// Once accepted by Validate, refused since: NaN, ±24:xx zones.
		"tracing: {sample_ratio: .nan}",
		"effective_at: 2026-01-01T00:00:00+24:00",
		"releases: [{name: a, env: gray, schedule: [{at: '2026-01-01T00:00:00-24:59', percent: 5}]}]",
		"mesh: {message_timeout: -1s}",
		"mesh: {listener_port: -1}",
		"identity: {jwt: {leeway: 1h, cache_size: -5, algorithms: [none]}}",
		"identity: {jwt: {keys: [{kid: k, alg: HS256, secret: s, public_key_file: k.pem}]}}",
		"serverr: {}",
		"server:\n\textproc_listen: x",
		"releases: &a [*a]",
		"a: &a [x, x]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b, *b, *b]",
		"releases:\n  - <<: {name: a, env: gray}\n    percent: 5",
		"services: [{name: shop, environments: {stable: ['127.0.0.1:80'], Gray: ['[::1]:0']}}]",
		"effective_at: 10000-01-01T00:00:00Z",
		"lane: {key: short}\nmembership: {enabled: true, header: X-Gray-Member}",
		"\xff\xfe",
		"{",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse(data, "fuzz.yaml")
		if err != nil {
			if cfg != nil {
				t.Fatal("a config returned with an error")
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse accepted a config Validate refuses: %v", err)
		}
		again, err := config.Parse(data, "fuzz.yaml")
		if err != nil || !reflect.DeepEqual(cfg, again) {
			t.Fatalf("parsed differently the second time: %v", err)
		}
		if _, err := gray.New(cfg); err != nil {
			t.Fatalf("a valid config does not compile: %v", err)
		}
		copied, err := cfg.Clone()
		if err != nil {
			t.Fatalf("Clone, the copy the daemon keeps, fails: %v", err)
		}
		if err := copied.Validate(); err != nil {
			t.Fatalf("the clone is no longer valid: %v", err)
		}
	})
}
