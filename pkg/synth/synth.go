// Package synth generates realistic synthetic DMARC aggregate reports, fast and reproducibly
// (a seed), for benchmarks, load tests and randomized tests: N policy domains with their
// published policies, M source IPs (IPv4 and IPv6) whose volumes follow a heavy-tailed (Zipf)
// distribution, a set of reporters of very different sizes sending daily reports over a period,
// a share of multi-day (weekly, few-day) and odd-hour reports, and failures where they happen in
// real life: forwarders breaking SPF, misconfigured senders, spoofers.
package synth

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/vigilhq/vigil/pkg/dmarc"
	"github.com/vigilhq/vigil/pkg/store"
)

// Config sizes the data. Zero fields take the defaults of Defaults.
type Config struct {
	Seed      uint64
	Domains   int
	Sources   int // distinct source IPs
	Reporters int
	Days      int       // days of history
	End       time.Time // reports end before this day (UTC midnight); default: today
	Reports   int       // reports in total
	// RecordsPerReport is the mean; report sizes vary from 1 to about twice that.
	RecordsPerReport int
	// MultiDayShare of the reports span several days (weekly or 2–4 days).
	MultiDayShare float64
	// IPv6Share of the sources are IPv6 addresses.
	IPv6Share float64
}

// Defaults is a small data set.
var Defaults = Config{Seed: 1, Domains: 10, Sources: 2000, Reporters: 12, Days: 90, Reports: 2000,
	RecordsPerReport: 10, MultiDayShare: 0.05, IPv6Share: 0.15}

func (c Config) withDefaults() Config {
	d := Defaults
	if c.Seed == 0 {
		c.Seed = d.Seed
	}
	if c.Domains <= 0 {
		c.Domains = d.Domains
	}
	if c.Sources <= 0 {
		c.Sources = d.Sources
	}
	if c.Reporters <= 0 {
		c.Reporters = d.Reporters
	}
	if c.Days <= 0 {
		c.Days = d.Days
	}
	if c.Reports <= 0 {
		c.Reports = d.Reports
	}
	if c.RecordsPerReport <= 0 {
		c.RecordsPerReport = d.RecordsPerReport
	}
	if c.MultiDayShare < 0 {
		c.MultiDayShare = 0
	}
	if c.IPv6Share < 0 {
		c.IPv6Share = 0
	}
	if c.End.IsZero() {
		c.End = time.Now().UTC().Truncate(24 * time.Hour)
	}
	c.End = c.End.UTC().Truncate(24 * time.Hour)
	return c
}

// source classes: how a sender's mail fares.
const (
	legit     = iota // the domain's own or its ESPs: aligned, a few failures
	forwarder        // mailing lists and forwarders: DKIM survives, SPF does not
	broken           // misconfigured senders and spoofers: both fail
)

type source struct {
	ip     netip.Addr
	class  int
	weight float64
}

type domain struct {
	name    string
	pol     dmarc.Policy
	weight  float64
	sources *alias // over srcIdx
	srcIdx  []int
}

type reporter struct {
	org, email string
	weight     float64
	weekly     bool // sends one report per week instead of per day
}

// Generator yields reports in order of their begin time.
type Generator struct {
	cfg       Config
	rng       *rand.Rand
	sources   []source
	domains   []domain
	reporters []reporter
	domPick   *alias
	repPick   *alias
	n         int
	seq       int
}

var reporterNames = []string{"google.com", "Outlook.com", "Yahoo", "Mail.Ru", "AMAZON-SES", "Comcast", "GMX",
	"web.de", "Fastmail Pty Ltd", "Zoho Corporation", "Orange", "Proofpoint", "Mimecast", "Cisco ESA", "t-online.de",
	"seznam.cz", "Yandex", "La Poste", "XS4ALL", "Enterprise Outlook"}

var domainWords = []string{"acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka", "tyrell",
	"cyberdyne", "soylent", "aperture", "vandelay", "prestige", "monarch", "oceanic", "massive", "dunder"}

