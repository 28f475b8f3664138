// Package origin serves buckets, segments and the head of each room from an
// in-memory ring of the newest sealed objects, falling back to the store. It
// never answers 200 for a second that is not sealed, holds requests for the
// next few seconds until they seal, and answers everything else that is not
// final with an uncacheable 404.
package origin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/httpx"
	"github.com/danmaku/danmaku/internal/keys"
	"github.com/danmaku/danmaku/publisher"
)

// DefaultHold is how long a request for a second that has not sealed yet is
// held before it is answered 404. The CDN's origin read timeout must stay
// well above it (terraform/ reads this value).
const DefaultHold = 3 * time.Second

// storeTimeout bounds a store read on a ring miss, well under a CDN's
// origin timeout (30 s).
const storeTimeout = 10 * time.Second

// Getter reads objects from the store on a ring miss.
type Getter interface {
	// Get returns the object under key, or an error wrapping
	// publisher.ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
}

// Config configures an Origin.
type Config struct {
	// Store answers ring misses; required.
	Store Getter
	// RingSeconds is how many of each room's newest seconds stay in memory;
	// if 0, defaults to 60.
	RingSeconds int
	// Hold bounds how long a request for an unsealed second waits; if 0,
	// defaults to DefaultHold.
	Hold time.Duration
	// HoldAhead is how many seconds past the current one are held rather
	// than refused; if 0, defaults to 2.
	HoldAhead int64
	// MaxHeld caps requests held at once; past it, requests for unsealed
	// seconds are answered 404 at once. If 0, defaults to 20000.
	MaxHeld int
	// MaxHeldPerClient caps the requests one client (an address, or an
	// IPv6 /64, as ClientIP tells) has held at once; past it, that client's
	// requests for unsealed seconds are answered 404 not_sealed at once. If
	// 0, there is no per-client cap.
	MaxHeldPerClient int
	// TrustProxyHops is how many proxies in front append to
	// X-Forwarded-For, to find a request's client for MaxHeldPerClient;
	// 0 uses the TCP peer (see httpx.ClientIP).
	TrustProxyHops int
	// CORS answers cross-origin reads; if nil, any origin may read.
	CORS *httpx.CORS
	// MaxRooms caps rooms in the ring; if 0, defaults to 100000.
	MaxRooms int
	// PollMS is the poll interval head asks players to keep; if 0,
	// defaults to 1000.
	PollMS int
	// Logger; if nil, slog.Default().
	Logger *slog.Logger
	// Registerer for metrics; if nil, metrics are not registered.
	Registerer prometheus.Registerer
	// Now is the clock; if nil, time.Now.
	Now func() time.Time
}

// Origin is the read side. It implements publisher.Announcer.
type Origin struct {
	state
	cfg          Config
	log          *slog.Logger
	metrics      *metrics
	segmentSlots int
	held         atomic.Int64
	clients      *clientHolds // nil without a per-client cap
}

var _ publisher.Announcer = (*Origin)(nil)

// New checks cfg and returns an Origin.
func New(cfg Config) (*Origin, error) {
	if cfg.Store == nil {
		return nil, errors.New("origin: a store is required")
	}
	if cfg.RingSeconds == 0 {
		cfg.RingSeconds = 60
	}
	if cfg.Hold == 0 {
		cfg.Hold = DefaultHold
	}
	if cfg.HoldAhead == 0 {
		cfg.HoldAhead = 2
	}
	if cfg.MaxHeld == 0 {
		cfg.MaxHeld = 20000
	}
	if cfg.MaxRooms == 0 {
		cfg.MaxRooms = 100000
	}
	if cfg.PollMS == 0 {
		cfg.PollMS = 1000
	}
	if cfg.RingSeconds < keys.SegmentSeconds || cfg.Hold < 0 || cfg.HoldAhead < 0 || cfg.MaxHeld < 0 || cfg.MaxHeldPerClient < 0 || cfg.MaxRooms < 1 || cfg.PollMS < 100 {
		return nil, fmt.Errorf("origin: bad config: ring %d s (min 10), hold %v, hold-ahead %d, max-held %d, max-rooms %d, poll %d ms (min 100)",
			cfg.RingSeconds, cfg.Hold, cfg.HoldAhead, cfg.MaxHeld, cfg.MaxRooms, cfg.PollMS)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	o := &Origin{
		cfg:          cfg,
		log:          cfg.Logger,
		metrics:      newMetrics(cfg.Registerer),
		segmentSlots: (cfg.RingSeconds + keys.SegmentSeconds - 1) / keys.SegmentSeconds,
	}
	if cfg.MaxHeldPerClient > 0 {
		o.clients = newClientHolds(cfg.MaxHeldPerClient)
	}
	ch := make(chan struct{})
	o.sealedCh.Store(&ch)
	return o, nil
}

// Ready reports whether every partition has a watermark, so the origin can
// tell sealed seconds from open ones.
func (o *Origin) Ready() bool {
	for p := range o.marks {
		if o.marks[p].Load() == nil {
			return false
		}
	}
	return true
}

// Register adds the read routes to mux.
func (o *Origin) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/rooms/{room}/buckets/{name}", func(w http.ResponseWriter, r *http.Request) {
		o.serveObject(w, r, keys.Bucket, r.PathValue("room"), r.PathValue("name"))
	})
	mux.HandleFunc("GET /v1/rooms/{room}/segments/{name}", func(w http.ResponseWriter, r *http.Request) {
		o.serveObject(w, r, keys.Segment, r.PathValue("room"), r.PathValue("name"))
	})
	mux.HandleFunc("GET /v1/rooms/{room}/head", func(w http.ResponseWriter, r *http.Request) {
		o.serveHead(w, r, r.PathValue("room"))
	})
}

