package ratelimit

import (
	"net/netip"
	"strconv"
)

// DefaultIPv6Prefix is how much of an IPv6 address names one client: a /64 is what one
// subscriber or host usually gets (RFC 6177), and it holds 2^64 addresses to rotate through.
const DefaultIPv6Prefix = 64

// AddressSubject is the subject that a client address's counters are kept under. An IPv4
// address (mapped into IPv6 or not) counts alone; an IPv6 address counts with the rest of its
// /bits network (DefaultIPv6Prefix when bits is 0), so a client cannot get a fresh allowance
// from each of the addresses its network gives it. What is not an address is used as it is.
func AddressSubject(ip string, bits int) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	if bits <= 0 || bits > 128 {
		bits = DefaultIPv6Prefix
	}
	p, _ := a.Prefix(bits)
	return p.Addr().String() + "/" + strconv.Itoa(bits)
}
