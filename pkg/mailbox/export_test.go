package mailbox

import "testing"

// The Dovecot harness, for the end-to-end suite in package mailbox_test (pipeline_test.go),
// which runs the real pipeline behind the poller and so cannot live in this package (pkg/mailpoll
// and pkg/ingest would import it back).

// StartDovecot starts a Dovecot of the test's own; see dovecot_test.go.
func StartDovecot(tb testing.TB) *dovecot { return startDovecot(tb, dovecotOpts{}) }

// Config is a Config for the test mailbox.
func (d *dovecot) Config() Config { return d.config() }

// Deliver puts messages in INBOX as a local delivery agent does.
func (d *dovecot) Deliver(tb testing.TB, msgs [][]byte) { d.deliver(tb, msgs) }

// Backlog is n messages: every corpus e-mail, generated reports and spam, with the content
// keys expected in the archive and invalid folders.
func Backlog(tb testing.TB, n int) (msgs [][]byte, archive, invalid map[string]int) {
	return backlog(tb, n)
}

// FolderKeys counts a folder's messages by content key (Key).
func FolderKeys(tb testing.TB, cfg Config, folder string) map[string]int {
	return keysOf(newPeek(tb, cfg).folder(folder))
}

// Key is the content key FolderKeys and Backlog use.
func Key(b []byte) string { return key(b) }

// Total is the number of messages a count by key stands for.
func Total(m map[string]int) int { return total(m) }
