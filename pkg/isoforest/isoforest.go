// Package isoforest is an Isolation Forest (Liu, Ting and Zhou, "Isolation Forest", ICDM 2008;
// cited below as [LTZ08]): an ensemble of random binary trees that isolate points by splitting
// on a random feature at a random value. Anomalies are few and different, so they are isolated
// near the root; the score turns a point's mean path length into s(x, n) in [0, 1], where 1 is
// surely an anomaly and values well below 0.5 are normal.
//
// No Go module on the proxy implements it with the paper's normalisation, a contamination
// threshold and a stable saved form, so it lives here, small and tested against the paper's
// formulas. Training and scoring are deterministic for a given Seed whatever the parallelism:
// every tree draws from its own generator seeded from (Seed, tree index).
package isoforest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
)

// Defaults from [LTZ08] §4 ("ψ = 256 and t = 100 ... as default values") and the usual 5%
// contamination of the seed product.
const (
	DefaultTrees         = 100
	DefaultSubsample     = 256
	DefaultContamination = 0.05
)

// eulerGamma is the Euler–Mascheroni constant of H(i) ≈ ln(i) + γ [LTZ08] §2.
const eulerGamma = 0.5772156649015329

// ErrNoData: fitting needs at least two points with the same number of features.
var ErrNoData = errors.New("isoforest: need at least two points")

// Options configure training; zero fields take the defaults.
type Options struct {
	Trees         int     // t, at least 1 (default 100)
	Subsample     int     // ψ (default 256; the data size when smaller)
	Contamination float64 // expected share of anomalies in (0, 0.5]; sets Threshold (default 0.05)
	Seed          uint64
	Workers       int // trees built and points scored in parallel (default GOMAXPROCS)
}

func (o Options) withDefaults() Options {
	if o.Trees <= 0 {
		o.Trees = DefaultTrees
	}
	if o.Subsample <= 0 {
		o.Subsample = DefaultSubsample
	}
	if o.Contamination <= 0 {
		o.Contamination = DefaultContamination
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	return o
}

// Node is one node of a tree, stored flat in pre-order, so an internal node's left child is
// the next node and only the right one needs an index (16 bytes a node: a tree of ψ = 256 fits
// in the L1 cache). Feature < 0 marks an external node; its Split then holds the path length
// h(x) of every point ending there (its depth plus c(size) for the points left unseparated),
// computed once at training rather than at every scored point. Otherwise points with
// x[Feature] < Split go left, the rest to Right.
type Node struct {
	Feature int32   `json:"f"`
	Right   int32   `json:"r,omitempty"`
	Split   float64 `json:"s"`
}

// Forest is a trained model. It is plain data: JSON round trips give identical scores.
type Forest struct {
	Trees     [][]Node `json:"trees"`
	Subsample int      `json:"subsample"` // ψ actually used
	Features  int      `json:"features"`
	// Threshold is the s(x, n) at or above which a point is called an anomaly: the
	// (1 − Contamination) quantile of the training points' scores.
	Threshold     float64 `json:"threshold"`
	Contamination float64 `json:"contamination"`
	Seed          uint64  `json:"seed"`
}

// H is the harmonic number approximation of [LTZ08] §2: H(i) ≈ ln(i) + 0.5772156649.
func H(i float64) float64 { return math.Log(i) + eulerGamma }

// C is c(n) of [LTZ08] Eq. 1, the average path length of an unsuccessful search in a binary
// search tree of n points, which normalises h(x): c(n) = 2H(n−1) − 2(n−1)/n for n > 2, 1 for
// n = 2 and 0 below.
func C(n int) float64 {
	switch {
	case n > 2:
		f := float64(n)
		return 2*H(f-1) - 2*(f-1)/f
	case n == 2:
		return 1
	}
	return 0
}

// AnomalyScore is s(x, n) of [LTZ08] Eq. 2: 2^(−E(h(x)) / c(n)). E(h) → 0 gives 1, E(h) = c(n)
// gives 0.5, E(h) → n − 1 gives a value near 0.
func AnomalyScore(meanPath float64, n int) float64 {
	c := C(n)
	if c == 0 {
		return 0.5
	}
	return math.Pow(2, -meanPath/c)
}

// Fit trains a forest on X (rows are points, all of one length).
func Fit(X [][]float64, o Options) (*Forest, error) {
	o = o.withDefaults()
	if len(X) < 2 {
		return nil, ErrNoData
	}
	d := len(X[0])
	for i, x := range X {
		if len(x) != d {
			return nil, fmt.Errorf("isoforest: point %d has %d features, want %d", i, len(x), d)
		}
		for j, v := range x {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("isoforest: point %d feature %d is %v", i, j, v)
			}
		}
	}
	if o.Contamination > 0.5 {
		return nil, fmt.Errorf("isoforest: contamination %v above 0.5", o.Contamination)
	}
	psi := min(o.Subsample, len(X))
	f := &Forest{Trees: make([][]Node, o.Trees), Subsample: psi, Features: d, Contamination: o.Contamination, Seed: o.Seed}
	// Height limit l = ceiling(log2 ψ) [LTZ08] Algorithm 1: deeper nodes only separate normal points.
	limit := int(math.Ceil(math.Log2(float64(psi))))
	parallel(o.Trees, o.Workers, func(t int) {
		rng := rand.New(rand.NewPCG(o.Seed, uint64(t)+1))
		b := builder{rng: rng, x: X, limit: limit}
		b.grow(sample(rng, len(X), psi), 0)
		f.Trees[t] = b.nodes
	})
	scores := f.ScoreAll(X, o.Workers)
	f.Threshold = quantile(scores, 1-o.Contamination)
	return f, nil
}

