package dmarc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"
)

// meta collects what validation needs after report_metadata and policy_published are read.
type meta struct {
	seenMeta, seenPolicy bool
	begin, end           string
	seenBegin, seenEnd   bool
}

// header reads the feedback element up to the first record that follows both report_metadata
// and policy_published, then validates what it found. The schema puts records last
// (RFC 7489 Appendix C), but records that come earlier are read and buffered for next.
func (p *parser) header() (*Report, error) {
	if err := p.start(); err != nil {
		return nil, err
	}
	fb, err := p.findFeedback()
	if err != nil {
		return nil, err
	}
	rep := &Report{Namespace: namespace(fb, p.wrapperAttrs)}
	var m meta
	for !p.ended && !p.pending {
		if err := p.feedbackChild(rep, &m); err != nil {
			return nil, err
		}
	}
	if err := p.validate(rep, &m); err != nil {
		return nil, err
	}
	rep.Warnings = p.warnings()
	return rep, nil
}

// feedbackChild reads one child of <feedback> during header.
func (p *parser) feedbackChild(rep *Report, m *meta) error {
	el, ok, err := p.child()
	if err != nil {
		return err
	}
	if !ok {
		p.ended = true
		return nil
	}
	switch string(el) {
	case "report_metadata":
		m.seenMeta = true
		return p.metadata(rep, m)
	case "policy_published":
		m.seenPolicy = true
		return p.policy(&rep.Policy)
	case "version":
		rep.Version, err = p.textString()
	case "generator": // RFC 9990 puts it in report_metadata; accepted here too
		rep.Generator, err = p.textString()
	case "record":
		if m.seenMeta && m.seenPolicy {
			p.pending = true
			return nil
		}
		rec, ok, err := p.record()
		if ok {
			p.buffered = append(p.buffered, rec)
		}
		return err
	default:
		return p.skip()
	}
	return err
}

// findFeedback reads up to the <feedback> start tag: the root, or the first child of a stray
// wrapper root (one reporter wraps the report in an unclosed <xs:schema>).
func (p *parser) findFeedback() (startTag, error) {
	root, ok, err := p.firstElement()
	switch {
	case err == io.EOF:
		return root, fmt.Errorf("%w: no root element", ErrNotReport)
	case err != nil:
		return root, err
	case !ok:
		return root, fmt.Errorf("%w: text outside the root element", ErrNotReport)
	case root.local() == "feedback":
		return root, nil
	}
	child, ok, err := p.firstElement()
	if err != nil && err != io.EOF {
		return root, err
	}
	if ok && child.local() == "feedback" {
		p.wrapperAttrs = root.attrs
		return child, nil
	}
	return root, fmt.Errorf("%w: expected <feedback>, found <%s>", ErrNotReport, root.name)
}

// firstElement reads up to the next start tag; ok is false when text or an end tag comes
// first. Whitespace, comments and processing instructions are fine anywhere.
func (p *parser) firstElement() (el startTag, ok bool, err error) {
	for {
		kind, err := p.token()
		if err != nil {
			return el, false, err
		}
		switch kind {
		case tokStart:
			el.name = string(p.top())
			for _, a := range p.sc.attrs {
				el.attrs = append(el.attrs, xmlAttr{string(p.sc.attrBuf[a.name[0]:a.name[1]]),
					string(p.sc.attrBuf[a.value[0]:a.value[1]])})
			}
			return el, true, nil
		case tokEnd:
			return el, false, nil
		case tokText:
			if len(trimSpace(p.sc.text)) > 0 {
				return el, false, nil
			}
		}
	}
}

func (t startTag) local() string {
	_, local := splitName([]byte(t.name))
	return string(local)
}

// namespace is the namespace URI of the element's prefix, looked up on the element itself and
// then on the wrapper (the only ancestor a report can have).
func namespace(el startTag, outer []xmlAttr) string {
	prefix, _ := splitName([]byte(el.name))
	want := "xmlns"
	if len(prefix) > 0 {
		want = "xmlns:" + string(prefix)
	}
	for _, attrs := range [][]xmlAttr{el.attrs, outer} {
		for _, a := range attrs {
			if a.name == want {
				return a.value
			}
		}
	}
	return ""
}

// trailing checks that nothing but whitespace, comments and processing instructions follows
// </feedback>. In the wrapper case the wrapper's end tag may follow, or the input may simply
// stop, as the reporter that sends the unclosed wrapper does.
func (p *parser) trailing() error {
	for {
		kind, err := p.token()
		if err == io.EOF {
			return nil
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			// The input itself failed after the report (a container's checksum, checked only
			// at its end, or a cut stream): its error names the fault, not what follows.
			return err
		}
		if err != nil {
			return fmt.Errorf("trailing data after </feedback>: %w", err)
		}
		switch kind {
		case tokEnd: // the wrapper's: token() has matched it against the stack
			continue
		case tokText:
			if len(bytes.TrimSpace(p.sc.text)) == 0 {
				continue
			}
		case tokComment, tokPI:
			continue
		}
		return fmt.Errorf("%w: trailing data after </feedback> (line %d)", ErrMalformed, p.line())
	}
}

