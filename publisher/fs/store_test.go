package fs_test

import (
	"bytes"
	"context"
	"errors"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/danmaku/danmaku/publisher"
	"github.com/danmaku/danmaku/publisher/fs"
)

const key = "v1/rooms/lobby/buckets/1767225600.json"

func newStore(t *testing.T) *fs.Store {
	t.Helper()
	s, err := fs.New(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// leftovers lists every temporary file under the store's root.
func leftovers(t *testing.T, s *fs.Store) []string {
	t.Helper()
	var tmp []string
	err := filepath.WalkDir(s.Root(), func(path string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			tmp = append(tmp, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tmp
}

func readFile(t *testing.T, s *fs.Store, key string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.Root(), filepath.FromSlash(key)))
	if err != nil {
		t.Fatalf("read %s from disk: %v", key, err)
	}
	return b
}

func TestNew(t *testing.T) {
	t.Run("empty dir", func(t *testing.T) {
		if _, err := fs.New(""); err == nil {
			t.Error(`New("") succeeded`)
		}
	})
	t.Run("creates nested dir", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a", "b", "c")
		s, err := fs.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			t.Errorf("New did not create %s: %v", dir, err)
		}
		if s.Root() != dir {
			t.Errorf("Root() = %q, want %q", s.Root(), dir)
		}
	})
	t.Run("relative dir is made absolute", func(t *testing.T) {
		dir := t.TempDir()
		t.Chdir(dir)
		s, err := fs.New("rel")
		if err != nil {
			t.Fatal(err)
		}
		if !filepath.IsAbs(s.Root()) || s.Root() != filepath.Join(dir, "rel") {
			t.Errorf("Root() = %q, want %q", s.Root(), filepath.Join(dir, "rel"))
		}
	})
	t.Run("existing dir keeps its objects", func(t *testing.T) {
		dir := t.TempDir()
		s1, err := fs.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s1.Put(t.Context(), key, []byte("one")); err != nil {
			t.Fatal(err)
		}
		s2, err := fs.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := s2.Get(t.Context(), key); err != nil || string(got) != "one" {
			t.Errorf("Get after reopening = %q, %v; want one", got, err)
		}
	})
	t.Run("root is a file", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := fs.New(f); err == nil {
			t.Error("New on a regular file succeeded")
		}
	})
}

func TestPutGet(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	body := []byte("\x1f\x8b\x08\x00 first body")

	if _, err := s.Get(ctx, key); !errors.Is(err, publisher.ErrNotFound) {
		t.Fatalf("Get before Put: %v, want ErrNotFound", err)
	}

	created, err := s.Put(ctx, key, body)
	if err != nil || !created {
		t.Fatalf("first Put = %v, %v; want true, nil", created, err)
	}
	if got, err := s.Get(ctx, key); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("Get = %q, %v; want %q", got, err, body)
	}
	if got := readFile(t, s, key); !bytes.Equal(got, body) {
		t.Errorf("file holds %q, want %q", got, body)
	}

	t.Run("identical again", func(t *testing.T) {
		created, err := s.Put(ctx, key, bytes.Clone(body))
		if err != nil || created {
			t.Fatalf("identical Put = %v, %v; want false, nil", created, err)
		}
	})
	t.Run("different bytes", func(t *testing.T) {
		created, err := s.Put(ctx, key, []byte("second body"))
		if !errors.Is(err, publisher.ErrConflict) || created {
			t.Fatalf("conflicting Put = %v, %v; want false, ErrConflict", created, err)
		}
		if got, err := s.Get(ctx, key); err != nil || !bytes.Equal(got, body) {
			t.Errorf("after a conflict Get = %q, %v; want the original %q", got, err, body)
		}
	})
	t.Run("prefix of the bytes", func(t *testing.T) {
		if _, err := s.Put(ctx, key, body[:len(body)-1]); !errors.Is(err, publisher.ErrConflict) {
			t.Errorf("Put of a prefix: %v, want ErrConflict", err)
		}
	})
	t.Run("longer bytes", func(t *testing.T) {
		if _, err := s.Put(ctx, key, append(bytes.Clone(body), 'x')); !errors.Is(err, publisher.ErrConflict) {
			t.Errorf("Put of a longer body: %v, want ErrConflict", err)
		}
	})
	t.Run("empty bytes", func(t *testing.T) {
		if _, err := s.Put(ctx, key, nil); !errors.Is(err, publisher.ErrConflict) {
			t.Errorf("Put of an empty body: %v, want ErrConflict", err)
		}
	})
	t.Run("other key is separate", func(t *testing.T) {
		other := "v1/rooms/lobby/buckets/1767225601.json"
		if _, err := s.Get(ctx, other); !errors.Is(err, publisher.ErrNotFound) {
			t.Errorf("Get of another key: %v, want ErrNotFound", err)
		}
		if created, err := s.Put(ctx, other, []byte("second body")); err != nil || !created {
			t.Errorf("Put of another key = %v, %v; want true, nil", created, err)
		}
	})
	if tmp := leftovers(t, s); len(tmp) != 0 {
		t.Errorf("temporary files left behind: %v", tmp)
	}
	if got := readFile(t, s, key); !bytes.Equal(got, body) {
		t.Errorf("file holds %q at the end, want %q", got, body)
	}
}

