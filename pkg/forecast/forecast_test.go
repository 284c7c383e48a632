package forecast

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestHandChecked runs the recursion with fixed parameters on a series small enough to follow
// by hand (the working is in the comments), so a changed formula shows at once.
func TestHandChecked(t *testing.T) {
	t.Parallel()
	// y = 1 3 2 4 3 5, m = 2, α = β = γ = 0.5.
	// Initial state: season means 2 and 3, so b0 = (3−2)/2 = 0.5, s = [1−2, 3−2] = [−1, 1],
	// ℓ re-centred to the end of season one: 2 + 0.5·(2−1)/2 = 2.25.
	// t=2: ŷ = 2.25 + 0.5 − 1 = 1.75; ℓ = .5(2+1) + .5(2.75) = 2.875; b = .5(.625) + .25 = .5625;
	//      s0 = .5(2 − 2.75) + .5(−1) = −0.875.
	// t=3: ŷ = 2.875 + .5625 + 1 = 4.4375; ℓ = .5(3) + .5(3.4375) = 3.21875;
	//      b = .5(.34375) + .28125 = .453125; s1 = .5(4 − 3.4375) + .5 = .78125.
	// t=4: ŷ = 3.21875 + .453125 − .875 = 2.796875.
	y := []float64{1, 3, 2, 4, 3, 5}
	r := FitWith(y, 2, 2, Params{0.5, 0.5, 0.5})
	want := map[int]float64{2: 1.75, 3: 4.4375, 4: 2.796875}
	for i, w := range want {
		if math.Abs(r.Fitted[i]-w) > 1e-12 {
			t.Errorf("fitted[%d] = %v, want %v", i, r.Fitted[i], w)
		}
	}
	if !math.IsNaN(r.Fitted[0]) || !math.IsNaN(r.Fitted[1]) {
		t.Error("the first season seeds the state and has no fitted value")
	}
	// Interval: h=1 is ±z·σ; h=2 adds c1² = (α(1+β))² = 0.5625 to the variance (2 ≡ 0 mod m adds γ only at j = m).
	if len(r.Points) != 2 {
		t.Fatalf("%d points, want 2", len(r.Points))
	}
	w1 := r.Points[0].Upper - r.Points[0].Value
	w2 := r.Points[1].Upper - r.Points[1].Value
	if math.Abs(w1-z95*r.Sigma) > 1e-12 || math.Abs(w2/w1-math.Sqrt(1+0.5625)) > 1e-12 {
		t.Errorf("interval half-widths %v, %v: want z·σ and z·σ·√1.5625", w1, w2)
	}
}

// TestRecovers: a generated series with a known level, trend and weekly season plus noise; the
// fitted model's last level, trend and season must be near the truth and the forecast near the
// noise-free continuation.
func TestRecovers(t *testing.T) {
	t.Parallel()
	season := []float64{5, -3, 2, 0, -4, 6, -6}
	const n, level0, trend, noise = 140, 100.0, 0.5, 1.0
	for seed := uint64(1); seed <= 3; seed++ {
		rng := rand.New(rand.NewPCG(seed, 1))
		y := make([]float64, n)
		for i := range y {
			y[i] = level0 + trend*float64(i) + season[i%7] + rng.NormFloat64()*noise
		}
		r, err := HoltWinters(y, 7, 14)
		if err != nil {
			t.Fatal(err)
		}
		if r.Method != MethodHoltWinters {
			t.Fatalf("method %s", r.Method)
		}
		trueLevel := level0 + trend*float64(n-1)
		// Tolerances: a few noise σ for the level, a tenth of the trend per step, 1.5σ per season day.
		if math.Abs(r.Level-trueLevel) > 3*noise {
			t.Errorf("seed %d: level %.2f, want %.2f ± %.1f", seed, r.Level, trueLevel, 3*noise)
		}
		if math.Abs(r.Trend-trend) > 0.1 {
			t.Errorf("seed %d: trend %.3f, want %.2f ± 0.1", seed, r.Trend, trend)
		}
		for i, s := range r.Seasonal {
			if w := season[(n+i)%7]; math.Abs(s-w) > 1.5*noise {
				t.Errorf("seed %d: season[%d] = %.2f, want %.2f ± %.1f", seed, i, s, w, 1.5*noise)
			}
		}
		var inside int
		for _, p := range r.Points {
			truth := level0 + trend*float64(n-1+p.Step) + season[(n-1+p.Step)%7]
			if math.Abs(p.Value-truth) > 4*noise {
				t.Errorf("seed %d step %d: forecast %.2f, truth %.2f", seed, p.Step, p.Value, truth)
			}
			if truth >= p.Lower && truth <= p.Upper {
				inside++
			}
			if p.Upper-p.Lower <= 0 {
				t.Errorf("step %d: empty interval", p.Step)
			}
		}
		if inside < 12 {
			t.Errorf("seed %d: noise-free truth inside the 95%% interval %d of 14 steps", seed, inside)
		}
		if r.Sigma < 0.5*noise || r.Sigma > 2*noise {
			t.Errorf("seed %d: σ %.2f, want about the noise %.1f", seed, r.Sigma, noise)
		}
	}
}

// TestFitBeatsFixed: the fitted parameters give an SSE no larger than any fixed choice tried.
func TestFitBeatsFixed(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(9, 9))
	y := make([]float64, 70)
	for i := range y {
		y[i] = 10 + float64(i%7) + rng.NormFloat64()
	}
	r, err := HoltWinters(y, 7, 7)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []Params{{0.1, 0.1, 0.1}, {0.5, 0.5, 0.5}, {0.9, 0.1, 0.3}, {0.2, 0, 0.2}} {
		if f := FitWith(y, 7, 7, p); f.SSE < r.SSE-1e-9 {
			t.Errorf("fixed %+v has SSE %.4f below the fitted %.4f", p, f.SSE, r.SSE)
		}
	}
	for _, v := range []float64{r.Params.Alpha, r.Params.Beta, r.Params.Gamma} {
		if v < 0 || v > 1 {
			t.Errorf("parameter %v outside [0, 1]", v)
		}
	}
}

func TestFallback(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		y      []float64
		method string
		err    bool
	}{
		{"two points", []float64{1, 2}, "", true},
		{"NaN", []float64{1, math.NaN(), 2, 3}, "", true},
		{"ten days", []float64{5, 5, 6, 5, 5, 6, 5, 5, 6, 5}, MethodSES, false},
		{"two weeks exactly", make([]float64, 14), MethodSES, false},
		{"fifteen days", make([]float64, 15), MethodHoltWinters, false},
	}
	for _, c := range cases {
		r, err := HoltWinters(c.y, 7, 14)
		if (err != nil) != c.err {
			t.Errorf("%s: err %v", c.name, err)
			continue
		}
		if c.err {
			continue
		}
		if r.Method != c.method || len(r.Points) != 14 {
			t.Errorf("%s: method %s with %d points, want %s with 14", c.name, r.Method, len(r.Points), c.method)
		}
		if c.method == MethodSES && r.Note == "" {
			t.Errorf("%s: the fallback does not say so", c.name)
		}
	}
	// A constant series forecasts itself with a zero-width interval.
	r, _ := HoltWinters([]float64{3, 3, 3, 3, 3}, 7, 3)
	for _, p := range r.Points {
		if p.Value != 3 || p.Lower != 3 || p.Upper != 3 {
			t.Errorf("constant series: %+v", p)
		}
	}
}
