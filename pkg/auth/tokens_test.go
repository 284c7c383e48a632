package auth_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// payload decodes a token's claims without checking anything, to forge variants of it.
func payload(t *testing.T, tok string) jwt.MapClaims {
	t.Helper()
	parts := strings.Split(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m jwt.MapClaims
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func signHS(t *testing.T, key []byte, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func without(c jwt.MapClaims, k string) jwt.MapClaims {
	out := jwt.MapClaims{}
	for kk, v := range c {
		if kk != k {
			out[kk] = v
		}
	}
	return out
}

func with(c jwt.MapClaims, k string, v any) jwt.MapClaims {
	out := without(c, k)
	out[k] = v
	return out
}

// SECURITY-CASES D.26: each forged or misused token is refused (401 at the HTTP layer).
func TestTokenChecks(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		s := setup(t, b)
		s.user(t, "ann@example.com", auth.Admin)
		tok := s.login(t, "ann@example.com")
		if _, err := s.svc.VerifyAccess(s.ctx, tok.AccessToken); err != nil {
			t.Fatalf("a good access token: %v", err)
		}
		good := payload(t, tok.AccessToken)
		rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&rsaKey.PublicKey))})
		none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, good).SignedString(jwt.UnsafeAllowNoneSignatureType)
		rs256, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, good).SignedString(rsaKey)
		parts := strings.Split(tok.AccessToken, ".")
		tampered := payload(t, tok.AccessToken)
		tampered["role"] = "admin"
		tampered["sub"] = "2"
		tb, _ := json.Marshal(tampered)
		cases := map[string]string{
			"alg none":                      none,
			"alg none, no signature at all": parts[0][:0] + base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + ".",
			"RS256 with a key of its own":   rs256,
			"HS256 keyed with an RSA public key (algorithm confusion)": signHS(t, pubPEM, good),
			"no exp":                 signHS(t, secret, without(good, "exp")),
			"no iat":                 signHS(t, secret, without(good, "iat")),
			"no iss":                 signHS(t, secret, without(good, "iss")),
			"no aud":                 signHS(t, secret, without(good, "aud")),
			"wrong aud":              signHS(t, secret, with(good, "aud", "someone-else")),
			"wrong iss":              signHS(t, secret, with(good, "iss", "evil")),
			"expired":                signHS(t, secret, with(good, "exp", time.Now().Add(-time.Minute).Unix())),
			"issued in the future":   signHS(t, secret, with(good, "iat", time.Now().Add(time.Hour).Unix())),
			"other secret":           signHS(t, []byte("another secret of thirty-two bytes!!"), good),
			"refresh used as access": tok.RefreshToken,
			"tampered role and sub":  parts[0] + "." + base64.RawURLEncoding.EncodeToString(tb) + "." + parts[2],
			"no sid":                 signHS(t, secret, without(good, "sid")),
			"unknown session":        signHS(t, secret, with(good, "sid", "nope")),
			"garbage":                "not.a.token",
			"empty":                  "",
		}
		for name, forged := range cases {
			if p, err := s.svc.VerifyAccess(s.ctx, forged); !errors.Is(err, auth.ErrUnauthenticated) {
				t.Errorf("%s: %+v, %v; want ErrUnauthenticated", name, p, err)
			}
		}
		// The reverse: an access token is not a refresh token.
		if _, _, err := s.svc.Refresh(s.ctx, tok.AccessToken); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("access token used to refresh: %v", err)
		}
		if _, _, err := s.svc.Refresh(s.ctx, signHS(t, secret, without(payload(t, tok.RefreshToken), "exp"))); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("refresh token without exp: %v", err)
		}
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// SECURITY-CASES D.27: logout kills the access token too; rotation; replay revokes the family.
func TestLogoutAndRotation(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		s := setup(t, b)
		s.user(t, "bob@example.com", auth.Viewer)

		// Logout: the access token of the session dies at once, not at its exp.
		t1 := s.login(t, "bob@example.com")
		other := s.login(t, "bob@example.com") // a second session is not touched
		if _, err := s.svc.Logout(s.ctx, t1.RefreshToken); err != nil {
			t.Fatal(err)
		}
		if _, err := s.svc.VerifyAccess(s.ctx, t1.AccessToken); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Fatalf("access token after logout: %v", err)
		}
		if _, _, err := s.svc.Refresh(s.ctx, t1.RefreshToken); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Fatalf("refresh after logout: %v", err)
		}
		if _, err := s.svc.VerifyAccess(s.ctx, other.AccessToken); err != nil {
			t.Fatalf("another session died with the logout: %v", err)
		}

		// Rotation: each refresh token works once.
		t2 := s.login(t, "bob@example.com")
		t3, _, err := s.svc.Refresh(s.ctx, t2.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.svc.VerifyAccess(s.ctx, t3.AccessToken); err != nil {
			t.Fatalf("rotated access token: %v", err)
		}
		t4, _, err := s.svc.Refresh(s.ctx, t3.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		// Replaying t2's refresh token: refused, and the whole family with it (t4 too).
		if _, _, err := s.svc.Refresh(s.ctx, t2.RefreshToken); !errors.Is(err, auth.ErrRefreshReplay) {
			t.Fatalf("replayed refresh token: %v, want ErrRefreshReplay", err)
		}
		if _, _, err := s.svc.Refresh(s.ctx, t4.RefreshToken); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Fatalf("newest refresh token after a replay: %v", err)
		}
		if _, err := s.svc.VerifyAccess(s.ctx, t4.AccessToken); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Fatalf("newest access token after a replay: %v", err)
		}
		if _, err := s.svc.VerifyAccess(s.ctx, other.AccessToken); err != nil {
			t.Fatalf("another session died with the replayed family: %v", err)
		}
	})
}

