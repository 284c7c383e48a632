// Package mailpoll runs mailbox polls for the pipeline: it keeps the IMAP mailboxes Vigil reads
// in the mailboxes table (the one from VIGIL_IMAP_* as the row named "env", others added
// through the API with their passwords sealed by pkg/secretbox), polls one at a time per
// mailbox under a database lease with pkg/mailbox, hands messages to ingest.Service.AcceptBatch
// before the poller may move them, and remembers after every poll, failed or not, how far the
// mailbox was read and what the poll did.
//
// Every minute the scheduler's mailbox:dispatch (HandleDispatch) enqueues a poll of each
// enabled mailbox whose interval has begun a new period; an API trigger (Trigger) polls every
// mailbox, or one, at once. Both enqueue mailbox:poll tasks, which a worker runs through
// HandlePoll.
package mailpoll

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"gorm.io/gorm"

	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/mailbox"
	"github.com/vigilhq/vigil/pkg/outbound"
	"github.com/vigilhq/vigil/pkg/schedule"
	"github.com/vigilhq/vigil/pkg/secretbox"
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
	// mailbox after VIGIL_IMAP_HOST was unset, an API mailbox whose password this process
	// cannot decrypt or whose token directory is not set, a disabled mailbox). Polling it
	// again cannot help.
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
	keys     *secretbox.Keyring
	tokenDir string
	outbound *outbound.Policy
	log      *slog.Logger
	now      func() time.Time
	accept   func(context.Context, []ingest.File) ([]ingest.Result, error) // ing.AcceptBatch; tests wrap it

	mu    sync.Mutex
	envID int64 // the env row's id once Init has run
}

// Deps is what New needs.
type Deps struct {
	Store  *store.Store
	Ingest *ingest.Service
	Limits unwrap.Limits
	// MaxMessageBytes caps the messages downloaded (keep it the pipeline's file size limit).
	MaxMessageBytes int64
	// Env is the mailbox from the environment (nil: none).
	Env *mailbox.Config
	// Interval is how often mailboxes are polled unless one says otherwise.
	Interval time.Duration
	// Enqueuer may be nil in processes that never enqueue.
	Enqueuer Enqueuer
	// Keys seals and opens the passwords of API mailboxes; nil: this process cannot (the
	// API refuses to store a password, and a poll of such a mailbox fails saying why).
	Keys *secretbox.Keyring
	// TokenDir is VIGIL_IMAP_TOKEN_DIR: the directory API mailboxes' XOAUTH2 token files
	// are named in; "" allows none.
	TokenDir string
	// Outbound is the destination policy for mailboxes added through the API (checked when
	// saved and at connect time); nil: the default policy (no loopback, link-local, metadata
	// or private address). The env mailbox is the operator's and exempt.
	Outbound *outbound.Policy
	Log      *slog.Logger
}

// New builds the service.
func New(d Deps) *Service {
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var env *mailbox.Config
	if d.Env != nil {
		c := *d.Env
		if d.MaxMessageBytes > 0 && (c.MaxMessageBytes == 0 || c.MaxMessageBytes > d.MaxMessageBytes) {
			c.MaxMessageBytes = d.MaxMessageBytes
		}
		env = &c
	}
	interval := d.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	s := &Service{st: d.Store, db: d.Store.DB(), ing: d.Ingest, lim: d.Limits, maxMsg: d.MaxMessageBytes, env: env,
		interval: interval, enq: d.Enqueuer, keys: d.Keys, tokenDir: d.TokenDir, log: log, outbound: d.Outbound,
		now: func() time.Time { return time.Now().UTC() }}
	if d.Ingest != nil {
		s.accept = d.Ingest.AcceptBatch
	}
	return s
}

// DefaultInterval is how often mailboxes are polled when nothing says otherwise.
const DefaultInterval = 15 * time.Minute

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

	// Settings of API mailboxes (migration 00005).
	Enabled             bool
	TLS                 string `gorm:"column:tls"`
	AllowPlain          bool
	ArchiveFolder       string
	InvalidFolder       string
	Policy              string
	BatchSize           int
	PollIntervalSeconds int
	OAuth2TokenFile     string `gorm:"column:oauth2_token_file"`
	CAPEM               string `gorm:"column:ca_pem"`
	PasswordSealed      []byte
	Progress            string
}

func (row) TableName() string { return "mailboxes" }

