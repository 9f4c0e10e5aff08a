package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/gate"
	"github.com/graymesh/graymesh/internal/core/gray"
	"github.com/graymesh/graymesh/internal/runtime/analyser"
	"github.com/graymesh/graymesh/internal/runtime/control"
)

// Runtime is what the process tells the admin API about itself.
type Runtime struct {
	// Ready is nil when the process serves, else why not.
	Ready func() error
	// XDSVersion and XDS report the xDS server; ActiveStreams counts the
	// ext_proc streams open now.
	XDSVersion    func() string
	XDS           func() XDSStats
	ActiveStreams func() int64
	// Gatherer reads the process's metrics (what /metrics serves);
	// Registerer takes the API's own.
	Gatherer   prometheus.Gatherer
	Registerer prometheus.Registerer
	// StateDir is the state directory ("" when state is kept in memory).
	StateDir string
	// Token, when set, is the bearer token the API requires.
	Token string
	// Log records what the API hands out (stress markers); nil: nowhere.
	Log *slog.Logger
}

// Service is the API in process, over the change pipeline and the
// analysis runner.
type Service struct {
	pipe     *control.Pipeline
	analysis *analyser.Runner
	rt       Runtime
	// laneReads counts GET /v1/lanes answers: how often message
	// consumers read the lane state (nil: not counted).
	laneReads prometheus.Counter
}

var _ API = (*Service)(nil)

// NewService is the API of one graymesh.
func NewService(p *control.Pipeline, a *analyser.Runner, rt Runtime) *Service {
	s := &Service{pipe: p, analysis: a, rt: rt}
	if rt.Registerer != nil {
		s.laneReads = prometheus.NewCounter(prometheus.CounterOpts{Name: "graymesh_lane_state_reads_total",
			Help: "GET /v1/lanes answers: message consumers read the lane state every second, and on demand for messages newer than it (see lane.message_kill_delay)."})
		rt.Registerer.MustRegister(s.laneReads)
	}
	return s
}

// Releases implements API.
func (s *Service) Releases(context.Context) ([]ReleaseStatus, error) { return s.pipe.Releases(), nil }

// Act implements API.
func (s *Service) Act(_ context.Context, a Action) (ReleaseStatus, error) {
	if _, err := s.pipe.Submit(a); err != nil {
		return ReleaseStatus{}, apiError(err)
	}
	rs, err := s.pipe.Release(a.Release)
	return rs, apiError(err)
}

// Preview implements API.
func (s *Service) Preview(_ context.Context, a Action, sample int) (gate.Report, error) {
	if sample <= 0 {
		sample = gate.DefaultSample
	}
	rep, err := s.pipe.Preview(a, sample)
	return rep, apiError(err)
}

// Explain implements API.
func (s *Service) Explain(_ context.Context, ask gray.Ask) (gray.Explanation, error) {
	p := s.pipe.Policy()
	req, err := p.Request(ask, s.pipe.Clock().Now())
	if err != nil {
		return gray.Explanation{}, &Error{Code: http.StatusBadRequest, Message: err.Error()}
	}
	return p.Explain(req), nil
}

// Lanes is the lane state in force (GET /v1/lanes).
func (s *Service) Lanes() LaneState {
	kills, asOf := s.pipe.Kills()
	p := s.pipe.Policy()
	st := LaneState{ConfigVersion: p.Engine.Version(), Killed: []string{}, Kills: kills, AsOf: asOf}
	if st.Kills == nil {
		st.Kills = []control.Kill{}
	}
	if p.Lanes != nil {
		st.Keys = json.RawMessage(p.Lanes.JWKS())
	}
	if p.Plan != nil {
		st.Killed = append(st.Killed, p.Plan.Killed...)
		if kt := p.Plan.KilledThrough; kt != nil {
			st.KilledThrough = strconv.FormatInt(*kt, 10)
		}
	}
	return st
}

// StressMarker implements API. Every graymesh of the mesh verifies the
// marker: it is signed with the lane key they share.
func (s *Service) StressMarker(_ context.Context, release string, ttl time.Duration) (StressMarker, error) {
	p := s.pipe.Policy()
	if p.Lanes == nil {
		return StressMarker{}, &Error{Code: http.StatusConflict, Message: "no lane key (lane.key or lane.key_file): graymesh cannot sign stress markers"}
	}
	if !p.Engine.Has(release) {
		return StressMarker{}, &Error{Code: http.StatusNotFound, Message: fmt.Sprintf("no release %q", release)}
	}
	now := s.pipe.Clock().Now()
	tok, err := p.Lanes.SignStress(release, now, ttl)
	if err != nil {
		return StressMarker{}, &Error{Code: http.StatusBadRequest, Message: err.Error()}
	}
	m := StressMarker{Release: release, Header: wire.HeaderStressMarker, Marker: tok, ExpiresAt: now.Add(ttl).UTC()}
	if s.rt.Log != nil {
		s.rt.Log.Info("stress marker minted", "release", release, "ttl", ttl.String(), "expires_at", m.ExpiresAt)
	}
	return m, nil
}

