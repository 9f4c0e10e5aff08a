package gate

import (
	"fmt"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// Report is a whole diff of two configs, as graymesh diff prints it and
// the admin API's POST /v1/diff returns it.
type Report struct {
	Old ReportFile `json:"old"`
	New ReportFile `json:"new"`
	// At is when New takes effect (RFC 3339): the time asked for, or New's
	// effective_at when later.
	At     string `json:"at"`
	Sample int    `json:"sample"`
	// Releases hold shares 0–1 of the sampled subjects.
	Releases  []ReleaseDiff `json:"releases"`
	Evictions []string      `json:"evictions"`
	// Rollback and Reason are New's change declaration; Refused says
	// whether graymesh would refuse New in place of Old.
	Rollback bool   `json:"rollback"`
	Reason   string `json:"reason,omitempty"`
	Refused  bool   `json:"refused"`
}

// ReportFile names one side of a Report.
type ReportFile struct {
	File string `json:"file"`
	// Version is set for the config in force only; a file has a content
	// hash and no version.
	Version string `json:"version,omitempty"`
	Content string `json:"content"`
}

// String names the side for a person.
func (f ReportFile) String() string {
	if f.Version != "" {
		return fmt.Sprintf("%s (version %s, content %s)", f.File, f.Version, f.Content)
	}
	return fmt.Sprintf("%s (content %s)", f.File, f.Content)
}

// NewReport diffs new against old applied at at: DiffAt with sample
// subjects, EvictionsAt, and new's change declaration. Both configs must be
// valid.
func NewReport(old, new *config.Config, sample int, at time.Time) Report {
	if sample < 1 {
		sample = DefaultSample
	}
	rep := Report{
		Old:       ReportFile{File: old.Source, Version: old.Version, Content: old.Content},
		New:       ReportFile{File: new.Source, Version: new.Version, Content: new.Content},
		At:        new.TakesEffect(at).UTC().Format(time.RFC3339),
		Sample:    sample,
		Releases:  DiffAt(old, new, sample, at),
		Evictions: []string{},
		Rollback:  new.Change.Rollback,
		Reason:    new.Change.Reason,
	}
	for i := range rep.Releases {
		if rep.Releases[i].Causes == nil {
			rep.Releases[i].Causes = []string{}
		}
	}
	for _, err := range EvictionsAt(old, new, at) {
		rep.Evictions = append(rep.Evictions, err.Error())
	}
	rep.Refused = len(rep.Evictions) > 0 && !rep.Rollback
	return rep
}
