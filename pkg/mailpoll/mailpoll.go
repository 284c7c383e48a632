// Package mailpoll runs mailbox polls for the pipeline: it keeps the IMAP mailboxes Vigil reads
// in the mailboxes table (the one from VIGIL_IMAP_* as the row named "env"), polls one at a
// time per mailbox under a database lease with pkg/mailbox, hands every message to
// ingest.Service.Accept before the poller may move it, and remembers after every poll, failed
// or not, how far the mailbox was read and what the poll did.
//
// The scheduler polls the environment mailbox every VIGIL_IMAP_POLL_INTERVAL (Jobs); an API
// trigger polls every mailbox at once (TriggerAll). Both enqueue mailbox:poll tasks, which a
// worker runs through HandlePoll.
package mailpoll

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"gorm.io/gorm"

	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/mailbox"
	"github.com/vigilhq/vigil/pkg/schedule"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/unwrap"
	"github.com/vigilhq/vigil/tasks"
)

// Enqueuer is the part of *asynq.Client the service needs.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// EnvName is the name of the mailbox row that mirrors VIGIL_IMAP_*.
const EnvName = "env"

// Mailbox sources, as the source column holds them.
const (
	SourceEnv = "env"
	SourceAPI = "api"
)

// PollTimeout bounds one poll, as the mailbox:poll task's timeout does. The lease lasts a
// little longer, so it never runs out while its poll is still working.
const (
	PollTimeout   = 30 * time.Minute
	LeaseDuration = PollTimeout + 5*time.Minute
)

var (
	// ErrAlreadyPolling: another poll of the mailbox holds its lease; this one did nothing.
	ErrAlreadyPolling = errors.New("mailbox is already being polled")
	// ErrNotConfigured: the mailbox row exists but there is nothing to connect with (the env
	// mailbox after VIGIL_IMAP_HOST was unset, or an API mailbox: their credentials are not
	// stored yet). Polling it again cannot help.
	ErrNotConfigured = errors.New("mailbox has no usable configuration")
)

// Service runs mailbox polls. It is safe for concurrent use.
type Service struct {
	st       *store.Store
	db       *gorm.DB
	ing      *ingest.Service
	lim      unwrap.Limits
	maxMsg   int64
	env      *mailbox.Config
	interval time.Duration
	enq      Enqueuer
	log      *slog.Logger
	poller   *mailbox.Poller
	now      func() time.Time
	accept   func(context.Context, ingest.File) (ingest.Result, error) // ing.Accept; tests wrap it

	mu    sync.Mutex
	envID int64 // the env row's id once Init has run
}

// New builds the service. envMailbox is the mailbox from the environment (nil: none);
// interval is how often Jobs polls it. maxMessageBytes caps the messages downloaded (keep it
// the pipeline's file size limit). enq may be nil in processes that never enqueue.
func New(st *store.Store, ing *ingest.Service, lim unwrap.Limits, maxMessageBytes int64, envMailbox *mailbox.Config,
	interval time.Duration, enq Enqueuer, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var env *mailbox.Config
	if envMailbox != nil {
		c := *envMailbox
		if maxMessageBytes > 0 && (c.MaxMessageBytes == 0 || c.MaxMessageBytes > maxMessageBytes) {
			c.MaxMessageBytes = maxMessageBytes
		}
		env = &c
	}
	s := &Service{st: st, db: st.DB(), ing: ing, lim: lim, maxMsg: maxMessageBytes, env: env, interval: interval,
		enq: enq, log: log, poller: &mailbox.Poller{Log: log}, now: func() time.Time { return time.Now().UTC() }}
	if ing != nil {
		s.accept = ing.Accept
	}
	return s
}

