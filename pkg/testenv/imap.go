package testenv

import (
	"bytes"
	"io"
	"log"
	"net"
	"strconv"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// MemIMAP is go-imap's in-memory IMAP server on a loopback port, with one user whose INBOX
// exists, plain-text login allowed (tests connect with TLS none), MOVE and UIDPLUS announced.
type MemIMAP struct {
	User *imapmemserver.User
	Host string
	Port int
}

// NewMemIMAP starts the server; it stops at the end of the test.
func NewMemIMAP(tb testing.TB, username, password string) *MemIMAP {
	tb.Helper()
	mem := imapmemserver.New()
	u := imapmemserver.NewUser(username, password)
	if err := u.Create("INBOX", nil); err != nil {
		tb.Fatal(err)
	}
	mem.AddUser(u)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapMove: {}, imap.CapUIDPlus: {}, imap.CapESearch: {}},
		InsecureAuth: true,
		Logger:       log.New(io.Discard, "", 0),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	p, _ := strconv.Atoi(port)
	return &MemIMAP{User: u, Host: host, Port: p}
}

type literal struct {
	*bytes.Reader
	n int64
}

func (l literal) Size() int64 { return l.n }

// Append stores a message in a folder of the user.
func (m *MemIMAP) Append(tb testing.TB, folder string, data []byte) {
	tb.Helper()
	if _, err := m.User.Append(folder, literal{bytes.NewReader(data), int64(len(data))}, &imap.AppendOptions{}); err != nil {
		tb.Fatal(err)
	}
}
