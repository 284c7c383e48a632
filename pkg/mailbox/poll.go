// Package mailbox picks DMARC reports up from IMAP mailboxes by itself: through years of
// backlog, on flaky servers, without ever losing or doubling a report.
//
// # The contract with the pipeline
//
// A message is handed to a Sink, which stores it durably (ingest.Service.Accept) and answers
// where it belongs. Only after the sink has returned for every message of a batch are they
// acknowledged on the server: moved to the archive or invalid folder, or flagged \Seen.
// Bodies are fetched with BODY.PEEK[], which never sets \Seen, so a message the sink could not
// store (the database is down) stays exactly as it was and is read again at the next poll.
// A crash between the sink's save and the move means the next poll reads the message again;
// the pipeline knows the bytes by their SHA-256 and answers "duplicate", and the message is
// then moved normally. Saving twice is harmless; moving before saving (parsedmarc #242, #367)
// is what loses reports, and cannot happen here.
//
// # Which messages are read
//
// UID SEARCH lists every message above State.LastUID (and, under PolicySeen, unseen), with no
// count cap, and they are processed in UID order, BatchSize at a time: one FETCH of sizes,
// one FETCH of bodies streamed one message at a time into a reused buffer, then the
// acknowledgement. Memory stays flat however long the backlog. Messages flagged \Deleted are
// skipped: another client is deleting them, and taking them away from its EXPUNGE would be
// wrong; on a server without UIDPLUS it is also how Vigil marks what it has put away.
//
// # Acknowledgement on servers without MOVE or UIDPLUS
//
// With MOVE: UID MOVE. Without MOVE but with UIDPLUS: UID COPY, UID STORE +FLAGS.SILENT
// (\Deleted), UID EXPUNGE of exactly those UIDs. Without either, a plain EXPUNGE would also
// remove every message another client has flagged \Deleted, so none is sent: the messages are
// copied and flagged \Seen \Deleted, and stay in the folder until some client expunges it
// (most mail programs do when they close the folder). They are not read again: LastUID has
// passed them, and the search skips \Deleted mail. A crash between the COPY and the STORE
// leaves a second copy in the archive folder at worst, never a lost report.
//
// # Timeouts
//
// Every network operation has a deadline (Config.OpTimeout): connecting, the TLS handshake,
// every command, and every wait for the server's next bytes while a response or a literal is
// being read. A connection that dies in the middle of a message ends the poll with an error
// after at most one timeout, never a hang (go-imap #650), and nothing of the unfinished batch
// is acknowledged.
package mailbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Message is one e-mail handed to the sink.
type Message struct {
	UID          uint32
	Size         int64     // RFC822.SIZE as the server reported it
	Data         []byte    // the whole message; valid only until the sink returns (the buffer is reused)
	InternalDate time.Time // when the server received it
	MessageID    string    // the Message-ID header without <>; "" when absent
}

// Disposition is the sink's verdict on a message it has stored.
type Disposition int

const (
	// Archive: stored; the message goes to the archive folder.
	Archive Disposition = iota + 1
	// Duplicate: these bytes were stored before (a re-read after a crash or a failed
	// acknowledgement, or a resend); the message goes to the archive folder.
	Duplicate
	// Invalid: stored, but it holds no report (or the pipeline refused it); the message goes
	// to the invalid folder, so a person can look at it and it is never read again.
	Invalid
)

func (d Disposition) String() string {
	switch d {
	case Archive:
		return "archive"
	case Duplicate:
		return "duplicate"
	case Invalid:
		return "invalid"
	}
	return fmt.Sprintf("Disposition(%d)", int(d))
}

// Sink stores one message durably before it returns a Disposition. An error means the
// infrastructure failed (the database is down): the poll stops, nothing of that message, nor
// of any message of its batch, is moved or flagged, and the next poll reads them again.
type Sink func(ctx context.Context, m Message) (Disposition, error)

