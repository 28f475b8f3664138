package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/logstream"
)

// Limits bound what one POST may carry.
type Limits struct {
	// MaxText is the longest text in runes after trimming; if 0, 200.
	MaxText int
	// MaxBatch is the most messages in one POST; if 0, 500.
	MaxBatch int
	// MaxName is the longest display name in runes; if 0, 32.
	MaxName int
}

func (l Limits) withDefaults() Limits {
	if l.MaxText == 0 {
		l.MaxText = 200
	}
	if l.MaxBatch == 0 {
		l.MaxBatch = 500
	}
	if l.MaxName == 0 {
		l.MaxName = 32
	}
	return l
}

// InputError is a refused request body: Code is stable for programs,
// Message is for people.
type InputError struct {
	Code    string
	Message string
}

func (e *InputError) Error() string { return e.Code + ": " + e.Message }

func inputErr(code, format string, a ...any) *InputError {
	return &InputError{Code: code, Message: fmt.Sprintf(format, a...)}
}

// wireMessage is one message as a poster sends it.
type wireMessage struct {
	Text     *string `json:"text"`
	Color    *color  `json:"color"`
	Mode     *string `json:"mode"`
	UserID   *string `json:"user_id"`
	UserName *string `json:"user_name"`
}

// color accepts "#rrggbb", "#rgb" or an integer 0..16777215.
type color struct{ v uint32 }

var errColor = errors.New(`color must be "#rrggbb", "#rgb" or an integer from 0 to 16777215`)

func (c *color) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return errColor
		}
		v, ok := parseHexColor(s)
		if !ok {
			return errColor
		}
		c.v = v
		return nil
	}
	n, err := strconv.ParseUint(string(b), 10, 32)
	if err != nil || n > 0xFFFFFF {
		return errColor
	}
	c.v = uint32(n)
	return nil
}

func parseHexColor(s string) (uint32, bool) {
	h, ok := strings.CutPrefix(s, "#")
	if !ok || (len(h) != 6 && len(h) != 3) {
		return 0, false
	}
	n, err := strconv.ParseUint(h, 16, 32)
	if err != nil {
		return 0, false
	}
	if len(h) == 3 { // #rgb → #rrggbb
		r, g, b := n>>8&0xF, n>>4&0xF, n&0xF
		n = r<<20 | r<<16 | g<<12 | g<<8 | b<<4 | b
	}
	return uint32(n), true
}

// Decode parses and validates a POST body: one message object or an array
// of them, all from one user. Nothing is trimmed or accepted that a player
// could not show as a single line of plain text.
func Decode(body []byte, limits Limits) (*logstream.Post, error) {
	limits = limits.withDefaults()
	if !utf8.Valid(body) {
		return nil, inputErr("invalid_utf8", "the body is not valid UTF-8")
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, inputErr("bad_json", "the body is empty; send a message object or an array of them")
	}
	var msgs []wireMessage
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	var err error
	switch trimmed[0] {
	case '{':
		var m wireMessage
		err = dec.Decode(&m)
		msgs = []wireMessage{m}
	case '[':
		if err := checkArrayLength(trimmed, limits.MaxBatch); err != nil {
			return nil, err
		}
		err = dec.Decode(&msgs)
	default:
		return nil, inputErr("bad_json", "the body must be a JSON object or array")
	}
	if err != nil {
		return nil, jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, inputErr("bad_json", "unexpected data after the JSON value")
	}
	if len(msgs) == 0 {
		return nil, inputErr("empty_batch", "the array holds no messages")
	}
	post := &logstream.Post{Messages: make([]logstream.Message, len(msgs))}
	for i, m := range msgs {
		where := ""
		if trimmed[0] == '[' {
			where = "message " + strconv.Itoa(i) + ": "
		}
		out, uid, name, err := checkMessage(m, limits)
		if err != nil {
			err.Message = where + err.Message
			return nil, err
		}
		if i == 0 {
			post.UserID, post.UserName = uid, name
		} else if uid != post.UserID || name != post.UserName {
			return nil, inputErr("mixed_users", "%severy message of a batch must carry the same user_id and user_name", where)
		}
		post.Messages[i] = out
	}
	return post, nil
}

