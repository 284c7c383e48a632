package alerting

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"gorm.io/gorm"

	"github.com/vigilhq/vigil/tasks"
)

// Delivery is the outcome of one alert on one channel.
type Delivery struct {
	ChannelID int64     `json:"channel_id"`
	Status    string    `json:"status"` // pending, sent, failed
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Event is one step of an alert's history.
type Event struct {
	At     time.Time `json:"at"`
	Action string    `json:"action"` // created, suppressed, acknowledged, resolved
	Actor  string    `json:"actor"`
	Note   string    `json:"note"`
}

// Alert is one raised (or suppressed) alert.
type Alert struct {
	ID             int64          `json:"id"`
	RuleID         *int64         `json:"rule_id"`
	Type           string         `json:"type"`
	Severity       string         `json:"severity"`
	Domain         string         `json:"domain"`
	Status         string         `json:"status"`
	Fingerprint    string         `json:"fingerprint"`
	Title          string         `json:"title"`
	Detail         string         `json:"detail"`
	Data           map[string]any `json:"data"`
	SuppressionID  *int64         `json:"suppression_id"`
	CreatedAt      time.Time      `json:"created_at"`
	AcknowledgedAt *time.Time     `json:"acknowledged_at"`
	AcknowledgedBy *string        `json:"acknowledged_by"`
	ResolvedAt     *time.Time     `json:"resolved_at"`
	ResolvedBy     *string        `json:"resolved_by"`
	Note           string         `json:"note"`
	Deliveries     []Delivery     `json:"deliveries"`
	History        []Event        `json:"history,omitempty"`
}

// StoredAlert is an alert as the alerts table holds it, for a caller that reads alerts in a
// join of its own (the delivery task reads its delivery, channel and alert in one statement);
// Alert converts it.
type StoredAlert struct {
	ID             int64 `gorm:"primaryKey"`
	RuleID         *int64
	Type           string
	Severity       string
	Domain         string
	Status         string
	Fingerprint    string
	Title          string
	Detail         string
	Data           string
	SuppressionID  *int64
	CreatedAt      int64 `gorm:"autoCreateTime:false"`
	AcknowledgedAt *int64
	AcknowledgedBy *string
	ResolvedAt     *int64
	ResolvedBy     *string
	Note           string
}

func (StoredAlert) TableName() string { return "alerts" }

type eventRow struct {
	ID      int64 `gorm:"primaryKey"`
	AlertID int64
	At      int64
	Action  string
	Actor   string
	Note    string
}

func (eventRow) TableName() string { return "alert_events" }

type deliveryRow struct {
	AlertID   int64 `gorm:"primaryKey;autoIncrement:false"`
	ChannelID int64 `gorm:"primaryKey;autoIncrement:false"`
	Status    string
	Attempts  int
	LastError string
	UpdatedAt int64 `gorm:"autoUpdateTime:false"`
}

func (deliveryRow) TableName() string { return "alert_deliveries" }

// Alert is the alert as the API shows it, without deliveries and history.
func (r StoredAlert) Alert() Alert { return r.alert() }

func (r StoredAlert) alert() Alert {
	a := Alert{ID: r.ID, RuleID: r.RuleID, Type: r.Type, Severity: r.Severity, Domain: r.Domain, Status: r.Status,
		Fingerprint: r.Fingerprint, Title: r.Title, Detail: r.Detail, SuppressionID: r.SuppressionID,
		CreatedAt: time.Unix(r.CreatedAt, 0).UTC(), AcknowledgedAt: unixPtr(r.AcknowledgedAt), AcknowledgedBy: r.AcknowledgedBy,
		ResolvedAt: unixPtr(r.ResolvedAt), ResolvedBy: r.ResolvedBy, Note: r.Note, Deliveries: []Delivery{}}
	_ = json.Unmarshal([]byte(r.Data), &a.Data)
	return a
}

// Fingerprint identifies a condition: SHA-256 of rule, type, domain and the identifying detail
// (source address, reporter, day; "" for a rule's one condition per domain).
func Fingerprint(ruleID int64, typ, domain, key string) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%d\x00%s\x00%s\x00%s", ruleID, typ, domain, key)))
	return hex.EncodeToString(sum[:])
}

