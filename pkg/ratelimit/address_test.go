package ratelimit_test

import (
	"testing"

	"github.com/vigilhq/vigil/pkg/ratelimit"
)

// Issue 18: the addresses of one IPv6 /64 share their counters; IPv4 counts per address.
func TestAddressSubject(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		ip   string
		bits int
		want string
	}{
		{"192.0.2.7", 0, "192.0.2.7"},
		{"::ffff:192.0.2.7", 0, "192.0.2.7"},
		{"2001:db8:1:2:aaaa:bbbb:cccc:dddd", 0, "2001:db8:1:2::/64"},
		{"2001:db8:1:2::1", 0, "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", 64, "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", 64, "2001:db8:1:3::/64"},
		{"2001:db8:1:2:3::1", 56, "2001:db8:1::/56"},
		{"2001:db8::1", 128, "2001:db8::1/128"},
		{"fe80::1%eth0", 0, "fe80::/64"},
		{"not an address", 0, "not an address"},
	} {
		if got := ratelimit.AddressSubject(c.ip, c.bits); got != c.want {
			t.Errorf("AddressSubject(%q, %d) = %q, want %q", c.ip, c.bits, got, c.want)
		}
	}
}
