// Package remote calls the optional auxiliary services of ingest (the avatar
// lookup and the moderation service) with a strict timeout and a circuit
// breaker, and counts and logs every failure, so that a slow or dead service
// trims what is published instead of slowing or stopping ingest.
package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// ErrUnavailable wraps every error Do returns: the service did not answer
// usably in time, or its breaker is open. Callers degrade on it.
var ErrUnavailable = errors.New("remote: service unavailable")

// Config configures a Service.
type Config struct {
	// Name labels metrics and logs: "avatar", "moderation".
	Name string
	// Timeout bounds one call, connection included; if 0, 150ms.
	Timeout time.Duration
	// Failures in a row that open the breaker; if 0, 5.
	Failures int
	// Cooldown is how long an open breaker refuses calls before it lets one
	// trial call through; if 0, 10s.
	Cooldown time.Duration
	// Client makes the HTTP calls; if nil, a client with pooled connections.
	Client *http.Client
	// Logger; if nil, slog.Default().
	Logger *slog.Logger
	// Metrics, shared by every Service of a process; if nil, not counted.
	Metrics *Metrics
}

// Service is one auxiliary service behind a breaker.
type Service struct {
	cfg     Config
	breaker *gobreaker.CircuitBreaker[struct{}]
	client  *http.Client
	log     *slog.Logger
	calls   map[string]prometheus.Counter
	latency prometheus.Observer

	// logMu guards the fields below: failure warnings are logged at most
	// once per logEvery, with a count of the ones left out.
	logMu      sync.Mutex
	lastLog    time.Time
	suppressed int
}

const logEvery = 10 * time.Second

// Result labels of danmaku_ingest_aux_calls_total.
const (
	resultOK       = "ok"
	resultTimeout  = "timeout"
	resultError    = "error"
	resultOpen     = "breaker_open"
	resultCanceled = "canceled"
)

// New checks cfg and returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Name == "" {
		return nil, errors.New("remote: a name is required")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 150 * time.Millisecond
	}
	if cfg.Failures == 0 {
		cfg.Failures = 5
	}
	if cfg.Cooldown == 0 {
		cfg.Cooldown = 10 * time.Second
	}
	if cfg.Timeout < 0 || cfg.Failures < 1 || cfg.Cooldown < 0 {
		return nil, fmt.Errorf("remote: %s: bad config: timeout %v, failures %d, cooldown %v", cfg.Name, cfg.Timeout, cfg.Failures, cfg.Cooldown)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Service{cfg: cfg, client: cfg.Client, log: cfg.Logger.With("service", cfg.Name)}
	if s.client == nil {
		s.client = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	failures := uint32(cfg.Failures)
	s.breaker = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        cfg.Name,
		MaxRequests: 1,
		Timeout:     cfg.Cooldown,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
		// A caller that went away says nothing about the service.
		IsExcluded:    func(err error) bool { return errors.Is(err, context.Canceled) },
		OnStateChange: s.stateChanged,
	})
	s.calls = map[string]prometheus.Counter{}
	if m := cfg.Metrics; m != nil {
		for _, r := range []string{resultOK, resultTimeout, resultError, resultOpen, resultCanceled} {
			s.calls[r] = m.calls.WithLabelValues(cfg.Name, r)
		}
		s.latency = m.latency.WithLabelValues(cfg.Name)
		m.state.WithLabelValues(cfg.Name).Set(0)
	}
	return s, nil
}

// Name is the service's name.
func (s *Service) Name() string { return s.cfg.Name }

// Timeout is the longest one call takes.
func (s *Service) Timeout() time.Duration { return s.cfg.Timeout }

func (s *Service) stateChanged(_ string, from, to gobreaker.State) {
	if m := s.cfg.Metrics; m != nil {
		m.state.WithLabelValues(s.cfg.Name).Set(float64(to))
	}
	switch to {
	case gobreaker.StateOpen:
		s.log.Warn("auxiliary service failing: breaker open, posts are published without it",
			"from", from.String(), "retry_in", s.cfg.Cooldown)
	case gobreaker.StateClosed:
		s.log.Info("auxiliary service answering again: breaker closed")
	}
}