func TestPutEmptyBody(t *testing.T) {
	s := newStore(t)
	created, err := s.Put(t.Context(), key, nil)
	if err != nil || !created {
		t.Fatalf("Put of an empty body = %v, %v; want true, nil", created, err)
	}
	if got, err := s.Get(t.Context(), key); err != nil || len(got) != 0 {
		t.Errorf("Get = %q, %v; want an empty body", got, err)
	}
	if created, err := s.Put(t.Context(), key, []byte{}); err != nil || created {
		t.Errorf("second empty Put = %v, %v; want false, nil", created, err)
	}
}

func TestNoTemporaryFilesLeft(t *testing.T) {
	tests := []struct {
		name string
		puts [][]byte
	}{
		{"created", [][]byte{[]byte("a")}},
		{"identical", [][]byte{[]byte("a"), []byte("a")}},
		{"conflict", [][]byte{[]byte("a"), []byte("b")}},
		{"many", [][]byte{[]byte("a"), []byte("a"), []byte("b"), []byte("a"), []byte("c")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			for _, b := range tt.puts {
				s.Put(t.Context(), key, b)
			}
			if tmp := leftovers(t, s); len(tmp) != 0 {
				t.Errorf("temporary files left behind: %v", tmp)
			}
			dir := filepath.Dir(filepath.Join(s.Root(), filepath.FromSlash(key)))
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != 1 || ents[0].Name() != filepath.Base(key) {
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				t.Errorf("directory holds %v, want only %s", names, filepath.Base(key))
			}
			if got := readFile(t, s, key); string(got) != string(tt.puts[0]) {
				t.Errorf("file holds %q, want the first body %q", got, tt.puts[0])
			}
		})
	}
}

func TestBadKeys(t *testing.T) {
	tests := []struct {
		name string
		key  string
	}{
		{"empty", ""},
		{"leading slash", "/v1/rooms/r/buckets/1.json"},
		{"only slash", "/"},
		{"dot dot", "../escape.json"},
		{"dot dot inside", "v1/rooms/../../../escape.json"},
		{"dot dot last", "v1/rooms/.."},
		{"only dot dot", ".."},
		{"dot", "./v1/x.json"},
		{"dot inside", "v1/./x.json"},
		{"only dot", "."},
		{"empty segment", "v1//x.json"},
		{"trailing slash", "v1/rooms/r/"},
		{"backslash", `v1\rooms\r.json`},
		{"backslash dot dot", `..\escape.json`},
		{"tmp element", "v1/rooms/r/.tmp-0123456789abcdef"},
		{"tmp directory", "v1/.tmp-x/y.json"},
		{"bare tmp", ".tmp-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			created, err := s.Put(t.Context(), tt.key, []byte("x"))
			if err == nil || created {
				t.Errorf("Put(%q) = %v, %v; want an error", tt.key, created, err)
			}
			if errors.Is(err, publisher.ErrConflict) {
				t.Errorf("Put(%q) = %v, a bad key is not a conflict", tt.key, err)
			}
			got, err := s.Get(t.Context(), tt.key)
			if err == nil {
				t.Errorf("Get(%q) = %q, nil; want an error", tt.key, got)
			}
			if errors.Is(err, publisher.ErrNotFound) {
				t.Errorf("Get(%q) = %v; a bad key is refused, not looked up", tt.key, err)
			}
			// Nothing was written anywhere, inside the root or next to it.
			var files []string
			filepath.WalkDir(filepath.Dir(s.Root()), func(path string, d iofs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					files = append(files, path)
				}
				return nil
			})
			if len(files) != 0 {
				t.Errorf("Put(%q) wrote %v", tt.key, files)
			}
		})
	}
}