// row is one line of the mailboxes table.
type row struct {
	ID                  int64
	Name                string
	Source              string
	Host                string
	Port                int
	Username            string
	Folder              string
	UIDValidity         int64 `gorm:"column:uid_validity"`
	LastUID             int64 `gorm:"column:last_uid"`
	LastPollAt          *time.Time
	LastSuccessAt       *time.Time
	LastError           string
	LastResult          string
	ConsecutiveFailures int
	PollLeaseUntil      *time.Time
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

func (row) TableName() string { return "mailboxes" }

// Init writes the env mailbox's row (name "env"), creating it on the first start. When the
// host, username or folder changed, it is another folder: the remembered UIDs mean nothing
// there, and reading restarts from the beginning. Every process may call it; it is one
// idempotent statement. Without an env mailbox it does nothing (a row left from before stays,
// with its history, and is not polled).
func (s *Service) Init(ctx context.Context) error {
	if s.env == nil {
		return nil
	}
	c := s.env.WithDefaults()
	now := s.now()
	var id int64
	err := s.db.WithContext(ctx).Raw(`INSERT INTO mailboxes (name, source, host, port, username, folder, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET
			uid_validity = CASE WHEN mailboxes.host <> excluded.host OR mailboxes.username <> excluded.username
				OR mailboxes.folder <> excluded.folder THEN 0 ELSE mailboxes.uid_validity END,
			last_uid = CASE WHEN mailboxes.host <> excluded.host OR mailboxes.username <> excluded.username
				OR mailboxes.folder <> excluded.folder THEN 0 ELSE mailboxes.last_uid END,
			source = excluded.source, host = excluded.host, port = excluded.port,
			username = excluded.username, folder = excluded.folder, updated_at = excluded.updated_at
		RETURNING id`, EnvName, SourceEnv, c.Host, c.Port, c.Username, c.Folder, now, now).Scan(&id).Error
	if err != nil {
		return fmt.Errorf("mailpoll: save the env mailbox: %w", err)
	}
	if id == 0 {
		return errors.New("mailpoll: save the env mailbox: no id returned")
	}
	s.mu.Lock()
	s.envID = id
	s.mu.Unlock()
	return nil
}

// EnvMailboxID is the env mailbox's row id, writing the row first when Init has not run in
// this process. 0 and no error: no env mailbox.
func (s *Service) EnvMailboxID(ctx context.Context) (int64, error) {
	if s.env == nil {
		return 0, nil
	}
	s.mu.Lock()
	id := s.envID
	s.mu.Unlock()
	if id != 0 {
		return id, nil
	}
	if err := s.Init(ctx); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.envID, nil
}

// Jobs is the scheduler's job polling the env mailbox every interval (none without one).
func (s *Service) Jobs() []schedule.Job {
	if s.env == nil || s.interval <= 0 {
		return nil
	}
	return []schedule.Job{{Name: tasks.TypeMailboxPoll + ":" + EnvName, Interval: s.interval, Build: func(period time.Time) (*asynq.Task, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		id, err := s.EnvMailboxID(ctx)
		if err != nil {
			return nil, err
		}
		return tasks.NewMailboxPollTask(id, period)
	}}}
}

// TriggerAll enqueues a poll of every mailbox now and returns the task ids. The ids are keyed
// to the minute: triggering again within it names the same tasks and enqueues nothing more.
// A stale env row (VIGIL_IMAP_HOST unset since) is left out.
func (s *Service) TriggerAll(ctx context.Context) ([]string, error) {
	if s.enq == nil {
		return nil, errors.New("mailpoll: no task queue in this process")
	}
	if _, err := s.EnvMailboxID(ctx); err != nil {
		return nil, err
	}
	var rows []row
	if err := s.db.WithContext(ctx).Select("id", "source").Order("id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("mailpoll: list mailboxes: %w", err)
	}
	period := s.now().Truncate(time.Minute)
	ids := []string{}
	for _, r := range rows {
		if r.Source == SourceEnv && s.env == nil {
			continue
		}
		t, err := tasks.NewMailboxPollTask(r.ID, period)
		if err != nil {
			return ids, err
		}
		if _, err := s.enq.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return ids, fmt.Errorf("mailpoll: enqueue poll of mailbox %d: %w", r.ID, err)
		}
		ids = append(ids, tasks.MailboxPollTaskID(r.ID, period))
	}
	return ids, nil
}

// HandlePoll runs a mailbox:poll task. A mailbox that cannot be configured or no longer exists
// is not retried (asynq.SkipRetry); a poll already running makes this one a no-op; anything
// else (server or database unreachable) is retried.
func (s *Service) HandlePoll(ctx context.Context, t *asynq.Task) error {
	var p tasks.MailboxPollPayload
	if err := tasks.Decode(t, &p); err != nil {
		return err
	}
	_, err := s.Poll(ctx, p.MailboxID)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrAlreadyPolling):
		s.log.Info("mailbox poll skipped: another poll is running", "mailbox_id", p.MailboxID)
		return nil
	case errors.Is(err, ErrNotConfigured), errors.Is(err, mailbox.ErrInvalidConfig), errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	return err
}

// config is what a mailbox row is polled with.
func (s *Service) config(r row) (mailbox.Config, error) {
	switch {
	case r.Source == SourceEnv && s.env != nil:
		return *s.env, nil
	case r.Source == SourceEnv:
		return mailbox.Config{}, fmt.Errorf("%w: VIGIL_IMAP_HOST is not set (any more)", ErrNotConfigured)
	}
	// Issue 5: API mailboxes with their credentials stored (encrypted) in the database.
	return mailbox.Config{}, fmt.Errorf("%w: credentials of mailboxes added through the API are not stored yet", ErrNotConfigured)
}

func (s *Service) get(ctx context.Context, id int64) (row, error) {
	var r row
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return row{}, fmt.Errorf("mailbox %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return row{}, fmt.Errorf("mailpoll: read mailbox %d: %w", id, err)
	}
	return r, nil
}

