package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/corpus"
)

// The layouts the bucket format is measured against, all built from the
// same generated messages and compressed by the same gzip (best
// compression, as the writer stores buckets), one object per second.

// naiveBucket is the verbose layout: one JSON object per message with long
// keys, the color as "#rrggbb" and the mode as a word.
type naiveBucket struct {
	Room     string         `json:"room"`
	Second   int64          `json:"second"`
	Messages []naiveMessage `json:"messages"`
}

type naiveMessage struct {
	ID          string `json:"id"`
	UserID      string `json:"user_id"`
	UserName    string `json:"user_name"`
	Text        string `json:"text"`
	TimestampMS int64  `json:"timestamp_ms"`
	Color       string `json:"color"`
	Mode        string `json:"mode"`
}

func naiveJSON(room string, second int64, msgs []corpus.Message) []byte {
	nb := naiveBucket{Room: room, Second: second, Messages: []naiveMessage{}}
	for _, m := range msgs {
		nb.Messages = append(nb.Messages, naiveMessage{
			ID: strconv.FormatUint(m.Seq, 10), UserID: m.UserID, UserName: m.UserName, Text: m.Text,
			TimestampMS: m.Second*1000 + int64(m.OffsetMS), Color: fmt.Sprintf("#%06x", m.Color),
			Mode: bucketer.Mode(m.Mode).String(),
		})
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(nb)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// bilibiliMode maps scroll, top and bottom to Bilibili's modes 1, 5 and 4.
var bilibiliMode = [...]uint64{1, 5, 4}

// bilibiliProto is Bilibili's DmSegMobileReply: repeated DanmakuElem elems
// = 1, each with id = 1 (int64), progress = 2 (int32, ms), mode = 3,
// fontsize = 4, color = 5 (uint32), midHash = 6 (string), content = 7,
// ctime = 8 (int64), weight = 9 and idStr = 12, per Bilibili's public
// dm.proto. Zero values are left out, as proto3 does.
func bilibiliProto(msgs []corpus.Message, start int64) []byte {
	var out, el []byte
	for _, m := range msgs {
		el = el[:0]
		el = protowire.AppendTag(el, 1, protowire.VarintType)
		el = protowire.AppendVarint(el, m.Seq)
		if p := (m.Second-start)*1000 + int64(m.OffsetMS); p != 0 {
			el = protowire.AppendTag(el, 2, protowire.VarintType)
			el = protowire.AppendVarint(el, uint64(p))
		}
		el = protowire.AppendTag(el, 3, protowire.VarintType)
		el = protowire.AppendVarint(el, bilibiliMode[m.Mode])
		el = protowire.AppendTag(el, 4, protowire.VarintType)
		el = protowire.AppendVarint(el, 25)
		el = protowire.AppendTag(el, 5, protowire.VarintType)
		el = protowire.AppendVarint(el, uint64(m.Color))
		el = protowire.AppendTag(el, 6, protowire.BytesType)
		el = protowire.AppendString(el, midHash(m.UserID))
		el = protowire.AppendTag(el, 7, protowire.BytesType)
		el = protowire.AppendString(el, m.Text)
		el = protowire.AppendTag(el, 8, protowire.VarintType)
		el = protowire.AppendVarint(el, uint64(m.Second))
		el = protowire.AppendTag(el, 9, protowire.VarintType)
		el = protowire.AppendVarint(el, 10)
		el = protowire.AppendTag(el, 12, protowire.BytesType)
		el = protowire.AppendString(el, strconv.FormatUint(m.Seq, 10))
		out = protowire.AppendTag(out, 1, protowire.BytesType)
		out = protowire.AppendBytes(out, el)
	}
	return out
}

// midHash is Bilibili's sender hash: the CRC32 of the user id in 8 hex digits.
func midHash(uid string) string { return fmt.Sprintf("%08x", crc32.ChecksumIEEE([]byte(uid))) }

// ours encodes msgs as the writer does; transform, if set, changes each
// message first (for the breakdown).
func ours(room string, second int64, msgs []corpus.Message, transform func(*bucketer.Message)) []byte {
	b := &bucketer.Body{Room: room, Start: second, Seconds: 1}
	for _, m := range msgs {
		bm := bucketer.Message{
			ID: bucketer.MessageID(m.Seq, 0, 1), Second: m.Second, OffsetMS: m.OffsetMS,
			UserID: m.UserID, UserName: m.UserName, Text: m.Text, Color: m.Color, Mode: bucketer.Mode(m.Mode),
		}
		if transform != nil {
			transform(&bm)
		}
		b.Messages = append(b.Messages, bm)
	}
	raw, err := bucketer.Encode(b)
	if err != nil {
		panic(err)
	}
	return raw
}

var zstdEnc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithEncoderCRC(false))

func zstdSize(b []byte) int { return len(zstdEnc.EncodeAll(b, nil)) }

func brotliSize(b []byte) int {
	var buf bytes.Buffer
	w := brotli.NewWriterLevel(&buf, brotli.BestCompression)
	w.Write(b)
	w.Close()
	return buf.Len()
}

// sizeResult is bytes per message of each layout at one rate.
type sizeResult struct {
	rate                                      int
	ours, naive, bili, oursZstd, oursBrotli   float64
	oursRaw, naiveRaw, biliRaw                float64
	oursNoText, oursNoNames, oursBiliContent  float64
	contentFloor, emptyBucket, oursEmptyOther float64
}

func measureSizes(rate, seconds int) sizeResult {
	const room, start = "lobby", 1764318000
	msgs := corpus.Generate(uint64(rate), start, seconds, rate)
	r := sizeResult{rate: rate}
	gz := func(b []byte) float64 { return float64(len(bucketer.Gzip(b))) }
	for s := 0; s < seconds; s++ {
		sec := msgs[s*rate : (s+1)*rate]
		second := int64(start + s)
		o := ours(room, second, sec, nil)
		n := naiveJSON(room, second, sec)
		p := bilibiliProto(sec, second)
		r.ours += gz(o)
		r.naive += gz(n)
		r.bili += gz(p)
		r.oursZstd += float64(zstdSize(o))
		r.oursBrotli += float64(brotliSize(o))
		r.oursRaw += float64(len(o))
		r.naiveRaw += float64(len(n))
		r.biliRaw += float64(len(p))
		r.oursNoText += gz(ours(room, second, sec, func(m *bucketer.Message) { m.Text = "x" }))
		r.oursNoNames += gz(ours(room, second, sec, func(m *bucketer.Message) { m.UserName = "" }))
		r.oursBiliContent += gz(ours(room, second, sec, func(m *bucketer.Message) { m.UserID, m.UserName = midHash(m.UserID), "" }))
		// The content alone, with no structure at all: every text, user id
		// and name once, newline-separated, gzipped the same way.
		var c strings.Builder
		seen := map[string]bool{}
		for _, m := range sec {
			c.WriteString(m.Text)
			c.WriteByte('\n')
			if !seen[m.UserID] {
				seen[m.UserID] = true
				c.WriteString(m.UserID + "\n" + m.UserName + "\n")
			}
		}
		r.contentFloor += gz([]byte(c.String()))
		r.emptyBucket += gz(ours(room, second, nil, nil))
	}
	total := float64(rate * seconds)
	for _, f := range []*float64{&r.ours, &r.naive, &r.bili, &r.oursZstd, &r.oursBrotli, &r.oursRaw, &r.naiveRaw, &r.biliRaw,
		&r.oursNoText, &r.oursNoNames, &r.oursBiliContent, &r.contentFloor} {
		*f /= total
	}
	r.emptyBucket /= float64(seconds) // bytes per object, not per message
	return r
}

func benchSize(_ context.Context, e *env) *section {
	s := &section{id: "size", num: "2", title: "Bytes per message: the bucket format against naive JSON and Bilibili's protobuf"}
	s.cmd("go run ./bench -only size")
	var rows []string
	var at20 sizeResult
	for _, rate := range []int{5, 20, 100} {
		r := measureSizes(rate, 60)
		if rate == 20 {
			at20 = r
		}
		rows = append(rows, fmt.Sprintf("| %d | %.1f | %.1f | %.1f | **%.2f×** | **%.2f×** | %.1f | %.1f | %.0f / %.0f / %.0f |",
			rate, r.ours, r.naive, r.bili, r.ours/r.naive, r.ours/r.bili, r.oursZstd, r.oursBrotli, r.oursRaw, r.naiveRaw, r.biliRaw))
		s.add(fmt.Sprintf("ours ÷ naive gzip at %d msgs/s", rate), fmt.Sprintf("%.2f× (%.1f vs %.1f B/msg)", r.ours/r.naive, r.ours, r.naive), goalIf(rate == 20, "≤ 0.6×"), metIf(rate == 20, r.ours/r.naive <= 0.6))
		s.add(fmt.Sprintf("ours ÷ Bilibili protobuf+gzip at %d msgs/s", rate), fmt.Sprintf("%.2f× (%.1f vs %.1f B/msg)", r.ours/r.bili, r.ours, r.bili), goalIf(rate == 20, "≤ 1.0×"), metIf(rate == 20, r.ours/r.bili <= 1.0))
	}
	s.detail("Bytes per message, each second of a 60-second generated room (`internal/corpus`, seeded by the rate) " +
		"stored as its own object, gzip at best compression for every layout (the writer's own `bucketer.Gzip`), zstd and brotli at their best levels for reference:\n\n" +
		"| msgs/s | ours (gzip) | naive JSON (gzip) | Bilibili protobuf (gzip) | ours ÷ naive | ours ÷ Bilibili | ours (zstd) | ours (brotli) | raw bytes/msg: ours / naive / Bilibili |\n" +
		"| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n" + strings.Join(rows, "\n"))
	r := at20
	s.detail(fmt.Sprintf("Where the bytes go at 20 msgs/s (gzip, bytes per message):\n\n"+
		"| variant | B/msg | ÷ naive |\n| --- | --- | --- |\n"+
		"| ours | %.1f | %.2f× |\n"+
		"| ours, every text replaced by `x` | %.1f | %.2f× |\n"+
		"| ours, no user names | %.1f | %.2f× |\n"+
		"| ours with Bilibili's content (8-hex hash for the user, no name) | %.1f | %.2f× |\n"+
		"| **content alone**: texts, user ids and names newline-separated, no structure | %.1f | %.2f× |\n"+
		"| Bilibili protobuf | %.1f | %.2f× |\n"+
		"| naive JSON | %.1f | 1.00× |\n\n"+
		"An empty bucket is %.0f bytes gzipped (gzip's 18-byte header and trailer, the deflate block, `v`, `room`, `start`, `seconds`).",
		r.ours, r.ours/r.naive, r.oursNoText, r.oursNoText/r.naive, r.oursNoNames, r.oursNoNames/r.naive,
		r.oursBiliContent, r.oursBiliContent/r.naive, r.contentFloor, r.contentFloor/r.naive, r.bili, r.bili/r.naive, r.naive, r.emptyBucket))
	s.note("The naive layout: `{\"room\":\"lobby\",\"second\":S,\"messages\":[{\"id\":\"1234\",\"user_id\":\"123456\",\"user_name\":\"小明\",\"text\":\"…\",\"timestamp_ms\":1764318000123,\"color\":\"#ffffff\",\"mode\":\"scroll\"},…]}` (encoding/json, UTF-8 unescaped).")
	s.note("Bilibili: `DmSegMobileReply{repeated DanmakuElem elems = 1}` with id = 1 (the same log sequence as a number), progress = 2 (ms into the second), mode = 3 (1 scroll, 5 top, 4 bottom), fontsize = 4 (25), color = 5, midHash = 6 (CRC32 of the user id, 8 hex digits), content = 7, ctime = 8 (the unix second), weight = 9 (10), idStr = 12 (the id in decimal); field numbers from Bilibili's public dm.proto, wire format written with protowire. Bilibili carries no user name and no user id, only the hash: less content than ours.")
	s.note("What bounds the ratio: the content. Text and user identity gzipped with no structure at all already cost %.2f× the naive layout at 20 msgs/s: a layout reaching 0.6× would have to carry ids, times, colors, modes and the message and user boundaries in %.1f B/msg; ours spends %.1f B/msg on them (about 12 characters of digits, commas and quotes per message: sequence and offset deltas, the user index, the separators, the color column). The corpus is CJK chatter from a 1,000-character set, emoji, Zipf-distributed catch-phrases and 400 users with Zipf activity: its text is close to incompressible at this size, as real chat is.",
		r.contentFloor/r.naive, 0.6*r.naive-r.contentFloor, r.ours-r.contentFloor)
	s.note("Against Bilibili, ours carries a user id and a display name per user where Bilibili has an 8-hex hash; given Bilibili's content, our layout is %.2f× its protobuf. Per-object gzip overhead (header, trailer, Huffman tables: %.0f bytes for an empty bucket) is a large share at 5 msgs/s, which is why ours loses to protobuf there and wins at 100 msgs/s. At 20 msgs/s brotli would be %.0f%% smaller than our gzip and zstd %+.0f%%; CloudFront and every browser take gzip and the object is stored once, pre-compressed, so the stored format stays gzip.",
		r.oursBiliContent/r.bili, r.emptyBucket, 100*(1-r.oursBrotli/r.ours), 100*(r.oursZstd/r.ours-1))
	return s
}

func goalIf(ok bool, g string) string {
	if ok {
		return g
	}
	return ""
}

func metIf(ok, met bool) *bool {
	if ok {
		return yes(met)
	}
	return nil
}
