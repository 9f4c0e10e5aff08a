package analysis

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/gonum/stat/distuv"
)

// The simulated fleet (docs/analysis.md, "Simulation"): a service on N
// nodes at a fleet-wide request rate, 30 s windows, 60 windows a rollout,
// 2% of requests failing, successful durations log-normal (median 80 ms,
// σ of the log 0.35, so p99 ≈ 180 ms), gray a share of the requests.
const (
	simWindowSeconds = 30
	simWindows       = 60
	simBaseErrorRate = 0.02
	simMedianMS      = 80
	simSigma         = 0.35
	simHotRoute      = "/hot"
	simOtherRoute    = "/rest"
)

// simScenario is one row of the simulation table.
type simScenario struct {
	name      string
	nodes     int
	uneven    bool // node i carries a share ∝ i+1 of the traffic
	rate      float64
	grayShare float64
	// The regression, all zero for A/A: gray's error rate this many points
	// above stable's; a route carrying routeShare of the traffic failing
	// routeGrayErr of its gray requests; gray's durations × medianFactor;
	// tailShare of gray's successful requests tailAddMS slower.
	errPoints               float64
	routeShare, routeGrayEr float64
	medianFactor            float64
	tailShare, tailAddMS    float64
}

// simSide is how one side draws its requests.
type simSide struct {
	errRate, routeErrRate float64
	buckets               []int // histogram buckets with any probability
	probs                 []float64
}

func lognormalCDF(ms, median, sigma float64) float64 {
	if ms <= 0 {
		return 0
	}
	return distuv.UnitNormal.CDF(math.Log(ms/median) / sigma)
}

// newSimSide is a side whose durations are log-normal around median, a
// share tail of them shifted by addMS.
func newSimSide(errRate, routeErrRate, median, tail, addMS float64) simSide {
	s := simSide{errRate: errRate, routeErrRate: routeErrRate}
	cdf := func(ms float64) float64 {
		return (1-tail)*lognormalCDF(ms, median, simSigma) + tail*lognormalCDF(ms-addMS, median, simSigma)
	}
	lo := 0.0
	for i := 0; i < histogramBuckets; i++ {
		hi := HistogramMinMS * math.Pow(histogramGamma, float64(i))
		if i == histogramBuckets-1 {
			hi = math.Inf(1)
		}
		if p := cdf(hi) - cdf(lo); p > 1e-12 {
			s.buckets = append(s.buckets, i)
			s.probs = append(s.probs, p)
		}
		lo = hi
	}
	return s
}

// simRand draws binomials and multinomials from one seeded source.
type simRand struct {
	src *rand.PCG
	*rand.Rand
}

func newSimRand(seed uint64) *simRand {
	src := rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)
	return &simRand{src: src, Rand: rand.New(src)}
}

func (r *simRand) binomial(n int64, p float64) int64 {
	switch {
	case n <= 0 || p <= 0:
		return 0
	case p >= 1:
		return n
	}
	return int64(distuv.Binomial{N: float64(n), P: p, Src: r.src}.Rand())
}

// draw adds n requests of side s to ev (side evidence) and to the route
// groups' counts: errors per route, durations of the successful ones.
func (r *simRand) draw(s *simSide, n, hotRoute int64, ev *SideEvidence, hot, rest *Counts) {
	hotErrs := r.binomial(hotRoute, s.routeErrRate)
	restErrs := r.binomial(n-hotRoute, s.errRate)
	ev.Requests += n
	ev.Errors += hotErrs + restErrs
	hot.Requests += hotRoute
	hot.Errors += hotErrs
	rest.Requests += n - hotRoute
	rest.Errors += restErrs
	left, mass := n-hotErrs-restErrs, 1.0
	for i, b := range s.buckets {
		if left == 0 {
			break
		}
		k := r.binomial(left, math.Min(1, s.probs[i]/mass))
		ev.Latency.AddN(b, uint64(k))
		left -= k
		mass -= s.probs[i]
	}
}

// simNode is one node's window: its evidence for the per-node judge.
type simNode struct {
	gray, stable                     SideEvidence
	grayHot, grayRest, stHot, stRest Counts
}

// simWorld is a scenario's two sides and node weights.
type simWorld struct {
	sc            simScenario
	gray, stable  simSide
	weights       []float64
	settings      Settings
	perNodeCanRun bool
}

