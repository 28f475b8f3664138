package bucketer

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/danmaku/danmaku/internal/corpus"
)

// naiveBucket is the verbose layout the compact format is measured against.
type naiveBucket struct {
	Room     string         `json:"room"`
	Second   int64          `json:"second"`
	Messages []naiveMessage `json:"messages"`
}

type naiveMessage struct {
	ID       string `json:"id"`
	UserID   string `json:"user_id"`
	UserName string `json:"user_name"`
	Text     string `json:"text"`
	OffsetMS int    `json:"offset_ms"`
	Color    string `json:"color"`
	Mode     string `json:"mode"`
}

func gzip9(b []byte) int {
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	w.Write(b)
	w.Close()
	return buf.Len()
}

// sizes returns the gzip -9 bytes per message of the compact and the naive
// layouts over seconds of a generated room at rate messages a second.
func sizes(rate, seconds int) (compact, naive float64) {
	msgs := corpus.Generate(uint64(rate), 1764318000, seconds, rate)
	var cTotal, nTotal int
	for s := 0; s < seconds; s++ {
		sec := msgs[s*rate : (s+1)*rate]
		var es []entry
		nb := naiveBucket{Room: "lobby", Second: sec[0].Second}
		for _, m := range sec {
			es = append(es, entry{seq: m.Seq, ms: m.OffsetMS, user: m.UserID, name: m.UserName,
				msgs: []text{{text: m.Text, color: m.Color, mode: Mode(m.Mode), index: -1}}})
			nb.Messages = append(nb.Messages, naiveMessage{
				ID: MessageID(m.Seq, 0, 1), UserID: m.UserID, UserName: m.UserName, Text: m.Text,
				OffsetMS: m.OffsetMS, Color: fmt.Sprintf("#%06x", m.Color), Mode: Mode(m.Mode).String(),
			})
		}
		cTotal += gzip9(encode("lobby", sec[0].Second, 1, es, 0))
		raw, _ := json.Marshal(nb)
		nTotal += gzip9(raw)
	}
	n := float64(rate * seconds)
	return float64(cTotal) / n, float64(nTotal) / n
}

// TestCompactBeatsNaive keeps the layout honest: the columnar body must be
// smaller than gzip -9 of the verbose layout at every rate.
func TestCompactBeatsNaive(t *testing.T) {
	for _, rate := range []int{5, 20, 100} {
		c, n := sizes(rate, 60)
		t.Logf("%3d msgs/s: compact %.1f B/msg, naive gzip -9 %.1f B/msg, ratio %.2f", rate, c, n, c/n)
		if c >= n {
			t.Errorf("%d msgs/s: compact %.1f B/msg is not smaller than naive %.1f", rate, c, n)
		}
	}
}

func BenchmarkBucketSize(b *testing.B) {
	for _, rate := range []int{5, 20, 100} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) {
			var c, n float64
			for b.Loop() {
				c, n = sizes(rate, 60)
			}
			b.ReportMetric(c, "compact-B/msg")
			b.ReportMetric(n, "naive-B/msg")
			b.ReportMetric(c/n, "ratio")
		})
	}
}
