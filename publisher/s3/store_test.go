package s3_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/danmaku/danmaku/internal/s3test"
	"github.com/danmaku/danmaku/publisher"
	"github.com/danmaku/danmaku/publisher/s3"
	"github.com/danmaku/danmaku/publisher/storetest"
)

func TestConformance(t *testing.T) {
	g := s3test.Start(t)
	storetest.Run(t, func(t *testing.T) publisher.Store {
		return s3.New(g.Client(), g.Bucket(t), "live/")
	}, storetest.Options{})
}

func TestCheck(t *testing.T) {
	g := s3test.Start(t)
	ctx := context.Background()
	if err := s3.New(g.Client(), g.Bucket(t), "").Check(ctx); err != nil {
		t.Errorf("existing bucket: %v", err)
	}
	err := s3.New(g.Client(), "no-such-bucket-here", "").Check(ctx)
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing bucket: %v", err)
	}
}

func TestPrefixIsTheKeyRoot(t *testing.T) {
	g := s3test.Start(t)
	bucket := g.Bucket(t)
	s := s3.New(g.Client(), bucket, "/env/prod/")
	if _, err := s.Put(context.Background(), "v1/rooms/r/buckets/1.json", []byte("x")); err != nil {
		t.Fatal(err)
	}
	// Straight from S3: the object key is the prefix plus the URL path.
	bare := s3.New(g.Client(), bucket, "")
	if b, err := bare.Get(context.Background(), "env/prod/v1/rooms/r/buckets/1.json"); err != nil || string(b) != "x" {
		t.Errorf("object under the prefix: %q, %v", b, err)
	}
}

// TestUnreachableIsAnError: a store that cannot be reached must fail, not
// report success (the SDK reports such failures with status 0).
func TestUnreachableIsAnError(t *testing.T) {
	g := s3test.Start(t)
	s := s3.New(g.Client(), g.Bucket(t), "")
	g.Stop()
	ctx := context.Background()
	if created, err := s.Put(ctx, "v1/rooms/r/buckets/1.json", []byte("x")); err == nil || created {
		t.Errorf("Put to a stopped server = %v, %v", created, err)
	}
	if err := s.Check(ctx); err == nil {
		t.Error("Check of a stopped server succeeded")
	}
	if _, err := s.Get(ctx, "v1/rooms/r/buckets/1.json"); err == nil || errors.Is(err, publisher.ErrNotFound) {
		t.Errorf("Get from a stopped server: %v", err)
	}
}
