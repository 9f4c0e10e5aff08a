// Package control is graymesh's one change pipeline. Every change to what
// graymesh serves enters through Pipeline.Submit, whoever makes it:
//
//   - the config file (Reload: the watcher, SIGHUP, POST /reload);
//   - a fleet object (ReleaseChange: the Kubernetes source);
//   - a runtime action on one release (Action: the admin API, the console,
//     the analysis);
//   - a held change whose effective_at has come (the pipeline itself).
//
// Each goes the same way: propose (the candidate config) → gate (a change
// that moves gray subjects back to stable passes only when it declares a
// rollback) → hold (a change whose effective_at is to come waits, per
// scope: the file's config, or one fleet release) → compile → the sinks
// (xDS, ext_proc, the access log's plan, the analysis), in order → record
// (state directory, history, last change, metrics, log). A refused change
// leaves the config in force as it was and is recorded with its reason.
//
// Who may write: only Submit (and the timers of held changes, which
// re-enter it) changes the config in force. In Kubernetes mode the file
// lists no release and runtime actions are refused, except the analysis's,
// which the pipeline hands to the fleet (Fleet.ActOnFleet) so that the
// fleet's object changes and every node, this one included, puts the
// change in force from its watch.
//
// Lock order: Pipeline.mu is held from proposal to record, and the sinks
// are called with it held, so a sink must never call back into the
// pipeline. The pipeline never holds mu while it calls the Fleet (Due,
// ActOnFleet, Status, ReleaseFleet), and the Kubernetes source never holds
// its own lock while it calls Submit: source → pipeline, never the other
// way round.
package control

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/gate"
	"github.com/graymesh/graymesh/internal/core/gray"
	"github.com/graymesh/graymesh/internal/core/identity"
)

