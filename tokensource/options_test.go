package tokensource_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/cloudtokens/cloudtokens/oauthtest"
	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// TestInvalidConfig: every bad option, a nil option, a nil store and a
// bad Config make New, NewPool and Revoke fail with ErrInvalidConfig.
func TestInvalidConfig(t *testing.T) {
	good := tokensource.Config{TokenURL: "https://accounts.example/oauth/v2/token", ClientID: "id", ClientSecret: "s"}
	store := tokenstore.NewMemoryStore()
	bad := map[string]tokensource.Option{
		"nil option":                nil,
		"negative margin":           tokensource.WithRefreshMargin(-time.Second),
		"nil HTTP client":           tokensource.WithHTTPClient(nil),
		"zero lease TTL":            tokensource.WithLeaseTTL(0),
		"negative lease TTL":        tokensource.WithLeaseTTL(-time.Second),
		"zero lease poll":           tokensource.WithLeasePoll(0, time.Second),
		"lease poll max < initial":  tokensource.WithLeasePoll(time.Second, time.Millisecond),
		"nil clock":                 tokensource.WithClock(nil),
		"nil logger":                tokensource.WithLogger(nil),
		"nil observer":              tokensource.WithObserver(nil),
		"zero backoff":              tokensource.WithBackoff(0, time.Hour),
		"backoff max < initial":     tokensource.WithBackoff(time.Hour, time.Minute),
		"negative transient":        tokensource.WithTransientBackoff(-time.Second, time.Minute),
		"transient max < initial":   tokensource.WithTransientBackoff(time.Minute, time.Second),
		"empty token type":          tokensource.WithTokenType(""),
		"zero pool size":            tokensource.WithPoolSize(0),
		"zero stale read wait":      tokensource.WithStaleReadWait(0),
		"negative stale read wait":  tokensource.WithStaleReadWait(-time.Second),
		"negative pool size":        tokensource.WithPoolSize(-1),
		"negative backoff, max set": tokensource.WithBackoff(-time.Minute, time.Minute),
	}
	partial := &tokenstore.Token{UserName: "u"}
	for name, opt := range bad {
		t.Run(name, func(t *testing.T) {
			opts := []tokensource.Option{tokensource.WithLogger(quietLogger()), opt}
			if _, err := tokensource.New(store, partial, good, opts...); !errors.Is(err, tokensource.ErrInvalidConfig) {
				t.Errorf("New: %v", err)
			}
			if _, err := tokensource.NewPool(store, good, opts...); !errors.Is(err, tokensource.ErrInvalidConfig) {
				t.Errorf("NewPool: %v", err)
			}
			if err := tokensource.Revoke(context.Background(), store, good, "abc", opts...); !errors.Is(err, tokensource.ErrInvalidConfig) {
				t.Errorf("Revoke: %v", err)
			}
		})
	}
	for name, cfg := range map[string]tokensource.Config{
		"no token URL":       {ClientID: "id"},
		"relative token URL": {TokenURL: "/oauth/token"},
		"bad revoke URL":     {TokenURL: good.TokenURL, RevokeURL: "::"},
		"unknown AuthStyle":  {TokenURL: good.TokenURL, AuthStyle: oauth2.AuthStyle(7)},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := tokensource.New(store, partial, cfg); !errors.Is(err, tokensource.ErrInvalidConfig) {
				t.Errorf("New: %v", err)
			}
			if _, err := tokensource.NewPool(store, cfg); !errors.Is(err, tokensource.ErrInvalidConfig) {
				t.Errorf("NewPool: %v", err)
			}
		})
	}
	if _, err := tokensource.New(nil, partial, good); !errors.Is(err, tokensource.ErrInvalidConfig) {
		t.Errorf("New(nil store): %v", err)
	}
	if _, err := tokensource.NewPool(nil, good); !errors.Is(err, tokensource.ErrInvalidConfig) {
		t.Errorf("NewPool(nil store): %v", err)
	}
	// Valid values pass, the boundaries included.
	if _, err := tokensource.NewPool(store, good, tokensource.WithRefreshMargin(0), tokensource.WithLeasePoll(time.Second, time.Second),
		tokensource.WithBackoff(time.Minute, time.Minute), tokensource.WithPoolSize(1), tokensource.WithLogUserNames(true),
		tokensource.WithoutLease(), tokensource.WithStaleReadWait(time.Second), tokensource.WithTokenType("Zoho-oauthtoken")); err != nil {
		t.Fatalf("valid options: %v", err)
	}
}

