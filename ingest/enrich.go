package ingest

import (
	"context"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/danmaku/danmaku/ingest/moderation"
	"github.com/danmaku/danmaku/internal/logstream"
)

// AvatarLookup finds a poster's avatar URL ("" for none). An error means it
// could not say in time; the post then goes out without one.
type AvatarLookup interface {
	Avatar(ctx context.Context, userID string) (string, error)
}

// Moderator asks a moderation service about a post's texts: one verdict
// per text. An error means it could not decide in time; the word list then
// decides alone.
type Moderator interface {
	Moderate(ctx context.Context, room, userID string, texts []string) ([]moderation.Verdict, error)
}

// Enrich is what happens to a valid post before it is stored. Every part is
// optional, and the services are called at once, each bounded by its own
// timeout, so a post waits at most the slower timeout for them.
type Enrich struct {
	// Avatars looks up the avatar of a verified poster (an anonymous
	// poster's user id is only a claim, so it gets none).
	Avatars AvatarLookup
	// Moderator is the moderation service. Its verdicts apply on top of
	// Words: "block" refuses the post, "mask" masks the whole text.
	Moderator Moderator
	// Words masks listed words in every text, whether or not the service
	// answered.
	Words *moderation.Filter
	// BlockWords refuses a post with a listed word instead of masking it.
	BlockWords bool
}

// enrich adds the avatar and applies moderation to post in place. It
// returns an error only for a post moderation refuses.
func (in *Ingest) enrich(ctx context.Context, room string, who Identity, post *logstream.Post) *InputError {
	e := in.cfg.Enrich
	var wg sync.WaitGroup
	var avatar string
	if e.Avatars != nil && who.Verified {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// On error the post goes without; remote counts and logs it.
			avatar, _ = e.Avatars.Avatar(ctx, who.UserID)
		}()
	}
	var verdicts []moderation.Verdict
	if e.Moderator != nil {
		texts := make([]string, len(post.Messages))
		for i, m := range post.Messages {
			texts[i] = m.Text
		}
		if v, err := e.Moderator.Moderate(ctx, room, post.UserID, texts); err == nil && len(v) == len(texts) {
			verdicts = v
		}
	}
	wg.Wait()
	post.Avatar = avatar
	for i := range post.Messages {
		m := &post.Messages[i]
		if verdicts != nil {
			switch verdicts[i] {
			case moderation.Block:
				in.metrics.moderated.WithLabelValues("service", "block").Inc()
				return in.blocked(post, i)
			case moderation.Mask:
				in.metrics.moderated.WithLabelValues("service", "mask").Inc()
				m.Text = strings.Repeat(string(moderation.MaskRune), utf8.RuneCountInString(m.Text))
				continue
			}
		}
		if masked, n := e.Words.Mask(m.Text); n > 0 {
			if e.BlockWords {
				in.metrics.moderated.WithLabelValues("word_list", "block").Inc()
				return in.blocked(post, i)
			}
			in.metrics.moderated.WithLabelValues("word_list", "mask").Inc()
			m.Text = masked
		}
	}
	return nil
}

func (in *Ingest) blocked(post *logstream.Post, i int) *InputError {
	if len(post.Messages) == 1 {
		return inputErr("blocked", "moderation refused the message; nothing was posted")
	}
	return inputErr("blocked", "moderation refused message %d of the batch; nothing was posted", i)
}
