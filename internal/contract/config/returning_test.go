package config

import (
	"strings"
	"testing"
	"time"
)

// TestReturningCallersConfig: mesh.native_returning_callers defaults the
// proof's life to 5m, needs a lane key and a life within [1s, 1h], and
// warns when a release's rules keep every caller on graymesh.
func TestReturningCallersConfig(t *testing.T) {
	on := strings.Replace(valid, "  listener_port: 10000", "  listener_port: 10000\n  native_returning_callers: true", 1)
	withKey := on + "lane: {key: graymesh-config-test-lane-key-0123456789}\n"
	cfg, err := Parse([]byte(withKey), "r.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mesh.CallerProofTTL.Duration != 5*time.Minute {
		t.Fatalf("caller_proof_ttl default %s", cfg.Mesh.CallerProofTTL)
	}
	for _, tt := range []struct{ doc, field string }{
		{on, "mesh.native_returning_callers: needs a lane key"},
		{strings.Replace(withKey, "native_returning_callers: true", "native_returning_callers: true\n  caller_proof_ttl: 2h", 1), "mesh.caller_proof_ttl: 2h0m0s is outside"},
		{strings.Replace(withKey, "native_returning_callers: true", "native_returning_callers: true\n  caller_proof_ttl: 500ms", 1), "mesh.caller_proof_ttl: 500ms is outside"},
	} {
		if _, err := Parse([]byte(tt.doc), "r.yaml"); err == nil || !strings.Contains(err.Error(), tt.field) {
			t.Fatalf("refusal %v, want %q", err, tt.field)
		}
	}
	headers := strings.Replace(withKey, "    percent: 12.5", "    percent: 12.5\n    headers: [{name: x-beta, exact: \"1\"}]", 1)
	cfg, err = Parse([]byte(headers), "r.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if w := strings.Join(cfg.Warnings(), "\n"); !strings.Contains(w, "mesh.native_returning_callers: releases[0] (shop-v2) has headers") {
		t.Fatalf("warnings %q", w)
	}
}
