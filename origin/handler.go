package origin

import (
	"net/http"
	"strings"

	"github.com/danmaku/danmaku/internal/keys"
)

// Handler returns next with the read path in front of it: a GET or HEAD of
// a bucket, segment or head URL of a valid room is answered here, without
// going through next's routing (a ServeMux allocates for every match of a
// pattern with wildcards); every other request goes to next, which should
// hold the routes of Register too, for the paths this does not take (ones
// a ServeMux would clean or redirect first). The answers are the same
// either way; this is only the faster way in.
func (o *Origin) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			if kind, room, name, ok := readPath(r.URL.Path); ok {
				switch kind {
				case kindBucket:
					o.serveObject(w, r, keys.Bucket, room, name)
				case kindSegment:
					o.serveObject(w, r, keys.Segment, room, name)
				case kindHead:
					o.serveHead(w, r, room)
				}
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// The read paths readPath tells apart.
const (
	kindBucket = iota
	kindSegment
	kindHead
)

// readPath splits /v1/rooms/{room}/buckets/{name}, .../segments/{name} and
// .../head. It takes only a valid room and a name without a slash, so that
// anything a ServeMux would treat differently (dot segments, empty
// elements) is left to it.
func readPath(p string) (kind int, room, name string, ok bool) {
	rest, ok := strings.CutPrefix(p, "/v1/rooms/")
	if !ok {
		return 0, "", "", false
	}
	i := strings.IndexByte(rest, '/')
	if i < 0 {
		return 0, "", "", false
	}
	room, rest = rest[:i], rest[i+1:]
	if !keys.ValidRoom(room) {
		return 0, "", "", false
	}
	switch {
	case rest == "head":
		return kindHead, room, "", true
	case strings.HasPrefix(rest, "buckets/"):
		kind, name = kindBucket, rest[len("buckets/"):]
	case strings.HasPrefix(rest, "segments/"):
		kind, name = kindSegment, rest[len("segments/"):]
	default:
		return 0, "", "", false
	}
	if name == "" || name == "." || name == ".." || strings.IndexByte(name, '/') >= 0 {
		return 0, "", "", false
	}
	return kind, room, name, true
}
