package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/graymesh/graymesh/config"
	"github.com/graymesh/graymesh/gray"
	"github.com/graymesh/graymesh/xds"
)

func validate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("validate", `Usage: graymesh validate FILE

Decodes FILE strictly, validates every field, loads the keys it names and
builds the Envoy resources it implies. Every problem is listed, each naming
the release, rule or field. Exit status 1 when the file would be refused.`, stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	path := fs.Arg(0)
	p, err := gray.Load(path)
	if err != nil {
		return err
	}
	groups, err := xds.BuildAll(p.Config)
	if err != nil {
		return fmt.Errorf("%s: envoy resources: %w", path, err)
	}
	for group, res := range groups {
		if err := res.Validate(); err != nil {
			return fmt.Errorf("%s: envoy resources for %s: %w", path, group, err)
		}
	}
	for _, w := range p.Config.Warnings() {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "ok: %s (version %s, %d releases, %d services)\n", path, p.Config.Version, len(p.Config.Releases), len(p.Config.Services))
	return nil
}

// kvFlag collects repeated key=value flags.
type kvFlag []string

func (k *kvFlag) String() string { return strings.Join(*k, ",") }
func (k *kvFlag) Set(v string) error {
	if !strings.Contains(v, "=") {
		return fmt.Errorf("%q is not key=value", v)
	}
	*k = append(*k, v)
	return nil
}

func explain(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("explain", `Usage: graymesh explain --config FILE (--token T | --subject S | --device D) [flags]

Prints the decision graymesh makes for a caller and why. --token verifies a
real token exactly as the ext_proc service does; --subject skips verification
and treats S (with any --claim) as verified.`, stderr)
	path := fs.String("config", "", "config file (this or --admin)")
	admin := fs.String("admin", "", "ask a running graymesh's admin API instead of reading --config (e.g. http://127.0.0.1:18080)")
	tokenFile := fs.String("admin-token-file", "", "file holding the admin bearer token")
	tok := fs.String("token", "", "a JWT, verified as the service would")
	subject := fs.String("subject", "", "a verified subject, without a token")
	device := fs.String("device", "", "device id cookie value of an anonymous caller")
	ip := fs.String("ip", "", "client IP address as Envoy sees it")
	asJSON := fs.Bool("json", false, "print JSON")
	at := fs.String("at", "", "decide at this RFC 3339 time instead of now (schedules)")
	var claims, headers kvFlag
	fs.Var(&claims, "claim", "claim=value of the verified subject (repeatable; with --subject)")
	fs.Var(&headers, "header", "name=value request header (repeatable)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if (*path == "") == (*admin == "") || (*tok != "" && *subject != "") {
		fs.Usage()
		return errUsage
	}
	if *admin != "" {
		c, err := newAdminClient(*admin, *tokenFile)
		if err != nil {
			return err
		}
		body := map[string]any{"subject": *subject, "token": *tok, "device": *device, "ip": *ip}
		claimMap, headerMap := map[string][]string{}, map[string]string{}
		for _, kv := range claims {
			k, v, _ := strings.Cut(kv, "=")
			claimMap[k] = append(claimMap[k], v)
		}
		for _, kv := range headers {
			k, v, _ := strings.Cut(kv, "=")
			headerMap[strings.ToLower(k)] = v
		}
		body["claims"], body["headers"] = claimMap, headerMap
		out, err := c.do(http.MethodPost, "/v1/explain", body)
		if err != nil {
			return err
		}
		_, err = stdout.Write(out)
		return err
	}
	p, err := gray.Load(*path)
	if err != nil {
		return err
	}
	req := gray.Request{Subject: *subject, DeviceID: *device, Now: time.Now()}
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			return fmt.Errorf("--at: %w", err)
		}
		req.Now = t
	}
	if *ip != "" {
		a, err := netip.ParseAddr(*ip)
		if err != nil {
			return fmt.Errorf("--ip: %w", err)
		}
		req.IP = a
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, "=")
		if req.Headers == nil {
			req.Headers = map[string]string{}
		}
		req.Headers[strings.ToLower(k)] = v
	}
	identitySource := "none"
	problem := ""
	switch {
	case *tok != "":
		c := p.Verifier.FromRequest("Bearer "+*tok, "")
		req.Subject, req.Claims, req.InvalidToken, problem = c.Subject, c.Claims, c.Problem != "", c.Problem
		identitySource = "token"
		if problem != "" {
			identitySource = "token rejected: " + problem
		}
	case *subject != "":
		identitySource = "subject (not verified: --subject)"
		for _, kv := range claims {
			k, v, _ := strings.Cut(kv, "=")
			if req.Claims == nil {
				req.Claims = map[string][]string{}
			}
			req.Claims[k] = append(req.Claims[k], v)
		}
	case *device != "":
		identitySource = "device cookie (anonymous)"
	}
	d := p.Engine.Decide(&req)
	ex := explanation{
		Env: d.Env, Release: d.Release, Rule: d.Rule, Reason: string(d.Reason), Bucket: d.Bucket,
		Version: d.Version, Subject: req.Subject, Identity: identitySource, TokenProblem: problem,
		Served: servedBy(p.Config, d),
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(ex)
	}
	bucket := "-"
	if d.Bucket != gray.NoBucket {
		bucket = fmt.Sprintf("%d of %d (%.2f%%)", d.Bucket, gray.Buckets, float64(d.Bucket)/100)
	}
	fmt.Fprintf(stdout, "served by:   %s\nrelease:     %s\nrule:        %s\nreason:      %s\nbucket:      %s\nidentity:    %s\nsubject:     %s\nconfig:      %s (version %s)\n",
		ex.Served, dash(d.Release), dash(d.Rule), d.Reason, bucket, identitySource, dash(req.Subject), *path, d.Version)
	return nil
}

type explanation struct {
	// Env is what ext_proc sets in x-gray-env ("" = nothing decided).
	Env string `json:"env"`
	// Served is where the request goes: Env, or the route default.
	Served       string `json:"served"`
	Release      string `json:"release"`
	Rule         string `json:"rule"`
	Reason       string `json:"reason"`
	Bucket       int    `json:"bucket"`
	Version      string `json:"version"`
	Subject      string `json:"subject"`
	Identity     string `json:"identity"`
	TokenProblem string `json:"token_problem,omitempty"`
}

// servedBy names where a decision sends the request once Envoy routes it.
func servedBy(cfg *config.Config, d gray.Decision) string {
	if d.Env != "" {
		return d.Env
	}
	for _, r := range cfg.Releases {
		if r.TrafficPercent > 0 {
			return fmt.Sprintf("route default: %s, or %s for %.2f%% of such requests (traffic-weighted release %s)", config.Stable, r.Env, r.TrafficPercent, r.Name)
		}
	}
	return config.Stable
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
