package extproc

import (
	"context"
	"log/slog"
	"testing"

	"github.com/graymesh/graymesh/internal/contract/wire"
)

// TestReusedAnswers: requests with the same outcome get the answer encoded
// once, requests with another outcome their own, and a request whose
// client sent x-gray-* headers an answer built for it (the removals).
func TestReusedAnswers(t *testing.T) {
	s := New(testPolicy(t), slog.New(slog.DiscardHandler), nil)
	client := dial(t, s)
	ask := func(kv ...string) (map[string]string, []string) {
		t.Helper()
		stream, err := client.Process(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(requestHeaders(headers(kv...), "")); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return mutation(t, resp)
	}
	alice, bob := "Bearer "+token(t, "alice"), "Bearer "+token(t, "bob")
	for i, c := range []struct{ auth, env, reason string }{
		{alice, "gray", "whitelist"}, {bob, "stable", "not-selected"}, {alice, "gray", "whitelist"}, {bob, "stable", "not-selected"},
	} {
		set, removed := ask("authorization", c.auth)
		if set[wire.HeaderEnv] != c.env || set[wire.HeaderReason] != c.reason || len(removed) != 0 {
			t.Fatalf("request %d: set %v removed %v, want env %s reason %s", i, set, removed, c.env, c.reason)
		}
	}
	if n := len(s.prepared.answers); n != 2 {
		t.Fatalf("%d prepared answers, want 2 (one per outcome)", n)
	}
	set, removed := ask("authorization", alice, wire.HeaderEnv, "stable", "x-gray-debug", "1")
	if set[wire.HeaderEnv] != "gray" || len(removed) != 1 || removed[0] != "x-gray-debug" {
		t.Fatalf("with client x-gray-* headers: set %v removed %v", set, removed)
	}
	if n := len(s.prepared.answers); n != 2 {
		t.Fatalf("an answer with removals was kept for reuse (%d prepared)", n)
	}
}
