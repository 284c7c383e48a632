package unwrap

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Format is what a payload's bytes look like; callers route on it.
type Format string

const (
	FormatDMARC   Format = "dmarc"    // XML whose root (or first element under a stray wrapper) is <feedback>
	FormatXML     Format = "xml"      // other XML: callers reject it as "not a DMARC report"
	FormatTLSRPT  Format = "smtp_tls" // JSON with RFC 8460 keys ("organization-name", "policies")
	FormatJSON    Format = "json"     // other JSON
	FormatFailure Format = "failure"  // a whole DMARC failure report message (RFC 6591 ARF or plain text)
	FormatUnknown Format = "unknown"  // none of the above; the caller decides
)

// Part is one payload found. Body streams the decoded bytes and is only valid during the
// callback; reading past a limit returns an error wrapping ErrLimit.
type Part struct {
	Path   string // where it was found, e.g. "message/part 2 (report.zip)/google.com!x!1!2.xml"; a label, never a file system path
	Name   string // sanitised file name from the innermost layer that has one (zip entry, MIME filename, gzip header), else ""
	Format Format
	Body   io.Reader
}

// Limits bounds the work and memory spent on one input; see the package comment for what
// each limit covers. A zero or negative field takes its DefaultLimits value.
type Limits struct {
	MaxInputBytes        int64   // size of the raw input
	MaxDecompressedBytes int64   // per part, after every layer
	MaxTotalBytes        int64   // all layers of one input together
	MaxRatio             float64 // decompressed/input size, checked only above RatioFloorBytes
	RatioFloorBytes      int64
	MaxEntries           int // zip entries per archive and MIME parts per message
	MaxDepth             int // container nesting (mail in mail in zip in gz...)
	MaxMessageDepth      int // nested e-mails
}

// DefaultLimits are sized for DMARC reports: the largest real ones are a few MiB compressed.
var DefaultLimits = Limits{
	MaxInputBytes:        50 << 20,
	MaxDecompressedBytes: 256 << 20,
	MaxTotalBytes:        512 << 20,
	MaxRatio:             200,
	RatioFloorBytes:      10 << 20,
	MaxEntries:           1000,
	MaxDepth:             5,
	MaxMessageDepth:      3,
}

// Sentinel errors; every error from Walk wraps one of them (or the callback's own error) and
// names the part it concerns.
var (
	ErrLimit        = errors.New("limit exceeded")
	ErrUnrecognised = errors.New("unrecognised format")
	ErrCorrupt      = errors.New("corrupt container")
	ErrEmpty        = errors.New("empty input")
	ErrNoReport     = errors.New("no report found")
)

// sniffLen is how much of a layer is looked at to recognise it: enough for an XML prolog and a
// stray wrapper element, or the first header lines of an e-mail.
const (
	sniffLen = 16 << 10
	bufLen   = 32 << 10
)

// Walk calls fn for every payload found in data. It returns nil only when every part was
// handed to fn without error and every layer was intact to its end (a bad gzip CRC only shows
// at EOF, so Walk drains what fn leaves unread). An error from fn stops the walk and is
// returned wrapped with the part's path. Parts of FormatUnknown are handed to fn too, except
// human mail text. Walk returns ErrEmpty for empty input, ErrUnrecognised when the input itself
// is no known container or payload, and ErrNoReport when containers held nothing to hand out.
func Walk(data []byte, lim Limits, fn func(Part) error) error {
	w := &walker{lim: lim.withDefaults(), fn: fn, inSize: int64(len(data)), reason: "the input holds no part"}
	if int64(len(data)) > w.lim.MaxInputBytes {
		return fmt.Errorf("input: %w: input is %s, limit %s", ErrLimit, size(int64(len(data))), size(w.lim.MaxInputBytes))
	}
	if len(data) == 0 {
		return fmt.Errorf("input is 0 bytes: %w", ErrEmpty)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return fmt.Errorf("input is %d bytes of white space: %w", len(data), ErrEmpty)
	}
	k, f := sniff(data[:min(len(data), sniffLen)])
	if k == kindPayload && f == FormatUnknown {
		return fmt.Errorf("input: %w: not gzip, zip, zlib, e-mail, XML or JSON", ErrUnrecognised)
	}
	if err := w.open(node{data: data}, k, f); err != nil {
		return err
	}
	if w.parts == 0 {
		return fmt.Errorf("%w: %s", ErrNoReport, w.reason)
	}
	return nil
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	return Limits{
		MaxInputBytes:        positive(l.MaxInputBytes, d.MaxInputBytes),
		MaxDecompressedBytes: positive(l.MaxDecompressedBytes, d.MaxDecompressedBytes),
		MaxTotalBytes:        positive(l.MaxTotalBytes, d.MaxTotalBytes),
		MaxRatio:             positive(l.MaxRatio, d.MaxRatio),
		RatioFloorBytes:      positive(l.RatioFloorBytes, d.RatioFloorBytes),
		MaxEntries:           positive(l.MaxEntries, d.MaxEntries),
		MaxDepth:             positive(l.MaxDepth, d.MaxDepth),
		MaxMessageDepth:      positive(l.MaxMessageDepth, d.MaxMessageDepth),
	}
}

