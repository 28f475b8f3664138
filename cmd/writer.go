package cmd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/logstream"
	"github.com/danmaku/danmaku/publisher"
)

// writerGroup runs one bucketer per partition this process holds a lease
// for, and restarts a bucketer that fails while the lease is held.
type writerGroup struct {
	lg    *logstream.Log
	sink  bucketer.Sink
	base  bucketer.Config // what every partition's bucketer shares
	drain time.Duration
	log   *slog.Logger

	// mu guards running.
	mu      sync.Mutex
	running map[int]*partitionWriter
}

type partitionWriter struct {
	cancel context.CancelFunc
	done   chan struct{}
	// mu guards b, the current bucketer (replaced after a failure).
	mu sync.Mutex
	b  *bucketer.Bucketer
}

// newWriterGroup runs bucketers like base (grace, cap, metrics, logger)
// over lg into sink, one per partition acquired.
func newWriterGroup(lg *logstream.Log, sink bucketer.Sink, base bucketer.Config, drain time.Duration) *writerGroup {
	return &writerGroup{lg: lg, sink: sink, base: base, drain: drain, log: base.Logger, running: map[int]*partitionWriter{}}
}

// acquire starts sealing partition p. It returns at once.
func (g *writerGroup) acquire(p int) {
	ctx, cancel := context.WithCancel(context.Background())
	pw := &partitionWriter{cancel: cancel, done: make(chan struct{})}
	g.mu.Lock()
	g.running[p] = pw
	g.mu.Unlock()
	go func() {
		defer close(pw.done)
		wait := time.Second
		for {
			cfg := g.base
			cfg.Source, cfg.Checkpoints, cfg.Sink = g.lg, g.lg, g.sink
			cfg.Partitions = []int{p}
			cfg.Logger = g.log.With("partition", p)
			b, err := bucketer.New(cfg)
			if err != nil {
				g.log.Error("cannot start the writer of a partition", "partition", p, "err", err)
				return
			}
			pw.mu.Lock()
			pw.b = b
			pw.mu.Unlock()
			started := time.Now()
			err = b.Run(ctx, g.drain)
			if ctx.Err() != nil {
				return
			}
			if time.Since(started) > time.Minute {
				wait = time.Second // it had been running well: this is a new failure, not a repeat
			}
			// The lease is still ours: start over from the checkpoint.
			g.log.Warn("the writer of a partition failed; restarting it from its checkpoint", "partition", p, "err", err, "in", wait)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(wait*2, 30*time.Second)
		}
	}()
}

// release stops sealing partition p and returns once its bucketer stopped
// (after saving its checkpoint).
func (g *writerGroup) release(p int) {
	g.mu.Lock()
	pw := g.running[p]
	delete(g.running, p)
	g.mu.Unlock()
	if pw == nil {
		return
	}
	pw.cancel()
	<-pw.done
}

// ready reports whether every partition held has caught up with the log.
func (g *writerGroup) ready() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, pw := range g.running {
		pw.mu.Lock()
		ok := pw.b != nil && pw.b.Ready()
		pw.mu.Unlock()
		if !ok {
			return false
		}
	}
	return true
}

// announcers sends every announcement to each of its members: the origin in
// this process and the other processes over NATS.
type announcers []publisher.Announcer

func (a announcers) Announce(objs []bucketer.Object, wm publisher.Watermark) {
	for _, x := range a {
		x.Announce(objs, wm)
	}
}

// instanceID names this process among writers: host, pid and a random part.
func instanceID() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, host)
	var b [3]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}
