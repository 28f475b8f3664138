package cmd

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/keys"
	"github.com/danmaku/danmaku/internal/s3test"
	"github.com/danmaku/danmaku/publisher"
)

func onS3(g *s3test.Gateway, bucket string) func(*serveOptions) {
	return func(o *serveOptions) {
		o.Store = "s3://" + bucket + "/live"
		o.S3Endpoint = g.Endpoint
		o.S3PathStyle = true
	}
}

// s3Object reads an object straight from S3, bypassing danmaku.
func s3Object(t testing.TB, g *s3test.Gateway, bucket, key string) ([]byte, *awss3.GetObjectOutput) {
	t.Helper()
	out, err := g.Client().GetObject(context.Background(), &awss3.GetObjectInput{Bucket: &bucket, Key: aws.String("live/" + key)})
	if err != nil {
		t.Fatalf("get %s from S3: %v", key, err)
	}
	defer out.Body.Close()
	b, _ := io.ReadAll(out.Body)
	return b, out
}

func TestServeOnS3(t *testing.T) {
	g := s3test.Start(t)
	g.SetEnv(t)
	bucket := g.Bucket(t)
	dir := t.TempDir()
	s := startServe(t, dir, onS3(g, bucket))

	var all []acked
	for i := 0; i < 4; i++ {
		all = append(all, postMessages(t, s.base, "s3room", []string{fmt.Sprintf("one %d", i)}, false)...)
		all = append(all, postMessages(t, s.base, "other", []string{fmt.Sprintf("a %d", i), fmt.Sprintf("b %d", i)}, true)...)
		time.Sleep(300 * time.Millisecond)
	}
	served := map[string][]byte{}
	for _, a := range all {
		url := bucketURL(s.base, a.room, a.second)
		f := get(t, url)
		checkImmutable(t, url, f)
		served[keys.Key(keys.Bucket, a.room, a.second)] = f.body
	}
	// Once published, the objects in S3 are the bytes the origin served,
	// with the headers a CDN needs to serve them straight from S3.
	last := all[len(all)-1].second
	waitPublished(t, s.base, last)
	for key, want := range served {
		got, out := s3Object(t, g, bucket, key)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: S3 holds different bytes than the origin served", key)
		}
		if aws.ToString(out.ContentEncoding) != publisher.ContentEncoding ||
			aws.ToString(out.ContentType) != publisher.ContentType ||
			aws.ToString(out.CacheControl) != publisher.CacheControl {
			t.Errorf("%s metadata: encoding %q type %q cache %q", key,
				aws.ToString(out.ContentEncoding), aws.ToString(out.ContentType), aws.ToString(out.CacheControl))
		}
		if aws.ToString(out.ETag) != bucketer.ETag(want) {
			t.Errorf("%s: S3 ETag %s, origin %s", key, aws.ToString(out.ETag), bucketer.ETag(want))
		}
	}
	// After a restart the ring is empty: the same bytes come from S3.
	s.stop()
	s2 := startServe(t, dir, onS3(g, bucket))
	for key, want := range served {
		_, room, second, _ := keys.Parse(key)
		if f := get(t, bucketURL(s2.base, room, second)); !bytes.Equal(f.body, want) {
			t.Errorf("%s after restart: %d, different bytes", key, f.status)
		}
	}
}

// metric reads one value from /metrics: the series named exactly, or, for a
// metric with a partition label, the lowest over the given partitions (all
// of them when none are given).
func metric(t testing.TB, base, name string, partitions ...int) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	want := map[string]bool{}
	for _, p := range partitions {
		want[strconv.Itoa(p)] = true
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	found, low := false, 0.0
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
		rest, ok := strings.CutPrefix(line, name+`{partition="`)
		if !ok {
			continue
		}
		label, v, _ := strings.Cut(rest, `"} `)
		if len(want) > 0 && !want[label] {
			continue
		}
		f, _ := strconv.ParseFloat(v, 64)
		if !found || f < low {
			found, low = true, f
		}
	}
	if !found {
		t.Fatalf("metric %s not found", name)
	}
	return low
}

