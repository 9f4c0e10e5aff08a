package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/graymesh/graymesh/internal/runtime/admin"
)

const releaseUsage = `Usage: graymesh release <action> [NAME] [flags]

Operates releases through a running graymesh's admin API:

  list                      releases with state, percentage in force and schedule position
  freeze NAME               no new subject enters gray; subjects already admitted stay
  unfreeze NAME             admit new subjects again
  kill NAME                 everyone to stable at once; membership tokens ignored
  revive NAME               undo a kill
  percent NAME --value P    set the percentage (lowering it needs --rollback)
  reset NAME                drop the admin overrides; the config file's values apply

--reason says why; graymesh records it with the change (the console's
release timeline shows it).

Changes persist across restarts (graymesh serve --state-dir) and stay on top
of the config file until reset.

With --kube (Kubernetes mode), kill, freeze, unfreeze, revive and percent
patch the GrayRelease object instead, through the kubeconfig as kubectl
does (--kubeconfig, --namespace): every node serves the change, and the API
server refuses an evicting one without --rollback. list shows the objects.`

func adminFlags(fs interface {
	String(name, value, usage string) *string
}) (admin, tokenFile *string) {
	def := "http://127.0.0.1:18080"
	if v := os.Getenv("GRAYMESH_ADMIN"); v != "" {
		def = v
	}
	admin = fs.String("admin", def, "admin API base URL of the graymesh to operate (default from $GRAYMESH_ADMIN when set)")
	tokenFile = fs.String("admin-token-file", "", "file holding the admin bearer token (when the admin API needs one)")
	return admin, tokenFile
}

func release(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("release", releaseUsage, stderr)
	adminURL, tokenFile := adminFlags(fs)
	value := fs.Float64("value", -1, "percentage for percent")
	rollback := fs.Bool("rollback", false, "allow a change that moves gray subjects back to stable")
	reason := fs.String("reason", "", "why: recorded in graymesh's change history (the console's timeline)")
	kf := kubeReleaseFlags(fs)
	if len(args) == 0 {
		fs.Usage()
		return errUsage
	}
	action, rest := args[0], args[1:]
	name := ""
	if action != "list" {
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			fs.Usage()
			return errUsage
		}
		name, rest = rest[0], rest[1:]
	}
	if err := parse(fs, rest); err != nil {
		return err
	}
	if kf.on() {
		return releaseKube(kf, action, name, *value, *rollback, *reason, stdout)
	}
	c, err := admin.NewClient(*adminURL, *tokenFile)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	var out any
	switch action {
	case "list":
		out, err = c.Releases(ctx)
	case "freeze", "unfreeze", "kill", "revive", "reset", "percent":
		if action == "percent" && *value < 0 {
			return fmt.Errorf("percent needs --value")
		}
		// reset drops the overrides, which may lower the percentage: a
		// rollback by definition.
		a := admin.Action{Release: name, Kind: action, Percent: *value, Rollback: *rollback || action == "reset", Reason: *reason}
		out, err = c.Act(ctx, a)
	default:
		fs.Usage()
		return errUsage
	}
	if err != nil {
		return err
	}
	return printJSON(stdout, out)
}

// adminTimeout bounds one call of the admin API from the CLI.
const adminTimeout = 10 * time.Second

// printJSON writes v as the admin API answers it: indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
