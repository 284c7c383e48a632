package mailbox

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// seedMixed appends the corpus e-mails, n generated reports and spam spam messages to INBOX and
// returns what should end up where, by content key as the in-memory server serves it, and
// the UIDs of messages it serves empty (left in place to be retried).
func seedMixed(t *testing.T, srv *memServer, n, spam int) (archive, invalid map[string]int, uids, retry []uint32) {
	t.Helper()
	archive, invalid = map[string]int{}, map[string]int{}
	add := func(b []byte, isInvalid bool) {
		uid := srv.append(t, "INBOX", b)
		uids = append(uids, uid)
		switch out := served(b); {
		case len(out) == 0:
			retry = append(retry, uid)
		case isInvalid:
			invalid[key(out)]++
		default:
			archive[key(out)]++
		}
	}
	for _, c := range corpusMails(t) {
		add(c.data, c.expectInvalid())
	}
	for i := range n {
		add(reportMail(i, 0), false)
	}
	for i := range spam {
		add(spamMail(i), true)
	}
	return archive, invalid, uids, retry
}

func sameKeys(t *testing.T, what string, got, want map[string]int) {
	t.Helper()
	if !maps.Equal(got, want) {
		var missing, extra []string
		for k, n := range want {
			if got[k] != n {
				missing = append(missing, fmt.Sprintf("%s×%d (got %d)", k, n, got[k]))
			}
		}
		for k, n := range got {
			if want[k] == 0 {
				extra = append(extra, fmt.Sprintf("%s×%d", k, n))
			}
		}
		t.Errorf("%s: %d messages, want %d; wrong count %v; unexpected %v", what, total(got), total(want), missing, extra)
	}
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// TestPollCorpus: every corpus e-mail and some generated mail is delivered exactly once, with
// \Seen still unset while the sink runs, and filed under archive or invalid as Classify says.
// The in-memory server cannot serve the few corpus e-mails whose header go-message refuses
// (it sends an empty body, as iCloud does): those must stay in INBOX, untouched and reported,
// with LastUID below them. The Dovecot suite, which serves every file, checks them too.
func TestPollCorpus(t *testing.T) {
	t.Parallel()
	srv := newMemServer(t, memOpts{})
	wantArchive, wantInvalid, uids, retry := seedMixed(t, srv, 20, 5)
	cfg := srv.config()
	look := newPeek(t, cfg)
	sink := newRecSink(t)
	var validities []uint32
	sink.check = func(m Message) {
		validities = append(validities, m.UIDValidity)
		for _, f := range look.flags("INBOX", m.UID) {
			if f == imap.FlagSeen || f == imap.FlagDeleted {
				t.Errorf("UID %d has %s while the sink still runs", m.UID, f)
			}
		}
	}
	res, err := (&Poller{}).Poll(context.Background(), cfg, State{}, sink.sink)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d messages: %d archive, %d invalid, %d served empty by the in-memory server", len(uids), total(wantArchive), total(wantInvalid), len(retry))
	if res.Seen != len(uids) || res.Saved+res.Duplicates != total(wantArchive) || res.Invalid != total(wantInvalid) || res.Retry != len(retry) {
		t.Errorf("result %+v; want seen %d, saved %d, invalid %d, retry %d", res, len(uids), total(wantArchive), total(wantInvalid), len(retry))
	}
	wantLast := slices.Max(uids)
	if len(retry) > 0 {
		wantLast = retry[0] - 1
	}
	if res.State.LastUID != wantLast || res.State.UIDValidity == 0 {
		t.Errorf("state %+v, want LastUID %d and a UIDVALIDITY", res.State, wantLast)
	}
	for _, v := range validities {
		if v != res.State.UIDValidity {
			t.Fatalf("a message carried UIDVALIDITY %d, the folder has %d", v, res.State.UIDValidity)
		}
	}
	delivered := slices.DeleteFunc(slices.Clone(uids), func(u uint32) bool { return slices.Contains(retry, u) })
	if !slices.Equal(sink.uids, delivered) {
		t.Errorf("sink saw UIDs %v, want %v in order", sink.uids, delivered)
	}
	for k, c := range sink.calls {
		if c != 1 {
			t.Errorf("message %s handed to the sink %d times", k, c)
		}
	}
	sameKeys(t, "Archive", keysOf(look.folder("Archive")), wantArchive)
	sameKeys(t, "Invalid", keysOf(look.folder("Invalid")), wantInvalid)
	var left []uint32
	for _, m := range look.folder("INBOX") {
		left = append(left, m.UID)
		if len(m.Flags) != 0 {
			t.Errorf("UID %d left in INBOX with flags %v", m.UID, m.Flags)
		}
	}
	if !slices.Equal(left, retry) {
		t.Errorf("INBOX holds %v, want only %v", left, retry)
	}

	again, err := (&Poller{}).Poll(context.Background(), cfg, res.State, sink.sink)
	if err != nil || again.Seen != len(retry) || again.Retry != len(retry) || again.State != res.State {
		t.Errorf("second poll: %+v, %v; want only the %d unservable messages tried again, the same state", again, err, len(retry))
	}
}

// TestSinkError: the database going down stops the poll; nothing of the failing batch is
// moved or flagged, LastUID stays before it, and the next poll completes without a loss or a
// second copy (the message saved just before the failure comes back as a duplicate).
func TestSinkError(t *testing.T) {
	t.Parallel()
	for _, policy := range []Policy{PolicyMove, PolicySeen} {
		t.Run(string(policy), func(t *testing.T) {
			t.Parallel()
			srv := newMemServer(t, memOpts{})
			var uids []uint32
			var keys []string
			for i := range 12 {
				b := reportMail(i, 0)
				uids = append(uids, srv.append(t, "INBOX", b))
				keys = append(keys, key(served(b)))
			}
			cfg := srv.config()
			cfg.Policy, cfg.BatchSize = policy, 5
			sink := newRecSink(t)
			sink.failAt = 8 // the third message of the second batch
			res, err := (&Poller{}).Poll(context.Background(), cfg, State{}, sink.sink)
			if !errors.Is(err, errDBDown) {
				t.Fatalf("Poll error %v, want one wrapping %v", err, errDBDown)
			}
			if res.State.LastUID != uids[4] || res.Saved != 7 {
				t.Errorf("after the failure: LastUID %d (want %d), saved %d (want 7)", res.State.LastUID, uids[4], res.Saved)
			}
			look := newPeek(t, cfg)
			inbox := look.folder("INBOX")
			if policy == PolicyMove {
				if got := len(look.folder("Archive")); got != 5 {
					t.Errorf("Archive holds %d messages, want the first batch's 5", got)
				}
				if len(inbox) != 7 {
					t.Errorf("INBOX holds %d, want 7", len(inbox))
				}
			}
			for _, m := range inbox {
				acked := m.UID <= uids[4]
				if m.has(imap.FlagDeleted) || m.has(imap.FlagSeen) != (acked && policy == PolicySeen) {
					t.Errorf("UID %d has flags %v after the failed poll", m.UID, m.Flags)
				}
			}

			sink.failAt = 0
			res2, err := (&Poller{}).Poll(context.Background(), cfg, res.State, sink.sink)
			if err != nil {
				t.Fatalf("next poll: %v", err)
			}
			if res2.Seen != 7 || res2.Duplicates != 2 || res2.Saved != 5 || res2.State.LastUID != uids[11] {
				t.Errorf("next poll: %+v; want 7 seen, 2 duplicates (saved before the failure), 5 saved, LastUID %d", res2, uids[11])
			}
			for _, k := range keys {
				if n := sink.count(k); n < 1 || n > 2 {
					t.Errorf("message %s handed over %d times", k, n)
				}
			}
			if policy == PolicyMove {
				want := map[string]int{}
				for _, k := range keys {
					want[k] = 1
				}
				sameKeys(t, "Archive", keysOf(look.folder("Archive")), want)
			} else {
				for _, m := range look.folder("INBOX") {
					if !m.has(imap.FlagSeen) {
						t.Errorf("UID %d not \\Seen after the good poll", m.UID)
					}
				}
			}
		})
	}
}

// TestTooLarge: a message over MaxMessageBytes goes to Invalid by its RFC822.SIZE, without its
// body crossing the network, and is reported.
func TestTooLarge(t *testing.T) {
	t.Parallel()
	srv := newMemServer(t, memOpts{})
	small1 := srv.append(t, "INBOX", reportMail(1, 0))
	bigMsg := reportMail(2, 256<<10)
	big := srv.append(t, "INBOX", bigMsg)
	small2 := srv.append(t, "INBOX", reportMail(3, 0))
	p := newProxy(t, srv.addr, nil)
	cfg := viaProxy(srv.config(), p)
	cfg.MaxMessageBytes = 64 << 10
	sink := newRecSink(t)
	res, err := (&Poller{}).Poll(context.Background(), cfg, State{}, sink.sink)
	if err != nil {
		t.Fatal(err)
	}
	if res.TooLarge != 1 || res.Saved != 2 || len(res.Problems) != 1 || res.Problems[0].UID != big || !res.Problems[0].Invalid ||
		!strings.Contains(res.Problems[0].Reason, "limit") {
		t.Errorf("result %+v; want 1 too large (UID %d) reported, 2 saved", res, big)
	}
	if !slices.Equal(sink.uids, []uint32{small1, small2}) {
		t.Errorf("sink saw %v, want only %d and %d", sink.uids, small1, small2)
	}
	if got := p.bytesToClient(); got > int64(len(bigMsg))/2 {
		t.Errorf("%d bytes came from the server; the %d-byte message must not be downloaded", got, len(bigMsg))
	}
	look := newPeek(t, srv.config())
	if inv := look.folder("Invalid"); len(inv) != 1 || inv[0].Key != key(served(bigMsg)) {
		t.Errorf("Invalid holds %v, want the big message", inv)
	}
	if res.State.LastUID != small2 {
		t.Errorf("LastUID %d, want %d", res.State.LastUID, small2)
	}
}

// TestBacklog: 1,000 messages in batches of 100 are all delivered once, in UID order, with one
// body FETCH per batch, progress reported per batch, and memory flat (the poller holds one
// message at a time, not the backlog). Not parallel: the heap is measured process-wide, and
// parallel tests only start once the sequential ones are done.
func TestBacklog(t *testing.T) {
	srv := newMemServer(t, memOpts{})
	const n, pad = 1000, 48 << 10
	var uids []uint32
	for i := range n {
		uids = append(uids, srv.append(t, "INBOX", reportMail(i, pad)))
	}
	p := newProxy(t, srv.addr, nil)
	cfg := viaProxy(srv.config(), p)
	cfg.BatchSize = 100
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	base := heap()
	var peak uint64
	sink := newRecSink(t)
	sink.verdct = func(Message) bool { return true } // skip Classify: this test is about the poller
	sink.record = func(m Message) {
		if len(sink.uids)%100 == 50 {
			peak = max(peak, heap())
		}
	}
	var mu sync.Mutex
	var progress [][2]int
	poller := &Poller{Progress: func(done, total int) { mu.Lock(); progress = append(progress, [2]int{done, total}); mu.Unlock() }}
	res, err := poller.Poll(context.Background(), cfg, State{}, sink.sink)
	if err != nil {
		t.Fatal(err)
	}
	if res.Saved != n || !slices.Equal(sink.uids, uids) {
		t.Errorf("saved %d, sink saw %d UIDs in order %v; want %d", res.Saved, len(sink.uids), slices.Equal(sink.uids, uids), n)
	}
	bodyFetches := 0
	for _, l := range strings.Split(p.commandLines(), "\n") {
		if strings.Contains(l, "BODY.PEEK[]") {
			bodyFetches++
		}
	}
	if bodyFetches != n/100 {
		t.Errorf("%d body FETCH commands, want one per batch (%d)", bodyFetches, n/100)
	}
	if len(progress) != n/100+1 || progress[0] != [2]int{0, n} || progress[len(progress)-1] != [2]int{n, n} {
		t.Errorf("progress calls %v", progress)
	}
	grown := int64(peak) - int64(base)
	t.Logf("heap before %d MiB, peak during the poll %+d MiB, backlog %d MiB", base>>20, grown>>20, n*pad>>20)
	if grown > 16<<20 {
		t.Errorf("heap grew by %d MiB while draining a %d MiB backlog: memory is not flat", grown>>20, n*pad>>20)
	}
	look := newPeek(t, srv.config())
	if got := len(look.folder("Archive")); got != n {
		t.Errorf("Archive holds %d, want %d", got, n)
	}
}

// TestPolicySeen: messages stay where they are and get \Seen after the sink; a message a
// person marks unread again is not read twice; new mail is read. (The in-memory server takes
// "*" for UIDNEXT-1, not the highest UID, so the "n:*" trap is tested on Dovecot.)
func TestPolicySeen(t *testing.T) {
	t.Parallel()
	srv := newMemServer(t, memOpts{})
	var uids []uint32
	for i := range 5 {
		uids = append(uids, srv.append(t, "INBOX", reportMail(i, 0)))
	}
	uids = append(uids, srv.append(t, "INBOX", spamMail(1)))
	cfg := srv.config()
	cfg.Policy = PolicySeen
	sink := newRecSink(t)
	look := newPeek(t, cfg)
	sink.check = func(m Message) {
		if slices.Contains(look.flags("INBOX", m.UID), imap.FlagSeen) {
			t.Errorf("UID %d is \\Seen before the sink returned", m.UID)
		}
	}
	poller := &Poller{}
	res, err := poller.Poll(context.Background(), cfg, State{}, sink.sink)
	if err != nil || res.Saved != 5 || res.Invalid != 1 {
		t.Fatalf("first poll: %+v, %v", res, err)
	}
	inbox := look.folder("INBOX")
	for _, m := range inbox {
		if !m.has(imap.FlagSeen) || m.has(imap.FlagDeleted) {
			t.Errorf("UID %d flags %v, want \\Seen only", m.UID, m.Flags)
		}
	}
	if len(inbox) != 6 || look.folder("Archive") != nil || look.folder("Invalid") != nil {
		t.Errorf("INBOX holds %d (want 6); no archive or invalid folder may be made under policy seen", len(inbox))
	}
	look.store("INBOX", uids[5], imap.StoreFlagsDel, imap.FlagSeen) // a person marks it unread
	res2, err := poller.Poll(context.Background(), cfg, res.State, sink.sink)
	if err != nil || res2.Seen != 0 {
		t.Errorf("second poll: %+v, %v; want nothing read again", res2, err)
	}
	fresh := srv.append(t, "INBOX", reportMail(99, 0))
	res3, err := poller.Poll(context.Background(), cfg, res2.State, sink.sink)
	if err != nil || res3.Seen != 1 || res3.State.LastUID != fresh || sink.uids[len(sink.uids)-1] != fresh {
		t.Errorf("third poll: %+v, %v; want the new UID %d only", res3, err, fresh)
	}
}

// TestUIDValidityChange: a re-created folder restarts UIDs; the poller notices, reads it from
// the start, and what it had already (same bytes) comes back as a duplicate, not a copy.
func TestUIDValidityChange(t *testing.T) {
	t.Parallel()
	srv := newMemServer(t, memOpts{})
	old := reportMail(1, 0)
	for _, b := range [][]byte{old, reportMail(2, 0), reportMail(3, 0), reportMail(4, 0)} {
		srv.append(t, "INBOX", b)
	}
	cfg := srv.config()
	sink := newRecSink(t)
	res, err := (&Poller{}).Poll(context.Background(), cfg, State{}, sink.sink)
	if err != nil || res.State.LastUID != 4 {
		t.Fatalf("first poll: %+v, %v", res, err)
	}
	if err := srv.user.Delete("INBOX"); err != nil {
		t.Fatal(err)
	}
	if err := srv.user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	srv.append(t, "INBOX", reportMail(10, 0))
	srv.append(t, "INBOX", old) // resent, or restored from a backup
	srv.append(t, "INBOX", reportMail(11, 0))
	res2, err := (&Poller{}).Poll(context.Background(), cfg, res.State, sink.sink)
	if err != nil {
		t.Fatal(err)
	}
	if res2.State.UIDValidity == res.State.UIDValidity || res2.Seen != 3 || res2.Saved != 2 || res2.Duplicates != 1 || res2.State.LastUID != 3 {
		t.Errorf("after the change: %+v (old UIDVALIDITY %d); want all 3 read, 1 duplicate, LastUID 3", res2, res.State.UIDValidity)
	}
	if got := keysOf(newPeek(t, cfg).folder("Archive")); got[key(served(old))] != 2 || total(got) != 7 {
		t.Errorf("Archive %v", got)
	}
}

// TestAcknowledgement pins the commands per server capability and that mail another client
// flagged \Deleted survives: without UIDPLUS a plain EXPUNGE would remove it.
func TestAcknowledgement(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		caps      imap.CapSet
		want      []string
		forbidden []string
		leftFlag  bool // handled messages stay in INBOX, flagged \Seen \Deleted
	}{
		{"move", capsFull, []string{"UID MOVE"}, []string{"UID COPY", "EXPUNGE", "UID EXPUNGE", "UID STORE"}, false},
		{"uidplus", capsUIDPlus, []string{"UID COPY", "UID STORE", "UID EXPUNGE"}, []string{"UID MOVE", "EXPUNGE"}, false},
		{"bare", capsBare, []string{"UID COPY", "UID STORE"}, []string{"UID MOVE", "EXPUNGE", "UID EXPUNGE"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newMemServer(t, memOpts{caps: tc.caps})
			foreign := srv.append(t, "INBOX", spamMail(0), imap.FlagDeleted) // another client's, awaiting its EXPUNGE
			want := map[string]int{}
			for i := range 6 {
				b := reportMail(i, 0)
				srv.append(t, "INBOX", b)
				want[key(served(b))] = 1
			}
			p := newProxy(t, srv.addr, nil)
			cfg := viaProxy(srv.config(), p)
			cfg.BatchSize = 4
			sink := newRecSink(t)
			res, err := (&Poller{}).Poll(context.Background(), cfg, State{}, sink.sink)
			if err != nil {
				t.Fatal(err)
			}
			names := p.commandNames()
			for _, w := range tc.want {
				if !slices.Contains(names, w) {
					t.Errorf("no %s sent; commands %v", w, names)
				}
			}
			for _, f := range tc.forbidden {
				if slices.Contains(names, f) {
					t.Errorf("%s sent; commands %v", f, names)
				}
			}
			look := newPeek(t, srv.config())
			inbox := look.folder("INBOX")
			survived := false
			for _, m := range inbox {
				if m.UID == foreign {
					survived = true
				} else if !tc.leftFlag || !m.has(imap.FlagDeleted) || !m.has(imap.FlagSeen) {
					t.Errorf("UID %d left in INBOX with flags %v", m.UID, m.Flags)
				}
			}
			if !survived {
				t.Errorf("another client's \\Deleted message was expunged")
			}
			sameKeys(t, "Archive", keysOf(look.folder("Archive")), want)
			if slices.Contains(sink.uids, foreign) || res.Seen != 6 || res.State.LastUID != 7 {
				t.Errorf("sink saw %v, result %+v; want the 6 reports only, LastUID 7", sink.uids, res)
			}
			// Nothing is read again, even from a state that lost LastUID: the search skips
			// \Deleted mail, which is also how the bare server's leftovers are marked.
			again, err := (&Poller{}).Poll(context.Background(), cfg, State{UIDValidity: res.State.UIDValidity}, sink.sink)
			if err != nil || again.Seen != 0 {
				t.Errorf("poll from LastUID 0: %+v, %v; want nothing seen", again, err)
			}
		})
	}
}

