package origin_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/keys"
	"github.com/danmaku/danmaku/origin"
	"github.com/danmaku/danmaku/publisher"
)

const token = "s3cret-admin-token"

func adminFixture(t *testing.T) *fixture {
	f := newFixture(t)
	mux := http.NewServeMux()
	f.o.Register(mux)
	f.o.RegisterAdmin(mux, token)
	f.srv.Close()
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) admin(t *testing.T, path, auth, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("admin answer Cache-Control %q", cc)
	}
	return resp.StatusCode, buf.Bytes()
}

// batchObj is a bucket with a three-message batch entry and a lone one.
func batchObj(room string, second int64) bucketer.Object {
	raw := `{"v":1,"room":"` + room + `","start":` + itoa(second) + `,"seconds":1,"seq":[40,2],"count":[3,1],"ms":[5,10],"users":[["u","n"]],"text":["a","bad","c","lone"]}`
	return bucketer.NewObject(keys.Bucket, room, second, []byte(raw), 4)
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestAdminAuth(t *testing.T) {
	f := adminFixture(t)
	for _, auth := range []string{"", "Bearer", "Bearer wrong", "Basic " + token, "bearer " + token, "Bearer " + token + "x"} {
		code, body := f.admin(t, "/admin/v1/rooms/a/drop", auth, `{"from":1,"to":2}`)
		if code != http.StatusUnauthorized || !strings.Contains(string(body), "unauthorized") {
			t.Errorf("auth %q: %d %s", auth, code, body)
		}
	}
	code, _ := f.admin(t, "/admin/v1/rooms/a/drop", "Bearer "+token, `{"from":1,"to":2}`)
	if code != http.StatusOK {
		t.Errorf("right token: %d", code)
	}
}

func TestAdminDisabledWithoutToken(t *testing.T) {
	f := newFixture(t)
	mux := http.NewServeMux()
	f.o.RegisterAdmin(mux, "")
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/admin/v1/rooms/a/drop", strings.NewReader(`{}`)))
	if rec.Code != http.StatusNotFound {
		t.Errorf("admin without a token: %d", rec.Code)
	}
}

func TestAdminBadRequests(t *testing.T) {
	f := adminFixture(t)
	for path, body := range map[string]string{
		"/admin/v1/rooms/a.b/drop": `{"from":1,"to":2}`,
		"/admin/v1/rooms/a/drop":   `{"from":5,"to":2}`,
		"/admin/v1/rooms/a/redact": `{"from":1,"to":2}`,
		"/admin/v1/rooms/b/redact": `{"from":1,"to":2,"ids":[]}`,
	} {
		code, resp := f.admin(t, path, "Bearer "+token, body)
		if code < 400 || code >= 500 {
			t.Errorf("%s %s: %d %s", path, body, code, resp)
		}
	}
	for _, body := range []string{`{"from":1,"to":2,"ids":["x"]}`, `{"from":1,"to":200000}`, `{"from":1}x`, `{"form":1,"to":2}`} {
		if code, resp := f.admin(t, "/admin/v1/rooms/a/redact", "Bearer "+token, body); code != http.StatusBadRequest {
			t.Errorf("%s: %d %s", body, code, resp)
		}
	}
}

func TestAdminRedactRewritesTheRing(t *testing.T) {
	f := adminFixture(t)
	f.o.Announce(nil, publisher.Watermark{Sealed: now - 30, Published: now - 30})
	o := batchObj("a", now-5)
	f.o.Announce([]bucketer.Object{o}, publisher.Watermark{Sealed: now - 1})
	code, body := f.admin(t, "/admin/v1/rooms/a/redact", "Bearer "+token, `{"from":1764317990,"to":1764317999,"ids":["40.1"]}`)
	if code != http.StatusOK {
		t.Fatalf("redact: %d %s", code, body)
	}
	var res origin.AdminResult
	json.Unmarshal(body, &res)
	if res.Objects != 1 || res.Messages != 1 {
		t.Errorf("result %+v", res)
	}
	a := f.get(t, bucketPath("a", now-5))
	if a.status != 200 || a.header.Get("Etag") == o.ETag {
		t.Fatalf("after redaction: %d, etag %s (was %s)", a.status, a.header.Get("Etag"), o.ETag)
	}
	b, _ := bucketer.DecodeGzip(a.body)
	var ids []string
	for _, m := range b.Messages {
		ids = append(ids, m.ID+"="+m.Text)
	}
	if strings.Join(ids, " ") != "40.0=a 40.2=c 42=lone" {
		t.Errorf("after redaction: %v", ids)
	}
}

func TestAdminDropSendsReadsToTheStore(t *testing.T) {
	f := adminFixture(t)
	f.o.Announce(nil, publisher.Watermark{Sealed: now - 30, Published: now - 30})
	o := batchObj("a", now-5)
	f.o.Announce([]bucketer.Object{o}, publisher.Watermark{Sealed: now - 1, Published: now - 1})
	// An operator rewrote the stored object (danmaku purge), then drops
	// the ring's copy: the origin must serve the store's version, and a
	// second that was purged from the store must read as empty.
	redacted, _, _ := bucketer.Redact(o.Body, map[string]bool{"40.1": true})
	f.store.objs[o.Key] = redacted
	code, body := f.admin(t, "/admin/v1/rooms/a/drop", "Bearer "+token, `{"from":1764317990,"to":1764317999}`)
	if code != http.StatusOK {
		t.Fatalf("drop: %d %s", code, body)
	}
	wantBody(t, f.get(t, bucketPath("a", now-5)), redacted)
	delete(f.store.objs, o.Key)
	f.o.Announce(nil, publisher.Watermark{Sealed: now - 1, Published: now - 1})
	code, _ = f.admin(t, "/admin/v1/rooms/a/drop", "Bearer "+token, `{"from":1764317990,"to":1764317999}`)
	if code != http.StatusOK {
		t.Fatal(code)
	}
	wantEmpty(t, f.get(t, bucketPath("a", now-5)), "a", now-5, 1)
}
