package auth

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"
)

// Password rules (ASVS 5 V6.2, NIST SP 800-63B §3.1.1.2): at least MinPasswordLength
// characters of any script, no composition rules, not a common password, not the account's
// own e-mail. Nothing is ever cut: a password over MaxPasswordBytes is refused, not truncated.
const (
	MinPasswordLength = 12
	MaxPasswordBytes  = 1024
)

//go:embed common-passwords.txt
var commonPasswordsFile string

var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	m := make(map[string]struct{}, 8192)
	sc := bufio.NewScanner(strings.NewReader(commonPasswordsFile))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			m[line] = struct{}{}
		}
	}
	return m
})

// normalize applies NFKC, so the same password typed on two keyboards (composed or decomposed
// accents, full-width digits) is the same password (NIST SP 800-63B §5.1.1.2).
func normalize(pw string) string { return norm.NFKC.String(pw) }

// CheckPassword says why pw may not be a password for the account email (nil when it may).
func CheckPassword(pw, email string) error {
	if !utf8.ValidString(pw) {
		return invalid("password", "not valid UTF-8")
	}
	if len(pw) > MaxPasswordBytes {
		return invalid("password", "longer than %d bytes", MaxPasswordBytes)
	}
	n := normalize(pw)
	if utf8.RuneCountInString(n) < MinPasswordLength {
		return invalid("password", "shorter than %d characters", MinPasswordLength)
	}
	low := strings.ToLower(n)
	if _, common := commonPasswords()[low]; common {
		return invalid("password", "one of the most common passwords; choose another")
	}
	if email != "" {
		e := strings.ToLower(email)
		local, _, _ := strings.Cut(e, "@")
		if low == e || (len(local) >= MinPasswordLength && low == local) {
			return invalid("password", "must not be the account's e-mail address")
		}
	}
	return nil
}

// Params are argon2id's cost parameters (RFC 9106). They are stored with every hash, so
// raising them later leaves existing hashes verifiable.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
}

// DefaultParams follow OWASP's argon2id recommendation (19 MiB, 2 passes, 1 lane): about
// 20–40 ms a hash on one core.
var DefaultParams = Params{Memory: 19 * 1024, Time: 2, Threads: 1}

const (
	saltLen = 16
	keyLen  = 32
)

// hasher bounds how many hashes run at once: each takes Params.Memory, and 50 concurrent login
// attempts must not take 50 times that.
type hasher struct {
	p   Params
	sem chan struct{}
	// dummy is a hash of a random password, verified against for unknown accounts so they take
	// as long as known ones.
	dummy string
	// verified counts the argon2id verifications run: the work a password guess costs, which
	// the lockout must bound (TestLockoutHoldsAgainstABurst).
	verified atomic.Int64
}

func newHasher(p Params) (*hasher, error) {
	if p == (Params{}) {
		p = DefaultParams
	}
	if p.Memory < 8 || p.Time < 1 || p.Threads < 1 {
		return nil, fmt.Errorf("auth: argon2id parameters %+v are too small", p)
	}
	h := &hasher{p: p, sem: make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))}
	d, err := h.hash(context.Background(), rand.Text())
	if err != nil {
		return nil, err
	}
	h.dummy = d
	return h, nil
}

func (h *hasher) acquire(ctx context.Context) error {
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *hasher) release() { <-h.sem }

// hash returns the PHC string $argon2id$v=19$m=…,t=…,p=…$salt$key of the normalised password.
func (h *hasher) hash(ctx context.Context, pw string) (string, error) {
	salt := make([]byte, saltLen)
	rand.Read(salt)
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	key := argon2.IDKey([]byte(normalize(pw)), salt, h.p.Time, h.p.Memory, h.p.Threads, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, h.p.Memory, h.p.Time, h.p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

var errBadHash = errors.New("auth: malformed password hash")

// verify compares pw with an encoded hash in constant time. An empty encoded hash is checked
// against the dummy so the caller's timing does not depend on whether the account exists.
func (h *hasher) verify(ctx context.Context, pw, encoded string) (bool, error) {
	dummy := encoded == ""
	if dummy {
		encoded = h.dummy
	}
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errBadHash
	}
	var v int
	var p Params
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false, errBadHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil || p.Time < 1 || p.Threads < 1 {
		return false, errBadHash
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	want, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false, errBadHash
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	h.verified.Add(1)
	got := argon2.IDKey([]byte(normalize(pw)), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1 && !dummy, nil
}

// GeneratePassword returns a random password for the first-start admin and resets: 26
// characters of base32 (130 bits), safe to paste into a shell or JSON.
func GeneratePassword() string { return strings.ToLower(rand.Text()) }
