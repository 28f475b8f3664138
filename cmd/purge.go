package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
	"github.com/spf13/cobra"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/keys"
	"github.com/danmaku/danmaku/origin"
	"github.com/danmaku/danmaku/publisher"
)

type purgeOptions struct {
	storeOptions
	rangeOptions
	Data               string
	IDs                []string
	Origins            []string
	AdminToken         string
	Distribution       string
	CloudFrontEndpoint string
	MaxExactPaths      int
	DryRun             bool
}

func newPurgeCommand() *cobra.Command {
	opts := &purgeOptions{}
	c := &cobra.Command{
		Use:   "purge",
		Short: "Take a room's messages down: delete or redact buckets in the store, the origin rings and the CDN",
		Long: `Delete a room's buckets and segments for a range of seconds, or with --ids
rewrite them without the given messages, everywhere a viewer could read them:

  1. the store (deletes in batches of at most 1000; rewrites of redacted objects);
  2. the ring of every origin named with --origin, through its admin API;
  3. the CDN, with a CloudFront invalidation (--cloudfront-distribution): exact
     paths when there are few, prefix wildcards when they save money.

Everything is checked before anything changes. Run with --dry-run first to see
what would change. If a step fails the command goes on with the others, reports
what did and did not happen, and exits 1.`,
		Example: `  danmaku purge --room lobby --from 1795855000 --to 1795855099 --dry-run
  danmaku purge --room lobby --from 2026-11-28T08:00:00Z --to 2026-11-28T08:10:00Z --ids 4211,4215.2 \
      --store s3://danmaku-prod/live --origin https://origin.example.com --admin-token "$TOKEN" \
      --cloudfront-distribution E2ABCDEF123456`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := bindEnv(c.Flags()); err != nil {
				return err
			}
			return runPurge(c.Context(), opts, c.OutOrStdout(), c.ErrOrStderr())
		},
	}
	fs := c.Flags()
	opts.storeOptions.AddFlags(fs)
	opts.rangeOptions.AddFlags(fs, false)
	fs.StringVar(&opts.Data, "data", "./data", "data directory whose default store to change (when --store is not given)")
	fs.StringSliceVar(&opts.IDs, "ids", nil, "redact only these message ids (comma-separated) instead of deleting the range")
	fs.StringSliceVar(&opts.Origins, "origin", nil, "base URL of an origin whose ring to update (repeat or comma-separate)")
	fs.StringVar(&opts.AdminToken, "admin-token", "", "the origins' admin bearer token")
	fs.StringVar(&opts.Distribution, "cloudfront-distribution", "", "CloudFront distribution id to invalidate")
	fs.StringVar(&opts.CloudFrontEndpoint, "cloudfront-endpoint", "", "CloudFront API endpoint URL (default: AWS's)")
	fs.IntVar(&opts.MaxExactPaths, "max-exact-paths", 30, "invalidate path by path up to this many; past it, use prefix wildcards")
	fs.BoolVar(&opts.DryRun, "dry-run", false, "list what would change and change nothing")
	addEnvHelp(fs)
	return c
}

var distributionID = regexp.MustCompile(`^[A-Z0-9]{8,20}$`)

// change is one object the purge rewrites (body) or deletes (body nil).
type change struct {
	key  string
	body []byte
}

func (o *purgeOptions) validate() (room string, from, to int64, ids map[string]bool, err error) {
	if from, to, err = o.rangeOptions.parse(); err != nil {
		return
	}
	if len(o.Rooms) != 1 {
		err = usagef("purge one room at a time: give exactly one --room")
		return
	}
	room = o.Rooms[0]
	if len(o.IDs) > 10000 {
		err = usagef("--ids: at most 10000 at a time")
		return
	}
	if len(o.IDs) > 0 {
		ids = map[string]bool{}
		for _, id := range o.IDs {
			if _, _, perr := bucketer.ParseMessageID(strings.TrimSpace(id)); perr != nil {
				err = usagef("--ids %q: message ids look like 4211 or 4215.2", id)
				return
			}
			ids[strings.TrimSpace(id)] = true
		}
	}
	for _, u := range o.Origins {
		p, perr := url.Parse(u)
		if perr != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			err = usagef("--origin %q: give a base URL such as https://origin.example.com", u)
			return
		}
	}
	if len(o.Origins) > 0 && o.AdminToken == "" {
		err = usagef("--origin needs --admin-token (or DANMAKU_ADMIN_TOKEN)")
		return
	}
	if o.Distribution != "" && !distributionID.MatchString(o.Distribution) {
		err = usagef("--cloudfront-distribution %q: not a distribution id (like E2ABCDEF123456)", o.Distribution)
		return
	}
	if o.MaxExactPaths < 1 || o.MaxExactPaths > 3000 {
		err = usagef("--max-exact-paths must be between 1 and 3000")
	}
	return
}