// settings is an API mailbox's configuration without its credentials.
func (r row) settings() mailbox.Config {
	return mailbox.Config{Host: r.Host, Port: r.Port, Username: r.Username, TLS: mailbox.TLSMode(r.TLS),
		AllowPlain: r.AllowPlain, CAPEM: r.CAPEM, Folder: r.Folder, ArchiveFolder: r.ArchiveFolder,
		InvalidFolder: r.InvalidFolder, Policy: mailbox.Policy(r.Policy), BatchSize: r.BatchSize}
}

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
	// The settings columns only mirror the environment here, for GET /api/mailboxes.
	err := s.db.WithContext(ctx).Raw(`INSERT INTO mailboxes (name, source, host, port, username, folder,
			tls, allow_plain, archive_folder, invalid_folder, policy, batch_size, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET
			uid_validity = CASE WHEN mailboxes.host <> excluded.host OR mailboxes.username <> excluded.username
				OR mailboxes.folder <> excluded.folder THEN 0 ELSE mailboxes.uid_validity END,
			last_uid = CASE WHEN mailboxes.host <> excluded.host OR mailboxes.username <> excluded.username
				OR mailboxes.folder <> excluded.folder THEN 0 ELSE mailboxes.last_uid END,
			source = excluded.source, host = excluded.host, port = excluded.port,
			username = excluded.username, folder = excluded.folder, tls = excluded.tls,
			allow_plain = excluded.allow_plain, archive_folder = excluded.archive_folder,
			invalid_folder = excluded.invalid_folder, policy = excluded.policy,
			batch_size = excluded.batch_size, updated_at = excluded.updated_at
		RETURNING id`, EnvName, SourceEnv, c.Host, c.Port, c.Username, c.Folder, string(c.TLS), c.AllowPlain,
		c.ArchiveFolder, c.InvalidFolder, string(c.Policy), c.BatchSize, now, now).Scan(&id).Error
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

// DispatchInterval is how often the scheduler looks for mailboxes due a poll. Each mailbox's
// own interval (VIGIL_IMAP_POLL_INTERVAL unless it sets one) decides when it is due.
const DispatchInterval = time.Minute

// Jobs is the scheduler's job: every DispatchInterval, a mailbox:dispatch task (one per
// minute, whatever the number of ticks) enqueues the polls that are due.
func (s *Service) Jobs() []schedule.Job {
	return []schedule.Job{{Name: tasks.TypeMailboxDispatch, Interval: DispatchInterval, Build: tasks.NewMailboxDispatchTask}}
}

