// Package forecast projects a daily series ahead with additive Holt-Winters exponential
// smoothing (level, trend and a weekly season), its smoothing parameters fitted by minimising
// the one-step-ahead sum of squared errors, with prediction intervals; with less than two
// seasons of history it falls back to simple exponential smoothing and says so.
//
// Formulas are the component form of Hyndman & Athanasopoulos, "Forecasting: Principles and
// Practice" (2nd ed., §7.3, cited [FPP]):
//
//	ŷ(t+h|t) = ℓ(t) + h·b(t) + s(t+h−m(k+1))
//	ℓ(t) = α(y(t) − s(t−m)) + (1−α)(ℓ(t−1) + b(t−1))
//	b(t) = β(ℓ(t) − ℓ(t−1)) + (1−β)b(t−1)
//	s(t) = γ(y(t) − ℓ(t−1) − b(t−1)) + (1−γ)s(t−m)
//
// and the interval variance is that of the equivalent ETS(A,A,A) model ([FPP] §7.7 Table 7.8;
// Hyndman, Koehler, Ord & Snyder 2008, class 1): σ²_h = σ²[1 + Σ_{j=1}^{h−1} c_j²] with
// c_j = α(1 + jβ) + γ·[j mod m = 0].
package forecast

import (
	"errors"
	"math"
)

// Methods a Result may name.
const (
	MethodHoltWinters = "holt_winters_additive"
	MethodSES         = "simple_exponential_smoothing"
)

// z95 is the standard normal quantile of a 95% two-sided interval.
const z95 = 1.959963984540054

// ErrTooShort: fewer than three observations.
var ErrTooShort = errors.New("forecast: need at least 3 observations")

// Params are the smoothing parameters, each in [0, 1].
type Params struct {
	Alpha float64 `json:"alpha"`
	Beta  float64 `json:"beta"`
	Gamma float64 `json:"gamma"`
}

// Point is one forecast step with its 95% prediction interval.
type Point struct {
	Step  int     `json:"step"`
	Value float64 `json:"value"`
	Lower float64 `json:"lower"`
	Upper float64 `json:"upper"`
}

// Result is a fitted model and its forecast.
type Result struct {
	Method string  `json:"method"`
	Params Params  `json:"params"`
	Season int     `json:"season"` // m; 0 for simple exponential smoothing
	Level  float64 `json:"level"`  // ℓ at the last observation
	Trend  float64 `json:"trend"`  // b at the last observation
	// Seasonal are the last m seasonal components, oldest first; Seasonal[i] applies to the
	// step h with (n + h − 1) mod m = … (see Forecast).
	Seasonal []float64 `json:"seasonal,omitempty"`
	SSE      float64   `json:"sse"`
	Sigma    float64   `json:"sigma"`  // residual standard deviation of the one-step errors
	Fitted   []float64 `json:"fitted"` // one-step-ahead fitted values, aligned with the input
	Points   []Point   `json:"points"`
	Note     string    `json:"note,omitempty"`
}

// state runs the recursion for p over y and returns the fitted values, the SSE and the final
// state. The initial state is the classical one ([FPP] §7.3 and NIST/SEMATECH e-Handbook
// §6.4.3.5): ℓ0 the mean of the first season, b0 the mean per-step change between the first two
// seasons, s the first season's deviations from ℓ0.
func holtWinters(y []float64, m int, p Params) (fitted []float64, sse float64, l, b float64, s []float64) {
	var first, second float64
	for i := 0; i < m; i++ {
		first += y[i]
		second += y[m+i]
	}
	first /= float64(m)
	second /= float64(m)
	l, b = first, (second-first)/float64(m)
	s = make([]float64, m)
	for i := 0; i < m; i++ {
		s[i] = y[i] - first
	}
	// The first season seeded the state; fitting starts at t = m, the first step with s(t−m).
	// (ℓ0 sits at the middle of season one; re-centring it to t = m−1 keeps the first forecast
	// unbiased under a trend.)
	l += b * float64(m-1) / 2
	fitted = make([]float64, len(y))
	for t := 0; t < m; t++ {
		fitted[t] = math.NaN()
	}
	for t := m; t < len(y); t++ {
		si := s[t%m]
		f := l + b + si
		fitted[t] = f
		e := y[t] - f
		sse += e * e
		nl := p.Alpha*(y[t]-si) + (1-p.Alpha)*(l+b)
		nb := p.Beta*(nl-l) + (1-p.Beta)*b
		s[t%m] = p.Gamma*(y[t]-l-b) + (1-p.Gamma)*si
		l, b = nl, nb
	}
	return fitted, sse, l, b, s
}

func ses(y []float64, alpha float64) (fitted []float64, sse, l float64) {
	l = y[0]
	fitted = make([]float64, len(y))
	fitted[0] = math.NaN()
	for t := 1; t < len(y); t++ {
		fitted[t] = l
		e := y[t] - l
		sse += e * e
		l = alpha*y[t] + (1-alpha)*l
	}
	return fitted, sse, l
}

// HoltWinters fits the additive model with season m to y by minimising the one-step SSE and
// forecasts horizon steps. Fewer than 2m observations fall back to simple exponential
// smoothing (Note says so).
func HoltWinters(y []float64, m, horizon int) (Result, error) {
	if len(y) < 3 {
		return Result{}, ErrTooShort
	}
	for _, v := range y {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return Result{}, errors.New("forecast: the series holds NaN or infinity")
		}
	}
	if m < 2 || len(y) < 2*m+1 {
		r := SES(y, horizon)
		r.Note = "fewer than two seasons of data: simple exponential smoothing, no trend or weekly pattern"
		return r, nil
	}
	obj := func(v []float64) float64 {
		_, sse, _, _, _ := holtWinters(y, m, Params{v[0], v[1], v[2]})
		return sse
	}
	best := minimise(obj, 3)
	p := Params{best[0], best[1], best[2]}
	return FitWith(y, m, horizon, p), nil
}

