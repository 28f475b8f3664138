package fs_test

import (
	"testing"

	"github.com/danmaku/danmaku/publisher"
	"github.com/danmaku/danmaku/publisher/fs"
	"github.com/danmaku/danmaku/publisher/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) publisher.Store {
		s, err := fs.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, storetest.Options{})
}
