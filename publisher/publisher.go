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
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/keys"
)

// Errors of the Store contract.
var (
	// ErrNotFound: no object under the key.
	ErrNotFound = errors.New("object not found")
	// ErrConflict: a different object already exists under the key.
	ErrConflict = errors.New("a different object already exists")
)

// The metadata every stored object is served with.
const (
	ContentType     = "application/json"
	ContentEncoding = "gzip"
	CacheControl    = "public, max-age=31536000, immutable"
)

// Store keeps sealed objects. Keys are URL paths without the leading slash;
// bodies are gzipped JSON, stored and served with ContentEncoding,
// ContentType and CacheControl. Every method is safe to call concurrently.
type Store interface {
	// Put stores body under key only if nothing is there yet. If an object
	// exists, Put compares it: identical bytes return created == false and
	// no error; different bytes return ErrConflict. Put may be repeated.
	Put(ctx context.Context, key string, body []byte) (created bool, err error)
	// Get returns the object under key, or ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// Stat describes the object under key, or returns ErrNotFound.
	Stat(ctx context.Context, key string) (Info, error)
	// List calls fn with every key under prefix that sorts after
	// startAfter, in byte order, until fn returns false.
	List(ctx context.Context, prefix, startAfter string, fn func(key string) bool) error
	// Delete removes the objects under keys; absent keys are not an error.
	Delete(ctx context.Context, keys []string) error
	// Replace stores body under key whether or not an object is there. Only
	// an operator's redaction uses it: sealed objects are otherwise never
	// rewritten.
	Replace(ctx context.Context, key string, body []byte) error
}

// Info describes a stored object.
type Info struct {
	Size            int64
	ETag            string // quoted hex MD5 of the bytes
	ContentType     string
	ContentEncoding string
	CacheControl    string
}

// Watermark says how far sealing and publishing have come for a set of
// partitions.
type Watermark struct {
	// Partitions covered; nil means every partition, an empty non-nil
	// slice none (objects only).
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
	// Inflight is how many batches are stored at once (each bucketer's
	// still finish in order); if 0, defaults to 16. While the store fails
	// they are all that is held beyond the queue.
	Inflight int
	// MemoryBytes is how much sealed data may wait for the store in memory;
	// if 0, defaults to 32 MiB.
	MemoryBytes int64
	// SpoolDir receives what waits beyond MemoryBytes, up to SpoolBytes; if
	// blank, Seal blocks (and sealing stops) once memory is full.
	SpoolDir string
	// SpoolBytes bounds the spool; if 0, defaults to 1 GiB. When it is full
	// Seal blocks.
	SpoolBytes int64
	// RetryMin and RetryMax bound the backoff between attempts of a failed
	// put; if 0, default to 100ms and 5s.
	RetryMin, RetryMax time.Duration
	Logger             *slog.Logger
	Registerer         prometheus.Registerer
}

// Publisher is a bucketer.Sink. Batches from any number of bucketers are
// stored concurrently; each bucketer's batches finish in the order it
// sealed them, which is what its checkpoint and watermarks need.
type Publisher struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	q       *queue
	stopped chan struct{}
	failed  chan error
	ctx     context.Context
	cancel  context.CancelFunc
	slots   chan struct{} // one per batch taken from the queue and not yet done (cfg.Inflight)

	// mu guards sources and pending.
	mu      sync.Mutex
	sources map[string]*source
	pending map[*bucketer.Batch]*pendingBatch
}

// source is the batches of one bucketer (one set of partitions).
type source struct {
	partitions        []int
	sealed, published int64
	order             []*pendingBatch // sealed, not yet done, in seal order
}

