// Package storetest is the conformance suite every store backend runs: the
// directory store and the S3 store must behave the same to the publisher,
// the origin and the CLI.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/keys"
	"github.com/danmaku/danmaku/publisher"
)

// Options tune the suite for a backend.
type Options struct {
	// ManyKeys is how many objects the batched-delete case writes; it should
	// exceed the backend's batch size (S3: 1000). If 0, 1100.
	ManyKeys int
}

// Run runs every case against stores made by open; each case gets a fresh,
// empty store.
func Run(t *testing.T, open func(t *testing.T) publisher.Store, opts Options) {
	if opts.ManyKeys == 0 {
		opts.ManyKeys = 1100
	}
	cases := []struct {
		name string
		fn   func(t *testing.T, s publisher.Store)
	}{
		{"PutCreatesWithMetadata", testPutCreates},
		{"PutIdenticalIsNotCreated", testPutIdentical},
		{"PutDifferentConflicts", testPutConflict},
		{"ConcurrentPutsOneWinner", testConcurrentPuts},
		{"NotFound", testNotFound},
		{"ListRoomRange", testList},
		{"Delete", testDelete},
		{"DeleteMany", func(t *testing.T, s publisher.Store) { testDeleteMany(t, s, opts.ManyKeys) }},
		{"Replace", testReplace},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open(t)) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// body returns a real gzipped bucket body for room at second.
func body(room string, second int64, text string) []byte {
	raw := fmt.Sprintf(`{"v":1,"room":%q,"start":%d,"seconds":1,"seq":[%d],"ms":[1],"users":[["u","n"]],"text":[%q]}`,
		room, second, second%1000+1, text)
	return bucketer.Gzip([]byte(raw))
}

func key(room string, second int64) string { return keys.Key(keys.Bucket, room, second) }

func testPutCreates(t *testing.T, s publisher.Store) {
	k, b := key("lobby", 1764318000), body("lobby", 1764318000, "hi")
	created, err := s.Put(ctx(t), k, b)
	if err != nil || !created {
		t.Fatalf("Put = %v, %v; want created", created, err)
	}
	got, err := s.Get(ctx(t), k)
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("Get = %d bytes, %v; want the %d put", len(got), err, len(b))
	}
	info, err := s.Stat(ctx(t), k)
	if err != nil {
		t.Fatal(err)
	}
	want := publisher.Info{
		Size: int64(len(b)), ETag: bucketer.ETag(b),
		ContentType: publisher.ContentType, ContentEncoding: publisher.ContentEncoding, CacheControl: publisher.CacheControl,
	}
	if info != want {
		t.Errorf("Stat = %+v\nwant %+v", info, want)
	}
}

func testPutIdentical(t *testing.T, s publisher.Store) {
	k, b := key("r", 100), body("r", 100, "same")
	if _, err := s.Put(ctx(t), k, b); err != nil {
		t.Fatal(err)
	}
	created, err := s.Put(ctx(t), k, append([]byte(nil), b...))
	if err != nil || created {
		t.Fatalf("second Put of identical bytes = %v, %v; want false, nil", created, err)
	}
}

func testPutConflict(t *testing.T, s publisher.Store) {
	k := key("r", 100)
	a, b := body("r", 100, "first"), body("r", 100, "second")
	if _, err := s.Put(ctx(t), k, a); err != nil {
		t.Fatal(err)
	}
	created, err := s.Put(ctx(t), k, b)
	if !errors.Is(err, publisher.ErrConflict) || created {
		t.Fatalf("Put of different bytes = %v, %v; want ErrConflict", created, err)
	}
	if got, _ := s.Get(ctx(t), k); !bytes.Equal(got, a) {
		t.Error("a conflicting Put changed the stored object")
	}
}

func testConcurrentPuts(t *testing.T, s publisher.Store) {
	k := key("race", 5)
	const n = 8
	var wg sync.WaitGroup
	results := make([]error, n)
	createdBy := make([]bool, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			createdBy[i], results[i] = s.Put(ctx(t), k, body("race", 5, fmt.Sprintf("writer %d", i)))
		}()
	}
	wg.Wait()
	winners := 0
	winner := -1
	for i := range results {
		switch {
		case results[i] == nil && createdBy[i]:
			winners++
			winner = i
		case errors.Is(results[i], publisher.ErrConflict):
		default:
			t.Errorf("writer %d: created %v, err %v", i, createdBy[i], results[i])
		}
	}
	if winners != 1 {
		t.Fatalf("%d writers created the object, want exactly 1", winners)
	}
	got, _ := s.Get(ctx(t), k)
	if !bytes.Equal(got, body("race", 5, fmt.Sprintf("writer %d", winner))) {
		t.Error("the stored object is not the winner's")
	}
}

