package mailpoll

import _ "embed"

// OpenAPI documents POST /api/mailboxes/{id}/test (pkg/httpapi merges it; the other mailbox
// routes are in its base document).
//
//go:embed openapi.json
var OpenAPI []byte