// HandleDispatch enqueues a poll of every enabled mailbox for the period of its interval it
// is in now. The poll's TaskID is keyed to that period and kept for an interval after it
// ran, so the dispatches of the following minutes enqueue nothing more until the next period.
func (s *Service) HandleDispatch(ctx context.Context, t *asynq.Task) error {
	if s.enq == nil {
		return errors.New("mailpoll: no task queue in this process")
	}
	if _, err := s.EnvMailboxID(ctx); err != nil {
		return err
	}
	var rows []row
	if err := s.db.WithContext(ctx).Select("id", "source", "enabled", "poll_interval_seconds").
		Where("enabled").Order("id").Find(&rows).Error; err != nil {
		return fmt.Errorf("mailpoll: list mailboxes: %w", err)
	}
	now := s.now()
	var errs []error
	for _, r := range rows {
		if r.Source == SourceEnv && s.env == nil {
			continue
		}
		every := s.intervalOf(r)
		task, err := tasks.NewMailboxPollTask(r.ID, now.Truncate(every), every)
		if err == nil {
			_, err = s.enq.EnqueueContext(ctx, task)
		}
		if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			errs = append(errs, fmt.Errorf("mailpoll: enqueue poll of mailbox %d: %w", r.ID, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Service) intervalOf(r row) time.Duration {
	if r.Source == SourceAPI && r.PollIntervalSeconds > 0 {
		return time.Duration(r.PollIntervalSeconds) * time.Second
	}
	return s.interval
}

// Trigger enqueues a poll now of one mailbox (id > 0) or of every enabled one (id 0), and
// returns the task ids. The ids are keyed to the minute: triggering again within it names the
// same tasks and enqueues nothing more. A stale env row (VIGIL_IMAP_HOST unset since) is left
// out of "every"; naming a disabled or stale mailbox is ErrNotConfigured, an unknown one
// store.ErrNotFound.
func (s *Service) Trigger(ctx context.Context, id int64) ([]string, error) {
	if s.enq == nil {
		return nil, errors.New("mailpoll: no task queue in this process")
	}
	if _, err := s.EnvMailboxID(ctx); err != nil {
		return nil, err
	}
	var rows []row
	if id > 0 {
		r, err := s.get(ctx, id)
		if err != nil {
			return nil, err
		}
		switch {
		case !r.Enabled:
			return nil, fmt.Errorf("%w: mailbox %d is disabled (PATCH it with \"enabled\": true)", ErrNotConfigured, id)
		case r.Source == SourceEnv && s.env == nil:
			return nil, fmt.Errorf("%w: mailbox %d came from VIGIL_IMAP_HOST, which is not set any more", ErrNotConfigured, id)
		}
		rows = []row{r}
	} else if err := s.db.WithContext(ctx).Select("id", "source").Where("enabled").Order("id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("mailpoll: list mailboxes: %w", err)
	}
	period := s.now().Truncate(time.Minute)
	ids := []string{}
	for _, r := range rows {
		if r.Source == SourceEnv && s.env == nil {
			continue
		}
		t, err := tasks.NewMailboxPollTask(r.ID, period, time.Hour)
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
// else (server or database unreachable) is retried. The poll's counts are the task's result,
// for GET /tasks/status/{task_id}.
func (s *Service) HandlePoll(ctx context.Context, t *asynq.Task) error {
	var p tasks.MailboxPollPayload
	if err := tasks.Decode(t, &p); err != nil {
		return err
	}
	res, err := s.Poll(ctx, p.MailboxID)
	if w := t.ResultWriter(); w != nil && !errors.Is(err, ErrAlreadyPolling) {
		if b, jerr := json.Marshal(resultOf(res)); jerr == nil {
			w.Write(b) // best effort: the mailbox row keeps the same counts
		}
	}
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

// policy is the outbound policy API mailboxes are held to.
func (s *Service) policy() *outbound.Policy {
	if s.outbound == nil {
		return &outbound.Policy{}
	}
	return s.outbound
}

// checkHost refuses, when a mailbox is saved, a host the outbound policy refuses; the error
// names the rule.
func (s *Service) checkHost(ctx context.Context, host string) error {
	if err := s.policy().CheckHost(ctx, host); err != nil {
		return fmt.Errorf("%w: host: %s", ErrInvalid, strings.TrimPrefix(err.Error(), outbound.ErrRefused.Error()+": "))
	}
	return nil
}

// passwordPurpose binds a sealed password to its use (secretbox authenticates it).
const passwordPurpose = "vigil mailbox password"

// config is what a mailbox row is polled with.
func (s *Service) config(r row) (mailbox.Config, error) {
	switch {
	case r.Source == SourceEnv && s.env != nil:
		return *s.env, nil
	case r.Source == SourceEnv:
		return mailbox.Config{}, fmt.Errorf("%w: VIGIL_IMAP_HOST is not set (any more)", ErrNotConfigured)
	}
	c := r.settings()
	c.MaxMessageBytes = s.maxMsg
	c.Dial = s.policy().DialContext
	switch {
	case r.OAuth2TokenFile != "":
		path, err := s.tokenPath(r.OAuth2TokenFile)
		if err != nil {
			return mailbox.Config{}, fmt.Errorf("%w: %w", ErrNotConfigured, err)
		}
		c.OAuth2TokenFile = path
	case r.PasswordSealed != nil:
		if s.keys == nil {
			return mailbox.Config{}, fmt.Errorf("%w: its password is encrypted and VIGIL_ENCRYPTION_KEY is not set in this process", ErrNotConfigured)
		}
		pw, err := s.keys.Open(r.PasswordSealed, passwordPurpose)
		if err != nil {
			return mailbox.Config{}, fmt.Errorf("%w: its password cannot be decrypted (%w): set the key it was stored with in VIGIL_ENCRYPTION_KEY or VIGIL_ENCRYPTION_OLD_KEYS, or PATCH a new password", ErrNotConfigured, err)
		}
		c.Password = string(pw)
	default:
		return mailbox.Config{}, fmt.Errorf("%w: no password or oauth2_token_file stored (PATCH one)", ErrNotConfigured)
	}
	return c, nil
}

// tokenPath resolves an API mailbox's token file name inside TokenDir. Only a plain file name
// is accepted, so the name cannot leave the directory.
func (s *Service) tokenPath(name string) (string, error) {
	if s.tokenDir == "" {
		return "", errors.New("oauth2_token_file: VIGIL_IMAP_TOKEN_DIR is not set in this process")
	}
	if name != filepath.Base(name) || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
		return "", fmt.Errorf("oauth2_token_file %q: a file name inside VIGIL_IMAP_TOKEN_DIR, not a path", name)
	}
	return filepath.Join(s.tokenDir, name), nil
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
		Updates(map[string]any{"poll_lease_until": lease, "last_poll_at": now, "updated_at": now, "progress": "{}"})
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
		s.reseal(dctx, r)
		pctx, cancel := context.WithTimeout(ctx, PollTimeout)
		p := &mailbox.Poller{Log: s.log, Progress: s.progress(pctx, id, lease)}
		out, err = p.PollBatch(pctx, cfg, state(r), s.sink(id), mailbox.Grouping{Messages: ingest.BatchFiles, Bytes: ingest.BatchBytes})
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

// Progress is how far the running poll of a mailbox got, for GET /api/mailboxes/{id}.
type Progress struct {
	Done      int       `json:"done"`  // messages handled so far
	Total     int       `json:"total"` // messages found to read in this poll
	UpdatedAt time.Time `json:"updated_at"`
}

// progressEvery spaces out progress writes: a backlog drains in batches of 100 messages,
// which may take milliseconds each.
const progressEvery = time.Second

// progress writes the poll's progress to its row, at most every progressEvery and at the
// start and end. A failed write only loses a progress figure.
func (s *Service) progress(ctx context.Context, id int64, lease time.Time) func(done, total int) {
	var last time.Time
	return func(done, total int) {
		now := s.now()
		if done != 0 && done != total && now.Sub(last) < progressEvery {
			return
		}
		last = now
		b, _ := json.Marshal(Progress{Done: done, Total: total, UpdatedAt: now})
		if err := s.db.WithContext(ctx).Model(&row{}).Where("id = ? AND poll_lease_until = ?", id, lease).
			Update("progress", string(b)).Error; err != nil {
			s.log.Debug("mailbox progress not saved", "mailbox_id", id, "err", err)
		}
	}
}

// reseal writes a password sealed with an old key again under the current one (key rotation:
// once every mailbox was polled, the old key can go).
func (s *Service) reseal(ctx context.Context, r row) {
	if r.Source != SourceAPI || r.PasswordSealed == nil || s.keys == nil || !s.keys.NeedsReseal(r.PasswordSealed) {
		return
	}
	pw, err := s.keys.Open(r.PasswordSealed, passwordPurpose)
	if err != nil {
		return
	}
	sealed, err := s.keys.Seal(pw, passwordPurpose)
	if err == nil {
		err = s.db.WithContext(ctx).Model(&row{}).Where("id = ? AND password_sealed = ?", r.ID, r.PasswordSealed).
			Update("password_sealed", sealed).Error
	}
	if err != nil {
		s.log.Warn("mailbox password not re-sealed with the current key", "mailbox_id", r.ID, "err", err)
		return
	}
	s.log.Info("mailbox password re-sealed with the current key", "mailbox_id", r.ID, "key_id", s.keys.KeyID())
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
		"poll_lease_until": nil, "updated_at": now, "progress": "{}",
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

// sink stores a group of messages through the pipeline (one durable commit for all) and says
// where each goes: nothing is moved before AcceptBatch has stored it.
func (s *Service) sink(id int64) mailbox.BatchSink {
	return func(ctx context.Context, msgs []mailbox.Message) ([]mailbox.Disposition, error) {
		if s.accept == nil {
			return nil, errors.New("mailpoll: no pipeline to store mail in")
		}
		files := make([]ingest.File, len(msgs))
		for i, m := range msgs {
			files[i] = ingest.File{
				Name:       fmt.Sprintf("%d.eml", m.UID),
				Source:     "imap",
				SourceRef:  fmt.Sprintf("mailbox:%d uidvalidity:%d uid:%d message-id:%s", id, m.UIDValidity, m.UID, m.MessageID),
				ReceivedAt: m.InternalDate,
				Data:       m.Data,
			}
		}
		res, err := s.accept(ctx, files)
		if err != nil {
			return nil, err
		}
		out := make([]mailbox.Disposition, len(msgs))
		for i, m := range msgs {
			switch ok, reason := mailbox.Classify(m.Data, s.lim); {
			case res[i].Status == ingest.Rejected:
				s.log.Info("mail refused by the pipeline; filed as invalid", "mailbox_id", id, "uid", m.UID, "reason", res[i].Error)
				out[i] = mailbox.Invalid
			case !ok: // a second copy of a message without a report goes where the first went
				s.log.Info("mail holds no report; filed as invalid", "mailbox_id", id, "uid", m.UID, "ingest_id", res[i].IngestID, "reason", reason)
				out[i] = mailbox.Invalid
			case res[i].Status == ingest.Duplicate:
				out[i] = mailbox.Duplicate
			default:
				out[i] = mailbox.Archive
			}
		}
		return out, nil
	}
}