// raise records f as an alert unless its fingerprint raised one within the rule's cooldown.
// The cooldown row is taken by a conditional upsert in the alert's transaction: of concurrent
// evaluations, the first to write the row raises, the others find it fresh and raise nothing
// (PostgreSQL re-checks the WHERE on the row the winner committed; SQLite has one writer).
// It returns the new alert's status, or "" when the cooldown held it back.
func (s *Service) raise(ctx context.Context, r Rule, f finding, sups []suppressionRow) (string, error) {
	fp := Fingerprint(r.ID, r.Type, f.domain, f.key)
	now := s.now()
	sup := activeSuppression(sups, f.domain, r.Type, r.Severity, now)
	status := StatusOpen
	if sup != nil {
		status = StatusSuppressed
	}
	data, _ := json.Marshal(f.data)
	var alertID int64
	var channels []int64
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var got []string
		err := tx.Raw(`INSERT INTO alert_cooldowns (fingerprint, raised_at) VALUES (?, ?)
			ON CONFLICT (fingerprint) DO UPDATE SET raised_at = excluded.raised_at, alert_id = NULL
			WHERE alert_cooldowns.raised_at <= ?
			RETURNING fingerprint`, fp, now.Unix(), now.Add(-r.cooldown).Unix()).Scan(&got).Error
		if err != nil {
			return fmt.Errorf("take cooldown: %w", err)
		}
		if len(got) == 0 {
			return nil
		}
		rid := r.ID
		row := StoredAlert{RuleID: &rid, Type: r.Type, Severity: r.Severity, Domain: f.domain, Status: status, Fingerprint: fp,
			Title: f.title, Detail: f.detail, Data: string(data), SuppressionID: sup, CreatedAt: now.Unix()}
		if err := tx.Create(&row).Error; err != nil {
			return fmt.Errorf("insert alert: %w", err)
		}
		alertID = row.ID
		if err := tx.Exec("UPDATE alert_cooldowns SET alert_id = ? WHERE fingerprint = ?", row.ID, fp).Error; err != nil {
			return err
		}
		action, note := "created", ""
		if sup != nil {
			action, note = StatusSuppressed, fmt.Sprintf("maintenance window %d", *sup)
		}
		if err := tx.Create(&eventRow{AlertID: row.ID, At: now.Unix(), Action: action, Actor: "system", Note: note}).Error; err != nil {
			return err
		}
		if sup != nil || len(r.ChannelIDs) == 0 {
			return nil
		}
		if err := tx.Table("alert_channels").Where("id IN ? AND enabled", r.ChannelIDs).Order("id").Pluck("id", &channels).Error; err != nil {
			return err
		}
		for _, ch := range channels {
			if err := tx.Create(&deliveryRow{AlertID: row.ID, ChannelID: ch, Status: "pending", UpdatedAt: now.Unix()}).Error; err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || alertID == 0 {
		return "", err
	}
	s.log.Info("alert raised", "alert_id", alertID, "rule_id", r.ID, "type", r.Type, "domain", f.domain, "status", status)
	for _, ch := range channels {
		if err := s.EnqueueDelivery(ctx, alertID, ch); err != nil {
			// The delivery stays pending; the next evaluation's sweep enqueues it again.
			s.log.Warn("alerting: delivery not enqueued", "alert_id", alertID, "channel_id", ch, "err", err)
		}
	}
	return status, nil
}

// EnqueueDelivery queues the delivery of an alert to a channel (TaskID: one per pair).
func (s *Service) EnqueueDelivery(ctx context.Context, alertID, channelID int64) error {
	if s.q == nil {
		return errors.New("no task queue in this process")
	}
	t, err := tasks.NewAlertDeliverTask(alertID, channelID)
	if err != nil {
		return err
	}
	if _, err := s.q.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return err
	}
	return nil
}

// RequeuePending enqueues again deliveries still pending after grace (their task was lost
// with an in-process Redis, or never enqueued); the TaskID keeps live ones from doubling.
func (s *Service) RequeuePending(ctx context.Context, grace time.Duration) (int, error) {
	var rows []deliveryRow
	if err := s.db.WithContext(ctx).Where("status = ? AND updated_at < ?", "pending", s.now().Add(-grace).Unix()).
		Limit(1000).Find(&rows).Error; err != nil {
		return 0, fmt.Errorf("pending deliveries: %w", err)
	}
	for _, d := range rows {
		if err := s.EnqueueDelivery(ctx, d.AlertID, d.ChannelID); err != nil {
			return 0, err
		}
	}
	return len(rows), nil
}

