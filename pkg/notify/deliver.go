package notify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/vigilhq/vigil/pkg/alerting"
	"github.com/vigilhq/vigil/tasks"
)

// Backoff is the wait before retry n of a delivery: 10 s, 20 s, 40 s … capped at 10 minutes,
// so a receiver down for a few minutes still gets the alert and one down for hours is
// recorded failed within the hour.
func Backoff(n int) time.Duration {
	d := 10 * time.Second << min(n, 10)
	return min(d, 10*time.Minute)
}

// HandleDeliver is the alert:deliver handler. A delivery already sent or failed is done (a
// repeated task sends nothing twice); a failure worth retrying is recorded and returned for
// asynq to retry; the last retry, or a permanent failure, records the delivery failed.
func (s *Service) HandleDeliver(ctx context.Context, t *asynq.Task) error {
	var p tasks.AlertDeliverPayload
	if err := tasks.Decode(t, &p); err != nil {
		return err
	}
	retry, _ := asynq.GetRetryCount(ctx)
	maxRetry, ok := asynq.GetMaxRetry(ctx)
	if !ok {
		maxRetry = tasks.AlertDeliverRetries
	}
	return s.deliverOnce(ctx, p.AlertID, p.ChannelID, retry >= maxRetry)
}

// Deliver sends one alert to one channel and records the outcome; last says no retry follows.
// Two statements per delivery (the delivery with its channel and alert, the outcome):
// deliveries come in bursts, and a receiver's round trip should be what bounds them.
func (s *Service) Deliver(ctx context.Context, alertID, channelID int64) error {
	return s.deliverOnce(ctx, alertID, channelID, false)
}

// pendingRow is a delivery with its channel (nil fields: deleted) and its alert (a deleted
// alert takes its deliveries with it).
type pendingRow struct {
	DeliveryStatus       string
	Kind                 *string
	Config               *string
	SecretSealed         []byte
	Enabled              *bool
	alerting.StoredAlert `gorm:"embedded"`
}

func (s *Service) deliverOnce(ctx context.Context, alertID, channelID int64, last bool) error {
	var d pendingRow
	err := s.db.WithContext(ctx).Raw(`SELECT d.status AS delivery_status, c.kind, c.config, c.secret_sealed, c.enabled, a.*
		FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id LEFT JOIN alert_channels c ON c.id = d.channel_id
		WHERE d.alert_id = ? AND d.channel_id = ?`, alertID, channelID).Scan(&d).Error
	if err != nil {
		return fmt.Errorf("delivery %d/%d: %w", alertID, channelID, err)
	}
	if d.DeliveryStatus == "" {
		return fmt.Errorf("delivery %d/%d: not recorded: %w", alertID, channelID, asynq.SkipRetry)
	}
	if d.DeliveryStatus != "pending" {
		return nil
	}
	sendErr := s.deliver(ctx, alertID, channelID, d)
	status, msg := "sent", ""
	if sendErr != nil {
		msg = deliveryError(sendErr)
		status = "pending"
		if last || errors.Is(sendErr, ErrPermanent) {
			status = "failed"
		}
	}
	if err := s.db.WithContext(ctx).Exec(`UPDATE alert_deliveries SET status = ?, attempts = attempts + 1, last_error = ?, updated_at = ?
		WHERE alert_id = ? AND channel_id = ? AND status = 'pending'`, status, msg, s.now().Unix(), alertID, channelID).Error; err != nil {
		return fmt.Errorf("record delivery %d/%d: %w", alertID, channelID, err)
	}
	switch status {
	case "sent":
		return nil
	case "failed":
		s.log.Warn("alert delivery failed", "alert_id", alertID, "channel_id", channelID, "err", sendErr)
		return fmt.Errorf("deliver alert %d to channel %d: %v: %w", alertID, channelID, sendErr, asynq.SkipRetry)
	}
	return fmt.Errorf("deliver alert %d to channel %d: %w", alertID, channelID, sendErr)
}

func (s *Service) deliver(ctx context.Context, alertID, channelID int64, d pendingRow) error {
	if d.Kind == nil {
		return fmt.Errorf("%w: the channel was deleted", ErrPermanent)
	}
	if !*d.Enabled {
		return fmt.Errorf("%w: the channel is disabled", ErrPermanent)
	}
	st, err := s.open(channelRow{ID: channelID, Kind: *d.Kind, Config: *d.Config, SecretSealed: d.SecretSealed})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPermanent, err)
	}
	return s.send(ctx, *d.Kind, st, d.Alert(), fmt.Sprintf("alert-%d-channel-%d", alertID, channelID))
}

// Test sends a sample alert to a channel now and returns what happened.
func (s *Service) Test(ctx context.Context, channelID int64) error {
	r, err := s.row(ctx, channelID)
	if err != nil {
		return err
	}
	st, err := s.open(r)
	if err != nil {
		return err
	}
	now := s.now().UTC().Truncate(time.Second)
	a := alerting.Alert{ID: 0, Type: "test", Severity: alerting.SeverityInfo, Domain: "example.com", Status: alerting.StatusOpen,
		Title: "Vigil test alert", Detail: fmt.Sprintf("This is a test of channel %q: if you read it, alerts reach you.", r.Name),
		CreatedAt: now, Deliveries: []alerting.Delivery{}}
	return s.send(ctx, r.Kind, st, a, fmt.Sprintf("test-%d-%d", channelID, now.UnixNano()))
}

// maxDeliveryError bounds the error kept on a delivery (and shown in the dashboard): an SMTP
// server's reply or a resolver's message is the peer's text, of any length and lines.
const maxDeliveryError = 500

// deliveryError is err as one line of valid UTF-8 of at most maxDeliveryError bytes.
func deliveryError(err error) string {
	return clip(strings.Join(strings.Fields(strings.ToValidUTF8(err.Error(), "\uFFFD")), " "), maxDeliveryError)
}
