package dmarc

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse checks the parser's promises on any input: no panic; the reader and byte-slice
// paths agree exactly; errors wrap exactly one sentinel; a parsed report is usable.
// Seeds are in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add([]byte(report(record("192.0.2.1", "3"))))
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := ParseBytes(data, Limits{})
		rep2, err2 := Parse(&smallReads{r: strings.NewReader(string(data))}, Limits{})
		if (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
			t.Fatalf("ParseBytes error %v, Parse error %v", err, err2)
		}
		if err != nil {
			n := 0
			for _, s := range []error{ErrNotReport, ErrMalformed, ErrInvalid} {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("error %q wraps %d sentinels, want 1", err, n)
			}
			return
		}
		if !reflect.DeepEqual(rep, rep2) {
			t.Fatalf("ParseBytes and Parse differ:\n%+v\n%+v", rep, rep2)
		}
		checkInvariants(t, rep)
	})
}

func checkInvariants(t *testing.T, rep *Report) {
	t.Helper()
	if rep.DateEnd.Before(rep.DateBegin) {
		t.Fatalf("date range %v .. %v ends before it begins", rep.DateBegin, rep.DateEnd)
	}
	d := rep.Policy.Domain
	if d == "" || d != strings.ToLower(d) || strings.HasSuffix(d, ".") {
		t.Fatalf("policy domain %q", d)
	}
	var sum int64
	for i, r := range rep.Records {
		if !r.SourceIP.IsValid() || r.SourceIP.Is4In6() || r.SourceIP.Zone() != "" {
			t.Fatalf("record %d: source IP %v", i, r.SourceIP)
		}
		if r.Count < 0 || r.Count > math.MaxInt64-sum {
			t.Fatalf("record %d: count %d overflows or is negative (sum so far %d)", i, r.Count, sum)
		}
		sum += r.Count
	}
	if rep.MessageCount() != sum {
		t.Fatalf("MessageCount %d, want %d", rep.MessageCount(), sum)
	}
	if len(rep.Warnings) > maxWarnings+1 {
		t.Fatalf("%d warnings, cap is %d", len(rep.Warnings), maxWarnings)
	}
}
