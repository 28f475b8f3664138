package moderation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/danmaku/danmaku/internal/remote"
)

// Verdict is what moderation decided for one text.
type Verdict uint8

// The verdicts.
const (
	Allow Verdict = iota // publish as it is
	Mask                 // publish with every character masked
	Block                // refuse the post
)

var verdictNames = [...]string{"allow", "mask", "block"}

func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return fmt.Sprintf("verdict(%d)", v)
}

// Client asks a moderation service about texts. The protocol:
//
//	POST {URL}  {"room":"lobby","user_id":"u1","texts":["…","…"]}
//	200         {"verdicts":["allow","mask","block"]}   one per text, in order
//
// Anything else, or no answer within the timeout, is a failure, and ingest
// falls back to the word-list filter alone.
type Client struct {
	url string
	svc *remote.Service
}

// NewClient returns a client of the service at rawURL, called through svc.
func NewClient(rawURL string, svc *remote.Service) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("moderation: URL %q: want http(s)://host/path", rawURL)
	}
	if svc == nil {
		return nil, errors.New("moderation: a service is required")
	}
	return &Client{url: u.String(), svc: svc}, nil
}

type request struct {
	Room   string   `json:"room"`
	UserID string   `json:"user_id"`
	Texts  []string `json:"texts"`
}

// Moderate returns one verdict per text. An error (wrapping
// remote.ErrUnavailable) means the service could not decide in time.
func (c *Client) Moderate(ctx context.Context, room, userID string, texts []string) ([]Verdict, error) {
	body, err := json.Marshal(request{Room: room, UserID: userID, Texts: texts})
	if err != nil {
		return nil, err
	}
	var verdicts []Verdict
	err = c.svc.Do(ctx, func(ctx context.Context) error {
		req, err := http.NewRequest(http.MethodPost, c.url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		status, answer, err := c.svc.HTTP(ctx, req)
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("status %d", status)
		}
		verdicts, err = ParseAnswer(answer, len(texts))
		return err
	})
	return verdicts, err
}

// ParseAnswer reads {"verdicts":[…]}: exactly n of "allow", "mask" and
// "block".
func ParseAnswer(body []byte, n int) ([]Verdict, error) {
	var a struct {
		Verdicts []string `json:"verdicts"`
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, fmt.Errorf("moderation: answer is not {\"verdicts\":[…]}: %w", err)
	}
	if len(a.Verdicts) != n {
		return nil, fmt.Errorf("moderation: %d verdicts for %d texts", len(a.Verdicts), n)
	}
	out := make([]Verdict, n)
	for i, s := range a.Verdicts {
		v, ok := ParseVerdict(s)
		if !ok {
			return nil, fmt.Errorf("moderation: verdict %d is %q; want allow, mask or block", i, s)
		}
		out[i] = v
	}
	return out, nil
}

// ParseVerdict reads "allow", "mask" or "block".
func ParseVerdict(s string) (Verdict, bool) {
	for i, name := range verdictNames {
		if s == name {
			return Verdict(i), true
		}
	}
	return 0, false
}
