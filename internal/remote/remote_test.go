package remote_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/danmaku/danmaku/internal/remote"
)

func TestBreakerOpensAndRecovers(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := remote.NewMetrics(reg)
	s, err := remote.New(remote.Config{Name: "svc", Timeout: 20 * time.Millisecond, Failures: 3, Cooldown: 200 * time.Millisecond, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	hang := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	for i := 0; i < 3; i++ {
		start := time.Now()
		if err := s.Do(ctx, hang); !errors.Is(err, remote.ErrUnavailable) {
			t.Fatalf("call %d: %v", i, err)
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Fatalf("a hanging call took %v with a 20ms timeout", d)
		}
	}
	// Open: the service is not called at all.
	called := false
	err = s.Do(ctx, func(context.Context) error { called = true; return nil })
	if !errors.Is(err, remote.ErrUnavailable) || called {
		t.Fatalf("open breaker: %v, called %v", err, called)
	}
	if v := testutil.ToFloat64(m.State("svc")); v != 2 {
		t.Errorf("breaker state gauge %v, want 2 (open)", v)
	}
	// After the cooldown one trial call goes through and closes it.
	time.Sleep(250 * time.Millisecond)
	if err := s.Do(ctx, func(context.Context) error { return nil }); err != nil {
		t.Fatalf("trial call: %v", err)
	}
	if v := testutil.ToFloat64(m.State("svc")); v != 0 {
		t.Errorf("breaker state gauge %v, want 0 (closed)", v)
	}
	if v := testutil.ToFloat64(m.Calls("svc", "timeout")); v != 3 {
		t.Errorf("%v timeouts counted, want 3", v)
	}
	if v := testutil.ToFloat64(m.Calls("svc", "breaker_open")); v != 1 {
		t.Errorf("%v refusals counted, want 1", v)
	}
}

func TestCallerCancelDoesNotTrip(t *testing.T) {
	s, _ := remote.New(remote.Config{Name: "svc", Timeout: time.Second, Failures: 1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.Do(ctx, func(ctx context.Context) error { return ctx.Err() })
	if err := s.Do(context.Background(), func(context.Context) error { return nil }); err != nil {
		t.Fatalf("a canceled caller opened the breaker: %v", err)
	}
}
