// Package notify delivers alerts to channels: Microsoft Teams (an Adaptive Card posted to a
// Teams Workflows webhook, Office 365 connectors being retired), Slack (incoming webhook,
// Block Kit), Discord (webhook, embeds), e-mail over SMTP (plain text and HTML parts) and a
// generic webhook signed with HMAC-SHA256 over timestamp and body. Each delivery is an
// alert:deliver task retried with backoff; its outcome is stored per alert and channel.
//
// Channels are managed by admins; their secrets (the webhook URLs of Teams, Slack and Discord,
// which are credentials, and HMAC keys) are sealed with VIGIL_ENCRYPTION_KEY like mailbox
// passwords and never shown again. Every HTTP request goes through pkg/outbound: no loopback,
// link-local, metadata or (unless allowed) private destination, checked when the URL is saved
// and again on the address dialled; no redirects, 10 s timeout, 64 KiB read.
package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"net/netip"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/vigilhq/vigil/pkg/alerting"
	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/outbound"
	"github.com/vigilhq/vigil/pkg/secretbox"
	"github.com/vigilhq/vigil/pkg/store"
)

// Channel kinds (DESIGN.md).
const (
	KindTeams   = "teams"
	KindSlack   = "slack"
	KindDiscord = "discord"
	KindEmail   = "email"
	KindWebhook = "webhook"
)

var kinds = []string{KindTeams, KindSlack, KindDiscord, KindEmail, KindWebhook}

// ErrNoKey: a channel with a secret cannot be saved or used without VIGIL_ENCRYPTION_KEY.
var ErrNoKey = errors.New("channel secrets need VIGIL_ENCRYPTION_KEY in this process")

// sealPurpose binds sealed channel secrets to this use (secretbox authenticates it).
const sealPurpose = "alert-channel-secret"

// Channel is a channel as the API shows it: config holds the public settings only; the names
// of the secrets that are set are listed in secrets_set.
type Channel struct {
	ID         int64          `json:"id"`
	Name       string         `json:"name"`
	Kind       string         `json:"kind"`
	Config     map[string]any `json:"config"`
	SecretsSet []string       `json:"secrets_set"`
	Enabled    bool           `json:"enabled"`
	CreatedAt  time.Time      `json:"created_at"`
	UpdatedAt  time.Time      `json:"updated_at"`
}

// ChannelInput is a create or PATCH body. config carries public settings and secrets
// together; on PATCH only the fields given change (a secret left out stays).
type ChannelInput struct {
	Name    *string        `json:"name"`
	Kind    *string        `json:"kind"`
	Config  map[string]any `json:"config"`
	Enabled *bool          `json:"enabled"`
}

// settings is a channel's whole configuration once opened. An e-mail channel may name its
// own SMTP server (smtp_host and the rest); without one it sends through the shared
// VIGIL_SMTP_* server, whose sender its from, when set, replaces.
type settings struct {
	URL          string   `json:"url,omitempty"`
	Secret       string   `json:"secret,omitempty"`
	To           []string `json:"to,omitempty"`
	Subject      string   `json:"subject_prefix,omitempty"`
	From         string   `json:"from,omitempty"`
	SMTPHost     string   `json:"smtp_host,omitempty"`
	SMTPPort     int      `json:"smtp_port,omitempty"`
	SMTPTLS      string   `json:"smtp_tls,omitempty"`
	SMTPUsername string   `json:"smtp_username,omitempty"`
	SMTPPassword string   `json:"smtp_password,omitempty"`
}

// secretFields are the fields of each kind that are sealed and never shown.
var secretFields = map[string][]string{
	KindTeams: {"url"}, KindSlack: {"url"}, KindDiscord: {"url"}, KindWebhook: {"secret"}, KindEmail: {"smtp_password"},
}

// allowedFields are every config field of each kind.
var allowedFields = map[string][]string{
	KindTeams: {"url"}, KindSlack: {"url"}, KindDiscord: {"url"}, KindWebhook: {"url", "secret"},
	KindEmail: {"to", "subject_prefix", "from", "smtp_host", "smtp_port", "smtp_tls", "smtp_username", "smtp_password"},
}

// smtpModes are the smtp_tls values: STARTTLS required (not opportunistic), implicit TLS, or
// none (then without credentials, which would cross the network in clear).
var smtpModes = []string{"starttls", "tls", "none"}

type channelRow struct {
	ID           int64 `gorm:"primaryKey"`
	Name         string
	Kind         string
	Config       string
	SecretSealed []byte
	Enabled      bool
	CreatedAt    int64 `gorm:"autoCreateTime:false"`
	UpdatedAt    int64 `gorm:"autoUpdateTime:false"`
}