// Sink receives every policy the pipeline puts in force, in order. A sink
// that returns an error refuses the change; only the first sinks may
// (xDS validates what it would push) — a later sink's error cannot undo
// what earlier sinks did.
type Sink interface {
	Put(p *gray.Policy) error
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(p *gray.Policy) error

// Put implements Sink.
func (f SinkFunc) Put(p *gray.Policy) error { return f(p) }

// Options configure a pipeline.
type Options struct {
	// Path is the config file.
	Path string
	// StateDir keeps the version counter, the config in force and the
	// runtime overrides across restarts ("" keeps them in memory only).
	StateDir string
	// Clock is the pipeline's time (default: the wall clock).
	Clock Clock
	// Fleet, when set, is Kubernetes mode (see the package comment).
	Fleet Fleet
	// Sources fetch issuers' key sets for every config compiled.
	Sources *identity.Sources
	// Changed, when set, is told (without blocking) after each change is
	// in force and readable through Config: the analysis looks again.
	Changed func()
	// Registerer takes the pipeline's metrics (none when nil).
	Registerer prometheus.Registerer
	Log        *slog.Logger
}

// Pipeline is the one way a change reaches what graymesh serves.
type Pipeline struct {
	opts    Options
	log     *slog.Logger
	sinks   []Sink
	metrics *pipelineMetrics

	// policy is the policy in force; readers never lock.
	policy atomic.Pointer[gray.Policy]

	mu sync.Mutex
	// file is the last accepted config file, before overrides (in
	// Kubernetes mode: the static file with the fleet's releases).
	file     *config.Config
	fileHash [32]byte
	state    *state
	holds    holds

	last    atomic.Pointer[Outcome]
	history history
	// killMu orders recording kills (state.Kills, written with mu held)
	// against reading them with the instant they are true of (Kills);
	// promised is the latest such instant answered.
	killMu   sync.Mutex
	promised time.Time
}

// Outcome is the last change's result, as GET /status reports it.
type Outcome struct {
	At      time.Time `json:"at"`
	Source  string    `json:"source"`
	Result  string    `json:"result"`
	Version string    `json:"version,omitempty"`
	Error   string    `json:"error,omitempty"`
	// Reason is the declared reason of the change (change.reason, or the
	// analysis verdict that made it).
	Reason string `json:"reason,omitempty"`
}

// New loads the state and the config file and puts the config in force
// through sinks; it does no network I/O. When the file is refused and the
// state directory holds the last config in force, that config is served
// instead (and the refusal recorded).
func New(opts Options, sinks ...Sink) (*Pipeline, error) {
	if opts.Clock == nil {
		opts.Clock = wallClock{}
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	st, err := loadState(opts.StateDir)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{opts: opts, log: opts.Log, sinks: sinks, state: st, metrics: newPipelineMetrics(opts.Registerer)}
	p.holds.clock = opts.Clock
	p.mu.Lock()
	defer p.mu.Unlock()
	file, next, err := p.readFile()
	if err == nil && st.InForce != nil && !next.Change.Rollback && opts.Fleet == nil {
		err = evictionError(st.InForce, next)
	}
	if err != nil {
		if st.InForce == nil || opts.Fleet != nil {
			return nil, err
		}
		p.log.Error("config refused at startup; serving the last config in force", "file", opts.Path, "version", st.Version)
		file, next = st.InForce, st.InForce
	}
	p.file = file
	if err := p.put(next, SourceStartup); err != nil {
		return nil, fmt.Errorf("%s: %w", opts.Path, err)
	}
	if err != nil {
		p.refused(SourceStartup, err, nil)
	}
	return p, nil
}

// Sources name changes in the history, the logs and GET /status.
const (
	SourceStartup  = "startup"
	SourceFile     = "file"
	SourceAdmin    = "admin"
	SourceConsole  = "console"
	SourceAnalysis = "analysis"
	SourceFleet    = "kubernetes"
)

// Policy is the policy in force.
func (p *Pipeline) Policy() *gray.Policy { return p.policy.Load() }

// Config is the config in force.
func (p *Pipeline) Config() *config.Config { return p.policy.Load().Config }

// Clock is the pipeline's time.
func (p *Pipeline) Clock() Clock { return p.opts.Clock }

// Path is the config file's path.
func (p *Pipeline) Path() string { return p.opts.Path }

// FileHash is the hash of the config file as last read.
func (p *Pipeline) FileHash() [32]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fileHash
}

// Last is the last change's outcome (nil before any).
func (p *Pipeline) Last() *Outcome { return p.last.Load() }

// History returns the changes since graymesh started that touch release
// ("" = all), newest first.
func (p *Pipeline) History(release string) []Record { return p.history.list(release) }

// Result is what Submit did with an accepted change.
type Result struct {
	// Pending is true when the change is held for its effective_at.
	Pending bool
	// Note says what the fleet did with an action handed to it.
	Note string
}

// Submit puts one change in force now, holds it for its effective_at, or
// refuses it (the config in force stays, and the error says why).
func (p *Pipeline) Submit(ch Change) (Result, error) {
	if a, ok := ch.(Action); ok && p.opts.Fleet != nil {
		return p.actOnFleet(a)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	prop, err := ch.propose(p)
	if errors.Is(err, ErrNoRelease) || errors.Is(err, errBadAction) {
		// Not a change at all: nothing to refuse or record.
		return Result{}, err
	}
	if prop.replaces != noScope {
		// A newer change of the same scope replaces its held one.
		p.holds.cancel(prop.replaces)
	}
	if err == nil {
		err = p.enter(prop)
	}
	if err != nil {
		if prop.undo != nil {
			prop.undo()
		}
		if prop.describe != nil {
			err = prop.describe(err)
		}
		p.refused(prop.source, err, prop.next)
		return Result{}, err
	}
	if prop.commit != nil {
		prop.commit(prop.held)
	}
	return Result{Pending: prop.held}, nil
}

// enter takes an accepted proposal through the gate and the hold, or puts
// it in force. The caller holds mu.
func (p *Pipeline) enter(prop *proposal) error {
	cur := p.Config()
	if err := checkGate(cur, prop.next); err != nil {
		return err
	}
	if at := prop.holdAt; at != nil && p.opts.Clock.Now().Before(*at) {
		// Every node holds the change until the same instant; it must
		// compile now, so a broken change is refused now.
		if _, err := gray.Compile(prop.next, identity.WithSources(p.opts.Sources)); err != nil {
			return err
		}
		next := prop.next
		p.holds.hold(prop.scope, *at, func(still func() bool) { prop.due(still, next) })
		prop.held = true
		p.notePending(prop.source, *at, cur, prop.next, prop.logAttrs...)
		return nil
	}
	// A change put in force now replaces the file's held change, which
	// was proposed against what is about to change.
	p.holds.cancel(fileScope)
	return p.put(prop.next, prop.putSource)
}

// readFile loads the config file and applies the overrides. The caller
// holds mu (or is New).
func (p *Pipeline) readFile() (file, next *config.Config, err error) {
	data, err := os.ReadFile(p.opts.Path)
	if err != nil {
		return nil, nil, err
	}
	p.fileHash = sha256.Sum256(data)
	file, err = config.Parse(data, p.opts.Path)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", p.opts.Path, err)
	}
	if p.opts.Fleet != nil {
		if err := p.fleetFile(file); err != nil {
			return nil, nil, err
		}
	}
	for _, w := range file.Warnings() {
		p.log.Warn("config warning", "file", p.opts.Path, "warning", w)
	}
	next, err = effective(file, p.state.Overrides)
	if err != nil {
		return nil, nil, fmt.Errorf("%s with admin overrides: %w", p.opts.Path, err)
	}
	return file, next, nil
}

// evictionError refuses a change that would move subjects who are gray
// now back to stable, naming every cause.
func evictionError(cur, next *config.Config) error {
	errs := gate.Evictions(cur, next)
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("change would move gray subjects back to stable; to allow it, declare change: {rollback: true, reason: ...} in the config file (graymesh release: pass --rollback):\n%w", errors.Join(errs...))
}

// checkGate is the eviction gate: a change that would move gray subjects back
// to stable passes only when it declares a rollback.
func checkGate(cur, next *config.Config) error {
	if next.Change.Rollback {
		return nil
	}
	return evictionError(cur, next)
}

// notePending logs, reports in /status and records in the history a
// change accepted to take effect at at.
func (p *Pipeline) notePending(source string, at time.Time, cur, next *config.Config, logAttrs ...any) {
	p.log.Info("change accepted; takes effect later", append([]any{"source", source, "effective_at", at.Format(time.RFC3339)}, logAttrs...)...)
	p.last.Store(&Outcome{At: p.opts.Clock.Now(), Source: source, Result: "pending until " + at.Format(time.RFC3339), Version: cur.Version})
	p.record("pending", source, cur, next, nil)
}

// put makes next the config in force: a new version when its content
// changed, compiled, handed to every sink and persisted. The caller holds
// mu (or is New).
func (p *Pipeline) put(next *config.Config, source string) error {
	hash := contentHash(next)
	version := p.state.Version
	if hash != p.state.ContentHash || version == 0 {
		version++
	}
	if p.opts.Fleet == nil {
		next.Version = strconv.Itoa(version)
	}
	next.FleetVersion = p.opts.Fleet != nil
	pol, err := gray.Compile(next, identity.WithSources(p.opts.Sources))
	if err != nil {
		return err
	}
	for _, s := range p.sinks {
		if err := s.Put(pol); err != nil {
			return err
		}
	}
	p.recordKills(pol)
	p.state.Version, p.state.ContentHash, p.state.InForce = version, hash, next
	if err := p.state.save(p.opts.StateDir); err != nil {
		// Serving goes on; only the restart guarantees weaken.
		p.log.Error("saving state", "dir", p.opts.StateDir, "error", err)
	}
	var cur *config.Config
	if old := p.policy.Swap(pol); old != nil {
		cur = old.Config
	}
	if p.opts.Sources != nil {
		p.opts.Sources.Retain(pol.Verifier)
	}
	p.record("accepted", source, cur, next, nil)
	p.metrics.accepted(next.Version)
	p.last.Store(&Outcome{At: p.opts.Clock.Now(), Source: source, Result: "accepted", Version: next.Version, Reason: next.Change.Reason})
	p.log.Info("config in force", "source", source, "config_version", next.Version, "content_hash", hash, "reason", next.Change.Reason)
	if p.opts.Changed != nil {
		p.opts.Changed()
	}
	return nil
}

// refused records a refused change; next is the config refused, when it
// got as far as being read.
func (p *Pipeline) refused(source string, err error, next *config.Config) {
	p.metrics.refused()
	inForce := ""
	var cur *config.Config
	if pol := p.policy.Load(); pol != nil {
		cur = pol.Config
		inForce = cur.Version
	}
	p.last.Store(&Outcome{At: p.opts.Clock.Now(), Source: source, Result: "refused", Error: err.Error(), Version: inForce})
	p.log.Error("config refused; the config in force stays", "source", source, "file", p.opts.Path, "version_in_force", inForce, "error", err)
	p.record("refused", source, cur, next, err)
}

// Status is the pipeline's part of GET /status.
type Status struct {
	ContentHash string `json:"config_content_hash"`
	// PendingEffectiveAt is when the file's held change takes effect ("":
	// none); PendingReleases each fleet release's held change.
	PendingEffectiveAt string            `json:"pending_effective_at"`
	PendingReleases    map[string]string `json:"pending_releases"`
}

// Status reports the content in force and the held changes.
func (p *Pipeline) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Status{ContentHash: p.state.ContentHash, PendingReleases: map[string]string{}}
	for scope, at := range p.holds.list() {
		if scope == fileScope {
			st.PendingEffectiveAt = at.Format(time.RFC3339)
			continue
		}
		st.PendingReleases[scope] = at.Format(time.RFC3339)
	}
	return st
}

// pipelineMetrics are the change series on /metrics.
type pipelineMetrics struct {
	reloads *prometheus.CounterVec
	version *prometheus.GaugeVec
}

func newPipelineMetrics(reg prometheus.Registerer) *pipelineMetrics {
	m := &pipelineMetrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "graymesh_config_reloads_total",
			Help: "Config reloads, by result (accepted, refused).",
		}, []string{"result"}),
		version: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "graymesh_config_info",
			Help: "The config version in force (value is always 1).",
		}, []string{"version"}),
	}
	if reg != nil {
		reg.MustRegister(m.reloads, m.version)
	}
	for _, r := range []string{"accepted", "refused"} {
		m.reloads.WithLabelValues(r)
	}
	return m
}

func (m *pipelineMetrics) accepted(version string) {
	m.reloads.WithLabelValues("accepted").Inc()
	m.version.Reset()
	m.version.WithLabelValues(version).Set(1)
}

func (m *pipelineMetrics) refused() { m.reloads.WithLabelValues("refused").Inc() }
