package mailpoll

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vigilhq/vigil/pkg/mailbox"
	"github.com/vigilhq/vigil/pkg/store"
)

var (
	// ErrInvalid wraps every problem with a mailbox's settings; the message names each field.
	ErrInvalid = errors.New("invalid mailbox settings")
	// ErrNameTaken: another mailbox has the name.
	ErrNameTaken = errors.New("a mailbox with this name exists")
	// ErrEnvMailbox: the env mailbox is configured by VIGIL_IMAP_*, not through the API.
	ErrEnvMailbox = errors.New("the env mailbox is configured by the VIGIL_IMAP_* variables; change them and restart")
	// ErrNoKey: a password cannot be stored without VIGIL_ENCRYPTION_KEY.
	ErrNoKey = errors.New("a mailbox password is stored encrypted, and VIGIL_ENCRYPTION_KEY is not set: set it (openssl rand -base64 32) on the api and worker processes")
)

// Input is a mailbox's settings as the API takes them: on create every required field, on
// update only the fields to change (nil: unchanged). Password is write-only.
type Input struct {
	Name            *string `json:"name"`
	Host            *string `json:"host"`
	Port            *int    `json:"port"`
	Username        *string `json:"username"`
	Password        *string `json:"password"`
	OAuth2TokenFile *string `json:"oauth2_token_file"`
	TLS             *string `json:"tls"`
	AllowPlain      *bool   `json:"allow_plain"`
	CAPEM           *string `json:"ca_pem"`
	Folder          *string `json:"folder"`
	ArchiveFolder   *string `json:"archive_folder"`
	InvalidFolder   *string `json:"invalid_folder"`
	Policy          *string `json:"policy"`
	BatchSize       *int    `json:"batch_size"`
	// PollInterval is a Go duration ("15m", "1h"); "" = VIGIL_IMAP_POLL_INTERVAL.
	PollInterval *string `json:"poll_interval"`
	Enabled      *bool   `json:"enabled"`
}

// Limits on what the API accepts.
const (
	maxNameLen       = 100
	maxTextLen       = 1000
	maxCAPEMBytes    = 64 << 10
	minPollInterval  = time.Minute
	maxPollInterval  = 7 * 24 * time.Hour
	maxPasswordBytes = 4096
)

// Create adds a mailbox. Its first poll comes with the next dispatch (within a minute) or a
// trigger.
func (s *Service) Create(ctx context.Context, in Input) (MailboxStatus, error) {
	var missing []string
	for _, f := range []struct {
		name string
		set  bool
	}{{"name", in.Name != nil}, {"host", in.Host != nil}, {"username", in.Username != nil}} {
		if !f.set {
			missing = append(missing, f.name+": required")
		}
	}
	if in.Password == nil && in.OAuth2TokenFile == nil {
		missing = append(missing, "password: required (or oauth2_token_file for XOAUTH2)")
	}
	if len(missing) > 0 {
		return MailboxStatus{}, fmt.Errorf("%w: %s", ErrInvalid, strings.Join(missing, "; "))
	}
	now := s.now()
	r := row{Source: SourceAPI, Enabled: true, TLS: string(mailbox.TLSImplicit), Folder: mailbox.DefaultFolder,
		ArchiveFolder: mailbox.DefaultArchiveFolder, InvalidFolder: mailbox.DefaultInvalidFolder,
		Policy: string(mailbox.PolicyMove), LastResult: "{}", Progress: "{}", CreatedAt: now, UpdatedAt: now}
	if err := s.apply(&r, in); err != nil {
		return MailboxStatus{}, err
	}
	if err := s.checkHost(ctx, r.Host); err != nil {
		return MailboxStatus{}, err
	}
	err := s.db.WithContext(ctx).Create(&r).Error
	if isUniqueViolation(err) {
		return MailboxStatus{}, fmt.Errorf("%w: %q", ErrNameTaken, r.Name)
	}
	if err != nil {
		return MailboxStatus{}, fmt.Errorf("mailpoll: add mailbox: %w", err)
	}
	s.log.Info("mailbox added", "mailbox_id", r.ID, "name", r.Name, "host", r.Host, "username", r.Username)
	return s.Status(ctx, r.ID)
}