func (channelRow) TableName() string { return "alert_channels" }

// Deps are what the service needs.
type Deps struct {
	Store  *store.Store
	Alerts *alerting.Service
	Keys   *secretbox.Keyring // nil: channels with secrets cannot be saved or used
	Policy *outbound.Policy
	SMTP   SMTPConfig
	Audit  *audit.Log
	Log    *slog.Logger
	Now    func() time.Time
	// OnFirstChannel runs after the first channel is created (turning the default rules on).
	OnFirstChannel func(ctx context.Context, channelID int64) error
}

// Service manages channels and delivers alerts.
type Service struct {
	db     *gorm.DB
	alerts *alerting.Service
	keys   *secretbox.Keyring
	policy *outbound.Policy
	client interface {
		Do(req *httpRequest) (*httpResponse, error)
	}
	smtp    SMTPConfig
	audit   *audit.Log
	log     *slog.Logger
	now     func() time.Time
	onFirst func(ctx context.Context, channelID int64) error
}

// New builds the service.
func New(d Deps) *Service {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Policy == nil {
		d.Policy = &outbound.Policy{}
	}
	s := &Service{alerts: d.Alerts, keys: d.Keys, policy: d.Policy, smtp: d.SMTP, audit: d.Audit, log: d.Log, now: d.Now, onFirst: d.OnFirstChannel}
	s.client = httpClient{d.Policy.HTTPClient()}
	if d.Store != nil {
		s.db = d.Store.DB()
	}
	return s
}

func invalid(format string, args ...any) error { return alerting.Invalid(format, args...) }

func (s *Service) open(r channelRow) (settings, error) {
	var st settings
	if err := json.Unmarshal([]byte(r.Config), &st); err != nil {
		return st, fmt.Errorf("channel %d config: %w", r.ID, err)
	}
	if len(r.SecretSealed) > 0 {
		if s.keys == nil {
			return st, fmt.Errorf("channel %d: %w", r.ID, ErrNoKey)
		}
		plain, err := s.keys.Open(r.SecretSealed, sealPurpose)
		if err != nil {
			return st, fmt.Errorf("channel %d secret: %w", r.ID, err)
		}
		var sec settings
		if err := json.Unmarshal(plain, &sec); err != nil {
			return st, fmt.Errorf("channel %d secret: %w", r.ID, err)
		}
		if sec.URL != "" {
			st.URL = sec.URL
		}
		if sec.Secret != "" {
			st.Secret = sec.Secret
		}
		if sec.SMTPPassword != "" {
			st.SMTPPassword = sec.SMTPPassword
		}
	}
	return st, nil
}

func (s *Service) view(r channelRow) Channel {
	c := Channel{ID: r.ID, Name: r.Name, Kind: r.Kind, Config: map[string]any{}, SecretsSet: []string{}, Enabled: r.Enabled,
		CreatedAt: time.Unix(r.CreatedAt, 0).UTC(), UpdatedAt: time.Unix(r.UpdatedAt, 0).UTC()}
	_ = json.Unmarshal([]byte(r.Config), &c.Config)
	if len(r.SecretSealed) > 0 {
		c.SecretsSet = slices.Clone(secretFields[r.Kind])
	}
	return c
}

