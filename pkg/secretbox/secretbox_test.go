package secretbox

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func mustKey(t *testing.T) []byte {
	t.Helper()
	s, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	k1, k2 := mustKey(t), mustKey(t)
	ring, err := New(k1)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("correct horse battery staple")
	a, err := ring.Seal(secret, "mailbox password")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ring.Seal(secret, "mailbox password")
	if bytes.Equal(a, b) {
		t.Fatal("two seals of one value are equal: the nonce is not random")
	}
	if bytes.Contains(a, secret) {
		t.Fatal("sealed value contains the plaintext")
	}
	got, err := ring.Open(a, "mailbox password")
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}

	cases := []struct {
		name    string
		sealed  func() []byte
		purpose string
		ring    *Keyring
		want    error
	}{
		{"other purpose", func() []byte { return a }, "something else", ring, ErrCorrupt},
		{"flipped bit", func() []byte { c := bytes.Clone(a); c[len(c)-1] ^= 1; return c }, "mailbox password", ring, ErrCorrupt},
		{"truncated", func() []byte { return a[:10] }, "mailbox password", ring, ErrCorrupt},
		{"empty", func() []byte { return nil }, "mailbox password", ring, ErrCorrupt},
		{"other key", func() []byte { return a }, "mailbox password", mustRing(t, k2), ErrUnknownKey},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := c.ring.Open(c.sealed(), c.purpose); !errors.Is(err, c.want) {
				t.Fatalf("Open: %v, want %v", err, c.want)
			}
		})
	}
}

func mustRing(t *testing.T, cur []byte, old ...[]byte) *Keyring {
	t.Helper()
	r, err := New(cur, old...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRotation(t *testing.T) {
	t.Parallel()
	oldKey, newKey := mustKey(t), mustKey(t)
	before := mustRing(t, oldKey)
	sealed, err := before.Seal([]byte("pw"), "p")
	if err != nil {
		t.Fatal(err)
	}
	after := mustRing(t, newKey, oldKey)
	if !after.NeedsReseal(sealed) {
		t.Fatal("a value sealed with the old key does not need resealing")
	}
	if got, err := after.Open(sealed, "p"); err != nil || string(got) != "pw" {
		t.Fatalf("old key no longer opens: %q %v", got, err)
	}
	fresh, _ := after.Seal([]byte("pw"), "p")
	if after.NeedsReseal(fresh) {
		t.Fatal("a fresh value needs resealing")
	}
	if _, err := before.Open(fresh, "p"); !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), after.KeyID()) {
		t.Fatalf("old ring opening a new value: %v (want the key id %s named)", err, after.KeyID())
	}
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	raw := bytes.Repeat([]byte{0xfb}, KeyBytes)
	good := map[string]string{
		"base64 std":     base64.StdEncoding.EncodeToString(raw),
		"base64 raw url": base64.RawURLEncoding.EncodeToString(raw),
		"hex":            hex.EncodeToString(raw),
		"spaces":         "  " + base64.StdEncoding.EncodeToString(raw) + "\n",
	}
	for name, s := range good {
		if k, err := ParseKey(s); err != nil || !bytes.Equal(k, raw) {
			t.Errorf("%s: %x %v", name, k, err)
		}
	}
	bad := map[string]string{
		"empty":       "",
		"short":       base64.StdEncoding.EncodeToString(raw[:16]),
		"long":        base64.StdEncoding.EncodeToString(append(raw, 1)),
		"passphrase":  "my secret passphrase!",
		"hex too few": hex.EncodeToString(raw[:31]),
	}
	for name, s := range bad {
		if _, err := ParseKey(s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := New(raw[:16]); err == nil {
		t.Error("New accepted a 16-byte key")
	}
}