// TestMarginClampWarnsOnce: a margin above the lifetime is clamped with
// one warning per Source, and the token is not refreshed on every call.
func TestMarginClampWarnsOnce(t *testing.T) {
	e := newEnv(t, memoryStore, oauthtest.WithLifetime(3*time.Second), oauthtest.WithLimit(0, 0))
	logs := &logBuffer{}
	src := e.login(t, "hal", tokensource.WithLogger(logs.logger()), tokensource.WithRefreshMargin(time.Minute))
	for range 50 {
		e.clk.Advance(100 * time.Millisecond)
		if _, err := src.Token(); err != nil {
			t.Fatal(err)
		}
	}
	// 5 s with a 0.3 s margin: refreshes at 2.7 s intervals.
	if n := e.srv.Refreshes(); n != 1 {
		t.Fatalf("%d refreshes in 5 s of 3 s tokens, want 1", n)
	}
	if n := strings.Count(logs.String(), "refresh margin is at least half the token lifetime"); n != 1 {
		t.Fatalf("%d clamp warnings, want 1:\n%s", n, logs.String())
	}
	// A margin under half the lifetime is not touched.
	e2 := newEnv(t, memoryStore, oauthtest.WithLifetime(time.Hour))
	src2 := e2.login(t, "ian", tokensource.WithRefreshMargin(29*time.Minute))
	e2.clk.Advance(31*time.Minute + time.Second)
	if _, err := src2.Token(); err != nil || e2.srv.Refreshes() != 1 {
		t.Fatalf("29 min margin on a 1 h token: %d refreshes after 31 min, %v", e2.srv.Refreshes(), err)
	}
}

// TestLogsWithoutPersonalData: by default, log records carry record IDs,
// never the user name or a token value; WithLogUserNames adds the name.
func TestLogsWithoutPersonalData(t *testing.T) {
	const user = "alice.personal@example.com"
	run := func(t *testing.T, opts ...tokensource.Option) (string, []string, string) {
		e := newEnv(t, memoryStore, oauthtest.WithRotation(true))
		logs := &logBuffer{}
		grant := e.srv.IssueGrant(user)
		opts = append([]tokensource.Option{tokensource.WithLogger(logs.logger())}, opts...)
		src := e.source(t, &tokenstore.Token{UserName: user, GrantToken: grant}, opts...)
		tok, err := src.Token()
		if err != nil {
			t.Fatal(err)
		}
		secrets := []string{grant, tok.AccessToken, e.stored(t, user).RefreshToken, e.cfg.ClientSecret}
		e.clk.Advance(2 * time.Hour)
		if tok, err = src.Token(); err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, tok.AccessToken, e.stored(t, user).RefreshToken)
		e.srv.RevokeUser(user)
		e.clk.Advance(2 * time.Hour)
		_, err1 := src.Token() // fails: a Warn record
		_, _ = src.Token()     // backing off
		// A rejected grant code with a record: another Warn record.
		other := e.source(t, &tokenstore.Token{UserName: user, GrantToken: "1000.used.code"}, opts...)
		_, _ = other.Token()
		return logs.String(), secrets, err1.Error()
	}
	t.Run("default", func(t *testing.T) {
		out, secrets, errText := run(t)
		for _, want := range []string{"refreshed the token", "backing off", `"id":"`} {
			if !strings.Contains(out, want) {
				t.Fatalf("log lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, user) || strings.Contains(out, "user_name") {
			t.Fatalf("the user name is logged:\n%s", out)
		}
		for _, sec := range secrets {
			if strings.Contains(out, sec) || strings.Contains(errText, sec) {
				t.Fatalf("a secret value is logged or in an error:\n%s\n%s", out, errText)
			}
		}
	})
	t.Run("WithLogUserNames", func(t *testing.T) {
		out, _, _ := run(t, tokensource.WithLogUserNames(true))
		if !strings.Contains(out, `"user_name":"`+user+`"`) {
			t.Fatalf("WithLogUserNames(true): no user name in the log:\n%s", out)
		}
	})
}

// logBuffer captures JSON log records at Debug level.
type logBuffer struct{ lockedBuilder }

func (l *logBuffer) logger() *slog.Logger {
	if l.b == nil {
		l.b, l.mu = &strings.Builder{}, new(sync.Mutex)
	}
	return slog.New(slog.NewJSONHandler(&l.lockedBuilder, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
