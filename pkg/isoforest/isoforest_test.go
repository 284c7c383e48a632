package isoforest

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// exactC is c(n) with the exact harmonic number, to check the paper's approximation.
func exactC(n int) float64 {
	var h float64
	for i := 1; i <= n-1; i++ {
		h += 1 / float64(i)
	}
	return 2*h - 2*float64(n-1)/float64(n)
}

func TestC(t *testing.T) {
	t.Parallel()
	cases := []struct {
		n    int
		want float64
		tol  float64
	}{
		{0, 0, 0},
		{1, 0, 0},
		{2, 1, 0},                  // [LTZ08] §2: c(n) defined as 1 for n = 2 in the path-length adjustment
		{3, 2*H(2) - 4.0/3, 1e-12}, // Eq. 1 literally
		{256, exactC(256), 0.01},   // the approximation H(i) ≈ ln i + γ is good to O(1/i)
		{1000, exactC(1000), 0.005},
		{256, 10.2448, 0.0001}, // ψ = 256, the paper's default: 2(ln 255 + γ) − 2·255/256
	}
	for _, c := range cases {
		if got := C(c.n); math.Abs(got-c.want) > c.tol {
			t.Errorf("c(%d) = %.6f, want %.6f ± %g", c.n, got, c.want, c.tol)
		}
	}
}

// TestAnomalyScore checks the three limits [LTZ08] §2 lists under Eq. 2.
func TestAnomalyScore(t *testing.T) {
	t.Parallel()
	n := 256
	cases := []struct {
		name   string
		path   float64
		lo, hi float64
	}{
		{"E(h) = c(n) gives 0.5", C(n), 0.5, 0.5},
		{"E(h) → 0 gives 1", 0, 1, 1},
		{"E(h) → n−1 gives about 0", float64(n - 1), 0, 1e-7},
	}
	for _, c := range cases {
		got := AnomalyScore(c.path, n)
		if got < c.lo-1e-12 || got > c.hi+1e-12 {
			t.Errorf("%s: s = %g, want in [%g, %g]", c.name, got, c.lo, c.hi)
		}
	}
}

// planted is Gaussian clusters with a share of uniform outliers far from them; the labels say
// which rows are outliers.
func planted(seed uint64, n int, outlierShare float64, d int) ([][]float64, []bool) {
	rng := rand.New(rand.NewPCG(seed, 7))
	centres := [][]float64{}
	for c := 0; c < 3; c++ {
		x := make([]float64, d)
		for j := range x {
			x[j] = rng.Float64() * 10
		}
		centres = append(centres, x)
	}
	X := make([][]float64, n)
	y := make([]bool, n)
	for i := range X {
		x := make([]float64, d)
		if rng.Float64() < outlierShare {
			y[i] = true
			for j := range x {
				x[j] = -20 + rng.Float64()*50
			}
		} else {
			c := centres[rng.IntN(len(centres))]
			for j := range x {
				x[j] = c[j] + rng.NormFloat64()*0.5
			}
		}
		X[i] = x
	}
	return X, y
}

// auc is the ROC AUC of scores (higher = positive) against labels (Mann–Whitney U).
func auc(scores []float64, y []bool) float64 {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return scores[idx[a]] < scores[idx[b]] })
	var pos, neg, rankSum float64
	for r, i := range idx {
		if y[i] {
			pos++
			rankSum += float64(r + 1)
		} else {
			neg++
		}
	}
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}

func TestPlantedOutliers(t *testing.T) {
	t.Parallel()
	for _, d := range []int{2, 6, 12} {
		X, y := planted(uint64(d), 6000, 0.01, d)
		f, err := Fit(X, Options{Seed: 42})
		if err != nil {
			t.Fatal(err)
		}
		s := f.ScoreAll(X, 0)
		if a := auc(s, y); a < 0.95 {
			t.Errorf("%d features: ROC AUC %.4f, want ≥ 0.95", d, a)
		}
		for i, v := range s {
			if v < 0 || v > 1 || math.IsNaN(v) {
				t.Fatalf("score %d = %v, out of [0, 1]", i, v)
			}
		}
		// Contamination 5% → about 5% of the training points at or above the threshold.
		var flagged int
		for _, v := range s {
			if f.IsAnomaly(v) {
				flagged++
			}
		}
		if share := float64(flagged) / float64(len(s)); share < 0.045 || share > 0.06 {
			t.Errorf("%d features: %.3f flagged, want about the 5%% contamination", d, share)
		}
	}
}

