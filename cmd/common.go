package cmd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/pflag"

	"github.com/danmaku/danmaku/internal/keys"
	"github.com/danmaku/danmaku/internal/logstream"
	"github.com/danmaku/danmaku/publisher"
)

// rangeOptions name a time range of one or more rooms.
type rangeOptions struct {
	Rooms    []string
	AllRooms bool
	From, To string
}

func (o *rangeOptions) AddFlags(fs *pflag.FlagSet, allRooms bool) {
	fs.StringSliceVar(&o.Rooms, "room", nil, "room id (repeat or comma-separate for several)")
	if allRooms {
		fs.BoolVar(&o.AllRooms, "all-rooms", false, "every room instead of --room")
	}
	fs.StringVar(&o.From, "from", "", "first second of the range: a unix second or an RFC 3339 time such as 2026-11-28T08:00:00Z")
	fs.StringVar(&o.To, "to", "", "last second of the range, inclusive (same forms as --from)")
}

// maxRange bounds what one command covers, so a typo cannot start a scan of
// years.
const maxRange = 31 * 24 * 3600

// parse validates the range and rooms and returns the seconds.
func (o *rangeOptions) parse() (from, to int64, err error) {
	if len(o.Rooms) == 0 && !o.AllRooms {
		return 0, 0, usagef("name a room with --room")
	}
	if len(o.Rooms) > 0 && o.AllRooms {
		return 0, 0, usagef("give --room or --all-rooms, not both")
	}
	for _, r := range o.Rooms {
		if !keys.ValidRoom(r) {
			return 0, 0, usagef("--room %q: %v", r, keys.ErrRoom)
		}
	}
	if o.From == "" || o.To == "" {
		return 0, 0, usagef("give the range with --from and --to")
	}
	if from, err = parseSecond("--from", o.From); err != nil {
		return 0, 0, err
	}
	if to, err = parseSecond("--to", o.To); err != nil {
		return 0, 0, err
	}
	if to < from {
		return 0, 0, usagef("--to %d is before --from %d", to, from)
	}
	if to-from >= maxRange {
		return 0, 0, usagef("the range %d..%d is longer than 31 days; split it", from, to)
	}
	return from, to, nil
}

// parseSecond reads a unix second or an RFC 3339 time.
func parseSecond(flag, s string) (int64, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > 99_999_999_999 {
			return 0, usagef("%s %q: not a unix second", flag, s)
		}
		return n, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return 0, usagef("%s %q: use a unix second or an RFC 3339 time such as 2026-11-28T08:00:00Z", flag, s)
	}
	return t.Unix(), nil
}

// logOptions name the log for commands that read it.
type logOptions struct {
	Data string
	NATS []string
}

func (o *logOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Data, "data", "./data", "data directory of a stopped danmaku serve whose embedded log to read")
	fs.StringSliceVar(&o.NATS, "nats", nil, "URL[,URL...] of the NATS JetStream log (a cluster, or a serve started with --nats-listen)")
}

func (o *logOptions) open(ctx context.Context, name string) (*logstream.Log, error) {
	return logstream.Open(ctx, logstream.Config{URLs: o.NATS, DataDir: o.Data, Name: name, Logger: discardLogger()})
}

// newBar draws a progress bar on w (stderr), quietly when w is not a
// terminal-like writer that wants it.
func newBar(w io.Writer, total int64, what string) *progressbar.ProgressBar {
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)
}

// listRange lists the keys of room's objects of kind that touch [from, to].
func listRange(ctx context.Context, s publisher.Store, kind keys.Kind, room string, from, to int64) ([]string, error) {
	first := from
	if kind == keys.Segment {
		first = keys.SegmentStart(from)
	}
	after := ""
	if first > 0 {
		after = keys.Key(kind, room, first-1)
	}
	digits := len(strconv.FormatInt(to, 10))
	var out []string
	err := s.List(ctx, keys.RoomPrefix(kind, room), after, func(key string) bool {
		k, r, sec, err := keys.Parse(key)
		if err != nil || k != kind || r != room {
			return true // not an object of ours
		}
		if sec >= first && sec <= to {
			out = append(out, key)
		}
		// Keys sort as their seconds do while the digits are as many.
		return sec <= to || len(strconv.FormatInt(sec, 10)) < digits
	})
	return out, err
}

// discardLogger is for library logs a command does not want on screen.
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// plural writes "1 object" or "3 objects".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

func joinNonEmpty(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, ", ")
}