// State is what the caller remembers per mailbox between polls.
//
// LastUID is the highest UID fully handled: every message at or below it was acknowledged (or
// is gone). UIDs are only meaningful within one UIDVALIDITY: when the server's differs from
// UIDValidity (the folder was re-created or the server rebuilt its index), LastUID restarts at
// 0 and the whole folder is read again. That makes no duplicates, because the pipeline dedupes
// by content hash (the same bytes are one file) and by report identity (reporter, report_id,
// domain, date range).
type State struct {
	UIDValidity uint32 `json:"uid_validity"`
	LastUID     uint32 `json:"last_uid"`
}

// Result tells what one poll did. Its State is the one to remember, also when Poll returns an
// error: it only counts what was acknowledged before the error.
type Result struct {
	State      State
	Seen       int // messages found that were not handled yet
	Saved      int // sink: Archive
	Duplicates int // sink: Duplicate
	Invalid    int // sink: Invalid
	TooLarge   int // over MaxMessageBytes, filed as invalid without being downloaded
	Vanished   int // expunged by another client between SEARCH and FETCH
	Retry      int // left untouched, to be read again at the next poll (see Problems)
	Problems   []Problem
	Duration   time.Duration
}

// Problem is one message the poller could not hand to the sink.
type Problem struct {
	UID       uint32
	MessageID string
	Size      int64
	Reason    string
	Invalid   bool // filed in the invalid folder; false: left in place and tried again next poll
}

// maxProblems bounds Result.Problems; the counters stay exact.
const maxProblems = 100

// Poller polls mailboxes. The zero value is ready to use; one Poller may serve several
// mailboxes and concurrent polls (of different mailboxes: one State must not be polled twice
// at once).
type Poller struct {
	Log *slog.Logger // nil: no logging
	// Progress, when set, is called before the first batch and after every batch with the
	// messages handled so far and the number found, for long backlogs.
	Progress func(done, total int)
}

// Poll reads every message of cfg.Folder not handled yet (per state), hands each to sink, and
// acknowledges them batch by batch. See the package comment for the guarantees.
func (p *Poller) Poll(ctx context.Context, cfg Config, state State, sink Sink) (Result, error) {
	start := time.Now()
	res := Result{State: state}
	if sink == nil {
		return res, errors.New("mailbox: nil sink")
	}
	if err := cfg.Validate(); err != nil {
		return res, err
	}
	cfg = cfg.WithDefaults()
	log := p.logger().With("mailbox", cfg.Username+"@"+cfg.Host, "folder", cfg.Folder)
	s, err := dial(ctx, cfg)
	if err != nil {
		res.Duration = time.Since(start)
		return res, fmt.Errorf("mailbox %s@%s: %w", cfg.Username, cfg.Host, err)
	}
	r := &run{p: p, cfg: cfg, s: s, sink: sink, res: &res, log: log}
	err = r.poll(ctx)
	if err != nil {
		s.abort()
		err = fmt.Errorf("mailbox %s@%s: %w", cfg.Username, cfg.Host, s.explain(err))
	} else {
		s.logout()
	}
	res.Duration = time.Since(start)
	lvl := slog.LevelInfo
	if err != nil {
		lvl = slog.LevelWarn
	}
	log.Log(ctx, lvl, "mailbox polled", "seen", res.Seen, "saved", res.Saved, "duplicates", res.Duplicates,
		"invalid", res.Invalid, "too_large", res.TooLarge, "retry", res.Retry, "last_uid", res.State.LastUID,
		"duration", res.Duration, "err", err)
	return res, err
}

func (p *Poller) logger() *slog.Logger {
	if p.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Log
}

// run is one poll of one mailbox.
type run struct {
	p    *Poller
	cfg  Config
	s    *session
	sink Sink
	res  *Result
	log  *slog.Logger

	blocked bool   // a message was left for the next poll: LastUID stays below it
	buf     []byte // reused body buffer
}

