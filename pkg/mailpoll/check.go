package mailpoll

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vigilhq/vigil/pkg/mailbox"
	"github.com/vigilhq/vigil/pkg/outbound"
)

// TestTimeout bounds a mailbox test: it answers an admin waiting on a button, so a server that
// does not answer is reported as such well before the poll's own operation timeout.
const TestTimeout = 20 * time.Second

// Test stages: the step of a mailbox test that failed.
const (
	StageConfig  = "config"  // nothing usable to connect with (no password, a key missing, an invalid setting)
	StageConnect = "connect" // the address was refused by the outbound policy, or did not answer
	StageTLS     = "tls"     // TLS or STARTTLS failed (certificate, no TLS offered)
	StageLogin   = "login"   // the server refused the credentials, or did not answer as IMAP
	StageFolder  = "folder"  // logged in, but the watched folder cannot be opened
)

// TestResult is what a mailbox test found. OK is false with Stage and Error saying where
// and why; on success the watched folder's message count and how handled mail will be put
// away on this server.
type TestResult struct {
	OK          bool    `json:"ok"`
	Stage       string  `json:"stage"` // the step that failed; "" when OK
	Error       string  `json:"error"`
	Host        string  `json:"host"`
	Folder      string  `json:"folder"`
	Messages    *uint32 `json:"messages"`
	UIDValidity *uint32 `json:"uid_validity"`
	Acknowledge string  `json:"acknowledge"` // move, uidplus or copy+flag
	DurationMS  int64   `json:"duration_ms"`
}

// Test connects to a mailbox, logs in and examines its watched folder read-only, without
// polling: nothing is read, moved or flagged and the mailbox's state is untouched. It goes
// through the same outbound policy and credentials as a poll. A failed test is a result
// (OK false, with the stage and the reason), not an error; errors are only an unknown mailbox
// (store.ErrNotFound) or a broken database.
func (s *Service) Test(ctx context.Context, id int64) (TestResult, error) {
	r, err := s.get(ctx, id)
	if err != nil {
		return TestResult{}, err
	}
	start := s.now()
	out := TestResult{Host: r.Host, Folder: r.Folder}
	cfg, err := s.config(r)
	if err == nil {
		out.Host, out.Folder = cfg.Host, cfg.WithDefaults().Folder
	}
	if err != nil {
		out.Stage, out.Error = StageConfig, err.Error()
		out.DurationMS = s.now().Sub(start).Milliseconds()
		return out, nil
	}
	tctx, cancel := context.WithTimeoutCause(ctx, TestTimeout, fmt.Errorf("%w: no answer within %s", mailbox.ErrTimeout, TestTimeout))
	defer cancel()
	p := &mailbox.Poller{Log: s.log}
	res, err := p.Check(tctx, cfg)
	out.DurationMS = s.now().Sub(start).Milliseconds()
	if err != nil {
		out.Stage, out.Error = stageOf(err), err.Error()
		return out, nil
	}
	out.OK, out.Messages, out.UIDValidity, out.Acknowledge = true, &res.Messages, &res.UIDValidity, res.Acknowledge
	return out, nil
}

// stageOf names the step a failed check stopped at, from the error pkg/mailbox built: its
// sentinels where there is one, else the command its message names.
func stageOf(err error) string {
	m := err.Error()
	switch {
	case errors.Is(err, mailbox.ErrInvalidConfig):
		return StageConfig
	case errors.Is(err, outbound.ErrRefused), errors.Is(err, mailbox.ErrNotIMAP), strings.Contains(m, ": connect "),
		strings.Contains(m, "greeting"):
		return StageConnect
	case errors.Is(err, mailbox.ErrNoTLS), strings.Contains(m, "TLS handshake"), strings.Contains(m, "STARTTLS"):
		return StageTLS
	case strings.Contains(m, "EXAMINE "):
		return StageFolder
	case strings.Contains(m, "LOGIN as"), strings.Contains(m, "AUTHENTICATE"), strings.Contains(m, "oauth2"):
		return StageLogin
	}
	return StageConnect // a timeout or a cut connection before the session was up
}
