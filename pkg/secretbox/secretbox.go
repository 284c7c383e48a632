// Package secretbox encrypts the few secrets Vigil must keep in its database (the passwords of
// mailboxes added through the API) with AES-256-GCM under a key from the configuration, so a
// database dump or backup alone does not give them away.
//
// A sealed value names the key it was sealed with (the first bytes of the key's SHA-256), so
// a key can be rotated: the new key seals, the old ones still open what they sealed until it
// is written again.
package secretbox

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeyBytes is the key length: AES-256.
const KeyBytes = 32

const (
	version  = 1
	idBytes  = 4
	overhead = 1 + idBytes + 12 // version, key id, nonce; GCM adds its 16-byte tag
)

var (
	// ErrUnknownKey: the value was sealed with a key this keyring does not hold.
	ErrUnknownKey = errors.New("secretbox: sealed with a key that is not configured")
	// ErrCorrupt: the value is not something Seal produced, or it was changed since.
	ErrCorrupt = errors.New("secretbox: sealed value is damaged or was altered")
)

type key struct {
	id   [idBytes]byte
	aead cipher.AEAD
}

// Keyring seals with its first key and opens with any of them. It is safe for concurrent use.
type Keyring struct {
	keys []key
}

// New builds a keyring: current seals, current and old open. Each key is KeyBytes long.
func New(current []byte, old ...[]byte) (*Keyring, error) {
	k := &Keyring{}
	for i, raw := range append([][]byte{current}, old...) {
		if len(raw) != KeyBytes {
			return nil, fmt.Errorf("secretbox: key %d has %d bytes, want %d", i, len(raw), KeyBytes)
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("secretbox: %w", err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("secretbox: %w", err)
		}
		sum := sha256.Sum256(raw)
		var id [idBytes]byte
		copy(id[:], sum[:])
		k.keys = append(k.keys, key{id: id, aead: aead})
	}
	return k, nil
}

// KeyID names the sealing key (hex), for logs and error messages; it reveals nothing useful
// about the key.
func (k *Keyring) KeyID() string { return hex.EncodeToString(k.keys[0].id[:]) }

// Seal encrypts plaintext under the current key. purpose is authenticated with it (not
// stored): a value sealed for one purpose does not open for another.
func (k *Keyring) Seal(plaintext []byte, purpose string) ([]byte, error) {
	cur := k.keys[0]
	out := make([]byte, overhead, overhead+len(plaintext)+cur.aead.Overhead())
	out[0] = version
	copy(out[1:], cur.id[:])
	nonce := out[1+idBytes : overhead]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("secretbox: nonce: %w", err)
	}
	return cur.aead.Seal(out, nonce, plaintext, []byte(purpose)), nil
}

// Open decrypts what Seal returned for the same purpose.
func (k *Keyring) Open(sealed []byte, purpose string) ([]byte, error) {
	if len(sealed) < overhead+16 || sealed[0] != version {
		return nil, ErrCorrupt
	}
	id := sealed[1 : 1+idBytes]
	for _, kk := range k.keys {
		if !bytes.Equal(kk.id[:], id) {
			continue
		}
		plain, err := kk.aead.Open(nil, sealed[1+idBytes:overhead], sealed[overhead:], []byte(purpose))
		if err != nil {
			return nil, ErrCorrupt
		}
		return plain, nil
	}
	return nil, fmt.Errorf("%w (key id %s)", ErrUnknownKey, hex.EncodeToString(id))
}

// NeedsReseal reports whether sealed was made with an old key, so a rotation can write it again.
func (k *Keyring) NeedsReseal(sealed []byte) bool {
	return len(sealed) < overhead || !bytes.Equal(sealed[1:1+idBytes], k.keys[0].id[:])
}

// ParseKey reads a key as configured: 32 bytes in base64 (standard or URL alphabet, padded
// or not) or 64 hex digits, surrounding space ignored. `openssl rand -base64 32` makes one.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 2*KeyBytes {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != KeyBytes {
				return nil, fmt.Errorf("decodes to %d bytes, want %d (openssl rand -base64 32)", len(b), KeyBytes)
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("want %d random bytes as base64 or %d hex digits (openssl rand -base64 32)", KeyBytes, 2*KeyBytes)
}

// NewKey returns a fresh random key, base64-encoded as ParseKey reads it.
func NewKey() (string, error) {
	b := make([]byte, KeyBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("secretbox: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}
