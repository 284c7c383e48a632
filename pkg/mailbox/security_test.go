package mailbox

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// banner listens on loopback and answers every connection with what another service would
// send, then waits for the client to give up.
func banner(t *testing.T, greeting string) (host string, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write([]byte(greeting))
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 512)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					c.Write([]byte(greeting))
				}
			}()
		}
	}()
	a := ln.Addr().(*net.TCPAddr)
	return a.IP.String(), a.Port
}

// Issue 18: a mailbox pointed at another service fails with an error that names the protocol
// failure and never repeats what the service sent, in every TLS mode.
func TestPollErrorsDoNotEchoTheFarEnd(t *testing.T) {
	t.Parallel()
	services := map[string]string{
		"ssh":  "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n",
		"http": "HTTP/1.0 400 Bad Request\r\nServer: secret-internal-app/1.2\r\n\r\n",
		"smtp": "220 mail.internal.example ESMTP Postfix\r\n",
	}
	leaks := []string{"SSH-2.0", "OpenSSH", "HTTP/1.0", "secret-internal-app", "Postfix", "mail.internal", "Bad Request"}
	for name, greeting := range services {
		host, port := banner(t, greeting)
		for _, mode := range []TLSMode{TLSNone, TLSStartTLS, TLSImplicit} {
			t.Run(name+"/"+string(mode), func(t *testing.T) {
				t.Parallel()
				cfg := Config{Host: host, Port: port, Username: "u", Password: "the-password", TLS: mode,
					AllowPlain: mode == TLSNone, OpTimeout: 3 * time.Second}
				_, err := (&Poller{}).Poll(context.Background(), cfg, State{}, newRecSink(t).sink)
				if err == nil {
					t.Fatal("a poll of a non-IMAP service succeeded")
				}
				for _, l := range leaks {
					if strings.Contains(err.Error(), l) {
						t.Fatalf("the error repeats the far end's %q: %v", l, err)
					}
				}
				if !errors.Is(err, ErrNotIMAP) && !errors.Is(err, ErrNoTLS) {
					t.Fatalf("error %v, want one naming the protocol failure", err)
				}
			})
		}
	}
}
