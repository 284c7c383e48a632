package export

import (
	"archive/zip"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/vigilhq/vigil/pkg/store"
)

// maxSheetRows is what one sheet holds below its header (Excel's limit is 1,048,576 rows);
// longer views continue on sheets named view_2, view_3, …
const maxSheetRows = 1_048_575

// book is a workbook being written sheet by sheet with excelize's StreamWriter, which keeps
// rows in a temporary file past a small buffer, so memory does not grow with the rows.
type book struct {
	f      *excelize.File
	header int // bold header style
	date   int // yyyy-mm-dd hh:mm:ss style
	sheets int
	rows   []*rowWriter // the data sheets' rows, spliced in by finish
}

func newBook() (*book, error) {
	f := excelize.NewFile()
	b := &book{f: f}
	var err error
	if b.header, err = f.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true}, Fill: excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{"DDE4EE"}}}); err != nil {
		return nil, err
	}
	fmtStr := "yyyy-mm-dd hh:mm:ss"
	if b.date, err = f.NewStyle(&excelize.Style{CustomNumFmt: &fmtStr}); err != nil {
		return nil, err
	}
	return b, nil
}

// sheet starts a sheet: the default one is renamed for the first sheet written.
func (b *book) sheet(name string, cols []column) (*excelize.StreamWriter, error) {
	if b.sheets == 0 {
		if err := b.f.SetSheetName("Sheet1", name); err != nil {
			return nil, err
		}
	} else if _, err := b.f.NewSheet(name); err != nil {
		return nil, err
	}
	b.sheets++
	sw, err := b.f.NewStreamWriter(name)
	if err != nil {
		return nil, err
	}
	// Widths and panes must come before the first row (StreamWriter's rule).
	for i, c := range cols {
		if err := sw.SetColWidth(i+1, i+1, c.width); err != nil {
			return nil, err
		}
	}
	if err := sw.SetPanes(&excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"}); err != nil {
		return nil, err
	}
	head := make([]any, len(cols))
	for i, c := range cols {
		head[i] = excelize.Cell{StyleID: b.header, Value: c.name}
	}
	return sw, sw.SetRow("A1", head)
}

// cell types a value: strings stay strings (excelize writes them as shared or inline text,
// never as a formula: nothing here sets Cell.Formula), ids as text, counts and rates as
// numbers, times as date cells.
func (b *book) cell(k kind, v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case *float64:
		if x == nil {
			return nil
		}
		return *x
	case time.Time:
		return excelize.Cell{StyleID: b.date, Value: x.UTC()}
	case string:
		return x
	}
	return v
}

// writeView writes a view on one or more sheets and returns its rows. excelize writes each
// sheet's widths, panes and header, and a marker row that finish replaces with the rows
// encoded by a rowWriter (see xlsxrows.go).
func (b *book) writeView(ctx context.Context, v view, f store.Filter) (int64, error) {
	part, n, inSheet := 1, int64(0), 0
	rw, err := b.dataSheet(v.name, v.cols)
	if err != nil {
		return 0, err
	}
	err = v.each(ctx, f, func(vals []any) error {
		if inSheet == maxSheetRows {
			if err := rw.flush(); err != nil {
				return err
			}
			part++
			var err error
			if rw, err = b.dataSheet(fmt.Sprintf("%s_%d", v.name, part), v.cols); err != nil {
				return err
			}
			inSheet = 0
		}
		rw.begin()
		for i := range v.cols {
			rw.value(i, b.date, vals[i])
		}
		inSheet++
		n++
		return rw.end()
	})
	if err != nil {
		return n, err
	}
	return n, rw.flush()
}

// dataSheet starts a sheet whose rows a rowWriter encodes: excelize writes its header and the
// marker row in row 2.
func (b *book) dataSheet(name string, cols []column) (*rowWriter, error) {
	rw, err := newRowWriter(len(cols))
	if err != nil {
		return nil, err
	}
	b.rows = append(b.rows, rw)
	sw, err := b.sheet(name, cols)
	if err != nil {
		return nil, err
	}
	if err := sw.SetRow("A2", []any{rw.marker}); err != nil {
		return nil, err
	}
	return rw, sw.Flush()
}

// writeKV writes a two-column sheet (the workbook's summary).
func (b *book) writeKV(name string, kv [][2]any) error {
	sw, err := b.sheet(name, []column{{"field", kText, 28}, {"value", kText, 40}})
	if err != nil {
		return err
	}
	for i, p := range kv {
		cell, _ := excelize.CoordinatesToCellName(1, i+2)
		if err := sw.SetRow(cell, []any{p[0], b.cell(kText, p[1])}); err != nil {
			return err
		}
	}
	return sw.Flush()
}

// finish writes the workbook's zip straight to w. excelize's WriteTo assembles the whole
// archive in a bytes.Buffer first (744 MB of memory for 1M records, then written in one go);
// its ZipWriter hook hands us the buffer to wrap, and we wrap w instead, so the sheets are
// compressed from StreamWriter's temporary files to w as they are read and the buffer stays
// empty. Deflate runs at BestSpeed: the default level took most of the render's CPU for a
// file about a fifth larger. (For an entry over 4 GiB excelize would patch the version field
// of its local header in that buffer; readers rely on the central directory, and a sheet
// holds at most maxSheetRows rows, far below that size.)
func (b *book) finish(w io.Writer) error {
	defer b.close()
	var zw *spliceZip
	b.f.SetZipWriter(func(io.Writer) excelize.ZipWriter {
		zw = &spliceZip{zw: zip.NewWriter(w), rows: b.rows}
		zw.zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
			return flate.NewWriter(out, flate.BestSpeed)
		})
		return zw
	})
	buf, err := b.f.WriteToBuffer()
	if err != nil {
		return fmt.Errorf("export: write workbook: %w", err)
	}
	if zw == nil || buf.Len() != 0 {
		return errors.New("export: excelize did not write through the zip writer given")
	}
	return nil
}

// close releases the workbook and the rows' temporary files.
func (b *book) close() {
	b.f.Close()
	for _, rw := range b.rows {
		rw.close()
	}
}

// writeXLSX writes one view as a workbook of its own.
func writeXLSX(ctx context.Context, w io.Writer, v view, f store.Filter) (int64, error) {
	b, err := newBook()
	if err != nil {
		return 0, err
	}
	n, err := b.writeView(ctx, v, f)
	if err != nil {
		b.close()
		return n, err
	}
	return n, b.finish(w)
}
