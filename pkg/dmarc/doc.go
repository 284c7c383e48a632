// Package dmarc parses DMARC aggregate reports (RFC 7489 Appendix C and the RFC 9990 schema,
// namespace urn:ietf:params:xml:ns:dmarc-2.0) into a normalised Report.
//
// The input is the raw XML of one report; unwrapping zip, gzip and MIME is another package's
// job. Parse and ParseBytes read a whole report; a Decoder streams the records of a large one
// with flat memory.
//
// # Liberal in what it accepts
//
// Real reporters deviate from the schema in many small ways, and every one of these is read:
// element and enum values are trimmed and enum values lower-cased ("Pass" is "pass"); report_id
// and email lose surrounding "<>"; a missing or empty org_name falls back to the domain of email;
// windows-1252, ISO-8859-1/latin1 and us-ascii declarations are decoded (the last two as
// windows-1252, as browsers do), and a "UTF-16" label on bytes that are plainly not UTF-16 is
// read as UTF-8 with a warning; a UTF-8 byte order mark and whitespace before the XML
// declaration are skipped; the RFC 9990 namespace, any prefix or none, reads the same (elements
// are matched on local names); a complete <feedback> as the first child of a stray, possibly
// unclosed wrapper element (one reporter sends <xs:schema ...><feedback>...</feedback> and
// stops) is read; fractional timestamps ("1704067200.0") are truncated; unknown elements are
// ignored; <record> elements before the metadata are accepted; disposition "pass" (RFC 9990) is
// valid.
//
// # Skipped versus rejected
//
// A report is rejected only when it cannot be understood, with an error wrapping one of
// ErrNotReport, ErrMalformed or ErrInvalid and naming the problem:
//   - ErrNotReport: empty input, text such as Yahoo's "unused", a root element other than
//     <feedback>.
//   - ErrMalformed: broken XML (including invalid UTF-8, named by line), any <!DOCTYPE> or other
//     markup declaration, entities other than the five predefined ones (so no billion laughs and
//     no XXE: nothing is ever resolved), UTF-16 input, an unknown declared charset, a second
//     root or other trailing data after </feedback>, and the limits below.
//   - ErrInvalid: well-formed XML without a policy domain or without a usable date range (end
//     before begin, a timestamp that is negative, unparsable, or later than now+MaxFutureSkew,
//     which also catches millisecond timestamps).
//
// A bad record is skipped and the rest of the report kept, as parsedmarc does, with a warning on
// the report: a source_ip that is not one plain address (leading-zero IPv4, CIDR, "%zone",
// "bad-ip"), a count that is missing, negative, not an integer or beyond int64, a record whose
// count would push the report's total past int64 (so MessageCount never overflows), and the
// empty record with no source IP and a zero count that o2.pl sends. Unknown enum values are
// kept (lower-cased) with a warning; so is begin == end. At most 100 warnings are kept per
// report, then they are counted.
//
// # Limits
//
// Limits are enforced while reading, so hostile input costs bounded memory: element nesting
// (MaxDepth, default 64, counted for ignored elements too), the raw size of any single XML token
// (MaxTokenBytes, default 1 MiB: a text node, a tag with all its attributes, a comment, a
// processing instruction), the number of <record> elements (MaxRecords, default 5,000,000),
// and how far in the future the date range may reach (MaxFutureSkew, default 24h).
//
// The XML is read by a small tokenizer of the package's own (scan.go), a strict
// well-formedness checker for what reports use that accepts and rejects the same documents as
// encoding/xml's RawToken did in strict mode, with the same error messages
// (FuzzTokenizerDifferential compares the two); it reads a buffered window of the input and
// returns names and text as slices, with no allocation per token. The token cap is exact and the same for a byte slice and any reader: the bytes of one
// token, from its first to its last (a tag with all its attributes, a text run up to the next
// '<', a comment, a CDATA section, a declaration), may not exceed MaxTokenBytes, and the
// tokenizer never buffers more than MaxTokenBytes+1 bytes of a token, so a 64 MiB text node
// fails after 1 MiB instead of being buffered whole.
//
// Whitespace-only runs between a '>' and the next '<' (the indentation of a pretty-printed
// report) are dropped after start and end tags; every value is trimmed anyway. The only
// visible effect is on the pathological text "a> <b" inside mixed content, which reads as
// "a><b". Names with non-ASCII characters, which reports never use, are checked against
// encoding/xml's own tables of XML name characters.
package dmarc
