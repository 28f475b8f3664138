// Command danmaku delivers live comments to millions of viewers by turning
// the read side into static, immutable, per-second files.
package main

import (
	"os"

	"github.com/danmaku/danmaku/cmd"
)

func main() {
	os.Exit(cmd.Main(os.Args[1:]))
}
