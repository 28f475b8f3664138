package ingest_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/danmaku/danmaku/ingest"
	"github.com/danmaku/danmaku/internal/logstream"
)

// jsonString returns s as a JSON string, with <, > and & left as they are.
func jsonString(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		panic(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// obj returns the JSON object {"text": text} plus extra members, already
// written as JSON (`"color":"#fff"`).
func obj(text string, extra ...string) string {
	s := `{"text":` + jsonString(text)
	for _, e := range extra {
		s += "," + e
	}
	return s + "}"
}

// arr joins JSON values into an array.
func arr(vals ...string) string { return "[" + strings.Join(vals, ",") + "]" }

func TestDecodeRefuses(t *testing.T) {
	small := ingest.Limits{MaxBatch: 3}
	tests := []struct {
		name   string
		body   string
		limits ingest.Limits
		code   string
	}{
		// Not UTF-8.
		{name: "invalid utf8 in text", body: "{\"text\":\"a\xffb\"}", code: "invalid_utf8"},
		{name: "lone continuation byte", body: "\x80", code: "invalid_utf8"},
		{name: "overlong slash", body: "{\"text\":\"\xc0\xaf\"}", code: "invalid_utf8"},
		{name: "utf8 encoded surrogate", body: "{\"text\":\"\xed\xa0\x80\"}", code: "invalid_utf8"},
		{name: "truncated utf8", body: "{\"text\":\"\xe5\xbc\"}", code: "invalid_utf8"},
		{name: "latin-1 body", body: "{\"text\":\"caf\xe9\"}", code: "invalid_utf8"},

		// Not one JSON object or array.
		{name: "empty", body: "", code: "bad_json"},
		{name: "whitespace only", body: " \t\r\n ", code: "bad_json"},
		{name: "string", body: `"hello"`, code: "bad_json"},
		{name: "number", body: `42`, code: "bad_json"},
		{name: "null", body: `null`, code: "bad_json"},
		{name: "true", body: `true`, code: "bad_json"},
		{name: "form encoded", body: `text=hello`, code: "bad_json"},
		{name: "byte order mark first", body: "\ufeff" + obj("a"), code: "bad_json"},
		{name: "trailing garbage", body: obj("a") + " x", code: "bad_json"},
		{name: "two objects", body: obj("a") + obj("b"), code: "bad_json"},
		{name: "object then array", body: obj("a") + arr(obj("b")), code: "bad_json"},
		{name: "extra bracket", body: arr(obj("a")) + "]", code: "bad_json"},
		{name: "trailing comment", body: obj("a") + " // hi", code: "bad_json"},
		{name: "truncated object", body: `{"text":"a"`, code: "bad_json"},
		{name: "truncated string", body: `{"text":"a`, code: "bad_json"},
		{name: "truncated array", body: `[{"text":"a"},`, code: "bad_json"},
		{name: "single quotes", body: `{'text':'a'}`, code: "bad_json"},
		{name: "trailing comma in object", body: `{"text":"a",}`, code: "bad_json"},
		{name: "trailing comma in array", body: `[{"text":"a"},]`, code: "bad_json"},
		{name: "raw newline in string", body: "{\"text\":\"a\nb\"}", code: "bad_json"},
		{name: "raw tab in string", body: "{\"text\":\"a\tb\"}", code: "bad_json"},
		{name: "bad escape", body: `{"text":"a\qb"}`, code: "bad_json"},
		{name: "unquoted key", body: `{text:"a"}`, code: "bad_json"},
		{name: "deeply nested array", body: strings.Repeat("[", 100000), code: "bad_json"},
		{name: "deeply nested object", body: strings.Repeat(`{"text":`, 100000), code: "bad_json"},
		{name: "deeply nested text", body: `{"text":` + strings.Repeat("[", 100000), code: "bad_json"},
		{name: "deeply nested color", body: `[{"text":"a","color":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}]`, code: "bad_json"},

		// Unknown fields.
		{name: "unknown field", body: obj("a", `"colour":"#fff"`), code: "unknown_field"},
		{name: "unknown field in batch", body: arr(obj("a"), obj("b", `"x":1`)), code: "unknown_field"},
		{name: "id is not the poster's", body: obj("a", `"id":"1"`), code: "unknown_field"},

		// Wrong types.
		{name: "text number", body: `{"text":1}`, code: "bad_type"},
		{name: "text array", body: `{"text":["a"]}`, code: "bad_type"},
		{name: "text object", body: `{"text":{"t":"a"}}`, code: "bad_type"},
		{name: "text bool", body: `{"text":true}`, code: "bad_type"},
		{name: "mode number", body: obj("a", `"mode":1`), code: "bad_type"},
		{name: "mode array", body: obj("a", `"mode":["top"]`), code: "bad_type"},
		{name: "user_id number", body: obj("a", `"user_id":42`), code: "bad_type"},
		{name: "user_name array", body: obj("a", `"user_name":["bob"]`), code: "bad_type"},
		{name: "array of numbers", body: `[1,2]`, code: "bad_type"},
		{name: "array of strings", body: `["a"]`, code: "bad_type"},
		{name: "array of arrays", body: `[[{"text":"a"}]]`, code: "bad_type"},

		// Missing or empty text.
		{name: "empty object", body: `{}`, code: "missing_text"},
		{name: "text null", body: `{"text":null}`, code: "missing_text"},
		{name: "only color", body: `{"color":"#fff"}`, code: "missing_text"},
		{name: "null in array", body: `[null]`, code: "missing_text"},
		{name: "second of batch lacks text", body: arr(obj("a"), `{"mode":"top"}`), code: "missing_text"},
		{name: "empty text", body: obj(""), code: "empty_text"},
		{name: "spaces only", body: obj("   "), code: "empty_text"},
		{name: "escaped whitespace only", body: `{"text":" \t\n\r "}`, code: "empty_text"},
		{name: "ideographic space only", body: obj("\u3000"), code: "empty_text"},
		{name: "no-break space only", body: obj("\u00a0"), code: "empty_text"},
		{name: "zero-width space only", body: obj("\u200b"), code: "empty_text"},
		{name: "joiners and variation selectors only", body: obj("\u200d\ufe0f\u2060"), code: "empty_text"},
		{name: "soft hyphen only", body: obj(" \u00ad "), code: "empty_text"},
		{name: "line separator only", body: obj("\u2028"), code: "empty_text"},
		{name: "next line only", body: `{"text":"\u0085"}`, code: "empty_text"},

		// Too long.
		{name: "201 ascii", body: obj(strings.Repeat("a", 201)), code: "text_too_long"},
		{name: "201 cjk", body: obj(strings.Repeat("弾", 201)), code: "text_too_long"},
		{name: "201 emoji", body: obj(strings.Repeat("😀", 201)), code: "text_too_long"},
		{name: "201 escaped", body: `{"text":"` + strings.Repeat(`\u5f3e`, 201) + `"}`, code: "text_too_long"},
		{name: "201 after trim", body: obj("  " + strings.Repeat("a", 201) + "  "), code: "text_too_long"},
		{name: "over a custom limit", body: obj("abcdef"), limits: ingest.Limits{MaxText: 5}, code: "text_too_long"},

		// Control and formatting characters.
		{name: "escaped newline", body: `{"text":"a\nb"}`, code: "control_character"},
		{name: "escaped carriage return", body: `{"text":"a\rb"}`, code: "control_character"},
		{name: "escaped tab", body: `{"text":"a\tb"}`, code: "control_character"},
		{name: "nul", body: `{"text":"a\u0000b"}`, code: "control_character"},
		{name: "escape", body: `{"text":"a\u001b[31mb"}`, code: "control_character"},
		{name: "escaped del", body: `{"text":"a\u007fb"}`, code: "control_character"},
		{name: "raw del", body: "{\"text\":\"a\x7fb\"}", code: "control_character"},
		{name: "escaped next line", body: `{"text":"a\u0085b"}`, code: "control_character"},
		{name: "raw next line", body: obj("a\u0085b"), code: "control_character"},
		{name: "c1 csi", body: `{"text":"a\u009bb"}`, code: "control_character"},
		{name: "line separator", body: `{"text":"a\u2028b"}`, code: "control_character"},
		{name: "paragraph separator", body: obj("a\u2029b"), code: "control_character"},
		{name: "right-to-left override", body: `{"text":"a\u202eb"}`, code: "control_character"},
		{name: "left-to-right embedding", body: `{"text":"a\u202ab"}`, code: "control_character"},
		{name: "left-to-right isolate", body: `{"text":"a\u2066b"}`, code: "control_character"},
		{name: "pop directional isolate", body: `{"text":"a\u2069b"}`, code: "control_character"},
		{name: "left-to-right mark", body: `{"text":"a\u200eb"}`, code: "control_character"},
		{name: "arabic letter mark", body: `{"text":"a\u061cb"}`, code: "control_character"},
		{name: "byte order mark first", body: `{"text":"\ufeffab"}`, code: "control_character"},
		{name: "byte order mark inside", body: obj("a\ufeffb"), code: "control_character"},
		{name: "lone high surrogate escape", body: `{"text":"a\ud800b"}`, code: "control_character"},
		{name: "lone low surrogate escape", body: `{"text":"\udc00"}`, code: "control_character"},
		{name: "replacement character", body: obj("a\ufffdb"), code: "control_character"},
		{name: "interlinear annotation", body: `{"text":"a\ufff9b"}`, code: "control_character"},

		// Colors.
		{name: "color name", body: obj("a", `"color":"red"`), code: "bad_color"},
		{name: "color 5 digits", body: obj("a", `"color":"#12345"`), code: "bad_color"},
		{name: "color 7 digits", body: obj("a", `"color":"#1234567"`), code: "bad_color"},
		{name: "color not hex", body: obj("a", `"color":"#ggg"`), code: "bad_color"},
		{name: "color without hash", body: obj("a", `"color":"fff"`), code: "bad_color"},
		{name: "color hash only", body: obj("a", `"color":"#"`), code: "bad_color"},
		{name: "color empty string", body: obj("a", `"color":""`), code: "bad_color"},
		{name: "color 0x", body: obj("a", `"color":"0xffffff"`), code: "bad_color"},
		{name: "color hash 0x", body: obj("a", `"color":"#0x1"`), code: "bad_color"},
		{name: "color signed hex", body: obj("a", `"color":"#+ff"`), code: "bad_color"},
		{name: "color space", body: obj("a", `"color":"# fff"`), code: "bad_color"},
		{name: "color negative", body: obj("a", `"color":-1`), code: "bad_color"},
		{name: "color negative zero", body: obj("a", `"color":-0`), code: "bad_color"},
		{name: "color too big", body: obj("a", `"color":16777216`), code: "bad_color"},
		{name: "color huge", body: obj("a", `"color":99999999999999999999`), code: "bad_color"},
		{name: "color fraction", body: obj("a", `"color":1.5`), code: "bad_color"},
		{name: "color exponent", body: obj("a", `"color":1e3`), code: "bad_color"},
		{name: "color bool", body: obj("a", `"color":true`), code: "bad_color"},
		{name: "color array", body: obj("a", `"color":[255,0,0]`), code: "bad_color"},
		{name: "color object", body: obj("a", `"color":{"r":255}`), code: "bad_color"},

		// Modes.
		{name: "mode left", body: obj("a", `"mode":"left"`), code: "bad_mode"},
		{name: "mode empty", body: obj("a", `"mode":""`), code: "bad_mode"},
		{name: "mode capitalised", body: obj("a", `"mode":"Top"`), code: "bad_mode"},
		{name: "mode padded", body: obj("a", `"mode":" top"`), code: "bad_mode"},
		{name: "mode digit string", body: obj("a", `"mode":"1"`), code: "bad_mode"},

		// Users.
		{name: "user_id 65 chars", body: obj("a", `"user_id":"`+strings.Repeat("u", 65)+`"`), code: "bad_user"},
		{name: "user_id empty", body: obj("a", `"user_id":""`), code: "bad_user"},
		{name: "user_id space", body: obj("a", `"user_id":"a b"`), code: "bad_user"},
		{name: "user_id padded", body: obj("a", `"user_id":" ab"`), code: "bad_user"},
		{name: "user_id unicode", body: obj("a", `"user_id":"ユーザー"`), code: "bad_user"},
		{name: "user_id cyrillic a", body: obj("a", `"user_id":"\u0430"`), code: "bad_user"},
		{name: "user_id slash", body: obj("a", `"user_id":"a/b"`), code: "bad_user"},
		{name: "user_id newline", body: obj("a", `"user_id":"a\nb"`), code: "bad_user"},
		{name: "user_name empty", body: obj("a", `"user_name":""`), code: "bad_user"},
		{name: "user_name spaces", body: obj("a", `"user_name":"   "`), code: "bad_user"},
		{name: "user_name 33 runes", body: obj("a", `"user_name":"`+strings.Repeat("名", 33)+`"`), code: "bad_user"},
		{name: "user_name 33 ascii", body: obj("a", `"user_name":"`+strings.Repeat("n", 33)+`"`), code: "bad_user"},
		{name: "user_name newline", body: obj("a", `"user_name":"a\nb"`), code: "control_character"},
		{name: "user_name nul", body: obj("a", `"user_name":"a\u0000b"`), code: "control_character"},
		{name: "user_name override", body: obj("a", `"user_name":"\u202eevil"`), code: "control_character"},
		{name: "user_name surrogate", body: obj("a", `"user_name":"\ud800"`), code: "control_character"},

		// Batches.
		{name: "empty array", body: `[]`, code: "empty_batch"},
		{name: "empty array spaced", body: " [ \n ] ", code: "empty_batch"},
		{name: "batch of 4 over 3", body: arr(obj("a"), obj("b"), obj("c"), obj("d")), limits: small, code: "batch_too_large"},
		{name: "batch of 10 over 3", body: arr(strings.Split(strings.Repeat(obj("x")+"\x00", 10), "\x00")[:10]...), limits: small, code: "batch_too_large"},
		{name: "batch of 501 over default", body: "[" + strings.TrimSuffix(strings.Repeat(obj("x")+",", 501), ",") + "]", code: "batch_too_large"},
		{name: "mixed user ids", body: arr(obj("a", `"user_id":"u1"`), obj("b", `"user_id":"u2"`)), code: "mixed_users"},
		{name: "user id on second only", body: arr(obj("a"), obj("b", `"user_id":"u"`)), code: "mixed_users"},
		{name: "user id on first only", body: arr(obj("a", `"user_id":"u"`), obj("b")), code: "mixed_users"},
		{name: "mixed user names", body: arr(obj("a", `"user_id":"u"`, `"user_name":"Ann"`), obj("b", `"user_id":"u"`, `"user_name":"Bob"`)), code: "mixed_users"},
		{name: "bad second message", body: arr(obj("a"), obj("b", `"color":"red"`)), code: "bad_color"},
		{name: "bad third message", body: arr(obj("a"), obj("b"), obj("")), code: "empty_text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			post, err := ingest.Decode([]byte(tt.body), tt.limits)
			if d := time.Since(start); d > time.Second {
				t.Errorf("Decode took %v", d)
			}
			if err == nil {
				t.Fatalf("Decode succeeded with %+v; want %s", post, tt.code)
			}
			if post != nil {
				t.Errorf("Decode returned a post with its error: %+v", post)
			}
			var ie *ingest.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("Decode error %v (%T) is not an *InputError", err, err)
			}
			if ie.Code != tt.code {
				t.Errorf("code = %q (%v), want %q", ie.Code, ie.Message, tt.code)
			}
			if ie.Message == "" {
				t.Error("empty message")
			}
			if got := ie.Error(); !strings.HasPrefix(got, ie.Code+": ") {
				t.Errorf("Error() = %q, want it to start with the code", got)
			}
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	const white = 0xFFFFFF
	msg := func(text string, color uint32, mode uint8) logstream.Message {
		return logstream.Message{Text: text, Color: color, Mode: mode}
	}
	one := func(m logstream.Message) *logstream.Post { return &logstream.Post{Messages: []logstream.Message{m}} }
	tests := []struct {
		name   string
		body   string
		limits ingest.Limits
		want   *logstream.Post
	}{
		{name: "text only", body: obj("hello"), want: one(msg("hello", white, 0))},
		{name: "unicode text", body: obj("弾幕テスト 🎉"), want: one(msg("弾幕テスト 🎉", white, 0))},
		{name: "escaped unicode", body: `{"text":"\u5f3e\ud83d\ude00"}`, want: one(msg("弾😀", white, 0))},
		{name: "html and quotes kept", body: obj(`<b>"hi"</b> & 'you'`), want: one(msg(`<b>"hi"</b> & 'you'`, white, 0))},
		{name: "trimmed", body: obj("  hi there \t"), want: one(msg("hi there", white, 0))},
		{name: "unicode spaces trimmed", body: obj("\u3000hi\u00a0\u2028"), want: one(msg("hi", white, 0))},
		{name: "inner spaces kept", body: obj("a   b"), want: one(msg("a   b", white, 0))},
		{name: "zero width joiner kept", body: obj("👩\u200d💻"), want: one(msg("👩\u200d💻", white, 0))},
		{name: "flag tag sequence kept", body: obj("🏴\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F"),
			want: one(msg("🏴\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F", white, 0))},
		{name: "200 ascii", body: obj(strings.Repeat("a", 200)), want: one(msg(strings.Repeat("a", 200), white, 0))},
		{name: "200 cjk", body: obj(strings.Repeat("弾", 200)), want: one(msg(strings.Repeat("弾", 200), white, 0))},
		{name: "200 emoji", body: obj(strings.Repeat("😀", 200)), want: one(msg(strings.Repeat("😀", 200), white, 0))},
		{name: "200 after trim", body: obj(" " + strings.Repeat("a", 200) + " "), want: one(msg(strings.Repeat("a", 200), white, 0))},
		{name: "at a custom limit", body: obj("abcde"), limits: ingest.Limits{MaxText: 5}, want: one(msg("abcde", white, 0))},
		{name: "color #fff", body: obj("a", `"color":"#fff"`), want: one(msg("a", 0xFFFFFF, 0))},
		{name: "color #FF0000", body: obj("a", `"color":"#FF0000"`), want: one(msg("a", 0xFF0000, 0))},
		{name: "color #ff0000", body: obj("a", `"color":"#ff0000"`), want: one(msg("a", 0xFF0000, 0))},
		{name: "color #0a0", body: obj("a", `"color":"#0a0"`), want: one(msg("a", 0x00AA00, 0))},
		{name: "color #abc", body: obj("a", `"color":"#abc"`), want: one(msg("a", 0xAABBCC, 0))},
		{name: "color #123456", body: obj("a", `"color":"#123456"`), want: one(msg("a", 0x123456, 0))},
		{name: "color #000", body: obj("a", `"color":"#000"`), want: one(msg("a", 0, 0))},
		{name: "color escaped hash", body: obj("a", `"color":"\u0023f00"`), want: one(msg("a", 0xFF0000, 0))},
		{name: "color integer 0", body: obj("a", `"color":0`), want: one(msg("a", 0, 0))},
		{name: "color integer 255", body: obj("a", `"color":255`), want: one(msg("a", 0x0000FF, 0))},
		{name: "color integer max", body: obj("a", `"color":16777215`), want: one(msg("a", 0xFFFFFF, 0))},
		{name: "color integer red", body: obj("a", `"color":16711680`), want: one(msg("a", 0xFF0000, 0))},
		{name: "color null is white", body: obj("a", `"color":null`), want: one(msg("a", white, 0))},
		{name: "mode scroll", body: obj("a", `"mode":"scroll"`), want: one(msg("a", white, 0))},
		{name: "mode top", body: obj("a", `"mode":"top"`), want: one(msg("a", white, 1))},
		{name: "mode bottom", body: obj("a", `"mode":"bottom"`), want: one(msg("a", white, 2))},
		{name: "mode null is scroll", body: obj("a", `"mode":null`), want: one(msg("a", white, 0))},
		{name: "all fields", body: obj("gg", `"color":"#00ff00"`, `"mode":"top"`, `"user_id":"u-1.a:b@c_D"`, `"user_name":" Alice "`),
			want: &logstream.Post{UserID: "u-1.a:b@c_D", UserName: "Alice", Messages: []logstream.Message{msg("gg", 0x00FF00, 1)}}},
		{name: "user_id 64 chars", body: obj("a", `"user_id":"`+strings.Repeat("u", 64)+`"`),
			want: &logstream.Post{UserID: strings.Repeat("u", 64), Messages: []logstream.Message{msg("a", white, 0)}}},
		{name: "user_name 32 runes", body: obj("a", `"user_name":"`+strings.Repeat("名", 32)+`"`),
			want: &logstream.Post{UserName: strings.Repeat("名", 32), Messages: []logstream.Message{msg("a", white, 0)}}},
		{name: "user_name only", body: obj("a", `"user_name":"匿名"`),
			want: &logstream.Post{UserName: "匿名", Messages: []logstream.Message{msg("a", white, 0)}}},
		{name: "null users", body: obj("a", `"user_id":null`, `"user_name":null`), want: one(msg("a", white, 0))},
		{name: "surrounding whitespace", body: "\r\n\t " + obj("a") + " \n", want: one(msg("a", white, 0))},
		{name: "batch of one", body: arr(obj("a")), want: one(msg("a", white, 0))},
		{name: "batch at the limit", limits: ingest.Limits{MaxBatch: 3},
			body: " [" + obj("a", `"user_id":"u"`) + ",\n" + obj(" b ", `"user_id":"u"`, `"mode":"bottom"`) + "," + obj("c", `"user_id":"u"`, `"color":1`) + "] ",
			want: &logstream.Post{UserID: "u", Messages: []logstream.Message{msg("a", white, 0), msg("b", white, 2), msg("c", 1, 0)}}},
		{name: "batch with commas and brackets in text", limits: ingest.Limits{MaxBatch: 2},
			body: arr(obj(`a,b,[c],{d},"e"\`), obj(",,,,")),
			want: &logstream.Post{Messages: []logstream.Message{msg(`a,b,[c],{d},"e"\`, white, 0), msg(",,,,", white, 0)}}},
		{name: "batch same user names after trim", body: arr(obj("a", `"user_name":"Ann"`), obj("b", `"user_name":" Ann "`)),
			want: &logstream.Post{UserName: "Ann", Messages: []logstream.Message{msg("a", white, 0), msg("b", white, 0)}}},
		{name: "batch of 500 by default", body: "[" + strings.TrimSuffix(strings.Repeat(obj("x")+",", 500), ",") + "]",
			want: &logstream.Post{Messages: repeatMsg(msg("x", white, 0), 500)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ingest.Decode([]byte(tt.body), tt.limits)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decode =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func repeatMsg(m logstream.Message, n int) []logstream.Message {
	out := make([]logstream.Message, n)
	for i := range out {
		out[i] = m
	}
	return out
}

// The error message of a batch names the message at fault.
func TestDecodeNamesTheMessage(t *testing.T) {
	_, err := ingest.Decode([]byte(arr(obj("a"), obj("b"), obj("c", `"mode":"left"`))), ingest.Limits{})
	var ie *ingest.InputError
	if !errors.As(err, &ie) || ie.Code != "bad_mode" {
		t.Fatalf("Decode: %v, want bad_mode", err)
	}
	if !strings.Contains(ie.Message, "message 2") {
		t.Errorf("message %q does not name message 2", ie.Message)
	}
}

// The post Decode returns goes to the log unchanged: it must survive the
// log's encoding.
func TestDecodeEncodesForTheLog(t *testing.T) {
	body := arr(obj("弾幕 \"x\"", `"user_id":"u"`, `"user_name":"名前"`, `"color":"#123"`, `"mode":"top"`),
		obj("b", `"user_id":"u"`, `"user_name":"名前"`))
	post, err := ingest.Decode([]byte(body), ingest.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := logstream.EncodePost(post)
	if err != nil {
		t.Fatal(err)
	}
	back, err := logstream.DecodePost(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, post) {
		t.Errorf("after the log's encoding: %+v, want %+v", back, post)
	}
}
