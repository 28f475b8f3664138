package origin_test

import (
	"bytes"
	"testing"

	"github.com/danmaku/danmaku/origin"
)

// FuzzDecodeAdminRange: the admin API's body is outside input (a bearer
// token guards it, but a token leaks): decoding never panics, and what it
// accepts is a range of at most a day of non-negative seconds.
func FuzzDecodeAdminRange(f *testing.F) {
	for _, s := range []string{
		`{"from":1795855000,"to":1795855099}`,
		`{"from":1,"to":2,"ids":["4211","4215.2"]}`,
		`{"from":-1,"to":2}`,
		`{"from":2,"to":1}`,
		`{"from":0,"to":86400}`,
		`{"from":1e3,"to":2e3}`,
		`{"from":1,"to":2,"extra":1}`,
		`{"from":1,"to":2} {}`,
		`{"from":9223372036854775807,"to":-9223372036854775808}`,
		`[`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, code, err := origin.DecodeAdminRange(bytes.NewReader(body))
		if err != nil {
			if code != "bad_json" && code != "bad_range" {
				t.Fatalf("code %q for %v", code, err)
			}
			return
		}
		if r.From < 0 || r.To < r.From || r.To-r.From >= 86400 {
			t.Fatalf("accepted %+v", r)
		}
	})
}