func (r *run) poll(ctx context.Context) error {
	if r.cfg.Policy == PolicyMove {
		for _, f := range []string{r.cfg.ArchiveFolder, r.cfg.InvalidFolder} {
			if err := r.ensureFolder(f); err != nil {
				return err
			}
		}
	}
	sel, err := r.s.c.Select(r.cfg.Folder, nil).Wait()
	if err != nil {
		return fmt.Errorf("SELECT %q: %w", r.cfg.Folder, err)
	}
	if sel.UIDValidity != r.res.State.UIDValidity {
		if r.res.State.UIDValidity != 0 {
			r.log.Warn("UIDVALIDITY changed: reading the whole folder again (the pipeline drops what it already has)",
				"old", r.res.State.UIDValidity, "new", sel.UIDValidity, "old_last_uid", r.res.State.LastUID)
		}
		r.res.State = State{UIDValidity: sel.UIDValidity}
	}
	last := r.res.State.LastUID
	if sel.NumMessages == 0 || last == math.MaxUint32 || (sel.UIDNext != 0 && uint32(sel.UIDNext) <= last+1) {
		return nil // nothing above LastUID: one round trip saved on every idle poll
	}
	uids, err := r.search(last)
	if err != nil {
		return err
	}
	r.res.Seen = len(uids)
	r.progress(0, len(uids))
	for i := 0; i < len(uids); i += r.cfg.BatchSize {
		batch := uids[i:min(i+r.cfg.BatchSize, len(uids))]
		if err := r.batch(ctx, batch); err != nil {
			return err
		}
		r.progress(i+len(batch), len(uids))
	}
	return nil
}

// ensureFolder creates a missing archive or invalid folder.
func (r *run) ensureFolder(name string) error {
	exists := func() (bool, error) {
		l, err := r.s.c.List("", name, nil).Collect()
		return len(l) > 0, err
	}
	ok, err := exists()
	if err != nil {
		return fmt.Errorf("LIST %q: %w", name, err)
	}
	if ok {
		return nil
	}
	if err := r.s.c.Create(name, nil).Wait(); err != nil {
		if ok, _ := exists(); ok { // another client made it meanwhile
			return nil
		}
		return fmt.Errorf("CREATE %q: %w", name, err)
	}
	r.log.Info("created folder", "name", name)
	return nil
}

// search lists the UIDs to read, ascending, skipping \Deleted mail (see the package comment).
// "n:*" always matches the highest UID in the
// folder, even when it is below n (RFC 9051 section 6.4.4), so the result is filtered.
func (r *run) search(last uint32) ([]uint32, error) {
	crit := &imap.SearchCriteria{UID: []imap.UIDSet{{{Start: imap.UID(last + 1), Stop: 0}}}}
	crit.NotFlag = append(crit.NotFlag, imap.FlagDeleted)
	if r.cfg.Policy == PolicySeen {
		crit.NotFlag = append(crit.NotFlag, imap.FlagSeen)
	}
	var opts *imap.SearchOptions
	if r.s.caps.Has(imap.CapESearch) {
		opts = &imap.SearchOptions{ReturnAll: true} // ranges instead of one number per message
	}
	data, err := r.s.c.UIDSearch(crit, opts).Wait()
	if err != nil {
		return nil, fmt.Errorf("UID SEARCH: %w", err)
	}
	var uids []uint32
	for _, u := range data.AllUIDs() {
		if uint32(u) > last {
			uids = append(uids, uint32(u))
		}
	}
	slices.Sort(uids)
	return slices.Compact(uids), nil
}

func (r *run) progress(done, total int) {
	if r.p.Progress == nil {
		return
	}
	r.s.dog.pause() // the callback may be slow; the server owes nothing meanwhile
	defer r.s.dog.resume()
	r.p.Progress(done, total)
}

// meta is what is known of a message before its body is fetched.
type meta struct {
	size int64
	date time.Time
}

