// Package publisher makes sealed buckets and segments durable in a store and
// announces them to the origin: every object to the ring the moment it is
// sealed, and the watermark of what is durable once the store has it.
package publisher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/danmaku/danmaku/bucketer"
)

// Errors of the Store contract.
var (
	// ErrNotFound: no object under the key.
	ErrNotFound = errors.New("object not found")
	// ErrConflict: a different object already exists under the key.
	ErrConflict = errors.New("a different object already exists")
)

// Store keeps sealed objects. Keys are URL paths without the leading slash;
// bodies are gzipped JSON, stored and served with Content-Encoding: gzip,
// Content-Type: application/json and an immutable Cache-Control.
type Store interface {
	// Put stores body under key only if nothing is there yet. If an object
	// exists, Put compares it: identical bytes return created == false and
	// no error; different bytes return ErrConflict. Put must be safe to call
	// concurrently and to repeat.
	Put(ctx context.Context, key string, body []byte) (created bool, err error)
	// Get returns the object under key, or ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
}

// Watermark says how far sealing and publishing have come for a set of
// partitions.
type Watermark struct {
	// Partitions covered; nil means every partition.
	Partitions []int
	// Sealed: every second ≤ Sealed is final, and every non-empty object of
	// one was announced before this watermark.
	Sealed int64
	// Published: every non-empty object of a second ≤ Published is in the
	// store, so a second without an object there is empty.
	Published int64
}

// Announcer is told of sealed objects and watermarks; the origin's ring is
// one. Objects passed with a watermark are announced before it takes effect.
type Announcer interface {
	Announce(objs []bucketer.Object, wm Watermark)
}

// Config configures a Publisher.
type Config struct {
	Store Store
	// Announcer; if nil, nothing is announced.
	Announcer Announcer
	// Partitions this writer seals, for its watermarks; nil means all.
	Partitions []int
	// Workers is how many puts run at once; if 0, defaults to 64.
	Workers int
	// Queue is how many sealed batches may wait for the store before Seal
	// blocks; if 0, defaults to 120.
	Queue int
	// RetryMin and RetryMax bound the backoff between attempts of a failed
	// put; if 0, default to 100ms and 5s.
	RetryMin, RetryMax time.Duration
	Logger             *slog.Logger
	Registerer         prometheus.Registerer
}

// Publisher is a bucketer.Sink.
type Publisher struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	queue   chan *bucketer.Batch
	stopped chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc

	// mu guards sealed and published, the watermarks last announced.
	mu        sync.Mutex
	sealed    int64
	published int64
}

var _ bucketer.Sink = (*Publisher)(nil)