// TestConnectionCut: a connection that dies in the middle of a literal ends the poll with an
// error within the timeout, both when the peer closes and when it just goes silent (no FIN);
// nothing of the unfinished batch is moved or flagged; the next poll completes.
func TestConnectionCut(t *testing.T) {
	t.Parallel()
	for _, stall := range []bool{false, true} {
		name := map[bool]string{false: "closed", true: "silent"}[stall]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := newMemServer(t, memOpts{})
			want := map[string]int{}
			for i := range 30 {
				b := reportMail(i, 4<<10)
				srv.append(t, "INBOX", b)
				want[key(served(b))] = 1
			}
			// Cut 1000 bytes into the 16th body literal: the 6th message of the second batch.
			p := newProxy(t, srv.addr, &cutRule{marker: []byte("BODY[] {"), skip: 15, after: 1000, stall: stall})
			cfg := viaProxy(srv.config(), p)
			cfg.BatchSize, cfg.OpTimeout = 10, 2*time.Second
			sink := newRecSink(t)
			start := time.Now()
			res, err := (&Poller{}).Poll(context.Background(), cfg, State{}, sink.sink)
			took := time.Since(start)
			if err == nil {
				t.Fatal("Poll succeeded through a cut connection")
			}
			t.Logf("error after %s: %v", took.Round(time.Millisecond), err)
			if took > cfg.OpTimeout+3*time.Second {
				t.Errorf("Poll took %s to fail; the bound is the %s timeout", took, cfg.OpTimeout)
			}
			if stall && !errors.Is(err, ErrTimeout) {
				t.Errorf("error %v does not wrap ErrTimeout", err)
			}
			if res.State.LastUID != 10 || res.Saved != 15 {
				t.Errorf("state %+v, saved %d; want the first batch (LastUID 10) acknowledged, 15 handed over", res.State, res.Saved)
			}
			look := newPeek(t, srv.config())
			if got := len(look.folder("Archive")); got != 10 {
				t.Errorf("Archive holds %d, want the first batch's 10", got)
			}
			for _, m := range look.folder("INBOX") {
				if len(m.Flags) != 0 {
					t.Errorf("UID %d has flags %v after the cut", m.UID, m.Flags)
				}
			}
			res2, err := (&Poller{}).Poll(context.Background(), srv.config(), res.State, sink.sink)
			if err != nil || res2.Seen != 20 || res2.Duplicates != 5 {
				t.Errorf("direct poll: %+v, %v; want 20 read, 5 of them duplicates", res2, err)
			}
			sameKeys(t, "Archive", keysOf(look.folder("Archive")), want)
		})
	}
}

