// Package senders names the service behind each source of mail ("Google Workspace", "Amazon
// SES", …) from the registrable domain of its PTR name and its AS number, and serves
// /api/senders: a policy domain's sources grouped by named sender with their DMARC results and
// advice on what to fix. The mapping is a data file kept in the repository (senders.json)
// that an admin extends or overrides through the API (the sender_mappings table), without a
// redeploy: a sender is named when the question is asked, never frozen into the enrichment
// cache.
package senders

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// Sender types. A known service sends on its customers' behalf; hosting is a network anyone
// can rent; isp is a residential or dynamic access line (a compromised machine, or a forwarder).
const (
	TypeMailbox   = "mailbox_provider"
	TypeESP       = "esp"
	TypeMarketing = "marketing"
	TypeCRM       = "crm"
	TypeHelpdesk  = "helpdesk"
	TypeSaaS      = "saas"
	TypeSecurity  = "security_gateway"
	TypeHosting   = "hosting"
	TypeISP       = "isp"
	TypeUnknown   = "unknown"
)

// Types lists the valid sender types.
var Types = []string{TypeMailbox, TypeESP, TypeMarketing, TypeCRM, TypeHelpdesk, TypeSaaS, TypeSecurity, TypeHosting, TypeISP, TypeUnknown}

// ISPName is the sender of a residential or dynamic address.
const ISPName = "ISP / residential"

//go:embed senders.json
var builtinFile []byte

// Entry is one sender of the data file.
type Entry struct {
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	Domains []string `json:"domains"`
	ASNs    []uint32 `json:"asns"`
}

// Sender is a named service and its type.
type Sender struct {
	Name string
	Type string
}

// Mapping is one admin override: a base domain or an AS number mapped to a sender.
type Mapping struct {
	ID      int64  `json:"id"`
	Kind    string `json:"kind"`    // "domain" or "asn"
	Pattern string `json:"pattern"` // the base domain, lower case, or the AS number in decimal
	Name    string `json:"name"`
	Type    string `json:"type"`
}

// Catalog maps base domains and AS numbers to senders. It is immutable once built.
type Catalog struct {
	byDomain map[string]Sender
	byASN    map[uint32]Sender
}

// Builtin parses the data file kept in the repository.
func Builtin() (*Catalog, error) {
	entries, err := parseEntries(builtinFile)
	if err != nil {
		return nil, err
	}
	c := &Catalog{byDomain: map[string]Sender{}, byASN: map[uint32]Sender{}}
	for _, e := range entries {
		s := Sender{Name: e.Name, Type: e.Type}
		for _, d := range e.Domains {
			if _, dup := c.byDomain[d]; dup {
				return nil, fmt.Errorf("senders.json: domain %s listed twice", d)
			}
			c.byDomain[d] = s
		}
		for _, a := range e.ASNs {
			if _, dup := c.byASN[a]; dup {
				return nil, fmt.Errorf("senders.json: AS%d listed twice", a)
			}
			c.byASN[a] = s
		}
	}
	return c, nil
}

// Entries returns the data file's entries.
func Entries() ([]Entry, error) { return parseEntries(builtinFile) }

func parseEntries(b []byte) ([]Entry, error) {
	var doc struct {
		Senders []Entry `json:"senders"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("senders.json: %w", err)
	}
	return doc.Senders, nil
}

// With returns the catalog with the admin's mappings on top (they win over the file).
func (c *Catalog) With(ms []Mapping) *Catalog {
	out := &Catalog{byDomain: make(map[string]Sender, len(c.byDomain)+len(ms)), byASN: make(map[uint32]Sender, len(c.byASN))}
	for k, v := range c.byDomain {
		out.byDomain[k] = v
	}
	for k, v := range c.byASN {
		out.byASN[k] = v
	}
	for _, m := range ms {
		s := Sender{Name: m.Name, Type: m.Type}
		switch m.Kind {
		case "domain":
			out.byDomain[m.Pattern] = s
		case "asn":
			if n, err := strconv.ParseUint(m.Pattern, 10, 32); err == nil {
				out.byASN[uint32(n)] = s
			}
		}
	}
	return out
}

// Match names the sender of a source from what enrichment found: its PTR's base domain
// first (the most specific evidence: mail-*.google.com is Google's mail service whatever the
// network), then a residential-looking PTR, then the AS number. ok is false for an unknown
// sender.
func (c *Catalog) Match(baseDomain string, asn uint32, residential bool) (Sender, bool) {
	if baseDomain != "" {
		if s, ok := c.byDomain[strings.ToLower(baseDomain)]; ok {
			return s, true
		}
	}
	if residential {
		return Sender{Name: ISPName, Type: TypeISP}, true
	}
	if asn != 0 {
		if s, ok := c.byASN[asn]; ok {
			return s, true
		}
	}
	return Sender{Type: TypeUnknown}, false
}

// residentialWords are labels access providers put in the PTR names of customer lines.
var residentialWords = regexp.MustCompile(`(?i)(^|[.\-_0-9])(dyn|dynamic|dynamicip|dhcp|dsl|adsl|vdsl|xdsl|pool|dial|dialup|dialin|ppp|pppoe|cable|broadband|residential|resi|customer|cust|client|clients|cpe|subscriber|fttx|ftth|static)([.\-_0-9]|$)`)

// Residential reports whether a PTR name looks like an access line rather than a mail
// server: a generic word (dynamic, dsl, pool, …) or the address itself written into the
// name (203-0-113-9.example.net, 9.113.0.203.example.net).
func Residential(ptr string, ip netip.Addr) bool {
	ptr = strings.ToLower(strings.TrimSuffix(ptr, "."))
	if ptr == "" {
		return false
	}
	if residentialWords.MatchString(ptr) {
		return true
	}
	ip = ip.Unmap()
	if !ip.Is4() {
		return false
	}
	b := ip.As4()
	o := [4]string{strconv.Itoa(int(b[0])), strconv.Itoa(int(b[1])), strconv.Itoa(int(b[2])), strconv.Itoa(int(b[3]))}
	for _, sep := range []string{"-", ".", "_"} {
		fwd := strings.Join(o[:], sep)
		rev := o[3] + sep + o[2] + sep + o[1] + sep + o[0]
		if strings.Contains(ptr, fwd) || strings.Contains(ptr, rev) {
			return true
		}
	}
	return false
}
