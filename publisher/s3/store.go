// Package s3 is the S3 store: objects under an optional prefix of a bucket,
// written create-only with If-None-Match and stored with the headers they
// are served with, so S3 can also serve them to a CDN directly.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/danmaku/danmaku/publisher"
)

// Store keeps objects in an S3 bucket.
type Store struct {
	client *awss3.Client
	bucket string
	prefix string // "" or ending in "/"
}

var _ publisher.Store = (*Store)(nil)

// New returns a store writing under prefix in bucket through client.
func New(client *awss3.Client, bucket, prefix string) *Store {
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return &Store{client: client, bucket: bucket, prefix: prefix}
}

// Check verifies the bucket exists and the credentials may use it, so that
// a misconfiguration fails at start with a clear error and not at the first
// seal.
func (s *Store) Check(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: &s.bucket})
	switch status(err) {
	case 0:
		return nil
	case http.StatusNotFound:
		return fmt.Errorf("s3: bucket %q does not exist", s.bucket)
	case http.StatusForbidden, http.StatusUnauthorized:
		return fmt.Errorf("s3: access to bucket %q denied: check the credentials and the bucket policy", s.bucket)
	}
	return fmt.Errorf("s3: bucket %q: %w", s.bucket, err)
}

// Describe names the store for logs: s3://bucket/prefix.
func (s *Store) Describe() string { return "s3://" + s.bucket + "/" + s.prefix }

// Put creates the object with If-None-Match: *, so two writers can never
// publish different bodies for one key. If the object exists S3 answers 412
// and Put reads it back to compare; a 409 (a concurrent create) is retried.
func (s *Store) Put(ctx context.Context, key string, body []byte) (bool, error) {
	for attempt := 0; ; attempt++ {
		_, err := s.client.PutObject(ctx, s.putInput(key, body, true))
		switch status(err) {
		case 0:
			return true, nil
		case http.StatusPreconditionFailed:
			have, gerr := s.Get(ctx, key)
			if errors.Is(gerr, publisher.ErrNotFound) && attempt < 3 {
				continue // deleted in between: try to create it again
			}
			if gerr != nil {
				return false, fmt.Errorf("s3: put %s: read existing: %w", key, gerr)
			}
			if !bytes.Equal(have, body) {
				return false, fmt.Errorf("s3: put %s: %w", key, publisher.ErrConflict)
			}
			return false, nil
		case http.StatusConflict:
			if attempt < 5 {
				t := time.NewTimer(time.Duration(10<<attempt) * time.Millisecond)
				select {
				case <-ctx.Done():
					t.Stop()
					return false, ctx.Err()
				case <-t.C:
				}
				continue
			}
		}
		return false, fmt.Errorf("s3: put %s: %w", key, err)
	}
}

func (s *Store) putInput(key string, body []byte, createOnly bool) *awss3.PutObjectInput {
	in := &awss3.PutObjectInput{
		Bucket:          &s.bucket,
		Key:             aws.String(s.prefix + key),
		Body:            bytes.NewReader(body),
		ContentLength:   aws.Int64(int64(len(body))),
		ContentType:     aws.String(publisher.ContentType),
		ContentEncoding: aws.String(publisher.ContentEncoding),
		CacheControl:    aws.String(publisher.CacheControl),
	}
	if createOnly {
		in.IfNoneMatch = aws.String("*")
	}
	return in
}

// Replace overwrites the object under key.
func (s *Store) Replace(ctx context.Context, key string, body []byte) error {
	if _, err := s.client.PutObject(ctx, s.putInput(key, body, false)); err != nil {
		return fmt.Errorf("s3: replace %s: %w", key, err)
	}
	return nil
}

// Get reads the object under key.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	out, err := s.client.GetObject(ctx, &awss3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)})
	if err != nil {
		if notFound(err) {
			return nil, fmt.Errorf("s3: get %s: %w", key, publisher.ErrNotFound)
		}
		return nil, fmt.Errorf("s3: get %s: %w", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("s3: get %s: %w", key, err)
	}
	return b, nil
}

// Stat heads the object under key.
func (s *Store) Stat(ctx context.Context, key string) (publisher.Info, error) {
	out, err := s.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)})
	if err != nil {
		if notFound(err) {
			return publisher.Info{}, fmt.Errorf("s3: stat %s: %w", key, publisher.ErrNotFound)
		}
		return publisher.Info{}, fmt.Errorf("s3: stat %s: %w", key, err)
	}
	return publisher.Info{
		Size:            aws.ToInt64(out.ContentLength),
		ETag:            aws.ToString(out.ETag),
		ContentType:     aws.ToString(out.ContentType),
		ContentEncoding: aws.ToString(out.ContentEncoding),
		CacheControl:    aws.ToString(out.CacheControl),
	}, nil
}

// List pages through ListObjectsV2.
func (s *Store) List(ctx context.Context, prefix, startAfter string, fn func(key string) bool) error {
	in := &awss3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.prefix + prefix)}
	if startAfter != "" {
		in.StartAfter = aws.String(s.prefix + startAfter)
	}
	pages := awss3.NewListObjectsV2Paginator(s.client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("s3: list %s: %w", prefix, err)
		}
		for _, o := range page.Contents {
			if !fn(strings.TrimPrefix(aws.ToString(o.Key), s.prefix)) {
				return nil
			}
		}
	}
	return nil
}

// maxDelete is the most keys one DeleteObjects call takes.
const maxDelete = 1000

// Delete removes keys with DeleteObjects, at most 1000 a call.
func (s *Store) Delete(ctx context.Context, keys []string) error {
	for len(keys) > 0 {
		n := min(len(keys), maxDelete)
		ids := make([]types.ObjectIdentifier, n)
		for i, k := range keys[:n] {
			ids[i] = types.ObjectIdentifier{Key: aws.String(s.prefix + k)}
		}
		out, err := s.client.DeleteObjects(ctx, &awss3.DeleteObjectsInput{
			Bucket: &s.bucket,
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return fmt.Errorf("s3: delete %d objects: %w", n, err)
		}
		if len(out.Errors) > 0 {
			var errs []error
			for _, e := range out.Errors {
				errs = append(errs, fmt.Errorf("%s: %s %s", strings.TrimPrefix(aws.ToString(e.Key), s.prefix), aws.ToString(e.Code), aws.ToString(e.Message)))
			}
			return fmt.Errorf("s3: delete: %d of %d failed: %w", len(out.Errors), n, errors.Join(errs...))
		}
		keys = keys[n:]
	}
	return nil
}

// status is the HTTP status of a failed call, 0 for no error, -1 when the
// call failed without an answer.
func status(err error) int {
	if err == nil {
		return 0
	}
	// A request that never got an answer (connection refused, timeout) is
	// also a ResponseError, with status 0: that is a failure, not success.
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() != 0 {
		return re.HTTPStatusCode()
	}
	return -1
}

func notFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) || status(err) == http.StatusNotFound {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "NoSuchKey"
}
