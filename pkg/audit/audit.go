// Package audit records security-relevant actions (logins, user and key changes, uploads,
// exports, rule changes): who, what, when, from where. Entries are only ever added; admins read
// them through GET /audit.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/vigilhq/vigil/pkg/store"
)

// Outcomes of an action.
const (
	Success = "success"
	Failure = "failure"
)

// Actions recorded. Other packages add their own with the same "area.verb" shape.
const (
	Login          = "auth.login"
	Logout         = "auth.logout"
	RefreshReplay  = "auth.refresh_replay" // a used refresh token came back: its family is revoked
	UserCreate     = "user.create"
	UserUpdate     = "user.update"
	UserDelete     = "user.delete"
	PasswordChange = "user.password_change"
	KeyCreate      = "key.create"
	KeyRevoke      = "key.revoke"
	Upload         = "report.upload"
	Export         = "report.export"
	RuleChange     = "alert.rule_change"
	MailboxCreate  = "mailbox.create"
	MailboxUpdate  = "mailbox.update"
	MailboxDelete  = "mailbox.delete"
	TaskTrigger    = "task.trigger"
	MailboxTest    = "mailbox.test"        // an admin had Vigil log in to a mailbox with its stored password
	RawDownload    = "ingest.raw_download" // an admin downloaded a received file's original bytes
)

// Entry is one recorded action.
type Entry struct {
	ID       int64          `json:"id"`
	At       time.Time      `json:"at"`
	ActorID  *int64         `json:"actor_id"`   // nil for an anonymous caller (a failed login)
	Actor    string         `json:"actor"`      // the actor's e-mail then, or the e-mail tried
	APIKeyID *int64         `json:"api_key_id"` // set when the actor used an API key
	Action   string         `json:"action"`
	Outcome  string         `json:"outcome"`
	Target   string         `json:"target,omitempty"` // "user:7", "key:3", "ingest:12"
	IP       string         `json:"ip"`
	Details  map[string]any `json:"details,omitempty"`
}

type row struct {
	ID       int64 `gorm:"primaryKey"`
	At       time.Time
	ActorID  *int64
	Actor    string
	APIKeyID *int64 `gorm:"column:api_key_id"`
	Action   string
	Outcome  string
	Target   string
	IP       string `gorm:"column:ip"`
	Details  string
}

func (row) TableName() string { return "audit_log" }

// Log writes and reads the audit log.
type Log struct {
	db   *gorm.DB
	lock func() (unlock func())
	now  func() time.Time
}

// New returns the audit log kept in the store's database. Its inserts take the store's write
// lock (store.LockWrites): on SQLite they used to meet the process's other writers through
// busy_timeout and could fail with SQLITE_BUSY under load, losing the entry.
func New(st *store.Store) *Log { return &Log{db: st.DB(), lock: st.LockWrites, now: time.Now} }

// Record adds e; At defaults to now. A failure to record is returned: callers decide whether
// the action may go on without its trace (they log it; they never hide it).
func (l *Log) Record(ctx context.Context, e Entry) error {
	if e.At.IsZero() {
		e.At = l.now()
	}
	if e.Outcome == "" {
		e.Outcome = Success
	}
	details := "{}"
	if len(e.Details) > 0 {
		b, err := json.Marshal(e.Details)
		if err != nil {
			return fmt.Errorf("audit: details of %s: %w", e.Action, err)
		}
		details = string(b)
	}
	r := row{At: e.At.UTC(), ActorID: e.ActorID, Actor: e.Actor, APIKeyID: e.APIKeyID, Action: e.Action,
		Outcome: e.Outcome, Target: e.Target, IP: e.IP, Details: details}
	unlock := l.lock()
	err := l.db.WithContext(ctx).Create(&r).Error
	unlock()
	if err != nil {
		return fmt.Errorf("audit: record %s: %w", e.Action, err)
	}
	return nil
}

// Filter narrows a listing; zero fields match everything.
type Filter struct {
	Action  string
	ActorID int64
	Outcome string
	Since   time.Time
	Until   time.Time
}

// List returns one page of entries, newest first, and the total matching.
func (l *Log) List(ctx context.Context, f Filter, page, size int) ([]Entry, int64, error) {
	q := l.db.WithContext(ctx).Model(&row{})
	if f.Action != "" {
		q = q.Where("action = ?", f.Action)
	}
	if f.ActorID != 0 {
		q = q.Where("actor_id = ?", f.ActorID)
	}
	if f.Outcome != "" {
		q = q.Where("outcome = ?", f.Outcome)
	}
	if !f.Since.IsZero() {
		q = q.Where("at >= ?", f.Since.UTC())
	}
	if !f.Until.IsZero() {
		q = q.Where("at < ?", f.Until.UTC())
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, fmt.Errorf("audit: count: %w", err)
	}
	var rows []row
	if err := q.Order("at DESC, id DESC").Offset((page - 1) * size).Limit(size).Find(&rows).Error; err != nil {
		return nil, 0, fmt.Errorf("audit: list: %w", err)
	}
	out := make([]Entry, 0, len(rows))
	for _, r := range rows {
		e := Entry{ID: r.ID, At: r.At.UTC(), ActorID: r.ActorID, Actor: r.Actor, APIKeyID: r.APIKeyID, Action: r.Action,
			Outcome: r.Outcome, Target: r.Target, IP: r.IP}
		if r.Details != "" && r.Details != "{}" {
			if err := json.Unmarshal([]byte(r.Details), &e.Details); err != nil {
				return nil, 0, fmt.Errorf("audit: entry %d details: %w", r.ID, err)
			}
		}
		out = append(out, e)
	}
	return out, total, nil
}
