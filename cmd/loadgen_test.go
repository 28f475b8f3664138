package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestLoadgenAgainstServe runs a short loadgen against a real serve: it must
// count the players' requests and see every message it posted.
func TestLoadgenAgainstServe(t *testing.T) {
	s := startServe(t, t.TempDir())
	opts := &loadgenOptions{
		Base: s.base, Rooms: 2, RoomPrefix: "lgtest", Players: 4, PostRate: 10, Batch: 2, Posters: 4,
		Duration: 3 * time.Second, Warmup: 1500 * time.Millisecond, Hold: 3 * time.Second, Seed: 1,
		OriginMetrics: s.base,
	}
	res, err := runLoadgen(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests < 8 || res.ByKind["bucket"] == 0 || res.ByStatus["200"] == 0 {
		t.Errorf("requests %d by kind %v by status %v: want bucket reads answered 200", res.Requests, res.ByKind, res.ByStatus)
	}
	if res.Posts.Accepted == 0 || res.Posts.Messages != 2*res.Posts.Accepted || res.Posts.Failed != 0 {
		t.Errorf("posts %+v: want accepted batches of 2 and no failure", res.Posts)
	}
	// Every message is seen by the 2 players of its room.
	if res.Visible.Samples != 2*res.Posts.Messages || res.Missed != 0 {
		t.Errorf("post → visible %+v for %d messages, %d missed: want 2 samples each, none missed", res.Visible, res.Posts.Messages, res.Missed)
	}
	if res.Visible.P50 <= 0 || res.Visible.Max > 5000 || res.BytesPerViewer <= 0 {
		t.Errorf("latency %+v, %.0f B per viewer-second: implausible", res.Visible, res.BytesPerViewer)
	}

	// No cache in front: each of a room's 2 players asks the origin for
	// every second.
	if o := res.Origin; o == nil || o.BucketsPerRS < 1.5 || o.BucketsPerRS > 2.5 {
		t.Errorf("origin figures %+v: want about 2 bucket requests per room and second", res.Origin)
	}

	var out bytes.Buffer
	if err := res.print(&out, true); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || back["post_to_visible_ms"] == nil {
		t.Errorf("--json output %s: %v", out.String(), err)
	}
	out.Reset()
	if err := res.print(&out, false); err != nil || !strings.Contains(out.String(), "post → visible") {
		t.Errorf("table output %q: %v", out.String(), err)
	}
}

func TestLoadgenRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"loadgen", "--base", "ftp://x"},
		{"loadgen", "--rooms", "0"},
		{"loadgen", "--room-prefix", "no spaces"},
		{"loadgen", "--duration", "0s"},
	} {
		if code, _, stderr := cli(t, args...); code != 2 {
			t.Errorf("%v: exit %d (%s), want 2", args, code, stderr)
		}
	}
}
