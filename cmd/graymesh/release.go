package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
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

// adminClient calls the admin API.
type adminClient struct {
	base, token string
	http        *http.Client
}

// rawBody is a request body sent as it is, not encoded as JSON.
type rawBody []byte

func (c adminClient) do(method, path string, body any) ([]byte, error) {
	var rd io.Reader
	if raw, ok := body.(rawBody); ok {
		rd = bytes.NewReader(raw)
	} else if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.base, "/")+path, rd)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(out)))
	}
	return out, nil
}

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

func newAdminClient(admin, tokenFile string) (adminClient, error) {
	c := adminClient{base: admin, http: &http.Client{}}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return c, err
		}
		c.token = strings.TrimSpace(string(b))
	}
	return c, nil
}

func release(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("release", releaseUsage, stderr)
	admin, tokenFile := adminFlags(fs)
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
	c, err := newAdminClient(*admin, *tokenFile)
	if err != nil {
		return err
	}
	var out []byte
	q := url.Values{}
	if *rollback {
		q.Set("rollback", "true")
	}
	if *reason != "" {
		q.Set("reason", *reason)
	}
	switch action {
	case "list":
		out, err = c.do(http.MethodGet, "/v1/releases", nil)
	case "freeze", "unfreeze", "kill", "revive", "reset", "percent":
		if action == "percent" {
			if *value < 0 {
				return fmt.Errorf("percent needs --value")
			}
			q.Set("value", strconv.FormatFloat(*value, 'f', -1, 64))
		}
		path := "/v1/releases/" + url.PathEscape(name) + "/" + action
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		out, err = c.do(http.MethodPost, path, nil)
	default:
		fs.Usage()
		return errUsage
	}
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}
