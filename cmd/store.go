package cmd

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/spf13/pflag"

	"github.com/danmaku/danmaku/publisher"
	"github.com/danmaku/danmaku/publisher/fs"
	"github.com/danmaku/danmaku/publisher/s3"
)

// storeOptions are the flags that name a store; serve, backfill, purge and
// export share them.
type storeOptions struct {
	Store       string
	S3Endpoint  string
	S3PathStyle bool
}

func (o *storeOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Store, "store", "", "where sealed buckets are kept: file:///path or s3://bucket/prefix (default: file://DATA/store)")
	fs.StringVar(&o.S3Endpoint, "s3-endpoint", "", "S3-compatible endpoint URL instead of AWS (with s3:// stores)")
	fs.BoolVar(&o.S3PathStyle, "s3-path-style", false, "address S3 buckets by path rather than by host name (most S3-compatible servers)")
}

// open opens the store the flags name: file:///path, s3://bucket/prefix, or
// a directory under dataDir when --store is empty. It checks an S3 bucket is
// reachable so a misconfiguration fails now, with a one-line error.
func (o *storeOptions) open(ctx context.Context, dataDir string) (publisher.Store, string, error) {
	raw := o.Store
	if raw == "" {
		raw = "file://" + filepath.Join(dataDir, "store")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return nil, "", usagef("--store %q: use file:///path or s3://bucket/prefix", raw)
	}
	switch strings.ToLower(u.Scheme) {
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
		if u.Host == "" {
			return nil, "", usagef("--store %q: name a bucket, as in s3://my-bucket/danmaku", raw)
		}
		client, err := newS3Client(ctx, o.S3Endpoint, o.S3PathStyle)
		if err != nil {
			return nil, "", err
		}
		s := s3.New(client, u.Host, u.Path)
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := s.Check(cctx); err != nil {
			return nil, "", err
		}
		desc := s.Describe()
		if o.S3Endpoint != "" {
			desc += " at " + o.S3Endpoint
		}
		return s, desc, nil
	}
	return nil, "", usagef("--store %q: unknown scheme %q; use file:///path or s3://bucket/prefix", raw, u.Scheme)
}

// newS3Client builds an S3 client from the SDK's default credential chain
// and standard retries. A custom endpoint gets path-style addressing if
// asked, and checksums only where required, which S3-compatible servers need.
func newS3Client(ctx context.Context, endpoint string, pathStyle bool) (*awss3.Client, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("aws config: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if endpoint != "" {
		if u, err := url.Parse(endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, usagef("--s3-endpoint %q: use a URL such as http://127.0.0.1:7070", endpoint)
		}
	}
	return awss3.NewFromConfig(cfg, func(o *awss3.Options) {
		o.UsePathStyle = pathStyle
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
	}), nil
}
