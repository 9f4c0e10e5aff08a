package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// decodeFixture is a valid file with every nesting level the table below
// breaks: top-level sections, a named release with an analysis and a
// schedule, a key in a list, a free-keyed map and a sidecar.
const decodeFixture = `
lane: {key: decode-test-lane-key-0123456789abcdef}
mesh:
  message_timeout: 50ms
identity:
  jwt:
    algorithms: [HS256]
    keys:
      - kid: demo
        alg: HS256
        secret: demo-secret-0123456789abcdef-0123456789
releases:
  - name: other
    env: gray
    percent: 1
  - name: shop-v2
    env: gray
    percent: 12.5
    schedule:
      - at: 2026-11-21T10:00:00Z
        percent: 20
    analysis:
      interval: 30s
      min_requests: 100
      errors:
        tolerance: 1
services:
  - name: shop
    environments:
      stable: [127.0.0.1:9101]
      gray: [127.0.0.1:9102]
    sidecar:
      inbound_port: 15001
      outbound_port: 15002
`

// TestDecodeErrorsNameThePath: a value of the wrong type, an unknown key
// or a key set twice is reported with the field path the validation
// errors use, the line, what the field takes and, for an unknown key, the
// nearest known one.
func TestDecodeErrorsNameThePath(t *testing.T) {
	tests := []struct {
		name, replace, with string
		want                string
	}{
		{"percent not a number", "percent: 12.5", "percent: fifty",
			`line 18: releases[1] (shop-v2).percent: "fifty" is not a number`},
		{"unknown release key", "percent: 12.5", "percnt: 12.5",
			"line 18: releases[1] (shop-v2).percnt: unknown field; did you mean percent?"},
		{"top-level section misspelt", "mesh:", "mseh:",
			"line 3: mseh: unknown field; did you mean mesh?"},
		{"duration in a section", "message_timeout: 50ms", "message_timeout: soon",
			`line 4: mesh.message_timeout: "soon" is not a duration like 50ms`},
		{"list for a duration", "message_timeout: 50ms", "message_timeout: [50ms]",
			"line 4: mesh.message_timeout: a list is not a duration like 50ms"},
		{"key in a list", "alg: HS256", "algo: HS256",
			"line 10: identity.jwt.keys[0] (demo).algo: unknown field; did you mean alg?"},
		{"schedule step percent", "percent: 20", "percent: twenty",
			`line 21: releases[1] (shop-v2).schedule[0].percent: "twenty" is not a number`},
		{"schedule time", "at: 2026-11-21T10:00:00Z", "at: tomorrow",
			`line 20: releases[1] (shop-v2).schedule[0].at: "tomorrow" is not an RFC 3339 time`},
		{"analysis key", "min_requests: 100", "min_request: 100",
			"line 24: releases[1] (shop-v2).analysis.min_request: unknown field; did you mean min_requests?"},
		{"analysis whole number", "min_requests: 100", "min_requests: many",
			`line 24: releases[1] (shop-v2).analysis.min_requests: "many" is not a whole number`},
		{"three levels deep", "tolerance: 1", "tolerance: low",
			`line 26: releases[1] (shop-v2).analysis.errors.tolerance: "low" is not a number`},
		{"free-keyed map value", "gray: [127.0.0.1:9102]", "gray: 127.0.0.1:9102",
			`line 31: services[0] (shop).environments.gray: "127.0.0.1:9102" is not a list`},
		{"negative port", "inbound_port: 15001", "inbound_port: -1",
			`line 33: services[0] (shop).sidecar.inbound_port: "-1" is not a whole number, 0 or more`},
		{"mapping for a scalar", "percent: 1\n", "percent: {value: 1}\n",
			"line 15: releases[0] (other).percent: a mapping is not a number"},
		{"key set twice", "percent: 1\n", "percent: 1\n    percent: 2\n",
			"line 16: releases[0] (other).percent: is set twice (first at line 15)"},
		{"flow style on one line", "  - name: other\n    env: gray\n    percent: 1\n", "  - {name: other, env: gray, percent: one}\n",
			`line 13: releases[0] (other).percent: "one" is not a number`},
		{"nothing near", "percent: 12.5", "zzzzzzzzzz: 12.5",
			"releases[1] (shop-v2).zzzzzzzzzz: unknown field; known fields here: analysis, blacklist, cidrs,"},
	}
	if _, err := Parse([]byte(decodeFixture), "ok.yaml"); err != nil {
		t.Fatalf("fixture: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(decodeFixture, tt.replace) {
				t.Fatalf("fixture lacks %q", tt.replace)
			}
			_, err := Parse([]byte(strings.Replace(decodeFixture, tt.replace, tt.with, 1)), "bad.yaml")
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error\n%v\ndoes not say\n%s", err, tt.want)
			}
			if strings.Contains(err.Error(), "config.") {
				t.Errorf("error names a Go type: %v", err)
			}
		})
	}
}

// TestDecodeErrorsListEveryProblem: every wrong-typed and unknown field of
// a file is reported at once, each with its path.
func TestDecodeErrorsListEveryProblem(t *testing.T) {
	bad := strings.NewReplacer("percent: 12.5", "percent: fifty", "min_requests: 100", "min_requets: 100",
		"inbound_port: 15001", "inbound_port: x").Replace(decodeFixture)
	_, err := Parse([]byte(bad), "bad.yaml")
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"releases[1] (shop-v2).percent:",
		"releases[1] (shop-v2).analysis.min_requets: unknown field; did you mean min_requests?",
		"services[0] (shop).sidecar.inbound_port:",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// TestLoadDecodeErrorNamesFileAndLine: Load puts the file's name before
// the line and the path.
func TestLoadDecodeErrorNamesFileAndLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "graymesh.yaml")
	if err := os.WriteFile(path, []byte(strings.Replace(decodeFixture, "percent: 12.5", "percent: fifty", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	want := path + `: line 18: releases[1] (shop-v2).percent: "fifty" is not a number`
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %s", err, want)
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"percnt", "percent", 1}, {"mseh", "mesh", 2}, {"abc", "", 3}, {"kitten", "sitting", 3}} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
