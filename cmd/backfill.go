package cmd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/keys"
	"github.com/danmaku/danmaku/internal/logstream"
	"github.com/danmaku/danmaku/publisher"
)

type backfillOptions struct {
	storeOptions
	logOptions
	rangeOptions
	capOptions
	Input     string
	DryRun    bool
	Workers   int
	SealGrace time.Duration
}

func newBackfillCommand() *cobra.Command {
	opts := &backfillOptions{}
	c := &cobra.Command{
		Use:   "backfill",
		Short: "Rebuild a range of buckets and segments from the log or an export, and upload them",
		Long: `Rebuild the buckets and segments of one or more rooms for a range of seconds
and upload them to the store. The source is the message log (the embedded log
of a stopped serve with --data, or a JetStream cluster with --nats) or a JSONL
file written by danmaku export (--input).

Sealing is a function of the log, so rebuilt objects are byte-identical to the
ones serve wrote: uploads are create-only, identical objects are skipped and
counted, and a second run uploads nothing. An object that exists with other
bytes is a conflict: it is reported, left alone, and the exit status is 1.`,
		Example: `  danmaku backfill --room lobby --from 2026-11-28T08:00:00Z --to 2026-11-28T09:00:00Z
  danmaku backfill --all-rooms --from 1795855000 --to 1795858599 --nats nats://10.0.0.5:4222 --store s3://danmaku-prod/live
  danmaku backfill --room lobby --from 1795855000 --to 1795855599 --input lobby.jsonl --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := bindEnv(c.Flags()); err != nil {
				return err
			}
			return runBackfill(c.Context(), opts, c.OutOrStdout(), c.ErrOrStderr())
		},
	}
	fs := c.Flags()
	opts.storeOptions.AddFlags(fs)
	opts.logOptions.AddFlags(fs)
	opts.rangeOptions.AddFlags(fs, true)
	fs.StringVar(&opts.Input, "input", "", "rebuild from this JSONL export (- for stdin) instead of the log")
	fs.BoolVar(&opts.DryRun, "dry-run", false, "compare with the store and report, without uploading")
	fs.IntVar(&opts.Workers, "workers", 16, "uploads in flight at once")
	fs.DurationVar(&opts.SealGrace, "seal-grace", 100*time.Millisecond, "the --seal-grace serve runs with")
	opts.capOptions.AddFlags(fs)
	addEnvHelp(fs)
	return c
}

// backfillReport counts what a backfill did.
type backfillReport struct {
	mu                                   sync.Mutex
	created, identical, conflict, failed int
	problems                             []string
}

func (r *backfillReport) add(result string, key string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch result {
	case "created":
		r.created++
	case "identical":
		r.identical++
	case "conflict":
		r.conflict++
		r.problems = append(r.problems, "conflict: "+key+" exists with different bytes; left as it is")
	default:
		r.failed++
		r.problems = append(r.problems, fmt.Sprintf("failed: %s: %v", key, err))
	}
}

func runBackfill(ctx context.Context, opts *backfillOptions, stdout, stderr io.Writer) error {
	from, to, err := opts.rangeOptions.parse()
	if err != nil {
		return err
	}
	if opts.Workers < 1 {
		return usagef("--workers must be at least 1")
	}
	if err := opts.capOptions.validate(); err != nil {
		return err
	}
	started := time.Now()
	var objs []bucketer.Object
	var notes []string
	source := "the log"
	if opts.Input != "" {
		source = opts.Input
		objs, notes, err = objectsFromExport(opts.Input, opts.Rooms, from, to)
		if err != nil {
			return err
		}
	}
	store, storeDesc, err := opts.storeOptions.open(ctx, opts.Data)
	if err != nil {
		return err
	}
	if opts.Input == "" {
		lg, err := opts.logOptions.open(ctx, "danmaku backfill")
		if err != nil {
			return err
		}
		objs, notes, err = objectsFromLog(ctx, lg, opts.Rooms, from, to, opts.SealGrace, opts.capOptions.cap())
		lg.Close()
		if err != nil {
			return err
		}
	}
	for _, n := range notes {
		fmt.Fprintln(stderr, "backfill: "+n)
	}

	rep := &backfillReport{}
	bar := newBar(stderr, int64(len(objs)), "uploading")
	if opts.DryRun {
		bar.Describe("comparing")
	}
	sem := make(chan struct{}, opts.Workers)
	var wg sync.WaitGroup
	for i := range objs {
		o := &objs[i]
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done(); bar.Add(1) }()
			rep.add(upload(ctx, store, o, opts.DryRun))
		}()
	}
	wg.Wait()
	bar.Finish()
	for i, p := range rep.problems {
		if i == 20 {
			fmt.Fprintf(stderr, "backfill: … and %d more\n", len(rep.problems)-20)
			break
		}
		fmt.Fprintln(stderr, "backfill: "+p)
	}

	rooms := "all rooms"
	if len(opts.Rooms) > 0 {
		rooms = strings.Join(opts.Rooms, ",")
	}
	name, verb := "backfill", "created"
	if opts.DryRun {
		name, verb = "backfill (dry run)", "to create"
	}
	fmt.Fprintf(stdout, "%s: %s, seconds %d..%d from %s into %s: %s: %d %s, %d identical (skipped), %d conflicts, %d failed in %s\n",
		name, rooms, from, to, source, storeDesc, plural(len(objs), "object"),
		rep.created, verb, rep.identical, rep.conflict, rep.failed, time.Since(started).Round(time.Millisecond))
	if rep.conflict > 0 || rep.failed > 0 {
		return fmt.Errorf("backfill: %d conflicts and %d failures; see above", rep.conflict, rep.failed)
	}
	return nil
}

// upload puts (or, dry, compares) one object and names what happened.
func upload(ctx context.Context, store publisher.Store, o *bucketer.Object, dry bool) (string, string, error) {
	if dry {
		have, err := store.Get(ctx, o.Key)
		switch {
		case errors.Is(err, publisher.ErrNotFound):
			return "created", o.Key, nil
		case err != nil:
			return "failed", o.Key, err
		case bytes.Equal(have, o.Body):
			return "identical", o.Key, nil
		}
		return "conflict", o.Key, nil
	}
	created, err := store.Put(ctx, o.Key, o.Body)
	switch {
	case errors.Is(err, publisher.ErrConflict):
		return "conflict", o.Key, nil
	case err != nil:
		return "failed", o.Key, err
	case created:
		return "created", o.Key, nil
	}
	return "identical", o.Key, nil
}

// touches reports whether an object overlaps [from, to].
func touches(o *bucketer.Object, from, to int64) bool {
	return o.Second <= to && o.Second+o.Kind.Seconds()-1 >= from
}

// objectsFromLog replays the log from a little before the range's first
// segment through a Sealer, the same state machine serve runs, and keeps
// the objects that touch the range.
func objectsFromLog(ctx context.Context, lg *logstream.Log, rooms []string, from, to int64, grace time.Duration, roomCap bucketer.Cap) ([]bucketer.Object, []string, error) {
	var notes []string
	last, err := lg.LastSeq(ctx)
	if err != nil {
		return nil, nil, err
	}
	if last == 0 {
		return nil, []string{"the log is empty; nothing to rebuild"}, nil
	}
	newest, err := lg.Entry(ctx, last)
	if err != nil {
		return nil, nil, err
	}
	start := keys.SegmentStart(from) - keys.SegmentSeconds
	need := keys.SegmentStart(to) + keys.SegmentSeconds - 1 // seals every object touching the range
	if newest.Time.Unix() < start {
		return nil, []string{fmt.Sprintf("the log ends at %s, before the range; nothing to rebuild", newest.Time.UTC().Format(time.RFC3339))}, nil
	}

	sealer := bucketer.NewSealer(bucketer.SealerConfig{Grace: grace, Cap: roomCap})
	var objs []bucketer.Object
	want := map[string]bool{}
	for _, r := range rooms {
		want[r] = true
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idle := time.AfterFunc(5*time.Second, cancel) // nothing more for these rooms
	first := true
	err = lg.ReadSince(rctx, time.Unix(start, 0), rooms, func(e logstream.Entry) error {
		idle.Reset(5 * time.Second)
		if first {
			first = false
			if e.Time.Unix() > keys.SegmentStart(from) {
				notes = append(notes, fmt.Sprintf("the log begins at %s; earlier seconds cannot be rebuilt from it",
					e.Time.UTC().Format(time.RFC3339)))
			}
		}
		sealed, _, _ := sealer.Add(e)
		for i := range sealed {
			o := &sealed[i]
			if touches(o, from, to) && (len(want) == 0 || want[o.Room]) {
				objs = append(objs, *o)
			}
		}
		if sealer.Sealed() >= need || e.Seq >= last || e.Pending == 0 {
			cancel()
		}
		return nil
	})
	idle.Stop()
	if err != nil && !errors.Is(err, context.Canceled) {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if s := sealer.Sealed(); s < need {
		notes = append(notes, fmt.Sprintf("the log is sealed only through %d; later seconds were not rebuilt", s))
	}
	sortObjects(objs)
	return objs, notes, nil
}

// parseExportLine reads one line of an export: a message with its room, or
// a bucket's dropped count ({"room","second","dropped"}, no id).
func parseExportLine(text []byte) (bucketer.Exported, error) {
	var m bucketer.Exported
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return m, errors.New("unexpected data after the JSON object")
	}
	if !keys.ValidRoom(m.Room) {
		return m, fmt.Errorf("room %q: %v", m.Room, keys.ErrRoom)
	}
	if m.Second < 0 || m.Second > 99_999_999_999 {
		return m, fmt.Errorf("second %d out of range", m.Second)
	}
	if m.ID == "" {
		if m.Dropped < 1 || !reflect.DeepEqual(m.Message, bucketer.Message{Second: m.Second}) {
			return m, errors.New("a line without an id must be a dropped count: {\"room\",\"second\",\"dropped\"}")
		}
		return m, nil
	}
	if m.Dropped != 0 {
		return m, errors.New("a message line has no dropped count")
	}
	if _, _, err := bucketer.ParseMessageID(m.ID); err != nil {
		return m, err
	}
	if m.OffsetMS < 0 || m.OffsetMS > 999 || m.Color > 0xFFFFFF || m.Count < 0 {
		return m, errors.New("offset_ms, color or count out of range")
	}
	return m, nil
}

func sortObjects(objs []bucketer.Object) {
	sort.Slice(objs, func(i, j int) bool { return objs[i].Key < objs[j].Key })
}

// objectsFromExport reads a JSONL export and rebuilds the objects of the
// range. A segment is rebuilt only when its whole window lies in the range,
// since the export holds nothing outside it.
func objectsFromExport(path string, rooms []string, from, to int64) ([]bucketer.Object, []string, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, fmt.Errorf("--input: %w", err)
		}
		defer f.Close()
		r = f
	}
	want := map[string]bool{}
	for _, room := range rooms {
		want[room] = true
	}
	byRoom := map[string][]bucketer.Message{}
	dropped := map[string]map[int64]int{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		m, err := parseExportLine(text)
		if err != nil {
			return nil, nil, fmt.Errorf("%s:%d: %v", path, line, err)
		}
		if (len(want) > 0 && !want[m.Room]) || m.Second < from || m.Second > to {
			continue
		}
		if m.ID == "" { // a bucket's dropped count
			if dropped[m.Room] == nil {
				dropped[m.Room] = map[int64]int{}
			}
			if dropped[m.Room][m.Second] != 0 {
				return nil, nil, fmt.Errorf("%s:%d: second %d of room %s has two dropped counts", path, line, m.Second, m.Room)
			}
			dropped[m.Room][m.Second] = m.Dropped
			continue
		}
		if seen[m.Room+"/"+m.ID] {
			return nil, nil, fmt.Errorf("%s:%d: message %s of room %s appears twice", path, line, m.ID, m.Room)
		}
		seen[m.Room+"/"+m.ID] = true
		byRoom[m.Room] = append(byRoom[m.Room], m.Message)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	whole := func(w int64) bool { return w >= from && w+keys.SegmentSeconds-1 <= to }
	var objs []bucketer.Object
	for room := range dropped {
		if _, ok := byRoom[room]; !ok {
			byRoom[room] = nil
		}
	}
	for _, room := range slices.Sorted(maps.Keys(byRoom)) {
		o, err := bucketer.ObjectsWithDropped(room, byRoom[room], dropped[room], whole)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: room %s: %w", path, room, err)
		}
		objs = append(objs, o...)
	}
	var notes []string
	if keys.SegmentStart(from) != from || keys.SegmentStart(to+1) != to+1 {
		notes = append(notes, "segments of the windows the range cuts are not rebuilt from an export; align --from and --to+1 to multiples of 10 to include them")
	}
	sortObjects(objs)
	return objs, notes, nil
}
