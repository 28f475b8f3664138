package bucketer

import (
	"cmp"
	"hash/fnv"
	"slices"
	"strconv"
)

// Cap bounds how many messages a room's bucket keeps for one second. It is
// applied when the second seals, as a function of the log, so every writer
// and every backfill with the same Cap seals the same bytes: the setting
// must match across them.
//
// Above the cap, in this order:
//
//  1. every message from a priority poster (Post.Priority: a moderator, a
//     paid message) is kept;
//  2. the other messages are grouped by identical text; the first of each
//     group, in log order, stands for the group, with its dup count set to
//     the group's size;
//  3. if more groups remain than the cap leaves room for, the groups kept
//     are those whose first message id hashes lowest (FNV-1a of room and
//     id), and the messages of the rest are counted in the body's dropped.
//
// So every message of the second is accounted for exactly once: kept, folded
// into a kept message's dup, or counted in dropped.
type Cap struct {
	// PerSecond is the most messages a room's bucket keeps for one second,
	// priority messages included unless they alone exceed it; if 0, no cap.
	PerSecond int
}

// capResult counts what capping one second did.
type capResult struct {
	folded  int // messages represented by another message's dup count
	dropped int // messages left out and counted in dropped
}

// apply caps the messages of one room's second. es are the placed entries
// of that second in log order; their msgs are trimmed in place (an entry
// may be left with none). Below the cap nothing changes.
func (c Cap) apply(room string, es []*placed) capResult {
	var res capResult
	total := 0
	for _, p := range es {
		total += len(p.msgs)
	}
	if c.PerSecond <= 0 || total <= c.PerSecond {
		return res
	}
	// 1. Priority posters keep everything.
	slots := c.PerSecond
	type ref struct{ entry, msg int }
	type group struct {
		first ref
		size  int
		hash  uint64
	}
	var groups []*group
	byText := map[string]*group{}
	for i, p := range es {
		if p.priority {
			slots -= len(p.msgs)
			continue
		}
		// 2. Fold identical texts into the first of them.
		for j, m := range p.msgs {
			n := max(m.count, 1)
			if g := byText[m.text]; g != nil {
				g.size += n
				continue
			}
			g := &group{first: ref{i, j}, size: n}
			byText[m.text] = g
			groups = append(groups, g)
		}
	}
	slots = max(slots, 0)
	// 3. Sample the groups deterministically when they do not all fit.
	keep := groups
	if len(groups) > slots {
		for _, g := range groups {
			p := es[g.first.entry]
			g.hash = idHash(room, p.seq, p.msgs[g.first.msg].index)
		}
		sampled := slices.Clone(groups)
		slices.SortStableFunc(sampled, func(a, b *group) int { return cmp.Compare(a.hash, b.hash) })
		keep = sampled[:slots]
		for _, g := range sampled[slots:] {
			res.dropped += g.size
		}
	}
	kept := make(map[ref]int, len(keep))
	for _, g := range keep {
		kept[g.first] = g.size
		res.folded += g.size - 1
	}
	for i, p := range es {
		if p.priority {
			continue
		}
		out := p.msgs[:0]
		for j, m := range p.msgs {
			if size, ok := kept[ref{i, j}]; ok {
				if size > 1 {
					m.count = size
				}
				out = append(out, m)
			}
		}
		clear(p.msgs[len(out):])
		p.msgs = out
	}
	return res
}

// idHash is the sampling order of a message: FNV-1a of the room and the
// message's id, so it depends on nothing but the log.
func idHash(room string, seq uint64, index int) uint64 {
	h := fnv.New64a()
	h.Write([]byte(room))
	h.Write([]byte{'/'})
	h.Write(strconv.AppendUint(nil, seq, 10))
	if index >= 0 {
		h.Write([]byte{'.'})
		h.Write(strconv.AppendInt(nil, int64(index), 10))
	}
	return h.Sum64()
}
