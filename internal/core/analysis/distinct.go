package analysis

import (
	"math"
	"math/bits"

	"github.com/cespare/xxhash/v2"
)

// distinctPrecision p gives 2^p registers: 1,024 bytes a set, and a
// standard error of 1.04/√1024 ≈ 3.3% (Flajolet, Fusy, Gandouet, Meunier,
// "HyperLogLog: the analysis of a near-optimal cardinality estimation
// algorithm", 2007).
const distinctPrecision = 10

const distinctRegisters = 1 << distinctPrecision

// DistinctStandardError is the relative standard error of Distinct.Count.
const DistinctStandardError = 0.0325

// Distinct estimates how many distinct callers were seen (a HyperLogLog
// sketch): two nodes' sets merge into the set of their union, whoever saw
// a caller first, in bounded memory. The zero value is empty.
type Distinct struct {
	Registers []byte `json:"registers,omitempty"`
}

// Add counts one caller.
func (d *Distinct) Add(caller string) {
	if d.Registers == nil {
		d.Registers = make([]byte, distinctRegisters)
	}
	h := xxhash.Sum64String(caller)
	i := h >> (64 - distinctPrecision)
	rank := byte(bits.LeadingZeros64(h<<distinctPrecision|1<<(distinctPrecision-1)) + 1)
	d.Registers[i] = max(d.Registers[i], rank)
}

// Merge makes d the set of d's and o's callers.
func (d *Distinct) Merge(o Distinct) {
	if len(o.Registers) != distinctRegisters {
		return
	}
	if d.Registers == nil {
		d.Registers = make([]byte, distinctRegisters)
	}
	for i, r := range o.Registers {
		d.Registers[i] = max(d.Registers[i], r)
	}
}

// Count is the estimated number of distinct callers: the harmonic-mean
// estimate, with linear counting while many registers are still empty.
func (d *Distinct) Count() int {
	if len(d.Registers) != distinctRegisters {
		return 0
	}
	var sum float64
	zeros := 0
	for _, r := range d.Registers {
		sum += math.Ldexp(1, -int(r))
		if r == 0 {
			zeros++
		}
	}
	const m = float64(distinctRegisters)
	alpha := 0.7213 / (1 + 1.079/m)
	est := alpha * m * m / sum
	if est <= 2.5*m && zeros > 0 {
		est = m * math.Log(m/float64(zeros))
	}
	return int(math.Round(est))
}
