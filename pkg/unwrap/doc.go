// Package unwrap finds the report payloads inside an ingested file (an upload, a file from an
// import folder, or a whole IMAP message) and classifies each one, so the parsers only ever see
// one XML or JSON document at a time.
//
// # By content, never by name
//
// Every layer is recognised by its bytes, never by its file name, extension or declared MIME
// type, because reporters get those wrong (Mimecast labels zip as application/gzip, others send
// octet-stream named .xml.gz, or text/plain holding a zip). The magic bytes tried at each layer:
//
//   - gzip (1f 8b), possibly nested; only the first member is read (Multistream(false)) and any
//     bytes after it are ignored, because Mimecast appends CRLF after the stream. A second
//     concatenated member is therefore ignored too: no reporter sends one, and reading it would
//     turn Mimecast's trailing bytes into a header error. ISIZE is never trusted.
//   - zip (PK\x03\x04, or PK\x05\x06 for an empty archive): every entry, in sub-directories too;
//     directories, __MACOSX/ entries, ._* AppleDouble files and .DS_Store are skipped as
//     packaging junk. Encrypted, symbolic-link and unsupported-method entries reject the archive
//     before any entry is handed out, so an archive is all processed or rejected, never reduced.
//   - raw zlib (78 01/5e/9c/da with a valid header checksum, and a start that inflates), as
//     AOL sends.
//   - an e-mail (header lines such as Received:, From:, Content-Type:, X-...:, after an
//     optional mbox "From " line): every MIME part, nested message/rfc822 too. Headers are read
//     liberally, as the mail readers reporters test with do: a line of only spaces ends the
//     header block (Lotus Notes), and a line that is no field starts the body. Multipart bodies
//     are cut in place, without copies; a missing close delimiter is tolerated. Transfer
//     encodings base64 (line breaks, and spaces inside lines, are skipped), quoted-printable
//     and 7bit/8bit/binary are decoded. File names come from Content-Disposition filename
//     (RFC 2231 too) or the Content-Type name (RFC 2047 too); duplicate parameters keep the
//     first. A text/* part, or a signature, is human mail text unless its bytes are a DMARC or
//     TLS-RPT report or a container; text/rfc822-headers and delivery notices are skipped.
//   - XML (optional BOM, whitespace, '<'): FormatDMARC when the root element, or an element in
//     the first 16 KiB under a stray wrapper, is <feedback>; FormatXML otherwise. UTF-16 is
//     classified the same way, so the XML parser can reject it with its own message.
//   - JSON ('{' or '['): FormatTLSRPT when it has an "organization-name" or "policies" key.
//
// An ARF message/feedback-report part of Feedback-Type auth-failure makes the whole message one
// FormatFailure part (RFC 6591); so does a message that holds nothing else and whose Subject
// names a DMARC failure or forensic report (Exim sends those as plain text, with no ARF part).
//
// # Limits
//
// Every limit is a field of [Limits]; a zero or negative field takes its default from
// [DefaultLimits]. Exceeding one is an error wrapping [ErrLimit] that names the part and the limit.
//
//   - MaxInputBytes (50 MiB): the raw input. An e-mail found inside a decoding layer (gzip,
//     zip, base64...) is buffered and held to the same size, as if it had been handed in
//     directly.
//   - MaxDecompressedBytes (256 MiB): the output of each decoding layer (gzip, zlib, zip entry,
//     base64...), so every part after all its layers. Zip entries are also refused up front when
//     they declare more, and stopped when they expand beyond what they declare. A zip found
//     inside a stream is buffered, up to this size, because archive/zip needs random access.
//   - MaxTotalBytes (512 MiB): the output of all decoding layers of one input together, which
//     bounds both the bytes handed out and the work spent on bytes that are skipped. Nested
//     compressed layers count a little twice (the inner compressed bytes, then their output).
//   - MaxRatio (200) above RatioFloorBytes (10 MiB): a layer's output divided by the size of the
//     whole input. Real reports compress about 30:1 (one real sample 102:1), bombs about 1000:1.
//   - MaxEntries (1000): entries of one zip (checked in the end-of-central-directory record
//     before archive/zip reads the directory) and MIME parts of one message.
//   - MaxDepth (5): containers opened inside each other (gzip, zlib, zip, e-mail), and
//     separately the multipart nesting inside one message.
//   - MaxMessageDepth (3): e-mails nested inside an e-mail (message/rfc822, or an .eml found in
//     an attachment).
//
// Memory stays flat: parts are streamed to the callback, except a zip or an e-mail inside a
// decoding layer, which are buffered within the limits above. Names are only labels: they are
// sanitised (base name, no control characters, at most 200 bytes) and never used as file
// system paths; nothing in this package touches the file system. Walk keeps no state between
// calls and may run concurrently.
package unwrap
