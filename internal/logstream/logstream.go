// Package logstream is the ingest log: a NATS JetStream stream, either in an
// embedded server storing under the data directory or on an external cluster.
// Ingest appends posts to it; writers read it in order, tick it so quiet
// seconds seal, and keep their checkpoints in its key-value store.
package logstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/danmaku/danmaku/internal/keys"
)

// Subject layout. A room's posts go to danmaku.msg.<partition>.<room>, so a
// writer can own a subset of partitions; ticks go to danmaku.tick.
const (
	msgPrefix   = "danmaku.msg."
	TickSubject = "danmaku.tick"
	AllMessages = "danmaku.msg.>"
)

// Config describes where the log lives. The zero value (plus DataDir) runs an
// embedded server.
type Config struct {
	// URLs of an external NATS cluster. Empty runs an embedded server.
	URLs []string
	// DataDir holds the embedded server's JetStream files (under DataDir/nats).
	DataDir string
	// Stream is the stream name; if blank, defaults to "DANMAKU".
	Stream string
	// Replicas of the stream and key-value buckets. If 0: 1 on the embedded
	// server, 3 on a cluster of three or more servers, else 1.
	Replicas int
	// LeaseTTL is how long a writer's partition lease lives without renewal;
	// if 0, defaults to 2s.
	LeaseTTL time.Duration
	// ConnectOnly skips creating the stream and buckets, for processes (an
	// origin) that only listen for announcements.
	ConnectOnly bool
	// MaxAge is how long the log keeps entries (backfill reaches this far
	// back); if 0, defaults to 72h.
	MaxAge time.Duration
	// SyncAlways makes the embedded server fsync every write before it
	// acknowledges, surviving power loss at a throughput cost. Without it an
	// acknowledged write survives a process crash (it is in the OS page cache)
	// and is flushed within the server's sync interval.
	SyncAlways bool
	// Name identifies this connection in the server's monitoring.
	Name string
	// Logger receives the embedded server's warnings and errors.
	Logger *slog.Logger
	// Listen, if set, also serves the embedded server to other processes
	// (backfill, export, more danmaku roles) at this host:port.
	Listen string
}

const (
	checkpointBucket = "danmaku_checkpoints"
	leaseBucket      = "danmaku_leases"
)

// Log is an open connection to the log.
type Log struct {
	cfg      Config
	srv      *server.Server // nil for an external cluster
	nc       *nats.Conn
	js       jetstream.JetStream
	stream   jetstream.Stream
	kv       jetstream.KeyValue
	leases   jetstream.KeyValue
	log      *slog.Logger
	embedded bool
	lock     *os.File // held while the embedded server owns its directory
}

// Open starts the embedded server when no URLs are given, connects, and
// creates or updates the stream and the checkpoint bucket.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if cfg.Stream == "" {
		cfg.Stream = "DANMAKU"
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = 2 * time.Second
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = 72 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Name == "" {
		cfg.Name = "danmaku"
	}
	l := &Log{cfg: cfg, log: cfg.Logger}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				l.log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			l.log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
	}
	var url string
	if len(cfg.URLs) == 0 {
		srv, lock, err := startEmbedded(cfg)
		if err != nil {
			return nil, err
		}
		l.srv, l.lock, l.embedded = srv, lock, true
		opts = append(opts, nats.InProcessServer(srv))
	} else {
		url = strings.Join(cfg.URLs, ",")
		opts = append(opts, nats.RetryOnFailedConnect(false))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("logstream: connect %s: %w", redact(url), err)
	}
	l.nc = nc
	if l.js, err = jetstream.New(nc); err != nil {
		l.Close()
		return nil, fmt.Errorf("logstream: jetstream: %w", err)
	}
	if cfg.ConnectOnly {
		return l, nil
	}
	if err := l.ensure(ctx); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func startEmbedded(cfg Config) (*server.Server, *os.File, error) {
	if cfg.DataDir == "" {
		return nil, nil, errors.New("logstream: embedded server needs a data directory")
	}
	dir := filepath.Join(cfg.DataDir, "nats")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("logstream: create %s: %w", dir, err)
	}
	// Two servers on one directory would corrupt it; the server does not
	// guard against that, so take a lock for as long as this one runs.
	lock, err := os.OpenFile(filepath.Join(dir, "danmaku.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("logstream: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, nil, fmt.Errorf("logstream: the log in %s is in use by another danmaku process (a running serve?): stop it, or reach its log with --nats", dir)
	}
	opts := &server.Options{
		ServerName: "danmaku-embedded",
		DontListen: true,
		JetStream:  true,
		StoreDir:   dir,
		SyncAlways: cfg.SyncAlways,
		NoSigs:     true,
	}
	if cfg.Listen != "" {
		host, port, err := net.SplitHostPort(cfg.Listen)
		n, perr := strconv.Atoi(port)
		if err != nil || perr != nil {
			lock.Close()
			return nil, nil, fmt.Errorf("logstream: listen address %q: want host:port", cfg.Listen)
		}
		if n == 0 {
			n = server.RANDOM_PORT
		}
		opts.DontListen, opts.Host, opts.Port = false, host, n
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		lock.Close()
		return nil, nil, fmt.Errorf("logstream: embedded server: %w", err)
	}
	srv.SetLoggerV2(serverLogger{cfg.Logger.With("component", "nats")}, false, false, false)
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		lock.Close()
		return nil, nil, fmt.Errorf("logstream: embedded server in %s did not start within 30s", dir)
	}
	return srv, lock, nil
}

