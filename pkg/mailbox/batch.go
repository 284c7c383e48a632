package mailbox

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Round trips: sizes are asked for a window of up to metaWindow messages at once, so a batch
// needs one more round trip only for its bodies; with MOVE, the MOVE of a batch goes out
// right before the next batch's FETCH and is answered while it streams. Whatever order the
// server answers pipelined commands in (Dovecot runs some side by side), go-imap hands FETCH
// data over through channels and literals only as they are read, so at most one FETCH is in
// flight, and it is read to its end before an answer to anything else is awaited: otherwise
// its reader goroutine, parked on an unread literal, would hold back the awaited answer, with
// no read pending for any deadline to end. Other acknowledgements (STORE, COPY, EXPUNGE) are
// awaited at once, and a COPY is always awaited before anything flags the originals \Deleted.
// Nothing of a batch is acknowledged before the sink has returned for all of it.
const metaWindow = 1000

// meta is what is known of a message before its body is fetched.
type meta struct {
	size int64
	date time.Time
}

// batch is one batch on its way through the poll.
type batch struct {
	uids    []uint32
	metas   map[uint32]meta
	fetch   imap.UIDSet // bodies to download
	archive []uint32    // to the archive folder (or \Seen)
	invalid []uint32    // to the invalid folder (or \Seen)
	gone    []uint32    // vanished: nothing to acknowledge
}

// pendingAck is an acknowledgement sent and not yet answered. Its answer is collected in the
// background, so a poll that fails in the next batch still counts a MOVE the server confirmed.
type pendingAck struct {
	b      *batch
	answer chan error
}

func (p *pendingAck) await() error { err := <-p.answer; p.answer <- err; return err }

// confirmed reports whether the server confirmed the acknowledgement. It is asked after a
// failure, once the connection is dead or drained: the answer is then on its way at once, and
// the bound is only a safety net.
func (p *pendingAck) confirmed(within time.Duration) bool {
	select {
	case err := <-p.answer:
		p.answer <- err
		return err == nil
	case <-time.After(within):
		return false
	}
}

func (r *run) drain(ctx context.Context, batches [][]uint32) error {
	total := 0
	for _, u := range batches {
		total += len(u)
	}
	var prev *pendingAck // a MOVE in flight
	defer func() {
		if prev != nil && prev.confirmed(r.cfg.OpTimeout) { // the poll failed; keep what the server confirmed
			r.settle(prev, total)
		}
	}()
	var metas map[uint32]meta
	for i, uids := range batches {
		if err := cancelled(ctx); err != nil {
			return err
		}
		if _, ok := metas[uids[0]]; !ok {
			var err error
			if metas, err = r.fetchMetas(batches[i:]); err != nil {
				return err
			}
		}
		b := r.plan(uids, metas)
		if len(b.fetch) > 0 {
			cmd := r.s.c.Fetch(b.fetch, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
			if err := r.fetchBodies(ctx, cmd, b); err != nil {
				return err
			}
		}
		if prev != nil {
			if err := r.settle(prev, total); err != nil {
				return err
			}
			prev = nil
		}
		if err := cancelled(ctx); err != nil {
			return err
		}
		p, err := r.sendAck(b)
		if err != nil {
			return err
		}
		if r.cfg.Policy == PolicyMove && r.ack() == ackMove {
			prev = p // answered while the next batch streams
		} else if err := r.settle(p, total); err != nil {
			return err
		}
	}
	if prev != nil {
		err := r.settle(prev, total)
		prev = nil
		return err
	}
	return nil
}

// fetchMetas asks sizes and dates for the next batches, up to metaWindow messages.
func (r *run) fetchMetas(batches [][]uint32) (map[uint32]meta, error) {
	var set imap.UIDSet
	n := 0
	for _, b := range batches {
		if n > 0 && n+len(b) > metaWindow {
			break
		}
		set.AddNum(toUIDs(b)...)
		n += len(b)
	}
	cmd := r.s.c.Fetch(set, &imap.FetchOptions{UID: true, RFC822Size: true, InternalDate: true})
	out := make(map[uint32]meta, n)
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		var uid uint32
		var m meta
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				uid = uint32(it.UID)
			case imapclient.FetchItemDataRFC822Size:
				m.size = it.Size
			case imapclient.FetchItemDataInternalDate:
				m.date = it.Time
			}
		}
		if uid != 0 {
			out[uid] = m
		}
	}
	if err := cmd.Close(); err != nil {
		return nil, fmt.Errorf("UID FETCH %s (RFC822.SIZE): %w", set, err)
	}
	// Mark the window's vanished messages, so they are not asked for again.
	for _, u := range toUint32s(set) {
		if _, ok := out[u]; !ok {
			out[u] = meta{size: -1}
		}
	}
	return out, nil
}

