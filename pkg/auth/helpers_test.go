package auth_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/ratelimit"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// redisDB is this package's database on the real server; tests share it under their own prefix.
const redisDB = 6

var realRedis struct {
	once sync.Once
	opt  asynq.RedisClientOpt
}

var secret = []byte("0123456789abcdef0123456789abcdef-test-secret")

// fastParams keep the suite quick; TestDefaultParams covers the production cost.
var fastParams = auth.Params{Memory: 1024, Time: 1, Threads: 1}

var throttleCfg = auth.ThrottleConfig{
	Account: ratelimit.Lockout{MaxFailures: 5, Window: 15 * time.Minute, Base: time.Minute, Max: 15 * time.Minute},
	Address: ratelimit.Lockout{MaxFailures: 20, Window: 15 * time.Minute, Base: time.Minute, Max: 15 * time.Minute},
}

type bundle struct {
	svc      *auth.Service
	throttle *auth.Throttle
	db       *gorm.DB
	ctx      context.Context
}

func setup(t *testing.T, b testenv.Backend) bundle {
	t.Helper()
	st := b.Store(t)
	var opt asynq.RedisClientOpt
	if b.Real() {
		realRedis.once.Do(func() { realRedis.opt = b.Redis(t, redisDB) })
		opt = realRedis.opt
	} else {
		opt = b.Redis(t, redisDB)
	}
	rdb := redis.NewClient(&redis.Options{Addr: opt.Addr, Password: opt.Password, DB: opt.DB})
	t.Cleanup(func() { rdb.Close() })
	// The random part keeps a rerun under -count=N apart from the first (one flush per process).
	th := auth.NewThrottle(ratelimit.New(rdb, fmt.Sprintf("test:%s:%x:", t.Name(), rand.Uint64())), throttleCfg)
	svc, err := auth.New(st.DB(), auth.Config{Secret: secret, Params: fastParams}, th)
	if err != nil {
		t.Fatal(err)
	}
	return bundle{svc: svc, throttle: th, db: st.DB(), ctx: context.Background()}
}

const goodPassword = "correct horse battery staple"

func (b bundle) user(t *testing.T, email string, role auth.Role) auth.User {
	t.Helper()
	u, err := b.svc.CreateUser(b.ctx, auth.NewUser{Email: email, Name: "Test " + role.String(), Password: goodPassword, Role: role})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (b bundle) login(t *testing.T, email string) auth.Tokens {
	t.Helper()
	tok, _, err := b.svc.Login(b.ctx, email, goodPassword, auth.Meta{IP: "192.0.2.10"})
	if err != nil {
		t.Fatalf("login %s: %v", email, err)
	}
	return tok
}
