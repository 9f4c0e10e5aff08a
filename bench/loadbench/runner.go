package loadbench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// One run's processes: graymesh (or the no-op server) and Envoy, started
// in order and each waited for, and the load client.

// runner is one configuration in one round.
type runner struct {
	h     *harness
	cfg   Config
	round int
	envoy *proc
	proc  *proc // graymesh or the no-op server; nil for B0 and L1
	// ownsProc: proc was started for this run (graymesh) and stops with it.
	ownsProc bool
	work     *workload
	client   *http.Client
	// pprof, when set, starts graymesh with --pprof on it.
	pprof string
}

// start launches the configuration's processor and Envoy and waits until
// a request goes through.
func (r *runner) start(ctx context.Context) error {
	h, c := r.h, r.cfg
	tag := fmt.Sprintf("r%d-%s", r.round, c.Name)
	if r.pprof != "" {
		tag += "-profile"
	}
	extProcAddr := h.ports.extproc
	switch c.proc {
	case procNoop:
		extProcAddr = h.ports.noop
		r.proc = h.noop
	case procGraymesh:
		if err := r.startGraymesh(ctx, tag); err != nil {
			return err
		}
	}
	boot, err := bootstrap(c, h.cfg, h.secret, extProcAddr, h.ports.envoyAdmin)
	if err != nil {
		return err
	}
	bootPath := filepath.Join(h.opts.WorkDir, "envoy-"+c.Name+".json")
	if err := os.WriteFile(bootPath, boot, 0o600); err != nil {
		return err
	}
	r.envoy, err = startProc(h.logDir, tag+"-envoy", h.plan, h.plan.envoy, h.opts.Envoy,
		"-c", bootPath, "--concurrency", "1", "--disable-hot-restart", "-l", "warn")
	if err != nil {
		return err
	}
	if err := waitReady(ctx, r.envoy, "envoy", 20*time.Second, httpOK(h.admin, fmt.Sprintf("http://127.0.0.1:%d/ready", h.ports.envoyAdmin), "LIVE")); err != nil {
		return err
	}
	if r.work, err = newWorkload(c, h.policy, h.secret, h.ports.listener, h.opts.Subjects, time.Now()); err != nil {
		return err
	}
	r.client = newClient()
	first := r.work.targets[0]
	return waitReady(ctx, r.envoy, "envoy listener", 10*time.Second, func() error {
		req, err := first.Request()
		if err != nil {
			return err
		}
		resp, err := r.client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("listener: %s", resp.Status)
		}
		return nil
	})
}

// startGraymesh starts graymesh serve with the configuration's settings
// and waits until it is ready.
func (r *runner) startGraymesh(ctx context.Context, tag string) error {
	h, c := r.h, r.cfg
	cfgPath := filepath.Join(h.opts.WorkDir, "graymesh-"+c.Name+".yaml")
	if err := os.WriteFile(cfgPath, h.ports.graymeshYAML(c.cacheSize, h.opts.MessageTimeout), 0o600); err != nil {
		return err
	}
	stateDir := filepath.Join(h.opts.WorkDir, "state", tag)
	if err := os.RemoveAll(stateDir); err != nil {
		return err
	}
	args := []string{"serve", "--config", cfgPath, "--state-dir", stateDir, "--log-level", "info"}
	if r.pprof != "" {
		args = append(args, "--pprof", r.pprof)
	}
	p, err := startProc(h.logDir, tag+"-graymesh", h.plan, h.plan.rest, h.opts.Graymesh, args...)
	if err != nil {
		return err
	}
	r.proc, r.ownsProc = p, true
	return waitReady(ctx, p, "graymesh", 15*time.Second, httpOK(h.admin, "http://"+h.ports.admin+"/readyz", ""))
}

// newClient is the load client's HTTP client: HTTP/1.1 keep-alive with a
// large idle pool, so the connections the warm-up opens are reused.
func newClient() *http.Client {
	return &http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        4096,
			MaxIdleConnsPerHost: 4096,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
	}
}

// stop closes the client and stops Envoy and, when this run started it,
// graymesh.
func (r *runner) stop() {
	if r.client != nil {
		r.client.CloseIdleConnections()
	}
	r.envoy.stop(5 * time.Second)
	if r.ownsProc {
		r.proc.stop(5 * time.Second)
	}
}
