package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/gate"
	"github.com/graymesh/graymesh/internal/runtime/admin"
)

func diffCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("diff", `Usage: graymesh diff OLD NEW [--sample N] [--at TIME] [--json]
       graymesh diff --admin URL [--admin-token-file FILE] NEW [--sample N] [--at TIME] [--json]

Compares the config in force (OLD) with a candidate (NEW). For every release it
prints the share of subjects moving from stable to gray and back, measured by
deciding N synthetic subjects under both files, and the rule changes that
cause it. Then it lists the evictions — changes that can move a subject who is
gray now back to stable — which graymesh refuses unless NEW declares
change: {rollback: true, reason: ...}. Schedules are read at --at, or at
NEW's effective_at when later.

With --admin, OLD is the config in force of a running graymesh, as its next
reload would see it: secrets unredacted and admin overrides applied on top
of NEW. NEW's relative key paths resolve against NEW's directory on the
machine running graymesh (run it where the files are). Exit status 0 when
both configs load (it is a report), 1 when one does not.`, stderr)
	sample := fs.Int("sample", gate.DefaultSample, "synthetic subjects to decide under both configs")
	atFlag := fs.String("at", "", "when NEW is applied, RFC 3339 (default: now)")
	asJSON := fs.Bool("json", false, "print JSON")
	admin := fs.String("admin", "", "compare NEW with the config in force of the graymesh whose admin API is at this URL (e.g. http://127.0.0.1:18080)")
	tokenFile := fs.String("admin-token-file", "", "file holding the admin bearer token (with --admin)")
	// Flags may follow the files: parse, take a file, parse the rest.
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
	want := 2
	if *admin != "" {
		want = 1
	}
	if len(files) != want || *sample < 1 {
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
	var rep gate.Report
	var err error
	if *admin != "" {
		rep, err = diffWithAdmin(*admin, *tokenFile, files[0], *sample, *atFlag)
	} else {
		rep, err = diffFiles(files[0], files[1], *sample, at)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printDiff(stdout, rep)
	return nil
}

func diffFiles(oldPath, newPath string, sample int, at time.Time) (gate.Report, error) {
	old, err := config.Load(oldPath)
	if err != nil {
		return gate.Report{}, err
	}
	next, err := config.Load(newPath)
	if err != nil {
		return gate.Report{}, err
	}
	return gate.NewReport(old, next, sample, at), nil
}

// diffWithAdmin has the graymesh at admin diff the file at path against its
// config in force (POST /v1/diff), so that config's secrets, which
// GET /v1/config redacts, never leave it. The file is checked here first,
// so its problems name it; the server reads its key files by absolute path.
func diffWithAdmin(adminURL, tokenFile, path string, sample int, at string) (gate.Report, error) {
	if _, err := config.Load(path); err != nil {
		return gate.Report{}, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return gate.Report{}, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return gate.Report{}, err
	}
	c, err := admin.NewClient(adminURL, tokenFile)
	if err != nil {
		return gate.Report{}, err
	}
	req := admin.DiffRequest{Data: data, Source: abs, Sample: sample}
	if at != "" {
		if req.At, err = time.Parse(time.RFC3339, at); err != nil {
			return gate.Report{}, fmt.Errorf("--at: %q is not an RFC 3339 time", at)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	rep, err := c.Diff(ctx, req)
	if err != nil {
		return gate.Report{}, err
	}
	rep.New.File = path
	return rep, nil
}

func printDiff(w io.Writer, rep gate.Report) {
	fmt.Fprintf(w, "old:  %s\nnew:  %s\n", rep.Old, rep.New)
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