// Header values, shared so that setting them does not allocate.
var (
	hvJSON      = []string{"application/json"}
	hvGzip      = []string{"gzip"}
	hvImmutable = []string{"public, max-age=31536000, immutable"}
	hvHead      = []string{"public, max-age=1"}
	hvVary      = []string{"Accept-Encoding"}
)

// outcome labels what answered a request, for metrics.
type outcome int

const (
	fromRing outcome = iota
	fromStore
	empty
	notModified
	notSealed
	future
	badRequest
	storeError
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"ring", "store", "empty", "not_modified", "not_sealed", "future", "bad_request", "store_error"}

func (o *Origin) serveObject(w http.ResponseWriter, r *http.Request, kind keys.Kind, room, name string) {
	start := o.cfg.Now()
	res := o.object(w, r, kind, room, name)
	o.metrics.requests[kind][res].Inc()
	o.metrics.latency[kind].Observe(o.cfg.Now().Sub(start).Seconds())
}

func (o *Origin) object(w http.ResponseWriter, r *http.Request, kind keys.Kind, room, name string) outcome {
	h := w.Header()
	o.cfg.CORS.Apply(h, r)
	if !keys.ValidRoom(room) {
		httpx.Error(w, http.StatusBadRequest, "bad_room", keys.ErrRoom.Error())
		return badRequest
	}
	second, err := keys.ParseJSONName(name)
	if err != nil {
		httpx.Error(w, http.StatusBadRequest, "bad_second", "the last path element must be {second}.json: "+err.Error())
		return badRequest
	}
	if kind == keys.Segment && second%keys.SegmentSeconds != 0 {
		httpx.Error(w, http.StatusBadRequest, "bad_segment", keys.ErrAligned.Error())
		return badRequest
	}
	it, res, err := o.lookup(r.Context(), kind, room, second, func() netip.Addr {
		return httpx.ClientIP(r, o.cfg.TrustProxyHops)
	})
	switch {
	case err != nil:
		o.log.Warn("store read failed", "room", room, "kind", kind, "second", second, "err", err)
		w.Header().Set("Retry-After", "1")
		httpx.Error(w, http.StatusServiceUnavailable, "store_unavailable", "the store could not be read; try again")
		return storeError
	case res == future:
		httpx.Error(w, http.StatusNotFound, "future", fmt.Sprintf("%s %d is too far in the future", kind, second))
		return res
	case res == notSealed:
		httpx.Error(w, http.StatusNotFound, "not_sealed", fmt.Sprintf("%s %d is not sealed yet; ask again", kind, second))
		return res
	}
	if serveItem(w, r, it) {
		return notModified
	}
	return res
}

// serveItem writes a 200 (or 304) for it and reports whether it was a 304.
func serveItem(w http.ResponseWriter, r *http.Request, it *item) bool {
	h := w.Header()
	h["Content-Type"] = hvJSON
	h["Cache-Control"] = hvImmutable
	if _, set := h["Vary"]; !set { // CORS may have added Origin
		h["Vary"] = hvVary
	}
	gz := httpx.AcceptsGzip(r.Header.Get("Accept-Encoding"))
	etag, body, length := it.etagHV(), it.gz, it.lengthHV()
	if gz {
		h["Content-Encoding"] = hvGzip
	} else {
		p := it.plainBody()
		etag, body, length = p.etagHV(), p.body, p.lengthHV()
	}
	h["Etag"] = etag
	if inm := r.Header.Get("If-None-Match"); inm != "" && httpx.ETagMatch(inm, etag[0]) {
		delete(h, "Content-Type")
		delete(h, "Content-Encoding")
		w.WriteHeader(http.StatusNotModified)
		return true
	}
	h["Content-Length"] = length
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
	return false
}