// batch reads, hands over and acknowledges one batch of UIDs.
func (r *run) batch(ctx context.Context, uids []uint32) error {
	if err := cancelled(ctx); err != nil {
		return err
	}
	metas, err := r.metas(uids)
	if err != nil {
		return err
	}
	var ack acks
	handled := make(map[uint32]bool, len(uids))
	var bodies imap.UIDSet
	for _, u := range uids {
		m, ok := metas[u]
		switch {
		case !ok:
			r.res.Vanished++
			handled[u] = true
		case m.size > r.cfg.MaxMessageBytes:
			r.res.TooLarge++
			reason := fmt.Sprintf("message is %d bytes, over the %d-byte limit (max_message_bytes): filed as invalid without downloading it", m.size, r.cfg.MaxMessageBytes)
			r.problem(Problem{UID: u, Size: m.size, Reason: reason, Invalid: true})
			ack.invalid = append(ack.invalid, u)
		default:
			bodies.AddNum(imap.UID(u))
		}
	}
	if len(bodies) > 0 {
		if err := r.fetchBodies(ctx, bodies, metas, &ack); err != nil {
			return err
		}
	}
	if err := cancelled(ctx); err != nil {
		return err
	}
	if err := r.acknowledge(ack.archive, r.cfg.ArchiveFolder); err != nil {
		return err
	}
	if err := r.acknowledge(ack.invalid, r.cfg.InvalidFolder); err != nil {
		return err
	}
	for _, u := range append(ack.archive, ack.invalid...) {
		handled[u] = true
	}
	for _, u := range uids {
		if !handled[u] {
			r.blocked = true
		}
		if !r.blocked {
			r.res.State.LastUID = u
		}
	}
	return nil
}

type acks struct{ archive, invalid []uint32 }

func (r *run) metas(uids []uint32) (map[uint32]meta, error) {
	set := imap.UIDSetNum(toUIDs(uids)...)
	bufs, err := r.s.c.Fetch(set, &imap.FetchOptions{UID: true, RFC822Size: true, InternalDate: true}).Collect()
	if err != nil {
		return nil, fmt.Errorf("UID FETCH %s (RFC822.SIZE): %w", set, err)
	}
	out := make(map[uint32]meta, len(bufs))
	for _, b := range bufs {
		if b.UID != 0 {
			out[uint32(b.UID)] = meta{size: b.RFC822Size, date: b.InternalDate}
		}
	}
	return out, nil
}

func toUIDs(u []uint32) []imap.UID {
	out := make([]imap.UID, len(u))
	for i, v := range u {
		out[i] = imap.UID(v)
	}
	return out
}