// Diff implements API.
func (s *Service) Diff(_ context.Context, d DiffRequest) (gate.Report, error) {
	file, err := config.Parse(d.Data, d.Source)
	if err != nil {
		return gate.Report{}, &Error{Code: http.StatusUnprocessableEntity, Message: fmt.Sprintf("%s: %v", d.Source, err)}
	}
	if d.Sample <= 0 {
		d.Sample = gate.DefaultSample
	}
	if d.At.IsZero() {
		d.At = s.pipe.Clock().Now()
	}
	rep, err := s.pipe.Diff(file, d.Sample, d.At)
	if err != nil {
		return gate.Report{}, &Error{Code: http.StatusUnprocessableEntity, Message: err.Error()}
	}
	return rep, nil
}

// Analysis implements API.
func (s *Service) Analysis(_ context.Context, release string, windows int) (*AnalysisStatus, error) {
	st, ok := s.analysis.Status(release, windows)
	if !ok {
		return nil, &Error{Code: http.StatusNotFound, Message: fmt.Sprintf("release %q has no analysis (or does not exist)", release)}
	}
	return st, nil
}

// Fleet implements API.
func (s *Service) Fleet(ctx context.Context, release string) (*FleetRelease, error) {
	fr, err := s.pipe.ReleaseFleet(ctx, release)
	switch {
	case errors.Is(err, control.ErrNoFleet):
		return nil, &Error{Code: http.StatusNotFound, Message: err.Error()}
	case err != nil:
		return nil, &Error{Code: http.StatusBadGateway, Message: fmt.Sprintf("fleet status of %s: %v", release, err)}
	case fr == nil:
		return nil, &Error{Code: http.StatusNotFound, Message: fmt.Sprintf("no GrayRelease %q", release)}
	}
	return fr, nil
}

// History implements API.
func (s *Service) History(_ context.Context, release string) ([]Change, error) {
	return s.pipe.History(release), nil
}

// Status implements API.
func (s *Service) Status(context.Context) (*Status, error) {
	st := &Status{
		Fleet: s.pipe.FleetStatus(), ConfigFile: s.pipe.Path(), Version: s.pipe.Config().Version, Status: s.pipe.Status(),
		LastReload: s.pipe.Last(), Releases: s.pipe.Releases(),
	}
	if s.rt.XDSVersion != nil {
		st.XDSVersion = s.rt.XDSVersion()
	}
	if s.rt.XDS != nil {
		st.XDS = s.rt.XDS()
	}
	if s.rt.ActiveStreams != nil {
		st.ActiveStreams = s.rt.ActiveStreams()
	}
	return st, nil
}

// Config is the config in force (with its secrets: for the process's own
// use, never served as is).
func (s *Service) Config() *config.Config { return s.pipe.Config() }

// Last is the last change's outcome (nil before any).
func (s *Service) Last() *Outcome { return s.pipe.Last() }

// Gatherer reads the process's metrics.
func (s *Service) Gatherer() prometheus.Gatherer { return s.rt.Gatherer }

// StateDir is the state directory ("" when state is kept in memory).
func (s *Service) StateDir() string { return s.rt.StateDir }

// HasToken reports whether the API needs a bearer token.
func (s *Service) HasToken() bool { return s.rt.Token != "" }

// TokenIs reports, in constant time, whether tok is the API's token. It
// is false whenever no token is set.
func (s *Service) TokenIs(tok string) bool {
	want := s.rt.Token
	return want != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(want)) == 1
}

// apiError gives a pipeline error its HTTP status: an unknown release 404,
// an action that cannot be understood 400, a refused change 422.
func apiError(err error) error {
	var e *Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e):
		return err
	case errors.Is(err, control.ErrNoRelease):
		return &Error{Code: http.StatusNotFound, Message: err.Error()}
	case control.IsBadAction(err):
		return &Error{Code: http.StatusBadRequest, Message: err.Error()}
	}
	return &Error{Code: http.StatusUnprocessableEntity, Message: err.Error()}
}