// Update changes the given settings of an API mailbox. Pointing it at another server, account
// or folder forgets how far it was read (UIDs mean nothing elsewhere); a poll running meanwhile
// keeps going but its state is not saved over the new settings.
func (s *Service) Update(ctx context.Context, id int64, in Input) (MailboxStatus, error) {
	r, err := s.get(ctx, id)
	if err != nil {
		return MailboxStatus{}, err
	}
	if r.Source == SourceEnv {
		return MailboxStatus{}, ErrEnvMailbox
	}
	before := r
	if err := s.apply(&r, in); err != nil {
		return MailboxStatus{}, err
	}
	if err := needsCredential(before, r, in); err != nil {
		return MailboxStatus{}, err
	}
	if r.Host != before.Host {
		if err := s.checkHost(ctx, r.Host); err != nil {
			return MailboxStatus{}, err
		}
	}
	// Only the columns that change, so two PATCHes of different fields do not undo each other.
	set := map[string]any{}
	for col, v := range map[string][2]any{
		"name": {before.Name, r.Name}, "host": {before.Host, r.Host}, "port": {before.Port, r.Port},
		"username": {before.Username, r.Username}, "folder": {before.Folder, r.Folder}, "tls": {before.TLS, r.TLS},
		"allow_plain": {before.AllowPlain, r.AllowPlain}, "ca_pem": {before.CAPEM, r.CAPEM},
		"archive_folder": {before.ArchiveFolder, r.ArchiveFolder}, "invalid_folder": {before.InvalidFolder, r.InvalidFolder},
		"policy": {before.Policy, r.Policy}, "batch_size": {before.BatchSize, r.BatchSize},
		"poll_interval_seconds": {before.PollIntervalSeconds, r.PollIntervalSeconds}, "enabled": {before.Enabled, r.Enabled},
		"oauth2_token_file": {before.OAuth2TokenFile, r.OAuth2TokenFile},
	} {
		if v[0] != v[1] {
			set[col] = v[1]
		}
	}
	if !bytes.Equal(before.PasswordSealed, r.PasswordSealed) {
		set["password_sealed"] = r.PasswordSealed
	}
	if len(set) == 0 {
		return s.status(r), nil
	}
	set["updated_at"] = s.now()
	if r.Host != before.Host || r.Port != before.Port || !strings.EqualFold(r.Username, before.Username) || r.Folder != before.Folder {
		set["uid_validity"], set["last_uid"], set["poll_lease_until"] = 0, 0, nil
	}
	res := s.db.WithContext(ctx).Model(&row{}).Where("id = ?", id).Updates(set)
	switch {
	case isUniqueViolation(res.Error):
		return MailboxStatus{}, fmt.Errorf("%w: %q", ErrNameTaken, r.Name)
	case res.Error != nil:
		return MailboxStatus{}, fmt.Errorf("mailpoll: update mailbox %d: %w", id, res.Error)
	case res.RowsAffected == 0:
		return MailboxStatus{}, fmt.Errorf("mailbox %d: %w", id, store.ErrNotFound)
	}
	s.log.Info("mailbox updated", "mailbox_id", id, "name", r.Name)
	return s.Status(ctx, id)
}

// needsCredential refuses to send a stored credential anywhere but where it was given for: a
// change of the server (host, port), of how it is reached (TLS mode, allow_plain, CA) or of
// the account (username) takes the password, or the token file, again in the same request.
// Otherwise an admin could point a mailbox at a server of their own and have the next poll
// deliver the stored password there, which "write-only" would not survive (issue 18).
func needsCredential(before, after row, in Input) error {
	var changed []string
	for _, f := range []struct {
		name string
		diff bool
	}{
		{"host", !strings.EqualFold(before.Host, after.Host)},
		{"port", before.Port != after.Port},
		{"tls", before.TLS != after.TLS},
		{"allow_plain", before.AllowPlain != after.AllowPlain},
		{"ca_pem", before.CAPEM != after.CAPEM},
		{"username", before.Username != after.Username},
	} {
		if f.diff {
			changed = append(changed, f.name)
		}
	}
	given := (in.Password != nil && *in.Password != "") || (in.OAuth2TokenFile != nil && strings.TrimSpace(*in.OAuth2TokenFile) != "")
	if len(changed) == 0 || given {
		return nil
	}
	field := "password"
	if after.OAuth2TokenFile != "" {
		field = "oauth2_token_file"
	}
	return fmt.Errorf("%w: %s: required again when %s change: the stored one is sent only to the server and account it was given for",
		ErrInvalid, field, strings.Join(changed, ", "))
}

// Delete removes an API mailbox. What it delivered stays; a poll running meanwhile finishes
// its batch and records nothing.
func (s *Service) Delete(ctx context.Context, id int64) error {
	r, err := s.get(ctx, id)
	if err != nil {
		return err
	}
	if r.Source == SourceEnv {
		return ErrEnvMailbox
	}
	if err := s.db.WithContext(ctx).Where("id = ? AND source = ?", id, SourceAPI).Delete(&row{}).Error; err != nil {
		return fmt.Errorf("mailpoll: delete mailbox %d: %w", id, err)
	}
	s.log.Info("mailbox deleted", "mailbox_id", id, "name", r.Name)
	return nil
}

