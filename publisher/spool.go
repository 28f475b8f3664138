package publisher

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/keys"
)

// queue holds sealed batches waiting for the store, in seal order: the
// oldest in memory, and once the memory budget is spent, the rest in spool
// files on disk, up to a byte limit. The spool is an overflow, not a source
// of truth: the log keeps every entry until the checkpoint passes it, so a
// restart rebuilds what the spool held and clears it.
type queue struct {
	dir             string // "" keeps everything in memory
	memMax, diskMax int64
	onChange        func(memBatches, diskBatches int, diskBytes int64)
	next            uint64 // spool file counter
	wake            chan struct{}
	mu              sync.Mutex // guards the fields below
	mem             []*bucketer.Batch
	memBytes        int64
	disk            []spooled
	diskBytes       int64
	closed          bool
	spaceWaiters    chan struct{}
}

type spooled struct {
	batch *bucketer.Batch // Objects dropped; read back from path
	path  string
	size  int64
}

func newQueue(dir string, memMax, diskMax int64, onChange func(int, int, int64)) (*queue, error) {
	q := &queue{dir: dir, memMax: memMax, diskMax: diskMax, onChange: onChange,
		wake: make(chan struct{}, 1), spaceWaiters: make(chan struct{})}
	if dir != "" {
		// Whatever an earlier run spooled is rebuilt from the log.
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("publisher: clear spool %s: %w", dir, err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("publisher: create spool %s: %w", dir, err)
		}
	}
	return q, nil
}

func batchBytes(b *bucketer.Batch) int64 {
	n := int64(64)
	for i := range b.Objects {
		n += int64(len(b.Objects[i].Body) + len(b.Objects[i].Key) + 64)
	}
	return n
}

// push adds b at the tail, in memory while the budget allows and nothing is
// spooled, else to a spool file. It blocks while the spool is full.
func (q *queue) push(ctx context.Context, b *bucketer.Batch) error {
	size := batchBytes(b)
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return errors.New("publisher: closed")
		}
		// Memory keeps order only while nothing is spooled; an empty queue
		// takes any batch, however large.
		if len(q.disk) == 0 && (len(q.mem) == 0 || q.memBytes+size <= q.memMax) {
			q.mem = append(q.mem, b)
			q.memBytes += size
			q.changedLocked()
			q.mu.Unlock()
			q.signal()
			return nil
		}
		if q.dir != "" && q.diskBytes+size <= q.diskMax {
			q.next++
			path := filepath.Join(q.dir, strconv.FormatUint(q.next, 10)+".batch")
			q.mu.Unlock()
			written, err := writeSpool(path, b)
			q.mu.Lock()
			if err != nil {
				q.mu.Unlock()
				return fmt.Errorf("publisher: spool batch through %d: %w", b.Through, err)
			}
			b.Objects = nil // on disk now; pop puts them back
			q.disk = append(q.disk, spooled{batch: b, path: path, size: written})
			q.diskBytes += written
			q.changedLocked()
			q.mu.Unlock()
			q.signal()
			return nil
		}
		wait := q.spaceWaiters
		q.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pop returns the oldest batch, waiting for one; ok is false once the queue
