package daemon

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/graymesh/graymesh/internal/runtime/control"
)

func TestActPreviewAndHistory(t *testing.T) {
	d, _ := newDaemon(t)
	if h := d.History("shop-v2"); len(h) != 1 || h[0].Source != "startup" || h[0].Result != "accepted" {
		t.Fatalf("history at start: %+v", h)
	}

	rep, err := d.Preview(control.Action{Release: "shop-v2", Kind: "percent", Percent: 50}, 2000)
	must(t, err)
	if rep.Refused || len(rep.Releases) != 1 || rep.Releases[0].ToGray < 0.3 || rep.Releases[0].ToStable != 0 {
		t.Fatalf("preview of 10 → 50: %+v", rep)
	}
	if d.Config().Releases[0].Percent != 10 {
		t.Fatal("a preview changed the config in force")
	}
	rep, err = d.Preview(control.Action{Release: "shop-v2", Kind: "percent", Percent: 5}, 2000)
	must(t, err)
	if !rep.Refused || len(rep.Evictions) != 1 || !strings.Contains(rep.Evictions[0], "percent lowered 10 → 5") {
		t.Fatalf("preview of 10 → 5: %+v", rep)
	}
	if _, err := d.Preview(control.Action{Release: "nope", Kind: "kill"}, 100); err == nil {
		t.Fatal("preview of an unknown release")
	}

	rs, err := d.Act(control.Action{Release: "shop-v2", Kind: "kill", Reason: "error budget review"})
	must(t, err)
	if rs.State != "killed" {
		t.Fatalf("after kill: %+v", rs)
	}
	_, err = d.Act(control.Action{Release: "shop-v2", Kind: "revive", Reason: "fixed"})
	must(t, err)
	if _, err := d.Act(control.Action{Release: "shop-v2", Kind: "percent", Percent: 5, Reason: "too hot"}); err == nil ||
		!strings.Contains(err.Error(), "change would move gray subjects back to stable") {
		t.Fatalf("evicting percent: %v", err)
	}
	h := d.History("shop-v2")
	if len(h) != 4 {
		t.Fatalf("history: %+v", h)
	}
	refused, killed := h[0], h[2]
	if killed.Result != "accepted" || killed.Source != "admin" || killed.Reason != "error budget review" ||
		strings.Join(killed.Details, ";") != "release shop-v2: state active → killed" || killed.Version != "2" {
		t.Fatalf("kill entry: %+v", killed)
	}
	if refused.Result != "refused" || refused.Reason != "too hot" || len(refused.Releases) != 1 || refused.Releases[0] != "shop-v2" ||
		!strings.Contains(refused.Error, "percent lowered 10 → 5") || refused.Version != "3" {
		t.Fatalf("refused entry: %+v", refused)
	}
	if len(d.History("other")) != 0 {
		t.Fatal("history of another release holds shop-v2's changes")
	}
}

func TestReleaseActionReasonAndCodes(t *testing.T) {
	d, _ := newDaemon(t)
	srv := httptest.NewServer(d.AdminHandler())
	defer srv.Close()
	for _, tt := range []struct {
		path string
		code int
	}{
		{"/v1/releases/shop-v2/kill?reason=5xx+spike", http.StatusOK},
		{"/v1/releases/shop-v2/percent?value=x", http.StatusBadRequest},
		{"/v1/releases/shop-v2/explode", http.StatusNotFound},
		{"/v1/releases/nope/kill", http.StatusNotFound},
		{"/v1/releases/shop-v2/kill?reason=" + strings.Repeat("x", 501), http.StatusBadRequest},
	} {
		resp, err := http.Post(srv.URL+tt.path, "", nil)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != tt.code {
			t.Errorf("%s: %d, want %d", tt.path, resp.StatusCode, tt.code)
		}
	}
	if h := d.History("shop-v2"); h[0].Reason != "5xx spike" || h[0].Details[0] != "release shop-v2: state active → killed" {
		t.Fatalf("kill entry: %+v", h[0])
	}
	if code, body := d.APIGet(context.Background(), "/v1/releases"); code != http.StatusOK || !strings.Contains(string(body), `"state": "killed"`) {
		t.Fatalf("APIGet: %d %s", code, body)
	}
	if code, _ := d.APIGet(context.Background(), "/v1/releases/shop-v2/nothing-here"); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		t.Fatalf("APIGet of a missing endpoint: %d", code)
	}
}

func TestAdminRefusesRequestsFromOtherSites(t *testing.T) {
	d, _ := newDaemon(t)
	srv := httptest.NewServer(d.AdminHandler())
	defer srv.Close()
	for _, tt := range []struct {
		name   string
		header map[string]string
		code   int
	}{
		{"curl", nil, http.StatusOK},
		{"same origin", map[string]string{"Origin": srv.URL, "Sec-Fetch-Site": "same-origin"}, http.StatusOK},
		{"a form on another site", map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"another origin, no fetch metadata", map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
		{"opaque origin", map[string]string{"Origin": "null"}, http.StatusForbidden},
	} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/releases/shop-v2/freeze", nil)
		for k, v := range tt.header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != tt.code && (tt.code != http.StatusOK || resp.StatusCode != http.StatusUnprocessableEntity) {
			t.Errorf("%s: %d, want %d", tt.name, resp.StatusCode, tt.code)
		}
	}
}
