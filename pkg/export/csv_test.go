package export

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"
	"time"
)

// TestCSVWriterRoundTrip: every field the writer quotes (or not) reads back with encoding/csv
// as the value, neutralised when asked; rows end in CRLF; numbers and times are plain text.
func TestCSVWriterRoundTrip(t *testing.T) {
	t.Parallel()
	fields := []string{"", "plain", "with,comma", `with "quotes"`, `"`, "line\nbreak", "crlf\r\nin", "\rlone cr", " lead space",
		"\ttab", `\.`, "=1+2", "+1", "-1", "@a", "\x00nul", "'=already", "ünïcödé, ☃", strings.Repeat("x,", 40000)}
	for _, neutralise := range []bool{false, true} {
		var out bytes.Buffer
		w := newCSVWriter(&out)
		for _, f := range fields {
			w.str(f, neutralise)
			w.int(-42)
			w.time(time.Date(2024, 6, 1, 12, 0, 0, 5000, time.FixedZone("x", 3600)))
			w.float(0.25)
			w.null()
			if err := w.end(); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.flush(); err != nil {
			t.Fatal(err)
		}
		if !bytes.HasSuffix(out.Bytes(), []byte("\r\n")) {
			t.Fatalf("rows do not end in CRLF")
		}
		rows, err := csv.NewReader(&out).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != len(fields) {
			t.Fatalf("neutralise=%v: %d rows read back, want %d", neutralise, len(rows), len(fields))
		}
		for i, f := range fields {
			want := f
			if neutralise {
				want = Neutralise(f)
			}
			// RFC 4180 readers take a CRLF inside quotes as a line break.
			want = strings.ReplaceAll(want, "\r\n", "\n")
			got := rows[i]
			if got[0] != want || got[1] != "-42" || got[2] != "2024-06-01T11:00:00.000005Z" || got[3] != "0.25" || got[4] != "" {
				t.Errorf("neutralise=%v field %q: read back %q", neutralise, f, got)
			}
		}
	}
}
