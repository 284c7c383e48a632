package export

import (
	"bufio"
	"context"
	"encoding/csv"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/vigilhq/vigil/pkg/store"
)

// Neutralise makes a text cell safe to open in a spreadsheet: one starting with = + - @, a
// tab, a carriage return or NUL would be read as a formula (OWASP "CSV injection";
// SECURITY-CASES D.33), so it gets a leading apostrophe. Numeric columns never pass through
// here, so -1 stays a number.
func Neutralise(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r', 0:
		return "'" + s
	}
	return s
}

// cellText is a value as CSV text: the JSON value's text, empty for null.
func cellText(k kind, v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		if k == kText {
			return Neutralise(x)
		}
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case *float64:
		if x == nil {
			return ""
		}
		return strconv.FormatFloat(*x, 'f', -1, 64)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	}
	return ""
}

// writeCSV streams a view as RFC 4180 CSV (CRLF line ends, UTF-8, header row of JSON field
// names): each row goes out as it is read, through a 64 KiB buffer, so memory stays flat
// whatever the row count. It returns the rows written.
func writeCSV(ctx context.Context, w io.Writer, v view, f store.Filter) (int64, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := csv.NewWriter(bw)
	cw.UseCRLF = true
	head := make([]string, len(v.cols))
	for i, c := range v.cols {
		head[i] = c.name
	}
	if err := cw.Write(head); err != nil {
		return 0, err
	}
	rec := make([]string, len(v.cols))
	var n int64
	err := v.each(ctx, f, func(row []any) error {
		for i, c := range v.cols {
			rec[i] = cellText(c.kind, row[i])
		}
		n++
		return cw.Write(rec)
	})
	if err != nil {
		return n, err
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return n, err
	}
	return n, bw.Flush()
}

// filterSummary says in words which filters made a file (PDF header, e-mail).
func filterSummary(f store.Filter) string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("domain", f.Domain)
	add("org_name", f.OrgName)
	if !f.Start.IsZero() {
		add("start", f.Start.UTC().Format("2006-01-02"))
	}
	if !f.End.IsZero() {
		add("end", f.End.UTC().Add(-time.Nanosecond).Format("2006-01-02"))
	}
	if f.SourceIP.IsValid() {
		add("source_ip", f.SourceIP.String())
	}
	if f.SourceRange.IsValid() {
		add("source_ip_range", f.SourceRange.String())
	}
	add("dkim_result", f.DKIM)
	add("spf_result", f.SPF)
	add("disposition", f.Disposition)
	if len(parts) == 0 {
		return "all domains, all time"
	}
	return strings.Join(parts, ", ")
}
