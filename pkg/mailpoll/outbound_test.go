package mailpoll

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/pkg/outbound"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// loopbackAllowed is the allowance tests with an IMAP server on 127.0.0.1 need
// (VIGIL_OUTBOUND_ALLOW=127.0.0.1/32).
var loopbackAllowed = &outbound.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}

// TestOutboundPolicy: mailboxes added through the API cannot point at loopback, link-local,
// metadata or private addresses (the five hosts the issue reports were accepted), on create
// or update; private ranges and exact hosts can be allowed; a mailbox saved under an
// allowance that no longer holds is refused when the poll connects, naming the rule.
func TestOutboundPolicy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testenv.Backends()[0].Store(t)
	svc := newServiceWith(t, Deps{Store: st, Ingest: newIngest(st), Keys: testKeys(t)})
	in := func(name, host string) Input {
		return Input{Name: ptr(name), Host: ptr(host), Username: ptr("u"), Password: ptr("p")}
	}
	cases := map[string]string{
		"169.254.169.254": "cloud metadata", "10.0.0.1": "private", "localhost": "loopback",
		"metadata.google.internal": "cloud metadata", "127.0.0.1": "loopback", "::1": "loopback", "fe80::1": "link-local",
	}
	for host, rule := range cases {
		_, err := svc.Create(ctx, in("m-"+host, host))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), rule) {
			t.Errorf("create %s: got %v, want refused naming %q", host, err, rule)
		}
	}
	m, err := svc.Create(ctx, in("public", "imap.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Update(ctx, m.ID, Input{Host: ptr("169.254.169.254")}); !errors.Is(err, ErrInvalid) {
		t.Errorf("update to metadata: %v", err)
	}
	// Allowed by configuration: private ranges, exact hosts.
	lenient := newServiceWith(t, Deps{Store: st, Ingest: newIngest(st), Keys: testKeys(t),
		Outbound: &outbound.Policy{AllowPrivate: true, AllowHosts: []string{"localhost"}}})
	if _, err := lenient.Create(ctx, in("onprem", "10.0.0.1")); err != nil {
		t.Errorf("private with AllowPrivate: %v", err)
	}
	if _, err := lenient.Create(ctx, in("byname", "localhost")); err != nil {
		t.Errorf("host listed by name: %v", err)
	}
	if _, err := lenient.Create(ctx, in("meta", "169.254.169.254")); err == nil {
		t.Error("metadata allowed by AllowPrivate")
	}
	// Saved while 127.0.0.1 was allowed; polled under the default policy: refused at connect.
	srv := newMemServer(t)
	keys := testKeys(t)
	allowed := newServiceWith(t, Deps{Store: st, Ingest: newIngest(st), Keys: keys, Outbound: loopbackAllowed})
	c := srv.cfg
	lb, err := allowed.Create(ctx, Input{Name: ptr("lb"), Host: ptr(c.Host), Port: ptr(c.Port), Username: ptr(c.Username),
		Password: ptr(c.Password), TLS: ptr("none"), AllowPlain: ptr(true)})
	if err != nil {
		t.Fatal(err)
	}
	strict := newServiceWith(t, Deps{Store: st, Ingest: newIngest(st), Keys: keys})
	_, err = strict.Poll(ctx, lb.ID)
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("poll under the default policy: %v, want refused naming loopback", err)
	}
	if _, err := allowed.Poll(ctx, lb.ID); err != nil {
		t.Fatalf("poll with the allowance: %v", err)
	}
}