// TestSlowSink: a sink slower than OpTimeout (a busy database) is not taken for a dead server.
func TestSlowSink(t *testing.T) {
	t.Parallel()
	srv := newMemServer(t, memOpts{})
	for i := range 3 {
		srv.append(t, "INBOX", reportMail(i, 0))
	}
	cfg := srv.config()
	cfg.OpTimeout = 300 * time.Millisecond
	sink := newRecSink(t)
	sink.check = func(Message) { time.Sleep(700 * time.Millisecond) }
	res, err := (&Poller{Progress: func(int, int) { time.Sleep(700 * time.Millisecond) }}).Poll(context.Background(), cfg, State{}, sink.sink)
	if err != nil || res.Saved != 3 {
		t.Errorf("slow sink: %+v, %v; want 3 saved", res, err)
	}
}

// TestCancel: cancelling the context (worker shutdown) ends the poll at once, with the batch
// in progress left untouched.
func TestCancel(t *testing.T) {
	t.Parallel()
	srv := newMemServer(t, memOpts{})
	for i := range 5 {
		srv.append(t, "INBOX", reportMail(i, 0))
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	sink := newRecSink(t)
	sink.check = func(m Message) {
		if m.UID == 2 {
			cancel(errors.New("worker shutting down"))
		}
	}
	start := time.Now()
	res, err := (&Poller{}).Poll(ctx, srv.config(), State{}, sink.sink)
	if err == nil || !strings.Contains(err.Error(), "worker shutting down") || time.Since(start) > 5*time.Second {
		t.Errorf("Poll after cancel: %v after %s", err, time.Since(start))
	}
	if res.State.LastUID != 0 {
		t.Errorf("LastUID %d after a cancelled first batch", res.State.LastUID)
	}
	if got := len(newPeek(t, srv.config()).folder("INBOX")); got != 5 {
		t.Errorf("INBOX holds %d, want all 5", got)
	}
}

// TestEmptyBody: a server answering an empty body (iCloud) gets the message retried, never an
// empty file stored, and LastUID stays below it while later mail is handled.
func TestEmptyBody(t *testing.T) {
	t.Parallel()
	srv := newMemServer(t, memOpts{})
	first := srv.append(t, "INBOX", reportMail(1, 0))
	// The in-memory server sends BODY[] {0} for a header go-message cannot parse.
	srv.append(t, "INBOX", []byte("From nobody Mon Jan  1 00:00:00 2024\nSubject: x\n\nbody\n"))
	last := srv.append(t, "INBOX", reportMail(3, 0))
	sink := newRecSink(t)
	res, err := (&Poller{}).Poll(context.Background(), srv.config(), State{}, sink.sink)
	if err != nil {
		t.Fatal(err)
	}
	if res.Saved != 2 || res.Retry != 1 || res.State.LastUID != first || len(res.Problems) != 1 || res.Problems[0].Invalid {
		t.Errorf("result %+v; want 2 saved, 1 left to retry, LastUID %d", res, first)
	}
	if !slices.Equal(sink.uids, []uint32{first, last}) {
		t.Errorf("sink saw %v", sink.uids)
	}
}

// TestPollBatchGrouping: grouped hand-over gives every message once with its own bytes (the
// body buffer is reused, so a group must hold copies), keeps groups within the message and
// byte bounds and within one fetch batch, and a failing group leaves its whole fetch batch
// unacknowledged.
func TestPollBatchGrouping(t *testing.T) {
	t.Parallel()
	srv := newMemServer(t, memOpts{})
	wantArchive, wantInvalid, uids, retry := seedMixed(t, srv, 40, 6)
	cfg := srv.config()
	cfg.BatchSize = 25
	g := Grouping{Messages: 7, Bytes: 64 << 10}
	sink := newRecSink(t)
	var groups [][]uint32
	fail := -1 // the group that fails, by number
	batchOf := func(u uint32) int { return slices.Index(uids, u) / cfg.BatchSize }
	grouped := func(ctx context.Context, msgs []Message) ([]Disposition, error) {
		var size int64
		var ids []uint32
		for _, m := range msgs {
			size += int64(len(m.Data))
			ids = append(ids, m.UID)
		}
		if len(msgs) > g.Messages || (len(msgs) > 1 && size > g.Bytes) {
			t.Errorf("group of %d messages, %d bytes: over %+v", len(msgs), size, g)
		}
		if batchOf(ids[0]) != batchOf(ids[len(ids)-1]) {
			t.Errorf("group %v crosses fetch batches", ids)
		}
		if len(groups) == fail {
			return nil, errDBDown
		}
		groups = append(groups, ids)
		out := make([]Disposition, len(msgs))
		for i, m := range msgs {
			d, err := sink.sink(ctx, m)
			if err != nil {
				return nil, err
			}
			out[i] = d
		}
		return out, nil
	}
	res, err := (&Poller{}).PollBatch(context.Background(), cfg, State{}, grouped, g)
	if err != nil {
		t.Fatal(err)
	}
	if res.Saved+res.Duplicates != total(wantArchive) || res.Invalid != total(wantInvalid) || res.Retry != len(retry) {
		t.Errorf("result %+v; want %d archive, %d invalid, %d retry", res, total(wantArchive), total(wantInvalid), len(retry))
	}
	if len(groups) >= len(uids)-len(retry) {
		t.Errorf("%d groups for %d messages: nothing was grouped", len(groups), len(uids))
	}
	look := newPeek(t, cfg)
	sameKeys(t, "Archive", keysOf(look.folder("Archive")), wantArchive)
	sameKeys(t, "Invalid", keysOf(look.folder("Invalid")), wantInvalid)

	// A failing group: its fetch batch stays in INBOX, LastUID before it.
	srv2 := newMemServer(t, memOpts{})
	var uids2 []uint32
	for i := range 30 {
		uids2 = append(uids2, srv2.append(t, "INBOX", reportMail(i, 0)))
	}
	cfg2 := srv2.config()
	cfg2.BatchSize = 10
	groups, fail, uids = nil, 3, uids2 // groups of 7 and 3 per batch: the second batch's second group fails
	res, err = (&Poller{}).PollBatch(context.Background(), cfg2, State{}, grouped, g)
	if !errors.Is(err, errDBDown) || res.State.LastUID != uids2[9] {
		t.Fatalf("failing group: %+v, %v; want LastUID %d", res, err, uids2[9])
	}
	look2 := newPeek(t, cfg2)
	if a, in := len(look2.folder("Archive")), len(look2.folder("INBOX")); a != 10 || in != 20 {
		t.Errorf("after a failing group: Archive %d, INBOX %d; want 10 and 20", a, in)
	}
}