type pendingBatch struct {
	b      *bucketer.Batch
	src    *source
	left   atomic.Int64 // objects still to store
	stored bool         // every object is in the store
	failed atomic.Bool  // the publisher closed before the store took everything
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
	if cfg.Inflight == 0 {
		cfg.Inflight = 16
	}
	if cfg.MemoryBytes == 0 {
		cfg.MemoryBytes = 32 << 20
	}
	if cfg.SpoolBytes == 0 {
		cfg.SpoolBytes = 1 << 30
	}
	if cfg.RetryMin == 0 {
		cfg.RetryMin = 100 * time.Millisecond
	}
	if cfg.RetryMax == 0 {
		cfg.RetryMax = 5 * time.Second
	}
	if cfg.Workers < 0 || cfg.Inflight < 0 || cfg.MemoryBytes < 0 || cfg.SpoolBytes < 0 || cfg.RetryMin < 0 || cfg.RetryMax < cfg.RetryMin {
		return nil, fmt.Errorf("publisher: bad config: workers %d, memory %d B, spool %d B, retry %v..%v",
			cfg.Workers, cfg.MemoryBytes, cfg.SpoolBytes, cfg.RetryMin, cfg.RetryMax)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := newMetrics(cfg.Registerer)
	q, err := newQueue(cfg.SpoolDir, cfg.MemoryBytes, cfg.SpoolBytes, func(mem, disk int, diskBytes int64) {
		m.queued.Set(float64(mem + disk))
		m.spooled.Set(float64(disk))
		m.spoolBytes.Set(float64(diskBytes))
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Publisher{
		cfg:     cfg,
		log:     cfg.Logger,
		metrics: m,
		q:       q,
		stopped: make(chan struct{}),
		failed:  make(chan error, 1),
		ctx:     ctx,
		cancel:  cancel,
		slots:   make(chan struct{}, cfg.Inflight),
		sources: map[string]*source{},
		pending: map[*bucketer.Batch]*pendingBatch{},
	}
	go p.run()
	return p, nil
}

func (src *source) watermark() Watermark {
	return Watermark{Partitions: src.partitions, Sealed: src.sealed, Published: src.published}
}

// Seal announces the batch's objects to the origin at once and queues them
// for the store; it blocks only while memory and spool are both full.
func (p *Publisher) Seal(ctx context.Context, b *bucketer.Batch) error {
	p.mu.Lock()
	key := keys.PartitionLabel(b.Partitions)
	src := p.sources[key]
	if src == nil {
		src = &source{partitions: b.Partitions}
		p.sources[key] = src
	}
	src.sealed = max(src.sealed, b.Through)
	wm := src.watermark()
	pb := &pendingBatch{b: b, src: src}
	src.order = append(src.order, pb)
	p.pending[b] = pb
	p.mu.Unlock()
	if p.cfg.Announcer != nil {
		p.cfg.Announcer.Announce(b.Objects, wm)
	}
	if err := p.q.push(ctx, b); err != nil {
		p.mu.Lock()
		delete(p.pending, b)
		if n := len(src.order); n > 0 && src.order[n-1] == pb {
			src.order = src.order[:n-1]
		}
		p.mu.Unlock()
		return err
	}
	return nil
}

// Failed delivers an error if the publisher stopped working (a spool file
// could not be read back); the process should exit and replay from the log.
func (p *Publisher) Failed() <-chan error { return p.failed }

// Close stops taking batches, keeps storing what is queued until ctx ends,
// and returns. Batches not yet durable are rebuilt from the log by the next
// run. Call it only once the bucketer has stopped calling Seal.
func (p *Publisher) Close(ctx context.Context) {
	stop := context.AfterFunc(ctx, p.cancel)
	defer stop()
	p.q.close()
	<-p.stopped
	p.cancel()
}

// job is one object to store.
type job struct {
	o  *bucketer.Object
	pb *pendingBatch
}

// run takes batches from the queue and hands their objects to the workers;
// at most cfg.Inflight batches are out at once.
func (p *Publisher) run() {
	defer close(p.stopped)
	jobs := make(chan job)
	var workers sync.WaitGroup
	for range p.cfg.Workers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for j := range jobs {
				if !p.put(j.o) {
					j.pb.failed.Store(true)
				}
				if j.pb.left.Add(-1) == 0 {
					p.stored(j.pb)
				}
			}
		}()
	}
	defer func() {
		close(jobs)
		workers.Wait()
	}()
	for {
		b, ok, err := p.q.pop(p.ctx)
		if err != nil {
			if p.ctx.Err() == nil {
				p.log.Error("publisher stopped", "err", err)
				p.failed <- err
			}
			return
		}
		if !ok || p.ctx.Err() != nil {
			return
		}
		select {
		case p.slots <- struct{}{}:
		case <-p.ctx.Done():
			return
		}
		p.mu.Lock()
		pb := p.pending[b]
		p.mu.Unlock()
		if pb == nil { // not sealed through this publisher; cannot happen
			<-p.slots
			continue
		}
		pb.b = b // a batch read back from the spool is a new value
		var todo []*bucketer.Object
		for i := range b.Objects {
			if !b.Objects[i].Durable {
				todo = append(todo, &b.Objects[i])
			}
		}
		if len(todo) == 0 {
			p.stored(pb)
			continue
		}
		pb.left.Store(int64(len(todo)))
		for _, o := range todo {
			select {
			case jobs <- job{o: o, pb: pb}:
			case <-p.ctx.Done():
				return
			}
		}
	}
}

// stored marks a batch as fully stored and finishes, in seal order, every
// batch of its source that is now complete.
func (p *Publisher) stored(pb *pendingBatch) {
	if pb.failed.Load() {
		return // closed before the store took it: the log will replay it
	}
	p.mu.Lock()
	pb.stored = true
	src := pb.src
	var finished []*pendingBatch
	for len(src.order) > 0 && src.order[0].stored {
		head := src.order[0]
		src.order = src.order[1:]
		delete(p.pending, head.b)
		src.published = max(src.published, head.b.Through)
		finished = append(finished, head)
	}
	wm := src.watermark()
	p.mu.Unlock()
	if len(finished) == 0 {
		return
	}
	p.metrics.published.WithLabelValues(keys.PartitionLabel(src.partitions)).Set(float64(wm.Published))
	if p.cfg.Announcer != nil {
		p.cfg.Announcer.Announce(nil, wm)
	}
	for _, f := range finished {
		f.b.Done()
		<-p.slots
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
	spooled    prometheus.Gauge
	spoolBytes prometheus.Gauge
	published  *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		puts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "danmaku_publisher_puts_total",
			Help: "Store puts by result: created, identical (already there), conflict (different bytes there), error (retried)."}, []string{"result"}),
		putSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "danmaku_publisher_put_seconds", Help: "Latency of store puts.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		queued:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "danmaku_publisher_queued_batches", Help: "Sealed batches waiting for the store, in memory and spooled."}),
		spooled:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "danmaku_publisher_spool_batches", Help: "Sealed batches waiting for the store in the on-disk spool."}),
		spoolBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "danmaku_publisher_spool_bytes", Help: "Bytes in the on-disk spool."}),
		published: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "danmaku_publisher_published_second",
			Help: "Newest second whose objects are all in the store, by partition."}, []string{"partition"}),
	}
	if reg != nil {
		reg.MustRegister(m.puts, m.putSeconds, m.queued, m.spooled, m.spoolBytes, m.published)
	}
	return m
}
