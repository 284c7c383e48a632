package mailbox

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"
)

// TLSMode says how the connection to the IMAP server is protected.
type TLSMode string

const (
	TLSImplicit TLSMode = "tls"      // TLS from the first byte (port 993)
	TLSStartTLS TLSMode = "starttls" // plain connect, then STARTTLS before anything else is said (port 143)
	TLSNone     TLSMode = "none"     // no encryption at all: only with AllowPlain (a server on the same host or network)
)

// Policy says what happens to a message once it is saved.
type Policy string

const (
	// PolicyMove moves saved messages to ArchiveFolder, and messages holding no report (or
	// too large to read) to InvalidFolder, so the watched folder only holds unhandled mail.
	PolicyMove Policy = "move"
	// PolicySeen leaves every message where it is and sets \Seen on it. Only unseen messages
	// are read, so a message a person opens before the next poll is never read: use
	// PolicyMove when the folder is not Vigil's alone.
	PolicySeen Policy = "seen"
)

// Defaults for the optional fields of Config.
const (
	DefaultFolder          = "INBOX"
	DefaultArchiveFolder   = "Archive"
	DefaultInvalidFolder   = "Invalid"
	DefaultMaxMessageBytes = 50 << 20
	DefaultBatchSize       = 100
	DefaultOpTimeout       = 60 * time.Second
	MaxBatchSize           = 1000 // keeps every UID set in a command line well under servers' line limits
)

// ErrInvalidConfig wraps every error Validate returns, so callers (the API) can answer 400/422.
var ErrInvalidConfig = errors.New("invalid mailbox configuration")

// Config is one mailbox to poll. The zero values of the optional fields take the defaults
// above; Validate reports what cannot work before any connection is tried.
type Config struct {
	Host     string
	Port     int // 0: 993 for TLSImplicit, 143 otherwise
	Username string

	// Exactly one way to authenticate. Password uses LOGIN. The OAuth2 token, for SASL
	// XOAUTH2 (Microsoft 365, Gmail), is read again at every connect, from a file that
	// another process keeps fresh or from the standard output of a command (run without a
	// shell: the first element is the program), so Vigil never holds a refresh token.
	Password           string
	OAuth2TokenFile    string
	OAuth2TokenCommand []string

	// Dial opens the TCP connection; nil: a plain net.Dialer. Mailboxes added through the API
	// get the outbound policy's dialer (pkg/outbound), which refuses forbidden addresses at
	// connect time; the operator's env mailbox does not.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	TLS        TLSMode // default TLSImplicit
	AllowPlain bool    // required for TLSNone: the password would cross the network in clear
	// CAFile is a PEM file of the certificate authorities to trust instead of the system's,
	// for a server with a private CA; CAPEM is the same as text, for mailboxes kept in the
	// database. At most one of them. Certificate checking cannot be turned off.
	CAFile string
	CAPEM  string

	Folder        string // watched folder, default INBOX
	ArchiveFolder string // default Archive (PolicyMove only; created when missing)
	InvalidFolder string // default Invalid (PolicyMove only; created when missing)
	Policy        Policy // default PolicyMove

	// MaxMessageBytes: larger messages (by RFC822.SIZE) are filed as invalid without being
	// downloaded. Default 50 MiB; keep it at most the pipeline's file size limit.
	MaxMessageBytes int64
	// BatchSize is how many messages are fetched, handed to the sink and then acknowledged
	// (moved or flagged) together. Default 100, at most MaxBatchSize.
	BatchSize int
	// OpTimeout bounds every network operation: connect, TLS handshake, each command, and
	// any wait for the server's next bytes while a response is being read. Default 60s.
	OpTimeout time.Duration
}

// WithDefaults returns c with every unset optional field at its default.
func (c Config) WithDefaults() Config {
	if c.TLS == "" {
		c.TLS = TLSImplicit
	}
	if c.Port == 0 {
		c.Port = 143
		if c.TLS == TLSImplicit {
			c.Port = 993
		}
	}
	c.Folder = orDefault(c.Folder, DefaultFolder)
	c.ArchiveFolder = orDefault(c.ArchiveFolder, DefaultArchiveFolder)
	c.InvalidFolder = orDefault(c.InvalidFolder, DefaultInvalidFolder)
	if c.Policy == "" {
		c.Policy = PolicyMove
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = DefaultOpTimeout
	}
	return c
}

