package tracecheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Jaeger's query API (GET /api/traces) has no paging: a search returns at
// most `limit` traces (its search depth) that have a span of the service
// starting in [start, end], in an order the storage chooses (the memory
// store: the traces it received last; others: by their own index). It
// reports no total. What every storage does keep is this: a search that
// returns fewer traces than its limit returned every trace that matched.
// So the Reader splits a window whose search came back full in two and
// searches each half, until every search comes back short: then it has
// read every trace in the window, whatever order the storage uses.

// DefaultPageSize is the search depth of one query: the most traces one
// response holds. Jaeger's memory store refuses a limit above its
// max_traces.
const DefaultPageSize = 1000

// DefaultMaxRequests bounds the searches of one Read.
const DefaultMaxRequests = 200

// maxBody bounds one response body.
const maxBody = 512 << 20

// Reader reads every trace of a service in a time window from Jaeger's
// query HTTP API.
type Reader struct {
	// BaseURL is the query service, e.g. http://127.0.0.1:16686.
	BaseURL string
	Client  *http.Client
	// PageSize is the limit of one search (DefaultPageSize when 0).
	PageSize int
	// MaxRequests bounds the searches of one Read (DefaultMaxRequests
	// when 0). Windows left when it runs out are reported unread.
	MaxRequests int
}

// Window is a span of start times, both ends included.
type Window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// ReadStats says how a Read went.
type ReadStats struct {
	// Requests is the number of searches sent.
	Requests int `json:"requests"`
	// PageSize is the limit of each search.
	PageSize int `json:"page_size"`
	// Complete is true when every search came back short of PageSize:
	// every trace in the window was read.
	Complete bool `json:"complete"`
	// Unread are the windows that may hold traces not read: left
	// unsearched when the request budget ran out, or searched, found
	// full and too narrow to split (a microsecond). Jaeger reports no
	// totals, so how many traces they hold beyond those read is unknown.
	Unread []Window `json:"unread,omitempty"`
}

// Read returns every trace that has a span of service starting in w,
// each once, and how the read went. Traces in the unread windows, if any,
// are missing from the result.
func (r *Reader) Read(ctx context.Context, service string, w Window) ([]Trace, *ReadStats, error) {
	if w.End.Before(w.Start) {
		return nil, nil, fmt.Errorf("window ends (%s) before it starts (%s)", w.End, w.Start)
	}
	st := &ReadStats{PageSize: r.PageSize, Complete: true}
	if st.PageSize <= 0 {
		st.PageSize = DefaultPageSize
	}
	budget := r.MaxRequests
	if budget <= 0 {
		budget = DefaultMaxRequests
	}
	var (
		traces []Trace
		seen   = map[string]int{}
		todo   = []Window{w}
	)
	for len(todo) > 0 {
		cur := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if st.Requests == budget {
			st.Unread = append(st.Unread, cur)
			continue
		}
		page, err := r.search(ctx, service, cur, st.PageSize)
		st.Requests++
		if err != nil {
			return nil, nil, err
		}
		for _, t := range page {
			if i, ok := seen[t.TraceID]; ok {
				// Read again from another window: keep the fuller copy
				// (spans of a trace may still have been arriving).
				if len(t.Spans) > len(traces[i].Spans) {
					traces[i] = t
				}
				continue
			}
			seen[t.TraceID] = len(traces)
			traces = append(traces, t)
		}
		if len(page) < st.PageSize {
			continue
		}
		// Full: the window may hold more. Halves overlap at their middle
		// microsecond so that no start time falls between them.
		span := cur.End.Sub(cur.Start).Truncate(time.Microsecond)
		if span < 2*time.Microsecond {
			st.Unread = append(st.Unread, cur)
			continue
		}
		mid := cur.Start.Add((span / 2).Truncate(time.Microsecond))
		// Newest half last, so it is searched first.
		todo = append(todo, Window{cur.Start, mid}, Window{mid, cur.End})
	}
	st.Complete = len(st.Unread) == 0
	return traces, st, nil
}

// search sends one GET /api/traces.
func (r *Reader) search(ctx context.Context, service string, w Window, limit int) ([]Trace, error) {
	q := url.Values{}
	q.Set("service", service)
	q.Set("start", strconv.FormatInt(w.Start.UnixMicro(), 10))
	q.Set("end", strconv.FormatInt(w.End.UnixMicro(), 10))
	q.Set("limit", strconv.Itoa(limit))
	u := strings.TrimRight(r.BaseURL, "/") + "/api/traces?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	client := r.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jaeger: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("jaeger: %w", err)
	}
	if len(body) > maxBody {
		return nil, errors.New("jaeger: response larger than 512 MiB: lower the page size")
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jaeger %s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	return Parse(body)
}