// Poll reads the new mail of one mailbox into the pipeline. It takes the mailbox's lease
// first: while another poll holds it, Poll returns ErrAlreadyPolling and touches nothing.
// Whatever happens then, the poll's State, counts and error are saved and the lease released,
// also when ctx is cancelled.
func (s *Service) Poll(ctx context.Context, id int64) (mailbox.Result, error) {
	now := s.now()
	lease := now.Add(LeaseDuration).Truncate(time.Microsecond) // PostgreSQL keeps microseconds
	res := s.db.WithContext(ctx).Model(&row{}).
		Where("id = ? AND (poll_lease_until IS NULL OR poll_lease_until < ?)", id, now).
		Updates(map[string]any{"poll_lease_until": lease, "last_poll_at": now, "updated_at": now})
	if res.Error != nil {
		return mailbox.Result{}, fmt.Errorf("mailpoll: take the lease of mailbox %d: %w", id, res.Error)
	}
	// From here on the lease is ours to release whatever ctx does: database work runs on dctx.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	// Read the row once the lease is held, so the state is the one the previous poll saved.
	r, err := s.get(dctx, id)
	if err != nil {
		if res.RowsAffected > 0 {
			s.db.WithContext(dctx).Model(&row{}).Where("id = ? AND poll_lease_until = ?", id, lease).Update("poll_lease_until", nil)
		}
		return mailbox.Result{}, err
	}
	if res.RowsAffected == 0 {
		return mailbox.Result{State: state(r)}, fmt.Errorf("mailbox %d (%s): %w", id, r.Name, ErrAlreadyPolling)
	}
	if ctx.Err() != nil {
		err = ctx.Err()
	}

	out := mailbox.Result{State: state(r)}
	var cfg mailbox.Config
	if err == nil {
		cfg, err = s.config(r)
	}
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, PollTimeout)
		// The sink names the UIDVALIDITY in each file's source reference; mailbox.Message does
		// not carry it, so ask the server first (read-only). It changes only when the folder
		// is re-created, which between this look and the poll is as good as never.
		var chk mailbox.CheckResult
		if chk, err = s.poller.Check(pctx, cfg); err == nil {
			out, err = s.poller.Poll(pctx, cfg, state(r), s.sink(id, chk.UIDValidity))
		}
		cancel()
	}
	if err != nil {
		err = fmt.Errorf("mailbox %d (%s): %w", id, r.Name, err)
	}
	// Save even when ctx is done: the State counts what was moved, and forgetting it would
	// only make the next poll read those messages again (duplicates, no loss).
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer scancel()
	if serr := s.save(sctx, id, lease, out, err); serr != nil {
		return out, errors.Join(err, serr)
	}
	return out, err
}

func state(r row) mailbox.State {
	return mailbox.State{UIDValidity: uint32(r.UIDValidity), LastUID: uint32(r.LastUID)}
}

// maxProblems bounds the problems kept in last_result.
const maxProblems = 20

// PollProblem is a message the poller could not hand over (mailbox.Problem).
type PollProblem struct {
	UID     uint32 `json:"uid"`
	Size    int64  `json:"size"`
	Reason  string `json:"reason"`
	Invalid bool   `json:"invalid"` // filed in the invalid folder; false: left in place and tried again
}

// PollResult is what last_result holds: the counts of the last poll.
type PollResult struct {
	Seen       int           `json:"seen"`
	Saved      int           `json:"saved"`
	Duplicates int           `json:"duplicates"`
	Invalid    int           `json:"invalid"`
	TooLarge   int           `json:"too_large"`
	Vanished   int           `json:"vanished"`
	Retry      int           `json:"retry"`
	Problems   []PollProblem `json:"problems,omitempty"`
	DurationMS int64         `json:"duration_ms"`
}

func resultOf(r mailbox.Result) PollResult {
	p := PollResult{Seen: r.Seen, Saved: r.Saved, Duplicates: r.Duplicates, Invalid: r.Invalid, TooLarge: r.TooLarge,
		Vanished: r.Vanished, Retry: r.Retry, DurationMS: r.Duration.Milliseconds()}
	for _, pr := range r.Problems[:min(len(r.Problems), maxProblems)] {
		p.Problems = append(p.Problems, PollProblem{UID: pr.UID, Size: pr.Size, Reason: pr.Reason, Invalid: pr.Invalid})
	}
	return p
}

