package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"time"
)

// benchViewer measures what one viewer costs in bytes each second at 5
// msgs/s in its room: bucket bodies as received plus the HTTP/1.1 response
// headers exactly as the origin sends them.
func benchViewer(ctx context.Context, e *env) *section {
	s := &section{id: "viewer", num: "3", title: "Bytes per viewer-second at 5 msgs/s, HTTP/1.1 headers included"}
	srv, err := e.startServe(ctx)
	if err != nil {
		s.err = err
		return s
	}
	defer srv.stop()
	second, _, err := sealedBucket(ctx, srv.base, "hdr")
	if err != nil {
		s.err = err
		return s
	}
	head, err := rawHeaders(srv.addr, fmt.Sprintf("/v1/rooms/hdr/buckets/%d.json", second))
	if err != nil {
		s.err = err
		return s
	}

	dur, warm := "20s", "4s"
	if e.quick {
		dur, warm = "3s", "2s"
	}
	argv := e.pinned(loadCPU, e.bin, "loadgen", "--base", srv.base, "--rooms", "2", "--players", "20",
		"--post-rate", "10", "--duration", dur, "--warmup", warm, "--room-prefix", "viewer", "--json")
	s.cmd(e.show(argv))
	lg, err := runLoadgenJSON(ctx, argv)
	if err != nil {
		s.err = err
		return s
	}
	perReq := float64(len(head))
	reqPerViewerSecond := float64(lg.Requests) / float64(lg.Players) / lg.Seconds
	total := lg.BytesPerViewer + reqPerViewerSecond*perReq
	s.add("bytes per viewer-second at 5 msgs/s (bodies + headers)", fmt.Sprintf("%.0f B/s", total), "≤ 500 B/s", yes(total <= 500))
	s.add("… of which bucket bodies", fmt.Sprintf("%.0f B/s", lg.BytesPerViewer), "", nil)
	s.add("… of which response headers", fmt.Sprintf("%.0f B/s (%d B × %.2f requests/s)", reqPerViewerSecond*perReq, len(head), reqPerViewerSecond), "", nil)
	s.add("the seed article's budget", fmt.Sprintf("%.2f× of ~1 KB/s", total/1024), "", nil)

	var lines []string
	for _, l := range strings.Split(strings.TrimRight(head, "\r\n"), "\r\n") {
		lines = append(lines, fmt.Sprintf("| `%s` | %d |", strings.ReplaceAll(l, "|", `\|`), len(l)+2))
	}
	s.detail("The headers of a 200 for a bucket, as the origin writes them (each line with its CRLF; the blank line adds 2):\n\n| line | bytes |\n| --- | --- |\n" + strings.Join(lines, "\n"))
	s.detail(fmt.Sprintf("Measured with loadgen: %d players on 2 rooms, 5 msgs/s posted to each, %.0f s: %.0f body bytes per viewer-second as received (gzip), %.2f requests per viewer-second, %d requests answered %v.",
		lg.Players, lg.Seconds, lg.BytesPerViewer, reqPerViewerSecond, lg.Requests, lg.ByStatus))
	s.note("Every header on the hot path is there for a contract: `Cache-Control` (immutable, so a CDN keeps it), `Etag` (revalidation), `Vary` and `Content-Encoding` (the plain-text fallback for clients without gzip), `Access-Control-Allow-Origin` (pages on other origins), `Content-Type`, `Content-Length` (keep-alive) and `Date` (HTTP requires it of an origin server). A CDN replaces this set with its own; between CloudFront and a browser the connection is usually HTTP/2 or HTTP/3, where HPACK/QPACK send repeated headers as one- or two-byte indexes, so a viewer's header bytes per poll shrink to a few dozen after the first request.")
	s.note("What bounds the body: at 5 msgs/s a bucket is five short messages in a gzip stream whose fixed cost (18 bytes of header and trailer, the Huffman tables, the `v`/`room`/`start`/`seconds` preamble) is over 70 bytes; see the size section.")
	return s
}

// rawHeaders GETs path over a plain TCP connection and returns the status
// line and headers exactly as they came, with the blank line after them.
func rawHeaders(addr, path string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept-Encoding: gzip\r\nUser-Agent: danmaku-client/1\r\n\r\n", path, addr)
	r := bufio.NewReader(c)
	var b strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		b.WriteString(line)
		if line == "\r\n" {
			break
		}
	}
	if !strings.HasPrefix(b.String(), "HTTP/1.1 200") {
		return "", fmt.Errorf("GET %s: %q", path, b.String())
	}
	return b.String(), nil
}

// lgResult is the part of loadgen's --json output the bench reads.
type lgResult struct {
	Players        int              `json:"players"`
	Rooms          int              `json:"rooms"`
	Seconds        float64          `json:"seconds"`
	Requests       int64            `json:"requests"`
	RequestsPerSec float64          `json:"requests_per_second"`
	ByKind         map[string]int64 `json:"requests_by_kind"`
	ByStatus       map[string]int64 `json:"requests_by_status"`
	Errors         int64            `json:"errors"`
	BytesPerViewer float64          `json:"bytes_per_viewer_second"`
	Messages       int64            `json:"messages_seen"`
	Missed         int64            `json:"missed"`
	Posts          struct {
		Accepted  int64   `json:"accepted"`
		Messages  int64   `json:"messages"`
		Failed    int64   `json:"failed"`
		PerSecond float64 `json:"messages_per_second"`
	} `json:"posts"`
	Visible struct {
		Samples            int64 `json:"samples"`
		P50, P90, P99, Max float64
	} `json:"post_to_visible_ms"`
	Origin *struct {
		Requests       float64 `json:"requests"`
		BucketRequests float64 `json:"bucket_requests"`
		PerRoomSecond  float64 `json:"requests_per_room_second"`
		BucketsPerRS   float64 `json:"bucket_requests_per_room_second"`
	} `json:"origin,omitempty"`
}

func runLoadgenJSON(ctx context.Context, argv []string) (*lgResult, error) {
	out, err := runCmd(ctx, argv)
	if err != nil {
		return nil, err
	}
	var r lgResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return nil, fmt.Errorf("loadgen output: %v: %s", err, tail(out))
	}
	if r.Requests == 0 {
		return nil, fmt.Errorf("loadgen made no requests: %s", tail(out))
	}
	return &r, nil
}