// fetchBodies streams the bodies of one batch, one message at a time, to the sink.
//
// On an error the connection is killed first. go-imap's reader goroutine then fails on its
// next read and ends, unless it waits for this side to finish a literal: after a sink error it
// may be parked on the next message's literal, so the command is drained (every read now fails
// at once). After a failed literal read it is not drained: go-imap lets its reader go on as soon
// as a literal read fails, and reading the rest of that literal here would race with it on the
// shared buffer.
func (r *run) fetchBodies(ctx context.Context, set imap.UIDSet, metas map[uint32]meta, ack *acks) (err error) {
	cmd := r.s.c.Fetch(set, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	literalFailed := false
	defer func() {
		if err != nil {
			r.s.dog.kill(errAborted)
			if !literalFailed {
				cmd.Close()
			}
			return
		}
		if cerr := cmd.Close(); cerr != nil {
			err = fmt.Errorf("UID FETCH %s (BODY.PEEK[]): %w", set, cerr)
		}
	}()
	answered := make(map[uint32]bool, len(metas))
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		var uid uint32
		var body []byte
		var problem string
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				uid = uint32(it.UID)
			case imapclient.FetchItemDataBodySection:
				// Read here: the next msg.Next() discards what is left of the literal.
				if body, problem, err = r.readBody(it.Literal); err != nil {
					literalFailed = true
					return fmt.Errorf("UID FETCH %s: reading the body of UID %d: %w", set, uid, err)
				}
			}
		}
		m, ok := metas[uid]
		if uid == 0 || !ok || answered[uid] {
			continue // not ours (go-imap routes by UID; be safe anyway)
		}
		answered[uid] = true
		if problem == "" && body == nil {
			problem = "the server sent no body (BODY[] missing from its answer)"
		}
		if problem == tooLarge {
			r.res.TooLarge++
			r.problem(Problem{UID: uid, Size: m.size, Invalid: true, Reason: fmt.Sprintf(
				"message body is larger than the %d-byte limit (max_message_bytes) although RFC822.SIZE said %d: filed as invalid", r.cfg.MaxMessageBytes, m.size)})
			ack.invalid = append(ack.invalid, uid)
			continue
		}
		if problem != "" {
			r.res.Retry++
			r.problem(Problem{UID: uid, Size: m.size, Reason: problem + "; left in place to be read again"})
			continue
		}
		d, err := r.handOver(ctx, Message{UID: uid, Size: m.size, Data: body, InternalDate: m.date, MessageID: messageID(body)})
		if err != nil {
			return err
		}
		switch d {
		case Archive:
			r.res.Saved++
			ack.archive = append(ack.archive, uid)
		case Duplicate:
			r.res.Duplicates++
			ack.archive = append(ack.archive, uid)
		case Invalid:
			r.res.Invalid++
			ack.invalid = append(ack.invalid, uid)
		default:
			return fmt.Errorf("sink: UID %d: unknown disposition %v", uid, d)
		}
	}
	for _, u := range toUint32s(set) {
		if !answered[u] {
			r.res.Retry++
			r.problem(Problem{UID: u, Size: metas[u].size, Reason: "the server returned no body for it (expunged meanwhile?); left in place to be read again"})
		}
	}
	return nil
}

func toUint32s(set imap.UIDSet) []uint32 {
	nums, _ := set.Nums() // a static set: always ok
	out := make([]uint32, len(nums))
	for i, u := range nums {
		out[i] = uint32(u)
	}
	return out
}

const tooLarge = "too large"

// readBody copies one literal into the reused buffer. The literal's size is announced before
// its bytes, so a body over the limit is refused without being held in memory. An empty body
// (iCloud sends those for some messages) is a problem to retry, never an empty file.
func (r *run) readBody(lit imap.LiteralReader) ([]byte, string, error) {
	if lit == nil {
		return nil, "the server sent BODY[] as NIL", nil
	}
	n := lit.Size()
	switch {
	case n > r.cfg.MaxMessageBytes:
		return nil, tooLarge, nil
	case n == 0:
		return nil, "the server sent an empty body", nil
	}
	if int64(cap(r.buf)) < n || cap(r.buf) > 8<<20 && n < 1<<20 {
		r.buf = make([]byte, n, max(n, 64<<10)) // a big message's buffer is not kept for small ones
	}
	b := r.buf[:n]
	if _, err := io.ReadFull(lit, b); err != nil {
		return nil, "", err
	}
	return b, "", nil
}

// handOver calls the sink with the watchdog paused: the sink may take long (a slow database)
// while the server, which has nothing to say meanwhile, must not be taken for dead.
func (r *run) handOver(ctx context.Context, m Message) (Disposition, error) {
	r.s.dog.pause()
	defer r.s.dog.resume()
	d, err := r.sink(ctx, m)
	if err != nil {
		return 0, fmt.Errorf("sink: UID %d: %w", m.UID, err)
	}
	return d, cancelled(ctx)
}

// cancelled is checked between steps: the context's watch kills the connection, but only
// asynchronously, and responses already buffered could otherwise still be acted on.
func cancelled(ctx context.Context) error {
	if ctx.Err() != nil {
		return fmt.Errorf("poll stopped: %w", context.Cause(ctx))
	}
	return nil
}

