// Package bucketer seals the log into immutable, pre-gzipped per-second
// buckets and 10-second segments, as a pure function of the log: a message
// belongs to the second of the log's own timestamp, and a second is sealed
// once the log holds an entry stamped at or after second + 1 + grace, so a
// restarted writer, a second writer and a backfill all produce the same bytes.
package bucketer

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/danmaku/danmaku/internal/keys"
	"github.com/danmaku/danmaku/internal/logstream"
)

// Object is one sealed bucket or segment, ready to store.
type Object struct {
	Kind     keys.Kind
	Room     string
	Second   int64  // the bucket's second, or the segment's first
	Key      string // store key == URL path without the leading slash
	Body     []byte // gzip of the JSON body
	ETag     string // strong entity tag, quoted
	Messages int
	// Durable means a previous run already stored this object: a replay
	// after restart rebuilds it only to refill the origin's ring.
	Durable bool
	// Dropped and Folded count, for a bucket, the messages a Cap left out
	// and the ones it folded into another's dup count.
	Dropped, Folded int
}

// NewObject gzips a JSON body and fills in the key and entity tag.
func NewObject(kind keys.Kind, room string, second int64, raw []byte, messages int) Object {
	gz := Gzip(raw)
	return Object{
		Kind:     kind,
		Room:     room,
		Second:   second,
		Key:      keys.Key(kind, room, second),
		Body:     gz,
		ETag:     ETag(gz),
		Messages: messages,
	}
}

// ETag returns the strong entity tag of stored bytes: the quoted hex MD5,
// which is also what S3 answers for the same object.
func ETag(body []byte) string {
	sum := md5.Sum(body)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

// Batch is everything newly sealed when the log moved past a second: every
// second in (From, Through] is final.
type Batch struct {
	From, Through int64
	Objects       []Object
	// Partitions the sealing bucketer reads; nil means every partition.
	// Each set is its own sequence of batches.
	Partitions []int
	done       func(*Batch)
}

// NewBatch makes a batch for seconds (from, through] that calls done when
// the sink finishes it; for tools that seal outside a Bucketer (backfill)
// and for testing sinks.
func NewBatch(from, through int64, objs []Object, done func()) *Batch {
	return &Batch{From: from, Through: through, Objects: objs, done: func(*Batch) {
		if done != nil {
			done()
		}
	}}
}

// NewBatchFor is NewBatch for a bucketer of the given partitions.
func NewBatchFor(partitions []int, from, through int64, objs []Object, done func()) *Batch {
	b := NewBatch(from, through, objs, done)
	b.Partitions = partitions
	return b
}

// Done tells the bucketer every object of the batch is durable. Sinks call it
// once per batch, in the order they received the batches.
func (b *Batch) Done() { b.done(b) }

// Sink receives sealed batches. Seal may return before the objects are
// durable, and may block to push back.
type Sink interface {
	Seal(ctx context.Context, b *Batch) error
}

// Source is the log, read in order.
type Source interface {
	// Read calls fn for every entry from sequence from on, in log order,
	// until ctx ends or fn returns an error.
	Read(ctx context.Context, from uint64, partitions []int, fn func(logstream.Entry) error) error
	// LastSeq is the sequence of the newest entry.
	LastSeq(ctx context.Context) (uint64, error)
}

// Checkpoints keeps the bucketer's resume point in the log.
type Checkpoints interface {
	LoadCheckpoint(ctx context.Context, name string) ([]byte, error)
	SaveCheckpoint(ctx context.Context, name string, value []byte) error
}

// Config configures a Bucketer.
type Config struct {
	Source      Source
	Checkpoints Checkpoints
	Sink        Sink
	// Name keys the checkpoint; if blank, defaults to "all" for every
	// partition or "p.N" for partition N alone.
	Name string
	// Partitions to read; nil reads every room.
	Partitions []int
	// Grace is how far past a second's end the log must be before it seals;
	// if 0, defaults to 100ms. It absorbs clock steps between log servers.
	Grace time.Duration
	// StallAfter is how long the log may stay silent (writers tick it every
	// second) before the reader is reopened; if 0, defaults to 3s.
	StallAfter time.Duration
	// Cap bounds the messages a room's bucket keeps per second; the zero
	// value keeps all. Every writer and backfill must use the same Cap.
	Cap Cap
	// Logger; if nil, slog.Default().
	Logger *slog.Logger
	// Metrics, shared by a writer's bucketers; if nil, unregistered ones.
	Metrics *Metrics
}

// Checkpoint is where a restarted bucketer resumes: reading from Seq with
// every second before Second already sealed rebuilds every object that
// might not be durable, and every object up to Published is.
type Checkpoint struct {
	Seq       uint64 `json:"seq"`
	Second    int64  `json:"second"`
	Published int64  `json:"published"`
}

// Bucketer turns log entries into sealed batches.
type Bucketer struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	label   string // partition label of the metrics

	// Loop state, owned by Run's goroutine.
	sealer    *Sealer
	nextSeq   uint64
	windows   []window // segment windows with entries that are not all durable
	inflight  []*Batch // handed to the sink, not yet done, in order
	published int64    // every object of a second ≤ published is durable
	durableTo int64    // from the checkpoint: objects up to here were stored by an earlier run
	saved     Checkpoint

	// doneMu guards doneQ, batches the sink finished.
	doneMu  sync.Mutex
	doneQ   []*Batch
	doneSig chan struct{}

	// readyMu guards ready.
	readyMu sync.Mutex
	ready   bool
}