func (l *Log) ensure(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	replicas := l.cfg.Replicas
	auto := replicas == 0
	if auto {
		replicas = 1
		if !l.embedded && len(l.nc.Servers()) >= 3 {
			replicas = 3
		}
	}
	for {
		err := l.ensureWith(ctx, replicas)
		if err == nil {
			l.log.Debug("log ready", "stream", l.cfg.Stream, "replicas", replicas)
			return nil
		}
		if auto && replicas > 1 && strings.Contains(err.Error(), "insufficient resources") {
			l.log.Warn("the cluster cannot hold 3 replicas of the log; using 1", "err", err)
			replicas = 1
			continue
		}
		return err
	}
}

func (l *Log) ensureWith(ctx context.Context, replicas int) error {
	s, err := l.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        l.cfg.Stream,
		Description: "danmaku posts and writer ticks",
		Subjects:    []string{AllMessages, TickSubject},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      l.cfg.MaxAge,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		Duplicates:  2 * time.Minute,
		// Reads of one entry (the stamp of a post or tick) go to the
		// leader: a direct get may be answered by a replica that has not
		// stored the entry yet.
		AllowDirect: false,
	})
	if err != nil {
		return fmt.Errorf("logstream: create stream %s: %w", l.cfg.Stream, err)
	}
	l.stream = s
	kv, err := l.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      checkpointBucket,
		Description: "danmaku writer checkpoints",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return fmt.Errorf("logstream: create key-value bucket %s: %w", checkpointBucket, err)
	}
	l.kv = kv
	leases, err := l.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      leaseBucket,
		Description: "danmaku writer partition leases",
		History:     1,
		TTL:         l.cfg.LeaseTTL,
		Storage:     jetstream.MemoryStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return fmt.Errorf("logstream: create key-value bucket %s: %w", leaseBucket, err)
	}
	l.leases = leases
	return nil
}

// Conn is the NATS connection, for announcements between processes.
func (l *Log) Conn() *nats.Conn { return l.nc }

// Leases is the key-value bucket where writers hold partition leases; its
// entries expire after the lease TTL unless renewed.
func (l *Log) Leases() jetstream.KeyValue { return l.leases }

// Close disconnects and stops the embedded server.
func (l *Log) Close() {
	if l.nc != nil {
		l.nc.Drain()
		deadline := time.Now().Add(5 * time.Second)
		for !l.nc.IsClosed() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		l.nc.Close()
	}
	if l.srv != nil {
		l.srv.Shutdown()
		l.srv.WaitForShutdown()
	}
	if l.lock != nil {
		l.lock.Close() // releases the lock
	}
}

// ClientURL is where other processes reach the embedded server, or "" when
// it does not listen.
func (l *Log) ClientURL() string {
	if l.srv == nil || l.cfg.Listen == "" {
		return ""
	}
	return l.srv.ClientURL()
}

// Ready reports whether the connection to the log is up.
func (l *Log) Ready() bool { return l.nc != nil && l.nc.IsConnected() }

// Subject returns the log subject of room's posts.
func Subject(room string) string {
	return msgPrefix + strconv.Itoa(keys.Partition(room)) + "." + room
}

// PartitionSubject returns the filter matching every room of partition p.
func PartitionSubject(p int) string { return msgPrefix + strconv.Itoa(p) + ".*" }

// roomOf returns the room of a message subject, or "" for anything else.
func roomOf(subject string) string {
	rest, ok := strings.CutPrefix(subject, msgPrefix)
	if !ok {
		return ""
	}
	_, room, ok := strings.Cut(rest, ".")
	if !ok {
		return ""
	}
	return room
}