// is closed and drained of what is in memory.
func (q *queue) pop(ctx context.Context) (b *bucketer.Batch, ok bool, err error) {
	for {
		q.mu.Lock()
		switch {
		case len(q.mem) > 0:
			b = q.mem[0]
			q.mem[0] = nil
			q.mem = q.mem[1:]
			q.memBytes -= batchBytes(b)
			q.freedLocked()
			q.mu.Unlock()
			return b, true, nil
		case len(q.disk) > 0:
			s := q.disk[0]
			q.mu.Unlock()
			objs, err := readSpool(s.path)
			if err != nil {
				return nil, false, fmt.Errorf("publisher: read spool %s: %w", s.path, err)
			}
			os.Remove(s.path)
			q.mu.Lock()
			q.disk = q.disk[1:]
			q.diskBytes -= s.size
			q.freedLocked()
			q.mu.Unlock()
			s.batch.Objects = objs
			return s.batch, true, nil
		case q.closed:
			q.mu.Unlock()
			return nil, false, nil
		}
		q.mu.Unlock()
		select {
		case <-q.wake:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
}

// freedLocked wakes pushers waiting for space. Call with mu.
func (q *queue) freedLocked() {
	close(q.spaceWaiters)
	q.spaceWaiters = make(chan struct{})
	q.changedLocked()
}

func (q *queue) changedLocked() {
	if q.onChange != nil {
		q.onChange(len(q.mem), len(q.disk), q.diskBytes)
	}
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

// The spool file: "DMKSPOOL1\n", then per object: kind (1 byte), second
// (8), messages (4), durable (1), then room, key, etag and body, each
// length-prefixed (4 bytes, big endian).
const spoolMagic = "DMKSPOOL1\n"

func writeSpool(path string, b *bucketer.Batch) (int64, error) {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriter(f)
	w.WriteString(spoolMagic)
	var hdr [14]byte
	for i := range b.Objects {
		o := &b.Objects[i]
		hdr[0] = byte(o.Kind)
		binary.BigEndian.PutUint64(hdr[1:], uint64(o.Second))
		binary.BigEndian.PutUint32(hdr[9:], uint32(o.Messages))
		hdr[13] = 0
		if o.Durable {
			hdr[13] = 1
		}
		w.Write(hdr[:])
		for _, field := range [][]byte{[]byte(o.Room), []byte(o.Key), []byte(o.ETag), o.Body} {
			var n [4]byte
			binary.BigEndian.PutUint32(n[:], uint32(len(field)))
			w.Write(n[:])
			w.Write(field)
		}
	}
	err = w.Flush()
	var size int64
	if st, serr := f.Stat(); serr == nil {
		size = st.Size()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return 0, err
	}
	return size, nil
}

func readSpool(path string) ([]bucketer.Object, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return decodeSpool(bufio.NewReader(f))
}

// Bounds of a spool file's fields: a damaged file must not make the reader
// allocate gigabytes or upload a body under a key it does not belong to.
var spoolFieldMax = [4]uint32{keys.MaxRoomLen, 256, 256, 64 << 20} // room, key, etag, body

// decodeSpool reads the objects of a spool file and checks each is whole
// and consistent: a known kind, a valid room, and the key of its kind, room
// and second.
func decodeSpool(r io.Reader) ([]bucketer.Object, error) {
	magic := make([]byte, len(spoolMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != spoolMagic {
		return nil, errors.New("not a spool file")
	}
	var objs []bucketer.Object
	for {
		var hdr [14]byte
		if _, err := io.ReadFull(r, hdr[:]); err == io.EOF {
			return objs, nil
		} else if err != nil {
			return nil, err
		}
		o := bucketer.Object{
			Kind:     keys.Kind(hdr[0]),
			Second:   int64(binary.BigEndian.Uint64(hdr[1:])),
			Messages: int(binary.BigEndian.Uint32(hdr[9:])),
			Durable:  hdr[13] == 1,
		}
		if o.Kind != keys.Bucket && o.Kind != keys.Segment || hdr[13] > 1 || o.Second < 0 {
			return nil, fmt.Errorf("spool: object %d: bad header", len(objs))
		}
		var fields [4][]byte
		for i := range fields {
			var n [4]byte
			if _, err := io.ReadFull(r, n[:]); err != nil {
				return nil, err
			}
			size := binary.BigEndian.Uint32(n[:])
			if size > spoolFieldMax[i] {
				return nil, fmt.Errorf("spool: object %d: field %d is %d bytes, more than %d", len(objs), i, size, spoolFieldMax[i])
			}
			fields[i] = make([]byte, size)
			if _, err := io.ReadFull(r, fields[i]); err != nil {
				return nil, err
			}
		}
		o.Room, o.Key, o.ETag, o.Body = string(fields[0]), string(fields[1]), string(fields[2]), fields[3]
		if !keys.ValidRoom(o.Room) || o.Key != keys.Key(o.Kind, o.Room, o.Second) {
			return nil, fmt.Errorf("spool: object %d: key %q does not match its room and second", len(objs), o.Key)
		}
		objs = append(objs, o)
	}
}
