package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/graymesh/graymesh/internal/core/gray"
	"github.com/graymesh/graymesh/internal/runtime/admin"
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
	groups, err := xds.BuildAll(p.Plan)
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
	fmt.Fprintf(stdout, "ok: %s (content %s, %d releases, %d services)\n", path, p.Config.Content, len(p.Config.Releases), len(p.Config.Services))
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

// explainFetchTimeout bounds the wait for fetched key sets offline.
const explainFetchTimeout = 15 * time.Second

func explain(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("explain", `Usage: graymesh explain (--config FILE | --admin URL) (--token T | --subject S | --device D) [flags]

Prints the decision graymesh makes for a caller and why, through the same
entry point Envoy's requests take: membership, frozen and killed releases,
lanes and fallback included. --token verifies a real token exactly as the
ext_proc service does; --subject skips verification and treats S (with any
--claim) as verified. --admin asks a running graymesh (the config in force)
and prints the same output.

With --message, explains a message instead: which consumer of a queue
takes a message carrying --lane (the x-graymesh-lane record header),
produced at --at (default now), as a lanequeue consumer decides it with
the lane state of the graymesh at --admin; --kafka and --group read
whether the lane's environment's consumer group has a member now:

  graymesh explain --message --admin http://127.0.0.1:18080 --lane "$LANE" \
    --kafka 127.0.0.1:9092 --group notifier`, stderr)
	path := fs.String("config", "", "config file (this or --admin)")
	admin := fs.String("admin", "", "ask a running graymesh's admin API instead of reading --config (e.g. http://127.0.0.1:18080)")
	tokenFile := fs.String("admin-token-file", "", "file holding the admin bearer token")
	var ask gray.Ask
	fs.StringVar(&ask.Token, "token", "", "a JWT, verified as the service would")
	fs.StringVar(&ask.Subject, "subject", "", "a verified subject, without a token")
	fs.StringVar(&ask.Device, "device", "", "device id cookie value of an anonymous caller")
	fs.StringVar(&ask.IP, "ip", "", "client IP address as Envoy sees it")
	fs.StringVar(&ask.Membership, "membership", "", "a membership token the caller presents")
	fs.StringVar(&ask.Proof, "proof", "", "a returning caller's proof (the x-graymesh-proof header) the caller presents")
	fs.StringVar(&ask.Service, "service", "", "ask as this service's sidecar (fallback when it lacks the environment)")
	fs.BoolVar(&ask.Inner, "inner", false, "ask as an inner hop, which follows the lane in --lane as its Envoy does")
	fs.StringVar(&ask.Lane, "lane", "", "the x-graymesh-lane header's value: a signed lane (with --inner)")
	fs.StringVar(&ask.RequestID, "request-id", "", "the request's x-request-id (a traffic-weighted release draws on it)")
	asJSON := fs.Bool("json", false, "print JSON")
	at := fs.String("at", "", "decide at this RFC 3339 time instead of now (schedules; with --message: when the message was produced)")
	message := fs.Bool("message", false, "explain a queue message carrying --lane: which consumer takes it (needs --admin)")
	brokers := fs.String("kafka", "", "with --message: Kafka bootstrap servers, comma-separated, to read the consumer group's members")
	group := fs.String("group", "", "with --message: stable's consumer group (an environment's is GROUP.ENV)")
	var claims, headers kvFlag
	fs.Var(&claims, "claim", "claim=value of the verified subject (repeatable; with --subject)")
	fs.Var(&headers, "header", "name=value request header (repeatable)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *message {
		return explainMessage(messageAsk{admin: *admin, lane: ask.Lane, brokers: *brokers, group: *group, at: *at}, *asJSON, stdout)
	}
	if (*path == "") == (*admin == "") || (ask.Token != "" && ask.Subject != "") {
		fs.Usage()
		return errUsage
	}
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			return fmt.Errorf("--at: %w", err)
		}
		ask.At = &t
	}
	addClaimsAndHeaders(&ask, claims, headers)
	ex, source, err := explainAsk(ask, *path, *admin, *tokenFile)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(ex)
	}
	printExplanation(stdout, ex, source)
	return nil
}

