package client

import (
	"testing"
	"time"
)

func TestPlan(t *testing.T) {
	base := cursor{catchUp: 3, maxBack: 60, freshFor: 2 * time.Second, noSegIn: -1}
	at := func(c cursor, next, nowSec, sealed int64, headAge time.Duration) cursor {
		c.next, c.nowMS, c.sealed, c.headAge = next, nowSec*1000+400, sealed, headAge
		return c
	}
	tests := []struct {
		name string
		c    cursor
		want step
	}{
		{"live: the open second", at(base, 1000, 1000, 999, time.Minute), step{kind: stepBucket, second: 1000}},
		{"live: one ahead", at(base, 1001, 1000, 999, time.Minute), step{kind: stepBucket, second: 1001}},
		{"three behind is still live", at(base, 997, 1000, 999, time.Minute), step{kind: stepBucket, second: 997}},
		{"far behind with a stale head: head first", at(base, 980, 1000, 990, 3*time.Second), step{kind: stepHead}},
		{"far behind: the segment of the next second", at(base, 980, 1000, 999, time.Second), step{kind: stepSegment, second: 980}},
		{"mid-window start still takes the segment", at(base, 983, 1000, 999, time.Second), step{kind: stepSegment, second: 980}},
		{"one second left in a window: its bucket", at(base, 989, 1000, 999, time.Second), step{kind: stepBucket, second: 989, catchUp: true}},
		{"window not sealed yet: buckets", at(base, 990, 1000, 998, time.Second), step{kind: stepBucket, second: 990, catchUp: true}},
		{"segment refused by the origin: buckets", func() cursor { c := at(base, 980, 1000, 999, time.Second); c.noSegIn = 980; return c }(), step{kind: stepBucket, second: 980, catchUp: true}},
		{"older than the cap: skip", at(base, 900, 1000, 999, time.Second), step{kind: stepSkip, second: 900, to: 940}},
		{"exactly at the cap: segment", at(base, 940, 1000, 999, time.Second), step{kind: stepSegment, second: 940}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := plan(tt.c); got != tt.want {
				t.Errorf("plan(%+v) = %+v, want %+v", tt.c, got, tt.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	lo, hi := 100*time.Millisecond, time.Second
	for attempt, ceil := range []time.Duration{100, 200, 400, 800, 1000, 1000, 1000} {
		ceil *= time.Millisecond
		if got := backoff(attempt, lo, hi, 0.999999); got > ceil || got < ceil*99/100 {
			t.Errorf("attempt %d: top of the range %v, want just under %v", attempt, got, ceil)
		}
		if got := backoff(attempt, lo, hi, 0); got != 0 {
			t.Errorf("attempt %d: bottom of the range %v, want 0", attempt, got)
		}
	}
	if got := backoff(1000, lo, hi, 0.5); got != hi/2 {
		t.Errorf("attempt 1000: %v, want %v (no overflow)", got, hi/2)
	}
}

func TestDedup(t *testing.T) {
	d := newDedup(3)
	for _, id := range []string{"1", "2", "3"} {
		if !d.add(id) {
			t.Fatalf("%s: new id reported as seen", id)
		}
	}
	if d.add("2") {
		t.Error("2: repeat reported as new")
	}
	d.add("4") // forgets 1, the oldest
	if !d.add("1") {
		t.Error("1: should have been forgotten after the window moved on")
	}
	for _, id := range []string{"3", "4", "1"} {
		if d.add(id) {
			t.Errorf("%s: recent id reported as new", id)
		}
	}
	if len(d.seen) != 3 {
		t.Errorf("remembers %d ids, want 3", len(d.seen))
	}
}
