package moderation_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/danmaku/danmaku/ingest/moderation"
)

func TestFilterMasks(t *testing.T) {
	f, err := moderation.NewFilter([]string{"fuck", "傻逼", "bad word", "he", "hers", "ｶﾀｶﾅ", "địt mẹ"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want string }{
		{"hello ushers", "＊＊llo us＊＊＊＊"}, // "hers" and the "he" inside it
		{"what the fuck", "what t＊＊ ＊＊＊＊"},
		{"FuCk", "＊＊＊＊"},
		{"ＦＵＣＫ this", "＊＊＊＊ this"},       // full-width Latin
		{"f.u c-k", "＊＊＊＊＊＊＊"},           // spread over punctuation and spaces
		{"你是傻逼吗", "你是＊＊吗"},               // CJK substring
		{"a BAD  WORD!", "a ＊＊＊＊＊＊＊＊＊!"}, // phrase over two spaces
		{"カタカナ", "＊＊＊＊"},                 // half-width word, full-width text
		{"địt mẹ", "＊＊＊＊＊＊"},
		{"đi\u0323t me\u0323", "＊＊＊＊＊＊"}, // decomposed marks match too
		{"ffuCkuCk", "＊＊＊＊＊＊＊＊"},         // what is left around a masked word spells it again
		{"clean 弾幕 😀", "clean 弾幕 😀"},
		{"", ""},
	} {
		got, n := f.Mask(tc.in)
		if got != tc.want {
			t.Errorf("Mask(%q) = %q (%d), want %q", tc.in, got, n, tc.want)
		}
		if (n > 0) != (got != tc.in) {
			t.Errorf("Mask(%q) reported %d matches for %q", tc.in, n, got)
		}
	}
}

func TestDefaultWords(t *testing.T) {
	f, err := moderation.NewFilter(moderation.DefaultWords())
	if err != nil {
		t.Fatal(err)
	}
	if f.Words() < 10 {
		t.Errorf("default list has %d words", f.Words())
	}
	for _, s := range []string{"ＳＨＩＴ", "你个傻逼", "mother fucker"} {
		if _, n := f.Mask(s); n == 0 {
			t.Errorf("default list does not catch %q", s)
		}
	}
}

func TestParseWords(t *testing.T) {
	w, err := moderation.ParseWords(strings.NewReader("# comment\n\n  spam \nbad word\n"))
	if err != nil || len(w) != 2 || w[0] != "spam" || w[1] != "bad word" {
		t.Fatalf("ParseWords = %q, %v", w, err)
	}
	if _, err := moderation.ParseWords(strings.NewReader("ok\n\xff\n")); err == nil {
		t.Error("invalid UTF-8 accepted")
	}
	if _, err := moderation.NewFilter([]string{strings.Repeat("x", 65)}); err == nil {
		t.Error("a 65-character word accepted")
	}
}

// FuzzFilter: masking never panics, keeps the number of characters, and
// finds nothing more in what it masked.
func FuzzFilter(f *testing.F) {
	for _, s := range []string{"fuck", "ＦＵＣＫ", "f.u.c.k", "傻逼", "he hers", "\xff", "a\u0301", "ｶﾞ"} {
		f.Add(s)
	}
	filter, err := moderation.NewFilter([]string{"fuck", "傻逼", "hers", "he", "ガ", "a b c"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return // ingest refuses invalid UTF-8 before moderation
		}
		out, n := filter.Mask(s)
		if n == 0 {
			if out != s {
				t.Fatalf("Mask(%q) changed the text without a match: %q", s, out)
			}
			return
		}
		if !utf8.ValidString(out) {
			t.Fatalf("Mask(%q) = %q, not UTF-8", s, out)
		}
		if again, m := filter.Mask(out); m != 0 {
			t.Fatalf("Mask(%q) = %q still holds %d words: %q", s, out, m, again)
		}
	})
}
