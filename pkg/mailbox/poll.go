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
// count cap, and they are processed in UID order, BatchSize at a time: the sizes (asked for
// up to 1,000 messages at once), one FETCH of the batch's bodies streamed one message at a
// time into a reused buffer, then the acknowledgement, which with MOVE is confirmed while the
// next batch streams: about one round trip per batch. Memory stays flat however long the
// backlog. Messages flagged \Deleted are
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
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"
)

// Message is one e-mail handed to the sink.
type Message struct {
	UID          uint32
	UIDValidity  uint32    // of the folder: UID is only meaningful with it
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

// BatchSink is a Sink for several messages at once, so a database can store them with one
// durable commit. It returns one Disposition per message, in order, once every message is
// stored; an error means none may be acknowledged (as with Sink). The messages' Data stay
// valid until it returns.
type BatchSink func(ctx context.Context, msgs []Message) ([]Disposition, error)

// Grouping says how many messages PollBatch hands a BatchSink at once: up to Messages, and
// up to Bytes of message data (a larger message goes alone). Messages are grouped within one
// fetch batch (Config.BatchSize) only, so nothing waits for a later round trip.
type Grouping struct {
	Messages int
	Bytes    int64
}

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
	UID     uint32
	Size    int64 // RFC822.SIZE
	Reason  string
	Invalid bool // filed in the invalid folder; false: left in place and tried again next poll
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
	if sink == nil {
		return Result{State: state}, errors.New("mailbox: nil sink")
	}
	one := func(ctx context.Context, msgs []Message) ([]Disposition, error) {
		d, err := sink(ctx, msgs[0])
		return []Disposition{d}, err
	}
	return p.PollBatch(ctx, cfg, state, one, Grouping{Messages: 1})
}

// PollBatch is Poll with messages handed to sink in groups (a copy of each body is held until
// its group is stored, at most g.Bytes plus one message).
func (p *Poller) PollBatch(ctx context.Context, cfg Config, state State, sink BatchSink, g Grouping) (Result, error) {
	start := time.Now()
	res := Result{State: state}
	if sink == nil {
		return res, errors.New("mailbox: nil sink")
	}
	g.Messages = max(g.Messages, 1)
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
	r := &run{p: p, cfg: cfg, s: s, sink: sink, group: g, res: &res, log: log}
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
	p     *Poller
	cfg   Config
	s     *session
	sink  BatchSink
	group Grouping
	res   *Result
	log   *slog.Logger

	blocked bool   // a message was left for the next poll: LastUID stays below it
	buf     []byte // reused body buffer
	done    int    // messages settled, for Progress
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
	if err != nil || len(uids) == 0 {
		return err
	}
	r.res.Seen = len(uids)
	r.progress(0, len(uids))
	var batches [][]uint32
	for i := 0; i < len(uids); i += r.cfg.BatchSize {
		batches = append(batches, uids[i:min(i+r.cfg.BatchSize, len(uids))])
	}
	return r.drain(ctx, batches)
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

// CheckResult is what Check found.
type CheckResult struct {
	Messages    uint32 // in the watched folder
	UIDValidity uint32
	// Acknowledge says how handled mail will be put away on this server: "move" (UID MOVE),
	// "uidplus" (UID COPY + UID EXPUNGE) or "copy+flag" (copied, left flagged \Seen \Deleted).
	Acknowledge string
}

// Check connects, authenticates and examines the watched folder read-only, changing nothing:
// for an API "test this mailbox" action, so a wrong password or certificate shows at once.
func (p *Poller) Check(ctx context.Context, cfg Config) (CheckResult, error) {
	if err := cfg.Validate(); err != nil {
		return CheckResult{}, err
	}
	cfg = cfg.WithDefaults()
	s, err := dial(ctx, cfg)
	if err != nil {
		return CheckResult{}, fmt.Errorf("mailbox %s@%s: %w", cfg.Username, cfg.Host, err)
	}
	sel, err := s.c.Select(cfg.Folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		s.abort()
		return CheckResult{}, fmt.Errorf("mailbox %s@%s: EXAMINE %q: %w", cfg.Username, cfg.Host, cfg.Folder, s.explain(err))
	}
	s.logout()
	r := &run{cfg: cfg, s: s}
	return CheckResult{Messages: sel.NumMessages, UIDValidity: sel.UIDValidity,
		Acknowledge: [...]string{ackMove: "move", ackUIDPlus: "uidplus", ackCopyFlag: "copy+flag"}[r.ack()]}, nil
}