func runPurge(ctx context.Context, opts *purgeOptions, stdout, stderr io.Writer) error {
	room, from, to, ids, err := opts.validate()
	if err != nil {
		return err
	}
	var cf *cloudfront.Client
	if opts.Distribution != "" {
		if cf, err = newCloudFrontClient(ctx, opts.CloudFrontEndpoint); err != nil {
			return err
		}
	}
	store, storeDesc, err := opts.storeOptions.open(ctx, opts.Data)
	if err != nil {
		return err
	}

	// Plan: which objects change, and how.
	var listed []string
	for _, kind := range []keys.Kind{keys.Bucket, keys.Segment} {
		ks, err := listRange(ctx, store, kind, room, from, to)
		if err != nil {
			return err
		}
		listed = append(listed, ks...)
	}
	var changes []change
	removed := 0
	if ids == nil {
		for _, k := range listed {
			changes = append(changes, change{key: k})
		}
	} else {
		bar := newBar(stderr, int64(len(listed)), "reading")
		for _, k := range listed {
			gz, err := store.Get(ctx, k)
			if err != nil {
				return err
			}
			out, n, err := bucketer.Redact(gz, ids)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			if n > 0 {
				changes = append(changes, change{key: k, body: out})
				if kind, _, _, _ := keys.Parse(k); kind == keys.Bucket {
					removed += n
				}
			}
			bar.Add(1)
		}
		bar.Finish()
	}
	paths := invalidationPaths(room, changes, from, to, opts.MaxExactPaths)
	what := "delete"
	if ids != nil {
		what = fmt.Sprintf("redact %s (%s found) from", plural(len(ids), "message id"), plural(removed, "message"))
	}

	if opts.DryRun {
		fmt.Fprintf(stdout, "purge (dry run): would %s room %s, seconds %d..%d in %s:\n", what, room, from, to, storeDesc)
		for i, c := range changes {
			if i == 50 {
				fmt.Fprintf(stdout, "  … and %d more\n", len(changes)-50)
				break
			}
			action := "delete "
			if c.body != nil {
				action = "rewrite"
			}
			fmt.Fprintf(stdout, "  %s %s\n", action, c.key)
		}
		for _, o := range opts.Origins {
			fmt.Fprintf(stdout, "  tell origin %s\n", o)
		}
		if cf != nil && len(changes) > 0 {
			fmt.Fprintf(stdout, "  invalidate in %s: %s\n", opts.Distribution, strings.Join(paths, " "))
		}
		fmt.Fprintf(stdout, "purge (dry run): %s would change; nothing was changed\n", plural(len(changes), "object"))
		return nil
	}

	var report []string
	failed := false
	fail := func(format string, a ...any) {
		failed = true
		report = append(report, "FAILED: "+fmt.Sprintf(format, a...))
	}

	// 1. The store.
	done := applyStore(ctx, store, changes, newBar(stderr, int64(len(changes)), "store"))
	if done == len(changes) {
		report = append(report, fmt.Sprintf("store: %d of %d objects changed in %s", done, len(changes), storeDesc))
	} else {
		fail("store: only %d of %d objects changed in %s; the rest are as they were", done, len(changes), storeDesc)
	}

	// 2. The origins' rings.
	for _, o := range opts.Origins {
		n, err := tellOrigin(ctx, o, opts.AdminToken, room, from, to, opts.IDs)
		if err != nil {
			fail("origin %s: %v", o, err)
			continue
		}
		report = append(report, fmt.Sprintf("origin %s: %s in the ring updated", o, plural(n, "object")))
	}

	// 3. The CDN.
	if cf != nil && len(changes) > 0 {
		ref := fmt.Sprintf("danmaku-purge/%s/%d-%d/%d", room, from, to, time.Now().UnixNano())
		for i := 0; i < len(paths); i += 3000 {
			batch := paths[i:min(i+3000, len(paths))]
			id, err := invalidate(ctx, cf, opts.Distribution, fmt.Sprintf("%s/%d", ref, i/3000+1), batch)
			if err != nil {
				fail("cdn: invalidation of %s in %s: %v", plural(len(batch), "path"), opts.Distribution, err)
				continue
			}
			report = append(report, fmt.Sprintf("cdn: invalidation %s of %s in %s", id, plural(len(batch), "path"), opts.Distribution))
		}
	} else if cf == nil && len(changes) > 0 {
		report = append(report, "cdn: not invalidated (no --cloudfront-distribution); cached copies expire only if they were never cached immutable")
	}

	fmt.Fprintf(stdout, "purge: %s room %s, seconds %d..%d: %s\n", what, room, from, to, plural(len(changes), "object"))
	for _, line := range report {
		fmt.Fprintln(stdout, "  "+line)
	}
	if failed {
		return errors.New("purge incomplete: see the FAILED lines above; running it again is safe")
	}
	return nil
}