// waitPublished waits until every partition (or the given ones) has
// published through second.
func waitPublished(t testing.TB, base string, second int64, partitions ...int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := metric(t, base, "danmaku_publisher_published_second", partitions...)
		// Every partition reports once its writer has sealed something.
		if got >= float64(second) && (len(partitions) > 0 || countSeries(t, base, "danmaku_publisher_published_second") == keys.Partitions) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("second %d not published within 60s (lowest %v)", second, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func countSeries(t testing.TB, base, name string) int {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.Count(string(b), "\n"+name+"{")
}

// TestServeSurvivesS3Outage stops the S3 server for 20 seconds while posts
// keep coming: posting keeps working, sealed seconds keep being served from
// the ring, sealed buckets spill to the spool, and once S3 is back every
// acknowledged message is in exactly one stored bucket and the spool is
// empty.
func TestServeSurvivesS3Outage(t *testing.T) {
	if testing.Short() {
		t.Skip("outage test takes 30s")
	}
	g := s3test.Start(t)
	g.SetEnv(t)
	bucket := g.Bucket(t)
	s := startServe(t, t.TempDir(), onS3(g, bucket), func(o *serveOptions) { o.QueueMemory = 1 })

	rooms := []string{"o1", "o2", "o3"}
	var mu sync.Mutex
	var all []acked
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, room := range rooms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(150 * time.Millisecond):
				}
				got := postMessages(t, s.base, room, []string{fmt.Sprintf("%s %d", room, i)}, false)
				mu.Lock()
				all = append(all, got...)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(2 * time.Second)
	mu.Lock()
	before := append([]acked(nil), all...)
	mu.Unlock()
	ringBytes := map[string][]byte{}
	for _, a := range before {
		url := bucketURL(s.base, a.room, a.second)
		if f := get(t, url); f.status == http.StatusOK {
			ringBytes[url] = f.body
		}
	}
	g.Stop()
	outageStart := time.Now().Unix()

	// During the outage, every second: buckets sealed before it and during
	// it answer 200 from the ring, with the same bytes on every read.
	ringReads := 0
	for time.Now().Unix() < outageStart+20 {
		time.Sleep(time.Second)
		mu.Lock()
		var sample []acked // four sealed before the outage, spread out
		for _, i := range []int{0, len(before) / 3, 2 * len(before) / 3, len(before) - 1} {
			sample = append(sample, before[i])
		}
		for i := len(all) - 1; i >= len(before) && len(sample) < 10; i-- {
			if all[i].second < time.Now().Unix()-1 { // sealed by now
				sample = append(sample, all[i])
			}
		}
		mu.Unlock()
		for _, a := range sample {
			url := bucketURL(s.base, a.room, a.second)
			f := get(t, url)
			if f.status != http.StatusOK || !containsID(t, f.body, a.id) {
				t.Errorf("during the outage, %s/%d (sealed %s the outage): status %d", a.room, a.second,
					map[bool]string{true: "before", false: "during"}[a.second < outageStart], f.status)
				continue
			}
			if prev, ok := ringBytes[url]; ok && !bytes.Equal(prev, f.body) {
				t.Errorf("during the outage, %s changed bytes", url)
			}
			ringBytes[url] = f.body
			ringReads++
		}
	}
	t.Logf("%d reads of sealed seconds answered 200 from the ring during the outage", ringReads)
	if n := metric(t, s.base, "danmaku_publisher_spool_batches"); n < 10 {
		t.Errorf("%v batches spooled after 20s of outage, want about 20", n)
	}
	var parts []int
	for _, r := range rooms {
		parts = append(parts, keys.Partition(r))
	}
	if pub := metric(t, s.base, "danmaku_publisher_published_second", parts...); pub >= float64(outageStart+1) {
		t.Errorf("published through %v during an outage that began at %d", pub, outageStart)
	}
	if n := metric(t, s.base, `danmaku_publisher_puts_total{result="error"}`); n == 0 {
		t.Error("no publish errors counted during the outage")
	}

	g.Restart()
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	last := all[len(all)-1].second
	waitPublished(t, s.base, last)
	if n := metric(t, s.base, "danmaku_publisher_spool_batches"); n != 0 {
		t.Errorf("spool holds %v batches after S3 came back", n)
	}

	// Straight from S3: every acknowledged message exactly once.
	seen := map[string]int{}
	for _, room := range rooms {
		var objs []string
		pages := awss3.NewListObjectsV2Paginator(g.Client(), &awss3.ListObjectsV2Input{
			Bucket: &bucket, Prefix: aws.String("live/" + keys.RoomPrefix(keys.Bucket, room))})
		for pages.HasMorePages() {
			page, err := pages.NextPage(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range page.Contents {
				objs = append(objs, strings.TrimPrefix(aws.ToString(o.Key), "live/"))
			}
		}
		for _, key := range objs {
			body, _ := s3Object(t, g, bucket, key)
			b, err := bucketer.DecodeGzip(body)
			if err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			for _, m := range b.Messages {
				seen[room+"/"+m.ID]++
			}
		}
	}
	missing := 0
	for _, a := range all {
		if n := seen[a.room+"/"+a.id]; n != 1 {
			missing++
			if missing < 5 {
				t.Errorf("message %s/%s (second %d) is stored %d times", a.room, a.id, a.second, n)
			}
		}
	}
	if len(seen) != len(all) {
		t.Errorf("S3 holds %d messages, %d were acknowledged", len(seen), len(all))
	}
	// What the ring served during the outage is what S3 holds now.
	for url, want := range ringBytes {
		key := strings.TrimPrefix(url, s.base+"/")
		if got, _ := s3Object(t, g, bucket, key); !bytes.Equal(got, want) {
			t.Errorf("%s: S3 holds other bytes than the ring served during the outage", key)
		}
	}
	t.Logf("%d messages acknowledged across a 20s outage; all stored once", len(all))
}