type window struct {
	start    int64
	firstSeq uint64
}

// New checks cfg and returns a Bucketer.
func New(cfg Config) (*Bucketer, error) {
	if cfg.Source == nil || cfg.Checkpoints == nil || cfg.Sink == nil {
		return nil, errors.New("bucketer: source, checkpoints and sink are required")
	}
	if cfg.Name == "" {
		cfg.Name = "all"
		if len(cfg.Partitions) == 1 {
			cfg.Name = fmt.Sprintf("p.%d", cfg.Partitions[0])
		}
	}
	if cfg.Grace == 0 {
		cfg.Grace = 100 * time.Millisecond
	}
	if cfg.StallAfter == 0 {
		cfg.StallAfter = 3 * time.Second
	}
	if cfg.Grace < 0 {
		return nil, fmt.Errorf("bucketer: negative grace %v", cfg.Grace)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	b := &Bucketer{
		cfg:     cfg,
		log:     cfg.Logger,
		metrics: cfg.Metrics,
		doneSig: make(chan struct{}, 1),
		label:   keys.PartitionLabel(cfg.Partitions),
	}
	b.sealer = NewSealer(SealerConfig{Grace: cfg.Grace, Cap: cfg.Cap, Observer: b.metrics, OnSkip: func(e logstream.Entry, err error) {
		b.log.Error("skipping unreadable log entry", "seq", e.Seq, "room", e.Room, "err", err)
	}})
	return b, nil
}

// Ready reports whether the bucketer has caught up with the log since it
// started.
func (b *Bucketer) Ready() bool {
	b.readyMu.Lock()
	defer b.readyMu.Unlock()
	return b.ready
}

func (b *Bucketer) setReady() {
	b.readyMu.Lock()
	if !b.ready {
		b.ready = true
		b.log.Info("writer caught up with the log", "sealed", b.sealer.Sealed(), "seq", b.nextSeq-1)
	}
	b.readyMu.Unlock()
}

// Run reads the log from the checkpoint and seals until ctx ends. On the way
// out it waits (up to drain) for the sink to finish what it was given and
// saves the checkpoint.
func (b *Bucketer) Run(ctx context.Context, drain time.Duration) error {
	ck, err := b.loadCheckpoint(ctx)
	if err != nil {
		return err
	}
	b.saved = ck
	b.nextSeq = max(ck.Seq, 1)
	b.published = ck.Published
	b.durableTo = ck.Published
	if ck.Second > 0 {
		b.sealer.Resume(ck.Second - 1)
	}
	last, err := b.cfg.Source.LastSeq(ctx)
	if err != nil {
		return fmt.Errorf("bucketer: %w", err)
	}
	b.log.Info("writer resuming", "seq", b.nextSeq, "sealed", b.sealer.Sealed(), "published", b.published, "log_last", last)
	if last < b.nextSeq {
		b.setReady()
	}
	if ck.Published > 0 {
		// Tell the sink (and through it the origin) what an earlier run made
		// durable, before the replay re-seals from further back.
		resume := &Batch{From: ck.Published, Through: ck.Published, Partitions: b.cfg.Partitions, done: b.finished}
		if err := b.cfg.Sink.Seal(ctx, resume); err != nil {
			return fmt.Errorf("bucketer: resume: %w", err)
		}
		b.inflight = append(b.inflight, resume)
	}

	r := b.startReader(ctx, b.nextSeq)
	defer func() { r.stop() }()
	watchdog := time.NewTicker(b.cfg.StallAfter / 3)
	defer watchdog.Stop()
	lastEntry := time.Now()
	// A reader that failed (the log unreachable, its stream without a
	// leader for a moment) is reopened after a backoff where it stopped;
	// the bucketer's state stays valid, so nothing restarts from the
	// checkpoint.
	var reopen <-chan time.Time
	retry := readerRetryMin
	for {
		select {
		case e := <-r.entries:
			if e.Seq < b.nextSeq {
				continue // a reopened reader may repeat what was already read
			}
			lastEntry = time.Now()
			retry = readerRetryMin
			if err := b.process(ctx, e); err != nil {
				return b.shutdown(err, drain)
			}
		case <-b.doneSig:
			b.completed(ctx)
		case err := <-r.err:
			if ctx.Err() != nil {
				return b.shutdown(nil, drain)
			}
			b.log.Warn("the log reader failed; reopening it", "err", err, "in", retry, "seq", b.nextSeq)
			b.metrics.readerRestarts.Inc()
			reopen = time.After(retry)
			retry = min(retry*2, readerRetryMax)
		case <-reopen:
			reopen = nil
			r = b.startReader(ctx, b.nextSeq)
			lastEntry = time.Now()
		case <-watchdog.C:
			// Writers tick the log every second, so silence means the
			// reader is stuck (a consumer on a server that went away and
			// was not noticed): open a new one where this one stopped,
			// without waiting for the old one, which may never return.
			if idle := time.Since(lastEntry); reopen == nil && idle >= b.cfg.StallAfter {
				b.log.Warn("no log entries; reopening the log reader", "idle", idle.Round(time.Millisecond), "seq", b.nextSeq)
				b.metrics.readerRestarts.Inc()
				r.cancel()
				r = b.startReader(ctx, b.nextSeq)
				lastEntry = time.Now()
			}
		case <-ctx.Done():
			return b.shutdown(nil, drain)
		}
	}
}

// How long a failed reader waits before it is reopened: doubling from the
// first to the second, and back to the first once entries flow again.
const (
	readerRetryMin = 200 * time.Millisecond
	readerRetryMax = 2 * time.Second
)

// reader is one Source.Read feeding the loop.
type reader struct {
	entries chan logstream.Entry
	err     chan error
	cancel  func() // ends the reader without waiting for it
	stop    func() // ends it and waits a little for it to return
}

func (b *Bucketer) startReader(ctx context.Context, from uint64) *reader {
	rctx, cancel := context.WithCancel(ctx)
	r := &reader{entries: make(chan logstream.Entry, 64), err: make(chan error, 1), cancel: cancel}
	done := make(chan struct{})
	r.stop = func() {
		cancel()
		// The old reader may be stuck where no context reaches; don't wait
		// for it long, and drop whatever it still sends.
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
	}
	go func() {
		defer close(done)
		err := b.cfg.Source.Read(rctx, from, b.cfg.Partitions, func(e logstream.Entry) error {
			select {
			case r.entries <- e:
				return nil
			case <-rctx.Done():
				return rctx.Err()
			}
		})
		if rctx.Err() == nil {
			r.err <- err
		}
	}()
	return r
}

func (b *Bucketer) shutdown(cause error, drain time.Duration) error {
	deadline := time.NewTimer(drain)
	defer deadline.Stop()
	for len(b.inflight) > 0 {
		select {
		case <-b.doneSig:
			b.completed(context.Background())
		case <-deadline.C:
			b.log.Warn("writer stopping with batches not yet durable; they will be rebuilt from the log on restart",
				"batches", len(b.inflight))
			return cause
		}
	}
	return cause
}

func (b *Bucketer) loadCheckpoint(ctx context.Context) (Checkpoint, error) {
	raw, err := b.cfg.Checkpoints.LoadCheckpoint(ctx, b.cfg.Name)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("bucketer: %w", err)
	}
	var ck Checkpoint
	if raw != nil {
		if err := json.Unmarshal(raw, &ck); err != nil {
			return Checkpoint{}, fmt.Errorf("bucketer: checkpoint %s: %w", b.cfg.Name, err)
		}
	}
	return ck, nil
}

