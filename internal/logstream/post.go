package logstream

import (
	"encoding/json"
	"fmt"
)

// Post is the payload of one log entry: the messages of one POST, all from
// one poster, all for the room named by the entry's subject. Keys are short
// because every entry is stored in the log.
type Post struct {
	UserID   string   `json:"u,omitempty"`
	UserName string   `json:"n,omitempty"`
	Avatar   string   `json:"a,omitempty"` // from the avatar lookup, if it answered in time
	Badges   []string `json:"b,omitempty"`
	// Priority marks a poster whose messages a per-room cap always keeps
	// (a moderator, a paid message); ingest sets it only from a verified
	// token, never from what a client claims.
	Priority bool      `json:"p,omitempty"`
	Messages []Message `json:"m"`
	// Key fingerprints the request an Idempotency-Key came with, so a retry
	// is recognised even when enrichment (avatar, masking) came out
	// differently the second time.
	Key string `json:"k,omitempty"`
}

// Message is one comment as the log stores it, already validated by ingest.
type Message struct {
	Text  string `json:"t"`
	Color uint32 `json:"c"`           // 0xRRGGBB
	Mode  uint8  `json:"o,omitempty"` // 0 scroll, 1 top, 2 bottom
}

// EncodePost returns the log payload for p.
func EncodePost(p *Post) ([]byte, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("logstream: encode post: %w", err)
	}
	return b, nil
}

// DecodePost parses a log payload written by EncodePost.
func DecodePost(data []byte) (*Post, error) {
	var p Post
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("logstream: decode post: %w", err)
	}
	if len(p.Messages) == 0 {
		return nil, fmt.Errorf("logstream: decode post: no messages")
	}
	return &p, nil
}