func TestGetDoesNotEscapeRoot(t *testing.T) {
	parent := t.TempDir()
	if err := os.WriteFile(filepath.Join(parent, "secret"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := fs.New(filepath.Join(parent, "store"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"../secret", "v1/../../secret", filepath.Join(parent, "secret")} {
		if b, err := s.Get(t.Context(), k); err == nil {
			t.Errorf("Get(%q) = %q; it read outside the root", k, b)
		}
	}
}

func TestGetDirectoryIsNotFound(t *testing.T) {
	s := newStore(t)
	if _, err := s.Put(t.Context(), key, []byte("x")); err != nil {
		t.Fatal(err)
	}
	// "v1/rooms/lobby" is a directory on disk but no object, as in S3.
	_, err := s.Get(t.Context(), "v1/rooms/lobby")
	if err != nil && !errors.Is(err, publisher.ErrNotFound) {
		t.Fatalf("Get of a directory: %v, want ErrNotFound", err)
	}
	if err == nil {
		t.Fatal("Get of a directory succeeded")
	}
}

func TestCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := newStore(t)
	created, err := s.Put(ctx, key, []byte("x"))
	if !errors.Is(err, context.Canceled) || created {
		t.Errorf("Put with a cancelled context = %v, %v; want false, context.Canceled", created, err)
	}
	if _, err := s.Get(t.Context(), key); !errors.Is(err, publisher.ErrNotFound) {
		t.Errorf("after a cancelled Put, Get: %v, want ErrNotFound", err)
	}
	if _, err := s.Put(t.Context(), key, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Get(ctx, key); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a cancelled context = %q, %v; want context.Canceled", b, err)
	}
}

func TestConcurrentSameBytes(t *testing.T) {
	s := newStore(t)
	body := bytes.Repeat([]byte("same bytes "), 10000) // big enough to take a while to write
	const n = 64
	var created [n]bool
	var errs [n]error
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			created[i], errs[i] = s.Put(context.Background(), key, bytes.Clone(body))
		})
	}
	close(start)
	wg.Wait()
	winners := 0
	for i := range n {
		if errs[i] != nil {
			t.Errorf("Put %d: %v", i, errs[i])
		}
		if created[i] {
			winners++
		}
	}
	if winners != 1 {
		t.Errorf("%d Puts report created, want exactly 1", winners)
	}
	if got := readFile(t, s, key); !bytes.Equal(got, body) {
		t.Errorf("file holds %d bytes, not the body of %d", len(got), len(body))
	}
	if tmp := leftovers(t, s); len(tmp) != 0 {
		t.Errorf("temporary files left behind: %v", tmp)
	}
}

func TestConcurrentDifferentBytes(t *testing.T) {
	s := newStore(t)
	const n = 64
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = bytes.Repeat([]byte("body "+strconv.Itoa(i)+" "), 5000)
	}
	var created [n]bool
	var errs [n]error
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			created[i], errs[i] = s.Put(context.Background(), key, bodies[i])
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i := range n {
		switch {
		case created[i] && errs[i] == nil:
			if winner >= 0 {
				t.Errorf("Puts %d and %d both report created", winner, i)
			}
			winner = i
		case errors.Is(errs[i], publisher.ErrConflict) && !created[i]:
		default:
			t.Errorf("Put %d = %v, %v; want created or ErrConflict", i, created[i], errs[i])
		}
	}
	if winner < 0 {
		t.Fatal("no Put created the object")
	}
	if got, err := s.Get(context.Background(), key); err != nil || !bytes.Equal(got, bodies[winner]) {
		t.Errorf("Get returns %d bytes (%v), not the winner's body", len(got), err)
	}
	if tmp := leftovers(t, s); len(tmp) != 0 {
		t.Errorf("temporary files left behind: %v", tmp)
	}
}

func TestConcurrentManyKeys(t *testing.T) {
	s := newStore(t)
	const rooms, seconds = 8, 16
	var wg sync.WaitGroup
	errs := make(chan error, rooms*seconds*2)
	for r := range rooms {
		for sec := range seconds {
			for range 2 { // each object put twice at once, as two writers would
				wg.Go(func() {
					k := "v1/rooms/room" + strconv.Itoa(r) + "/buckets/" + strconv.Itoa(1000+sec) + ".json"
					if _, err := s.Put(context.Background(), k, []byte(k)); err != nil {
						errs <- err
					}
				})
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for r := range rooms {
		for sec := range seconds {
			k := "v1/rooms/room" + strconv.Itoa(r) + "/buckets/" + strconv.Itoa(1000+sec) + ".json"
			if got, err := s.Get(context.Background(), k); err != nil || string(got) != k {
				t.Errorf("Get(%s) = %q, %v", k, got, err)
			}
		}
	}
}

// A directory removed from under the store (an operator clearing a room by
// hand) must not make later Puts into it fail.
func TestPutAfterDirectoryRemoved(t *testing.T) {
	s := newStore(t)
	if _, err := s.Put(t.Context(), "v1/rooms/r/buckets/1.json", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(s.Root(), "v1", "rooms", "r")); err != nil {
		t.Fatal(err)
	}
	created, err := s.Put(t.Context(), "v1/rooms/r/buckets/2.json", []byte("b"))
	if err != nil {
		t.Fatalf("Put after the directory was removed: %v", err)
	}
	if !created {
		t.Errorf("Put after the directory was removed = false, nil; want created")
	}
}