// process applies one log entry and hands whatever it sealed to the sink.
func (b *Bucketer) process(ctx context.Context, e logstream.Entry) error {
	b.nextSeq = e.Seq + 1
	from := b.sealer.Sealed()
	objs, second, sealed := b.sealer.Add(e)
	b.noteWindow(keys.SegmentStart(second), e.Seq)
	if e.Pending == 0 {
		b.setReady()
	}
	if !sealed {
		return nil
	}
	through := b.sealer.Sealed()
	batch := &Batch{From: from, Through: through, Objects: objs, Partitions: b.cfg.Partitions, done: b.finished}
	for i := range batch.Objects {
		o := &batch.Objects[i]
		o.Durable = o.Second+o.Kind.Seconds()-1 <= b.durableTo
	}
	b.metrics.sealed.WithLabelValues(b.label).Set(float64(through))
	b.metrics.sealDelay.Observe(time.Since(time.Unix(through+1, 0)).Seconds())
	if err := b.cfg.Sink.Seal(ctx, batch); err != nil {
		return fmt.Errorf("bucketer: seal through %d: %w", through, err)
	}
	b.inflight = append(b.inflight, batch)
	return nil
}

func (b *Bucketer) noteWindow(start int64, seq uint64) {
	for i := len(b.windows) - 1; i >= 0; i-- {
		if b.windows[i].start == start {
			return
		}
	}
	b.windows = append(b.windows, window{start: start, firstSeq: seq})
}