// Ack is the log's answer to an append.
type Ack struct {
	Seq       uint64    // stream sequence of the entry
	Time      time.Time // when the log stored it; its second is the bucket's
	Duplicate bool      // the id was seen before; Seq and Time are the original's
}

// clockSkew is how far an external server's clock may be from ours before
// Append stops trusting its own clock to name the second.
const clockSkew = 50 * time.Millisecond

// Append stores data as an entry for room and returns once the log has
// acknowledged it. id de-duplicates retries within two minutes: appending
// the same id again returns the original entry.
func (l *Log) Append(ctx context.Context, room string, data []byte, id string) (Ack, error) {
	m := &nats.Msg{Subject: Subject(room), Data: data, Header: nats.Header{}}
	m.Header.Set(jetstream.MsgIDHeader, id)
	t0 := time.Now()
	pa, err := l.js.PublishMsg(ctx, m)
	if err != nil {
		return Ack{}, fmt.Errorf("logstream: append to %s: %w", m.Subject, err)
	}
	t1 := time.Now()
	ack := Ack{Seq: pa.Sequence, Duplicate: pa.Duplicate, Time: t0}
	// The server stamped the entry between t0 and t1 on its clock. When that
	// window (widened by the possible skew of an external clock) lies in one
	// second, that is the entry's second; otherwise read the stamp back.
	skew := clockSkew
	if l.embedded {
		skew = 0
	}
	if pa.Duplicate || t0.Add(-skew).Unix() != t1.Add(skew).Unix() {
		raw, err := l.stream.GetMsg(ctx, pa.Sequence)
		if err != nil {
			return Ack{}, fmt.Errorf("logstream: read back entry %d: %w", pa.Sequence, err)
		}
		ack.Time = raw.Time
	}
	return ack, nil
}

// Entry is one record of the log.
type Entry struct {
	Seq  uint64
	Time time.Time // when the log stored it
	Room string    // "" for a tick
	Data []byte    // the post; empty for a tick
	// Pending is how many entries follow this one in the log right now;
	// 0 means the reader has caught up.
	Pending uint64
}

// Read calls fn for every entry of the given partitions (nil: all) from
// sequence from on, in log order, until ctx ends or fn returns an error.
// Ticks are always included.
func (l *Log) Read(ctx context.Context, from uint64, partitions []int, fn func(Entry) error) error {
	filters := []string{AllMessages, TickSubject}
	if partitions != nil {
		filters = []string{TickSubject}
		for _, p := range partitions {
			filters = append(filters, PartitionSubject(p))
		}
	}
	return l.read(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: filters,
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    max(from, 1),
	}, fn)
}

// ReadSince is Read from the first entry stored at or after start, for the
// given rooms (nil: all), ticks included.
func (l *Log) ReadSince(ctx context.Context, start time.Time, rooms []string, fn func(Entry) error) error {
	filters := []string{AllMessages, TickSubject}
	if rooms != nil {
		filters = []string{TickSubject}
		for _, r := range rooms {
			filters = append(filters, Subject(r))
		}
	}
	return l.read(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: filters,
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &start,
	}, fn)
}

// readAhead is how many entries a reader asks the server for ahead of fn.
const readAhead = 1000

func (l *Log) read(ctx context.Context, cfg jetstream.OrderedConsumerConfig, fn func(Entry) error) error {
	cons, err := l.js.OrderedConsumer(ctx, l.cfg.Stream, cfg)
	if err != nil {
		return fmt.Errorf("logstream: read: %w", err)
	}
	// A consumer on a server that died is noticed by its missing
	// heartbeats and recreated where the log resumes: keep that short, so
	// losing a node stalls sealing for seconds, not the default half minute.
	// Buffer by count and bytes: a writer runs a reader per partition, and
	// a batch entry can be a quarter megabyte. A bytes-only limit would size
	// the client's channel for a million messages, 8 MB per reader that the
	// traffic slowly makes resident.
	it, err := cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(readAhead, 4<<20), jetstream.PullExpiry(4*time.Second), jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return fmt.Errorf("logstream: read: %w", err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("logstream: read: %w", err)
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("logstream: read metadata: %w", err)
		}
		e := Entry{
			Seq:     md.Sequence.Stream,
			Time:    md.Timestamp,
			Room:    roomOf(m.Subject()),
			Pending: md.NumPending,
		}
		if e.Room != "" {
			e.Data = m.Data()
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

// LastSeq returns the sequence of the newest entry in the log.
func (l *Log) LastSeq(ctx context.Context) (uint64, error) {
	info, err := l.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("logstream: stream info: %w", err)
	}
	return info.State.LastSeq, nil
}

// Entry returns the entry stored at seq.
func (l *Log) Entry(ctx context.Context, seq uint64) (Entry, error) {
	raw, err := l.stream.GetMsg(ctx, seq)
	if err != nil {
		return Entry{}, fmt.Errorf("logstream: get entry %d: %w", seq, err)
	}
	e := Entry{Seq: raw.Sequence, Time: raw.Time, Room: roomOf(raw.Subject)}
	if e.Room != "" {
		e.Data = raw.Data
	}
	return e, nil
}

// LoadCheckpoint returns the checkpoint stored under name, or nil if there is
// none.
func (l *Log) LoadCheckpoint(ctx context.Context, name string) ([]byte, error) {
	e, err := l.kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("logstream: load checkpoint %s: %w", name, err)
	}
	return e.Value(), nil
}

