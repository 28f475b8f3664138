package cmd

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkPostToVisible measures, for a few hundred messages, the time from
// sending the POST to the 200 of a GET for the second its 202 named (the GET
// is held by the origin until the second seals), as a player polling right
// away would see it. It reports p50, p99 and max in milliseconds.
//
//	go test -run '^$' -bench PostToVisible -benchtime 1x ./cmd
func BenchmarkPostToVisible(b *testing.B) {
	for b.Loop() {
		lat := postToVisible(b, 300, 20)
		slices.Sort(lat)
		q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
		b.ReportMetric(q(0.5), "p50-ms")
		b.ReportMetric(q(0.99), "p99-ms")
		b.ReportMetric(q(1), "max-ms")
	}
}

func postToVisible(b *testing.B, n, workers int) []time.Duration {
	s := startServe(b, b.TempDir())
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/workers; i++ {
				time.Sleep(time.Duration(rand.IntN(1000)) * time.Millisecond) // any phase of the second
				start := time.Now()
				a := postMessages(b, s.base, fmt.Sprintf("room%d", w%5), []string{fmt.Sprintf("w%d m%d", w, i)}, false)
				f := get(b, bucketURL(s.base, a[0].room, a[0].second))
				if f.status != http.StatusOK {
					b.Errorf("bucket %d: %d", a[0].second, f.status)
					return
				}
				mu.Lock()
				lat = append(lat, time.Since(start))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return lat
}