// Get returns one alert with its deliveries and history.
func (s *Service) Get(ctx context.Context, id int64) (Alert, error) {
	var r StoredAlert
	if err := s.db.WithContext(ctx).First(&r, id).Error; err != nil {
		return Alert{}, notFound(err, "alert", id)
	}
	a := r.alert()
	if err := s.attachDeliveries(ctx, []*Alert{&a}); err != nil {
		return Alert{}, err
	}
	var evs []eventRow
	if err := s.db.WithContext(ctx).Where("alert_id = ?", id).Order("id").Find(&evs).Error; err != nil {
		return Alert{}, fmt.Errorf("alert %d history: %w", id, err)
	}
	a.History = make([]Event, 0, len(evs))
	for _, e := range evs {
		a.History = append(a.History, Event{At: time.Unix(e.At, 0).UTC(), Action: e.Action, Actor: e.Actor, Note: e.Note})
	}
	return a, nil
}

func (s *Service) attachDeliveries(ctx context.Context, as []*Alert) error {
	if len(as) == 0 {
		return nil
	}
	ids := make([]int64, len(as))
	byID := map[int64]*Alert{}
	for i, a := range as {
		ids[i], byID[a.ID] = a.ID, a
	}
	var rows []deliveryRow
	if err := s.db.WithContext(ctx).Where("alert_id IN ?", ids).Order("alert_id, channel_id").Find(&rows).Error; err != nil {
		return fmt.Errorf("deliveries: %w", err)
	}
	for _, d := range rows {
		a := byID[d.AlertID]
		a.Deliveries = append(a.Deliveries, Delivery{ChannelID: d.ChannelID, Status: d.Status, Attempts: d.Attempts,
			LastError: d.LastError, UpdatedAt: time.Unix(d.UpdatedAt, 0).UTC()})
	}
	return nil
}

// Filter narrows GET /alerts/history; zero fields match everything.
type Filter struct {
	Status   string
	Severity string
	Type     string
	Domain   string
	RuleID   int64
	Since    time.Time
	Until    time.Time
}

// List returns a page of alerts, newest first, and the total matching.
func (s *Service) List(ctx context.Context, f Filter, page, size int) ([]Alert, int64, error) {
	q := s.db.WithContext(ctx).Model(&StoredAlert{})
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.Severity != "" {
		q = q.Where("severity = ?", f.Severity)
	}
	if f.Type != "" {
		q = q.Where("type = ?", f.Type)
	}
	if f.Domain != "" {
		q = q.Where("domain = ?", f.Domain)
	}
	if f.RuleID != 0 {
		q = q.Where("rule_id = ?", f.RuleID)
	}
	if !f.Since.IsZero() {
		q = q.Where("created_at >= ?", f.Since.Unix())
	}
	if !f.Until.IsZero() {
		q = q.Where("created_at < ?", f.Until.Unix())
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, fmt.Errorf("count alerts: %w", err)
	}
	var rows []StoredAlert
	if err := q.Order("created_at DESC, id DESC").Offset((page - 1) * size).Limit(size).Find(&rows).Error; err != nil {
		return nil, 0, fmt.Errorf("list alerts: %w", err)
	}
	out := make([]Alert, len(rows))
	ptrs := make([]*Alert, len(rows))
	for i, r := range rows {
		out[i] = r.alert()
		ptrs[i] = &out[i]
	}
	if err := s.attachDeliveries(ctx, ptrs); err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

// Transition moves an alert to acknowledged or resolved, by actor with note. Acknowledging a
// resolved alert, or doing the same step twice, is a conflict; resolving skips acknowledging.
// The update is conditional on the status read, so two analysts racing record one step.
func (s *Service) Transition(ctx context.Context, id int64, to, actor, note string) (Alert, error) {
	if len(note) > 2000 {
		return Alert{}, invalid("note: at most 2000 characters")
	}
	note = strings.TrimSpace(note)
	now := s.now().Unix()
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var r StoredAlert
		if err := tx.First(&r, id).Error; err != nil {
			return notFound(err, "alert", id)
		}
		var from []string
		set := map[string]any{"status": to}
		if note != "" {
			set["note"] = note
		}
		switch to {
		case StatusAcknowledged:
			from = []string{StatusOpen, StatusSuppressed}
			set["acknowledged_at"], set["acknowledged_by"] = now, actor
		case StatusResolved:
			from = []string{StatusOpen, StatusAcknowledged, StatusSuppressed}
			set["resolved_at"], set["resolved_by"] = now, actor
		default:
			return invalid("status: want acknowledged or resolved")
		}
		res := tx.Model(&StoredAlert{}).Where("id = ? AND status IN ?", id, from).Updates(set)
		if res.Error != nil {
			return fmt.Errorf("alert %d: %w", id, res.Error)
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("%w: alert %d is %s", ErrConflict, id, r.Status)
		}
		return tx.Create(&eventRow{AlertID: id, At: now, Action: to, Actor: actor, Note: note}).Error
	})
	if err != nil {
		return Alert{}, err
	}
	return s.Get(ctx, id)
}
