// Package cmd is the danmaku command line: one file per command, each with
// an options struct, its flags, and a run function that tests call directly.
// It is the only package that wires the parts together.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Main runs the command line and returns the process exit status.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, os.Stdout, os.Stderr)
}

// run executes one command line: 0 on success, 2 for a usage error, 1 for
// anything else, with the error on one line of stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCommand(stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "danmaku: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
		var u usageError
		if errors.As(err, &u) || strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "unknown flag") {
			return 2
		}
		return 1
	}
	return 0
}

// usageError marks errors in how the command was called.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "danmaku",
		Short: "Live comments for millions of viewers, served as static per-second files",
		Long: `danmaku delivers live comments ("danmaku") by turning the read side into static
files: a writer seals each room's messages into per-second, immutable,
pre-gzipped buckets; an origin serves them from an in-memory ring backed by a
directory or S3; players short-poll second-aligned URLs through a CDN.

Every flag has an environment twin: --listen is DANMAKU_LISTEN, --s3-endpoint
is DANMAKU_S3_ENDPOINT, and so on. A flag on the command line wins.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newServeCommand(),
		newBackfillCommand(),
		newExportCommand(),
		newPurgeCommand(),
		newLoadgenCommand(),
		newVersionCommand(),
	)
	return root
}

// bindEnv gives every flag of fs that was not set on the command line the
// value of its environment twin, DANMAKU_ and the flag name in upper case
// with dashes as underscores.
func bindEnv(fs *pflag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "help" {
			return
		}
		name := envName(f.Name)
		v, ok := os.LookupEnv(name)
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, usagef("%s=%q: %v", name, v, err))
		}
	})
	return errors.Join(errs...)
}

func envName(flag string) string {
	return "DANMAKU_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// addEnvHelp appends each flag's environment twin to its help line.
func addEnvHelp(fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" {
			f.Usage += " [" + envName(f.Name) + "]"
		}
	})
}

// newLogger returns the logger of a command: text or JSON on stderr.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usagef("--log-format %q: use text or json", format)
}
