package fleetbench

import (
	"bufio"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// sample is one line of the Prometheus text format: a metric's name, its
// labels and its value.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseMetrics reads the samples of the names wanted from a /metrics page
// (the API server's own, in the Prometheus text format).
func parseMetrics(page string, wanted ...string) []sample {
	var out []sample
	sc := bufio.NewScanner(strings.NewReader(page))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, _ := strings.Cut(line, "{")
		labels := ""
		if rest != "" {
			labels, rest, _ = strings.Cut(rest, "}")
		} else {
			name, rest, _ = strings.Cut(line, " ")
		}
		name = strings.TrimSpace(name)
		if !contains(wanted, name) {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		out = append(out, sample{name: name, labels: parseLabels(labels), value: v})
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// parseLabels reads a="x",b="y" (values without escaped quotes, as the
// API server's labels are).
func parseLabels(s string) map[string]string {
	m := map[string]string{}
	for s != "" {
		k, rest, ok := strings.Cut(s, `="`)
		if !ok {
			break
		}
		v, rest, _ := strings.Cut(rest, `"`)
		m[strings.TrimSpace(k)] = v
		s = strings.TrimPrefix(rest, ",")
	}
	return m
}

// requestCounts is apiserver_request_total summed per "VERB resource".
func requestCounts(page string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range parseMetrics(page, "apiserver_request_total") {
		res := s.labels["resource"]
		if sub := s.labels["subresource"]; sub != "" {
			res += "/" + sub
		}
		out[s.labels["verb"]+" "+res] += s.value
	}
	return out
}

// watchEvents is the GrayRelease watch events sent and their bytes
// (apiserver_watch_events_total, apiserver_watch_events_sizes_sum).
func watchEvents(page string) (events, bytes float64) {
	for _, s := range parseMetrics(page, "apiserver_watch_events_total", "apiserver_watch_events_sizes_sum") {
		if s.labels["group"] != "graymesh.io" {
			continue
		}
		if s.name == "apiserver_watch_events_total" {
			events += s.value
		} else {
			bytes += s.value
		}
	}
	return events, bytes
}

// rate is one row of the requests table.
type rate struct {
	Request string
	PerSec  float64
}

// rates are the per-second rates of the counters between two scrapes,
// largest first, the ones below min left out.
func rates(before, after map[string]float64, seconds, minRate float64) []rate {
	var out []rate
	for k, v := range after {
		if r := (v - before[k]) / seconds; r >= minRate {
			out = append(out, rate{k, r})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].PerSec != out[j].PerSec {
			return out[i].PerSec > out[j].PerSec
		}
		return out[i].Request < out[j].Request
	})
	return out
}

func total(rs []rate) float64 {
	t := 0.0
	for _, r := range rs {
		t += r.PerSec
	}
	return t
}

func (r rate) String() string { return fmt.Sprintf("%s %.1f/s", r.Request, r.PerSec) }
