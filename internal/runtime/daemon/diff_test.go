package daemon

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/graymesh/graymesh/internal/core/gate"
	"github.com/graymesh/graymesh/internal/runtime/control"
)

func TestDiffEndpoint(t *testing.T) {
	d, _ := newDaemon(t)
	// An admin override raises shop-v2 to 50%: it stays on top of any file
	// reloaded, so the diff of a file at 10% shows no change.
	_, err := d.Act(control.Action{Release: "shop-v2", Kind: "percent", Percent: 50})
	must(t, err)
	srv := httptest.NewServer(d.AdminHandler())
	defer srv.Close()
	post := func(query, body string) (int, string) {
		resp, err := http.Post(srv.URL+"/v1/diff"+query, "application/yaml", strings.NewReader(body))
		must(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	code, body := post("?sample=2000&source=/tmp/next.yaml", good)
	if code != http.StatusOK {
		t.Fatalf("diff: %d %s", code, body)
	}
	var rep gate.Report
	must(t, json.Unmarshal([]byte(body), &rep))
	if rep.Sample != 2000 || len(rep.Releases) != 1 || len(rep.Evictions) != 0 || rep.Refused ||
		rep.Old.Version != d.Config().Version || rep.New.File != "/tmp/next.yaml" {
		t.Fatalf("report with the override applied: %+v", rep)
	}
	if r := rep.Releases[0]; r.ToGray != 0 || r.ToStable != 0 {
		t.Fatalf("nobody moves: %+v", r)
	}

	code, body = post("?sample=2000", strings.Replace(good, "whitelist: [alice], ", "", 1))
	must(t, json.Unmarshal([]byte(body), &rep))
	if code != http.StatusOK || !rep.Refused || len(rep.Evictions) != 1 || !strings.Contains(rep.Evictions[0], `whitelist entry "alice" removed`) {
		t.Fatalf("evicting file: %d %+v", code, rep)
	}

	for _, tt := range []struct {
		query, body string
		code        int
	}{
		{"?sample=0", good, http.StatusBadRequest},
		{"?sample=many", good, http.StatusBadRequest},
		{"?at=tomorrow", good, http.StatusBadRequest},
		{"?source=next.yaml", "releases: [{name: x, env: stable}]", http.StatusUnprocessableEntity},
		{"", "releases: [", http.StatusUnprocessableEntity},
	} {
		if code, body := post(tt.query, tt.body); code != tt.code {
			t.Errorf("%s %q: %d %s, want %d", tt.query, tt.body, code, body, tt.code)
		}
	}
	if d.Config().Releases[0].Percent != 50 {
		t.Fatal("a diff changed the config in force")
	}
}
