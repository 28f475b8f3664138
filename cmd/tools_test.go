package cmd

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/keys"
	"github.com/danmaku/danmaku/internal/s3test"
	"github.com/danmaku/danmaku/publisher"
	fsstore "github.com/danmaku/danmaku/publisher/fs"
	"github.com/danmaku/danmaku/publisher/s3"
)

// cli runs one danmaku command line in process and returns its exit
// status and output.
func cli(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// storeState reads every object of room under a store, key → bytes.
func storeState(t testing.TB, st publisher.Store, room string) map[string][]byte {
	t.Helper()
	got := map[string][]byte{}
	for _, kind := range []keys.Kind{keys.Bucket, keys.Segment} {
		var list []string
		if err := st.List(context.Background(), keys.RoomPrefix(kind, room), "", func(k string) bool {
			list = append(list, k)
			return true
		}); err != nil {
			t.Fatal(err)
		}
		for _, k := range list {
			b, err := st.Get(context.Background(), k)
			if err != nil {
				t.Fatal(err)
			}
			got[k] = b
		}
	}
	return got
}

// seeded runs serve on S3 with a few seconds of messages in two rooms, stops
// it, and returns what it stored.
type seeded struct {
	g        *s3test.Gateway
	bucket   string
	data     string
	store    publisher.Store
	storeArg []string
	from, to int64
	acked    []acked
}

func seed(t *testing.T) *seeded {
	t.Helper()
	g := s3test.Start(t)
	g.SetEnv(t)
	sd := &seeded{g: g, bucket: g.Bucket(t), data: t.TempDir()}
	sd.storeArg = []string{"--store", "s3://" + sd.bucket + "/live", "--s3-endpoint", g.Endpoint, "--s3-path-style"}
	sd.store = s3.New(g.Client(), sd.bucket, "live")
	s := startServe(t, sd.data, onS3(g, sd.bucket))
	// Start on a segment boundary so the range holds whole segments.
	for time.Now().Unix()%10 != 0 {
		time.Sleep(50 * time.Millisecond)
	}
	sd.from = time.Now().Unix()
	for i := 0; time.Now().Unix() < sd.from+12; i++ {
		sd.acked = append(sd.acked, postMessages(t, s.base, "tools", []string{fmt.Sprintf("msg %d", i)}, false)...)
		if i%3 == 0 {
			sd.acked = append(sd.acked, postMessages(t, s.base, "tools", []string{"bad word", fmt.Sprintf("fine %d", i)}, true)...)
		}
		postMessages(t, s.base, "elsewhere", []string{"other room"}, false)
		time.Sleep(250 * time.Millisecond)
	}
	sd.to = sd.from + 19
	// Let the second segment seal, then stop: backfill reads the log of a
	// stopped serve.
	for time.Now().Unix() < sd.to+2 {
		time.Sleep(100 * time.Millisecond)
	}
	waitPublished(t, s.base, sd.to)
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	return sd
}

// TestStoreTools seeds a store once through serve and then checks backfill
// (from the log and from an export) and purge (redact, then delete) on it.
func TestStoreTools(t *testing.T) {
	sd := seed(t)
	t.Run("backfill", func(t *testing.T) { testBackfill(t, sd) })
	t.Run("purge", func(t *testing.T) { testPurgeAndRedact(t, sd) })
}

func testBackfill(t *testing.T, sd *seeded) {
	original := storeState(t, sd.store, "tools")
	if len(original) < 12 {
		t.Fatalf("only %d objects stored", len(original))
	}
	rangeArgs := []string{"--room", "tools", "--from", fmt.Sprint(sd.from), "--to", fmt.Sprint(sd.to)}

	// Export first: it is the other way back.
	export := filepath.Join(t.TempDir(), "tools.jsonl")
	code, _, stderr := cli(t, append(append([]string{"export", "--output", export}, sd.storeArg...), rangeArgs...)...)
	if code != 0 {
		t.Fatalf("export: %d %s", code, stderr)
	}
	lines, _ := os.ReadFile(export)
	if n := bytes.Count(lines, []byte("\n")); n != len(sd.acked) {
		t.Errorf("export wrote %d lines for %d acknowledged messages", n, len(sd.acked))
	}

	deleteAll := func() {
		var ks []string
		for k := range original {
			ks = append(ks, k)
		}
		if err := sd.store.Delete(context.Background(), ks); err != nil {
			t.Fatal(err)
		}
		if left := storeState(t, sd.store, "tools"); len(left) != 0 {
			t.Fatalf("%d objects left after delete", len(left))
		}
	}
	check := func(how string) {
		t.Helper()
		got := storeState(t, sd.store, "tools")
		if len(got) != len(original) {
			t.Errorf("%s rebuilt %d objects, there were %d", how, len(got), len(original))
		}
		for k, want := range original {
			if !bytes.Equal(got[k], want) {
				t.Errorf("%s: %s is not byte-identical", how, k)
			}
		}
	}

	for _, src := range []struct {
		name string
		args []string
	}{
		{"from the log", []string{"--data", sd.data}},
		{"from the export", []string{"--input", export}},
	} {
		t.Run(src.name, func(t *testing.T) {
			deleteAll()
			args := append(append(append([]string{"backfill"}, sd.storeArg...), rangeArgs...), src.args...)
			code, out, stderr := cli(t, args...)
			if code != 0 {
				t.Fatalf("backfill: %d\n%s\n%s", code, out, stderr)
			}
			if !strings.Contains(out, fmt.Sprintf("%d created", len(original))) {
				t.Errorf("summary %q does not count %d created", out, len(original))
			}
			check(src.name)
			// Again: idempotent, nothing uploaded, everything counted.
			code, out, _ = cli(t, args...)
			if code != 0 || !strings.Contains(out, " 0 created") || !strings.Contains(out, fmt.Sprintf("%d identical", len(original))) {
				t.Errorf("second backfill: %d %q", code, out)
			}
		})
	}

	// A dry run reports a conflict without touching anything.
	k := keys.Key(keys.Bucket, "tools", sd.from+3)
	if err := sd.store.Replace(context.Background(), k, bucketer.Gzip([]byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := cli(t, append(append([]string{"backfill", "--dry-run", "--data", sd.data}, sd.storeArg...), rangeArgs...)...)
	if code != 1 || !strings.Contains(out, "1 conflicts") || !strings.Contains(stderr, k) {
		t.Errorf("dry run over a conflict: %d %q %q", code, out, stderr)
	}
	if err := sd.store.Replace(context.Background(), k, original[k]); err != nil {
		t.Fatal(err)
	}
}

// cloudFront stands in for the CloudFront API endpoint and records the
// invalidations asked of it.
type cloudFront struct {
	mu    sync.Mutex
	calls []invalidationCall
}

type invalidationCall struct {
	distribution string
	ref          string
	paths        []string
}

func (c *cloudFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var dist string
	if _, err := fmt.Sscanf(r.URL.Path, "/2020-05-31/distribution/%s", &dist); err != nil || r.Method != http.MethodPost {
		http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
		return
	}
	dist = strings.TrimSuffix(dist, "/invalidation")
	var batch struct {
		CallerReference string   `xml:"CallerReference"`
		Quantity        int      `xml:"Paths>Quantity"`
		Items           []string `xml:"Paths>Items>Path"`
	}
	body, _ := io.ReadAll(r.Body)
	if err := xml.Unmarshal(body, &batch); err != nil || batch.Quantity != len(batch.Items) {
		http.Error(w, "bad batch: "+string(body), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.calls = append(c.calls, invalidationCall{distribution: dist, ref: batch.CallerReference, paths: batch.Items})
	n := len(c.calls)
	c.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("Location", "https://cloudfront.amazonaws.com/2020-05-31/distribution/"+dist+"/invalidation/I"+fmt.Sprint(n))
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Invalidation xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/"><Id>I%d</Id><Status>InProgress</Status><CreateTime>2026-11-28T00:00:00Z</CreateTime><InvalidationBatch><Paths><Quantity>0</Quantity></Paths><CallerReference>%s</CallerReference></InvalidationBatch></Invalidation>`, n, batch.CallerReference)
}

func testPurgeAndRedact(t *testing.T, sd *seeded) {
	cf := &cloudFront{}
	cfSrv := httptest.NewServer(cf)
	defer cfSrv.Close()
	s := startServe(t, sd.data, onS3(sd.g, sd.bucket), func(o *serveOptions) { o.AdminToken = "tok" })
	rangeArgs := []string{"--room", "tools", "--from", fmt.Sprint(sd.from), "--to", fmt.Sprint(sd.to)}
	common := append(append([]string{}, sd.storeArg...), "--origin", s.base, "--admin-token", "tok",
		"--cloudfront-distribution", "E2ABCDEF123456", "--cloudfront-endpoint", cfSrv.URL)

	// Redact every "bad word" of the first ten seconds.
	var bad []string
	for _, a := range sd.acked {
		if a.text == "bad word" && a.second < sd.from+10 {
			bad = append(bad, a.id)
		}
	}
	if len(bad) < 2 {
		t.Fatalf("seeded only %d bad words", len(bad))
	}
	// Read one through the origin first, so the ring holds what must change.
	victim := sd.acked[0]
	for _, a := range sd.acked {
		if a.id == bad[0] {
			victim = a
		}
	}
	before := get(t, bucketURL(s.base, "tools", victim.second))
	if !containsID(t, before.body, victim.id) {
		t.Fatal("victim not served before the purge")
	}
	redactArgs := append(append([]string{"purge", "--ids", strings.Join(bad, ",")}, common...), rangeArgs...)
	// Dry run changes nothing.
	code, out, stderr := cli(t, append(redactArgs, "--dry-run")...)
	if code != 0 || !strings.Contains(out, "nothing was changed") || len(cf.calls) != 0 {
		t.Fatalf("dry run: %d %q %q, %d invalidations", code, out, stderr, len(cf.calls))
	}
	if !bytes.Equal(storeState(t, sd.store, "tools")[keys.Key(keys.Bucket, "tools", victim.second)], before.body) {
		t.Fatal("the dry run changed the store")
	}
	code, out, stderr = cli(t, redactArgs...)
	if code != 0 {
		t.Fatalf("redact: %d %q %q", code, out, stderr)
	}
	after := storeState(t, sd.store, "tools")
	for k, gz := range after {
		b, _ := bucketer.DecodeGzip(gz)
		for _, m := range b.Messages {
			for _, id := range bad {
				if m.ID == id {
					t.Errorf("%s still holds redacted %s", k, id)
				}
			}
		}
	}
	served := get(t, bucketURL(s.base, "tools", victim.second))
	if served.status != 200 || containsID(t, served.body, victim.id) {
		t.Errorf("the origin still serves redacted %s (status %d)", victim.id, served.status)
	}
	if !bytes.Equal(served.body, after[keys.Key(keys.Bucket, "tools", victim.second)]) {
		t.Error("the origin's redacted bucket differs from the store's")
	}
	// Few objects changed: exact paths, one invalidation, a caller reference
	// naming the purge.
	if len(cf.calls) != 1 {
		t.Fatalf("%d invalidations, want 1", len(cf.calls))
	}
	call := cf.calls[0]
	if call.distribution != "E2ABCDEF123456" || !strings.HasPrefix(call.ref, fmt.Sprintf("danmaku-purge/tools/%d-%d/", sd.from, sd.to)) {
		t.Errorf("invalidation %+v", call)
	}
	if !contains(call.paths, "/"+keys.Key(keys.Bucket, "tools", victim.second)) || !contains(call.paths, "/"+keys.Key(keys.Segment, "tools", sd.from)) {
		t.Errorf("paths %v lack the victim's bucket or segment", call.paths)
	}
	for _, p := range call.paths {
		if strings.Contains(p, "*") || strings.Contains(p, "elsewhere") {
			t.Errorf("unexpected path %s", p)
		}
	}

	// Delete the whole range: many objects, so prefix wildcards.
	code, out, stderr = cli(t, append(append([]string{"purge", "--max-exact-paths", "5"}, common...), rangeArgs...)...)
	if code != 0 {
		t.Fatalf("purge: %d %q %q", code, out, stderr)
	}
	if left := storeState(t, sd.store, "tools"); len(left) != 0 {
		t.Errorf("%d objects left after the purge", len(left))
	}
	if other := storeState(t, sd.store, "elsewhere"); len(other) == 0 {
		t.Error("the purge of one room deleted another's")
	}
	empty := get(t, bucketURL(s.base, "tools", victim.second))
	if b, err := bucketer.DecodeGzip(empty.body); empty.status != 200 || err != nil || len(b.Messages) != 0 {
		t.Errorf("a purged second reads %d with %v", empty.status, err)
	}
	if len(cf.calls) != 2 {
		t.Fatalf("%d invalidations, want 2", len(cf.calls))
	}
	wild := cf.calls[1]
	if len(wild.paths) > 8 || wild.ref == call.ref {
		t.Errorf("wildcard invalidation %+v", wild)
	}
	for _, p := range wild.paths {
		if !strings.HasSuffix(p, "*") || !strings.HasPrefix(p, "/v1/rooms/tools/") {
			t.Errorf("wildcard path %s", p)
		}
	}
}

// TestPurgeReportsPartialFailure: an origin that cannot be reached does not
// stop the store and CDN steps, and the exit status says it failed.
func TestPurgeReportsPartialFailure(t *testing.T) {
	store := t.TempDir()
	st, err := fsstore.New(store)
	if err != nil {
		t.Fatal(err)
	}
	for s := int64(1764318000); s < 1764318005; s++ {
		st.Put(context.Background(), keys.Key(keys.Bucket, "p", s), []byte("x"))
	}
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	code, out, stderr := cli(t, "purge", "--store", "file://"+store, "--room", "p", "--from", "1764318000", "--to", "1764318009",
		"--origin", dead.URL, "--admin-token", "x")
	if code != 1 || !strings.Contains(out, "store: 5 of 5 objects changed") || !strings.Contains(out, "FAILED: origin") {
		t.Errorf("partial failure: %d\n%s\n%s", code, out, stderr)
	}
}

func TestToolsRefuseBadInput(t *testing.T) {
	g := s3test.Start(t)
	g.SetEnv(t)
	bucket := g.Bucket(t)
	st := s3.New(g.Client(), bucket, "live")
	key := keys.Key(keys.Bucket, "keep", 1764318000)
	st.Put(context.Background(), key, []byte("x"))
	s3args := []string{"--store", "s3://" + bucket + "/live", "--s3-endpoint", g.Endpoint, "--s3-path-style"}
	ok := []string{"--room", "keep", "--from", "1764318000", "--to", "1764318009"}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown scheme", []string{"purge", "--store", "ftp://x/y", "--room", "keep", "--from", "1", "--to", "2"}, "unknown scheme"},
		{"missing bucket", append([]string{"purge", "--store", "s3://no-such-bucket/live", "--s3-endpoint", g.Endpoint, "--s3-path-style"}, ok...), "does not exist"},
		{"bad room", append(append([]string{"purge"}, s3args...), "--room", "../etc", "--from", "1", "--to", "2"), "room"},
		{"bad range", append(append([]string{"purge"}, s3args...), "--room", "keep", "--from", "yesterday", "--to", "2"), "--from"},
		{"reversed range", append(append([]string{"purge"}, s3args...), "--room", "keep", "--from", "5", "--to", "2"), "before"},
		{"bad id", append(append(append([]string{"purge"}, s3args...), ok...), "--ids", "12,abc"), "--ids"},
		{"origin without token", append(append(append([]string{"purge"}, s3args...), ok...), "--origin", "http://x"), "admin-token"},
		{"bad distribution", append(append(append([]string{"purge"}, s3args...), ok...), "--cloudfront-distribution", "nope!"), "distribution"},
		{"backfill without room", append([]string{"backfill"}, s3args...), "--room"},
		{"export two rooms", append(append([]string{"export"}, s3args...), "--room", "a,b", "--from", "1", "--to", "2"), "one room"},
		{"backfill bad input file", append(append(append([]string{"backfill"}, s3args...), ok...), "--input", "/no/such/file"), "--input"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, stderr := cli(t, c.args...)
			if code == 0 || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 && !strings.Contains(stderr, "danmaku: ") {
				t.Errorf("code %d, stdout %q, stderr %q (want a one-line error about %q)", code, out, stderr, c.want)
			}
		})
	}
	t.Run("bad credentials", func(t *testing.T) {
		t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
		code, _, stderr := cli(t, append(append([]string{"purge"}, s3args...), ok...)...)
		if code == 0 || !strings.Contains(stderr, "denied") {
			t.Errorf("bad credentials: %d %q", code, stderr)
		}
	})
	// Nothing was half-deleted by any of them.
	if _, err := st.Get(context.Background(), key); err != nil {
		t.Errorf("the object is gone after refused commands: %v", err)
	}
}

func contains(list []string, s string) bool {
	sort.Strings(list)
	i := sort.SearchStrings(list, s)
	return i < len(list) && list[i] == s
}
