package logstream

import (
	"bytes"
	"testing"
)

// FuzzDecodePost: the writer decodes every log entry, and a shared cluster
// may hold entries ingest did not write. Decoding never panics; what it
// accepts has messages and encodes to a stable form.
func FuzzDecodePost(f *testing.F) {
	for _, s := range []string{
		`{"u":"u1","n":"Ann","m":[{"t":"hi","c":16777215}]}`,
		`{"u":"mod","b":["moderator"],"p":true,"a":"https://img.example/a.png","m":[{"t":"a","c":1,"o":2},{"t":"b","c":0}],"k":"abc"}`,
		`{"m":[]}`, `{"m":null}`, `{"m":[{"t":1}]}`, `{"m":[{"o":300}]}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodePost(data)
		if err != nil {
			return
		}
		if len(p.Messages) == 0 {
			t.Fatalf("DecodePost(%q) accepted a post without messages", data)
		}
		b, err := EncodePost(p)
		if err != nil {
			t.Fatalf("EncodePost: %v", err)
		}
		back, err := DecodePost(b)
		if err != nil {
			t.Fatalf("round trip of %q: %v", data, err)
		}
		if again, _ := EncodePost(back); !bytes.Equal(again, b) {
			t.Fatalf("round trip of %q: %s, then %s", data, b, again)
		}
	})
}
