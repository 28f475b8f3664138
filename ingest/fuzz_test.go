package ingest_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/danmaku/danmaku/ingest"
	"github.com/danmaku/danmaku/internal/logstream"
)

// FuzzDecode: Decode never panics; whatever it accepts a player can show
// as one line of plain text within the limits, and whatever it refuses it
// refuses with an *InputError carrying a code.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"text":"hello"}`,
		`{"text":"  弾幕 😀 ","color":"#f00","mode":"top","user_id":"u1","user_name":"Ann"}`,
		`[{"text":"a","user_id":"u"},{"text":"b","user_id":"u","color":255,"mode":"bottom"}]`,
		`[{"text":"a,[b]"},{"text":"\"c\\"}]`,
		`{"text":"a\u2028b"}`,
		`{"text":"\ud800"}`,
		`{"text":"a\u0085"}`,
		`{"text":"\ufeff"}`,
		`{"text":"x","color":"#12345"}`,
		`{"text":"x","color":16777216}`,
		`{"text":"x","colour":1}`,
		`[]`,
		`[[[[[[[[`,
		`{"text":"a"} {`,
		"{\"text\":\"a\xffb\"}",
		"",
	} {
		f.Add([]byte(s))
	}
	limits := ingest.Limits{MaxText: 20, MaxBatch: 4, MaxName: 8}
	f.Fuzz(func(t *testing.T, body []byte) {
		post, err := ingest.Decode(body, limits)
		if err != nil {
			var ie *ingest.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("Decode(%q) error %v is a %T, not an *InputError", body, err, err)
			}
			if ie.Code == "" || ie.Message == "" {
				t.Fatalf("Decode(%q) error has code %q, message %q", body, ie.Code, ie.Message)
			}
			if post != nil {
				t.Fatalf("Decode(%q) returned a post with its error", body)
			}
			return
		}
		if post == nil {
			t.Fatalf("Decode(%q) returned neither a post nor an error", body)
		}
		if n := len(post.Messages); n == 0 || n > limits.MaxBatch {
			t.Fatalf("Decode(%q) returned %d messages", body, n)
		}
		for i, m := range post.Messages {
			checkLine(t, body, "text", m.Text, limits.MaxText)
			if m.Color > 0xFFFFFF {
				t.Fatalf("Decode(%q): message %d has color %#x", body, i, m.Color)
			}
			if m.Mode > 2 {
				t.Fatalf("Decode(%q): message %d has mode %d", body, i, m.Mode)
			}
		}
		if post.UserName != "" {
			checkLine(t, body, "user_name", post.UserName, limits.MaxName)
		}
		if len(post.UserID) > 64 {
			t.Fatalf("Decode(%q): user_id %q is too long", body, post.UserID)
		}
		for _, c := range []byte(post.UserID) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.:@-", c) >= 0) {
				t.Fatalf("Decode(%q): user_id %q holds %q", body, post.UserID, c)
			}
		}
		// What is accepted survives the log's encoding unchanged.
		data, err := logstream.EncodePost(post)
		if err != nil {
			t.Fatalf("EncodePost: %v", err)
		}
		back, err := logstream.DecodePost(data)
		if err != nil || !reflect.DeepEqual(back, post) {
			t.Fatalf("Decode(%q) = %+v, which the log gives back as %+v, %v", body, post, back, err)
		}
	})
}

// checkLine fails unless s is non-empty, trimmed, at most max runes of
// valid UTF-8, without control, separator or bidi-override characters.
func checkLine(t *testing.T, body []byte, what, s string, max int) {
	t.Helper()
	switch {
	case s == "":
		t.Fatalf("Decode(%q): empty %s", body, what)
	case !utf8.ValidString(s):
		t.Fatalf("Decode(%q): %s %q is not valid UTF-8", body, what, s)
	case utf8.RuneCountInString(s) > max:
		t.Fatalf("Decode(%q): %s %q is over %d runes", body, what, s, max)
	case strings.TrimSpace(s) != s:
		t.Fatalf("Decode(%q): %s %q is not trimmed", body, what, s)
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || r == '\ufeff' || r == utf8.RuneError ||
			r >= '\u202a' && r <= '\u202e' || r >= '\u2066' && r <= '\u2069' {
			t.Fatalf("Decode(%q): %s %q holds %U", body, what, s, r)
		}
	}
}
