package analysis

import (
	"encoding/json"
	"fmt"
	"slices"
)

// A rollout's sequential test is state that must outlive the process
// holding it: in a fleet, the one analyser that judges may be replaced
// mid-rollout, and its successor must continue the same test — the same
// running statistics, the same alpha split, the same rollout evidence —
// or the rollout's bound would be spent twice. MarshalJSON and
// RestoreSequential carry it, exactly: a restored test given the same
// windows reports what the original would have.

// sequentialJSON is a Sequential on the wire.
type sequentialJSON struct {
	// Alpha, Errors and Latency are the rollout's, fixed at its start
	// (UpdateSettings keeps them).
	Alpha    float64                      `json:"alpha"`
	Errors   bool                         `json:"errors"`
	Latency  bool                         `json:"latency"`
	Services []string                     `json:"services"`
	State    map[string]*serviceStateJSON `json:"state"`
}

type serviceStateJSON struct {
	Errors  eProcessJSON                 `json:"errors"`
	Latency [len(Quantiles)]eProcessJSON `json:"latency"`
	Gray    SideEvidence                 `json:"gray"`
	Stable  SideEvidence                 `json:"stable"`
	Routes  map[string]*routeStateJSON   `json:"routes,omitempty"`
	SlotOf  map[string]string            `json:"slot_of,omitempty"`
}

type routeStateJSON struct {
	Errors eProcessJSON  `json:"errors"`
	Gray   Counts        `json:"gray"`
	Stable Counts        `json:"stable"`
	Window RouteEvidence `json:"window"`
}

type eProcessJSON struct {
	LogRatio   []float64 `json:"log_ratio"`
	MaxLog     float64   `json:"max_log"`
	Events     int64     `json:"events"`
	GrayEvents int64     `json:"gray_events"`
}

func (p *eProcess) toJSON() eProcessJSON {
	return eProcessJSON{LogRatio: slices.Clone(p.logRatio[:]), MaxLog: p.maxLog, Events: p.events, GrayEvents: p.grayEvents}
}

func (j eProcessJSON) eProcess() (eProcess, error) {
	var p eProcess
	if len(j.LogRatio) != len(p.logRatio) {
		return p, fmt.Errorf("sequential state: %d log ratios, want %d", len(j.LogRatio), len(p.logRatio))
	}
	copy(p.logRatio[:], j.LogRatio)
	p.maxLog, p.events, p.grayEvents = j.MaxLog, j.Events, j.GrayEvents
	return p, nil
}

// MarshalJSON implements json.Marshaler: the test's whole state.
func (q *Sequential) MarshalJSON() ([]byte, error) {
	out := sequentialJSON{Alpha: q.s.Alpha, Errors: q.s.Errors, Latency: q.s.Latency, Services: q.services,
		State: map[string]*serviceStateJSON{}}
	for name, st := range q.state {
		sj := &serviceStateJSON{Errors: st.errors.toJSON(), Gray: st.gray, Stable: st.stable, SlotOf: st.slotOf,
			Routes: map[string]*routeStateJSON{}}
		for i := range st.latency {
			sj.Latency[i] = st.latency[i].toJSON()
		}
		for r, rs := range st.routes {
			sj.Routes[r] = &routeStateJSON{Errors: rs.errors.toJSON(), Gray: rs.gray, Stable: rs.stable, Window: rs.window}
		}
		out.State[name] = sj
	}
	return json.Marshal(out)
}

// RestoreSequential is the test b holds (written by MarshalJSON), its
// thresholds and actions taken from s; the rollout's alpha and metrics
// are b's, as they were when it started.
func RestoreSequential(s Settings, b []byte) (*Sequential, error) {
	var in sequentialJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("sequential state: %w", err)
	}
	s.Alpha, s.Errors, s.Latency = in.Alpha, in.Errors, in.Latency
	q := NewSequential(s, in.Services)
	for _, name := range in.Services {
		sj := in.State[name]
		if sj == nil {
			return nil, fmt.Errorf("sequential state: no state for service %s", name)
		}
		if err := q.state[name].restore(sj); err != nil {
			return nil, fmt.Errorf("service %s: %w", name, err)
		}
	}
	return q, nil
}

func (st *serviceState) restore(sj *serviceStateJSON) error {
	var err error
	if st.errors, err = sj.Errors.eProcess(); err != nil {
		return err
	}
	for i := range st.latency {
		if st.latency[i], err = sj.Latency[i].eProcess(); err != nil {
			return err
		}
	}
	st.gray, st.stable = sj.Gray, sj.Stable
	for name, slot := range sj.SlotOf {
		st.slotOf[name] = slot
	}
	for r, rj := range sj.Routes {
		p, err := rj.Errors.eProcess()
		if err != nil {
			return err
		}
		st.routes[r] = &routeState{errors: p, gray: rj.Gray, stable: rj.Stable, window: rj.Window}
	}
	for _, slot := range st.slotOf {
		if st.routes[slot] == nil {
			return fmt.Errorf("sequential state: route slot %s has no test", slot)
		}
	}
	return nil
}