// sample draws k distinct indices of [0, n) without replacement.
func sample(rng *rand.Rand, n, k int) []int {
	if k >= n {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	seen := make(map[int]bool, k)
	out := make([]int, 0, k)
	for len(out) < k {
		i := rng.IntN(n)
		if !seen[i] {
			seen[i] = true
			out = append(out, i)
		}
	}
	return out
}

type builder struct {
	rng   *rand.Rand
	x     [][]float64
	limit int
	nodes []Node
}

// grow is iTree(X', e, l) of [LTZ08] Algorithm 2; it returns the node's index.
func (b *builder) grow(idx []int, depth int) int32 {
	at := int32(len(b.nodes))
	b.nodes = append(b.nodes, Node{Feature: -1, Split: float64(depth) + C(len(idx))})
	if depth >= b.limit || len(idx) <= 1 {
		return at
	}
	// Pick q among the attributes that still vary here; a node whose points are all equal is
	// external (the paper's "all data in X have the same values").
	d := len(b.x[idx[0]])
	var cand []int
	lo, hi := make([]float64, d), make([]float64, d)
	for q := 0; q < d; q++ {
		lo[q], hi[q] = math.Inf(1), math.Inf(-1)
		for _, i := range idx {
			v := b.x[i][q]
			lo[q], hi[q] = min(lo[q], v), max(hi[q], v)
		}
		if hi[q] > lo[q] {
			cand = append(cand, q)
		}
	}
	if len(cand) == 0 {
		return at
	}
	q := cand[b.rng.IntN(len(cand))]
	p := lo[q] + b.rng.Float64()*(hi[q]-lo[q])
	if p <= lo[q] { // keep both sides non-empty
		p = math.Nextafter(lo[q], hi[q])
	}
	var left, right []int
	for _, i := range idx {
		if b.x[i][q] < p {
			left = append(left, i)
		} else {
			right = append(right, i)
		}
	}
	b.grow(left, depth+1) // at + 1
	r := b.grow(right, depth+1)
	b.nodes[at] = Node{Feature: int32(q), Split: p, Right: r}
	return at
}

// PathLength is h(x) in one tree: the edges from the root to x's external node, plus c(Size)
// for the points the height limit left unseparated there ([LTZ08] Algorithm 3).
func PathLength(tree []Node, x []float64) float64 {
	i := int32(0)
	for {
		n := &tree[i]
		if n.Feature < 0 {
			return n.Split
		}
		// Written so the compiler emits a conditional move: which way a point goes is a coin
		// toss the branch predictor loses half the time.
		next := n.Right
		if x[n.Feature] < n.Split {
			next = i + 1
		}
		i = next
	}
}

// MeanPath is E(h(x)) over the trees.
func (f *Forest) MeanPath(x []float64) float64 {
	var sum float64
	for _, t := range f.Trees {
		sum += PathLength(t, x)
	}
	return sum / float64(len(f.Trees))
}

// Score is s(x, ψ) in [0, 1]: higher is more anomalous.
func (f *Forest) Score(x []float64) float64 { return AnomalyScore(f.MeanPath(x), f.Subsample) }

// Decision is the seed product's convention (scikit-learn's decision_function): Threshold −
// s(x, ψ), so lower is more anomalous and below zero is an anomaly.
func (f *Forest) Decision(x []float64) float64 { return f.Threshold - f.Score(x) }

// IsAnomaly tells whether x scores at or above the threshold.
func (f *Forest) IsAnomaly(s float64) bool { return s >= f.Threshold }

// ScoreAll is Score for every row of X, in parallel over workers (0: GOMAXPROCS). Every row
// must have Features values. The scores are exactly Score's (the same comparisons, and the
// path lengths summed in the same order).
func (f *Forest) ScoreAll(X [][]float64, workers int) []float64 {
	out := make([]float64, len(X))
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	for i, x := range X {
		if len(x) < f.Features {
			panic(fmt.Sprintf("isoforest: point %d has %d features, the model %d", i, len(x), f.Features))
		}
	}
	trees := make([]flatTree, len(f.Trees))
	for t, tree := range f.Trees {
		trees[t] = flatten(tree)
	}
	// Tree by tree over a chunk of points: one tree's nodes (8 KiB) and the chunk's points
	// (24 KiB at 12 features) stay in the L1 cache while the chunk walks it.
	const chunk = 256
	parallel((len(X)+chunk-1)/chunk, workers, func(c int) {
		lo, hi := c*chunk, min((c+1)*chunk, len(X))
		sums := make([]float64, hi-lo)
		for t := range trees {
			trees[t].addPaths(X[lo:hi], sums)
		}
		for i := lo; i < hi; i++ {
			out[i] = AnomalyScore(sums[i-lo]/float64(len(f.Trees)), f.Subsample)
		}
	})
	return out
}

// flatTree is a tree laid out for scoring many points: every node is a split, an external
// node one that sends every point back to itself (split −∞, right child itself), so a point
// takes exactly depth steps with no test for "external?", and lanes of points walk together.
type flatTree struct {
	nodes []flatNode
	leaf  []float64 // h(x) at each external node (as Node.Split holds it)
	depth int       // edges on the longest path
}

type flatNode struct {
	split float64
	feat  int32
	right int32
}

func flatten(tree []Node) flatTree {
	ft := flatTree{nodes: make([]flatNode, len(tree)), leaf: make([]float64, len(tree))}
	depth := make([]int, len(tree))
	for i, n := range tree {
		if n.Feature < 0 {
			ft.nodes[i] = flatNode{split: math.Inf(-1), feat: 0, right: int32(i)}
			ft.leaf[i] = n.Split
			ft.depth = max(ft.depth, depth[i])
			continue
		}
		ft.nodes[i] = flatNode{split: n.Split, feat: n.Feature, right: n.Right}
		depth[i+1], depth[n.Right] = depth[i]+1, depth[i]+1 // pre-order: children come later
	}
	return ft
}

// lanes is how many points walk a tree side by side: their steps do not depend on each other,
// so the processor overlaps the memory loads that one point's walk would wait for in turn.
const lanes = 8

// addPaths adds h(x) in this tree to sums[i] for every point X[i].
func (ft *flatTree) addPaths(X [][]float64, sums []float64) {
	nodes := ft.nodes
	i := 0
	for ; i+lanes <= len(X); i += lanes {
		var at [lanes]int32
		xs := X[i : i+lanes : i+lanes]
		for d := 0; d < ft.depth; d++ {
			for k := range at {
				n := &nodes[at[k]]
				// Arithmetic, not a branch: which way a point goes is a coin toss the branch
				// predictor loses half the time.
				at[k] = n.right + b2i(xs[k][n.feat] < n.split)*(at[k]+1-n.right)
			}
		}
		for k := range at {
			sums[i+k] += ft.leaf[at[k]]
		}
	}
	for ; i < len(X); i++ {
		at := int32(0)
		for d := 0; d < ft.depth; d++ {
			n := &nodes[at]
			at = n.right + b2i(X[i][n.feat] < n.split)*(at+1-n.right)
		}
		sums[i] += ft.leaf[at]
	}
}

// b2i is 1 for true: the compiler makes it a SETcc, no jump.
func b2i(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// Validate checks a loaded forest: every child index in range, features within Features.
func (f *Forest) Validate() error {
	if len(f.Trees) == 0 || f.Subsample < 1 || f.Features < 1 {
		return errors.New("isoforest: empty model")
	}
	for t, tree := range f.Trees {
		for i, n := range tree {
			if n.Feature < 0 {
				if math.IsNaN(n.Split) || n.Split < 0 || n.Split > 1e6 {
					return fmt.Errorf("isoforest: tree %d node %d has path length %v", t, i, n.Split)
				}
				continue
			}
			if int(n.Feature) >= f.Features || n.Right <= int32(i)+1 || int(n.Right) >= len(tree) {
				return fmt.Errorf("isoforest: tree %d node %d is malformed", t, i)
			}
		}
	}
	return nil
}

// Marshal and Unmarshal are the saved form (JSON; floats round-trip exactly).
func (f *Forest) Marshal() ([]byte, error) { return json.Marshal(f) }

// Unmarshal reads a saved forest and validates it, so a damaged row cannot index out of range.
func Unmarshal(b []byte) (*Forest, error) {
	var f Forest
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("isoforest: %w", err)
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

// quantile is the q-quantile of v by linear interpolation between order statistics (the
// numpy default that scikit-learn's offset uses).
func quantile(v []float64, q float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	i := int(math.Floor(pos))
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	return s[i] + (pos-float64(i))*(s[i+1]-s[i])
}

func parallel(n, workers int, fn func(i int)) {
	if workers > n {
		workers = n
	}
	if workers <= 1 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	wg.Wait()
}