// save records the poll and releases the lease, if this poll still holds it.
func (s *Service) save(ctx context.Context, id int64, lease time.Time, r mailbox.Result, perr error) error {
	counts, err := json.Marshal(resultOf(r))
	if err != nil {
		return err
	}
	now := s.now()
	set := map[string]any{
		"uid_validity": int64(r.State.UIDValidity), "last_uid": int64(r.State.LastUID), "last_result": string(counts),
		"poll_lease_until": nil, "updated_at": now,
	}
	if perr == nil {
		set["last_error"] = ""
		set["last_success_at"] = now
		set["consecutive_failures"] = 0
	} else {
		set["last_error"] = truncate(perr.Error(), 2000)
		set["consecutive_failures"] = gorm.Expr("consecutive_failures + 1")
	}
	res := s.db.WithContext(ctx).Model(&row{}).Where("id = ? AND poll_lease_until = ?", id, lease).Updates(set)
	if res.Error != nil {
		s.log.Error("mailbox poll not recorded: the next poll reads the acknowledged messages again (duplicates, nothing lost)",
			"mailbox_id", id, "uid_validity", r.State.UIDValidity, "last_uid", r.State.LastUID, "err", res.Error)
		return fmt.Errorf("mailpoll: save the state of mailbox %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		s.log.Warn("mailbox poll outlived its lease; its state was not saved", "mailbox_id", id,
			"uid_validity", r.State.UIDValidity, "last_uid", r.State.LastUID)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// sink stores a message through the pipeline and says where it goes: nothing is moved before
// Accept has stored it durably.
func (s *Service) sink(id int64, uidValidity uint32) mailbox.Sink {
	return func(ctx context.Context, m mailbox.Message) (mailbox.Disposition, error) {
		if s.accept == nil {
			return 0, errors.New("mailpoll: no pipeline to store mail in")
		}
		res, err := s.accept(ctx, ingest.File{
			Name:       fmt.Sprintf("%d.eml", m.UID),
			Source:     "imap",
			SourceRef:  fmt.Sprintf("mailbox:%d uidvalidity:%d uid:%d message-id:%s", id, uidValidity, m.UID, m.MessageID),
			ReceivedAt: m.InternalDate,
			Data:       m.Data,
		})
		if err != nil {
			return 0, err
		}
		switch res.Status {
		case ingest.Rejected:
			s.log.Info("mail refused by the pipeline; filed as invalid", "mailbox_id", id, "uid", m.UID, "reason", res.Error)
			return mailbox.Invalid, nil
		case ingest.Duplicate:
			return mailbox.Duplicate, nil
		}
		if ok, reason := mailbox.Classify(m.Data, s.lim); !ok {
			s.log.Info("mail holds no report; filed as invalid", "mailbox_id", id, "uid", m.UID, "ingest_id", res.IngestID, "reason", reason)
			return mailbox.Invalid, nil
		}
		return mailbox.Archive, nil
	}
}

// MailboxStatus is a mailbox's progress and last poll, for the API.
type MailboxStatus struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	Source   string `json:"source"`
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Username string `json:"username"`
	Folder   string `json:"folder"`
	// Configured: a poll has something to connect with (false for a stale env row, and for
	// API mailboxes until their credentials are stored).
	Configured          bool        `json:"configured"`
	UIDValidity         uint32      `json:"uid_validity"`
	LastUID             uint32      `json:"last_uid"`
	Polling             bool        `json:"polling"` // a poll holds the lease now
	LastPollAt          *time.Time  `json:"last_poll_at"`
	LastSuccessAt       *time.Time  `json:"last_success_at"`
	LastError           string      `json:"last_error"`
	LastResult          *PollResult `json:"last_result"` // nil before the first poll ended
	ConsecutiveFailures int         `json:"consecutive_failures"`
	CreatedAt           time.Time   `json:"created_at"`
	UpdatedAt           time.Time   `json:"updated_at"`
}

// Status returns one mailbox's status; an unknown id is store.ErrNotFound (a 404).
func (s *Service) Status(ctx context.Context, id int64) (MailboxStatus, error) {
	r, err := s.get(ctx, id)
	if err != nil {
		return MailboxStatus{}, err
	}
	_, cerr := s.config(r)
	st := MailboxStatus{ID: r.ID, Name: r.Name, Source: r.Source, Host: r.Host, Port: r.Port, Username: r.Username,
		Folder: r.Folder, Configured: cerr == nil, UIDValidity: uint32(r.UIDValidity), LastUID: uint32(r.LastUID),
		Polling:    r.PollLeaseUntil != nil && r.PollLeaseUntil.After(s.now()),
		LastPollAt: utc(r.LastPollAt), LastSuccessAt: utc(r.LastSuccessAt), LastError: r.LastError,
		ConsecutiveFailures: r.ConsecutiveFailures, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
	if r.LastResult != "" && r.LastResult != "{}" {
		var p PollResult
		if err := json.Unmarshal([]byte(r.LastResult), &p); err == nil {
			st.LastResult = &p
		}
	}
	return st, nil
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
