package config

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vigilhq/vigil/pkg/mailbox"
)

// IMAP is the mailbox read from VIGIL_IMAP_* (DESIGN.md: one mailbox from the environment,
// more through the API).
type IMAP struct {
	// Mailbox is nil when VIGIL_IMAP_HOST is empty: no mailbox from the environment.
	Mailbox *mailbox.Config
	// PollInterval is how often the scheduler polls it (VIGIL_IMAP_POLL_INTERVAL), and the
	// default for mailboxes added through the API.
	PollInterval time.Duration
	// TokenDir is VIGIL_IMAP_TOKEN_DIR: where API mailboxes' XOAUTH2 token files live ("" =
	// API mailboxes authenticate by password only).
	TokenDir string
}

// Configured reports whether a mailbox is set in the environment.
func (i IMAP) Configured() bool { return i.Mailbox != nil }

// imapVars names the variable behind each field name mailbox.Config.Validate reports.
var imapVars = map[string]string{
	"host":              "VIGIL_IMAP_HOST",
	"port":              "VIGIL_IMAP_PORT",
	"username":          "VIGIL_IMAP_USERNAME",
	"password":          "VIGIL_IMAP_PASSWORD",
	"oauth2_token_file": "VIGIL_IMAP_OAUTH2_TOKEN_FILE",
	"tls":               "VIGIL_IMAP_TLS",
	"allow_plain":       "VIGIL_IMAP_ALLOW_PLAIN",
	"ca_file":           "VIGIL_IMAP_CA_FILE",
	"folder":            "VIGIL_IMAP_FOLDER",
	"archive_folder":    "VIGIL_IMAP_ARCHIVE_FOLDER",
	"invalid_folder":    "VIGIL_IMAP_INVALID_FOLDER",
	"policy":            "VIGIL_IMAP_POLICY",
	"max_message_bytes": "VIGIL_MAX_FILE_BYTES",
	"batch_size":        "VIGIL_IMAP_BATCH_SIZE",
	"op_timeout":        "VIGIL_IMAP_OP_TIMEOUT",
}

// loadIMAP reads the environment mailbox. maxFile is VIGIL_MAX_FILE_BYTES: a message larger
// than the pipeline accepts is filed as invalid without being downloaded.
func loadIMAP(e *env, maxFile int64) IMAP {
	out := IMAP{PollInterval: e.duration("VIGIL_IMAP_POLL_INTERVAL", 15*time.Minute), TokenDir: loadTokenDir(e)}
	if out.PollInterval < time.Minute && e.err == nil {
		e.fail("VIGIL_IMAP_POLL_INTERVAL", out.PollInterval.String(), "want at least 1m")
	}
	host := e.str("VIGIL_IMAP_HOST", "")
	if host == "" {
		// A mailbox half set up is a mistake to report now, not a silently unread mailbox.
		for _, name := range []string{"VIGIL_IMAP_USERNAME", "VIGIL_IMAP_PASSWORD", "VIGIL_IMAP_PASSWORD_FILE", "VIGIL_IMAP_OAUTH2_TOKEN_FILE"} {
			if v := strings.TrimSpace(e.getenv(name)); v != "" {
				e.fail("VIGIL_IMAP_HOST", "", name+" is set: set VIGIL_IMAP_HOST too, or unset the VIGIL_IMAP_* variables")
				break
			}
		}
		return out
	}
	allowPlain := false
	if v := e.str("VIGIL_IMAP_ALLOW_PLAIN", ""); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			e.fail("VIGIL_IMAP_ALLOW_PLAIN", v, "want true or false")
		}
		allowPlain = b
	}
	out.Mailbox = &mailbox.Config{
		Host:            host,
		Port:            e.integer("VIGIL_IMAP_PORT", 0, 1, 65535),
		Username:        e.str("VIGIL_IMAP_USERNAME", ""),
		Password:        e.secret("VIGIL_IMAP_PASSWORD"),
		OAuth2TokenFile: e.str("VIGIL_IMAP_OAUTH2_TOKEN_FILE", ""),
		TLS:             mailbox.TLSMode(e.oneOf("VIGIL_IMAP_TLS", string(mailbox.TLSImplicit), "tls", "starttls", "none")),
		AllowPlain:      allowPlain,
		CAFile:          e.str("VIGIL_IMAP_CA_FILE", ""),
		Folder:          e.str("VIGIL_IMAP_FOLDER", mailbox.DefaultFolder),
		ArchiveFolder:   e.str("VIGIL_IMAP_ARCHIVE_FOLDER", mailbox.DefaultArchiveFolder),
		InvalidFolder:   e.str("VIGIL_IMAP_INVALID_FOLDER", mailbox.DefaultInvalidFolder),
		Policy:          mailbox.Policy(e.oneOf("VIGIL_IMAP_POLICY", string(mailbox.PolicyMove), "move", "seen")),
		MaxMessageBytes: maxFile,
		BatchSize:       e.integer("VIGIL_IMAP_BATCH_SIZE", mailbox.DefaultBatchSize, 1, mailbox.MaxBatchSize),
		OpTimeout:       e.duration("VIGIL_IMAP_OP_TIMEOUT", mailbox.DefaultOpTimeout),
	}
	return out
}

// validate checks the mailbox as the poller will (mailbox.Config.Validate, which also reads
// VIGIL_IMAP_CA_FILE), naming variables instead of the poller's field names.
func (i IMAP) validate() error {
	if i.Mailbox == nil {
		return nil
	}
	err := i.Mailbox.Validate()
	if err == nil {
		return nil
	}
	var msgs []string
	for _, e := range leafErrors(err) {
		if errors.Is(e, mailbox.ErrInvalidConfig) && e.Error() == mailbox.ErrInvalidConfig.Error() {
			continue
		}
		msgs = append(msgs, imapVarNames(e.Error()))
	}
	return fmt.Errorf("%w: IMAP mailbox: %s", ErrInvalid, strings.Join(msgs, "; "))
}

// leafErrors flattens fmt.Errorf("%w: %w") and errors.Join trees into their leaves.
func leafErrors(err error) []error {
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range u.Unwrap() {
			out = append(out, leafErrors(e)...)
		}
		return out
	}
	return []error{err}
}

// fieldPrefix matches the field names a Validate message starts with: "host: …",
// "port 0: …", "password, oauth2_token_file, oauth2_token_command: …".
var (
	fieldPrefix = regexp.MustCompile(`^((?:[a-z0-9_]+, )*[a-z0-9_]+)([ :])`)
	fieldWord   = regexp.MustCompile(`\b[a-z0-9]+_[a-z0-9_]+\b`)
)

func imapVarNames(msg string) string {
	if m := fieldPrefix.FindStringSubmatchIndex(msg); m != nil {
		names := strings.Split(msg[m[2]:m[3]], ", ")
		for k, n := range names {
			if v, ok := imapVars[n]; ok {
				names[k] = v
			}
		}
		msg = strings.Join(names, ", ") + msg[m[3]:]
	}
	// The settings messages mention further on ("refused without allow_plain").
	return fieldWord.ReplaceAllStringFunc(msg, func(w string) string {
		if w == "allow_plain" || w == "oauth2_token_file" {
			return imapVars[w]
		}
		return w
	})
}
