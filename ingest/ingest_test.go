package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danmaku/danmaku/ingest"
	"github.com/danmaku/danmaku/internal/logstream"
)

// fakeLog is an ingest.Log whose behaviour the test sets; it records every
// Append.
type fakeLog struct {
	AppendFunc func(ctx context.Context, room string, data []byte, id string) (logstream.Ack, error)
	EntryFunc  func(ctx context.Context, seq uint64) (logstream.Entry, error)

	mu      sync.Mutex // guards appends and entries
	appends []appendCall
	entries int
}

type appendCall struct {
	room string
	data []byte
	id   string
	// deadline is the context's deadline, zero if it has none.
	deadline time.Time
}

func (f *fakeLog) Append(ctx context.Context, room string, data []byte, id string) (logstream.Ack, error) {
	d, _ := ctx.Deadline()
	f.mu.Lock()
	f.appends = append(f.appends, appendCall{room: room, data: append([]byte(nil), data...), id: id, deadline: d})
	f.mu.Unlock()
	return f.AppendFunc(ctx, room, data, id)
}

func (f *fakeLog) Entry(ctx context.Context, seq uint64) (logstream.Entry, error) {
	f.mu.Lock()
	f.entries++
	f.mu.Unlock()
	if f.EntryFunc == nil {
		return logstream.Entry{}, errors.New("fake: no entries")
	}
	return f.EntryFunc(ctx, seq)
}

func (f *fakeLog) calls() []appendCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]appendCall(nil), f.appends...)
}

// The log stamps every entry in this second, 250 ms in.
var ackTime = time.Unix(1767225600, 250_000_000)

// memLog is a fakeLog that behaves like JetStream: sequences from firstSeq,
// and an id seen before returns the first entry's ack marked Duplicate.
func memLog(firstSeq uint64) *fakeLog {
	var mu sync.Mutex
	byID := map[string]uint64{}
	entries := map[uint64]logstream.Entry{}
	next := firstSeq
	return &fakeLog{
		AppendFunc: func(_ context.Context, room string, data []byte, id string) (logstream.Ack, error) {
			mu.Lock()
			defer mu.Unlock()
			if seq, ok := byID[id]; ok {
				return logstream.Ack{Seq: seq, Time: entries[seq].Time, Duplicate: true}, nil
			}
			seq := next
			next++
			byID[id] = seq
			entries[seq] = logstream.Entry{Seq: seq, Time: ackTime, Room: room, Data: append([]byte(nil), data...)}
			return logstream.Ack{Seq: seq, Time: ackTime}, nil
		},
		EntryFunc: func(_ context.Context, seq uint64) (logstream.Entry, error) {
			mu.Lock()
			defer mu.Unlock()
			e, ok := entries[seq]
			if !ok {
				return logstream.Entry{}, errors.New("fake: no such entry")
			}
			return e, nil
		},
	}
}

func newIngest(t *testing.T, cfg ingest.Config) http.Handler {
	t.Helper()
	in, err := ingest.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	in.Register(mux)
	return mux
}

type request struct {
	path string // default /v1/rooms/lobby/messages
	body string
	ct   string // Content-Type; "-" for none
	key  string // Idempotency-Key
}