// apply merges in into r and checks the result as the poller will.
func (s *Service) apply(r *row, in Input) error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	text := func(field string, v *string, dst *string, max int) {
		if v == nil {
			return
		}
		t := strings.TrimSpace(*v)
		if len(t) > max || !utf8.ValidString(t) || strings.ContainsAny(t, "\x00\r\n") {
			bad("%s: at most %d characters of one line of UTF-8", field, max)
			return
		}
		*dst = t
	}
	text("name", in.Name, &r.Name, maxNameLen)
	if in.Name != nil && (r.Name == "" || strings.EqualFold(r.Name, EnvName)) {
		bad("name %q: required, and %q is the environment mailbox's", r.Name, EnvName)
	}
	text("host", in.Host, &r.Host, 253)
	text("username", in.Username, &r.Username, maxTextLen)
	text("folder", in.Folder, &r.Folder, maxTextLen)
	text("archive_folder", in.ArchiveFolder, &r.ArchiveFolder, maxTextLen)
	text("invalid_folder", in.InvalidFolder, &r.InvalidFolder, maxTextLen)
	if in.TLS != nil {
		r.TLS = strings.ToLower(strings.TrimSpace(*in.TLS))
	}
	if in.Policy != nil {
		r.Policy = strings.ToLower(strings.TrimSpace(*in.Policy))
	}
	if in.AllowPlain != nil {
		r.AllowPlain = *in.AllowPlain
	}
	if in.Enabled != nil {
		r.Enabled = *in.Enabled
	}
	if in.Port != nil {
		r.Port = *in.Port
	}
	if in.BatchSize != nil {
		r.BatchSize = *in.BatchSize
	}
	if in.CAPEM != nil {
		if len(*in.CAPEM) > maxCAPEMBytes {
			bad("ca_pem: at most %d bytes", maxCAPEMBytes)
		} else {
			r.CAPEM = strings.TrimSpace(*in.CAPEM)
		}
	}
	if in.PollInterval != nil {
		r.PollIntervalSeconds = 0
		if v := strings.TrimSpace(*in.PollInterval); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < minPollInterval || d > maxPollInterval || d%time.Minute != 0 {
				bad("poll_interval %q: want whole minutes from %s to %s, such as 15m or 1h", v, minPollInterval, maxPollInterval)
			} else {
				r.PollIntervalSeconds = int(d / time.Second)
			}
		}
	}
	// One way to authenticate: the one given replaces the other.
	if in.Password != nil && in.OAuth2TokenFile != nil && *in.Password != "" && strings.TrimSpace(*in.OAuth2TokenFile) != "" {
		bad("password, oauth2_token_file: give exactly one")
	} else if in.Password != nil && *in.Password != "" {
		switch {
		case len(*in.Password) > maxPasswordBytes:
			bad("password: at most %d bytes", maxPasswordBytes)
		case s.keys == nil:
			return ErrNoKey
		default:
			sealed, err := s.keys.Seal([]byte(*in.Password), passwordPurpose)
			if err != nil {
				return err
			}
			r.PasswordSealed, r.OAuth2TokenFile = sealed, ""
		}
	} else if in.OAuth2TokenFile != nil && strings.TrimSpace(*in.OAuth2TokenFile) != "" {
		name := strings.TrimSpace(*in.OAuth2TokenFile)
		if _, err := s.tokenPath(name); err != nil {
			bad("%v", err)
		}
		r.OAuth2TokenFile, r.PasswordSealed = name, nil
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(errs, "; "))
	}

	// The poller's own check, on the merged settings. The password itself is not needed to
	// validate: a placeholder stands for the sealed one.
	c := r.settings()
	if r.PasswordSealed != nil {
		c.Password = "(sealed)"
	}
	if r.OAuth2TokenFile != "" {
		c.OAuth2TokenFile = r.OAuth2TokenFile
	}
	if err := c.Validate(); err != nil {
		// One line for the API's detail: "tls none: …; policy "trash": …".
		msg := strings.TrimPrefix(err.Error(), mailbox.ErrInvalidConfig.Error()+": ")
		return fmt.Errorf("%w: %s", ErrInvalid, strings.ReplaceAll(msg, "\n", "; "))
	}
	r.Port = c.WithDefaults().Port
	return nil
}

