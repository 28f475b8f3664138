package cmd

import (
	"encoding/json"
	"testing"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/keys"
)

// FuzzParseExportLine: backfill --input reads files people edit and pass
// around. A line parses to a message that can be encoded, or to a dropped
// count, or to an error; never a panic.
func FuzzParseExportLine(f *testing.F) {
	for _, s := range []string{
		`{"room":"lobby","id":"12","second":1795855010,"offset_ms":704,"user_id":"u42","user_name":"小明","text":"前方高能","color":16646914,"mode":"top"}`,
		`{"room":"lobby","id":"13.1","second":1795855010,"offset_ms":8,"user_id":"","user_name":"","text":"awsl","color":16777215,"mode":"scroll","count":3,"badges":["moderator"],"avatar":"https://a.example/x.png"}`,
		`{"room":"lobby","second":1795855010,"dropped":17}`,
		`{"room":"lobby","second":1795855010,"dropped":17,"text":"x"}`,
		`{"room":"../x","id":"1","second":1}`,
		`{"room":"r","id":"01","second":1}`,
		`{"room":"r","id":"1","second":-1}`,
		`{"room":"r","id":"1","second":1,"mode":"sideways"}`,
		`{"room":"r","id":"1","second":1,"offset_ms":1000}`,
		`{"room":"r","id":"1","second":1} trailing`,
		`{"room":"r","id":"1","second":1,"unknown":true}`,
		`[]`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		m, err := parseExportLine(line)
		if err != nil {
			return
		}
		if !keys.ValidRoom(m.Room) {
			t.Fatalf("accepted room %q", m.Room)
		}
		if m.ID == "" {
			if m.Dropped < 1 {
				t.Fatalf("accepted a line with neither id nor dropped count: %s", line)
			}
			return
		}
		// An accepted message encodes as a bucket of its own.
		if _, err := bucketer.Encode(&bucketer.Body{Room: m.Room, Start: m.Second, Seconds: 1, Messages: []bucketer.Message{m.Message}}); err != nil {
			b, _ := json.Marshal(m)
			t.Fatalf("accepted %s, which does not encode: %v", b, err)
		}
	})
}
