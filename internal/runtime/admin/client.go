package admin

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

	"github.com/graymesh/graymesh/internal/core/gate"
	"github.com/graymesh/graymesh/internal/core/gray"
)

// Client is the API over HTTP: what the CLI uses.
type Client struct {
	base, token string
	http        *http.Client
}

var _ API = (*Client)(nil)

// NewClient calls the admin API at base (e.g. http://127.0.0.1:18080),
// with the bearer token in tokenFile when it is not "".
func NewClient(base, tokenFile string) (*Client, error) {
	c := &Client{base: strings.TrimRight(base, "/"), http: &http.Client{Timeout: 30 * time.Second}}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, err
		}
		c.token = strings.TrimSpace(string(b))
	}
	return c, nil
}

// Base is the API's base URL.
func (c *Client) Base() string { return c.base }

// do calls method path with body (JSON unless it is []byte) and decodes
// the answer into out (unless nil).
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &Error{Code: resp.StatusCode, Message: fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: answer: %w", method, c.base+path, err)
	}
	return nil
}

// Releases implements API.
func (c *Client) Releases(ctx context.Context) ([]ReleaseStatus, error) {
	var out []ReleaseStatus
	return out, c.do(ctx, http.MethodGet, "/v1/releases", nil, &out)
}

func actionPath(a Action) string {
	return "/v1/releases/" + url.PathEscape(a.Release) + "/" + url.PathEscape(a.Kind)
}

// Act implements API.
func (c *Client) Act(ctx context.Context, a Action) (ReleaseStatus, error) {
	var out ReleaseStatus
	return out, c.do(ctx, http.MethodPost, actionPath(a)+"?"+actionQuery(a).Encode(), nil, &out)
}

// Preview implements API.
func (c *Client) Preview(ctx context.Context, a Action, sample int) (gate.Report, error) {
	q := actionQuery(a)
	if sample > 0 {
		q.Set("sample", strconv.Itoa(sample))
	}
	var out gate.Report
	return out, c.do(ctx, http.MethodPost, actionPath(a)+"/preview?"+q.Encode(), nil, &out)
}

// Explain implements API.
func (c *Client) Explain(ctx context.Context, ask gray.Ask) (gray.Explanation, error) {
	var out gray.Explanation
	return out, c.do(ctx, http.MethodPost, "/v1/explain", ask, &out)
}

// StressMarker implements API.
func (c *Client) StressMarker(ctx context.Context, release string, ttl time.Duration) (StressMarker, error) {
	var out StressMarker
	q := url.Values{"ttl": {ttl.String()}}
	return out, c.do(ctx, http.MethodPost, "/v1/releases/"+url.PathEscape(release)+"/stress-marker?"+q.Encode(), nil, &out)
}

// Diff implements API.
func (c *Client) Diff(ctx context.Context, d DiffRequest) (gate.Report, error) {
	q := url.Values{"source": {d.Source}}
	if d.Sample > 0 {
		q.Set("sample", strconv.Itoa(d.Sample))
	}
	if !d.At.IsZero() {
		q.Set("at", d.At.Format(time.RFC3339))
	}
	var out gate.Report
	return out, c.do(ctx, http.MethodPost, "/v1/diff?"+q.Encode(), d.Data, &out)
}

// Analysis implements API.
func (c *Client) Analysis(ctx context.Context, release string, windows int) (*AnalysisStatus, error) {
	path := "/v1/releases/" + url.PathEscape(release) + "/analysis"
	if windows > 0 {
		path += "?windows=" + strconv.Itoa(windows)
	}
	out := &AnalysisStatus{}
	return out, c.do(ctx, http.MethodGet, path, nil, out)
}

// Fleet implements API.
func (c *Client) Fleet(ctx context.Context, release string) (*FleetRelease, error) {
	out := &FleetRelease{}
	return out, c.do(ctx, http.MethodGet, "/v1/releases/"+url.PathEscape(release)+"/fleet", nil, out)
}

// History implements API.
func (c *Client) History(ctx context.Context, release string) ([]Change, error) {
	var out []Change
	return out, c.do(ctx, http.MethodGet, "/v1/history?"+url.Values{"release": {release}}.Encode(), nil, &out)
}

// Status implements API.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	out := &Status{}
	return out, c.do(ctx, http.MethodGet, "/status", nil, out)
}
