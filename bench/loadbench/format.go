package loadbench

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// How figures are printed in the report and the chart.

func fmtUs(d time.Duration) string {
	v := float64(d) / float64(time.Microsecond)
	switch {
	case v >= 1e6 || v <= -1e6:
		return fmt.Sprintf("%.2f s", v/1e6)
	case v >= 10000 || v <= -10000:
		return fmt.Sprintf("%.1f ms", v/1000)
	case v >= 1000 || v <= -1000:
		return fmt.Sprintf("%.2f ms", v/1000)
	}
	return fmt.Sprintf("%.0f µs", v)
}

func fmtNs(ns float64) string {
	if ns >= 1000 {
		return fmt.Sprintf("%.2f µs", ns/1000)
	}
	return fmt.Sprintf("%.0f ns", ns)
}

func fmtFloat(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func fmtRate(v float64) string {
	n := int64(v + 0.5)
	s := fmt.Sprint(n)
	if n >= 1000 {
		s = fmt.Sprintf("%d,%03d", n/1000, n%1000)
	}
	return s
}

func fmtMaxRate(v []float64) string {
	if len(v) == 0 {
		return "—"
	}
	lo, hi := slices.Min(v), slices.Max(v)
	return fmt.Sprintf("%s [%s–%s]", fmtRate(median(v)), fmtRate(lo), fmtRate(hi))
}

func fmtCPU(cpu map[string]float64, role string) string {
	v, ok := cpu[role]
	if !ok {
		return "—"
	}
	return fmt.Sprintf("%.1f", v)
}

func ratio(a, b float64) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func joinRates(r []int) string {
	if len(r) == 0 {
		return "none"
	}
	s := make([]string, len(r))
	for i, v := range r {
		s[i] = fmtRate(float64(v))
	}
	return strings.Join(s, ", ")
}
