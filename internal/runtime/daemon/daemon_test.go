package daemon

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const good = `
releases:
  - {name: shop-v2, env: gray, whitelist: [alice], percent: 10}
services:
  - name: shop
    environments: {stable: ["127.0.0.1:9101"], gray: ["127.0.0.1:9102"]}
`

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newDaemon(t *testing.T) (*Daemon, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "graymesh.yaml")
	write(t, path, good)
	return start(t, path, Options{}), path
}

func start(t *testing.T, path string, opts Options) *Daemon {
	t.Helper()
	d, err := New(context.Background(), path, opts, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestReloadRefusesBadConfigAndKeepsTheOneInForce(t *testing.T) {
	d, path := newDaemon(t)
	before, xdsBefore := d.Config().Version, d.xds.Version()

	write(t, path, strings.Replace(good, "percent: 10", "percent: 300", 1))
	err := d.Reload()
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "releases[0] (shop-v2).percent") {
		t.Fatalf("reload error %v does not name file and field", err)
	}
	if d.Config().Version != before || d.xds.Version() != xdsBefore {
		t.Fatal("a refused config replaced the one in force")
	}
	if st := d.last(); st.Result != "refused" || st.Version != before {
		t.Fatalf("status %+v", st)
	}

	write(t, path, strings.Replace(good, "percent: 10", "percent: 20", 1))
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if d.Config().Version == before || d.Config().Releases[0].Percent != 20 {
		t.Fatal("an accepted config did not take effect")
	}
	// percent is decided in graymesh, not Envoy: no new xDS snapshot.
	if d.xds.Version() != xdsBefore {
		t.Fatal("a decision-only change re-pushed Envoy config")
	}
	write(t, path, strings.Replace(good, "percent: 10", "percent: 20, traffic_percent: 5", 1))
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if d.xds.Version() == xdsBefore {
		t.Fatal("a route change did not produce a new xDS snapshot")
	}
}

func TestAdminEndpoints(t *testing.T) {
	d, path := newDaemon(t)
	srv := httptest.NewServer(d.AdminHandler())
	defer srv.Close()
	get := func(p string) (int, string) {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz before serving: %d", code)
	}
	d.ready.Store(true)
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Fatalf("readyz while serving: %d", code)
	}
	if code, body := get("/status"); code != http.StatusOK || !strings.Contains(body, `"config_version": "`+d.Config().Version) || !strings.Contains(body, "shop-v2") {
		t.Fatalf("status %d %s", code, body)
	}
	write(t, path, "releases: [{name: x, env: stable}]")
	resp, err := http.Post(srv.URL+"/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("reload of a bad file: %d", resp.StatusCode)
	}
	code, body := get("/metrics")
	for _, want := range []string{`graymesh_config_reloads_total{result="refused"} 1`, `graymesh_config_info{version="` + d.Config().Version + `"} 1`, "graymesh_extproc_active_streams 0"} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