// next returns the next valid record, or io.EOF after </feedback> and the trailing check.
func (p *parser) next() (Record, error) {
	for {
		switch {
		case p.bufIdx < len(p.buffered):
			rec := p.buffered[p.bufIdx]
			p.buffered[p.bufIdx] = Record{}
			p.bufIdx++
			return rec, nil
		case p.pending:
			p.pending = false
			rec, ok, err := p.record()
			if err != nil || ok {
				return rec, err
			}
		case p.ended:
			if err := p.trailing(); err != nil {
				return Record{}, err
			}
			return Record{}, io.EOF
		default:
			el, ok, err := p.child()
			if err != nil {
				return Record{}, err
			}
			if !ok {
				p.ended = true
			} else if string(el) == "record" {
				p.pending = true
			} else if err := p.skip(); err != nil { // late metadata is not read twice
				return Record{}, err
			}
		}
	}
}

// metadata reads report_metadata (RFC 7489 Appendix C ReportMetadataType; RFC 9990 adds
// generator).
func (p *parser) metadata(rep *Report, m *meta) error {
	for {
		el, ok, err := p.child()
		if err != nil || !ok {
			return err
		}
		switch string(el) {
		case "org_name":
			rep.OrgName, err = p.textString()
		case "email":
			rep.Email, err = p.textString()
			rep.Email = stripAngles(rep.Email)
		case "extra_contact_info":
			rep.ExtraContactInfo, err = p.textString()
		case "report_id":
			rep.ReportID, err = p.textString()
			rep.ReportID = stripAngles(rep.ReportID)
		case "generator":
			rep.Generator, err = p.textString()
		case "error":
			var e string
			if e, err = p.textString(); e != "" {
				rep.Errors = append(rep.Errors, e)
			}
		case "date_range":
			err = p.dateRange(m)
		default:
			err = p.skip()
		}
		if err != nil {
			return err
		}
	}
}

func (p *parser) dateRange(m *meta) error {
	for {
		el, ok, err := p.child()
		if err != nil || !ok {
			return err
		}
		switch string(el) {
		case "begin":
			m.seenBegin = true
			m.begin, err = p.textString()
		case "end":
			m.seenEnd = true
			m.end, err = p.textString()
		default:
			err = p.skip()
		}
		if err != nil {
			return err
		}
	}
}

// policy reads policy_published (RFC 7489 Appendix C PolicyPublishedType; np, testing and
// discovery_method are RFC 9990, which also drops pct).
func (p *parser) policy(pol *Policy) error {
	for {
		el, ok, err := p.child()
		if err != nil || !ok {
			return err
		}
		switch string(el) {
		case "domain":
			pol.Domain, err = p.textString()
			pol.Domain = policyDomain(pol.Domain)
		case "p":
			pol.P, err = p.enum("policy p", enumPolicy)
		case "sp":
			pol.SP, err = p.enum("policy sp", enumPolicy)
		case "np":
			pol.NP, err = p.enum("policy np", enumPolicy)
		case "adkim":
			pol.ADKIM, err = p.enum("adkim", enumAlignment)
		case "aspf":
			pol.ASPF, err = p.enum("aspf", enumAlignment)
		case "pct":
			pol.Pct, err = p.pct()
		case "fo":
			pol.FO, err = p.textString()
		case "testing":
			pol.Testing, err = p.enum("testing", enumYesNo)
		case "discovery_method":
			pol.DiscoveryMethod, err = p.enum("discovery_method", enumDiscovery)
		default:
			err = p.skip()
		}
		if err != nil {
			return err
		}
	}
}

// pct is nil when absent or unusable; a value outside 0-100 is kept with a warning.
func (p *parser) pct() (*int, error) {
	b, err := p.text()
	if err != nil || len(b) == 0 {
		return nil, err
	}
	n, perr := parseCount(b)
	if perr != nil || n > 1_000_000 {
		p.warn("policy pct %q is not a percentage; ignored", clip(b))
		return nil, nil
	}
	if n > 100 {
		p.warn("policy pct %d is above 100", n)
	}
	v := int(n)
	return &v, nil
}

// validate applies the report-level rules once metadata and policy are read.
func (p *parser) validate(rep *Report, m *meta) error {
	if rep.Policy.Domain == "" {
		if !m.seenPolicy {
			return fmt.Errorf("%w: no policy domain (no <policy_published>)", ErrInvalid)
		}
		return fmt.Errorf("%w: no policy domain", ErrInvalid)
	}
	if !m.seenBegin || !m.seenEnd {
		return fmt.Errorf("%w: no date range (<date_range> with <begin> and <end> missing)", ErrInvalid)
	}
	var err error
	if rep.DateBegin, err = checkTimestamp("begin", []byte(m.begin), p.now, p.lim.MaxFutureSkew); err != nil {
		return err
	}
	if rep.DateEnd, err = checkTimestamp("end", []byte(m.end), p.now, p.lim.MaxFutureSkew); err != nil {
		return err
	}
	switch {
	case rep.DateEnd.Before(rep.DateBegin):
		return fmt.Errorf("%w: date range ends before it begins (begin %d, end %d)", ErrInvalid,
			rep.DateBegin.Unix(), rep.DateEnd.Unix())
	case rep.DateEnd.Equal(rep.DateBegin):
		p.warn("date range is empty: begin == end (%s)", rep.DateBegin.Format(time.RFC3339))
	}
	if rep.OrgName == "" {
		rep.OrgName = emailDomain(rep.Email)
	}
	if rep.OrgName == "" && rep.Email == "" {
		p.warn("report has neither org_name nor email")
	}
	return nil
}
