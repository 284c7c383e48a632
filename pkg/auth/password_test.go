package auth_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// SECURITY-CASES D.28 (with the minimum of 12, which wins over the catalogue's 8).
func TestPasswordPolicy(t *testing.T) {
	t.Parallel()
	accepted := []string{
		"abcdefghijkz",                 // exactly 12, no composition rules
		"tout le monde aime les chats", // spaces
		"пароль-достаточно-длинный",    // Cyrillic
		"長い長いパスワードですよね本当に",             // 16 Japanese characters (48 bytes)
		strings.Repeat("ü", 12),        // 12 characters, 24 bytes
		strings.Repeat("ß", 70),        // 64+ characters of any script
		strings.Repeat("a", 72),        // SECURITY-CASES D.28's setup
		strings.Repeat("x", auth.MaxPasswordBytes),
	}
	for _, pw := range accepted {
		if err := auth.CheckPassword(pw, "someone@example.com"); err != nil {
			t.Errorf("%q refused: %v", pw, err)
		}
	}
	refused := map[string]string{
		"short1!Aa":             "shorter than 12",
		strings.Repeat("ü", 11): "shorter than 12",
		"password1234":          "common",
		"PASSWORD1234":          "common", // case does not make it uncommon
		"qwertyuiop123":         "common",
		"123456789012":          "common",
		"iloveyou2024":          "common",
		"someone@example.com":   "e-mail",
		strings.Repeat("x", auth.MaxPasswordBytes+1): "longer than",
		"\xff\xfe invalid utf-8 bytes":               "UTF-8",
	}
	for pw, why := range refused {
		err := auth.CheckPassword(pw, "someone@example.com")
		var ie *auth.InvalidError
		if !errors.As(err, &ie) || ie.Field != "password" || !strings.Contains(err.Error(), why) {
			t.Errorf("%.40q: %v, want a password error saying %q", pw, err, why)
		}
	}
}

// The classic top passwords are on the bundled list (checked through a 12-character variant,
// since anything shorter is refused by length first).
func TestCommonListHasTheClassics(t *testing.T) {
	t.Parallel()
	for _, pw := range []string{"password123456", "qwerty123456", "1q2w3e4r5t6y", "qwertyuiopasdfgh", "abcdefghijkl",
		"000000000000", "111111111111", "passwordpassword", "iloveyouforever", "welcome12345", "letmein123456", "1qaz2wsx3edc"} {
		if err := auth.CheckPassword(pw, ""); err == nil || !strings.Contains(err.Error(), "common") {
			t.Errorf("%q: %v, want refused as common", pw, err)
		}
	}
}

// SECURITY-CASES D.28: no silent truncation. With 72×"a" set, 72×"a"+"b" must fail (bcrypt
// would accept it); so must 71×"a". Unicode normalisation makes composed and decomposed é one.
func TestNoTruncation(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		s := setup(t, b)
		pw := strings.Repeat("a", 72)
		if _, err := s.svc.CreateUser(s.ctx, auth.NewUser{Email: "long@example.com", Password: pw, Role: auth.Viewer}); err != nil {
			t.Fatal(err)
		}
		for _, wrong := range []string{pw + "b", pw[:71], strings.Repeat("a", 200)} {
			if _, _, err := s.svc.Login(s.ctx, "long@example.com", wrong, auth.Meta{}); !errors.Is(err, auth.ErrInvalidCredentials) {
				t.Errorf("login with %d×a…: %v, want ErrInvalidCredentials", len(wrong), err)
			}
		}
		if _, _, err := s.svc.Login(s.ctx, "long@example.com", pw, auth.Meta{}); err != nil {
			t.Fatalf("the right 72-byte password: %v", err)
		}
		composed := "café au lait chaud"
		decomposed := "cafe\u0301 au lait chaud"
		if _, err := s.svc.CreateUser(s.ctx, auth.NewUser{Email: "nfc@example.com", Password: composed, Role: auth.Viewer}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.svc.Login(s.ctx, "NFC@Example.com", decomposed, auth.Meta{}); err != nil {
			t.Fatalf("decomposed form of the password (and the e-mail in another case): %v", err)
		}
	})
}