// apply merges in onto the channel's settings and checks them (URLs against the policy).
func (s *Service) apply(ctx context.Context, r *channelRow, cur settings, in ChannelInput, create bool) error {
	if err := alerting.SetName(&r.Name, in.Name, create); err != nil {
		return err
	}
	if err := alerting.SetFixed("kind", "channel", &r.Kind, in.Kind, create); err != nil {
		return err
	}
	if !slices.Contains(kinds, r.Kind) {
		return invalid("kind: want one of %s", strings.Join(kinds, ", "))
	}
	for k, v := range in.Config {
		if !slices.Contains(allowedFields[r.Kind], k) {
			return invalid("config.%s: not a setting of %s channels (they take %s)", k, r.Kind, strings.Join(allowedFields[r.Kind], ", "))
		}
		switch k {
		case "url", "secret", "subject_prefix", "from", "smtp_host", "smtp_tls", "smtp_username", "smtp_password":
			str, ok := v.(string)
			if !ok {
				return invalid("config.%s: want a string", k)
			}
			switch k {
			case "url":
				cur.URL = strings.TrimSpace(str)
			case "secret":
				cur.Secret = str
			case "subject_prefix":
				cur.Subject = strings.TrimSpace(str)
			case "from":
				cur.From = strings.TrimSpace(str)
			case "smtp_host":
				cur.SMTPHost = strings.ToLower(strings.TrimSpace(str))
			case "smtp_tls":
				cur.SMTPTLS = strings.ToLower(strings.TrimSpace(str))
			case "smtp_username":
				cur.SMTPUsername = str
			default:
				cur.SMTPPassword = str
			}
		case "smtp_port":
			f, ok := v.(float64)
			if !ok || f != float64(int(f)) || (f != 0 && (f < 1 || f > 65535)) {
				return invalid("config.smtp_port: want a port number, 1 to 65535 (0: the default of smtp_tls)")
			}
			cur.SMTPPort = int(f)
		case "to":
			list, ok := v.([]any)
			if !ok {
				return invalid("config.to: want a list of e-mail addresses")
			}
			cur.To = nil
			for _, x := range list {
				a, ok := x.(string)
				if !ok {
					return invalid("config.to: want a list of e-mail addresses")
				}
				cur.To = append(cur.To, strings.TrimSpace(a))
			}
		}
	}
	switch r.Kind {
	case KindTeams, KindSlack, KindDiscord, KindWebhook:
		if cur.URL == "" {
			return invalid("config.url: required")
		}
		if err := s.policy.CheckURL(ctx, cur.URL); err != nil {
			return invalid("config.url: %v", err)
		}
	}
	if r.Kind == KindWebhook && len(cur.Secret) < 16 {
		return invalid("config.secret: want at least 16 characters (the HMAC-SHA256 key receivers verify with)")
	}
	if r.Kind == KindEmail {
		if len(cur.To) == 0 || len(cur.To) > 50 {
			return invalid("config.to: want 1 to 50 addresses")
		}
		for _, a := range cur.To {
			if p, err := mail.ParseAddress(a); err != nil || p.Address != a {
				return invalid("config.to: %q is not an e-mail address", a)
			}
		}
		if strings.ContainsAny(cur.Subject, "\r\n") || len(cur.Subject) > 100 {
			return invalid("config.subject_prefix: one line of at most 100 characters")
		}
		if err := s.checkSMTP(ctx, &cur); err != nil {
			return err
		}
	}
	if in.Enabled != nil {
		r.Enabled = *in.Enabled
	} else if create {
		r.Enabled = true
	}
	// Split public and secret parts.
	var pub, sec settings
	pub.To, pub.Subject = cur.To, cur.Subject
	switch r.Kind {
	case KindEmail:
		pub = cur
		pub.SMTPPassword, sec.SMTPPassword = "", cur.SMTPPassword
	case KindWebhook:
		pub.URL, sec.Secret = cur.URL, cur.Secret
	case KindTeams, KindSlack, KindDiscord:
		sec.URL = cur.URL
	}
	b, _ := json.Marshal(pub)
	r.Config = string(b)
	r.SecretSealed = nil
	if sec.URL != "" || sec.Secret != "" || sec.SMTPPassword != "" {
		if s.keys == nil {
			return ErrNoKey
		}
		plain, _ := json.Marshal(sec)
		sealed, err := s.keys.Seal(plain, sealPurpose)
		if err != nil {
			return err
		}
		r.SecretSealed = sealed
	}
	return nil
}