func orDefault(s, def string) string {
	if strings.TrimSpace(s) == "" {
		return def
	}
	return s
}

// Validate checks the configuration with its defaults applied and lists every problem, each
// naming its field. It reads CAFile (a missing or certificate-less file is an error now, not
// at the first poll) but does not connect.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	switch {
	case strings.TrimSpace(c.Host) == "":
		bad("host: required")
	case strings.ContainsAny(c.Host, " /\t\r\n") || strings.Contains(c.Host, ":") && net.ParseIP(c.Host) == nil:
		bad("host %q: a host name or IP address only (no scheme, port, path or spaces)", c.Host)
	}
	if c.Port < 1 || c.Port > 65535 {
		bad("port %d: must be 1-65535", c.Port)
	}
	if strings.TrimSpace(c.Username) == "" {
		bad("username: required")
	}
	ways := 0
	for _, set := range []bool{c.Password != "", c.OAuth2TokenFile != "", len(c.OAuth2TokenCommand) > 0} {
		if set {
			ways++
		}
	}
	switch {
	case ways == 0:
		bad("password: required (or oauth2_token_file / oauth2_token_command for XOAUTH2)")
	case ways > 1:
		bad("password, oauth2_token_file, oauth2_token_command: give exactly one")
	}
	if len(c.OAuth2TokenCommand) > 0 && strings.TrimSpace(c.OAuth2TokenCommand[0]) == "" {
		bad("oauth2_token_command: the first element must name the program")
	}
	switch c.TLS {
	case TLSImplicit, TLSStartTLS:
	case TLSNone:
		if !c.AllowPlain {
			bad("tls none: refused without allow_plain, because the password would cross the network unencrypted")
		}
		if c.CAFile != "" || c.CAPEM != "" {
			bad("ca_file, ca_pem: only meaningful with tls or starttls")
		}
	default:
		bad("tls %q: must be tls, starttls or none", c.TLS)
	}
	if c.CAFile != "" && c.CAPEM != "" {
		bad("ca_file, ca_pem: give at most one")
	} else if c.TLS != TLSNone {
		if _, err := c.caPool(); err != nil {
			errs = append(errs, err)
		}
	}
	switch c.Policy {
	case PolicyMove:
		if strings.EqualFold(c.ArchiveFolder, c.Folder) || strings.EqualFold(c.InvalidFolder, c.Folder) {
			bad("archive_folder, invalid_folder: must differ from folder %q, or every message would be read again", c.Folder)
		}
	case PolicySeen:
	default:
		bad("policy %q: must be move or seen", c.Policy)
	}
	if c.MaxMessageBytes < 1 {
		bad("max_message_bytes %d: must be positive", c.MaxMessageBytes)
	}
	if c.BatchSize < 1 || c.BatchSize > MaxBatchSize {
		bad("batch_size %d: must be 1-%d", c.BatchSize, MaxBatchSize)
	}
	if c.OpTimeout < 0 {
		bad("op_timeout %s: must be positive", c.OpTimeout)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
}

// caPool reads the configured CA bundle, nil when none is set (the system's roots apply); at
// least one certificate must be in a bundle.
func (c Config) caPool() (*x509.CertPool, error) {
	b, what := []byte(c.CAPEM), "ca_pem"
	switch {
	case c.CAFile != "":
		var err error
		if b, err = os.ReadFile(c.CAFile); err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		what = "ca_file " + c.CAFile
	case c.CAPEM == "":
		return nil, nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", what)
	}
	return pool, nil
}

// LogValue keeps secrets out of logs: the password is never printed, and a token command
// shows only its program.
func (c Config) LogValue() slog.Value {
	auth := "password"
	switch {
	case c.OAuth2TokenFile != "":
		auth = "xoauth2 (token file)"
	case len(c.OAuth2TokenCommand) > 0:
		auth = "xoauth2 (token command " + c.OAuth2TokenCommand[0] + ")"
	}
	return slog.GroupValue(
		slog.String("host", c.Host), slog.Int("port", c.Port), slog.String("username", c.Username),
		slog.String("auth", auth), slog.String("tls", string(c.TLS)), slog.String("folder", c.Folder),
		slog.String("policy", string(c.Policy)))
}

// String is LogValue for fmt, so a Config printed by mistake shows no secret either.
func (c Config) String() string { return c.LogValue().String() }