// The production cost works end to end (the rest of the suite uses cheaper parameters).
func TestDefaultParams(t *testing.T) {
	t.Parallel()
	b := testenv.Backends()[0]
	svc, err := auth.New(b.Store(t).DB(), auth.Config{Secret: secret}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := svc.CreateUser(ctx, auth.NewUser{Email: "d@example.com", Password: goodPassword, Role: auth.Viewer}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Login(ctx, "d@example.com", goodPassword, auth.Meta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.New(nil, auth.Config{Secret: []byte("too short")}, nil); err == nil {
		t.Fatal("a 9-byte JWT secret accepted")
	}
}

// SECURITY-CASES D.29: 50 concurrent wrong passwords are counted exactly 50, for the account
// and for the address, and the account is locked afterwards even for the right password.
func TestConcurrentWrongPasswords(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		s := setup(t, b)
		s.user(t, "target@example.com", auth.Admin)
		const ip = "198.51.100.7"
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				_, _, err := s.svc.Login(s.ctx, "target@example.com", "wrong password guess", auth.Meta{IP: ip})
				var locked *auth.LockedError
				if !errors.Is(err, auth.ErrInvalidCredentials) && !errors.As(err, &locked) {
					t.Errorf("wrong password: %v", err)
				}
			})
		}
		wg.Wait()
		acct, addr, err := s.throttle.Failures(s.ctx, "target@example.com", ip)
		if err != nil || acct != 50 || addr != 50 {
			t.Fatalf("counted %d for the account and %d for the address (%v), want exactly 50 and 50", acct, addr, err)
		}
		_, _, err = s.svc.Login(s.ctx, "target@example.com", goodPassword, auth.Meta{IP: "192.0.2.99"})
		var locked *auth.LockedError
		if !errors.As(err, &locked) || locked.RetryAfter <= 0 || locked.RetryAfter > throttleCfg.Account.Max {
			t.Fatalf("right password on a locked account: %v, want LockedError", err)
		}
		// The address is locked for any account it tries.
		s.user(t, "other@example.com", auth.Viewer)
		if _, _, err := s.svc.Login(s.ctx, "other@example.com", goodPassword, auth.Meta{IP: ip}); !errors.As(err, &locked) {
			t.Fatalf("login from a locked address: %v", err)
		}
		if _, _, err := s.svc.Login(s.ctx, "other@example.com", goodPassword, auth.Meta{IP: "192.0.2.99"}); err != nil {
			t.Fatalf("another account from another address: %v", err)
		}
	})
}

// The lockout applies from MaxFailures on, and a success clears the account's count.
func TestLockoutThreshold(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		s := setup(t, b)
		s.user(t, "dan@example.com", auth.Viewer)
		for i := range 4 {
			if _, _, err := s.svc.Login(s.ctx, "dan@example.com", "not the password", auth.Meta{IP: "192.0.2.1"}); !errors.Is(err, auth.ErrInvalidCredentials) {
				t.Fatalf("failure %d: %v", i+1, err)
			}
		}
		s.login(t, "dan@example.com") // the 5th attempt is right: allowed, and the count is cleared
		if n, _, _ := s.throttle.Failures(s.ctx, "dan@example.com", ""); n != 0 {
			t.Fatalf("%d failures left after a success", n)
		}
		for range 5 {
			s.svc.Login(s.ctx, "dan@example.com", "not the password", auth.Meta{})
		}
		var locked *auth.LockedError
		if _, _, err := s.svc.Login(s.ctx, "dan@example.com", goodPassword, auth.Meta{}); !errors.As(err, &locked) {
			t.Fatalf("after 5 failures: %v, want locked", err)
		}
		if err := s.throttle.Unlock(s.ctx, "dan@example.com"); err != nil {
			t.Fatal(err)
		}
		s.login(t, "dan@example.com")
	})
}

