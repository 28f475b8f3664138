// Command bench measures danmaku against named baselines and writes
// BENCHMARKS.md: the origin's hot path against nginx, the bucket format
// against a naive JSON layout and Bilibili's protobuf, bytes per viewer, the
// post-to-visible latency and the origin's load through a caching proxy
// (Varnish), ingest throughput, and memory with many rooms.
//
//	go run ./bench                  # everything, writes BENCHMARKS.md (make bench)
//	go run ./bench -quick           # a reduced set that prints its figures (make bench-quick)
//	go run ./bench -only size,hotpath
//
// The machine has two cores: every server under test runs on core 0 and
// every load generator on core 1 (taskset), figures are medians of several
// runs, and each is reported with the baseline measured in the same run and
// the command that produced it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "origin-server" {
		if err := runOriginServer(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench origin-server:", err)
			os.Exit(1)
		}
		return
	}
	quick := flag.Bool("quick", false, "a reduced set in under a minute, for CI: figures are printed, goals not enforced")
	out := flag.String("out", "", "write the report here (default: BENCHMARKS.md, or nothing with -quick)")
	only := flag.String("only", "", "comma-separated subset: hotpath,size,viewer,proxy,ingest,memory")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *out == "" && !*quick {
		*out = "BENCHMARKS.md"
	}
	e, err := newEnv(*quick)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	defer e.cleanup()
	want := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			want[s] = true
		}
	}
	steps := []struct {
		name string
		run  func(context.Context, *env) *section
	}{
		{"hotpath", benchHotPath},
		{"size", benchSize},
		{"viewer", benchViewer},
		{"proxy", benchProxy},
		{"ingest", benchIngest},
		{"memory", benchMemory},
	}
	rep := &report{quick: *quick, started: time.Now(), machine: e.machine()}
	failed := false
	for _, s := range steps {
		if len(want) > 0 && !want[s.name] {
			continue
		}
		e.logf("== %s", s.name)
		t0 := time.Now()
		sec := s.run(ctx, e)
		sec.took = time.Since(t0)
		if sec.err != nil {
			failed = true
			e.logf("%s: harness error: %v", s.name, sec.err)
		}
		rep.sections = append(rep.sections, sec)
		fmt.Println(sec.text())
		if ctx.Err() != nil {
			break
		}
	}
	rep.took = time.Since(rep.started)
	fmt.Println(rep.summary())
	if *out != "" {
		if err := os.WriteFile(*out, []byte(rep.markdown()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		e.logf("wrote %s", *out)
	}
	if failed || ctx.Err() != nil {
		os.Exit(1)
	}
}
