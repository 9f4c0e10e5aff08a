package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/graymesh/graymesh/config"
	"github.com/graymesh/graymesh/gray"
)

func diffCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("diff", `Usage: graymesh diff OLD NEW [--sample N] [--at TIME] [--json]

Compares the config in force (OLD) with a candidate (NEW). For every release it
prints the share of subjects moving from stable to gray and back, measured by
deciding N synthetic subjects under both files, and the rule changes that
cause it. Then it lists the evictions — changes that can move a subject who is
gray now back to stable — which graymesh refuses unless NEW declares
change: {rollback: true, reason: ...}. Schedules are read at --at, or at
NEW's effective_at when later. Exit status 0 when both files load (it is a
report), 1 when one does not.`, stderr)
	sample := fs.Int("sample", gray.DefaultSample, "synthetic subjects to decide under both configs")
	atFlag := fs.String("at", "", "when NEW is applied, RFC 3339 (default: now)")
	asJSON := fs.Bool("json", false, "print JSON")
	// Flags may follow the two files: parse, take a file, parse the rest.
	var files []string
	for {
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(files) != 2 || *sample < 1 {
		fs.Usage()
		return errUsage
	}
	at := time.Now()
	if *atFlag != "" {
		t, err := time.Parse(time.RFC3339, *atFlag)
		if err != nil {
			return fmt.Errorf("--at: %q is not an RFC 3339 time like 2026-11-21T10:00:00Z", *atFlag)
		}
		at = t
	}
	old, err := config.Load(files[0])
	if err != nil {
		return err
	}
	next, err := config.Load(files[1])
	if err != nil {
		return err
	}

	rep := diffReport{
		Old:    diffFile{File: files[0], Version: old.Version},
		New:    diffFile{File: files[1], Version: next.Version},
		At:     next.TakesEffect(at).UTC().Format(time.RFC3339),
		Sample: *sample,
	}
	for _, d := range gray.DiffAt(old, next, *sample, at) {
		rep.Releases = append(rep.Releases, diffRelease{
			Release: d.Release, ToGray: d.ToGray, ToStable: d.ToStable, ToOther: d.ToOther,
			Causes: append([]string{}, d.Causes...),
		})
	}
	rep.Evictions = []string{}
	for _, err := range gray.EvictionsAt(old, next, at) {
		rep.Evictions = append(rep.Evictions, err.Error())
	}
	rep.Rollback, rep.Reason = next.Change.Rollback, next.Change.Reason
	rep.Refused = len(rep.Evictions) > 0 && !rep.Rollback

	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printDiff(stdout, rep)
	return nil
}

type diffReport struct {
	Old    diffFile `json:"old"`
	New    diffFile `json:"new"`
	At     string   `json:"at"`
	Sample int      `json:"sample"`
	// Releases hold shares 0–1 of the sampled subjects.
	Releases  []diffRelease `json:"releases"`
	Evictions []string      `json:"evictions"`
	// Rollback and Reason are NEW's change declaration; Refused says
	// whether graymesh would refuse NEW in place of OLD.
	Rollback bool   `json:"rollback"`
	Reason   string `json:"reason,omitempty"`
	Refused  bool   `json:"refused"`
}

type diffFile struct {
	File    string `json:"file"`
	Version string `json:"version"`
}

type diffRelease struct {
	Release  string   `json:"release"`
	ToGray   float64  `json:"to_gray"`
	ToStable float64  `json:"to_stable"`
	ToOther  float64  `json:"to_other_env"`
	Causes   []string `json:"causes"`
}

func printDiff(w io.Writer, rep diffReport) {
	fmt.Fprintf(w, "old:  %s (version %s)\nnew:  %s (version %s)\n", rep.Old.File, rep.Old.Version, rep.New.File, rep.New.Version)
	fmt.Fprintf(w, "at:   %s; %d sampled subjects (identity only: no claims, headers or addresses)\n\n", rep.At, rep.Sample)
	for _, r := range rep.Releases {
		fmt.Fprintf(w, "release %s: stable → gray %.2f%%, gray → stable %.2f%%", r.Release, 100*r.ToGray, 100*r.ToStable)
		if r.ToOther > 0 {
			fmt.Fprintf(w, ", to another environment %.2f%%", 100*r.ToOther)
		}
		fmt.Fprintln(w)
		if len(r.Causes) == 0 {
			fmt.Fprintln(w, "  unchanged")
		}
		for _, c := range r.Causes {
			fmt.Fprintf(w, "  - %s\n", c)
		}
	}
	fmt.Fprintln(w)
	if len(rep.Evictions) == 0 {
		fmt.Fprintln(w, "no subject leaves gray")
		return
	}
	fmt.Fprintf(w, "evictions (%d):\n", len(rep.Evictions))
	for _, e := range rep.Evictions {
		fmt.Fprintf(w, "  %s\n", e)
	}
	if rep.Rollback {
		fmt.Fprintf(w, "declared a rollback (change.rollback: true, reason: %q): it would be accepted\n", rep.Reason)
		return
	}
	fmt.Fprintln(w, "this change would be refused unless NEW declares it a rollback: change: {rollback: true, reason: ...}")
}