func newSimWorld(sc simScenario, s Settings) *simWorld {
	w := &simWorld{sc: sc, settings: s}
	factor := sc.medianFactor
	if factor == 0 {
		factor = 1
	}
	grayErr := simBaseErrorRate + sc.errPoints/100
	routeGrayErr := grayErr
	if sc.routeShare > 0 {
		routeGrayErr = sc.routeGrayEr
	}
	w.stable = newSimSide(simBaseErrorRate, simBaseErrorRate, simMedianMS, 0, 0)
	w.gray = newSimSide(grayErr, routeGrayErr, simMedianMS*factor, sc.tailShare, sc.tailAddMS)
	total := 0.0
	for i := 0; i < sc.nodes; i++ {
		wt := 1.0
		if sc.uneven {
			wt = float64(i + 1)
		}
		w.weights = append(w.weights, wt)
		total += wt
	}
	for i := range w.weights {
		w.weights[i] /= total
	}
	// A node can only be judged once both its sides reach the gate; when
	// even the busiest node's expected gray requests are far below it, the
	// chance that any node ever does is below 1e-9 (a Chernoff bound), and
	// the per-node method is inconclusive without drawing nodes one by one.
	requests := sc.rate * simWindowSeconds
	busiest := slices.Max(w.weights) * requests * math.Min(sc.grayShare, 1-sc.grayShare)
	w.perNodeCanRun = float64(sc.nodes)*simWindows*chernoffAbove(busiest, float64(s.MinRequests)) > 1e-9
	return w
}

// chernoffAbove bounds the chance that a Poisson-like count of the given
// mean reaches k: exp(−mean)·(e·mean/k)^k for k > mean.
func chernoffAbove(mean, k float64) float64 {
	if k <= mean {
		return 1
	}
	return math.Exp(-mean + k*(1+math.Log(mean/k)))
}

// window draws one window. With perNode, every node's requests are drawn
// apart and the nodes whose sides both reach the gate are returned with
// their own evidence; the fleet's evidence is always the sum of every
// node's (the nodes below the gate drawn together, which is the same in
// distribution).
func (w *simWorld) window(r *simRand, perNode bool) (*Evidence, []simNode) {
	requests := int64(w.sc.rate * simWindowSeconds)
	grayN := r.binomial(requests, w.sc.grayShare)
	fleet := NewEvidence(Query{Release: "sim", Env: "gray", Services: []string{"shop"}})
	svc := fleet.Services["shop"]
	svc.Routes = map[string]*RouteEvidence{simHotRoute: {}, simOtherRoute: {}}
	hot, rest := svc.Routes[simHotRoute], svc.Routes[simOtherRoute]
	var judged []simNode
	restGray, restStable := grayN, requests-grayN
	if perNode && w.perNodeCanRun {
		gLeft, sLeft, wLeft := grayN, requests-grayN, 1.0
		for _, wt := range w.weights {
			p := math.Min(1, wt/wLeft)
			g, s := r.binomial(gLeft, p), r.binomial(sLeft, p)
			gLeft, sLeft, wLeft = gLeft-g, sLeft-s, wLeft-wt
			if g < int64(w.settings.MinRequests) || s < int64(w.settings.MinRequests) {
				continue
			}
			var n simNode
			r.draw(&w.gray, g, r.binomial(g, w.sc.routeShare), &n.gray, &n.grayHot, &n.grayRest)
			r.draw(&w.stable, s, r.binomial(s, w.sc.routeShare), &n.stable, &n.stHot, &n.stRest)
			judged = append(judged, n)
			restGray, restStable = restGray-g, restStable-s
			svc.Gray.merge(&n.gray)
			svc.Stable.merge(&n.stable)
			hot.Gray.add(n.grayHot)
			hot.Stable.add(n.stHot)
			rest.Gray.add(n.grayRest)
			rest.Stable.add(n.stRest)
		}
	}
	r.draw(&w.gray, restGray, r.binomial(restGray, w.sc.routeShare), &svc.Gray, &hot.Gray, &rest.Gray)
	r.draw(&w.stable, restStable, r.binomial(restStable, w.sc.routeShare), &svc.Stable, &hot.Stable, &rest.Stable)
	return fleet, judged
}

// observations is what today's per-node judge sees of a node: its counts
// and a uniform sample of at most MaxLatencySamples of its durations, as
// the collector's reservoir keeps (drawn with replacement from the node's
// own durations).
func (n *simNode) observations(r *simRand) *Observations {
	side := func(e *SideEvidence) Side {
		s := Side{Requests: int(e.Requests), Errors: int(e.Errors)}
		total := e.Latency.Count()
		if total <= MaxLatencySamples {
			for b, c := range e.Latency.counts {
				for ; c > 0; c-- {
					s.Latencies = append(s.Latencies, BucketValue(b))
				}
			}
			return s
		}
		left, mass := int64(MaxLatencySamples), float64(total)
		for b, c := range e.Latency.counts {
			if c == 0 || left == 0 {
				continue
			}
			k := r.binomial(left, float64(c)/mass)
			for range k {
				s.Latencies = append(s.Latencies, BucketValue(b))
			}
			left -= k
			mass -= float64(c)
		}
		return s
	}
	return &Observations{Services: []Observation{{Service: "shop", Gray: side(&n.gray), Stable: side(&n.stable)}}}
}

