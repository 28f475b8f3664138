// Package fs is the directory store: each object is a file whose path under
// the root is its key, written create-only through a temporary file.
package fs

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/danmaku/danmaku/publisher"
)

// Store keeps objects as files under a root directory.
type Store struct {
	root string
	// synced records directories whose creation has been made durable.
	synced sync.Map
}

var _ publisher.Store = (*Store)(nil)

// New opens (creating if needed) a store rooted at dir.
func New(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("fs: empty store directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("fs: %w", err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("fs: create %s: %w", abs, err)
	}
	return &Store{root: abs}, nil
}

// Root is the directory the store writes under.
func (s *Store) Root() string { return s.root }

func (s *Store) path(key string) (string, error) {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "\\") {
		return "", fmt.Errorf("fs: bad key %q", key)
	}
	for _, part := range strings.Split(key, "/") {
		if part == "" || part == "." || part == ".." || strings.HasPrefix(part, ".tmp-") {
			return "", fmt.Errorf("fs: bad key %q", key)
		}
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// Put writes body to a temporary file, syncs it, and links it into place,
// which fails if the key exists: two writers can never replace each other's
// object. An existing object with the same bytes counts as success.
func (s *Store) Put(ctx context.Context, key string, body []byte) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	path, err := s.path(key)
	if err != nil {
		return false, err
	}
	dir := filepath.Dir(path)
	if err := s.mkdir(dir); err != nil {
		return false, fmt.Errorf("fs: put %s: %w", key, err)
	}
	tmp, err := s.writeTemp(dir, body)
	if errors.Is(err, fs.ErrNotExist) {
		// The directory went away under us (an operator cleaned up):
		// forget it and make it again.
		s.synced.Delete(dir)
		if err = s.mkdir(dir); err == nil {
			tmp, err = s.writeTemp(dir, body)
		}
	}
	if err != nil {
		return false, fmt.Errorf("fs: put %s: %w", key, err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return false, fmt.Errorf("fs: put %s: %w", key, err)
		}
		have, err := os.ReadFile(path)
		if err != nil {
			return false, fmt.Errorf("fs: put %s: read existing: %w", key, err)
		}
		if !bytes.Equal(have, body) {
			return false, fmt.Errorf("fs: put %s: %w", key, publisher.ErrConflict)
		}
		return false, nil
	}
	if err := syncDir(dir); err != nil {
		return false, fmt.Errorf("fs: put %s: %w", key, err)
	}
	return true, nil
}

func (s *Store) writeTemp(dir string, body []byte) (string, error) {
	var rnd [8]byte
	rand.Read(rnd[:])
	name := filepath.Join(dir, ".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", err
	}
	_, err = f.Write(body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// mkdir creates dir and makes each newly created level durable once.
func (s *Store) mkdir(dir string) error {
	if _, ok := s.synced.Load(dir); ok {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for d := dir; d != s.root && strings.HasPrefix(d, s.root); d = filepath.Dir(d) {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	s.synced.Store(dir, true)
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Get reads the object under key.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	path, err := s.path(key)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.ENOTDIR) {
		return nil, fmt.Errorf("fs: get %s: %w", key, publisher.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("fs: get %s: %w", key, err)
	}
	return b, nil
}

// Stat reads the object to describe it: a directory store keeps no metadata,
// so the content headers are the ones every object is served with.
func (s *Store) Stat(ctx context.Context, key string) (publisher.Info, error) {
	b, err := s.Get(ctx, key)
	if err != nil {
		return publisher.Info{}, err
	}
	sum := md5.Sum(b)
	return publisher.Info{
		Size:            int64(len(b)),
		ETag:            `"` + hex.EncodeToString(sum[:]) + `"`,
		ContentType:     publisher.ContentType,
		ContentEncoding: publisher.ContentEncoding,
		CacheControl:    publisher.CacheControl,
	}, nil
}

// List walks the directory holding prefix and calls fn with the matching
// keys in byte order.
func (s *Store) List(ctx context.Context, prefix, startAfter string, fn func(key string) bool) error {
	for _, part := range strings.Split(prefix, "/") {
		if part == ".." || part == "." || strings.Contains(part, "\\") {
			return fmt.Errorf("fs: bad prefix %q", prefix)
		}
	}
	dir := prefix[:strings.LastIndex(prefix, "/")+1]
	var found []string
	root := filepath.Join(s.root, filepath.FromSlash(dir))
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".tmp-") {
			return nil
		}
		rel, err := filepath.Rel(s.root, path)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if strings.HasPrefix(key, prefix) && key > startAfter {
			found = append(found, key)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("fs: list %s: %w", prefix, err)
	}
	sort.Strings(found)
	for _, k := range found {
		if !fn(k) {
			break
		}
	}
	return nil
}

// Delete removes the files of keys.
func (s *Store) Delete(ctx context.Context, keys []string) error {
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		path, err := s.path(key)
		if err != nil {
			return err
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("fs: delete %s: %w", key, err)
		}
	}
	return nil
}

// Replace writes body to a temporary file and renames it over key.
func (s *Store) Replace(ctx context.Context, key string, body []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	path, err := s.path(key)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	s.synced.Delete(dir)
	if err := s.mkdir(dir); err != nil {
		return fmt.Errorf("fs: replace %s: %w", key, err)
	}
	tmp, err := s.writeTemp(dir, body)
	if err != nil {
		return fmt.Errorf("fs: replace %s: %w", key, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("fs: replace %s: %w", key, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("fs: replace %s: %w", key, err)
	}
	return nil
}