// addClaimsAndHeaders puts --claim and --header values into ask.
func addClaimsAndHeaders(ask *gray.Ask, claims, headers kvFlag) {
	for _, kv := range claims {
		k, v, _ := strings.Cut(kv, "=")
		if ask.Claims == nil {
			ask.Claims = map[string][]string{}
		}
		ask.Claims[k] = append(ask.Claims[k], v)
	}
	for _, kv := range headers {
		k, v, _ := strings.Cut(kv, "=")
		if ask.Headers == nil {
			ask.Headers = map[string]string{}
		}
		ask.Headers[strings.ToLower(k)] = v
	}
}

// explainAsk explains ask with the config file at path, or asks the
// running graymesh at admin; source names where the answer came from.
func explainAsk(ask gray.Ask, path, adminURL, tokenFile string) (ex gray.Explanation, source string, err error) {
	if adminURL != "" {
		c, err := admin.NewClient(adminURL, tokenFile)
		if err != nil {
			return ex, "", err
		}
		ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
		defer cancel()
		if ex, err = c.Explain(ctx, ask); err != nil {
			return ex, "", err
		}
		return ex, adminURL + " (config in force)", nil
	}
	p, err := gray.Load(path)
	if err != nil {
		return ex, "", err
	}
	defer p.Verifier.Close()
	if ask.Token != "" {
		// Offline, the issuers' key sets are fetched now; a token of an
		// issuer whose set does not arrive is explained as anonymous
		// (keys-unavailable), as graymesh would treat it.
		ctx, cancel := context.WithTimeout(context.Background(), explainFetchTimeout)
		err := p.Verifier.WaitFetched(ctx)
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "explain: %v\n", err)
		}
	}
	req, err := p.Request(ask, time.Now())
	if err != nil {
		return ex, "", err
	}
	return p.Explain(req), fmt.Sprintf("%s, content %s", path, p.Config.Content), nil
}

// printExplanation writes an explanation for a person, the same for a
// local config and a running graymesh.
func printExplanation(w io.Writer, ex gray.Explanation, source string) {
	bucket := "-"
	if ex.Bucket != gray.NoBucket {
		bucket = fmt.Sprintf("%d of %d (%.2f%%)", ex.Bucket, gray.Buckets, float64(ex.Bucket)/100)
	}
	hop := ex.Hop
	if ex.Service != "" {
		hop += " (" + ex.Service + " sidecar)"
	}
	version := "version " + ex.Version
	if ex.Version == "" {
		version = "not in force: no version yet"
	}
	fmt.Fprintf(w, "served by:   %s\nrelease:     %s\nrule:        %s\nreason:      %s\nbucket:      %s\nidentity:    %s\nsubject:     %s\nhop:         %s\nconfig:      %s (%s)\n",
		ex.Served, dash(ex.Release), dash(ex.Rule), ex.Reason, bucket, ex.Identity, dash(ex.Subject), hop, source, version)
	if ex.KeySource != "" {
		fmt.Fprintf(w, "verified by: %s\n", verifiedBy(ex))
	}
	if ex.LaneProblem != "" {
		fmt.Fprintf(w, "lane:        refused (%s)\n", ex.LaneProblem)
	}
	if ex.Membership {
		fmt.Fprintln(w, "membership:  a membership token is handed to the caller")
	}
	if ex.Proof {
		fmt.Fprintln(w, "proof:       a proof is handed to the caller; the edge's Envoy routes its later requests on it")
	}
}

// verifiedBy names the issuer and key that verified the token.
func verifiedBy(ex gray.Explanation) string {
	var b strings.Builder
	if ex.Issuer != "" {
		fmt.Fprintf(&b, "issuer %s, ", ex.Issuer)
	}
	if ex.KeyID != "" {
		fmt.Fprintf(&b, "key %q from %s", ex.KeyID, ex.KeySource)
	} else {
		fmt.Fprintf(&b, "key without kid from %s", ex.KeySource)
	}
	return b.String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
