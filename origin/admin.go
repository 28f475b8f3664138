package origin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/httpx"
	"github.com/danmaku/danmaku/internal/keys"
)

// The admin API acts on this origin's ring only; the store is the CLI's to
// change (danmaku purge), so an origin needs no write access to it.
//
//	POST /admin/v1/rooms/{room}/drop    {"from":S,"to":S}
//	POST /admin/v1/rooms/{room}/redact  {"from":S,"to":S,"ids":["123","124.1"]}
//
// Both need Authorization: Bearer <admin token>.

// AdminRange is the body of a drop or redact request.
type AdminRange struct {
	From int64    `json:"from"`
	To   int64    `json:"to"`
	IDs  []string `json:"ids,omitempty"`
}

// AdminResult answers a drop or redact request.
type AdminResult struct {
	Room      string   `json:"room"`
	Objects   int      `json:"objects"`            // ring objects dropped or rewritten
	Messages  int      `json:"messages,omitempty"` // messages removed by a redaction
	Rewritten []string `json:"rewritten,omitempty"`
}

// maxAdminSpan bounds one request's range (a day); the CLI splits longer ones.
const maxAdminSpan = 86400

// RegisterAdmin adds the admin routes, guarded by token. With an empty
// token the admin API is off and its paths answer 404.
func (o *Origin) RegisterAdmin(mux *http.ServeMux, token string) {
	if token == "" {
		return
	}
	want := sha256.Sum256([]byte(token))
	guard := func(h func(http.ResponseWriter, *http.Request, string, AdminRange)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-store")
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			sum := sha256.Sum256([]byte(got))
			if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="danmaku admin"`)
				httpx.Error(w, http.StatusUnauthorized, "unauthorized", "a valid admin bearer token is required")
				return
			}
			room := r.PathValue("room")
			if !keys.ValidRoom(room) {
				httpx.Error(w, http.StatusBadRequest, "bad_room", keys.ErrRoom.Error())
				return
			}
			req, code, err := DecodeAdminRange(r.Body)
			if err != nil {
				httpx.Error(w, http.StatusBadRequest, code, err.Error())
				return
			}
			h(w, r, room, req)
		}
	}
	mux.HandleFunc("POST /admin/v1/rooms/{room}/drop", guard(o.serveDrop))
	mux.HandleFunc("POST /admin/v1/rooms/{room}/redact", guard(o.serveRedact))
}

// DecodeAdminRange reads the body of a drop or redact request (at most 1
// MiB) and checks the range; on error it also returns the error code.
func DecodeAdminRange(body io.Reader) (AdminRange, string, error) {
	var req AdminRange
	dec := json.NewDecoder(io.LimitReader(body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return AdminRange{}, "bad_json", fmt.Errorf("the body must be {\"from\":S,\"to\":S} (and \"ids\" to redact): %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return AdminRange{}, "bad_json", errors.New("unexpected data after the JSON object")
	}
	if req.From < 0 || req.To < req.From || req.To-req.From >= maxAdminSpan {
		return AdminRange{}, "bad_range", fmt.Errorf("need 0 <= from <= to and at most %d seconds", maxAdminSpan)
	}
	return req, "", nil
}

// overlaps reports whether the object of kind starting at second touches
// [from, to].
func overlaps(kind keys.Kind, second, from, to int64) bool {
	return second <= to && second+kind.Seconds()-1 >= from
}

func (o *Origin) serveDrop(w http.ResponseWriter, _ *http.Request, room string, req AdminRange) {
	res := AdminResult{Room: room}
	o.mu.Lock()
	if v, ok := o.rooms.Load(room); ok {
		rr := v.(*roomRing)
		// The ring no longer speaks for these seconds: reads go to the store.
		if c := req.To + 1; c > rr.coverFrom.Load() {
			rr.coverFrom.Store(c)
		}
		for _, kind := range []keys.Kind{keys.Bucket, keys.Segment} {
			rr.each(kind, func(slot *ringSlot, it *item) {
				if overlaps(kind, it.second, req.From, req.To) {
					slot.Store(nil)
					res.Objects++
				}
			})
		}
	}
	o.mu.Unlock()
	o.log.Info("admin: dropped from the ring", "room", room, "from", req.From, "to", req.To, "objects", res.Objects)
	httpx.JSON(w, http.StatusOK, res)
}

func (o *Origin) serveRedact(w http.ResponseWriter, _ *http.Request, room string, req AdminRange) {
	if len(req.IDs) == 0 || len(req.IDs) > 10000 {
		httpx.Error(w, http.StatusBadRequest, "bad_ids", "give 1 to 10000 message ids to redact")
		return
	}
	ids := make(map[string]bool, len(req.IDs))
	for _, id := range req.IDs {
		if _, _, err := bucketer.ParseMessageID(id); err != nil {
			httpx.Error(w, http.StatusBadRequest, "bad_ids", err.Error())
			return
		}
		ids[id] = true
	}
	res := AdminResult{Room: room}
	o.mu.Lock()
	if v, ok := o.rooms.Load(room); ok {
		rr := v.(*roomRing)
		for _, kind := range []keys.Kind{keys.Bucket, keys.Segment} {
			rr.each(kind, func(slot *ringSlot, it *item) {
				if !overlaps(kind, it.second, req.From, req.To) {
					return
				}
				out, removed, err := bucketer.Redact(it.gz, ids)
				if err != nil || removed == 0 {
					return
				}
				res.Objects++
				res.Messages += removed
				res.Rewritten = append(res.Rewritten, keys.Key(kind, room, it.second))
				if out == nil { // nothing left: the second is empty, as in the store
					slot.Store(nil)
					return
				}
				slot.Store(newItem(it.second, out, ""))
			})
		}
	}
	o.mu.Unlock()
	o.log.Info("admin: redacted in the ring", "room", room, "from", req.From, "to", req.To,
		"objects", res.Objects, "messages", res.Messages)
	httpx.JSON(w, http.StatusOK, res)
}