// SECURITY-CASES D.29: an unknown e-mail, a wrong password and an inactive account give the
// same error, and an unknown e-mail costs a password hash like a known one.
func TestUnknownUserLooksTheSame(t *testing.T) {
	t.Parallel()
	b := testenv.Backends()[0]
	svc, err := auth.New(b.Store(t).DB(), auth.Config{Secret: secret}, nil) // production hash cost
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	svc.CreateUser(ctx, auth.NewUser{Email: "known@example.com", Password: goodPassword, Role: auth.Viewer})
	u, _ := svc.CreateUser(ctx, auth.NewUser{Email: "gone@example.com", Password: goodPassword, Role: auth.Viewer})
	svc.CreateUser(ctx, auth.NewUser{Email: "admin@example.com", Password: goodPassword, Role: auth.Admin})
	off := false
	if _, _, err := svc.UpdateUser(ctx, u.ID, auth.Patch{Active: &off}); err != nil {
		t.Fatal(err)
	}
	attempts := map[string][2]string{
		"unknown e-mail":   {"nobody@example.com", goodPassword},
		"wrong password":   {"known@example.com", "wrong password here"},
		"inactive account": {"gone@example.com", goodPassword},
		"malformed e-mail": {"not an address", goodPassword},
	}
	// The fastest of several tries: the least disturbed by other tests running in parallel.
	fastest := map[string]time.Duration{}
	for name, a := range attempts {
		var ds []time.Duration
		for range 9 {
			start := time.Now()
			_, _, err := svc.Login(ctx, a[0], a[1], auth.Meta{})
			ds = append(ds, time.Since(start))
			if err != auth.ErrInvalidCredentials { // the very same error value, same message
				t.Fatalf("%s: %v, want exactly ErrInvalidCredentials", name, err)
			}
		}
		fastest[name] = slices.Min(ds)
	}
	ref := fastest["wrong password"]
	for name, d := range fastest {
		if d < ref/3 || d > ref*3 {
			t.Errorf("%s takes %v, a wrong password %v: timing tells them apart", name, d, ref)
		}
	}
}

func TestLastAdminStays(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		s := setup(t, b)
		a1 := s.user(t, "a1@example.com", auth.Admin)
		a2 := s.user(t, "a2@example.com", auth.Admin)
		viewer := auth.Viewer
		if _, _, err := s.svc.UpdateUser(s.ctx, a1.ID, auth.Patch{Role: &viewer}); err != nil {
			t.Fatalf("demote one of two admins: %v", err)
		}
		if _, _, err := s.svc.UpdateUser(s.ctx, a2.ID, auth.Patch{Role: &viewer}); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("demote the last admin: %v, want ErrConflict", err)
		}
		off := false
		if _, _, err := s.svc.UpdateUser(s.ctx, a2.ID, auth.Patch{Active: &off}); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("deactivate the last admin: %v, want ErrConflict", err)
		}
		if _, err := s.svc.DeleteUser(s.ctx, a2.ID); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("delete the last admin: %v, want ErrConflict", err)
		}
		if u, _ := s.svc.GetUser(s.ctx, a2.ID); u.Role != auth.Admin || !u.Active {
			t.Fatalf("the last admin changed anyway: %+v", u)
		}
		if _, err := s.svc.DeleteUser(s.ctx, a1.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.svc.GetUser(s.ctx, a1.ID); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("deleted user: %v", err)
		}
		if _, err := s.svc.CreateUser(s.ctx, auth.NewUser{Email: "A2@example.com", Password: goodPassword, Role: auth.Viewer}); !errors.Is(err, auth.ErrConflict) {
			t.Fatalf("same e-mail in another case: %v, want ErrConflict", err)
		}
		// Concurrent demotions of two admins: one wins, one active admin stays.
		a3 := s.user(t, "a3@example.com", auth.Admin)
		var wg sync.WaitGroup
		for _, id := range []int64{a2.ID, a3.ID} {
			wg.Go(func() { s.svc.UpdateUser(s.ctx, id, auth.Patch{Role: &viewer}) })
		}
		wg.Wait()
		users, _, _ := s.svc.ListUsers(s.ctx, 1, 10)
		admins := 0
		for _, u := range users {
			if u.Role == auth.Admin && u.Active {
				admins++
			}
		}
		if admins != 1 {
			t.Fatalf("%d active admins after concurrent demotions, want 1", admins)
		}
	})
}

