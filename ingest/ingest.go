// Package ingest is the write side: POST /v1/rooms/{room}/messages validates
// one message or a batch, appends it to the log as one entry, and answers 202
// with each message's id and second only once the log has acknowledged it.
package ingest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/httpx"
	"github.com/danmaku/danmaku/internal/keys"
	"github.com/danmaku/danmaku/internal/logstream"
)

// Log is where accepted posts go.
type Log interface {
	// Append stores data as one entry of room's log and returns once it is
	// durable. Appending the same id again returns the first entry's ack.
	Append(ctx context.Context, room string, data []byte, id string) (logstream.Ack, error)
	// Entry reads back a stored entry.
	Entry(ctx context.Context, seq uint64) (logstream.Entry, error)
}

// Config configures an Ingest.
type Config struct {
	Log    Log
	Limits Limits
	// MaxBody caps a request body in bytes; if 0, defaults to 256 KiB.
	MaxBody int64
	// Timeout bounds the wait for the log's acknowledgement; if 0, 5s.
	Timeout time.Duration
	// Auth checks posters' bearer tokens; if nil, every post is anonymous
	// and names its user in its body.
	Auth *Auth
	// RateLimiter limits each poster per room; if nil, nothing is limited.
	RateLimiter *RateLimiter
	// ClientIP finds an anonymous poster's address for its rate limit; if
	// nil, the TCP peer.
	ClientIP func(*http.Request) netip.Addr
	// Enrich adds avatars and applies moderation; the zero value does
	// neither.
	Enrich Enrich
	// CORS answers posts from pages on other origins; if nil, any origin.
	CORS       *httpx.CORS
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Ingest serves POST /v1/rooms/{room}/messages.
type Ingest struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
}

// New checks cfg and returns an Ingest.
func New(cfg Config) (*Ingest, error) {
	if cfg.Log == nil {
		return nil, errors.New("ingest: a log is required")
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = 256 << 10
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.MaxBody < 1024 || cfg.Limits.MaxText < 1 || cfg.Limits.MaxBatch < 1 || cfg.Limits.MaxName < 1 {
		return nil, errors.New("ingest: limits must be positive and the body cap at least 1 KiB")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ClientIP == nil {
		cfg.ClientIP = func(r *http.Request) netip.Addr { return httpx.ClientIP(r, 0) }
	}
	return &Ingest{cfg: cfg, log: cfg.Logger, metrics: newMetrics(cfg.Registerer)}, nil
}

// Register adds the ingest route to mux, with the CORS preflight that lets
// players on the allowed origins post.
func (in *Ingest) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/rooms/{room}/messages", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		in.cfg.CORS.Apply(h, r)
		h["Access-Control-Expose-Headers"] = hvRetryAfter
		in.servePost(w, r)
	})
	mux.HandleFunc("OPTIONS /v1/rooms/{room}/messages", in.servePreflight)
}

var hvRetryAfter = []string{"Retry-After"}

// servePreflight answers a browser's CORS preflight: an allowed origin may
// post JSON with an Idempotency-Key and a bearer token, without cookies. A
// refused origin gets no CORS headers, which the browser takes as a no.
func (in *Ingest) servePreflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if in.cfg.CORS.Allows(r.Header.Get("Origin")) {
		in.cfg.CORS.Apply(h, r)
		h.Set("Access-Control-Allow-Methods", "POST")
		h.Set("Access-Control-Allow-Headers", "Content-Type, Idempotency-Key, Authorization")
		h.Set("Access-Control-Max-Age", "86400")
	}
	w.WriteHeader(http.StatusNoContent)
}

// Accepted is the 202 answer for one message.
type Accepted struct {
	ID     string `json:"id"`
	Second int64  `json:"second"`
}

// AcceptedBatch is the 202 answer for a batch.
type AcceptedBatch struct {
	Messages []Accepted `json:"messages"`
}

func statusOf(code string) int {
	switch code {
	case "body_too_large":
		return http.StatusRequestEntityTooLarge
	case "unsupported_media_type":
		return http.StatusUnsupportedMediaType
	case "idempotency_conflict":
		return http.StatusConflict
	case "blocked":
		return http.StatusUnprocessableEntity
	}
	return http.StatusBadRequest
}

func (in *Ingest) refuse(w http.ResponseWriter, e *InputError) {
	in.metrics.refused(e.Code)
	httpx.Error(w, statusOf(e.Code), e.Code, e.Message)
}