func (it *item) plainBody() *plainBody {
	if p := it.plain.Load(); p != nil {
		return p
	}
	raw, err := bucketer.Gunzip(it.gz)
	if err != nil { // only objects the bucketer wrote get here
		raw = []byte(`{}`)
	}
	// A distinct strong tag: the plain bytes are another representation.
	etag := it.etag()[:len(it.etag())-1] + `-plain"`
	p := &plainBody{body: raw, answer: newAnswer(etag, len(raw))}
	it.plain.Store(p)
	return p
}

// lookup finds the object of room at second: from the ring, from the store,
// or as an empty body when the second is known sealed and has none. With
// hold (which names the client, asked only if the request is held), a
// second that is about to seal is waited for, and so is a sealed second
// this origin can only learn from the store once it is written there (an
// origin that joined after it sealed).
func (o *Origin) lookup(ctx context.Context, kind keys.Kind, room string, second int64, hold func() netip.Addr) (*item, outcome, error) {
	last := second + kind.Seconds() - 1 // the object is final once this second is sealed
	part := keys.Partition(room)
	var deadline time.Time // set by the first wait; every wait shares it
	for {
		var rr *roomRing
		if v, ok := o.rooms.Load(room); ok {
			rr = v.(*roomRing)
			if it := rr.get(kind, second); it != nil {
				return it, fromRing, nil
			}
		}
		m := o.marks[part].Load()
		if m != nil && last <= m.sealed {
			it, res, err := o.sealedMiss(ctx, kind, room, second, rr, m)
			if res != notSealed || hold == nil {
				return it, res, err
			}
			if deadline.IsZero() {
				deadline = o.cfg.Now().Add(o.cfg.Hold)
			}
			if !o.wait(ctx, hold, part, deadline, func(m *mark) bool { return m.published >= last }) {
				return nil, notSealed, nil
			}
			continue
		}
		now := o.cfg.Now().Unix()
		if last > now+o.cfg.HoldAhead {
			return nil, future, nil
		}
		if hold == nil {
			return nil, notSealed, nil
		}
		if deadline.IsZero() {
			deadline = o.cfg.Now().Add(o.cfg.Hold)
		}
		if !o.wait(ctx, hold, part, deadline, func(m *mark) bool { return m.sealed >= last }) {
			return nil, notSealed, nil
		}
	}
}

// sealedMiss answers a sealed object that is not in the ring.
func (o *Origin) sealedMiss(ctx context.Context, kind keys.Kind, room string, second int64, rr *roomRing, m *mark) (*item, outcome, error) {
	last := second + kind.Seconds() - 1
	span := int64(o.cfg.RingSeconds)
	cover := o.coverage(room)
	if rr != nil {
		cover = max(cover, rr.coverFrom.Load())
	}
	inSpan := last > m.sealed-span
	if inSpan && last >= cover {
		// The ring saw every announcement for this second: nothing was sealed.
		return o.emptyItem(kind, room, second), empty, nil
	}
	if last > m.published {
		// Sealed but not yet in the store, and this origin did not see it
		// sealed: it cannot tell, so it says "not yet".
		return nil, notSealed, nil
	}
	gctx, cancel := context.WithTimeout(ctx, storeTimeout)
	body, err := o.cfg.Store.Get(gctx, keys.Key(kind, room, second))
	cancel()
	if errors.Is(err, publisher.ErrNotFound) {
		return o.emptyItem(kind, room, second), empty, nil
	}
	if err != nil {
		return nil, storeError, err
	}
	it := newItem(second, body, "")
	if rr != nil && inSpan {
		rr.put(kind, it)
	}
	return it, fromStore, nil
}

func (o *Origin) emptyItem(kind keys.Kind, room string, second int64) *item {
	return newItem(second, bucketer.EmptyBody(room, second, int(kind.Seconds())), "")
}

