package origin_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/httpx"
	"github.com/danmaku/danmaku/internal/keys"
	"github.com/danmaku/danmaku/origin"
	"github.com/danmaku/danmaku/publisher"
)

// TestHeldRequestsArePerClient: a client holding its share is answered
// 404 not_sealed (uncacheable) at once, never a 5xx, while other clients'
// requests are still held; its slots come back when its requests end.
func TestHeldRequestsArePerClient(t *testing.T) {
	// The client is named by X-Forwarded-For from one trusted proxy, as a
	// load balancer in front would write it.
	f := newFixture(t, func(c *origin.Config) {
		c.MaxHeldPerClient = 2
		c.Hold = time.Second
		c.TrustProxyHops = 1
	})
	f.o.Announce(nil, publisher.Watermark{Sealed: now - 1, Published: now - 1})
	held := make(chan answer, 3)
	for _, client := range []string{"192.0.2.1", "192.0.2.1", "192.0.2.2"} {
		go func() { held <- f.get(t, bucketPath("a", now), "X-Forwarded-For", client) }()
	}
	time.Sleep(200 * time.Millisecond)
	a := f.get(t, bucketPath("b", now), "X-Forwarded-For", "192.0.2.1")
	wantError(t, a, http.StatusNotFound, "not_sealed")
	if a.took > 500*time.Millisecond {
		t.Errorf("the refused request waited %v", a.took)
	}
	f.o.Announce(nil, publisher.Watermark{Sealed: now})
	for i := 0; i < 3; i++ {
		if a := <-held; a.status != http.StatusOK {
			t.Errorf("held request %d: %d", i, a.status)
		}
	}
	// Released: the client may hold again.
	go func() { held <- f.get(t, bucketPath("a", now+1), "X-Forwarded-For", "192.0.2.1") }()
	time.Sleep(100 * time.Millisecond)
	f.o.Announce(nil, publisher.Watermark{Sealed: now + 1})
	if a := <-held; a.status != http.StatusOK {
		t.Errorf("after release: %d", a.status)
	}
}

func TestReadCORSAllowList(t *testing.T) {
	cors, _ := httpx.NewCORS([]string{"https://a.example", "https://b.example"})
	f := newFixture(t, func(c *origin.Config) { c.CORS = cors })
	o := bucketer.NewObject(keys.Bucket, "a", now-2, []byte(`{"v":1,"room":"a","start":`+"1764317998"+`,"seconds":1}`), 0)
	f.o.Announce([]bucketer.Object{o}, publisher.Watermark{Sealed: now - 1, Published: now - 1})
	for _, path := range []string{bucketPath("a", now-2), "/v1/rooms/a/head"} {
		ok := f.get(t, path, "Origin", "https://b.example")
		if ok.header.Get("Access-Control-Allow-Origin") != "https://b.example" || !strings.Contains(ok.header.Get("Vary"), "Origin") {
			t.Errorf("%s from an allowed origin: %v", path, ok.header)
		}
		no := f.get(t, path, "Origin", "https://evil.example")
		if no.header.Get("Access-Control-Allow-Origin") != "" || !strings.Contains(no.header.Get("Vary"), "Origin") {
			t.Errorf("%s from another origin: %v", path, no.header)
		}
	}
	if v := f.get(t, bucketPath("a", now-2)).header.Get("Vary"); v != "Accept-Encoding, Origin" {
		t.Errorf("Vary %q", v)
	}
}