// SaveCheckpoint stores value under name.
func (l *Log) SaveCheckpoint(ctx context.Context, name string, value []byte) error {
	if _, err := l.kv.Put(ctx, name, value); err != nil {
		return fmt.Errorf("logstream: save checkpoint %s: %w", name, err)
	}
	return nil
}

// Tick appends a tick entry and returns when the log stored it.
func (l *Log) Tick(ctx context.Context) (Ack, error) {
	t0 := time.Now()
	pa, err := l.js.Publish(ctx, TickSubject, nil)
	if err != nil {
		return Ack{}, fmt.Errorf("logstream: tick: %w", err)
	}
	if l.embedded {
		return Ack{Seq: pa.Sequence, Time: t0}, nil
	}
	raw, err := l.stream.GetMsg(ctx, pa.Sequence)
	if err != nil {
		return Ack{}, fmt.Errorf("logstream: read back tick %d: %w", pa.Sequence, err)
	}
	return Ack{Seq: pa.Sequence, Time: raw.Time}, nil
}

// RunTicker appends one tick per second, just after every second boundary
// plus grace on the log's clock, so a quiet log still seals each second on
// time. It learns the offset between the log's clock and ours from the
// stamps of its own ticks. It returns when ctx ends.
func (l *Log) RunTicker(ctx context.Context, grace time.Duration) error {
	var offset time.Duration // log clock minus local clock
	failing := false
	for {
		logNow := time.Now().Add(offset)
		next := logNow.Truncate(time.Second).Add(time.Second + grace + 2*time.Millisecond)
		if next.Sub(logNow) > time.Second {
			next = next.Add(-time.Second)
		}
		t := time.NewTimer(next.Sub(logNow))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		sent := time.Now()
		ack, err := l.Tick(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !failing {
				l.log.Warn("tick failed; seconds seal only as posts arrive", "err", err)
			}
			failing = true
			continue
		}
		if failing {
			l.log.Info("ticks resumed")
			failing = false
		}
		if !l.embedded {
			mid := sent.Add(time.Since(sent) / 2)
			offset = (offset*3 + ack.Time.Sub(mid)) / 4
		}
	}
}

// Embedded returns the embedded server, or nil on an external cluster.
func (l *Log) Embedded() *server.Server { return l.srv }

func redact(url string) string {
	var out []string
	for _, u := range strings.Split(url, ",") {
		if at := strings.LastIndex(u, "@"); at >= 0 {
			if i := strings.Index(u, "://"); i >= 0 && i < at {
				u = u[:i+3] + "***" + u[at:]
			}
		}
		out = append(out, u)
	}
	return strings.Join(out, ",")
}

// serverLogger forwards the embedded server's notices, warnings and errors to
// slog; debug and trace are dropped.
type serverLogger struct{ l *slog.Logger }

func (s serverLogger) Noticef(f string, v ...any) { s.l.Debug(fmt.Sprintf(f, v...)) }
func (s serverLogger) Warnf(f string, v ...any)   { s.l.Warn(fmt.Sprintf(f, v...)) }
func (s serverLogger) Fatalf(f string, v ...any)  { s.l.Error(fmt.Sprintf(f, v...)) }
func (s serverLogger) Errorf(f string, v ...any)  { s.l.Error(fmt.Sprintf(f, v...)) }
func (s serverLogger) Debugf(string, ...any)      {}
func (s serverLogger) Tracef(string, ...any)      {}