// isUniqueViolation tells a duplicate name on either dialect.
func isUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	m := strings.ToLower(err.Error())
	return strings.Contains(m, "unique") || strings.Contains(m, "duplicate key")
}

// MailboxStatus is a mailbox's settings (never its password), progress and last poll.
type MailboxStatus struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	Source   string `json:"source"` // env (VIGIL_IMAP_*) or api
	Enabled  bool   `json:"enabled"`
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Username string `json:"username"`
	// Auth is password or xoauth2; the password is never returned.
	Auth            string `json:"auth"`
	OAuth2TokenFile string `json:"oauth2_token_file"`
	TLS             string `json:"tls"`
	AllowPlain      bool   `json:"allow_plain"`
	CAPEM           string `json:"ca_pem"`
	Folder          string `json:"folder"`
	ArchiveFolder   string `json:"archive_folder"`
	InvalidFolder   string `json:"invalid_folder"`
	Policy          string `json:"policy"`
	BatchSize       int    `json:"batch_size"`
	PollInterval    string `json:"poll_interval"`
	// Configured: a poll has something to connect with; ConfigError says why not (a stale env
	// row, a password sealed with a key this process lacks, a token directory not set).
	Configured          bool        `json:"configured"`
	ConfigError         string      `json:"config_error"`
	UIDValidity         uint32      `json:"uid_validity"`
	LastUID             uint32      `json:"last_uid"`
	Polling             bool        `json:"polling"`  // a poll holds the lease now
	Progress            *Progress   `json:"progress"` // the running poll's; nil when none runs
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
	return s.status(r), nil
}

// List returns a page of mailboxes by id, and how many there are.
func (s *Service) List(ctx context.Context, p store.Page) ([]MailboxStatus, int64, error) {
	var total int64
	if err := s.db.WithContext(ctx).Model(&row{}).Count(&total).Error; err != nil {
		return nil, 0, fmt.Errorf("mailpoll: count mailboxes: %w", err)
	}
	var rows []row
	if err := s.db.WithContext(ctx).Order("id").Offset((p.Number - 1) * p.Size).Limit(p.Size).Find(&rows).Error; err != nil {
		return nil, 0, fmt.Errorf("mailpoll: list mailboxes: %w", err)
	}
	out := make([]MailboxStatus, 0, len(rows))
	for _, r := range rows {
		out = append(out, s.status(r))
	}
	return out, total, nil
}

func (s *Service) status(r row) MailboxStatus {
	cfg, cerr := s.config(r)
	polling := r.PollLeaseUntil != nil && r.PollLeaseUntil.After(s.now())
	st := MailboxStatus{ID: r.ID, Name: r.Name, Source: r.Source, Enabled: r.Enabled, Host: r.Host, Port: r.Port,
		Username: r.Username, Auth: "password", OAuth2TokenFile: r.OAuth2TokenFile, TLS: r.TLS, AllowPlain: r.AllowPlain,
		CAPEM: r.CAPEM, Folder: r.Folder, ArchiveFolder: r.ArchiveFolder, InvalidFolder: r.InvalidFolder,
		Policy: r.Policy, BatchSize: r.BatchSize, PollInterval: s.intervalOf(r).String(),
		Configured: cerr == nil, UIDValidity: uint32(r.UIDValidity), LastUID: uint32(r.LastUID), Polling: polling,
		LastPollAt: utc(r.LastPollAt), LastSuccessAt: utc(r.LastSuccessAt), LastError: r.LastError,
		ConsecutiveFailures: r.ConsecutiveFailures, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
	if cerr != nil {
		st.ConfigError = cerr.Error()
	}
	if r.Source == SourceEnv && cerr == nil {
		// The environment decides; the row only mirrors what Init wrote.
		c := cfg.WithDefaults()
		st.TLS, st.AllowPlain, st.Policy, st.BatchSize = string(c.TLS), c.AllowPlain, string(c.Policy), c.BatchSize
		st.ArchiveFolder, st.InvalidFolder = c.ArchiveFolder, c.InvalidFolder
	}
	if r.OAuth2TokenFile != "" || (r.Source == SourceEnv && (cfg.OAuth2TokenFile != "" || len(cfg.OAuth2TokenCommand) > 0)) {
		st.Auth = "xoauth2"
	}
	if polling && r.Progress != "" && r.Progress != "{}" {
		var p Progress
		if err := json.Unmarshal([]byte(r.Progress), &p); err == nil {
			st.Progress = &p
		}
	}
	if r.LastResult != "" && r.LastResult != "{}" {
		var p PollResult
		if err := json.Unmarshal([]byte(r.LastResult), &p); err == nil {
			st.LastResult = &p
		}
	}
	return st
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