// finished is Batch.Done: it may run on any goroutine.
func (b *Bucketer) finished(batch *Batch) {
	b.doneMu.Lock()
	b.doneQ = append(b.doneQ, batch)
	b.doneMu.Unlock()
	select {
	case b.doneSig <- struct{}{}:
	default:
	}
}

// completed takes the batches the sink finished, advances the published
// watermark and saves the checkpoint when it moved.
func (b *Bucketer) completed(ctx context.Context) {
	b.doneMu.Lock()
	q := b.doneQ
	b.doneQ = nil
	b.doneMu.Unlock()
	for _, d := range q {
		if len(b.inflight) == 0 || b.inflight[0] != d {
			b.log.Error("sink finished batches out of order; ignoring", "through", d.Through)
			continue
		}
		b.inflight = b.inflight[1:]
		// A replay re-seals seconds an earlier run published; never move back.
		b.published = max(b.published, d.Through)
	}
	b.metrics.published.WithLabelValues(b.label).Set(float64(b.published))
	// Drop windows whose every second is durable.
	keep := b.windows[:0]
	for _, w := range b.windows {
		if w.start+keys.SegmentSeconds-1 > b.published {
			keep = append(keep, w)
		}
	}
	b.windows = keep
	ck := Checkpoint{Seq: b.nextSeq, Second: keys.SegmentStart(b.published + 1), Published: b.published}
	for _, w := range b.windows {
		if w.firstSeq < ck.Seq {
			ck.Seq = w.firstSeq
		}
		if w.start < ck.Second {
			ck.Second = w.start
		}
	}
	if ck == b.saved {
		return
	}
	raw, _ := json.Marshal(ck)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := b.cfg.Checkpoints.SaveCheckpoint(sctx, b.cfg.Name, raw); err != nil {
		b.metrics.checkpointErrors.Inc()
		b.log.Warn("saving checkpoint failed; a restart will replay further back", "err", err)
		return
	}
	b.saved = ck
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// Metrics are a writer's counters, shared by every bucketer it runs.
type Metrics struct {
	entries, messages, skipped prometheus.Counter
	buckets, segments          prometheus.Counter
	dropped, folded            prometheus.Counter
	checkpointErrors           prometheus.Counter
	readerRestarts             prometheus.Counter
	bucketBytes, sealDelay     prometheus.Histogram
	sealed, published          *prometheus.GaugeVec
}

// Entry, Placed, Skipped and Sealed make Metrics a Sealer's Observer.
func (m *Metrics) Entry()       { m.entries.Inc() }
func (m *Metrics) Placed(n int) { m.messages.Add(float64(n)) }
func (m *Metrics) Skipped()     { m.skipped.Inc() }
func (m *Metrics) Sealed(o *Object) {
	if o.Kind == keys.Bucket {
		m.buckets.Inc()
		m.bucketBytes.Observe(float64(len(o.Body)))
		m.dropped.Add(float64(o.Dropped))
		m.folded.Add(float64(o.Folded))
	} else {
		m.segments.Inc()
	}
}

// NewMetrics makes the writer metrics and registers them with reg, if any.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		entries:          prometheus.NewCounter(prometheus.CounterOpts{Name: "danmaku_writer_log_entries_total", Help: "Log entries read, ticks included."}),
		messages:         prometheus.NewCounter(prometheus.CounterOpts{Name: "danmaku_writer_messages_total", Help: "Messages placed into buckets."}),
		skipped:          prometheus.NewCounter(prometheus.CounterOpts{Name: "danmaku_writer_skipped_entries_total", Help: "Log entries skipped because they could not be decoded."}),
		buckets:          prometheus.NewCounter(prometheus.CounterOpts{Name: "danmaku_writer_buckets_sealed_total", Help: "Non-empty buckets sealed."}),
		segments:         prometheus.NewCounter(prometheus.CounterOpts{Name: "danmaku_writer_segments_sealed_total", Help: "Non-empty segments sealed."}),
		dropped:          prometheus.NewCounter(prometheus.CounterOpts{Name: "danmaku_writer_dropped_messages_total", Help: "Messages the per-room cap left out of buckets (counted in their dropped)."}),
		folded:           prometheus.NewCounter(prometheus.CounterOpts{Name: "danmaku_writer_folded_messages_total", Help: "Messages the per-room cap folded into an identical text's dup count."}),
		checkpointErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "danmaku_writer_checkpoint_errors_total", Help: "Failed checkpoint saves."}),
		readerRestarts:   prometheus.NewCounter(prometheus.CounterOpts{Name: "danmaku_writer_reader_restarts_total", Help: "Log readers reopened after they failed or the log stayed silent too long."}),
		bucketBytes: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "danmaku_writer_bucket_bytes", Help: "Gzipped size of sealed buckets.",
			Buckets: prometheus.ExponentialBuckets(64, 2, 12)}),
		sealDelay: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "danmaku_writer_seal_delay_seconds", Help: "Time from the end of a second to its seal.",
			Buckets: []float64{.05, .1, .15, .2, .3, .5, 1, 2, 5, 10}}),
		sealed: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "danmaku_writer_sealed_second",
			Help: "Newest sealed unix second, by partition (\"all\" when one bucketer reads every room)."}, []string{"partition"}),
		published: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "danmaku_writer_published_second",
			Help: "Newest unix second whose objects are all durable, by partition."}, []string{"partition"}),
	}
	if reg != nil {
		reg.MustRegister(m.entries, m.messages, m.skipped, m.buckets, m.segments, m.dropped, m.folded, m.checkpointErrors, m.readerRestarts,
			m.bucketBytes, m.sealDelay, m.sealed, m.published)
	}
	return m
}
