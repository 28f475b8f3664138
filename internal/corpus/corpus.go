// Package corpus generates deterministic streams of live comments for size
// and speed measurements: CJK chatter, emoji, Zipf-like repetition of
// catch-phrases, a few heavy posters among many light ones, and the colors
// and modes real rooms use. The same seed always gives the same messages.
package corpus

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
)

// Message is one generated comment.
type Message struct {
	Seq      uint64 // log sequence; rooms interleave, so gaps are normal
	Second   int64
	OffsetMS int
	UserID   string
	UserName string
	Text     string
	Color    uint32
	Mode     uint8 // 0 scroll, 1 top, 2 bottom
}

// phrases are the catch-phrases a live room repeats, most common first.
var phrases = []string{
	"哈哈哈哈哈", "666", "233333", "前方高能", "awsl", "草", "yyds", "好耶", "🤣🤣🤣", "来了来了",
	"打卡", "泪目", "？？？", "绝了", "笑死", "hhhhh", "太强了", "牛", "😂😂", "下次一定",
	"gg", "lol", "W", "pog", "LMAO", "nice", "ok", "kkkk", "wkwkwk", "555",
	"爷青回", "名场面", "妙啊", "好听", "可爱", "❤️", "👍👍", "🔥🔥🔥", "第一", "路过",
	"主播加油", "这也行", "破防了", "大佬", "学到了", "有内味了", "DNA动了", "真实", "啊这", "整活",
}

// chars builds free-form sentences.
var chars = []rune("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严龙飞")

var names = []string{
	"小明", "阿狸", "喵喵酱", "Kaito", "momo", "路人甲", "夜猫子", "Sakura", "老王", "Budi",
	"Siti", "pixel", "星河", "吃瓜群众", "Nguyen", "Ayu", "风之子", "dj_k", "Rina", "清风",
	"阿强", "Mika", "拾光", "Tora", "ciel", "鱼丸", "Yuki", "晴天", "Dewi", "north",
}

var palette = []uint32{0xFE0302, 0xFFFF00, 0x00CD00, 0x4266BE, 0xCC0273, 0xFF7204, 0x89D5FF}

// Generate returns perSecond messages a second for the given seconds,
// starting at unix second start, for one room.
func Generate(seed uint64, start int64, seconds, perSecond int) []Message {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	phraseZipf := newZipf(rng, len(phrases), 1.1)
	userZipf := newZipf(rng, 400, 1.2)
	var out []Message
	seq := uint64(1000 + rng.IntN(1000))
	for s := 0; s < seconds; s++ {
		offsets := make([]int, perSecond)
		for i := range offsets {
			offsets[i] = rng.IntN(1000)
		}
		sort.Ints(offsets)
		for _, off := range offsets {
			seq += 1 + uint64(rng.IntN(8)) // other rooms' entries in between
			u := userZipf.next()
			m := Message{
				Seq:      seq,
				Second:   start + int64(s),
				OffsetMS: off,
				UserID:   fmt.Sprintf("%d", 100000+u*7919%900000),
				UserName: names[u%len(names)] + suffix(u),
				Text:     text(rng, phraseZipf),
				Color:    0xFFFFFF,
			}
			if rng.IntN(100) < 12 {
				m.Color = palette[rng.IntN(len(palette))]
			}
			switch r := rng.IntN(100); {
			case r < 4:
				m.Mode = 1
			case r < 8:
				m.Mode = 2
			}
			out = append(out, m)
		}
	}
	return out
}

func suffix(u int) string {
	if u < len(names) {
		return ""
	}
	return fmt.Sprintf("%d", u)
}

func text(rng *rand.Rand, z *zipf) string {
	switch r := rng.IntN(100); {
	case r < 55: // a catch-phrase, sometimes repeated or with emphasis
		p := phrases[z.next()]
		if rng.IntN(5) == 0 {
			p = strings.Repeat(p, 2)
		}
		if rng.IntN(6) == 0 {
			p += "！"
		}
		return p
	case r < 90: // a short sentence
		n := 4 + rng.IntN(14)
		var b strings.Builder
		for i := 0; i < n; i++ {
			b.WriteRune(chars[rng.IntN(len(chars))])
		}
		if rng.IntN(4) == 0 {
			b.WriteString(phrases[z.next()])
		}
		return b.String()
	default: // Latin-script chat
		words := []string{"this", "is", "so", "good", "bro", "wait", "what", "the", "team", "play", "again", "love", "it", "haha", "mantap", "keren", "banget"}
		n := 2 + rng.IntN(6)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = words[rng.IntN(len(words))]
		}
		return strings.Join(parts, " ")
	}
}

// zipf draws ranks 0..n-1 with probability proportional to 1/(rank+1)^s.
type zipf struct {
	rng *rand.Rand
	cdf []float64
}

func newZipf(rng *rand.Rand, n int, s float64) *zipf {
	cdf := make([]float64, n)
	sum := 0.0
	for i := range cdf {
		sum += 1 / math.Pow(float64(i+1), s)
		cdf[i] = sum
	}
	for i := range cdf {
		cdf[i] /= sum
	}
	return &zipf{rng: rng, cdf: cdf}
}

func (z *zipf) next() int {
	return sort.SearchFloat64s(z.cdf, z.rng.Float64())
}
