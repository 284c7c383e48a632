// Package digest mails scheduled DMARC digests: a user subscribes a set of domains (or all)
// to a weekly or monthly e-mail with the summary in HTML and plain text and the PDF summary
// and/or the XLSX workbook attached (rendered by pkg/export). The scheduler's digest:dispatch
// enqueues one digest:send per subscription and period (TaskID keyed to both), and the
// digest_deliveries row of that pair makes a period go out once, past any task retention.
// Mail goes through the VIGIL_SMTP_* server that alert e-mail uses (pkg/notify).
package digest

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	gomail "github.com/wneessen/go-mail"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/vigilhq/vigil/pkg/export"
	"github.com/vigilhq/vigil/pkg/notify"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/tasks"
)

// Frequencies and attachment formats a subscription may take.
var (
	Frequencies = []string{"weekly", "monthly"}
	Formats     = []string{"pdf", "xlsx"}
)

// MaxDomains bounds one subscription's domain set (each domain is one summary and one
// attachment per format).
const MaxDomains = 20

// Subscription is one user's digest (a row of digest_subscriptions).
type Subscription struct {
	ID        int64
	UserID    int64
	Email     string
	Frequency string
	Domains   string // JSON list
	Formats   string // JSON list
	Enabled   bool
	CreatedAt int64 `gorm:"autoCreateTime:false"`
}

// TableName is digest_subscriptions.
func (Subscription) TableName() string { return "digest_subscriptions" }

// delivery is a period sent (or being sent) for a subscription.
type delivery struct {
	SubscriptionID int64 `gorm:"primaryKey"`
	PeriodStart    int64 `gorm:"primaryKey"`
	Status         string
	SentAt         *int64
}

func (delivery) TableName() string { return "digest_deliveries" }

// Enqueuer is the part of *asynq.Client the dispatch needs.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Deps are what the service needs.
type Deps struct {
	Store  *store.Store
	Export *export.Service
	Queue  Enqueuer // nil: dispatch cannot enqueue (api-only processes)
	SMTP   notify.SMTPConfig
	Log    *slog.Logger
	Now    func() time.Time
}

// Service manages subscriptions and sends digests.
type Service struct {
	db     *gorm.DB
	export *export.Service
	queue  Enqueuer
	smtp   notify.SMTPConfig
	log    *slog.Logger
	now    func() time.Time
}

// New builds the service.
func New(d Deps) *Service {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{db: d.Store.DB(), export: d.Export, queue: d.Queue, smtp: d.SMTP, log: d.Log, now: d.Now}
}

// Period is the last complete period of a frequency before now: the previous ISO week
// (Monday 00:00 UTC to the next Monday) or the previous calendar month.
func Period(freq string, now time.Time) (start, end time.Time) {
	now = now.UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	if freq == "monthly" {
		end = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
		return end.AddDate(0, -1, 0), end
	}
	end = day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7)) // this week's Monday
	return end.AddDate(0, 0, -7), end
}

// HandleDispatch enqueues the digest of the last complete period for every enabled
// subscription that has not had it yet. Ticks every hour re-find what a lost task missed.
func (s *Service) HandleDispatch(ctx context.Context, _ *asynq.Task) error {
	if s.queue == nil {
		return fmt.Errorf("digest: no queue: %w", asynq.SkipRetry)
	}
	var subs []Subscription
	if err := s.db.WithContext(ctx).Where("enabled = ?", true).Find(&subs).Error; err != nil {
		return fmt.Errorf("digest dispatch: %w", err)
	}
	now := s.now()
	for _, sub := range subs {
		start, _ := Period(sub.Frequency, now)
		var n int64
		if err := s.db.WithContext(ctx).Model(&delivery{}).Where("subscription_id = ? AND period_start = ? AND status = ?", sub.ID, start.Unix(), "sent").Count(&n).Error; err != nil {
			return fmt.Errorf("digest dispatch: %w", err)
		}
		if n > 0 {
			continue
		}
		t, err := tasks.NewDigestSendTask(sub.ID, start)
		if err != nil {
			return err
		}
		if _, err := s.queue.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return fmt.Errorf("digest dispatch: enqueue %d: %w", sub.ID, err)
		}
	}
	return nil
}