// Do runs call through the breaker with a context that ends after the
// timeout. An error from call, a timeout or an open breaker comes back
// wrapping ErrUnavailable, is counted, and is logged (at most once every
// 10 s per service).
func (s *Service) Do(ctx context.Context, call func(ctx context.Context) error) error {
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	_, err := s.breaker.Execute(func() (struct{}, error) {
		err := call(cctx)
		if err != nil && ctx.Err() != nil {
			// The caller's own context ended (the poster went away): not the
			// service's failure.
			err = fmt.Errorf("%w: %w", context.Canceled, err)
		}
		return struct{}{}, err
	})
	if s.latency != nil {
		s.latency.Observe(time.Since(start).Seconds())
	}
	result := resultOK
	switch {
	case err == nil:
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		result = resultOpen
	case errors.Is(err, context.Canceled):
		result = resultCanceled
	case errors.Is(err, context.DeadlineExceeded) || cctx.Err() != nil:
		result = resultTimeout
	default:
		result = resultError
	}
	if c := s.calls[result]; c != nil {
		c.Inc()
	}
	if err == nil {
		return nil
	}
	if result != resultCanceled && result != resultOpen {
		s.logFailure(result, err)
	}
	return fmt.Errorf("%w: %s: %s: %w", ErrUnavailable, s.cfg.Name, result, err)
}

func (s *Service) logFailure(result string, err error) {
	s.logMu.Lock()
	now := time.Now()
	if now.Sub(s.lastLog) < logEvery {
		s.suppressed++
		s.logMu.Unlock()
		return
	}
	suppressed := s.suppressed
	s.lastLog, s.suppressed = now, 0
	s.logMu.Unlock()
	s.log.Warn("auxiliary service call failed; publishing without it", "result", result, "err", err,
		"timeout", s.cfg.Timeout, "more_failures_not_logged", suppressed)
}

// maxAnswer bounds an answer's body.
const maxAnswer = 64 << 10

// HTTP sends req with ctx and returns the status and at most 64 KiB of
// body; a longer body is an error. Use it inside Do's call.
func (s *Service) HTTP(ctx context.Context, req *http.Request) (int, []byte, error) {
	resp, err := s.client.Do(req.WithContext(ctx))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if len(body) > maxAnswer {
		return resp.StatusCode, nil, fmt.Errorf("answer larger than %d bytes", maxAnswer)
	}
	return resp.StatusCode, bytes.TrimSpace(body), nil
}

// Metrics are the counters every Service of a process shares.
type Metrics struct {
	calls   *prometheus.CounterVec
	latency *prometheus.HistogramVec
	state   *prometheus.GaugeVec
}

// NewMetrics registers the auxiliary-service metrics with reg (if not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "danmaku_ingest_aux_calls_total",
			Help: "Calls to auxiliary services (avatar, moderation) by result: ok, timeout, error, breaker_open, canceled. Anything but ok published a post without the service."},
			[]string{"service", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "danmaku_ingest_aux_call_seconds",
			Help:    "Time spent on one auxiliary service call, timeouts included.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .15, .2, .3, .5, 1}}, []string{"service"}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "danmaku_ingest_aux_breaker_state",
			Help: "Circuit breaker of each auxiliary service: 0 closed, 1 half-open (trying), 2 open (not called)."}, []string{"service"}),
	}
	if reg != nil {
		reg.MustRegister(m.calls, m.latency, m.state)
	}
	return m
}

// Calls returns the counter of service's calls with result, for tests.
func (m *Metrics) Calls(service, result string) prometheus.Counter {
	return m.calls.WithLabelValues(service, result)
}

// State returns the breaker state gauge of service, for tests.
func (m *Metrics) State(service string) prometheus.Gauge { return m.state.WithLabelValues(service) }
