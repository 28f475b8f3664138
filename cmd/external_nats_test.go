package cmd

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/danmaku/danmaku/bucketer"
)

// TestServeOnExternalNATS runs serve against a NATS server reached over TCP,
// the --nats code path, instead of the embedded one.
func TestServeOnExternalNATS(t *testing.T) {
	ns, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server did not start")
	}
	defer ns.Shutdown()

	data := t.TempDir()
	s := startServe(t, data, func(o *serveOptions) { o.NATS = []string{ns.ClientURL()} })
	a := postMessages(t, s.base, "ext", []string{"over tcp"}, false)[0]
	f := get(t, bucketURL(s.base, "ext", a.second))
	if f.status != http.StatusOK {
		t.Fatalf("bucket: %d %s", f.status, f.body)
	}
	b, err := bucketer.DecodeGzip(f.body)
	if err != nil || len(b.Messages) != 1 || b.Messages[0].ID != a.id {
		t.Fatalf("bucket %+v, %v", b, err)
	}
	// The log lives in the external server: nothing embedded under --data.
	if _, err := os.Stat(filepath.Join(data, "nats")); !os.IsNotExist(err) {
		t.Errorf("an embedded log was started under %s: %v", data, err)
	}
}