// simOutcome is one rollout: the window (1-based) each method first
// failed the release in, 0 for never.
type simOutcome struct{ sequential, perNode int }

// rollout runs one rollout of up to simWindows windows, both methods on
// the same drawn data, each stopping at its first fail.
func (w *simWorld) rollout(r *simRand, perNode bool) simOutcome {
	var out simOutcome
	if !perNode {
		out.perNode = -1
	}
	seq := NewSequential(w.settings, []string{"shop"})
	fixed := w.settings
	fixed.Method = "fixed"
	for win := 1; win <= simWindows && (out.sequential == 0 || out.perNode == 0); win++ {
		fleet, nodes := w.window(r, out.perNode == 0)
		if out.sequential == 0 && failed(seq.Update(fleet).Verdict) {
			out.sequential = win
		}
		for i := range nodes {
			if out.perNode == 0 && failed(Judge(fixed, nodes[i].observations(r)).Verdict) {
				out.perNode = win
			}
		}
	}
	return out
}

func failed(v Verdict) bool { return v == Fail || v == Critical }

// simResult is a scenario's figures over its rollouts.
type simResult struct {
	sc                      simScenario
	rollouts                int
	seqFails, nodeFails     int
	seqWindows, nodeWindows []int // windows to detection, of the rollouts that failed
}

func runScenario(sc simScenario, s Settings, rollouts int, seed uint64, perNode bool) simResult {
	w := newSimWorld(sc, s)
	res := simResult{sc: sc, rollouts: rollouts}
	for i := 0; i < rollouts; i++ {
		o := w.rollout(newSimRand(seed+uint64(i)), perNode)
		if o.sequential > 0 {
			res.seqFails++
			res.seqWindows = append(res.seqWindows, o.sequential)
		}
		if o.perNode > 0 && perNode {
			res.nodeFails++
			res.nodeWindows = append(res.nodeWindows, o.perNode)
		}
	}
	return res
}

// wilson is the 95% Wilson score interval of k successes in n.
func wilson(k, n int) (lo, hi float64) {
	const z = 1.959963984540054
	p, nf := float64(k)/float64(n), float64(n)
	den := 1 + z*z/nf
	mid := (p + z*z/(2*nf)) / den
	half := z * math.Sqrt(p*(1-p)/nf+z*z/(4*nf*nf)) / den
	return math.Max(0, mid-half), math.Min(1, mid+half)
}

// medianWindows is the median of w with its distribution-free 95%
// interval: the order statistics n/2 ∓ 0.98√n.
func medianWindows(w []int) string {
	if len(w) == 0 {
		return "–"
	}
	s := slices.Sorted(slices.Values(w))
	n := float64(len(s))
	lo := max(0, int(math.Floor(n/2-0.98*math.Sqrt(n))))
	hi := min(len(s)-1, int(math.Ceil(n/2+0.98*math.Sqrt(n))))
	return fmt.Sprintf("%d [%d, %d]", s[len(s)/2], s[lo], s[hi])
}

func rateCell(k, n int) string {
	lo, hi := wilson(k, n)
	return fmt.Sprintf("%.3f [%.3f, %.3f]", float64(k)/float64(n), lo, hi)
}

func (r simResult) row() string {
	return fmt.Sprintf("| %s | %d | %g | %g%% | %s | %s | %s | %s |", r.sc.name, r.sc.nodes, r.sc.rate, 100*r.sc.grayShare,
		rateCell(r.seqFails, r.rollouts), medianWindows(r.seqWindows), rateCell(r.nodeFails, r.rollouts), medianWindows(r.nodeWindows))
}