// SECURITY-CASES D.27: of concurrent refreshes with one token, exactly one succeeds.
func TestConcurrentRefresh(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		s := setup(t, b)
		s.user(t, "cat@example.com", auth.Viewer)
		tok := s.login(t, "cat@example.com")
		const n = 20
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for range n {
			wg.Go(func() {
				_, _, err := s.svc.Refresh(s.ctx, tok.RefreshToken)
				if err != nil && !errors.Is(err, auth.ErrUnauthenticated) {
					t.Errorf("refresh: %v", err)
				}
				if err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d of %d concurrent refreshes succeeded, want exactly 1", wins, n)
		}
	})
}

// SECURITY-CASES D.27: a password change, deactivation or role change revokes every token and key.
func TestAccountChangesRevoke(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		s := setup(t, b)
		s.user(t, "root@example.com", auth.Admin)
		newPassword := "a different long passphrase"
		viewer := auth.Viewer
		inactive := false
		cases := []struct {
			name   string
			change func(id int64) error
		}{
			{"own password change", func(id int64) error {
				return s.svc.ChangePassword(s.ctx, id, goodPassword, newPassword, auth.Meta{IP: "192.0.2.1"})
			}},
			{"admin password reset", func(id int64) error {
				_, _, err := s.svc.UpdateUser(s.ctx, id, auth.Patch{Password: &newPassword})
				return err
			}},
			{"deactivation", func(id int64) error {
				_, _, err := s.svc.UpdateUser(s.ctx, id, auth.Patch{Active: &inactive})
				return err
			}},
			{"role downgrade", func(id int64) error { _, _, err := s.svc.UpdateUser(s.ctx, id, auth.Patch{Role: &viewer}); return err }},
		}
		for i, c := range cases {
			email := "u" + string(rune('a'+i)) + "@example.com"
			u := s.user(t, email, auth.Analyst)
			tok := s.login(t, email)
			p, err := s.svc.VerifyAccess(s.ctx, tok.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			_, key, err := s.svc.CreateKey(s.ctx, p, auth.NewKey{Name: "script"})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.change(u.ID); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if _, err := s.svc.VerifyAccess(s.ctx, tok.AccessToken); !errors.Is(err, auth.ErrUnauthenticated) {
				t.Errorf("%s: access token still accepted (%v)", c.name, err)
			}
			if _, _, err := s.svc.Refresh(s.ctx, tok.RefreshToken); !errors.Is(err, auth.ErrUnauthenticated) {
				t.Errorf("%s: refresh token still accepted (%v)", c.name, err)
			}
			if _, err := s.svc.VerifyKey(s.ctx, key); !errors.Is(err, auth.ErrUnauthenticated) {
				t.Errorf("%s: API key still accepted (%v)", c.name, err)
			}
		}
		// A name change revokes nothing.
		u := s.user(t, "named@example.com", auth.Viewer)
		tok := s.login(t, "named@example.com")
		if _, err := s.svc.UpdateName(s.ctx, u.ID, "New Name"); err != nil {
			t.Fatal(err)
		}
		if p, err := s.svc.VerifyAccess(s.ctx, tok.AccessToken); err != nil || p.User.Name != "New Name" {
			t.Fatalf("after a name change: %+v %v", p, err)
		}
	})
}
