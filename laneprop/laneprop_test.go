package laneprop

import (
	"context"
	"net/http"
	"testing"

	"go.opentelemetry.io/otel/propagation"

	"github.com/graymesh/graymesh/internal/contract/wire"
)

func TestPropagator(t *testing.T) {
	p := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}, Propagator{})
	in := http.Header{}
	in.Set(wire.HeaderLane, "header.payload.sig")
	in.Set("baggage", "userId=alice")
	ctx := p.Extract(context.Background(), propagation.HeaderCarrier(in))
	if got := FromContext(ctx); got != "header.payload.sig" {
		t.Fatalf("extracted %q", got)
	}
	tests := map[string]struct {
		ctx  context.Context
		want string
	}{
		"forwarded":        {ctx, "header.payload.sig"},
		"dropped":          {Without(ctx), ""},
		"no incoming lane": {p.Extract(context.Background(), propagation.HeaderCarrier(http.Header{})), ""},
	}
	for name, tt := range tests {
		out := http.Header{}
		p.Inject(tt.ctx, propagation.HeaderCarrier(out))
		if got := out.Get(wire.HeaderLane); got != tt.want {
			t.Errorf("%s: injected %q, want %q", name, got, tt.want)
		}
	}
	if f := (Propagator{}).Fields(); len(f) != 1 || f[0] != wire.HeaderLane {
		t.Fatalf("fields %v", f)
	}
}