// simScenarios are the table's rows: A/A across fleet sizes and gray
// shares (one uneven), then each regression at 100 and 1,000 req/s on 10
// nodes, then on 1, with 10% gray.
func simScenarios() []simScenario {
	var out []simScenario
	for _, share := range []float64{0.1, 0.5} {
		for _, nodes := range []int{1, 10, 100, 1000} {
			out = append(out, simScenario{name: "A/A", nodes: nodes, rate: 1000, grayShare: share})
		}
	}
	out = append(out, simScenario{name: "A/A, uneven nodes", nodes: 10, uneven: true, rate: 1000, grayShare: 0.1})
	for _, nodes := range []int{1, 10} {
		for _, rate := range []float64{100, 1000} {
			if rate == 100 {
				// The baseline of the regressions below at this rate.
				out = append(out, simScenario{name: "A/A", nodes: nodes, rate: rate, grayShare: 0.1})
			}
			out = append(out, regressions(simScenario{nodes: nodes, rate: rate, grayShare: 0.1})...)
		}
	}
	return out
}

// regressions are the table's regressions on base's fleet.
func regressions(base simScenario) []simScenario {
	out := []simScenario{
		{name: "+2 points of errors", errPoints: 2},
		{name: "+5 points on a route with 10% of traffic", routeShare: 0.1, routeGrayEr: simBaseErrorRate + 0.05},
		{name: "+20% median latency", medianFactor: 1.2},
		{name: "tail: 2% of gray +300 ms", tailShare: 0.02, tailAddMS: 300},
		{name: "a 1% route failing 32% on gray", routeShare: 0.01, routeGrayEr: 0.32},
	}
	for i := range out {
		out[i].nodes, out[i].rate, out[i].grayShare = base.nodes, base.rate, base.grayShare
	}
	return out
}

// TestSimulationRolloutGuarantee runs the simulation (docs/analysis.md,
// "Simulation"): the sequential method's chance of ever failing an A/A
// rollout is at most alpha within its 95% interval, whatever the fleet's
// size, and it catches every regression of the table, tail and 1% route
// included, at 1,000 req/s. GRAYMESH_SIM_ROLLOUTS sets the rollouts per
// row (default 100; the docs' table is from 1000) and prints the table.
func TestSimulationRolloutGuarantee(t *testing.T) {
	rollouts := 100
	if raceDetector {
		rollouts = 10
	}
	if v := os.Getenv("GRAYMESH_SIM_ROLLOUTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("GRAYMESH_SIM_ROLLOUTS=%q", v)
		}
		rollouts = n
	}
	s := defaults(t)
	var rows []string
	start := time.Now()
	for i, sc := range simScenarios() {
		r := runScenario(sc, s, rollouts, uint64(1000*i+1), true)
		rows = append(rows, r.row())
		t.Logf("row %d done after %s", i, time.Since(start).Round(time.Millisecond))
		lo, _ := wilson(r.seqFails, r.rollouts)
		regression := !strings.HasPrefix(sc.name, "A/A")
		switch {
		case !regression && lo > s.Alpha:
			t.Errorf("%s, %d nodes, %g%% gray: sequential false fails %s, above alpha %g", sc.name, sc.nodes, 100*sc.grayShare, rateCell(r.seqFails, r.rollouts), s.Alpha)
		case regression && sc.rate == 1000 && float64(r.seqFails)/float64(r.rollouts) < 0.9:
			t.Errorf("%s at %g req/s: sequential power %s, want ≥ 0.9", sc.name, sc.rate, rateCell(r.seqFails, r.rollouts))
		}
	}
	t.Logf("rollouts per row: %d\n| scenario | nodes | fleet req/s | gray | sequential: rollouts failed [95%% CI] | windows to fail: median [95%% CI] | per-node fixed: rollouts failed [95%% CI] | windows to fail: median [95%% CI] |\n|---|---|---|---|---|---|---|---|\n%s",
		rollouts, strings.Join(rows, "\n"))
}

// TestSequentialThousandAARollouts: 1,000 A/A rollouts of 60 windows at
// 10% and 50% gray (100 under the race detector), the sequential method
// alone (its merged evidence is the same whatever the number of nodes):
// the share of rollouts ever failed is at most alpha within its 95%
// interval.
func TestSequentialThousandAARollouts(t *testing.T) {
	s := defaults(t)
	rollouts := 1000
	if raceDetector {
		rollouts = 100
	}
	for i, share := range []float64{0.1, 0.5} {
		r := runScenario(simScenario{name: "A/A", nodes: 1, rate: 1000, grayShare: share}, s, rollouts, uint64(77_000+1000*i), false)
		if lo, _ := wilson(r.seqFails, r.rollouts); lo > s.Alpha {
			t.Errorf("%g%% gray: %s of A/A rollouts failed, above alpha %g", 100*share, rateCell(r.seqFails, r.rollouts), s.Alpha)
		}
		t.Logf("%g%% gray: %s of %d A/A rollouts failed", 100*share, rateCell(r.seqFails, r.rollouts), r.rollouts)
	}
}