func (in *Ingest) servePost(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	room := r.PathValue("room")
	if !keys.ValidRoom(room) {
		in.refuse(w, inputErr("bad_room", "%v", keys.ErrRoom))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		// text/plain spares browsers a CORS preflight; form encoding is what
		// curl -d sends. The body is JSON either way.
		if err != nil || (mt != "application/json" && mt != "text/plain" && mt != "application/x-www-form-urlencoded") {
			in.refuse(w, inputErr("unsupported_media_type", "send the body as application/json, not %q", ct))
			return
		}
	}
	idem := r.Header.Get("Idempotency-Key")
	if idem != "" && !validIdempotencyKey(idem) {
		in.refuse(w, inputErr("bad_idempotency_key", "Idempotency-Key must be 1-64 printable ASCII characters without spaces"))
		return
	}
	who, authErr := in.identify(r)
	if authErr != nil {
		in.unauthorized(w, authErr)
		return
	}
	limitKey := in.limitKey(r, room, who)
	if in.cfg.RateLimiter != nil {
		// Refuse a poster over its limit before reading the body.
		if wait := in.cfg.RateLimiter.Peek(limitKey, who.Verified, time.Now()); wait > 0 {
			in.rateLimited(w, wait)
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, in.cfg.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			in.refuse(w, inputErr("body_too_large", "the body is larger than %d bytes", in.cfg.MaxBody))
			return
		}
		in.refuse(w, inputErr("bad_body", "could not read the body: %v", err))
		return
	}
	post, err := Decode(body, in.cfg.Limits)
	if err != nil {
		var ie *InputError
		if errors.As(err, &ie) {
			in.refuse(w, ie)
			return
		}
		in.refuse(w, inputErr("bad_json", "%v", err))
		return
	}
	if who.Verified {
		// The token is the identity: user fields in the body are ignored.
		post.UserID, post.UserName = who.UserID, who.Name
		post.Badges, post.Priority = who.Badges(), who.Priority
	}
	if in.cfg.RateLimiter != nil {
		wait, err := in.cfg.RateLimiter.Take(limitKey, who.Verified, len(post.Messages), time.Now())
		if err != nil {
			_, burst := in.cfg.RateLimiter.limits(who.Verified)
			in.refuse(w, inputErr("batch_too_large", "a batch holds at most %d messages for this poster (the rate limit's burst)", burst))
			return
		}
		if wait > 0 {
			in.rateLimited(w, wait)
			return
		}
	}
	if idem != "" {
		post.Key = fingerprint(post)
	}
	if ie := in.enrich(r.Context(), room, who, post); ie != nil {
		in.refuse(w, ie)
		return
	}
	data, err := logstream.EncodePost(post)
	if err != nil {
		httpx.Error(w, http.StatusInternalServerError, "internal", "could not encode the post")
		return
	}
	id := "k:" + room + ":" + idem
	if idem == "" {
		id = newID()
	}
	ack, err := in.append(r.Context(), room, data, id)
	if err != nil {
		in.logUnavailable(w, room, err)
		return
	}
	if ack.Duplicate {
		prev, err := in.cfg.Log.Entry(r.Context(), ack.Seq)
		if err != nil {
			in.logUnavailable(w, room, err)
			return
		}
		if prev.Room != room || !samePost(prev.Data, data, post.Key) {
			in.refuse(w, inputErr("idempotency_conflict", "this Idempotency-Key was used for a different post"))
			return
		}
	}
	in.metrics.appendSeconds.Observe(time.Since(start).Seconds())
	in.metrics.requests.WithLabelValues("accepted").Inc()
	in.metrics.messages.Add(float64(len(post.Messages)))
	second := ack.Time.Unix()
	n := len(post.Messages)
	accepted := make([]Accepted, n)
	for i := range accepted {
		accepted[i] = Accepted{ID: bucketer.MessageID(ack.Seq, i, n), Second: second}
	}
	if isArray(body) {
		httpx.JSON(w, http.StatusAccepted, AcceptedBatch{Messages: accepted})
		return
	}
	httpx.JSON(w, http.StatusAccepted, accepted[0])
}

func (in *Ingest) logUnavailable(w http.ResponseWriter, room string, err error) {
	in.metrics.requests.WithLabelValues("log_unavailable").Inc()
	in.log.Warn("log append failed", "room", room, "err", err)
	w.Header().Set("Retry-After", "1")
	httpx.Error(w, http.StatusServiceUnavailable, "log_unavailable",
		"the message log did not acknowledge the post; retry with the same Idempotency-Key to avoid a duplicate")
}

// append retries a failed append with the same id, which the log
// de-duplicates, until the timeout.
func (in *Ingest) append(ctx context.Context, room string, data []byte, id string) (logstream.Ack, error) {
	ctx, cancel := context.WithTimeout(ctx, in.cfg.Timeout)
	defer cancel()
	wait := 50 * time.Millisecond
	for {
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		ack, err := in.cfg.Log.Append(actx, room, data, id)
		acancel()
		if err == nil {
			return ack, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ack, err
		case <-t.C:
		}
		wait = min(wait*2, time.Second)
	}
}

func isArray(body []byte) bool {
	b := bytes.TrimLeft(body, " \t\r\n")
	return len(b) > 0 && b[0] == '['
}

func validIdempotencyKey(k string) bool {
	if len(k) > 64 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] <= ' ' || k[i] > '~' {
			return false
		}
	}
	return true
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

type metrics struct {
	requests      *prometheus.CounterVec
	messages      prometheus.Counter
	appendSeconds prometheus.Histogram
	moderated     *prometheus.CounterVec
}

func (m *metrics) refused(code string) { m.requests.WithLabelValues(code).Inc() }

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "danmaku_ingest_requests_total",
			Help: "POSTs by result: accepted, or the error code they were refused with."}, []string{"result"}),
		messages: prometheus.NewCounter(prometheus.CounterOpts{Name: "danmaku_ingest_messages_total", Help: "Messages accepted."}),
		appendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "danmaku_ingest_post_seconds",
			Help:    "Time from receiving an accepted POST to its 202, log acknowledgement included.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 15)}),
		moderated: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "danmaku_ingest_moderated_messages_total",
			Help: "Messages masked or blocked, by who decided (service, word_list) and the action (mask, block)."}, []string{"by", "action"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.messages, m.appendSeconds, m.moderated)
	}
	return m
}