// checkArrayLength refuses an array with more than max elements before any
// of them is decoded, by counting top-level commas.
func checkArrayLength(b []byte, max int) error {
	depth, n, inString, escaped := 0, 0, false, false
	for _, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
			if depth == 2 && n == 0 {
				n = 1
			}
		case ']', '}':
			depth--
		case ',':
			if depth == 1 {
				n++
				if n > max {
					return inputErr("batch_too_large", "a batch holds at most %d messages", max)
				}
			}
		}
	}
	return nil
}

func jsonError(err error) *InputError {
	var ute *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &ute):
		field := ute.Field
		if field == "" {
			field = "the body"
		}
		return inputErr("bad_type", "%s must not be a JSON %s", field, ute.Value)
	case errors.As(err, &se):
		return inputErr("bad_json", "malformed JSON at byte %d: %v", se.Offset, se)
	case errors.Is(err, errColor):
		return inputErr("bad_color", "%v", errColor)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return inputErr("unknown_field", "%s; known fields are text, color, mode, user_id and user_name",
			strings.TrimPrefix(err.Error(), "json: "))
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return inputErr("bad_json", "the JSON ends too early")
	}
	return inputErr("bad_json", "malformed JSON: %v", err)
}

func checkMessage(m wireMessage, l Limits) (logstream.Message, string, string, *InputError) {
	var out logstream.Message
	if m.Text == nil {
		return out, "", "", inputErr("missing_text", "text is required")
	}
	text := strings.TrimSpace(*m.Text)
	if !visible(text) {
		return out, "", "", inputErr("empty_text", "text is empty")
	}
	if n := utf8.RuneCountInString(text); n > l.MaxText {
		return out, "", "", inputErr("text_too_long", "text is %d characters; the most is %d", n, l.MaxText)
	}
	if r, ok := forbidden(text); ok {
		return out, "", "", inputErr("control_character", "text holds the control or formatting character %U; send a single line of plain text", r)
	}
	out.Text = text
	out.Color = bucketer.DefaultColor
	if m.Color != nil {
		out.Color = m.Color.v
	}
	if m.Mode != nil {
		mode, ok := bucketer.ParseMode(*m.Mode)
		if !ok {
			return out, "", "", inputErr("bad_mode", `mode must be "scroll", "top" or "bottom", not %q`, *m.Mode)
		}
		out.Mode = uint8(mode)
	}
	var uid, name string
	if m.UserID != nil {
		uid = *m.UserID
		if !validUserID(uid) {
			return out, "", "", inputErr("bad_user", "user_id must be 1-64 characters of A-Z, a-z, 0-9 and _ . : @ -")
		}
	}
	if m.UserName != nil {
		name = strings.TrimSpace(*m.UserName)
		if n := utf8.RuneCountInString(name); n == 0 || n > l.MaxName || !visible(name) {
			return out, "", "", inputErr("bad_user", "user_name must be 1-%d characters", l.MaxName)
		}
		if r, ok := forbidden(name); ok {
			return out, "", "", inputErr("control_character", "user_name holds the control or formatting character %U", r)
		}
	}
	return out, uid, name, nil
}

// visible reports whether s holds anything a viewer would see: a text of
// only spaces, zero-width and format characters and variation selectors is
// as good as empty.
func visible(s string) bool {
	for _, r := range s {
		if !unicode.IsSpace(r) && !unicode.Is(unicode.Cf, r) && !unicode.Is(unicode.Variation_Selector, r) {
			return true
		}
	}
	return false
}

func validUserID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.:@-", c) >= 0) {
			return false
		}
	}
	return true
}

// forbidden finds the first character a one-line comment must not hold:
// control characters (newlines and tabs included), line and paragraph
// separators, bidirectional overrides that can reorder what others see,
// byte-order marks, and U+FFFD, which stands for bytes that were not text.
// Joiners stay: emoji sequences need them.
func forbidden(s string) (rune, bool) {
	for _, r := range s {
		switch {
		case unicode.IsControl(r),
			r == '\u2028', r == '\u2029',
			r >= '\u202A' && r <= '\u202E',
			r >= '\u2066' && r <= '\u2069',
			r == '\u200E', r == '\u200F', r == '\u061C',
			r == '\uFEFF', r == '\uFFFD',
			r >= '\uFFF9' && r <= '\uFFFB':
			return r, true
		}
	}
	return 0, false
}
