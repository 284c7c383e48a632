package auth_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// SECURITY-CASES D.30: keys of 128+ bits, shown once, stored as SHA-256, never above the
// owner's role, revocation immediate, someone else's key is not found.
func TestAPIKeys(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		s := setup(t, b)
		s.user(t, "root@example.com", auth.Admin)
		analyst := s.user(t, "ana@example.com", auth.Analyst)
		p, err := s.svc.VerifyAccess(s.ctx, s.login(t, "ana@example.com").AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		k, secret, err := s.svc.CreateKey(s.ctx, p, auth.NewKey{Name: "ci"})
		if err != nil {
			t.Fatal(err)
		}
		if len(secret) < 4+22 || !strings.HasPrefix(secret, k.Prefix) || k.Role != auth.Analyst {
			t.Fatalf("key %+v secret %q", k, secret)
		}
		kp, err := s.svc.VerifyKey(s.ctx, secret)
		if err != nil || kp.User.ID != analyst.ID || kp.Role != auth.Analyst || kp.KeyID != k.ID {
			t.Fatalf("verify: %+v %v", kp, err)
		}
		// Stored as its SHA-256 only: no column holds the secret.
		var rows []map[string]any
		if err := s.db.Table("api_keys").Find(&rows).Error; err != nil || len(rows) != 1 {
			t.Fatalf("api_keys rows %v %v", rows, err)
		}
		sum := sha256.Sum256([]byte(secret))
		if rows[0]["key_hash"] != hex.EncodeToString(sum[:]) {
			t.Fatalf("key_hash %v is not the key's SHA-256", rows[0]["key_hash"])
		}
		for col, v := range rows[0] {
			if str, ok := v.(string); ok && strings.Contains(str, secret[len(k.Prefix):]) {
				t.Fatalf("column %s holds the secret", col)
			}
		}
		// Never above the owner's role, and a key cannot mint a higher key.
		if _, _, err := s.svc.CreateKey(s.ctx, p, auth.NewKey{Name: "up", Role: auth.Admin}); !errors.Is(err, auth.ErrForbidden) {
			t.Fatalf("analyst minting an admin key: %v", err)
		}
		vk, vsecret, err := s.svc.CreateKey(s.ctx, p, auth.NewKey{Name: "read only", Role: auth.Viewer})
		if err != nil {
			t.Fatal(err)
		}
		vp, _ := s.svc.VerifyKey(s.ctx, vsecret)
		if vp.Role != auth.Viewer {
			t.Fatalf("viewer key acts as %v", vp.Role)
		}
		if _, _, err := s.svc.CreateKey(s.ctx, vp, auth.NewKey{Name: "escalate", Role: auth.Analyst}); !errors.Is(err, auth.ErrForbidden) {
			t.Fatalf("viewer key minting an analyst key: %v", err)
		}
		keys, err := s.svc.ListKeys(s.ctx, analyst.ID)
		if err != nil || len(keys) != 2 || keys[0].ID != vk.ID {
			t.Fatalf("list: %+v %v", keys, err)
		}
		// Someone else's key: not found, and it keeps working.
		if _, err := s.svc.RevokeKey(s.ctx, analyst.ID+100, k.ID); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("revoking another user's key: %v, want ErrNotFound", err)
		}
		if _, err := s.svc.VerifyKey(s.ctx, secret); err != nil {
			t.Fatalf("key after someone else tried to revoke it: %v", err)
		}
		// Revocation is immediate.
		if _, err := s.svc.RevokeKey(s.ctx, analyst.ID, k.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.svc.VerifyKey(s.ctx, secret); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Fatalf("revoked key: %v", err)
		}
		if _, err := s.svc.RevokeKey(s.ctx, analyst.ID, k.ID); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("revoking twice: %v", err)
		}
		// Expired keys are refused; a past expiry cannot be set.
		past := time.Now().Add(-time.Hour)
		if _, _, err := s.svc.CreateKey(s.ctx, p, auth.NewKey{Name: "old", ExpiresAt: &past}); err == nil {
			t.Fatal("a key expiring in the past was created")
		}
		soon := time.Now().Add(1500 * time.Millisecond)
		_, ssecret, err := s.svc.CreateKey(s.ctx, p, auth.NewKey{Name: "short", ExpiresAt: &soon})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.svc.VerifyKey(s.ctx, ssecret); err != nil {
			t.Fatalf("key before its expiry: %v", err)
		}
		time.Sleep(time.Until(soon) + 100*time.Millisecond)
		if _, err := s.svc.VerifyKey(s.ctx, ssecret); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Fatalf("expired key: %v", err)
		}
		// A key follows its owner's role down: demoted to viewer, the owner's keys are revoked.
		for _, bad := range []string{"", "vgl_", secret + "x", "Bearer " + vsecret, strings.ToUpper(vsecret)} {
			if _, err := s.svc.VerifyKey(s.ctx, bad); !errors.Is(err, auth.ErrUnauthenticated) {
				t.Errorf("key %q: %v", bad, err)
			}
		}
	})
}
