package dmarc

import "io"

// Parse reads a whole report including records, enforcing lim (zero fields: DefaultLimits).
func Parse(r io.Reader, lim Limits) (*Report, error) {
	return parseAll(newParser(newSource(r), lim))
}

// ParseBytes is Parse over a byte slice; it reads b in place, without copying or retaining it.
func ParseBytes(b []byte, lim Limits) (*Report, error) {
	return parseAll(newParser(newSourceBytes(b), lim))
}

func parseAll(p *parser) (*Report, error) {
	d := &Decoder{p: p}
	rep, err := d.Header()
	if err != nil {
		return nil, err
	}
	for {
		rec, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		rep.Records = append(rep.Records, rec)
	}
	rep.Warnings = d.Warnings()
	return rep, nil
}

// Decoder streams a report: Header returns the report with metadata and policy filled once
// they are read (it stops at the first <record> after them); Next returns records one by one
// and io.EOF after </feedback>, having checked there is no trailing garbage. Memory stays flat
// for a report with millions of records, unless the records come before the metadata, in
// which case Header must buffer them. A Decoder is not safe for concurrent use.
type Decoder struct {
	p      *parser
	rep    *Report
	hdrErr error // what Header returned, returned again by every later call
	err    error // sticky: what ended Next (io.EOF included)
	headed bool
}

// NewDecoder returns a Decoder reading r with the limits lim (zero fields: DefaultLimits).
func NewDecoder(r io.Reader, lim Limits) *Decoder {
	return &Decoder{p: newParser(newSource(r), lim)}
}

// Header reads up to the first record that follows the metadata and policy, and returns the
// report without records. Calling it again returns the same result.
func (d *Decoder) Header() (*Report, error) {
	if !d.headed {
		d.headed = true
		d.rep, d.hdrErr = d.p.header()
		if d.hdrErr != nil {
			d.rep = nil
		}
	}
	return d.rep, d.hdrErr
}

// Next returns the next valid record. Records that are skipped (see the package comment) only
// show up in Warnings. After the last record Next returns io.EOF, and keeps returning it.
func (d *Decoder) Next() (Record, error) {
	if _, err := d.Header(); err != nil {
		return Record{}, err
	}
	if d.err != nil {
		return Record{}, d.err
	}
	rec, err := d.p.next()
	if err != nil {
		d.err = err
	}
	return rec, err
}

// Warnings returns the warnings accumulated so far; skipped records are only known once Next
// has passed them, so read it after io.EOF.
func (d *Decoder) Warnings() []string { return d.p.warnings() }