func positive[T int | int64 | float64](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// walker holds the state shared by all layers of one input.
type walker struct {
	lim    Limits
	fn     func(Part) error
	inSize int64  // denominator of every ratio check
	total  int64  // output of all decoding layers so far
	parts  int    // parts handed to fn
	reason string // why nothing was found, from the outermost container that found nothing
}

// node is one layer's content, held either whole in memory (data, never copied) or as a stream.
type node struct {
	data     []byte
	r        *bufio.Reader
	meter    *capped // enforces the limits on r; nil for in-memory content
	path     string
	name     string
	depth    int  // containers opened around this node
	msgDepth int  // e-mails around this node
	prose    bool // declared as human mail text: dropped unless it holds a report or a container
}

func (n *node) peek(k int) []byte {
	if n.data != nil || n.r == nil {
		return n.data[:min(len(n.data), k)]
	}
	b, _ := n.r.Peek(k) // a read error shows again, and is reported, when the body is read
	return b
}

func (n *node) reader() io.Reader {
	if n.r == nil {
		return bytes.NewReader(n.data)
	}
	return n.r
}

// bytes returns the whole content, buffering a stream of at most max bytes.
func (n *node) bytes(max int64, what string) ([]byte, error) {
	if n.r == nil {
		return n.data, nil
	}
	b, err := io.ReadAll(io.LimitReader(n.r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: %w: %s inside a stream is larger than %s", label(n.path), ErrLimit, what, size(max))
	}
	return b, nil
}

// stream wraps r, one decoding layer's output, in the limits and a sniffing buffer. The buffer
// comes from a pool, since most parts are a few KiB; release returns it.
func (w *walker) stream(r io.Reader, n node, what string) node {
	c := &capped{r: r, w: w, path: n.path, what: what}
	br := bufPool.Get().(*bufio.Reader)
	br.Reset(c)
	n.data, n.r, n.meter = nil, br, c
	return n
}

var bufPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bufLen) }}

// release returns a stream's buffer once nothing reads it any more (Part.Body is only valid
// during the callback).
func release(n node) {
	if n.r != nil {
		n.r.Reset(nil)
		bufPool.Put(n.r)
	}
}

// dispatch recognises a node by its first bytes and opens it or hands it to fn.
func (w *walker) dispatch(n node) error {
	k, f := sniff(n.peek(sniffLen))
	if n.prose && !k.container() && f != FormatDMARC && f != FormatTLSRPT {
		return nil
	}
	return w.open(n, k, f)
}

// open hands a recognised node to its container's walk, or to fn.
func (w *walker) open(n node, k kind, f Format) error {
	switch k {
	case kindGzip:
		return w.gunzip(n)
	case kindZlib:
		return w.inflate(n)
	case kindZip:
		return w.unzip(n)
	case kindMail:
		return w.mail(n)
	}
	return w.emit(n, f)
}

// emit hands one payload to fn, then reads what fn left so that a bad checksum or a truncated
// stream still fails the walk.
func (w *walker) emit(n node, f Format) error {
	var body io.Reader = n.r
	meter := n.meter
	if n.r == nil {
		meter = &capped{r: bytes.NewReader(n.data), w: w, path: n.path, what: "input"}
		body = meter
	}
	w.parts++
	handed := &partBody{r: body}
	defer handed.close()
	err := w.fn(Part{Path: label(n.path), Name: n.name, Format: f, Body: handed})
	if meter.err != nil {
		if err != nil && errors.Is(err, meter.err) {
			return err
		}
		return meter.err
	}
	if err != nil {
		return fmt.Errorf("%s: %w", label(n.path), err)
	}
	_, err = io.Copy(io.Discard, body)
	return err
}

// partBody is the Body handed to fn. It is cut off when the callback returns: the buffer
// behind it goes back to a pool shared by concurrent walks, and a Body kept past the callback
// must not read another input's bytes.
type partBody struct{ r io.Reader }

var errBodyDone = errors.New("unwrap: Part.Body read after the callback returned")

func (b *partBody) Read(p []byte) (int, error) {
	if b.r == nil {
		return 0, errBodyDone
	}
	return b.r.Read(p)
}

func (b *partBody) close() { b.r = nil }

// deeper refuses to open one more container around n.
func (w *walker) deeper(n node) error {
	if n.depth >= w.lim.MaxDepth {
		return fmt.Errorf("%s: %w: nesting deeper than %d containers", label(n.path), ErrLimit, w.lim.MaxDepth)
	}
	return nil
}

func (w *walker) noReport(reason string) { w.reason = reason }

// drain reads the rest of a layer whose content has been handled, so that its checksum is
// verified; the limits bound the work.
func drain(n node) error {
	if n.r == nil {
		return nil
	}
	_, err := io.Copy(io.Discard, n.r)
	return err
}

func join(path, seg string) string {
	if path == "" {
		return seg
	}
	return path + "/" + seg
}

// label names the input itself when no container has named anything yet.
func label(path string) string {
	if path == "" {
		return "input"
	}
	return path
}

// corrupt wraps a decoder's error; errors that are already ours come from a layer below and
// already name their part.
func corrupt(path, what string, err error) error {
	if errors.Is(err, ErrLimit) || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrUnrecognised) {
		return err
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%s: %w: %s: %w", label(path), ErrCorrupt, what, err)
}