// checkSMTP checks an e-mail channel's sender and own SMTP server. The server is a
// destination a user chose, so its host goes through the outbound policy (here, and again on
// the address dialled); the shared VIGIL_SMTP_* server is the operator's and exempt.
func (s *Service) checkSMTP(ctx context.Context, cur *settings) error {
	if cur.From != "" {
		if _, err := mail.ParseAddress(cur.From); err != nil || strings.ContainsAny(cur.From, "\r\n") || len(cur.From) > 254 {
			return invalid("config.from: %q is not an e-mail address", cur.From)
		}
	}
	if cur.SMTPHost == "" {
		for name, set := range map[string]bool{"smtp_port": cur.SMTPPort != 0, "smtp_tls": cur.SMTPTLS != "",
			"smtp_username": cur.SMTPUsername != "", "smtp_password": cur.SMTPPassword != ""} {
			if set {
				return invalid("config.%s: set smtp_host too (without it the channel sends through the shared VIGIL_SMTP_* server)", name)
			}
		}
		return nil
	}
	cur.SMTPHost = strings.Trim(cur.SMTPHost, "[]")
	if _, err := netip.ParseAddr(cur.SMTPHost); err != nil && (strings.ContainsAny(cur.SMTPHost, "/:@ \t") || len(cur.SMTPHost) > 253) {
		return invalid("config.smtp_host: want a host name or an address, without port or scheme")
	}
	if err := s.policy.CheckHost(ctx, cur.SMTPHost); err != nil {
		return invalid("config.smtp_host: %v", err)
	}
	if cur.SMTPTLS == "" {
		cur.SMTPTLS = "starttls"
	}
	if !slices.Contains(smtpModes, cur.SMTPTLS) {
		return invalid("config.smtp_tls: want one of %s", strings.Join(smtpModes, ", "))
	}
	if cur.SMTPPort == 0 {
		cur.SMTPPort = map[bool]int{true: 465, false: 587}[cur.SMTPTLS == "tls"]
	}
	if (cur.SMTPUsername == "") != (cur.SMTPPassword == "") {
		return invalid("config.smtp_username, config.smtp_password: set both or neither")
	}
	if cur.SMTPUsername != "" && cur.SMTPTLS == "none" {
		return invalid("config.smtp_tls: none would send smtp_password in clear; use starttls or tls")
	}
	if cur.From == "" && s.smtp.From == "" {
		return invalid("config.from: required with smtp_host (VIGIL_SMTP_FROM is not set either)")
	}
	return nil
}

// Create adds a channel; the first one turns the default rules on.
func (s *Service) Create(ctx context.Context, in ChannelInput) (Channel, error) {
	now := s.now().Unix()
	r := channelRow{CreatedAt: now, UpdatedAt: now}
	if in.Kind == nil {
		return Channel{}, invalid("kind: required; one of %s", strings.Join(kinds, ", "))
	}
	if err := s.apply(ctx, &r, settings{}, in, true); err != nil {
		return Channel{}, err
	}
	var before int64
	if err := s.db.WithContext(ctx).Model(&channelRow{}).Count(&before).Error; err != nil {
		return Channel{}, fmt.Errorf("count channels: %w", err)
	}
	if err := s.db.WithContext(ctx).Create(&r).Error; err != nil {
		if cerr := alerting.NameTaken(err, "channel", r.Name); cerr != nil {
			return Channel{}, cerr
		}
		return Channel{}, fmt.Errorf("create channel: %w", err)
	}
	if before == 0 && s.onFirst != nil {
		if err := s.onFirst(ctx, r.ID); err != nil {
			s.log.Warn("notify: default rules not turned on", "err", err)
		}
	}
	return s.view(r), nil
}

func (s *Service) row(ctx context.Context, id int64) (channelRow, error) {
	var r channelRow
	if err := s.db.WithContext(ctx).First(&r, id).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return r, fmt.Errorf("channel %d: %w", id, store.ErrNotFound)
		}
		return r, fmt.Errorf("channel %d: %w", id, err)
	}
	return r, nil
}

// Update changes the fields given.
func (s *Service) Update(ctx context.Context, id int64, in ChannelInput) (Channel, error) {
	r, err := s.row(ctx, id)
	if err != nil {
		return Channel{}, err
	}
	cur, err := s.open(r)
	if err != nil {
		return Channel{}, err
	}
	if err := s.apply(ctx, &r, cur, in, false); err != nil {
		return Channel{}, err
	}
	r.UpdatedAt = s.now().Unix()
	if err := s.db.WithContext(ctx).Save(&r).Error; err != nil {
		if cerr := alerting.NameTaken(err, "channel", r.Name); cerr != nil {
			return Channel{}, cerr
		}
		return Channel{}, fmt.Errorf("update channel %d: %w", id, err)
	}
	return s.view(r), nil
}

// Delete removes a channel; recorded deliveries stay.
func (s *Service) Delete(ctx context.Context, id int64) error {
	res := s.db.WithContext(ctx).Delete(&channelRow{}, id)
	if res.Error != nil {
		return fmt.Errorf("delete channel %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("channel %d: %w", id, store.ErrNotFound)
	}
	return nil
}

// Get returns one channel.
func (s *Service) Get(ctx context.Context, id int64) (Channel, error) {
	r, err := s.row(ctx, id)
	if err != nil {
		return Channel{}, err
	}
	return s.view(r), nil
}

// List returns every channel by id.
func (s *Service) List(ctx context.Context) ([]Channel, error) {
	var rows []channelRow
	if err := s.db.WithContext(ctx).Order("id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list channels: %w", err)
	}
	out := make([]Channel, 0, len(rows))
	for _, r := range rows {
		out = append(out, s.view(r))
	}
	return out, nil
}
