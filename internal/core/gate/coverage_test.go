package gate

import (
	"net/netip"
	"testing"

	"github.com/graymesh/graymesh/internal/contract/config"
)

func TestCovered(t *testing.T) {
	tests := []struct {
		name string
		p    string
		by   []string
		want bool
	}{
		{"same range", "10.0.0.0/8", []string{"10.0.0.0/8"}, true},
		{"wider range", "10.1.0.0/16", []string{"10.0.0.0/8"}, true},
		{"narrower range", "10.0.0.0/8", []string{"10.0.0.0/9"}, false},
		{"both halves", "10.0.0.0/8", []string{"10.128.0.0/9", "10.0.0.0/9"}, true},
		{"halves with a hole", "10.0.0.0/8", []string{"10.0.0.0/9", "10.128.0.0/10"}, false},
		{"other family", "10.0.0.0/8", []string{"::/0"}, false},
		{"nothing", "192.168.1.0/24", nil, false},
		{"host route", "192.168.1.7/32", []string{"192.168.1.0/24"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := covered(netip.MustParsePrefix(tt.p), prefixes(tt.by)); got != tt.want {
				t.Fatalf("covered(%s, %v) = %v, want %v", tt.p, tt.by, got, tt.want)
			}
		})
	}
}

func TestHeaderCovers(t *testing.T) {
	h := func(exact, prefix, regex string) config.HeaderMatcher {
		return config.HeaderMatcher{Name: "x-app", Exact: exact, Prefix: prefix, Regex: regex}
	}
	tests := []struct {
		name string
		w, m config.HeaderMatcher
		want bool
	}{
		{"identical", h("on", "", ""), h("on", "", ""), true},
		{"other exact", h("yes", "", ""), h("on", "", ""), false},
		{"prefix covers exact", h("", "o", ""), h("on", "", ""), true},
		{"prefix misses exact", h("", "y", ""), h("on", "", ""), false},
		{"regex matches exact", h("", "", "^(on|yes)$"), h("on", "", ""), true},
		{"regex misses exact", h("", "", "^yes$"), h("on", "", ""), false},
		{"shorter prefix", h("", "2.", ""), h("", "2.9.", ""), true},
		{"longer prefix", h("", "2.9.1", ""), h("", "2.9.", ""), false},
		{"exact never covers a prefix", h("2.9.", "", ""), h("", "2.9.", ""), false},
		{"changed regex counts as narrowed", h("", "", "^2"), h("", "", "^2\\."), false},
		{"other header", config.HeaderMatcher{Name: "x-other", Exact: "on"}, h("on", "", ""), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := headerCovers(tt.w, tt.m); got != tt.want {
				t.Fatalf("headerCovers(%+v, %+v) = %v, want %v", tt.w, tt.m, got, tt.want)
			}
		})
	}
}