// plan decides, from the sizes, what of a batch to download.
func (r *run) plan(uids []uint32, metas map[uint32]meta) *batch {
	b := &batch{uids: uids, metas: metas}
	for _, u := range uids {
		m := metas[u]
		switch {
		case m.size < 0:
			r.res.Vanished++
			b.gone = append(b.gone, u)
		case m.size > r.cfg.MaxMessageBytes:
			r.res.TooLarge++
			r.problem(Problem{UID: u, Size: m.size, Invalid: true, Reason: fmt.Sprintf(
				"message is %d bytes, over the %d-byte limit (max_message_bytes): filed as invalid without downloading it", m.size, r.cfg.MaxMessageBytes)})
			b.invalid = append(b.invalid, u)
		default:
			b.fetch.AddNum(imap.UID(u))
		}
	}
	return b
}

// fetchBodies streams a batch's bodies, one message at a time, to the sink.
//
// On an error the connection is killed first. go-imap's reader goroutine then fails on its
// next read and ends, unless it waits for this side to finish a literal: after a sink error it
// may be parked on the next message's literal, so the command is drained (every read now fails
// at once). After a failed literal read it is not drained: go-imap lets its reader go on as soon
// as a literal read fails, and reading the rest of that literal here would race with it on the
// shared buffer.
func (r *run) fetchBodies(ctx context.Context, cmd *imapclient.FetchCommand, b *batch) (err error) {
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
			err = fmt.Errorf("UID FETCH %s (BODY.PEEK[]): %w", b.fetch, cerr)
		}
	}()
	answered := make(map[uint32]bool, len(b.fetch))
	var group []Message // handed over together (Grouping)
	var groupBytes int64
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
					return fmt.Errorf("UID FETCH %s: reading the body of UID %d: %w", b.fetch, uid, err)
				}
			}
		}
		m, ok := b.metas[uid]
		if uid == 0 || !ok || !b.fetch.Contains(imap.UID(uid)) || answered[uid] {
			continue // not ours (go-imap routes by UID; be safe anyway)
		}
		answered[uid] = true
		if problem == "" && body == nil {
			problem = "the server sent no body (BODY[] missing from its answer)"
		}
		switch {
		case problem == tooLarge:
			r.res.TooLarge++
			r.problem(Problem{UID: uid, Size: m.size, Invalid: true, Reason: fmt.Sprintf(
				"message body is larger than the %d-byte limit (max_message_bytes) although RFC822.SIZE said %d: filed as invalid", r.cfg.MaxMessageBytes, m.size)})
			b.invalid = append(b.invalid, uid)
			continue
		case problem != "":
			r.res.Retry++
			r.problem(Problem{UID: uid, Size: m.size, Reason: problem + "; left in place to be read again"})
			continue
		}
		msg := Message{UID: uid, UIDValidity: r.res.State.UIDValidity, Size: m.size, Data: body, InternalDate: m.date, MessageID: messageID(body)}
		if r.group.Messages > 1 {
			// The body buffer is reused for the next message: a grouped message keeps a copy.
			if len(group) > 0 && groupBytes+int64(len(body)) > r.group.Bytes {
				if err := r.handOver(ctx, b, group); err != nil {
					return err
				}
				group, groupBytes = group[:0], 0
			}
			msg.Data = bytes.Clone(body)
			group, groupBytes = append(group, msg), groupBytes+int64(len(body))
			if len(group) < r.group.Messages {
				continue
			}
		} else {
			group = append(group[:0], msg)
		}
		if err := r.handOver(ctx, b, group); err != nil {
			return err
		}
		group, groupBytes = group[:0], 0
	}
	if len(group) > 0 {
		if err := r.handOver(ctx, b, group); err != nil {
			return err
		}
	}
	for _, u := range toUint32s(b.fetch) {
		if !answered[u] {
			r.res.Retry++
			r.problem(Problem{UID: u, Size: b.metas[u].size, Reason: "the server returned no body for it (expunged meanwhile?); left in place to be read again"})
		}
	}
	return nil
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
// while the server, which has nothing to say meanwhile, must not be taken for dead. Then it
// files each message of the group where its disposition says.
func (r *run) handOver(ctx context.Context, b *batch, group []Message) error {
	r.s.dog.pause()
	ds, err := r.sink(ctx, group)
	r.s.dog.resume()
	if err == nil && len(ds) != len(group) {
		err = fmt.Errorf("%d dispositions for %d messages", len(ds), len(group))
	}
	if err != nil {
		if len(group) == 1 {
			return fmt.Errorf("sink: UID %d: %w", group[0].UID, err)
		}
		return fmt.Errorf("sink: UIDs %d-%d: %w", group[0].UID, group[len(group)-1].UID, err)
	}
	for i, d := range ds {
		uid := group[i].UID
		switch d {
		case Archive:
			r.res.Saved++
			b.archive = append(b.archive, uid)
		case Duplicate:
			r.res.Duplicates++
			b.archive = append(b.archive, uid)
		case Invalid:
			r.res.Invalid++
			b.invalid = append(b.invalid, uid)
		default:
			return fmt.Errorf("sink: UID %d: unknown disposition %v", uid, d)
		}
	}
	return cancelled(ctx)
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

// settle waits for a batch's acknowledgement, then moves LastUID past it: up to the first
// message left for a retry, and never past it for the rest of the poll.
func (r *run) settle(p *pendingAck, total int) error {
	if err := p.await(); err != nil {
		return err
	}
	handled := make(map[uint32]bool, len(p.b.uids))
	for _, l := range [][]uint32{p.b.archive, p.b.invalid, p.b.gone} {
		for _, u := range l {
			handled[u] = true
		}
	}
	for _, u := range p.b.uids {
		if !handled[u] {
			r.blocked = true
		}
		if !r.blocked {
			r.res.State.LastUID = u
		}
	}
	r.done += len(p.b.uids)
	r.progress(r.done, total)
	return nil
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

// sendAck sends the acknowledgement of a batch; its answer is awaited by settle.
func (r *run) sendAck(b *batch) (*pendingAck, error) {
	var waits []func() error
	for _, g := range []struct {
		uids   []uint32
		folder string
	}{{b.archive, r.cfg.ArchiveFolder}, {b.invalid, r.cfg.InvalidFolder}} {
		if len(g.uids) == 0 {
			continue
		}
		w, err := r.acknowledge(g.uids, g.folder)
		if err != nil {
			return nil, err
		}
		waits = append(waits, w)
	}
	p := &pendingAck{b: b, answer: make(chan error, 1)}
	go func() {
		for _, w := range waits {
			if err := w(); err != nil {
				p.answer <- err
				return
			}
		}
		p.answer <- nil
	}()
	return p, nil
}

// acknowledge puts handled messages away per the policy and the server's capabilities. A MOVE
// is only sent, and the returned func awaits its answer; everything else is awaited here, one
// command at a time (see the comment on metaWindow). go-imap's Client.Move is only used when MOVE is
// announced: its fall-back sends COPY, STORE \Deleted and a plain EXPUNGE back to back, which
// expunges other clients' \Deleted mail and deletes the originals even if the COPY failed.
func (r *run) acknowledge(uids []uint32, folder string) (func() error, error) {
	set := imap.UIDSetNum(toUIDs(uids)...)
	store := func(flags ...imap.Flag) func() error {
		cmd := r.s.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: flags}, nil)
		return func() error {
			if err := cmd.Close(); err != nil {
				return fmt.Errorf("UID STORE %s +FLAGS %v: %w", set, flags, err)
			}
			return nil
		}
	}
	done := func() error { return nil }
	if r.cfg.Policy == PolicySeen {
		return done, store(imap.FlagSeen)()
	}
	mode := r.ack()
	if mode == ackMove {
		cmd := r.s.c.Move(set, folder)
		return func() error {
			if _, err := cmd.Wait(); err != nil {
				return fmt.Errorf("UID MOVE %s %q: %w", set, folder, err)
			}
			return nil
		}, nil
	}
	if _, err := r.s.c.Copy(set, folder).Wait(); err != nil {
		return nil, fmt.Errorf("UID COPY %s %q: %w", set, folder, err)
	}
	if mode == ackCopyFlag {
		return done, store(imap.FlagSeen, imap.FlagDeleted)()
	}
	if err := store(imap.FlagDeleted)(); err != nil {
		return nil, err
	}
	// Awaited one by one: the EXPUNGE answers queue up in go-imap's channel, and a server that
	// ran the two side by side could otherwise park them ahead of the STORE's answer.
	if err := r.s.c.UIDExpunge(set).Close(); err != nil {
		return nil, fmt.Errorf("UID EXPUNGE %s: %w", set, err)
	}
	return done, nil
}

func toUIDs(u []uint32) []imap.UID {
	out := make([]imap.UID, len(u))
	for i, v := range u {
		out[i] = imap.UID(v)
	}
	return out
}

func toUint32s(set imap.UIDSet) []uint32 {
	nums, _ := set.Nums() // a static set: always ok
	out := make([]uint32, len(nums))
	for i, u := range nums {
		out[i] = uint32(u)
	}
	return out
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
