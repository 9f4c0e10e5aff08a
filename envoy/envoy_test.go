package envoy

import (
	"strings"
	"testing"
)

func TestEveryBootstrapParsesAndValidates(t *testing.T) {
	names, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("no bootstrap files embedded")
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			b, err := Load(name)
			if err != nil {
				t.Fatal(err)
			}
			if b.GetDynamicResources().GetAdsConfig() == nil {
				t.Fatal("no ADS config")
			}
			if a := b.GetAdmin().GetAddress().GetSocketAddress().GetAddress(); a != "127.0.0.1" {
				t.Fatalf("admin bound to %q, want loopback", a)
			}
		})
	}
}

func TestParseRejectsUnknownFields(t *testing.T) {
	if _, err := Parse([]byte("node: {id: x, clutser: y}")); err == nil {
		t.Fatal("unknown field accepted")
	}
}

func TestRender(t *testing.T) {
	b, err := Load("bootstrap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := Render(b, Overrides{NodeID: "e2e", AdminPort: 19901, XDSHost: "127.0.0.1", XDSPort: 28000})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"id":"e2e"`, `"portValue":19901`, `"portValue":28000`} {
		if !strings.Contains(strings.ReplaceAll(string(out), " ", ""), want) {
			t.Errorf("rendered bootstrap lacks %s", want)
		}
	}
	if _, err := Parse(out); err != nil {
		t.Fatalf("rendered bootstrap does not parse back: %v", err)
	}
}