// Issue 18: the lockout holds against a burst. 40 concurrent wrong logins on one account, from
// one address or from 40, with the right password among them, get at most the account's
// threshold of password verifications; every other attempt is refused without one.
func TestLockoutHoldsAgainstABurst(t *testing.T) {
	t.Parallel()
	for name, spread := range map[string]bool{"one address": false, "40 addresses": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testenv.Run(t, func(t *testing.T, b testenv.Backend) {
				t.Parallel()
				s := setup(t, b)
				s.user(t, "burst@example.com", auth.Admin)
				before := auth.Verifications(s.svc)
				var wg sync.WaitGroup
				var mu sync.Mutex
				outcomes := map[string]int{}
				for i := range 40 {
					wg.Go(func() {
						ip := "198.51.100.9"
						if spread {
							ip = fmt.Sprintf("198.51.100.%d", 100+i)
						}
						pw := "wrong password guess"
						if i == 24 {
							pw = goodPassword
						}
						_, _, err := s.svc.Login(s.ctx, "burst@example.com", pw, auth.Meta{IP: ip})
						var locked *auth.LockedError
						mu.Lock()
						defer mu.Unlock()
						switch {
						case err == nil:
							outcomes["ok"]++
						case errors.Is(err, auth.ErrInvalidCredentials):
							outcomes["wrong"]++
						case errors.As(err, &locked):
							outcomes["locked"]++
						default:
							t.Errorf("attempt %d: %v", i, err)
						}
					})
				}
				wg.Wait()
				limit := int64(throttleCfg.Account.MaxFailures)
				if v := auth.Verifications(s.svc) - before; v > limit {
					t.Fatalf("%d password verifications for 40 concurrent attempts (%v), want at most %d", v, outcomes, limit)
				}
				if outcomes["ok"]+outcomes["wrong"] > int(limit) || outcomes["locked"] < 40-int(limit) {
					t.Fatalf("outcomes %v: want at most %d verified, the rest locked out", outcomes, limit)
				}
			})
		})
	}
}

// Issue 18: the addresses of one IPv6 /64 share a failure count, so rotating through them
// does not reset the address's lockout; another /64 is another client.
func TestIPv6AddressesCountPerNetwork(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		s := setup(t, b)
		s.user(t, "v6@example.com", auth.Viewer)
		for i := range throttleCfg.Address.MaxFailures {
			ip := fmt.Sprintf("2001:db8:77:1:%x::%x", i, i+1)
			email := fmt.Sprintf("guess%d@example.com", i) // another account each time
			if _, _, err := s.svc.Login(s.ctx, email, "wrong password guess", auth.Meta{IP: ip}); !errors.Is(err, auth.ErrInvalidCredentials) {
				t.Fatalf("failure %d: %v", i+1, err)
			}
		}
		var locked *auth.LockedError
		if _, _, err := s.svc.Login(s.ctx, "v6@example.com", goodPassword, auth.Meta{IP: "2001:db8:77:1:ffff::99"}); !errors.As(err, &locked) {
			t.Fatalf("a fresh address in the same /64: %v, want locked", err)
		}
		if _, _, err := s.svc.Login(s.ctx, "v6@example.com", goodPassword, auth.Meta{IP: "2001:db8:77:2::1"}); err != nil {
			t.Fatalf("another /64: %v", err)
		}
	})
}
