// Package moderation decides what a post may publish: a built-in word-list
// filter that masks listed words (Aho–Corasick over text folded for case and
// width, so ＦＵＣＫ and FuCk match fuck), and a client of an optional
// moderation service, called with a strict timeout and a circuit breaker.
package moderation

import (
	"bufio"
	_ "embed"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
	"golang.org/x/text/width"
)

// MaskRune replaces each character of a masked word.
const MaskRune = '＊'

// Filter finds listed words in texts. It is safe for concurrent use.
type Filter struct {
	// The automaton over folded runes: node 0 is the root.
	next  []map[rune]int32
	fail  []int32
	depth []int32 // folded runes of the longest word ending at each node (0: none)
	words int
}

// fold maps a rune to the form texts and words are compared in: the
// canonical width (full-width Latin to ASCII, half-width katakana to
// full-width), then lower case. skip reports runes that do not count at all
// (spaces, punctuation, invisible format characters), so that "f.u c-k"
// reads as "fuck".
func fold(r rune) (folded rune, skip bool) {
	if f := width.LookupRune(r).Folded(); f != 0 {
		r = f
	}
	if unicode.IsSpace(r) || unicode.IsPunct(r) || unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Variation_Selector, r) {
		return 0, true
	}
	return unicode.ToLower(r), false
}

// MaxWords bounds a word list; MaxWordRunes bounds one word.
const (
	MaxWords     = 100000
	MaxWordRunes = 64
)

// NewFilter builds a filter over words. Words are folded as texts are;
// words that fold to nothing are ignored.
func NewFilter(words []string) (*Filter, error) {
	if len(words) > MaxWords {
		return nil, fmt.Errorf("moderation: %d words; the most is %d", len(words), MaxWords)
	}
	f := &Filter{next: []map[rune]int32{nil}, fail: []int32{0}, depth: []int32{0}}
	for _, w := range words {
		if utf8.RuneCountInString(w) > MaxWordRunes {
			return nil, fmt.Errorf("moderation: word %q is longer than %d characters", w, MaxWordRunes)
		}
		node, n := int32(0), int32(0)
		for _, r := range w {
			r, skip := fold(r)
			if skip {
				continue
			}
			n++
			nx, ok := f.next[node][r]
			if !ok {
				nx = int32(len(f.next))
				f.next = append(f.next, nil)
				f.fail = append(f.fail, 0)
				f.depth = append(f.depth, 0)
				if f.next[node] == nil {
					f.next[node] = map[rune]int32{}
				}
				f.next[node][r] = nx
			}
			node = nx
		}
		if n > 0 {
			f.depth[node] = n
			f.words++
		}
	}
	// Failure links, breadth first; each node's depth becomes the longest
	// word ending there or at any suffix of it.
	queue := make([]int32, 0, len(f.next))
	for _, c := range f.next[0] {
		queue = append(queue, c)
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for r, c := range f.next[n] {
			fl := f.fail[n]
			for {
				if nx, ok := f.next[fl][r]; ok && nx != c {
					f.fail[c] = nx
					break
				}
				if fl == 0 {
					break
				}
				fl = f.fail[fl]
			}
			f.depth[c] = max(f.depth[c], f.depth[f.fail[c]])
			queue = append(queue, c)
		}
	}
	return f, nil
}

// Words is how many words the filter holds.
func (f *Filter) Words() int {
	if f == nil {
		return 0
	}
	return f.words
}

// Mask returns s with every listed word replaced, character for character,
// by MaskRune (a word spread over spaces or punctuation is masked from its
// first to its last character), and how many words matched. A text with no
// match comes back as it is.
func (f *Filter) Mask(s string) (string, int) {
	if f == nil || f.words == 0 {
		return s, 0
	}
	// Compare composed forms: "đ" + "ị" typed as base letters and combining
	// marks is the same word as the precomposed one. Only a text that
	// matches comes back recomposed.
	in := s
	if !norm.NFC.IsNormalString(s) {
		in = norm.NFC.String(s)
	}
	out, n := f.mask(in)
	if n == 0 {
		return s, 0
	}
	// MaskRune reads as punctuation, which words may be spread over, so
	// what is left around a masked word can spell another: "ffuckuck"
	// masks to "f＊＊＊＊uck". Mask again until nothing matches; every pass
	// masks at least one more character, so this ends.
	for {
		again, m := f.mask(out)
		if m == 0 {
			return out, n
		}
		out, n = again, n+m
	}
}

func (f *Filter) mask(s string) (string, int) {
	var (
		node    int32
		matches int
		masked  []bool // per rune of s, allocated on the first match
		counted []int  // rune index of each counted (not skipped) rune, for the last MaxWordRunes
	)
	i := 0
	for _, r := range s {
		fr, skip := fold(r)
		if skip {
			i++
			continue
		}
		if len(counted) == MaxWordRunes {
			copy(counted, counted[1:])
			counted = counted[:MaxWordRunes-1]
		}
		counted = append(counted, i)
		for {
			if nx, ok := f.next[node][fr]; ok {
				node = nx
				break
			}
			if node == 0 {
				break
			}
			node = f.fail[node]
		}
		if d := f.depth[node]; d > 0 {
			matches++
			if masked == nil {
				masked = make([]bool, utf8.RuneCountInString(s))
			}
			for k := counted[len(counted)-int(d)]; k <= i; k++ {
				masked[k] = true
			}
		}
		i++
	}
	if matches == 0 {
		return s, 0
	}
	var b strings.Builder
	b.Grow(len(s))
	i = 0
	for _, r := range s {
		if masked[i] {
			b.WriteRune(MaskRune)
		} else {
			b.WriteRune(r)
		}
		i++
	}
	return b.String(), matches
}

// ParseWords reads a word list: one word or phrase per line, blank lines
// and lines starting with # ignored.
func ParseWords(r io.Reader) ([]string, error) {
	var words []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 4096)
	line := 0
	for sc.Scan() {
		line++
		w := strings.TrimSpace(sc.Text())
		if w == "" || strings.HasPrefix(w, "#") {
			continue
		}
		if !utf8.ValidString(w) {
			return nil, fmt.Errorf("moderation: word list line %d is not UTF-8", line)
		}
		if len(words) == MaxWords {
			return nil, fmt.Errorf("moderation: the word list holds more than %d words", MaxWords)
		}
		words = append(words, w)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("moderation: word list line %d: %w", line+1, err)
	}
	return words, nil
}

//go:embed default_words.txt
var defaultWords string

// DefaultWords is the small built-in list used when no list is configured.
func DefaultWords() []string {
	w, err := ParseWords(strings.NewReader(defaultWords))
	if err != nil {
		panic(err)
	}
	return w
}