// TestPathLengths: an isolated point is separated near the root, a point in a dense cluster
// needs about c(ψ) edges or more.
func TestPathLengths(t *testing.T) {
	t.Parallel()
	X, _ := planted(3, 256, 0, 4)
	far := []float64{500, -500, 500, -500}
	X = append(X, far)
	f, err := Fit(X, Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if h := f.MeanPath(far); h > 3 {
		t.Errorf("isolated point: mean path %.2f, want short (≤ 3 edges)", h)
	}
	if s := f.Score(far); s < 0.75 {
		t.Errorf("isolated point: s = %.3f, want ≥ 0.75", s)
	}
	// The median cluster point sits deep in the trees.
	paths := make([]float64, 0, len(X))
	for _, x := range X[:256] {
		paths = append(paths, f.MeanPath(x))
	}
	slices.Sort(paths)
	if med := paths[len(paths)/2]; med < C(f.Subsample)*0.8 {
		t.Errorf("cluster point: median path %.2f, want near or above c(ψ) = %.2f", med, C(f.Subsample))
	}
	if d := f.Decision(far); d >= 0 {
		t.Errorf("isolated point: decision %.3f, want < 0 (seed convention: lower = more anomalous)", d)
	}
}

func TestDeterministic(t *testing.T) {
	t.Parallel()
	X, _ := planted(9, 3000, 0.02, 5)
	a, err := Fit(X, Options{Seed: 7, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Fit(X, Options{Seed: 7, Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Fit(X, Options{Seed: 8})
	if err != nil {
		t.Fatal(err)
	}
	sa, sb, sc := a.ScoreAll(X, 1), b.ScoreAll(X, 3), c.ScoreAll(X, 0)
	if !slices.Equal(sa, sb) {
		t.Error("same seed, different worker counts: scores differ")
	}
	if slices.Equal(sa, sc) {
		t.Error("different seeds gave identical scores: the seed is not used")
	}
	if a.Threshold != b.Threshold {
		t.Errorf("thresholds differ: %v vs %v", a.Threshold, b.Threshold)
	}
}

// TestScoreAllIsScore: the batch scorer (flattened trees, lanes of points) gives exactly the
// scores of the point-by-point walk of the saved form, for every chunk and lane remainder,
// including points with NaN features (they go right at every split, as in Score).
func TestScoreAllIsScore(t *testing.T) {
	t.Parallel()
	X, _ := planted(11, 1037, 0.02, 4) // not a multiple of the chunk or the lanes
	f, err := Fit(X[:600], Options{Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	X[3] = slices.Clone(X[3])
	X[3][1] = math.NaN()
	got := f.ScoreAll(X, 3)
	for i, x := range X {
		if want := f.Score(x); got[i] != want {
			t.Fatalf("point %d: ScoreAll %v, Score %v", i, got[i], want)
		}
	}
}

func TestSaveLoad(t *testing.T) {
	t.Parallel()
	X, _ := planted(5, 2000, 0.01, 3)
	f, err := Fit(X, Options{Seed: 3, Trees: 120})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g, err := Unmarshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.ScoreAll(X, 0), g.ScoreAll(X, 0)) || f.Threshold != g.Threshold || len(g.Trees) != 120 {
		t.Error("scores after a save/load round trip differ")
	}
	// A damaged saved form is refused, not indexed out of range.
	bad := []string{`{}`, `{"trees":[[{"f":0,"r":6,"s":1}]],"subsample":2,"features":1}`, `{"trees":[[{"f":3,"r":2,"s":1},{"f":-1,"s":1},{"f":-1,"s":1}]],"subsample":2,"features":1}`, `{"trees":[[{"f":0,"r":1,"s":1},{"f":-1,"s":1}]],"subsample":2,"features":1}`, `nope`}
	for _, b := range bad {
		if _, err := Unmarshal([]byte(b)); err == nil {
			t.Errorf("Unmarshal(%s) accepted a malformed model", b)
		}
	}
}

func TestFitRefuses(t *testing.T) {
	t.Parallel()
	cases := map[string][][]float64{
		"no data":   nil,
		"one point": {{1}},
		"ragged":    {{1, 2}, {3}},
		"NaN":       {{1}, {math.NaN()}},
		"infinite":  {{1}, {math.Inf(1)}},
	}
	for name, X := range cases {
		if _, err := Fit(X, Options{}); err == nil {
			t.Errorf("%s: Fit accepted it", name)
		}
	}
	if _, err := Fit([][]float64{{1}, {2}}, Options{Contamination: 0.6}); err == nil {
		t.Error("contamination 0.6 accepted")
	}
	// Identical points: every tree is one external node, every score the same.
	f, err := Fit([][]float64{{1, 1}, {1, 1}, {1, 1}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s := f.Score([]float64{1, 1}); math.IsNaN(s) || s < 0 || s > 1 {
		t.Errorf("constant data: s = %v", s)
	}
}