// New builds the world (domains, sources, reporters) for cfg.
func New(cfg Config) *Generator {
	cfg = cfg.withDefaults()
	g := &Generator{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
	g.makeReporters()
	g.makeDomains()
	g.makeSources()
	return g
}

// Config is the configuration in effect (defaults filled in).
func (g *Generator) Config() Config { return g.cfg }

// zipf is the weight of rank r (from 0) in a Zipf distribution with exponent s.
func zipf(r int, s float64) float64 { return 1 / math.Pow(float64(r+1), s) }

func (g *Generator) makeReporters() {
	w := make([]float64, g.cfg.Reporters)
	for i := range w {
		name := fmt.Sprintf("reporter%d.example", i)
		if i < len(reporterNames) {
			name = reporterNames[i]
		}
		w[i] = zipf(i, 1.0)
		g.reporters = append(g.reporters, reporter{org: name, email: "noreply-dmarc@" + name, weight: w[i], weekly: i%7 == 5})
	}
	g.repPick = newAlias(w)
}

func (g *Generator) makeDomains() {
	w := make([]float64, g.cfg.Domains)
	for i := range w {
		name := fmt.Sprintf("%s%d.example", domainWords[i%len(domainWords)], i)
		pol := dmarc.Policy{Domain: name, ADKIM: "r", ASPF: "r"}
		switch x := g.rng.Float64(); {
		case x < 0.35:
			pol.P = "none"
		case x < 0.6:
			pol.P = "quarantine"
		default:
			pol.P = "reject"
		}
		if g.rng.Float64() < 0.3 {
			pol.SP = []string{"none", "quarantine", "reject"}[g.rng.IntN(3)]
		}
		if pol.P != "none" && g.rng.Float64() < 0.15 {
			p := 10 * (1 + g.rng.IntN(9))
			pol.Pct = &p
		} else if g.rng.Float64() < 0.7 {
			p := 100
			pol.Pct = &p
		}
		if g.rng.Float64() < 0.05 {
			pol.Testing = "y"
		}
		w[i] = zipf(i, 0.8)
		g.domains = append(g.domains, domain{name: name, pol: pol, weight: w[i]})
	}
	g.domPick = newAlias(w)
}

// makeSources gives each source an address, a class and a Zipf volume, and assigns it the
// domains it sends for: the biggest (large ESPs) send for many domains, the tail for one or two.
func (g *Generator) makeSources() {
	n := g.cfg.Sources
	// Provider blocks: sources cluster in /16s and /24s, as real senders do, so CIDR filters
	// select meaningful groups.
	blocks4 := []netip.Prefix{netip.MustParsePrefix("209.85.0.0/16"), netip.MustParsePrefix("40.92.0.0/16"),
		netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("54.240.0.0/16")}
	blocks6 := []netip.Prefix{netip.MustParsePrefix("2001:db8:4860::/48"), netip.MustParsePrefix("2001:db8:a00::/40"),
		netip.MustParsePrefix("2a01:db8::/32")}
	seen := map[netip.Addr]bool{}
	perDomain := make([][]int, len(g.domains))
	for i := 0; i < n; i++ {
		var ip netip.Addr
		for {
			if g.rng.Float64() < g.cfg.IPv6Share {
				ip = randomIn(g.rng, blocks6[g.rng.IntN(len(blocks6))])
			} else if g.rng.Float64() < 0.6 {
				ip = randomIn(g.rng, blocks4[g.rng.IntN(len(blocks4))])
			} else {
				var b [4]byte
				for j := range b {
					b[j] = byte(g.rng.IntN(256))
				}
				b[0] = byte(11 + g.rng.IntN(212)) // stay out of 0/8 and 224/4
				ip = netip.AddrFrom4(b)
			}
			if !seen[ip] {
				seen[ip] = true
				break
			}
		}
		class := legit
		switch x := g.rng.Float64(); {
		case x < 0.15:
			class = forwarder
		case x < 0.3:
			class = broken
		}
		g.sources = append(g.sources, source{ip: ip, class: class, weight: zipf(i, 1.1)})
		k := 1 + g.rng.IntN(2)
		if i < n/100+1 {
			k = max(1, len(g.domains)*3/10)
		}
		for j := 0; j < k; j++ {
			d := g.domPick.pick(g.rng)
			perDomain[d] = append(perDomain[d], i)
		}
	}
	for d := range g.domains {
		if len(perDomain[d]) == 0 {
			perDomain[d] = []int{g.rng.IntN(n)}
		}
		w := make([]float64, len(perDomain[d]))
		for j, s := range perDomain[d] {
			w[j] = g.sources[s].weight
		}
		g.domains[d].srcIdx, g.domains[d].sources = perDomain[d], newAlias(w)
	}
}

func randomIn(rng *rand.Rand, p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	for i := bits; i < 128; i++ {
		if rng.IntN(2) == 1 {
			b[i/8] |= 1 << (7 - uint(i%8))
		}
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		a = a.Unmap()
	}
	return a
}

// Next returns the next report, or false when all are generated. Reports come in order of
// their day.
func (g *Generator) Next() (store.Parsed, bool) {
	if g.n >= g.cfg.Reports {
		return store.Parsed{}, false
	}
	day := g.n * g.cfg.Days / g.cfg.Reports
	g.n++
	first := g.cfg.End.AddDate(0, 0, day-g.cfg.Days)
	d := &g.domains[g.domPick.pick(g.rng)]
	rep := g.reporters[g.repPick.pick(g.rng)]
	begin, end := g.period(first, rep)
	if end.After(g.cfg.End) {
		end = g.cfg.End.Add(-time.Second)
	}
	g.seq++
	h := &dmarc.Report{
		OrgName: rep.org, Email: rep.email, ReportID: fmt.Sprintf("%d.%d.%d", g.cfg.Seed, g.seq, begin.Unix()),
		DateBegin: begin, DateEnd: end, Policy: d.pol, Version: "1.0",
	}
	nrec := 1 + g.rng.IntN(2*g.cfg.RecordsPerReport-1)
	recs := make([]dmarc.Record, 0, nrec)
	for i := 0; i < nrec; i++ {
		recs = append(recs, g.record(d, &g.sources[d.srcIdx[d.sources.pick(g.rng)]]))
	}
	return store.Parsed{Header: h, Records: recs}, true
}

// period is a report's date range: mostly a UTC day (ending at 23:59:59 as most reporters
// write it), sometimes a week, a few days, or odd hours.
func (g *Generator) period(day time.Time, rep reporter) (time.Time, time.Time) {
	x := g.rng.Float64()
	switch {
	case rep.weekly || x < g.cfg.MultiDayShare*0.5:
		return day, day.AddDate(0, 0, 7).Add(-time.Second)
	case x < g.cfg.MultiDayShare:
		return day, day.AddDate(0, 0, 2+g.rng.IntN(3)).Add(-time.Second)
	case x < g.cfg.MultiDayShare+0.05:
		// Reporters on another clock: 24 hours from an odd hour.
		b := day.Add(time.Duration(1+g.rng.IntN(22)) * time.Hour)
		return b, b.Add(24 * time.Hour)
	}
	return day, day.Add(24*time.Hour - time.Second)
}

func (g *Generator) record(d *domain, s *source) dmarc.Record {
	// Heavy-tailed counts: big senders send many messages per report, the tail one or two.
	scale := 1 + 2000*s.weight
	count := int64(1 + scale*g.rng.ExpFloat64())
	var dkim, spf string
	switch s.class {
	case legit:
		dkim, spf = passIf(g.rng.Float64() < 0.97), passIf(g.rng.Float64() < 0.93)
	case forwarder:
		dkim, spf = passIf(g.rng.Float64() < 0.85), passIf(g.rng.Float64() < 0.05)
	default:
		dkim, spf = passIf(g.rng.Float64() < 0.03), passIf(g.rng.Float64() < 0.05)
	}
	headerFrom := d.name
	if g.rng.Float64() < 0.1 {
		headerFrom = "mail." + d.name
	}
	rec := dmarc.Record{SourceIP: s.ip, Count: count, DKIM: dkim, SPF: spf, HeaderFrom: headerFrom,
		EnvelopeFrom: headerFrom, Disposition: "none"}
	if dkim == "pass" || spf == "pass" {
		if g.rng.Float64() < 0.02 {
			rec.Disposition = "pass"
		}
		return rec
	}
	p := d.pol.P
	if headerFrom != d.name && d.pol.SP != "" {
		p = d.pol.SP
	}
	sampled := d.pol.Pct == nil || g.rng.IntN(100) < *d.pol.Pct
	switch {
	case p == "none":
	case g.rng.Float64() < 0.08:
		rec.Reasons = []dmarc.Reason{{Type: "forwarded"}}
	case p == "reject" && sampled:
		rec.Disposition = "reject"
	case p == "reject", p == "quarantine" && sampled:
		rec.Disposition = "quarantine"
	}
	return rec
}

func passIf(ok bool) string {
	if ok {
		return "pass"
	}
	return "fail"
}

// alias is Walker's alias table: O(1) weighted picks, which matters at millions of records.
type alias struct {
	prob  []float64
	alias []int
}

func newAlias(w []float64) *alias {
	n := len(w)
	var total float64
	for _, x := range w {
		total += x
	}
	a := &alias{prob: make([]float64, n), alias: make([]int, n)}
	scaled := make([]float64, n)
	var small, large []int
	for i, x := range w {
		scaled[i] = x * float64(n) / total
		if scaled[i] < 1 {
			small = append(small, i)
		} else {
			large = append(large, i)
		}
	}
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		a.prob[s], a.alias[s] = scaled[s], l
		scaled[l] -= 1 - scaled[s]
		if scaled[l] < 1 {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	for _, i := range append(small, large...) {
		a.prob[i], a.alias[i] = 1, i
	}
	return a
}

func (a *alias) pick(rng *rand.Rand) int {
	i := rng.IntN(len(a.prob))
	if rng.Float64() < a.prob[i] {
		return i
	}
	return a.alias[i]
}