// HandleSend builds and mails one digest. The delivery row is claimed first; a period already
// sent completes at once. A failure to send leaves the row unsent, so the retry sends it (at
// least once: a crash between the SMTP server's acceptance and the commit can send twice).
func (s *Service) HandleSend(ctx context.Context, t *asynq.Task) error {
	var p tasks.DigestSendPayload
	if err := tasks.Decode(t, &p); err != nil {
		return err
	}
	var sub Subscription
	err := s.db.WithContext(ctx).Take(&sub, p.SubscriptionID).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil // unsubscribed meanwhile
	}
	if err != nil {
		return fmt.Errorf("digest %d: %w", p.SubscriptionID, err)
	}
	key := delivery{SubscriptionID: sub.ID, PeriodStart: p.Period.Unix(), Status: "sending"}
	if err := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&key).Error; err != nil {
		return fmt.Errorf("digest %d: claim: %w", sub.ID, err)
	}
	var cur delivery
	if err := s.db.WithContext(ctx).Take(&cur, "subscription_id = ? AND period_start = ?", sub.ID, key.PeriodStart).Error; err != nil {
		return fmt.Errorf("digest %d: %w", sub.ID, err)
	}
	if cur.Status == "sent" {
		return nil
	}
	if err := s.Send(ctx, sub, p.Period); err != nil {
		if errors.Is(err, notify.ErrPermanent) {
			return fmt.Errorf("digest %d: %w: %w", sub.ID, err, asynq.SkipRetry)
		}
		return fmt.Errorf("digest %d: %w", sub.ID, err)
	}
	now := s.now().Unix()
	return s.db.WithContext(ctx).Model(&delivery{}).Where("subscription_id = ? AND period_start = ?", sub.ID, key.PeriodStart).
		Updates(map[string]any{"status": "sent", "sent_at": now}).Error
}

func list(js string) []string {
	var out []string
	_ = json.Unmarshal([]byte(js), &out)
	return out
}

// Send builds the digest of sub for the period starting at start and mails it.
func (s *Service) Send(ctx context.Context, sub Subscription, start time.Time) error {
	if s.smtp.Host == "" || s.smtp.From == "" {
		return fmt.Errorf("%w: digests need VIGIL_SMTP_HOST and VIGIL_SMTP_FROM", notify.ErrPermanent)
	}
	end := start.AddDate(0, 1, 0)
	if sub.Frequency == "weekly" {
		end = start.AddDate(0, 0, 7)
	}
	domains := list(sub.Domains)
	if len(domains) == 0 {
		domains = []string{""}
	}
	formats := list(sub.Formats)
	m := gomail.NewMsg()
	if err := m.From(s.smtp.From); err != nil {
		return fmt.Errorf("%w: VIGIL_SMTP_FROM: %v", notify.ErrPermanent, err)
	}
	if err := m.To(sub.Email); err != nil {
		return fmt.Errorf("%w: recipient: %v", notify.ErrPermanent, err)
	}
	var sums []*export.Summary
	for _, d := range domains {
		f := store.Filter{Domain: d, Start: start, End: end}
		sum, err := s.export.Collect(ctx, f)
		if err != nil {
			return err
		}
		sums = append(sums, sum)
		name := d
		if name == "" {
			name = "all-domains"
		}
		base := fmt.Sprintf("vigil-digest-%s-%s", name, start.Format("2006-01-02"))
		if slices.Contains(formats, "pdf") {
			var b bytes.Buffer
			if err := s.export.PDF(ctx, &b, f); err != nil {
				return err
			}
			if err := m.AttachReader(base+".pdf", bytes.NewReader(b.Bytes()), gomail.WithFileContentType(export.TypePDF)); err != nil {
				return err
			}
		}
		if slices.Contains(formats, "xlsx") {
			var b bytes.Buffer
			if err := s.export.Workbook(ctx, &b, f); err != nil {
				return err
			}
			if err := m.AttachReader(base+".xlsx", bytes.NewReader(b.Bytes()), gomail.WithFileContentType(gomail.ContentType(export.TypeXLSX))); err != nil {
				return err
			}
		}
	}
	label := strings.Join(domains, ", ")
	if domains[0] == "" {
		label = "all domains"
	}
	m.Subject(clean(fmt.Sprintf("Vigil %s DMARC digest: %s, %s to %s", sub.Frequency, label, start.Format("2006-01-02"), end.AddDate(0, 0, -1).Format("2006-01-02"))))
	txt, html, err := bodies(sums, sub.Frequency, start, end)
	if err != nil {
		return err
	}
	m.SetBodyString(gomail.TypeTextPlain, txt)
	m.AddAlternativeString(gomail.TypeTextHTML, html)
	return s.smtp.Send(ctx, m)
}

// clean keeps a header value on one line: a domain or org name cannot add headers.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r < 0x20 {
			return ' '
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// validEmail accepts one bare address.
func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && a.Name == ""
}
