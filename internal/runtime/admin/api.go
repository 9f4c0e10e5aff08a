// Package admin is graymesh's admin API: the typed operations (API), the
// in-process implementation over the change pipeline (Service), the HTTP
// handlers that serve it on admin_listen (Service.Handler) and the HTTP
// client the CLI uses (Client). The console uses the Service in process,
// so the console, the CLI and the HTTP API can never disagree.
//
// JSON follows one convention: lower snake case names, durations as
// strings ("30s"), times in RFC 3339.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/graymesh/graymesh/internal/core/gate"
	"github.com/graymesh/graymesh/internal/core/gray"
	"github.com/graymesh/graymesh/internal/runtime/analyser"
	"github.com/graymesh/graymesh/internal/runtime/control"
)

// API is what graymesh's admin API does, typed.
type API interface {
	// Releases is every release as it stands now (GET /v1/releases).
	Releases(ctx context.Context) ([]ReleaseStatus, error)
	// Act applies an action through the change pipeline (POST
	// /v1/releases/{name}/{action}) and returns the release after it.
	Act(ctx context.Context, a Action) (ReleaseStatus, error)
	// Preview is what an action would do, without doing it (POST
	// /v1/releases/{name}/{action}/preview).
	Preview(ctx context.Context, a Action, sample int) (gate.Report, error)
	// Explain decides a described caller with the policy in force (POST
	// /v1/explain).
	Explain(ctx context.Context, ask gray.Ask) (gray.Explanation, error)
	// Diff compares a candidate config file with the config in force
	// (POST /v1/diff).
	Diff(ctx context.Context, d DiffRequest) (gate.Report, error)
	// Analysis is a release's analysis and its last windows (all when
	// windows ≤ 0) (GET /v1/releases/{name}/analysis).
	Analysis(ctx context.Context, release string, windows int) (*AnalysisStatus, error)
	// Fleet is how the fleet serves a release, in Kubernetes mode (GET
	// /v1/releases/{name}/fleet).
	Fleet(ctx context.Context, release string) (*FleetRelease, error)
	// History is the changes that touch release ("" = all), newest first
	// (GET /v1/history).
	History(ctx context.Context, release string) ([]Change, error)
	// Status is the process's state (GET /status).
	Status(ctx context.Context) (*Status, error)
	// StressMarker mints a stress marker for a release, valid for ttl
	// (POST /v1/releases/{name}/stress-marker?ttl=1h): requests that
	// carry it load the release's environment as if it were fully
	// ramped, marked as shadow load on every hop.
	StressMarker(ctx context.Context, release string, ttl time.Duration) (StressMarker, error)
}

// LaneState is what a service that follows lanes itself (a message
// consumer) needs from graymesh: the keys lanes verify with and the kills
// that stop them (GET /v1/lanes).
type LaneState struct {
	// ConfigVersion is the config version the state is of.
	ConfigVersion string `json:"config_version"`
	// Keys is the JSON Web Key Set of every key a lane verifies with (none
	// without a lane key).
	Keys json.RawMessage `json:"keys,omitempty"`
	// Killed names the killed releases: a lane of one is followed to
	// stable, unless KilledThrough is set and the lane's version is newer
	// (issued where the kill was already lifted: Kubernetes mode).
	Killed        []string `json:"killed"`
	KilledThrough string   `json:"killed_through,omitempty"`
	// Kills say when each kill came into force on this graymesh, and when
	// a revived release's kill ended (remembered for an hour): a consumer
	// decides a record by the kill in force when it was produced, so
	// consumers that read a kill at different moments agree on every
	// record.
	Kills []control.Kill `json:"kills"`
	// AsOf is the instant the state is true of: every kill in force then
	// is in Kills. A consumer decides a record produced after AsOf only
	// with a newer state.
	AsOf time.Time `json:"as_of"`
}

// StressMarker is a minted stress marker: send Marker in Header.
type StressMarker struct {
	Release   string    `json:"release"`
	Header    string    `json:"header"`
	Marker    string    `json:"marker"`
	ExpiresAt time.Time `json:"expires_at"`
}

// The API's types are owned by the pipeline and the analysis; they are
// named here so that a caller of the API needs this package only.
type (
	// ReleaseStatus is one release as it stands now.
	ReleaseStatus = control.ReleaseStatus
	// Action is one runtime change to a release.
	Action = control.Action
	// Change is one change accepted, held or refused.
	Change = control.Record
	// Outcome is the last change's result.
	Outcome = control.Outcome
	// FleetRelease is how the fleet serves one release.
	FleetRelease = control.FleetRelease
	// FleetNode is what one node reports for a release.
	FleetNode = control.FleetNode
	// AnalysisStatus is a release's analysis and its windows.
	AnalysisStatus = analyser.Status
	// Window is one judged window.
	Window = analyser.Window
	// FleetWindow is what the fleet analyser adds to a window.
	FleetWindow = analyser.FleetWindow
)

// DiffRequest is a candidate config file to compare.
type DiffRequest struct {
	// Data is the file's content; Source its path on the caller's machine
	// (relative key paths resolve against its directory).
	Data   []byte
	Source string
	// Sample is how many subjects to sample (0: gate.DefaultSample); At
	// the instant to compare at (zero: now).
	Sample int
	At     time.Time
}

// Status is GET /status.
type Status struct {
	Fleet      map[string]any `json:"fleet"`
	ConfigFile string         `json:"config_file"`
	Version    string         `json:"config_version"`
	control.Status
	XDSVersion    string          `json:"xds_version"`
	LastReload    *Outcome        `json:"last_reload"`
	Releases      []ReleaseStatus `json:"releases"`
	ActiveStreams int64           `json:"extproc_active_streams"`
	XDS           XDSStats        `json:"xds"`
}

// XDSStats count the xDS server's responses.
type XDSStats struct {
	Pushes   int64 `json:"pushes"`
	ACKs     int64 `json:"acks"`
	NACKs    int64 `json:"nacks"`
	Restores int64 `json:"restores"`
}

// Error is an API error with its HTTP status: what the handlers answer
// and what the client returns.
type Error struct {
	Code    int
	Message string
}

func (e *Error) Error() string { return e.Message }

// ActionKinds are the operators' actions, in the order the API lists them.
var ActionKinds = control.ActionKinds

// Code is err's HTTP status: 200 for nil, 500 for an error that is not an
// API error.
func Code(err error) int {
	var e *Error
	switch {
	case err == nil:
		return http.StatusOK
	case errors.As(err, &e):
		return e.Code
	}
	return http.StatusInternalServerError
}
