package config

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/vigilhq/vigil/pkg/secretbox"
)

// Encryption is the key that seals secrets kept in the database (passwords of mailboxes added
// through the API). Empty Key: the embedded default generates one into the data dir; a split
// deployment (VIGIL_REDIS_URL) without one cannot store such secrets, and says so when asked to.
type Encryption struct {
	Key     []byte   // VIGIL_ENCRYPTION_KEY: seals and opens
	OldKeys [][]byte // VIGIL_ENCRYPTION_OLD_KEYS: open only, while values are re-sealed (rotation)
}

func loadEncryption(e *env) Encryption {
	var out Encryption
	if v := e.secret("VIGIL_ENCRYPTION_KEY"); v != "" {
		k, err := secretbox.ParseKey(v)
		if err != nil {
			e.fail("VIGIL_ENCRYPTION_KEY", "(hidden)", err.Error())
		}
		out.Key = k
	}
	if v := e.secret("VIGIL_ENCRYPTION_OLD_KEYS"); v != "" {
		if out.Key == nil && e.err == nil {
			e.fail("VIGIL_ENCRYPTION_OLD_KEYS", "(hidden)", "set VIGIL_ENCRYPTION_KEY too: old keys only open values, the current key seals them")
		}
		for i, s := range strings.Split(v, ",") {
			k, err := secretbox.ParseKey(s)
			if err != nil {
				e.fail("VIGIL_ENCRYPTION_OLD_KEYS", "(hidden)", fmt.Sprintf("key %d: %v", i+1, err))
				break
			}
			out.OldKeys = append(out.OldKeys, k)
		}
	}
	return out
}

// loadTokenDir reads VIGIL_IMAP_TOKEN_DIR: the only directory from which mailboxes added
// through the API may read XOAUTH2 tokens (by file name), so an API user cannot make the
// worker read any other file and send it to a server of their choosing.
func loadTokenDir(e *env) string {
	d := e.str("VIGIL_IMAP_TOKEN_DIR", "")
	if d == "" {
		return ""
	}
	if !filepath.IsAbs(d) {
		e.fail("VIGIL_IMAP_TOKEN_DIR", d, "want an absolute path")
	}
	return filepath.Clean(d)
}