// FitWith runs the model with given parameters (no fitting): the fitted values and forecast.
func FitWith(y []float64, m, horizon int, p Params) Result {
	fitted, sse, l, b, s := holtWinters(y, m, p)
	n := len(y) - m
	sigma := math.Sqrt(sse / float64(max(n, 1)))
	r := Result{Method: MethodHoltWinters, Params: p, Season: m, Level: l, Trend: b, SSE: sse, Sigma: sigma, Fitted: fitted}
	r.Seasonal = make([]float64, m)
	for i := 0; i < m; i++ {
		r.Seasonal[i] = s[(len(y)+i)%m]
	}
	var acc float64 // Σ c_j² for j < h
	for h := 1; h <= horizon; h++ {
		v := l + float64(h)*b + s[(len(y)+h-1)%m]
		half := z95 * sigma * math.Sqrt(1+acc)
		r.Points = append(r.Points, Point{Step: h, Value: v, Lower: v - half, Upper: v + half})
		c := p.Alpha * (1 + float64(h)*p.Beta)
		if h%m == 0 {
			c += p.Gamma
		}
		acc += c * c
	}
	return r
}

// SES fits simple exponential smoothing (α by minimising the one-step SSE) and forecasts a flat
// line with widening intervals: σ²_h = σ²[1 + (h−1)α²] ([FPP] Table 7.8, ETS(A,N,N)).
func SES(y []float64, horizon int) Result {
	best := minimise(func(v []float64) float64 { _, sse, _ := ses(y, v[0]); return sse }, 1)
	alpha := best[0]
	fitted, sse, l := ses(y, alpha)
	sigma := math.Sqrt(sse / float64(max(len(y)-1, 1)))
	r := Result{Method: MethodSES, Params: Params{Alpha: alpha}, Level: l, SSE: sse, Sigma: sigma, Fitted: fitted}
	for h := 1; h <= horizon; h++ {
		half := z95 * sigma * math.Sqrt(1+float64(h-1)*alpha*alpha)
		r.Points = append(r.Points, Point{Step: h, Value: l, Lower: l - half, Upper: l + half})
	}
	return r
}

// minimise finds parameters in [0, 1]^k that minimise f: a coarse grid, then Nelder–Mead from
// the best grid point, clamped to the box. SSE surfaces of exponential smoothing are smooth
// but may have several local minima; the grid keeps the search from the worst of them.
func minimise(f func([]float64) float64, k int) []float64 {
	grid := []float64{0.05, 0.3, 0.6, 0.9}
	best, bestV := make([]float64, k), math.Inf(1)
	cur := make([]float64, k)
	var walk func(d int)
	walk = func(d int) {
		if d == k {
			if v := f(cur); v < bestV {
				bestV = v
				copy(best, cur)
			}
			return
		}
		for _, g := range grid {
			cur[d] = g
			walk(d + 1)
		}
	}
	walk(0)
	return nelderMead(f, best, 0.1, 200)
}

func clamp01(v []float64) {
	for i := range v {
		v[i] = min(max(v[i], 0), 1)
	}
}

// nelderMead is the downhill simplex method (Nelder & Mead 1965) with the usual coefficients,
// every trial point clamped to [0, 1]^k.
func nelderMead(f func([]float64) float64, x0 []float64, step float64, iters int) []float64 {
	k := len(x0)
	pts := make([][]float64, k+1)
	vals := make([]float64, k+1)
	for i := range pts {
		p := append([]float64(nil), x0...)
		if i > 0 {
			if p[i-1]+step <= 1 {
				p[i-1] += step
			} else {
				p[i-1] -= step
			}
		}
		clamp01(p)
		pts[i], vals[i] = p, f(p)
	}
	trial := func(c []float64, toward []float64, coef float64) []float64 {
		out := make([]float64, k)
		for j := range out {
			out[j] = c[j] + coef*(toward[j]-c[j])
		}
		clamp01(out)
		return out
	}
	for it := 0; it < iters; it++ {
		// order best first
		for i := 1; i < len(pts); i++ {
			for j := i; j > 0 && vals[j] < vals[j-1]; j-- {
				pts[j], pts[j-1] = pts[j-1], pts[j]
				vals[j], vals[j-1] = vals[j-1], vals[j]
			}
		}
		if vals[k]-vals[0] <= 1e-12*(1+math.Abs(vals[0])) {
			break
		}
		c := make([]float64, k)
		for i := 0; i < k; i++ {
			for j := range c {
				c[j] += pts[i][j] / float64(k)
			}
		}
		worst := pts[k]
		r := trial(c, worst, -1)
		fr := f(r)
		switch {
		case fr < vals[0]:
			e := trial(c, worst, -2)
			if fe := f(e); fe < fr {
				pts[k], vals[k] = e, fe
			} else {
				pts[k], vals[k] = r, fr
			}
		case fr < vals[k-1]:
			pts[k], vals[k] = r, fr
		default:
			ct := trial(c, worst, 0.5)
			if fc := f(ct); fc < vals[k] {
				pts[k], vals[k] = ct, fc
			} else {
				for i := 1; i <= k; i++ {
					pts[i] = trial(pts[0], pts[i], 0.5)
					vals[i] = f(pts[i])
				}
			}
		}
	}
	bi := 0
	for i := range vals {
		if vals[i] < vals[bi] {
			bi = i
		}
	}
	return pts[bi]
}
