package loadbench

import (
	"bufio"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// Micro is the output of `go test -bench -benchmem`, parsed.
type Micro struct {
	// Command is how the output was produced.
	Command string
	// CPU is the "cpu:" line go test prints.
	CPU  string
	Rows []BenchRow
}

// BenchRow is one benchmark result line.
type BenchRow struct {
	Pkg, Name string
	NsOp      float64
	BOp       float64
	AllocsOp  float64
	HasMem    bool
}

var procsSuffix = regexp.MustCompile(`-\d+$`)

// ParseMicro reads `go test -bench=. -benchmem` output.
func ParseMicro(r io.Reader, command string) (*Micro, error) {
	m := &Micro{Command: command}
	sc := bufio.NewScanner(r)
	pkg := ""
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(v)
			continue
		}
		if v, ok := strings.CutPrefix(line, "cpu: "); ok {
			m.CPU = strings.TrimSpace(v)
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		row := BenchRow{Pkg: pkg, Name: procsSuffix.ReplaceAllString(f[0], "")}
		ok := false
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				row.NsOp, ok = v, true
			case "B/op":
				row.BOp, row.HasMem = v, true
			case "allocs/op":
				row.AllocsOp = v
			}
		}
		if ok {
			m.Rows = append(m.Rows, row)
		}
	}
	return m, sc.Err()
}

// Find returns the row named name (without the -GOMAXPROCS suffix).
func (m *Micro) Find(name string) (BenchRow, bool) {
	if m == nil {
		return BenchRow{}, false
	}
	for _, r := range m.Rows {
		if r.Name == name {
			return r, true
		}
	}
	return BenchRow{}, false
}
