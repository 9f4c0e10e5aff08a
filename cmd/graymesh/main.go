// Command graymesh is gray release for Envoy: it decides, per request, which
// environment serves it (ext_proc) and pushes the routes that honour that
// decision (xDS).
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/graymesh/graymesh/internal/runtime/daemon"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `graymesh — gray release (canary) for Envoy service meshes

Usage:
  graymesh <command> [flags]

Commands:
  serve          run the ext_proc decision service, the xDS server and the admin API
  controller     Kubernetes mode's controller: GrayRelease status and the fleet analysis (a Deployment)
  validate       check a config file; list every problem
  explain        show the decision for a caller (or a queue message, --message) and why
  token          mint a token: HS key from the config, or an RS/ES/EdDSA private key (--key)
  verify-traces  check from Jaeger that every hop stayed in its lane
  diff           what a config change does: subjects moving each way, and evictions
  release        list, freeze, unfreeze, kill, revive or re-percent releases of a running graymesh
  analysis       a release's gray-versus-stable windows: sides, tests, verdicts and actions
  loadtest       stress-test a release's environment with marked shadow traffic through the edge
  render         print Istio routes for the config: graymesh render istio --config FILE
  version        print the version (also: graymesh --version)

Run "graymesh <command> --help" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmds := map[string]func([]string, io.Writer, io.Writer) error{
		"serve":         serve,
		"controller":    controllerCmd,
		"validate":      validate,
		"explain":       explain,
		"token":         token,
		"verify-traces": verifyTraces,
		"release":       release,
		"analysis":      analysisCmd,
		"loadtest":      loadtestCmd,
		"diff":          diffCmd,
		"render":        render,
		"version": func([]string, io.Writer, io.Writer) error {
			fmt.Fprintln(stdout, version)
			return nil
		},
	}
	name := args[0]
	switch name {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "--version", "-version", "-v":
		name = "version"
	}
	cmd, ok := cmds[name]
	if !ok {
		fmt.Fprintf(stderr, "graymesh: unknown command %q\n\n%s", name, usage)
		return 2
	}
	err := cmd(args[1:], stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.Is(err, errLeaks):
		return 1
	default:
		fmt.Fprintf(stderr, "graymesh %s: %v\n", name, err)
		return 1
	}
}

var errUsage = errors.New("usage")

// newFlags returns a FlagSet whose --help prints a synopsis and the flags.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}

func serve(args []string, _, stderr io.Writer) error {
	fs := newFlags("serve", `Usage: graymesh serve --config FILE [--kube [--kubeconfig FILE] [--namespace NS]]

Runs the ext_proc decision service, the xDS (ADS) server and the admin HTTP
server on the addresses in the config's "server" section. SIGHUP or
POST /reload on the admin server re-reads the config; a config that fails
validation is refused and the one in force stays. SIGTERM drains and exits 0.

With --kube, releases come from the GrayRelease objects of one namespace
(Kubernetes mode, docs/kubernetes.md): the file keeps the static settings
only, every node serves the same objects under the same version, and the
node is ready once the initial list is in force.`, stderr)
	path := fs.String("config", "", "config file (required)")
	level := fs.String("log-level", "info", "log level: debug (one line per decision), info, warn, error")
	format := fs.String("log-format", "json", "log format: json or text")
	drain := fs.Duration("drain-timeout", 10*time.Second, "how long in-flight ext_proc streams may finish after SIGTERM")
	stateDir := fs.String("state-dir", "", "keeps the config version, the config in force and admin overrides across restarts (default: one directory per config file under $XDG_STATE_HOME/graymesh)")
	watch := fs.Duration("watch-interval", time.Second, "how often to check the config file for changes (0: only SIGHUP and POST /reload)")
	tokenFile := fs.String("admin-token-file", "", "file holding the admin API bearer token (required for the admin API when admin_listen is not loopback)")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this loopback address, e.g. 127.0.0.1:6060 (off when empty)")
	gcPercent := gcFlag(fs)
	ui := consoleFlags(fs)
	kf := kubeServeFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *path == "" {
		fs.Usage()
		return errUsage
	}
	log, err := newLogger(stderr, *level, *format)
	if err != nil {
		return err
	}
	log = log.With("version", version)
	setGCPercent(*gcPercent)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *pprofAddr != "" {
		stopPprof, err := servePprof(ctx, *pprofAddr, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	if *stateDir == "" {
		*stateDir = defaultStateDir(*path)
	}
	token := ""
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("--admin-token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	opts := daemon.Options{
		DrainTimeout: *drain, Version: version, StateDir: *stateDir, WatchInterval: *watch, AdminToken: token,
		Console: ui.build(log),
	}
	if kf.on() {
		return serveKube(ctx, *path, opts, kf, log)
	}
	d, err := daemon.New(ctx, *path, opts, log)
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

// defaultStateDir is a directory for one config file under
// $XDG_STATE_HOME/graymesh (or ~/.local/state/graymesh), so two configs
// never share a version counter or a config in force.
func defaultStateDir(configPath string) string {
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		base = filepath.Join(h, ".local", "state")
	}
	abs, err := filepath.Abs(configPath)
	if err != nil {
		abs = configPath
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(base, "graymesh", strings.TrimSuffix(filepath.Base(abs), filepath.Ext(abs))+"-"+hex.EncodeToString(sum[:4]))
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch strings.ToLower(format) {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not json or text", format)
}
