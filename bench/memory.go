package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/danmaku/danmaku/internal/corpus"
	"github.com/danmaku/danmaku/internal/logstream"
)

// benchMemory fills the origin's rings of many rooms, every second of the
// ring span, and reads the serve process's resident memory.
func benchMemory(ctx context.Context, e *env) *section {
	s := &section{id: "memory", num: "7", title: "Memory with 10,000 active rooms and full 60-second rings"}
	rooms, fill := 10000, 75*time.Second
	if e.quick {
		rooms, fill = 200, 2*time.Second
	}
	natsAddr, err := freeAddr()
	if err != nil {
		s.err = err
		return s
	}
	// The store on tmpfs when there is one: 10,000 objects a second with
	// two fsyncs each would measure the disk, not the process.
	storeDir := filepath.Join(e.tmp, "memstore")
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "danmaku-bench-"); err == nil {
			storeDir = d
			defer os.RemoveAll(d)
		}
	}
	// Not pinned: at 10,000 objects a second the writer needs both cores.
	argv := []string{e.bin, "serve", "--nats-listen", natsAddr, "--store", "file://" + storeDir, "--ring-seconds", "60", "--anon-rate", "0"}
	srv, err := e.startServeArgv(ctx, argv)
	if err != nil {
		s.err = err
		return s
	}
	defer srv.stop()
	s.cmd(e.show(srv.argv))
	s.cmd(fmt.Sprintf("go run ./bench -only memory   # appends 1 message per room per second for %v, straight into the log at --nats-listen", fill))
	idle, _, err := rss(srv.pid())
	if err != nil {
		s.err = err
		return s
	}

	nc, err := nats.Connect("nats://"+natsAddr, nats.Name("danmaku bench"))
	if err != nil {
		s.err = err
		return s
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		s.err = err
		return s
	}
	gen := corpus.Generate(42, 0, 1, 5000)
	payloads := make([][]byte, len(gen))
	for i, m := range gen {
		payloads[i], _ = logstream.EncodePost(&logstream.Post{UserID: m.UserID, UserName: m.UserName,
			Messages: []logstream.Message{{Text: m.Text, Color: m.Color, Mode: m.Mode}}})
	}
	subjects := make([]string, rooms)
	for r := range subjects {
		subjects[r] = logstream.Subject("mem" + strconv.Itoa(r))
	}
	start := time.Now()
	const ticks = 50 // per second
	k := 0
	var pubErr error
	for t := 0; time.Since(start) < fill && ctx.Err() == nil && pubErr == nil; t++ {
		next := start.Add(time.Duration(t) * time.Second / ticks)
		time.Sleep(time.Until(next))
		lo, hi := (t%ticks)*rooms/ticks, (t%ticks+1)*rooms/ticks
		for r := lo; r < hi && pubErr == nil; r++ {
			for tries := 0; ; tries++ {
				_, err := js.PublishAsync(subjects[r], payloads[k%len(payloads)])
				if err == nil {
					break
				}
				if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) || tries == 100 {
					pubErr = err
					break
				}
				// The log is behind: wait for it rather than drop the entry.
				select {
				case <-js.PublishAsyncComplete():
				case <-time.After(100 * time.Millisecond):
				}
			}
			k++
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		pubErr = fmt.Errorf("the log did not acknowledge the appends within 30 s")
	}
	if pubErr != nil {
		s.err = pubErr
		return s
	}
	secs := time.Since(start).Seconds()
	time.Sleep(2 * time.Second) // the last seconds seal
	cur, peak, err := rss(srv.pid())
	if err != nil {
		s.err = err
		return s
	}
	inRing, _ := metric(srv.base, "danmaku_origin_rooms")
	heap, _ := metric(srv.base, "go_memstats_heap_inuse_bytes")
	sealDelayLate, _ := metric(srv.base, "danmaku_writer_seal_delay_seconds_bucket", `le="1"`)
	sealCount, _ := metric(srv.base, "danmaku_writer_seal_delay_seconds_count")
	buckets, _ := metric(srv.base, "danmaku_writer_buckets_sealed_total")
	queued, _ := metric(srv.base, "danmaku_publisher_queued_batches")

	gib := float64(1 << 30)
	what := fmt.Sprintf("RSS of danmaku serve, %d rooms with full %d-s rings", rooms, 60)
	goal := "≤ 1 GiB"
	if e.quick {
		goal = ""
	}
	s.add(what, fmt.Sprintf("%.0f MiB (peak %.0f MiB)", float64(cur)/(1<<20), float64(peak)/(1<<20)), goal, metIf(!e.quick, float64(cur) <= gib))
	s.add("per room", fmt.Sprintf("%.1f KiB (RSS above the idle %.0f MiB, ÷ rooms)", float64(cur-idle)/1024/float64(rooms), float64(idle)/(1<<20)), "", nil)
	s.add("Go heap in use", fmt.Sprintf("%.0f MiB", heap/(1<<20)), "", nil)
	s.detail(fmt.Sprintf("%d rooms, one generated message per room per second (%d appends in %.0f s, %.0f a second) appended straight into the embedded JetStream through `--nats-listen`, so that the HTTP ingest path is not the limit; the writer sealed %.0f buckets; %.0f rooms were in the origin's ring at the end; %.1f%% of seals were within 1 s of their second's end; %.0f batches were waiting for the store. The store is a directory on tmpfs, outside the process.",
		rooms, k, secs, float64(k)/secs, buckets, inRing, 100*sealDelayLate/max(sealCount, 1), queued))
	s.note("What the memory is: each room's ring holds 60 one-second buckets and 6 ten-second segments (each a gzip body of a few hundred bytes with its precomputed headers), the writer keeps each room's entries until their segment seals, and the Go heap runs up to twice its live size before a collection (GOGC=100). The origin's `--max-rooms` and `--ring-seconds` bound it, whatever the traffic.")
	return s
}