// applyStore deletes (in batches of 1000) and rewrites; it returns how many
// changes were made.
func applyStore(ctx context.Context, store publisher.Store, changes []change, bar interface{ Add(int) error }) int {
	done := 0
	var deletes []string
	for _, c := range changes {
		if c.body == nil {
			deletes = append(deletes, c.key)
			continue
		}
		if err := store.Replace(ctx, c.key, c.body); err == nil {
			done++
			bar.Add(1)
		}
	}
	for i := 0; i < len(deletes); i += 1000 {
		chunk := deletes[i:min(i+1000, len(deletes))]
		if err := store.Delete(ctx, chunk); err == nil {
			done += len(chunk)
			bar.Add(len(chunk))
		}
	}
	return done
}

// tellOrigin asks one origin to drop (or redact) the range in its ring, a
// day at a time.
func tellOrigin(ctx context.Context, base, token, room string, from, to int64, ids []string) (int, error) {
	action := "drop"
	if len(ids) > 0 {
		action = "redact"
	}
	client := &http.Client{Timeout: 15 * time.Second}
	total := 0
	for lo := from; lo <= to; lo += 86400 {
		hi := min(lo+86399, to)
		body, _ := json.Marshal(origin.AdminRange{From: lo, To: hi, IDs: ids})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost,
			strings.TrimRight(base, "/")+"/admin/v1/rooms/"+room+"/"+action, bytes.NewReader(body))
		if err != nil {
			return total, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return total, err
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return total, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
		}
		var res origin.AdminResult
		if err := json.Unmarshal(b, &res); err != nil {
			return total, fmt.Errorf("unexpected answer %q", b)
		}
		total += res.Objects
	}
	return total, nil
}

// invalidationPaths lists the URL paths to invalidate: every changed object
// when there are at most maxExact, else prefix wildcards covering the range
// of each kind changed (CloudFront bills a wildcard as one path, and runs at
// most 15 at once: this makes at most 8).
func invalidationPaths(room string, changes []change, from, to int64, maxExact int) []string {
	if len(changes) == 0 {
		return nil
	}
	if len(changes) <= maxExact {
		var out []string
		for _, c := range changes {
			out = append(out, "/"+c.key)
		}
		sort.Strings(out)
		return out
	}
	kinds := map[keys.Kind]bool{}
	for _, c := range changes {
		k, _, _, _ := keys.Parse(c.key)
		kinds[k] = true
	}
	var out []string
	for _, kind := range []keys.Kind{keys.Bucket, keys.Segment} {
		if !kinds[kind] {
			continue
		}
		lo := from
		if kind == keys.Segment {
			lo = keys.SegmentStart(from)
		}
		for _, p := range coverPrefixes(lo, to, 4) {
			out = append(out, "/"+keys.RoomPrefix(kind, room)+p+"*")
		}
	}
	return out
}

// coverPrefixes returns at most n decimal prefixes whose wildcards cover
// every number in [lo, hi].
func coverPrefixes(lo, hi int64, n int) []string {
	for d, scale := 0, int64(1); d < 12; d, scale = d+1, scale*10 {
		first, last := lo/scale, hi/scale
		if last-first+1 > int64(n) {
			continue
		}
		var out []string
		for p := first; p <= last; p++ {
			if p == 0 && d > 0 {
				out = append(out, "")
				continue
			}
			out = append(out, strconv.FormatInt(p, 10))
		}
		return out
	}
	return []string{""}
}

func newCloudFrontClient(ctx context.Context, endpoint string) (*cloudfront.Client, error) {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"))
	if err != nil {
		return nil, fmt.Errorf("aws config: %w", err)
	}
	if endpoint != "" {
		if u, err := url.Parse(endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, usagef("--cloudfront-endpoint %q: give a URL", endpoint)
		}
	}
	return cloudfront.NewFromConfig(cfg, func(o *cloudfront.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	}), nil
}

func invalidate(ctx context.Context, cf *cloudfront.Client, distribution, ref string, paths []string) (string, error) {
	out, err := cf.CreateInvalidation(ctx, &cloudfront.CreateInvalidationInput{
		DistributionId: aws.String(distribution),
		InvalidationBatch: &cftypes.InvalidationBatch{
			CallerReference: aws.String(ref),
			Paths:           &cftypes.Paths{Quantity: aws.Int32(int32(len(paths))), Items: paths},
		},
	})
	if err != nil {
		return "", err
	}
	if out.Invalidation == nil {
		return "", errors.New("no invalidation in the answer")
	}
	return aws.ToString(out.Invalidation.Id), nil
}
