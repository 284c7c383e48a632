package dmarc

import (
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
)

// streamHead and streamTail wrap generated records into a report.
var streamHead, streamTail = func() (string, string) {
	doc := report("@@")
	i := strings.Index(doc, "@@")
	return doc[:i], doc[i+2:]
}()

// streamRecord is the i-th generated record: compact, with an address and count that vary.
func streamRecord(i int64) string {
	return "<record><row><source_ip>10." + strconv.FormatInt(i>>16&255, 10) + "." +
		strconv.FormatInt(i>>8&255, 10) + "." + strconv.FormatInt(i&255, 10) +
		"</source_ip><count>" + strconv.FormatInt(i%7+1, 10) + "</count><policy_evaluated>" +
		"<disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>" +
		"<identifiers><header_from>example.com</header_from></identifiers></record>\n"
}

// TestDecoderMillionRecords streams a generated report of a million records and watches the
// heap. Not parallel: the heap it measures must be its own.
func TestDecoderMillionRecords(t *testing.T) {
	n := int64(1_000_000)
	if raceEnabled {
		n = 100_000
		t.Logf("race detector on: streaming %d records instead of 1,000,000", n)
	}
	h := newHeapPeak()
	g := &genReader{prefix: streamHead, unitAt: streamRecord, suffix: streamTail, n: n}
	start := time.Now()
	d := NewDecoder(g, Limits{})
	rep, err := d.Header()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Policy.Domain != "example.com" || len(rep.Records) != 0 {
		t.Fatalf("header %+v", rep)
	}
	var got, sum, eofs int64
	for {
		rec, err := d.Next()
		if err == io.EOF {
			eofs++
			break
		}
		if err != nil {
			t.Fatalf("record %d: %v", got, err)
		}
		if want := streamRecord(got); !strings.Contains(want, "<source_ip>"+rec.SourceIP.String()+"<") {
			t.Fatalf("record %d has source IP %v, want it from %q", got, rec.SourceIP, want)
		}
		got++
		sum += rec.Count
		if got%100_000 == 0 {
			h.sample()
		}
	}
	if _, err := d.Next(); err != io.EOF {
		t.Errorf("Next after EOF: %v, want io.EOF again", err)
	}
	if again, err := d.Header(); again != rep || err != nil {
		t.Errorf("Header after EOF: %p, %v; want the same report and no error", again, err)
	}
	var wantSum int64
	for i := range n {
		wantSum += i%7 + 1
	}
	if got != n || sum != wantSum || eofs != 1 {
		t.Errorf("streamed %d records summing %d (EOF seen %d times), want %d summing %d", got, sum, eofs, n, wantSum)
	}
	if len(d.Warnings()) != 0 {
		t.Errorf("warnings %q", d.Warnings())
	}
	if growth := h.growthMiB(); growth > 32 {
		t.Errorf("heap grew %.1f MiB while streaming, want < 32", growth)
	}
	t.Logf("%d records in %v, heap growth %.1f MiB", got, time.Since(start).Round(time.Millisecond), h.growthMiB())
}

// drain reads every record and returns them with the error that ended the stream.
func drain(d *Decoder) ([]Record, error) {
	var out []Record
	for {
		rec, err := d.Next()
		if err != nil {
			return out, err
		}
		out = append(out, rec)
	}
}