// wait holds the request of client until partition part's watermark
// satisfies done, the deadline passes, or ctx ends; it reports whether done
// came true.
func (o *Origin) wait(ctx context.Context, client func() netip.Addr, part int, deadline time.Time, done func(*mark) bool) bool {
	if m := o.marks[part].Load(); m != nil && done(m) {
		return true
	}
	if o.held.Add(1) > int64(o.cfg.MaxHeld) {
		o.held.Add(-1)
		o.metrics.heldRefused.Inc()
		return false
	}
	if o.clients != nil {
		key, ok := o.clients.acquire(client())
		if !ok {
			o.held.Add(-1)
			o.metrics.heldRefusedClient.Inc()
			return false
		}
		defer o.clients.release(key)
	}
	o.metrics.held.Inc()
	defer func() {
		o.held.Add(-1)
		o.metrics.held.Dec()
	}()
	timer := time.NewTimer(deadline.Sub(o.cfg.Now()))
	defer timer.Stop()
	for {
		ch := o.sealedCh.Load()
		if m := o.marks[part].Load(); m != nil && done(m) {
			return true
		}
		select {
		case <-*ch:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// Head is the answer of GET /v1/rooms/{room}/head.
type Head struct {
	NowMS         int64 `json:"now_ms"`
	Sealed        int64 `json:"sealed"`
	BucketSeconds int   `json:"bucket_seconds"`
	PollMS        int   `json:"poll_ms"`
}

// appendHead appends the head body for a room sealed through sealed.
func (o *Origin) appendHead(b []byte, sealed int64) []byte {
	b = append(b, `{"now_ms":`...)
	b = strconv.AppendInt(b, o.cfg.Now().UnixMilli(), 10)
	b = append(b, `,"sealed":`...)
	b = strconv.AppendInt(b, sealed, 10)
	b = append(b, `,"bucket_seconds":1,"poll_ms":`...)
	b = strconv.AppendInt(b, int64(o.cfg.PollMS), 10)
	return append(b, "}\n"...)
}

func (o *Origin) serveHead(w http.ResponseWriter, r *http.Request, room string) {
	h := w.Header()
	o.cfg.CORS.Apply(h, r)
	if !keys.ValidRoom(room) {
		httpx.Error(w, http.StatusBadRequest, "bad_room", keys.ErrRoom.Error())
		o.metrics.heads[badRequest].Inc()
		return
	}
	m := o.marks[keys.Partition(room)].Load()
	if m == nil {
		h.Set("Retry-After", "1")
		httpx.Error(w, http.StatusServiceUnavailable, "not_ready", "the origin has not heard from a writer yet")
		o.metrics.heads[notSealed].Inc()
		return
	}
	b := o.appendHead(make([]byte, 0, 96), m.sealed)
	h["Content-Type"] = hvJSON
	h["Cache-Control"] = hvHead
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(http.StatusOK)
	w.Write(b)
	o.metrics.heads[fromRing].Inc()
}

type metrics struct {
	requests    [2][numOutcomes]prometheus.Counter
	heads       [numOutcomes]prometheus.Counter
	latency     [2]prometheus.Observer
	held        prometheus.Gauge
	heldRefused prometheus.Counter
	// heldRefusedClient counts refusals by the per-client cap.
	heldRefusedClient prometheus.Counter
	rooms             prometheus.Gauge
	refused           prometheus.Counter
	sealed            prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	req := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "danmaku_origin_requests_total",
		Help: "Bucket, segment and head requests by what answered them."}, []string{"kind", "result"})
	lat := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "danmaku_origin_request_seconds",
		Help:    "Time to answer bucket and segment requests, holds included.",
		Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .25, .5, 1, 2, 4}}, []string{"kind"})
	m := &metrics{
		held:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "danmaku_origin_held_requests", Help: "Requests waiting for their second to seal."}),
		heldRefused: prometheus.NewCounter(prometheus.CounterOpts{Name: "danmaku_origin_held_refused_total", Help: "Requests answered 404 at once because too many were held."}),
		heldRefusedClient: prometheus.NewCounter(prometheus.CounterOpts{Name: "danmaku_origin_held_refused_client_total",
			Help: "Requests answered 404 at once because their client held too many already."}),
		rooms:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "danmaku_origin_rooms", Help: "Rooms with a ring in memory."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "danmaku_origin_ring_full_total", Help: "Objects not kept because the ring held max-rooms rooms."}),
		sealed:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "danmaku_origin_sealed_second", Help: "Newest sealed second the origin knows of."}),
	}
	for k, kind := range []keys.Kind{keys.Bucket, keys.Segment} {
		for i, name := range outcomeNames {
			m.requests[k][i] = req.WithLabelValues(kind.String(), name)
		}
		m.latency[k] = lat.WithLabelValues(kind.String())
	}
	for i, name := range outcomeNames {
		m.heads[i] = req.WithLabelValues("head", name)
	}
	if reg != nil {
		reg.MustRegister(req, lat, m.held, m.heldRefused, m.heldRefusedClient, m.rooms, m.refused, m.sealed)
	}
	return m
}