// New starts a Publisher. Close stops it.
func New(cfg Config) (*Publisher, error) {
	if cfg.Store == nil {
		return nil, errors.New("publisher: a store is required")
	}
	if cfg.Workers == 0 {
		cfg.Workers = 64
	}
	if cfg.Queue == 0 {
		cfg.Queue = 120
	}
	if cfg.RetryMin == 0 {
		cfg.RetryMin = 100 * time.Millisecond
	}
	if cfg.RetryMax == 0 {
		cfg.RetryMax = 5 * time.Second
	}
	if cfg.Workers < 0 || cfg.Queue < 0 || cfg.RetryMin < 0 || cfg.RetryMax < cfg.RetryMin {
		return nil, fmt.Errorf("publisher: bad config: workers %d, queue %d, retry %v..%v",
			cfg.Workers, cfg.Queue, cfg.RetryMin, cfg.RetryMax)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Publisher{
		cfg:     cfg,
		log:     cfg.Logger,
		metrics: newMetrics(cfg.Registerer),
		queue:   make(chan *bucketer.Batch, cfg.Queue),
		stopped: make(chan struct{}),
		ctx:     ctx,
		cancel:  cancel,
	}
	go p.run()
	return p, nil
}

func (p *Publisher) watermarkLocked() Watermark {
	return Watermark{Partitions: p.cfg.Partitions, Sealed: p.sealed, Published: p.published}
}

// Seal announces the batch's objects to the origin at once and queues them
// for the store; it blocks while the queue is full.
func (p *Publisher) Seal(ctx context.Context, b *bucketer.Batch) error {
	p.mu.Lock()
	p.sealed = max(p.sealed, b.Through)
	wm := p.watermarkLocked()
	p.mu.Unlock()
	if p.cfg.Announcer != nil {
		p.cfg.Announcer.Announce(b.Objects, wm)
	}
	p.metrics.queued.Inc()
	select {
	case p.queue <- b:
		return nil
	case <-ctx.Done():
		p.metrics.queued.Dec()
		return ctx.Err()
	case <-p.ctx.Done():
		p.metrics.queued.Dec()
		return errors.New("publisher: closed")
	}
}

// Close stops taking batches, lets the one in progress finish until ctx
// ends, and returns. Call it only once the bucketer has stopped calling Seal. Batches not yet durable are rebuilt from the log by the
// next run.
func (p *Publisher) Close(ctx context.Context) {
	stop := context.AfterFunc(ctx, p.cancel)
	defer stop()
	close(p.queue)
	<-p.stopped
	p.cancel()
}

// run stores batches one after another, each batch's objects in parallel,
// so batches finish in the order they were sealed.
func (p *Publisher) run() {
	defer close(p.stopped)
	sem := make(chan struct{}, p.cfg.Workers)
	for b := range p.queue {
		if p.ctx.Err() != nil {
			p.metrics.queued.Dec()
			continue
		}
		var wg sync.WaitGroup
		ok := true
		var okMu sync.Mutex
		for i := range b.Objects {
			o := &b.Objects[i]
			if o.Durable {
				continue
			}
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				if !p.put(o) {
					okMu.Lock()
					ok = false
					okMu.Unlock()
				}
			}()
		}
		wg.Wait()
		p.metrics.queued.Dec()
		if !ok { // closed before the store took everything
			continue
		}
		p.mu.Lock()
		p.published = max(p.published, b.Through)
		wm := p.watermarkLocked()
		p.mu.Unlock()
		p.metrics.published.Set(float64(wm.Published))
		if p.cfg.Announcer != nil {
			p.cfg.Announcer.Announce(nil, wm)
		}
		b.Done()
	}
}

// put stores one object, retrying with backoff until it is durable or the
// publisher closes. A conflict is final: the store keeps its version.
func (p *Publisher) put(o *bucketer.Object) bool {
	wait := p.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		start := time.Now()
		created, err := p.cfg.Store.Put(p.ctx, o.Key, o.Body)
		p.metrics.putSeconds.Observe(time.Since(start).Seconds())
		switch {
		case err == nil && created:
			p.metrics.puts.WithLabelValues("created").Inc()
			return true
		case err == nil:
			p.metrics.puts.WithLabelValues("identical").Inc()
			return true
		case errors.Is(err, ErrConflict):
			p.metrics.puts.WithLabelValues("conflict").Inc()
			p.log.Error("store holds different bytes for a sealed object; keeping the stored version",
				"key", o.Key, "err", err)
			return true
		}
		if p.ctx.Err() != nil {
			return false
		}
		p.metrics.puts.WithLabelValues("error").Inc()
		if attempt == 1 || attempt%10 == 0 {
			p.log.Warn("store put failed; retrying", "key", o.Key, "attempt", attempt, "err", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-p.ctx.Done():
			t.Stop()
			return false
		}
		wait = min(wait*2, p.cfg.RetryMax)
	}
}

type metrics struct {
	puts       *prometheus.CounterVec
	putSeconds prometheus.Histogram
	queued     prometheus.Gauge
	published  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		puts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "danmaku_publisher_puts_total",
			Help: "Store puts by result: created, identical (already there), conflict (different bytes there), error (retried)."}, []string{"result"}),
		putSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "danmaku_publisher_put_seconds", Help: "Latency of store puts.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		queued:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "danmaku_publisher_queued_batches", Help: "Sealed batches waiting for the store."}),
		published: prometheus.NewGauge(prometheus.GaugeOpts{Name: "danmaku_publisher_published_second", Help: "Newest second whose objects are all in the store."}),
	}
	if reg != nil {
		reg.MustRegister(m.puts, m.putSeconds, m.queued, m.published)
	}
	return m
}