func do(h http.Handler, r request) *httptest.ResponseRecorder {
	path := r.path
	if path == "" {
		path = "/v1/rooms/lobby/messages"
	}
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(r.body))
	switch r.ct {
	case "":
		req.Header.Set("Content-Type", "application/json")
	case "-":
	default:
		req.Header.Set("Content-Type", r.ct)
	}
	if r.key != "" {
		req.Header.Set("Idempotency-Key", r.key)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// decodeStrict decodes a JSON answer into v, refusing unknown keys.
func decodeStrict(t *testing.T, rec *httptest.ResponseRecorder, v any) {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	dec := json.NewDecoder(strings.NewReader(rec.Body.String()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("answer %q: %v", rec.Body.String(), err)
	}
}

// wantRefused checks a 4xx JSON error answer with the given status and code.
func wantRefused(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if rec.Code != status {
		t.Errorf("status = %d (%s), want %d", rec.Code, rec.Body.String(), status)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	var eb struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	decodeStrict(t, rec, &eb)
	if eb.Code != code {
		t.Errorf("code = %q (%s), want %q", eb.Code, eb.Message, code)
	}
	if eb.Message == "" {
		t.Error("empty message")
	}
}

func TestNew(t *testing.T) {
	log := memLog(1)
	tests := []struct {
		name string
		cfg  ingest.Config
		ok   bool
	}{
		{"defaults", ingest.Config{Log: log}, true},
		{"no log", ingest.Config{}, false},
		{"body cap 1 KiB", ingest.Config{Log: log, MaxBody: 1024}, true},
		{"body cap under 1 KiB", ingest.Config{Log: log, MaxBody: 1023}, false},
		{"negative body cap", ingest.Config{Log: log, MaxBody: -1}, false},
		{"negative text limit", ingest.Config{Log: log, Limits: ingest.Limits{MaxText: -1}}, false},
		{"negative batch limit", ingest.Config{Log: log, Limits: ingest.Limits{MaxBatch: -1}}, false},
		{"negative name limit", ingest.Config{Log: log, Limits: ingest.Limits{MaxName: -1}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := ingest.New(tt.cfg)
			if tt.ok && (err != nil || in == nil) {
				t.Errorf("New = %v, %v; want an Ingest", in, err)
			}
			if !tt.ok && err == nil {
				t.Error("New succeeded")
			}
		})
	}
}

func TestPostSingle(t *testing.T) {
	log := memLog(42)
	h := newIngest(t, ingest.Config{Log: log})
	rec := do(h, request{body: `{"text":" hello ","color":"#f00","mode":"top","user_id":"u1","user_name":"Ann"}`})
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status = %d (%s), want 202", rec.Code, rec.Body.String())
	}
	var got ingest.Accepted
	decodeStrict(t, rec, &got)
	if want := (ingest.Accepted{ID: "42", Second: ackTime.Unix()}); got != want {
		t.Errorf("answer = %+v, want %+v", got, want)
	}
	calls := log.calls()
	if len(calls) != 1 {
		t.Fatalf("Append called %d times, want 1", len(calls))
	}
	c := calls[0]
	if c.room != "lobby" {
		t.Errorf("Append room = %q, want lobby", c.room)
	}
	if c.id == "" {
		t.Error("Append id is empty")
	}
	if c.deadline.IsZero() {
		t.Error("Append context has no deadline")
	}
	post, err := logstream.DecodePost(c.data)
	if err != nil {
		t.Fatalf("Append data %q: %v", c.data, err)
	}
	want := &logstream.Post{UserID: "u1", UserName: "Ann",
		Messages: []logstream.Message{{Text: "hello", Color: 0xFF0000, Mode: 1}}}
	if !reflect.DeepEqual(post, want) {
		t.Errorf("Append data decodes to %+v, want %+v", post, want)
	}
}

func TestPostBatch(t *testing.T) {
	log := memLog(7)
	h := newIngest(t, ingest.Config{Log: log})
	rec := do(h, request{body: ` [{"text":"a"},{"text":"b","mode":"bottom"},{"text":"c","color":1}]`})
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status = %d (%s), want 202", rec.Code, rec.Body.String())
	}
	var got ingest.AcceptedBatch
	decodeStrict(t, rec, &got)
	s := ackTime.Unix()
	want := ingest.AcceptedBatch{Messages: []ingest.Accepted{{"7.0", s}, {"7.1", s}, {"7.2", s}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("answer = %+v, want %+v", got, want)
	}
	calls := log.calls()
	if len(calls) != 1 {
		t.Fatalf("Append called %d times, want 1 (a batch is one entry)", len(calls))
	}
	post, err := logstream.DecodePost(calls[0].data)
	if err != nil {
		t.Fatal(err)
	}
	wantPost := &logstream.Post{Messages: []logstream.Message{
		{Text: "a", Color: 0xFFFFFF}, {Text: "b", Color: 0xFFFFFF, Mode: 2}, {Text: "c", Color: 1}}}
	if !reflect.DeepEqual(post, wantPost) {
		t.Errorf("Append data decodes to %+v, want %+v", post, wantPost)
	}
}

// A batch of one answers in the batch shape, and its id is the sequence
// alone, as the bucket will carry it.
func TestPostBatchOfOne(t *testing.T) {
	h := newIngest(t, ingest.Config{Log: memLog(9)})
	rec := do(h, request{body: `[{"text":"a"}]`})
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status = %d (%s), want 202", rec.Code, rec.Body.String())
	}
	var got ingest.AcceptedBatch
	decodeStrict(t, rec, &got)
	want := ingest.AcceptedBatch{Messages: []ingest.Accepted{{"9", ackTime.Unix()}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("answer = %+v, want %+v", got, want)
	}
}

// Without an Idempotency-Key every POST is a new entry with its own id.
func TestPostIDsDiffer(t *testing.T) {
	log := memLog(1)
	h := newIngest(t, ingest.Config{Log: log})
	for range 2 {
		if rec := do(h, request{body: `{"text":"same"}`}); rec.Code != http.StatusAccepted {
			t.Fatalf("status = %d (%s), want 202", rec.Code, rec.Body.String())
		}
	}
	calls := log.calls()
	if len(calls) != 2 || calls[0].id == calls[1].id || strings.HasPrefix(calls[0].id, "k:") {
		t.Errorf("Append ids = %q, %q; want two different generated ids", calls[0].id, calls[1].id)
	}
}

func TestContentType(t *testing.T) {
	tests := []struct {
		name string
		ct   string
		ok   bool
	}{
		{"json", "application/json", true},
		{"json with charset", "application/json; charset=utf-8", true},
		{"json upper case", "Application/JSON", true},
		{"missing", "-", true},
		{"text plain", "text/plain", true},
		{"text plain with charset", "text/plain;charset=UTF-8", true},
		{"form", "application/x-www-form-urlencoded", true},
		{"multipart", "multipart/form-data; boundary=xyz", false},
		{"xml", "application/xml", false},
		{"octet stream", "application/octet-stream", false},
		{"json suffix type", "application/problem+json", false},
		{"malformed", "application/json; charset", false},
		{"garbage", ";;;", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := memLog(1)
			h := newIngest(t, ingest.Config{Log: log})
			rec := do(h, request{body: `{"text":"a"}`, ct: tt.ct})
			if tt.ok {
				if rec.Code != http.StatusAccepted {
					t.Errorf("status = %d (%s), want 202", rec.Code, rec.Body.String())
				}
				return
			}
			wantRefused(t, rec, http.StatusUnsupportedMediaType, "unsupported_media_type")
			if n := len(log.calls()); n != 0 {
				t.Errorf("Append called %d times for a refused post", n)
			}
		})
	}
}

func TestRefused(t *testing.T) {
	tests := []struct {
		name   string
		req    request
		status int
		code   string
	}{
		{"room with dot", request{path: "/v1/rooms/a.b/messages", body: `{"text":"a"}`}, 400, "bad_room"},
		{"room 65 chars", request{path: "/v1/rooms/" + strings.Repeat("r", 65) + "/messages", body: `{"text":"a"}`}, 400, "bad_room"},
		{"room with space", request{path: "/v1/rooms/a%20b/messages", body: `{"text":"a"}`}, 400, "bad_room"},
		{"room encoded slash", request{path: "/v1/rooms/a%2Fb/messages", body: `{"text":"a"}`}, 400, "bad_room"},
		{"room cyrillic", request{path: "/v1/rooms/%D0%B0/messages", body: `{"text":"a"}`}, 400, "bad_room"},
		{"bad room beats bad body", request{path: "/v1/rooms/a.b/messages", body: `nope`}, 400, "bad_room"},
		{"key with space", request{key: "a b", body: `{"text":"a"}`}, 400, "bad_idempotency_key"},
		{"key 65 chars", request{key: strings.Repeat("k", 65), body: `{"text":"a"}`}, 400, "bad_idempotency_key"},
		{"key non-ascii", request{key: "ключ", body: `{"text":"a"}`}, 400, "bad_idempotency_key"},
		{"key with tab", request{key: "a\tb", body: `{"text":"a"}`}, 400, "bad_idempotency_key"},
		{"key with del", request{key: "a\x7fb", body: `{"text":"a"}`}, 400, "bad_idempotency_key"},
		{"multipart", request{ct: "multipart/form-data; boundary=x", body: `{"text":"a"}`}, 415, "unsupported_media_type"},
		{"empty body", request{body: ``}, 400, "bad_json"},
		{"not json", request{body: `hello`}, 400, "bad_json"},
		{"trailing data", request{body: `{"text":"a"} {}`}, 400, "bad_json"},
		{"unknown field", request{body: `{"text":"a","x":1}`}, 400, "unknown_field"},
		{"wrong type", request{body: `{"text":1}`}, 400, "bad_type"},
		{"missing text", request{body: `{}`}, 400, "missing_text"},
		{"empty text", request{body: `{"text":"  "}`}, 400, "empty_text"},
		{"long text", request{body: obj(strings.Repeat("x", 201))}, 400, "text_too_long"},
		{"newline", request{body: `{"text":"a\nb"}`}, 400, "control_character"},
		{"bad color", request{body: `{"text":"a","color":"red"}`}, 400, "bad_color"},
		{"bad mode", request{body: `{"text":"a","mode":"left"}`}, 400, "bad_mode"},
		{"bad user", request{body: `{"text":"a","user_id":"a b"}`}, 400, "bad_user"},
		{"invalid utf8", request{body: "{\"text\":\"\xff\"}"}, 400, "invalid_utf8"},
		{"empty batch", request{body: `[]`}, 400, "empty_batch"},
		{"batch too large", request{body: arr(obj("a"), obj("b"), obj("c"), obj("d"))}, 400, "batch_too_large"},
		{"mixed users", request{body: arr(obj("a", `"user_id":"x"`), obj("b", `"user_id":"y"`))}, 400, "mixed_users"},
		{"deep nesting", request{body: strings.Repeat("[", 100000)}, 400, "bad_json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := memLog(1)
			h := newIngest(t, ingest.Config{Log: log, Limits: ingest.Limits{MaxBatch: 3}, MaxBody: 200 << 10})
			rec := do(h, tt.req)
			wantRefused(t, rec, tt.status, tt.code)
			if n := len(log.calls()); n != 0 {
				t.Errorf("Append called %d times for a refused post", n)
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	const limit = 1024
	body := func(n int) string { // a valid post of exactly n bytes
		b := `{"text":"a"}`
		return b + strings.Repeat(" ", n-len(b))
	}
	tests := []struct {
		name string
		size int
		ok   bool
	}{
		{"under the limit", limit - 1, true},
		{"at the limit", limit, true},
		{"one over", limit + 1, false},
		{"far over", 10 * limit, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := memLog(1)
			h := newIngest(t, ingest.Config{Log: log, MaxBody: limit})
			rec := do(h, request{body: body(tt.size)})
			if tt.ok {
				if rec.Code != http.StatusAccepted {
					t.Errorf("status = %d (%s), want 202", rec.Code, rec.Body.String())
				}
				return
			}
			wantRefused(t, rec, http.StatusRequestEntityTooLarge, "body_too_large")
			if n := len(log.calls()); n != 0 {
				t.Errorf("Append called %d times for a refused post", n)
			}
		})
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Run("id carries room and key", func(t *testing.T) {
		log := memLog(5)
		h := newIngest(t, ingest.Config{Log: log})
		key := strings.Repeat("k", 60) + ":~!/"
		rec := do(h, request{path: "/v1/rooms/room-1/messages", body: `{"text":"a"}`, key: key})
		if rec.Code != http.StatusAccepted {
			t.Fatalf("status = %d (%s), want 202", rec.Code, rec.Body.String())
		}
		calls := log.calls()
		if len(calls) != 1 || calls[0].id != "k:room-1:"+key {
			t.Fatalf("Append calls %+v, want one with id %q", calls, "k:room-1:"+key)
		}
	})
	t.Run("same key in two rooms", func(t *testing.T) {
		log := memLog(5)
		h := newIngest(t, ingest.Config{Log: log})
		a := do(h, request{path: "/v1/rooms/a/messages", body: `{"text":"a"}`, key: "k1"})
		b := do(h, request{path: "/v1/rooms/b/messages", body: `{"text":"a"}`, key: "k1"})
		var ga, gb ingest.Accepted
		decodeStrict(t, a, &ga)
		decodeStrict(t, b, &gb)
		if a.Code != http.StatusAccepted || b.Code != http.StatusAccepted || ga.ID == gb.ID {
			t.Errorf("answers %d %+v and %d %+v; want two accepted entries", a.Code, ga, b.Code, gb)
		}
	})
	t.Run("duplicate with the same post", func(t *testing.T) {
		log := memLog(11)
		h := newIngest(t, ingest.Config{Log: log})
		body := `[{"text":"a","user_id":"u"},{"text":"b","user_id":"u"}]`
		first := do(h, request{body: body, key: "retry-1"})
		// The same post again, spelled differently: it encodes to the same entry.
		second := do(h, request{body: "\n[ {\"user_id\":\"u\", \"text\":\" a \"}, {\"text\":\"b\",\"user_id\":\"u\"} ]", key: "retry-1"})
		for _, rec := range []*httptest.ResponseRecorder{first, second} {
			if rec.Code != http.StatusAccepted {
				t.Fatalf("status = %d (%s), want 202", rec.Code, rec.Body.String())
			}
		}
		var a, b ingest.AcceptedBatch
		decodeStrict(t, first, &a)
		decodeStrict(t, second, &b)
		want := ingest.AcceptedBatch{Messages: []ingest.Accepted{{"11.0", ackTime.Unix()}, {"11.1", ackTime.Unix()}}}
		if !reflect.DeepEqual(a, want) || !reflect.DeepEqual(b, want) {
			t.Errorf("answers %+v and %+v, want both %+v", a, b, want)
		}
		if log.entries != 1 {
			t.Errorf("Entry called %d times, want once, for the duplicate", log.entries)
		}
	})
	t.Run("duplicate with a different post", func(t *testing.T) {
		log := memLog(11)
		h := newIngest(t, ingest.Config{Log: log})
		if rec := do(h, request{body: `{"text":"a"}`, key: "k"}); rec.Code != http.StatusAccepted {
			t.Fatalf("status = %d (%s), want 202", rec.Code, rec.Body.String())
		}
		rec := do(h, request{body: `{"text":"b"}`, key: "k"})
		wantRefused(t, rec, http.StatusConflict, "idempotency_conflict")
	})
	t.Run("duplicate of another room's entry", func(t *testing.T) {
		data, _ := logstream.EncodePost(&logstream.Post{Messages: []logstream.Message{{Text: "a", Color: 0xFFFFFF}}})
		log := &fakeLog{
			AppendFunc: func(context.Context, string, []byte, string) (logstream.Ack, error) {
				return logstream.Ack{Seq: 3, Time: ackTime, Duplicate: true}, nil
			},
			EntryFunc: func(context.Context, uint64) (logstream.Entry, error) {
				return logstream.Entry{Seq: 3, Time: ackTime, Room: "other", Data: data}, nil
			},
		}
		h := newIngest(t, ingest.Config{Log: log})
		wantRefused(t, do(h, request{body: `{"text":"a"}`, key: "k"}), http.StatusConflict, "idempotency_conflict")
	})
	t.Run("duplicate whose entry cannot be read", func(t *testing.T) {
		log := &fakeLog{
			AppendFunc: func(context.Context, string, []byte, string) (logstream.Ack, error) {
				return logstream.Ack{Seq: 3, Time: ackTime, Duplicate: true}, nil
			},
			EntryFunc: func(context.Context, uint64) (logstream.Entry, error) {
				return logstream.Entry{}, errors.New("log: connection lost")
			},
		}
		h := newIngest(t, ingest.Config{Log: log})
		rec := do(h, request{body: `{"text":"a"}`, key: "k"})
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
			t.Errorf("status = %d, Retry-After %q; want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
		}
	})
}

func TestLogUnavailable(t *testing.T) {
	log := &fakeLog{
		AppendFunc: func(context.Context, string, []byte, string) (logstream.Ack, error) {
			return logstream.Ack{}, errors.New("nats: no responders")
		},
	}
	h := newIngest(t, ingest.Config{Log: log, Timeout: 300 * time.Millisecond})
	start := time.Now()
	rec := do(h, request{body: `{"text":"a"}`, key: "k1"})
	elapsed := time.Since(start)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status = %d (%s), want 503", rec.Code, rec.Body.String())
	}
	if ra := rec.Header().Get("Retry-After"); ra == "" {
		t.Error("no Retry-After")
	} else if n, err := strconv.Atoi(ra); err != nil || n < 1 {
		t.Errorf("Retry-After = %q, want a positive number of seconds", ra)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	var eb struct{ Code, Message string }
	decodeStrict(t, rec, &eb)
	if eb.Code != "log_unavailable" {
		t.Errorf("code = %q, want log_unavailable", eb.Code)
	}
	if elapsed < 250*time.Millisecond || elapsed > 3*time.Second {
		t.Errorf("answered after %v; want about the 300ms timeout", elapsed)
	}
	calls := log.calls()
	if len(calls) < 2 {
		t.Fatalf("Append called %d times, want retries", len(calls))
	}
	for i, c := range calls {
		if c.id != "k:lobby:k1" || c.room != "lobby" || string(c.data) != string(calls[0].data) {
			t.Errorf("attempt %d: room %q id %q data %q; want the first attempt's", i, c.room, c.id, c.data)
		}
		if c.deadline.IsZero() || c.deadline.After(start.Add(time.Second)) {
			t.Errorf("attempt %d: deadline %v, want one within the 300ms timeout", i, c.deadline)
		}
	}
}

// Retries without an Idempotency-Key reuse the generated id, so the log
// de-duplicates them.
func TestRetryKeepsGeneratedID(t *testing.T) {
	var attempts int
	var mu sync.Mutex
	log := &fakeLog{}
	log.AppendFunc = func(context.Context, string, []byte, string) (logstream.Ack, error) {
		mu.Lock()
		defer mu.Unlock()
		attempts++
		if attempts < 3 {
			return logstream.Ack{}, errors.New("timeout")
		}
		return logstream.Ack{Seq: 77, Time: ackTime}, nil
	}
	h := newIngest(t, ingest.Config{Log: log, Timeout: 2 * time.Second})
	rec := do(h, request{body: `{"text":"a"}`})
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status = %d (%s), want 202", rec.Code, rec.Body.String())
	}
	var got ingest.Accepted
	decodeStrict(t, rec, &got)
	if got != (ingest.Accepted{ID: "77", Second: ackTime.Unix()}) {
		t.Errorf("answer = %+v", got)
	}
	calls := log.calls()
	if len(calls) != 3 {
		t.Fatalf("Append called %d times, want 3", len(calls))
	}
	for _, c := range calls[1:] {
		if c.id != calls[0].id || c.id == "" {
			t.Errorf("retry ids %q and %q differ", calls[0].id, c.id)
		}
	}
}

// A client that goes away ends the wait for the log.
func TestClientGone(t *testing.T) {
	log := &fakeLog{
		AppendFunc: func(ctx context.Context, _ string, _ []byte, _ string) (logstream.Ack, error) {
			<-ctx.Done()
			return logstream.Ack{}, ctx.Err()
		},
	}
	h := newIngest(t, ingest.Config{Log: log, Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req := httptest.NewRequest(http.MethodPost, "/v1/rooms/lobby/messages", strings.NewReader(`{"text":"a"}`)).WithContext(ctx)
	rec := httptest.NewRecorder()
	start := time.Now()
	h.ServeHTTP(rec, req)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("answered after %v, long after the client left", d)
	}
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("status = %d, want 503", rec.Code)
	}
}

// TestCORS: a page on another origin can post (and read the answer), with
// an Idempotency-Key after a preflight.
func TestCORS(t *testing.T) {
	h := newIngest(t, ingest.Config{Log: memLog(1)})
	for name, rec := range map[string]*httptest.ResponseRecorder{
		"accepted": do(h, request{body: `{"text":"hi"}`, ct: "text/plain;charset=UTF-8"}),
		"refused":  do(h, request{body: `{"text":" "}`}),
	} {
		if got := rec.Header().Get("Access-Control-Allow-Origin"); got != "*" {
			t.Errorf("%s (%d): Access-Control-Allow-Origin %q, want *", name, rec.Code, got)
		}
	}
	req := httptest.NewRequest(http.MethodOptions, "/v1/rooms/lobby/messages", nil)
	req.Header.Set("Origin", "https://player.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type,idempotency-key")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNoContent {
		t.Fatalf("preflight: %d, want 204", rec.Code)
	}
	allow := strings.ToLower(rec.Header().Get("Access-Control-Allow-Headers"))
	if rec.Header().Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(allow, "idempotency-key") || !strings.Contains(allow, "content-type") ||
		rec.Header().Get("Access-Control-Allow-Methods") != "POST" {
		t.Errorf("preflight headers %v", rec.Header())
	}
}
