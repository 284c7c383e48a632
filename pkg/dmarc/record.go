package dmarc

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
)

// recordState holds what decides whether a record is kept, gathered while it is read: the
// record is always read to its end tag first, so a bad one can be skipped cleanly.
type recordState struct {
	rec      Record
	ipText   string // set only when the address is unusable, for the warning
	ipErr    error
	ipEmpty  bool
	countErr error
	count    string // the raw count, when unusable
}

// record reads one <record> (RFC 7489 Appendix C RecordType). ok is false when the record is
// skipped; the reason is then in the warnings.
func (p *parser) record() (rec Record, ok bool, err error) {
	p.nrec++
	if p.nrec > p.lim.MaxRecords {
		return rec, false, fmt.Errorf("%w: more than %d records", ErrMalformed, p.lim.MaxRecords)
	}
	line := p.line()
	st := recordState{ipEmpty: true, countErr: errNoValue}
	for {
		el, more, err := p.child()
		if err != nil {
			return rec, false, err
		}
		if !more {
			break
		}
		switch string(el) {
		case "row":
			err = p.row(&st)
		case "identifiers":
			err = p.identifiers(&st.rec)
		case "auth_results":
			err = p.authResults(&st.rec)
		default: // RFC 9990 extensions and anything else
			err = p.skip()
		}
		if err != nil {
			return rec, false, err
		}
	}
	return p.keep(&st, line)
}

// keep applies the skip rules of the package comment to a fully read record.
func (p *parser) keep(st *recordState, line int) (Record, bool, error) {
	if why := p.skipReason(st); why != "" {
		p.warn("record %d (line %d) skipped: %s", p.nrec, line, why)
		return Record{}, false, nil
	}
	p.sum += st.rec.Count
	return st.rec, true, nil
}

func (p *parser) skipReason(st *recordState) string {
	switch {
	case st.ipEmpty && st.countErr == nil && st.rec.Count == 0:
		// o2.pl sends such an empty record; it says nothing about any message.
		return "no source IP and zero count"
	case st.ipEmpty:
		return "no source_ip"
	case st.ipErr != nil:
		return fmt.Sprintf("invalid source_ip %q: %v", st.ipText, st.ipErr)
	case errors.Is(st.countErr, errNoValue):
		return "no count"
	case errors.Is(st.countErr, errOutOfRange):
		return fmt.Sprintf("count %q is negative or beyond int64", st.count)
	case st.countErr != nil:
		return fmt.Sprintf("count %q is not a number", st.count)
	case st.rec.Count > p.lim.MaxCount:
		return fmt.Sprintf("count %d is over the limit of %d messages per record (VIGIL_MAX_RECORD_COUNT)", st.rec.Count, p.lim.MaxCount)
	case st.rec.Count > math.MaxInt64-p.sum:
		return fmt.Sprintf("count %d would overflow the report's message total", st.rec.Count)
	}
	return ""
}

func (p *parser) row(st *recordState) error {
	for {
		el, ok, err := p.child()
		if err != nil || !ok {
			return err
		}
		switch string(el) {
		case "source_ip":
			err = p.sourceIP(st)
		case "count":
			err = p.count(st)
		case "policy_evaluated":
			err = p.policyEvaluated(&st.rec)
		default:
			err = p.skip()
		}
		if err != nil {
			return err
		}
	}
}

func (p *parser) sourceIP(st *recordState) error {
	b, err := p.text()
	if err != nil {
		return err
	}
	st.ipEmpty = len(b) == 0
	if !st.ipEmpty {
		var ip netip.Addr
		if ip, st.ipErr = sourceIP(b); st.ipErr != nil {
			st.ipText = clip(b)
		}
		st.rec.SourceIP = ip
	}
	return nil
}

func (p *parser) count(st *recordState) error {
	b, err := p.text()
	if err != nil {
		return err
	}
	st.rec.Count, st.countErr = parseCount(b)
	if st.countErr != nil {
		st.count = clip(b)
	}
	return nil
}

func (p *parser) policyEvaluated(rec *Record) error {
	for {
		el, ok, err := p.child()
		if err != nil || !ok {
			return err
		}
		switch string(el) {
		case "disposition":
			rec.Disposition, err = p.enum("disposition", enumDisposition)
		case "dkim":
			rec.DKIM, err = p.enum("policy_evaluated dkim", enumDMARCResult)
		case "spf":
			rec.SPF, err = p.enum("policy_evaluated spf", enumDMARCResult)
		case "reason":
			err = p.reason(rec)
		default:
			err = p.skip()
		}
		if err != nil {
			return err
		}
	}
}

// reason reads a policy override reason; an empty one (parsedmarc's empty_reason sample) says
// nothing and is dropped.
func (p *parser) reason(rec *Record) error {
	var r Reason
	for {
		el, ok, err := p.child()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch string(el) {
		case "type":
			r.Type, err = p.enum("reason type", enumReason)
		case "comment":
			r.Comment, err = p.textString()
		default:
			err = p.skip()
		}
		if err != nil {
			return err
		}
	}
	if r != (Reason{}) {
		rec.Reasons = append(rec.Reasons, r)
	}
	return nil
}

func (p *parser) identifiers(rec *Record) error {
	for {
		el, ok, err := p.child()
		if err != nil || !ok {
			return err
		}
		switch string(el) {
		case "header_from":
			rec.HeaderFrom, err = p.textString()
		case "envelope_from":
			rec.EnvelopeFrom, err = p.textString()
		case "envelope_to":
			rec.EnvelopeTo, err = p.textString()
		default:
			err = p.skip()
		}
		if err != nil {
			return err
		}
	}
}

// authResults keeps every dkim and spf result: a message can carry several signatures.
func (p *parser) authResults(rec *Record) error {
	for {
		el, ok, err := p.child()
		if err != nil || !ok {
			return err
		}
		switch string(el) {
		case "dkim":
			var r DKIMResult
			if r, err = p.dkimResult(); err == nil && r != (DKIMResult{}) {
				rec.DKIMResults = append(rec.DKIMResults, r)
			}
		case "spf":
			var r SPFResult
			if r, err = p.spfResult(); err == nil && r != (SPFResult{}) {
				rec.SPFResults = append(rec.SPFResults, r)
			}
		default:
			err = p.skip()
		}
		if err != nil {
			return err
		}
	}
}

func (p *parser) dkimResult() (r DKIMResult, err error) {
	for {
		el, ok, err := p.child()
		if err != nil || !ok {
			return r, err
		}
		switch string(el) {
		case "domain":
			r.Domain, err = p.textString()
		case "selector":
			r.Selector, err = p.textString()
		case "result":
			r.Result, err = p.enum("dkim result", enumDKIMResult)
		case "human_result":
			r.HumanResult, err = p.textString()
		default:
			err = p.skip()
		}
		if err != nil {
			return r, err
		}
	}
}

func (p *parser) spfResult() (r SPFResult, err error) {
	for {
		el, ok, err := p.child()
		if err != nil || !ok {
			return r, err
		}
		switch string(el) {
		case "domain":
			r.Domain, err = p.textString()
		case "scope":
			r.Scope, err = p.enum("spf scope", enumSPFScope)
		case "result":
			r.Result, err = p.enum("spf result", enumSPFResult)
		case "human_result":
			r.HumanResult, err = p.textString()
		default:
			err = p.skip()
		}
		if err != nil {
			return r, err
		}
	}
}