func TestDecoder(t *testing.T) {
	t.Parallel()
	recs := []string{record("192.0.2.1", "1"), record("192.0.2.2", "2"), record("192.0.2.3", "3")}
	full := report(recs...)
	body := strings.SplitN(full, "<feedback>", 2)[1]
	meta := body[:strings.Index(body, "<record>")]
	early := "<feedback>" + recs[0] + recs[1] + meta + recs[2] + "</feedback>"
	tests := []struct {
		name     string
		doc      string
		ips      []string // records Next returns, in order
		sentinel error    // what ends the stream; nil means io.EOF
		msg      string
	}{
		{"plain", full, []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}, nil, ""},
		{"zero records", report(), nil, nil, ""},
		{"records before metadata", early, []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}, nil, ""},
		{"metadata after records", "<feedback>" + strings.Join(recs, "") + meta + "</feedback>",
			[]string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}, nil, ""},
		{"trailing garbage", full + "<feedback/>", []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"},
			ErrMalformed, "trailing data after </feedback>"},
		{"truncated after a record", full[:strings.LastIndex(full, "<record>")],
			[]string{"192.0.2.1", "192.0.2.2"}, ErrMalformed, "unexpected end of input inside <feedback>"},
		{"bad record in the middle", report(recs[0], record("bad", "1"), recs[2]),
			[]string{"192.0.2.1", "192.0.2.3"}, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := NewDecoder(&smallReads{r: strings.NewReader(tc.doc)}, Limits{})
			rep, err := d.Header()
			if err != nil {
				t.Fatalf("Header: %v", err)
			}
			if rep.Policy.Domain != "example.com" || rep.ReportID != "r-1" || rep.Records != nil {
				t.Errorf("header %+v", rep)
			}
			if again, _ := d.Header(); again != rep {
				t.Errorf("second Header call returned a different report")
			}
			got, err := drain(d)
			if tc.sentinel == nil && err != io.EOF {
				t.Errorf("stream ended with %v, want io.EOF", err)
			}
			if tc.sentinel != nil {
				wantErr(t, err, tc.sentinel, tc.msg)
				if _, again := d.Next(); again != err {
					t.Errorf("error not sticky: %v then %v", err, again)
				}
			}
			var ips []string
			for _, r := range got {
				ips = append(ips, r.SourceIP.String())
			}
			if strings.Join(ips, ",") != strings.Join(tc.ips, ",") {
				t.Errorf("records %v, want %v", ips, tc.ips)
			}
		})
	}
}

func TestDecoderWarningsAfterEOF(t *testing.T) {
	t.Parallel()
	d := NewDecoder(strings.NewReader(report(record("192.0.2.1", "1"), record("", "0"))), Limits{})
	rep, err := d.Header()
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Warnings) != 0 {
		t.Errorf("header warnings %q before any record was read", rep.Warnings)
	}
	if _, err := drain(d); err != io.EOF {
		t.Fatal(err)
	}
	if w := d.Warnings(); len(w) != 1 || !strings.Contains(w[0], "record 2") {
		t.Errorf("warnings after EOF %q, want the skipped record 2", w)
	}
}

func TestDecoderErrors(t *testing.T) {
	t.Parallel()
	t.Run("header error is sticky", func(t *testing.T) {
		t.Parallel()
		d := NewDecoder(strings.NewReader("unused"), Limits{})
		_, err := d.Header()
		wantErr(t, err, ErrNotReport)
		if _, err2 := d.Next(); err2 != err {
			t.Errorf("Next after failed Header: %v, want %v", err2, err)
		}
	})
	t.Run("Next without Header", func(t *testing.T) {
		t.Parallel()
		d := NewDecoder(strings.NewReader(report(record("192.0.2.1", "4"))), Limits{})
		rec, err := d.Next()
		if err != nil || rec.Count != 4 {
			t.Fatalf("Next: %+v, %v", rec, err)
		}
	})
	t.Run("read error is passed through, not called malformed", func(t *testing.T) {
		t.Parallel()
		boom := errors.New("connection reset")
		doc := report(record("192.0.2.1", "4"))
		d := NewDecoder(io.MultiReader(strings.NewReader(doc[:len(doc)-30]), errReader{boom}), Limits{})
		_, err := drain(d)
		if !errors.Is(err, boom) || errors.Is(err, ErrMalformed) || errors.Is(err, ErrNotReport) {
			t.Errorf("got %v, want the reader's error unclassified", err)
		}
	})
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