func testNotFound(t *testing.T, s publisher.Store) {
	k := key("none", 1)
	if _, err := s.Get(ctx(t), k); !errors.Is(err, publisher.ErrNotFound) {
		t.Errorf("Get of a missing key: %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(ctx(t), k); !errors.Is(err, publisher.ErrNotFound) {
		t.Errorf("Stat of a missing key: %v, want ErrNotFound", err)
	}
}

func put(t *testing.T, s publisher.Store, keys ...string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(keys))
	sem := make(chan struct{}, 16)
	for _, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := s.Put(ctx(t), k, []byte(k)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func list(t *testing.T, s publisher.Store, prefix, after string, limit int) []string {
	t.Helper()
	var out []string
	err := s.List(ctx(t), prefix, after, func(k string) bool {
		out = append(out, k)
		return limit == 0 || len(out) < limit
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func testList(t *testing.T, s publisher.Store) {
	var all []string
	for sec := int64(1764318000); sec < 1764318020; sec++ {
		all = append(all, key("a", sec))
	}
	put(t, s, all...)
	put(t, s, key("ab", 1764318005), key("b", 1764318005), keys.Key(keys.Segment, "a", 1764318000))

	got := list(t, s, keys.RoomPrefix(keys.Bucket, "a"), "", 0)
	if fmt.Sprint(got) != fmt.Sprint(all) {
		t.Errorf("List(room a) =\n%v\nwant\n%v", got, all)
	}
	got = list(t, s, keys.RoomPrefix(keys.Bucket, "a"), key("a", 1764318009), 0)
	if fmt.Sprint(got) != fmt.Sprint(all[10:]) {
		t.Errorf("List after 1764318009 = %v", got)
	}
	got = list(t, s, keys.RoomPrefix(keys.Bucket, "a"), key("a", 1764318009), 3)
	if fmt.Sprint(got) != fmt.Sprint(all[10:13]) {
		t.Errorf("List stopping after 3 = %v", got)
	}
	if got := list(t, s, keys.RoomPrefix(keys.Bucket, "zzz"), "", 0); len(got) != 0 {
		t.Errorf("List of an empty room = %v", got)
	}
	if got := list(t, s, keys.RoomPrefix(keys.Segment, "a"), "", 0); len(got) != 1 {
		t.Errorf("List of segments = %v", got)
	}
}

func testDelete(t *testing.T, s publisher.Store) {
	a, b, c := key("d", 1), key("d", 2), key("d", 3)
	put(t, s, a, b, c)
	if err := s.Delete(ctx(t), []string{a, c, key("d", 99)}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{a, c} {
		if _, err := s.Get(ctx(t), k); !errors.Is(err, publisher.ErrNotFound) {
			t.Errorf("%s still there after Delete: %v", k, err)
		}
	}
	if _, err := s.Get(ctx(t), b); err != nil {
		t.Errorf("Delete removed a key it was not given: %v", err)
	}
	// A deleted key can be created again.
	if created, err := s.Put(ctx(t), a, []byte("again")); err != nil || !created {
		t.Errorf("Put after Delete = %v, %v", created, err)
	}
}

func testDeleteMany(t *testing.T, s publisher.Store, n int) {
	var ks []string
	for i := 0; i < n; i++ {
		ks = append(ks, key("many", int64(1764318000+i)))
	}
	put(t, s, ks...)
	if err := s.Delete(ctx(t), ks[:n-1]); err != nil {
		t.Fatal(err)
	}
	left := list(t, s, keys.RoomPrefix(keys.Bucket, "many"), "", 0)
	if len(left) != 1 || left[0] != ks[n-1] {
		t.Errorf("after deleting %d of %d, left %d: %v", n-1, n, len(left), left[:min(len(left), 5)])
	}
}

func testReplace(t *testing.T, s publisher.Store) {
	k := key("red", 7)
	a, b := body("red", 7, "with a bad word"), body("red", 7, "redacted")
	if _, err := s.Put(ctx(t), k, a); err != nil {
		t.Fatal(err)
	}
	if err := s.Replace(ctx(t), k, b); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx(t), k); !bytes.Equal(got, b) {
		t.Error("Replace did not replace")
	}
	info, err := s.Stat(ctx(t), k)
	if err != nil || info.ETag != bucketer.ETag(b) || info.ContentEncoding != publisher.ContentEncoding || info.CacheControl != publisher.CacheControl {
		t.Errorf("after Replace Stat = %+v, %v", info, err)
	}
	// Replace also creates.
	if err := s.Replace(ctx(t), key("red", 8), b); err != nil {
		t.Fatal(err)
	}
}