func (r *run) problem(p Problem) {
	r.log.Warn("message not read", "uid", p.UID, "size", p.Size, "reason", p.Reason)
	if len(r.res.Problems) < maxProblems {
		r.res.Problems = append(r.res.Problems, p)
	}
}

// ackMode is how the server lets handled messages be put away.
type ackMode int

const (
	ackMove     ackMode = iota // UID MOVE
	ackUIDPlus                 // UID COPY + UID STORE \Deleted + UID EXPUNGE
	ackCopyFlag                // UID COPY + UID STORE \Seen \Deleted, no EXPUNGE (see the package comment)
)

func (r *run) ack() ackMode {
	switch {
	case r.s.caps.Has(imap.CapMove):
		return ackMove
	case r.s.caps.Has(imap.CapUIDPlus):
		return ackUIDPlus
	}
	return ackCopyFlag
}

// acknowledge puts handled messages away per the policy.
func (r *run) acknowledge(uids []uint32, folder string) error {
	if len(uids) == 0 {
		return nil
	}
	set := imap.UIDSetNum(toUIDs(uids)...)
	store := func(flags ...imap.Flag) error {
		return r.s.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: flags}, nil).Close()
	}
	if r.cfg.Policy == PolicySeen {
		if err := store(imap.FlagSeen); err != nil {
			return fmt.Errorf("UID STORE %s +FLAGS (\\Seen): %w", set, err)
		}
		return nil
	}
	mode := r.ack()
	if mode == ackMove {
		if _, err := r.s.c.Move(set, folder).Wait(); err != nil {
			return fmt.Errorf("UID MOVE %s %q: %w", set, folder, err)
		}
		return nil
	}
	if _, err := r.s.c.Copy(set, folder).Wait(); err != nil {
		return fmt.Errorf("UID COPY %s %q: %w", set, folder, err)
	}
	if mode == ackCopyFlag {
		if err := store(imap.FlagSeen, imap.FlagDeleted); err != nil {
			return fmt.Errorf("UID STORE %s +FLAGS (\\Seen \\Deleted): %w", set, err)
		}
		return nil
	}
	if err := store(imap.FlagDeleted); err != nil {
		return fmt.Errorf("UID STORE %s +FLAGS (\\Deleted): %w", set, err)
	}
	if err := r.s.c.UIDExpunge(set).Close(); err != nil {
		return fmt.Errorf("UID EXPUNGE %s: %w", set, err)
	}
	return nil
}

// messageID reads the Message-ID header from the message's header block, tolerating folded
// lines and odd line ends; it is a label for logs and provenance, never trusted.
func messageID(data []byte) string {
	head := data[:min(len(data), 64<<10)]
	if i := bytes.Index(head, []byte("\n\r\n")); i >= 0 {
		head = head[:i]
	} else if i := bytes.Index(head, []byte("\n\n")); i >= 0 {
		head = head[:i]
	}
	lines := bytes.Split(head, []byte("\n"))
	for i, l := range lines {
		name, val, ok := bytes.Cut(l, []byte(":"))
		if !ok || !bytes.EqualFold(bytes.TrimSpace(name), []byte("Message-ID")) {
			continue
		}
		v := string(bytes.TrimSpace(val))
		for _, next := range lines[i+1:] { // folded continuation lines
			if len(next) == 0 || (next[0] != ' ' && next[0] != '\t') {
				break
			}
			v += string(bytes.TrimSpace(next))
		}
		v = trimAngles(v)
		if len(v) > 998 {
			v = v[:998]
		}
		return v
	}
	return ""
}

func trimAngles(v string) string {
	if len(v) >= 2 && v[0] == '<' && v[len(v)-1] == '>' {
		return v[1 : len(v)-1]
	}
	return v
}
