// The config's JSON form: what Clone copies through, what graymesh keeps in
// its state directory and what the admin API shows of a release's
// analysis. Durations are strings ("30s"), as in the file and everywhere
// in the admin API.

package config

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"time"
)

// MarshalJSON writes the duration as a string like "30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string ("30s"), a number of nanoseconds,
// or the {"Duration": nanoseconds} object that state files written before
// durations were strings hold.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration like 50ms", s)
		}
		d.Duration = v
		return nil
	}
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
		var old struct{ Duration time.Duration }
		if err := json.Unmarshal(b, &old); err != nil {
			return err
		}
		d.Duration = old.Duration
		return nil
	}
	var ns int64
	if err := json.Unmarshal(b, &ns); err != nil {
		return fmt.Errorf("%s is not a duration like \"50ms\"", b)
	}
	d.Duration = time.Duration(ns)
	return nil
}

// UnmarshalJSON reads the analysis as it is written now, and as state
// files written before its fields had JSON names spell them: Go's field
// names, which the snake case names match only where they are one word.
func (a *Analysis) UnmarshalJSON(b []byte) error {
	type snakeCase Analysis
	if err := json.Unmarshal(b, (*snakeCase)(a)); err != nil {
		return err
	}
	var goNames struct {
		PrometheusURL, OnFail, OnCritical string
		MinRequests                       int
		Latency                           struct{ MinEffect Duration }
	}
	if err := json.Unmarshal(b, &goNames); err != nil {
		return err
	}
	a.PrometheusURL = cmp.Or(a.PrometheusURL, goNames.PrometheusURL)
	a.OnFail = cmp.Or(a.OnFail, goNames.OnFail)
	a.OnCritical = cmp.Or(a.OnCritical, goNames.OnCritical)
	a.MinRequests = cmp.Or(a.MinRequests, goNames.MinRequests)
	a.Latency.MinEffect = cmp.Or(a.Latency.MinEffect, goNames.Latency.MinEffect)
	return nil
}
