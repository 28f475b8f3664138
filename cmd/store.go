package cmd

import (
	"context"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/danmaku/danmaku/publisher"
	"github.com/danmaku/danmaku/publisher/fs"
)

// openStore opens the store a --store URL names: file:///path, or a
// directory under the data directory when the URL is empty.
func openStore(_ context.Context, raw, dataDir, s3Endpoint string, s3PathStyle bool) (publisher.Store, string, error) {
	if raw == "" {
		raw = "file://" + filepath.Join(dataDir, "store")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return nil, "", usagef("--store %q: use file:///path or s3://bucket/prefix", raw)
	}
	switch u.Scheme {
	case "file":
		path := u.Path
		if u.Host != "" && u.Host != "localhost" { // file://relative/dir
			path = u.Host + u.Path
		}
		if path == "" {
			return nil, "", usagef("--store %q: name a directory, as in file:///var/lib/danmaku/store", raw)
		}
		s, err := fs.New(path)
		if err != nil {
			return nil, "", err
		}
		return s, "file://" + s.Root(), nil
	case "s3":
		return nil, "", usagef("--store %q: the S3 store is not part of this build yet", raw)
	}
	return nil, "", usagef("--store %q: unknown scheme %q; use file:///path or s3://bucket/prefix", raw, strings.ToLower(u.Scheme))
}
