package publisher

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/keys"
)

func spoolBytes(t testing.TB, objs []bucketer.Object) []byte {
	path := filepath.Join(t.TempDir(), "1.batch")
	if _, err := writeSpool(path, &bucketer.Batch{Objects: objs}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzReadSpool: a spool file is read back after a crash or a full disk
// may have damaged it. Reading never panics or allocates past the field
// bounds, and what it accepts is well formed: every object's key is the key
// of its kind, room and second.
func FuzzReadSpool(f *testing.F) {
	good := []bucketer.Object{
		bucketer.NewObject(keys.Bucket, "lobby", 1795855010, []byte(`{"v":1,"room":"lobby","start":1795855010,"seconds":1}`), 0),
		bucketer.NewObject(keys.Segment, "r-2", 1795855010, []byte(`{"v":1,"room":"r-2","start":1795855010,"seconds":10}`), 0),
	}
	good[1].Durable = true
	whole := spoolBytes(f, good)
	f.Add(whole)
	f.Add(whole[:len(whole)-3])
	f.Add([]byte(spoolMagic))
	f.Add([]byte(spoolMagic + "\x00\x00\x00\x00\x00\x6a\xfa\x2c\xa2\x00\x00\x00\x00\x00\xff\xff\xff\xff"))
	f.Add([]byte("DMKSPOOL0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := decodeSpool(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, o := range objs {
			if o.Key != keys.Key(o.Kind, o.Room, o.Second) || !keys.ValidRoom(o.Room) {
				t.Fatalf("accepted %+v", o)
			}
		}
		// What is read writes back to the same bytes.
		if back := spoolBytes(t, objs); !bytes.Equal(back, data) {
			t.Fatalf("round trip changed the file")
		}
	})
}

func TestSpoolRefusesDamage(t *testing.T) {
	objs := []bucketer.Object{bucketer.NewObject(keys.Bucket, "lobby", 5, []byte(`{}`), 0)}
	b := spoolBytes(t, objs)
	if got, err := decodeSpool(bytes.NewReader(b)); err != nil || len(got) != 1 || !bytes.Equal(got[0].Body, objs[0].Body) {
		t.Fatalf("round trip: %v", err)
	}
	wrongKey := bytes.Replace(b, []byte("v1/rooms/lobby/buckets/5.json"), []byte("v1/rooms/lobby/buckets/6.json"), 1)
	if _, err := decodeSpool(bytes.NewReader(wrongKey)); err == nil {
		t.Error("a body under another second's key was accepted")
	}
	huge := append([]byte(spoolMagic), make([]byte, 14)...)
	huge = append(huge, 0xff, 0xff, 0xff, 0xff)
	if _, err := decodeSpool(bytes.NewReader(huge)); err == nil {
		t.Error("a 4 GiB room field was accepted")
	}
}
