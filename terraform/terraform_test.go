package terraform_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/danmaku/danmaku/origin"
)

// These tests read the Terraform configuration itself (no provider, no
// network: `terraform validate` and `plan` cannot run here) and check the
// rules DESIGN.md sets for the CDN, the bucket and the timeouts. Each rule is
// a check function that reports problems; TestChecksCatchMistakes breaks the
// configuration on purpose and expects each check to notice.

const exampleDir = "examples/complete"

// Paths a viewer may send that must never reach the origin service through
// the read distribution: admin, posting (any method), metrics and health.
var forbiddenPaths = []string{
	"/admin/purge", "/admin/x", "/admin/", "/admin",
	"/v1/rooms/r/messages", "/v1/rooms/r/messages/", "/v1/rooms/lobby/messages",
	"/metrics", "/healthz", "/readyz",
}

// Read paths and the behaviour they need.
const (
	bucketPath  = "/v1/rooms/lobby/buckets/1795855010.json"
	segmentPath = "/v1/rooms/lobby/segments/1795855010.json"
	headPath    = "/v1/rooms/lobby/head"
)

var readOnlyMethods = setOf("GET", "HEAD", "OPTIONS")

// check collects the problems one rule finds in a module.
type check struct {
	m        *module
	problems []string
}

func (c *check) fail(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// value evaluates attribute name of b; it reports a problem and returns false
// if the attribute is missing or cannot be known without AWS.
func (c *check) value(b *hclsyntax.Block, name string) (cty.Value, bool) {
	a, ok := b.Body.Attributes[name]
	if !ok {
		c.fail("%s: %s %s has no %s", b.DefRange().String(), b.Type, strings.Join(b.Labels, "."), name)
		return cty.NilVal, false
	}
	v, diags := a.Expr.Value(c.m.ctx)
	if diags.HasErrors() || !v.IsWhollyKnown() {
		c.fail("%s: %s = %s cannot be evaluated offline", a.SrcRange.String(), name, c.m.text(a.Expr))
		return cty.NilVal, false
	}
	return v, true
}

func (c *check) number(b *hclsyntax.Block, name string) (float64, bool) {
	v, ok := c.value(b, name)
	if !ok {
		return 0, false
	}
	if v.IsNull() || v.Type() != cty.Number {
		c.fail("%s: %s is %#v, not a number", b.DefRange().String(), name, v)
		return 0, false
	}
	f, _ := v.AsBigFloat().Float64()
	return f, true
}

func (c *check) str(b *hclsyntax.Block, name string) (string, bool) {
	v, ok := c.value(b, name)
	if !ok {
		return "", false
	}
	if v.IsNull() || v.Type() != cty.String {
		c.fail("%s: %s is %#v, not a string", b.DefRange().String(), name, v)
		return "", false
	}
	return v.AsString(), true
}

func (c *check) boolean(b *hclsyntax.Block, name string) (bool, bool) {
	v, ok := c.value(b, name)
	if !ok {
		return false, false
	}
	if v.IsNull() || v.Type() != cty.Bool {
		c.fail("%s: %s is %#v, not a bool", b.DefRange().String(), name, v)
		return false, false
	}
	return v.True(), true
}

// strings evaluates a list or set of strings (or numbers, as text).
func (c *check) strings(b *hclsyntax.Block, name string) ([]string, bool) {
	v, ok := c.value(b, name)
	if !ok {
		return nil, false
	}
	if v.IsNull() || !v.CanIterateElements() {
		c.fail("%s: %s is %#v, not a list", b.DefRange().String(), name, v)
		return nil, false
	}
	var out []string
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		switch e.Type() {
		case cty.String:
			out = append(out, e.AsString())
		case cty.Number:
			out = append(out, e.AsBigFloat().Text('f', -1))
		default:
			c.fail("%s: %s holds %#v", b.DefRange().String(), name, e)
		}
	}
	return out, true
}

// resource returns the resource block typ.name, reporting a problem if absent.
func (c *check) resource(typ, name string) *hclsyntax.Block {
	b := c.m.find("resource", typ, name)
	if b == nil {
		c.fail("no resource %s.%s", typ, name)
	}
	return b
}

// refAttr reads attribute name of b as a reference to a resource or data
// source of type typ.
func (c *check) refAttr(b *hclsyntax.Block, name, typ string) (ref, bool) {
	a, ok := b.Body.Attributes[name]
	if !ok {
		c.fail("%s: %s has no %s", b.DefRange().String(), b.Type, name)
		return ref{}, false
	}
	r, ok := refOf(a.Expr)
	if !ok || r.typ != typ {
		c.fail("%s: %s = %s is not a reference to a %s", a.SrcRange.String(), name, c.m.text(a.Expr), typ)
		return ref{}, false
	}
	return r, true
}

func runCheck(t *testing.T, m *module, fn func(*check)) {
	t.Helper()
	c := &check{m: m}
	fn(c)
	for _, p := range c.problems {
		t.Error(p)
	}
}

// ---------------------------------------------------------------------------
// The distribution: origins, groups and behaviours.

type distribution struct {
	block      *hclsyntax.Block
	s3         map[string]bool     // origin ids of S3 origins (origin access control)
	service    map[string]bool     // origin ids of custom origins (the load balancer)
	groups     map[string][]string // origin group id -> member origin ids, in order
	behaviours []*hclsyntax.Block  // ordered_cache_behavior blocks, in order
	dflt       *hclsyntax.Block
}

func (c *check) distribution() *distribution {
	b := c.resource("aws_cloudfront_distribution", "this")
	if b == nil {
		return nil
	}
	d := &distribution{block: b, s3: map[string]bool{}, service: map[string]bool{}, groups: map[string][]string{}}
	for _, o := range nested(b, "origin") {
		id, ok := c.str(o, "origin_id")
		if !ok {
			continue
		}
		custom := nested(o, "custom_origin_config")
		_, oac := o.Body.Attributes["origin_access_control_id"]
		switch {
		case len(custom) > 0:
			d.service[id] = true
		case oac:
			d.s3[id] = true
		default:
			c.fail("%s: origin %q is neither a custom origin nor an S3 origin with origin access control", o.DefRange().String(), id)
		}
	}
	for _, g := range nested(b, "origin_group") {
		id, ok := c.str(g, "origin_id")
		if !ok {
			continue
		}
		for _, mb := range nested(g, "member") {
			if mid, ok := c.str(mb, "origin_id"); ok {
				d.groups[id] = append(d.groups[id], mid)
			}
		}
	}
	d.behaviours = nested(b, "ordered_cache_behavior")
	if ds := nested(b, "default_cache_behavior"); len(ds) == 1 {
		d.dflt = ds[0]
	} else {
		c.fail("aws_cloudfront_distribution.this has %d default_cache_behavior blocks", len(ds))
	}
	return d
}

// behaviourFor is the behaviour CloudFront applies to path: the first ordered
// behaviour whose pattern matches, else the default; and that pattern.
func (c *check) behaviourFor(d *distribution, path string) (*hclsyntax.Block, string) {
	for _, b := range d.behaviours {
		if p, ok := c.str(b, "path_pattern"); ok && cloudFrontMatch(p, path) {
			return b, p
		}
	}
	return d.dflt, "*"
}

// reaches lists the origins a behaviour's target sends requests to.
func (c *check) reaches(d *distribution, b *hclsyntax.Block) []string {
	id, ok := c.str(b, "target_origin_id")
	if !ok {
		return nil
	}
	if members, ok := d.groups[id]; ok {
		return members
	}
	if !d.s3[id] && !d.service[id] {
		c.fail("%s: target_origin_id %q names no origin or origin group", b.DefRange().String(), id)
	}
	return []string{id}
}

// cachePolicy is the cache policy resource a behaviour uses.
func (c *check) cachePolicy(b *hclsyntax.Block) *hclsyntax.Block {
	r, ok := c.refAttr(b, "cache_policy_id", "aws_cloudfront_cache_policy")
	if !ok {
		return nil
	}
	return c.resource(r.typ, r.name)
}

// keyedOnPathOnly checks a cache policy puts no cookie, header or query
// string in the key.
func (c *check) keyedOnPathOnly(policy *hclsyntax.Block, what string) {
	params := nested(policy, "parameters_in_cache_key_and_forwarded_to_origin")
	if len(params) != 1 {
		c.fail("%s cache policy: want one parameters_in_cache_key_and_forwarded_to_origin block", what)
		return
	}
	p := params[0]
	for _, kv := range [][2]string{
		{"cookies_config", "cookie_behavior"},
		{"headers_config", "header_behavior"},
		{"query_strings_config", "query_string_behavior"},
	} {
		blocks := nested(p, kv[0])
		if len(blocks) != 1 {
			c.fail("%s cache policy: want one %s block", what, kv[0])
			continue
		}
		if v, ok := c.str(blocks[0], kv[1]); ok && v != "none" {
			c.fail("%s cache policy: %s = %q; the key must be the path only", what, kv[1], v)
		}
		if len(blocks[0].Body.Blocks) > 0 {
			c.fail("%s cache policy: %s lists items; the key must be the path only", what, kv[0])
		}
	}
}

// ---------------------------------------------------------------------------
// Rules

// checkErrorCaching: a 404 is never cached (a second that has not sealed must
// not hide behind a cached 404), nor a 403 (S3's answer for an absent key);
// 5xx briefly; and no error is turned into another status or a page.
func checkErrorCaching(c *check) {
	d := c.resource("aws_cloudfront_distribution", "this")
	if d == nil {
		return
	}
	ttl := map[float64]float64{}
	for _, e := range nested(d, "custom_error_response") {
		code, ok := c.number(e, "error_code")
		if !ok {
			continue
		}
		if v, ok := c.number(e, "error_caching_min_ttl"); ok {
			ttl[code] = v
		}
		for _, forbidden := range []string{"response_code", "response_page_path"} {
			if _, ok := e.Body.Attributes[forbidden]; ok {
				c.fail("custom_error_response %v sets %s: errors must reach players as they are (a page or a 200 would be cached)", code, forbidden)
			}
		}
	}
	for _, code := range []float64{404, 403} {
		v, ok := ttl[code]
		switch {
		case !ok:
			c.fail("no custom_error_response for %v: CloudFront would cache it for 10 s", code)
		case v != 0:
			c.fail("custom_error_response %v: error_caching_min_ttl = %v, want 0", code, v)
		}
	}
	for _, code := range []float64{500, 502, 503, 504} {
		v, ok := ttl[code]
		switch {
		case !ok:
			c.fail("no custom_error_response for %v: CloudFront would cache it for 10 s", code)
		case v < 0 || v > 5:
			c.fail("custom_error_response %v: error_caching_min_ttl = %v, want a short TTL (0-5 s)", code, v)
		}
	}
}

// checkObjectBehaviours: bucket and segment paths use a cache policy keyed on
// the path only, with gzip normalisation, min TTL 0, default >= 1 and max one
// year; edge compression off; the origin service first, S3 on 5xx only.
func checkObjectBehaviours(c *check) {
	d := c.distribution()
	if d == nil {
		return
	}
	for _, path := range []string{bucketPath, segmentPath} {
		b, pattern := c.behaviourFor(d, path)
		if b == nil {
			continue
		}
		if pattern == "*" {
			c.fail("%s falls through to the default behaviour; want its own behaviour", path)
		}
		if v, ok := c.boolean(b, "compress"); ok && v {
			c.fail("behaviour %q: compress = true; objects are stored gzip-encoded", pattern)
		}
		if _, ok := b.Body.Attributes["origin_request_policy_id"]; ok {
			c.fail("behaviour %q: has an origin request policy; nothing but the path goes to the origin", pattern)
		}
		if _, ok := b.Body.Attributes["response_headers_policy_id"]; !ok {
			c.fail("behaviour %q: no response headers policy (CORS)", pattern)
		}
		origins := c.reaches(d, b)
		if len(origins) != 2 || !d.service[origins[0]] || !d.s3[origins[1]] {
			c.fail("behaviour %q reaches %v; want an origin group of the origin service, then S3", pattern, origins)
		}
		policy := c.cachePolicy(b)
		if policy == nil {
			continue
		}
		what := "behaviour " + pattern
		if v, ok := c.number(policy, "min_ttl"); ok && v != 0 {
			c.fail("%s: min_ttl = %v, want 0 (gzip normalisation needs it)", what, v)
		}
		if v, ok := c.number(policy, "default_ttl"); ok && v < 1 {
			c.fail("%s: default_ttl = %v, want at least 1 (gzip normalisation needs it)", what, v)
		}
		if v, ok := c.number(policy, "max_ttl"); ok && v != 31536000 {
			c.fail("%s: max_ttl = %v, want one year (31536000)", what, v)
		}
		c.keyedOnPathOnly(policy, what)
		if params := nested(policy, "parameters_in_cache_key_and_forwarded_to_origin"); len(params) == 1 {
			if v, ok := c.boolean(params[0], "enable_accept_encoding_gzip"); ok && !v {
				c.fail("%s: enable_accept_encoding_gzip = false; clients without gzip would get gzip bytes", what)
			}
			if _, set := params[0].Body.Attributes["enable_accept_encoding_brotli"]; set {
				if v, ok := c.boolean(params[0], "enable_accept_encoding_brotli"); ok && v {
					c.fail("%s: brotli normalisation splits the cache; objects are gzip only", what)
				}
			}
		}
	}
	for _, g := range nested(d.block, "origin_group") {
		id, _ := c.str(g, "origin_id")
		crit := nested(g, "failover_criteria")
		if len(crit) != 1 {
			c.fail("origin group %q: want one failover_criteria block", id)
			continue
		}
		codes, ok := c.strings(crit[0], "status_codes")
		if !ok {
			continue
		}
		for _, want := range []string{"500", "502", "503", "504"} {
			if !slices.Contains(codes, want) {
				c.fail("origin group %q: no failover on %s", id, want)
			}
		}
		for _, code := range codes {
			if strings.HasPrefix(code, "4") {
				c.fail("origin group %q fails over on %s: a 4xx from the origin is its answer (404: not sealed yet)", id, code)
			}
		}
	}
}

// checkOriginShield: every origin is reached through Origin Shield (on by
// default), in the Region of the origin unless the operator picks another.
func checkOriginShield(c *check) {
	d := c.distribution()
	if d == nil {
		return
	}
	for _, o := range nested(d.block, "origin") {
		id, _ := c.str(o, "origin_id")
		shields := nested(o, "origin_shield")
		if len(shields) != 1 {
			c.fail("origin %q has no origin_shield block", id)
			continue
		}
		if on, ok := c.boolean(shields[0], "enabled"); ok && !on {
			c.fail("origin %q: Origin Shield is off by default", id)
		}
		region, ok := shields[0].Body.Attributes["origin_shield_region"]
		if !ok || c.m.text(region.Expr) != "local.origin_shield_region" {
			c.fail("origin %q: origin_shield_region should be local.origin_shield_region", id)
		}
	}
	for _, l := range c.m.top("locals") {
		if a, ok := l.Body.Attributes["origin_shield_region"]; ok && !strings.Contains(c.m.text(a.Expr), "data.aws_region.current.region") {
			c.fail("local.origin_shield_region = %s does not default to the origin's Region", c.m.text(a.Expr))
		}
	}
}

// checkCORS: every read behaviour adds CORS at the edge for GET from the
// configured origins (any, by default), without credentials.
func checkCORS(c *check) {
	d := c.distribution()
	if d == nil {
		return
	}
	for _, b := range append(slices.Clone(d.behaviours), d.dflt) {
		if b == nil {
			continue
		}
		r, ok := c.refAttr(b, "response_headers_policy_id", "aws_cloudfront_response_headers_policy")
		if !ok {
			continue
		}
		policy := c.resource(r.typ, r.name)
		if policy == nil {
			continue
		}
		cors := nested(policy, "cors_config")
		if len(cors) != 1 {
			c.fail("response headers policy %s has no cors_config", r.name)
			continue
		}
		if v, ok := c.boolean(cors[0], "access_control_allow_credentials"); ok && v {
			c.fail("CORS allows credentials; reads are public")
		}
		for _, m := range nested(cors[0], "access_control_allow_methods") {
			items, _ := c.strings(m, "items")
			if !slices.Contains(items, "GET") {
				c.fail("CORS does not allow GET")
			}
			for _, it := range items {
				if !readOnlyMethods[it] {
					c.fail("CORS allows %s on the read distribution", it)
				}
			}
		}
		for _, o := range nested(cors[0], "access_control_allow_origins") {
			if items, ok := c.strings(o, "items"); ok && !slices.Equal(items, []string{"*"}) {
				c.fail("CORS allows origins %v by default; want any (*), configurable", items)
			}
		}
	}
}

// checkHeadBehaviour: the head goes to the origin service, keyed on the path,
// cached at most one second.
func checkHeadBehaviour(c *check) {
	d := c.distribution()
	if d == nil {
		return
	}
	b, pattern := c.behaviourFor(d, headPath)
	if b == nil {
		return
	}
	if pattern == "*" {
		c.fail("%s falls through to the default behaviour; want its own behaviour", headPath)
	}
	if origins := c.reaches(d, b); len(origins) != 1 || !d.service[origins[0]] {
		c.fail("behaviour %q reaches %v; want the origin service alone (S3 has no head)", pattern, origins)
	}
	policy := c.cachePolicy(b)
	if policy == nil {
		return
	}
	if v, ok := c.number(policy, "min_ttl"); ok && v != 0 {
		c.fail("head cache policy: min_ttl = %v, want 0", v)
	}
	if v, ok := c.number(policy, "max_ttl"); ok && v > 1 {
		c.fail("head cache policy: max_ttl = %v, want at most 1 s", v)
	}
	if v, ok := c.number(policy, "default_ttl"); ok && v > 1 {
		c.fail("head cache policy: default_ttl = %v, want at most 1 s", v)
	}
	c.keyedOnPathOnly(policy, "head")
}

// checkNoRouteToAdminOrIngest: through the read distribution, no admin,
// posting or metrics path reaches the origin service; the default behaviour
// reaches S3 only; every behaviour is read-only, so a POST is refused at the
// edge; and the only custom origin is the load balancer's CloudFront-only
// listener, whose rules forward read paths alone, to the origin service.
func checkNoRouteToAdminOrIngest(c *check) {
	d := c.distribution()
	if d == nil {
		return
	}
	for _, b := range append(slices.Clone(d.behaviours), d.dflt) {
		if b == nil {
			continue
		}
		methods, ok := c.strings(b, "allowed_methods")
		if !ok {
			continue
		}
		for _, m := range methods {
			if !readOnlyMethods[m] {
				c.fail("%s: allowed_methods has %s; the read distribution takes GET, HEAD and OPTIONS only", b.DefRange().String(), m)
			}
		}
	}
	if d.dflt != nil {
		for _, o := range c.reaches(d, d.dflt) {
			if !d.s3[o] {
				c.fail("the default behaviour reaches %q; it must reach S3 only, so unknown paths never get to a service", o)
			}
		}
	}
	for _, path := range forbiddenPaths {
		b, pattern := c.behaviourFor(d, path)
		if b == nil {
			continue
		}
		for _, o := range c.reaches(d, b) {
			if d.service[o] {
				c.fail("%s matches behaviour %q, which reaches the origin service %q", path, pattern, o)
			}
		}
	}

	// The custom origin is the origin listener, never the ingest listener.
	ingest := c.resource("aws_lb_listener", "ingest")
	listener := c.resource("aws_lb_listener", "origin")
	if ingest == nil || listener == nil {
		return
	}
	ingestPort, ok1 := c.number(ingest, "port")
	originPort, ok2 := c.number(listener, "port")
	if ok1 && ok2 && ingestPort == originPort {
		c.fail("the ingest and origin listeners share port %v", ingestPort)
	}
	for _, o := range nested(d.block, "origin") {
		for _, co := range nested(o, "custom_origin_config") {
			for _, attr := range []string{"http_port", "https_port"} {
				if p, ok := c.number(co, attr); ok && ok2 && p != originPort {
					c.fail("custom origin %s = %v; want the origin listener's port %v", attr, p, originPort)
				}
			}
		}
		headers := nested(o, "custom_header")
		if len(nested(o, "custom_origin_config")) > 0 && len(headers) == 0 {
			c.fail("the custom origin sends no secret header; the origin listener could not tell CloudFront from anyone")
		}
	}
	// The listener: anything unmatched gets a fixed response; every rule
	// forwards to the origin target group, for read paths, with the header.
	for _, a := range nested(listener, "default_action") {
		if typ, ok := c.str(a, "type"); ok && typ != "fixed-response" {
			c.fail("the origin listener's default action is %q; want a fixed response", typ)
		}
	}
	rules := 0
	for _, rule := range c.m.top("resource") {
		if rule.Labels[0] != "aws_lb_listener_rule" {
			continue
		}
		r, ok := refOf(rule.Body.Attributes["listener_arn"].Expr)
		if !ok || r.typ != "aws_lb_listener" || r.name != "origin" {
			continue
		}
		rules++
		for _, a := range nested(rule, "action") {
			if t, ok := c.refAttr(a, "target_group_arn", "aws_lb_target_group"); ok && t.key != "origin" {
				c.fail("origin listener rule forwards to target group %q; want the origin service", t.key)
			}
		}
		var patterns []string
		header := false
		for _, cond := range nested(rule, "condition") {
			for _, pp := range nested(cond, "path_pattern") {
				if v, ok := c.strings(pp, "values"); ok {
					patterns = append(patterns, v...)
				}
			}
			header = header || len(nested(cond, "http_header")) > 0
		}
		if !header {
			c.fail("origin listener rule %s has no http_header condition (the secret CloudFront sends)", rule.Labels[1])
		}
		if len(patterns) == 0 {
			c.fail("origin listener rule %s has no path_pattern condition", rule.Labels[1])
		}
		for _, p := range patterns {
			for _, path := range forbiddenPaths {
				if albMatch(p, path) {
					c.fail("origin listener rule %s forwards %s (pattern %q)", rule.Labels[1], path, p)
				}
			}
		}
	}
	if rules == 0 {
		c.fail("no rule on the origin listener forwards to the origin service")
	}
}

// checkBucketPrivate: public access blocked, no ACLs, and the bucket policy
// lets only CloudFront read, bound to this distribution by aws:SourceArn,
// through origin access control signing with SigV4.
func checkBucketPrivate(c *check) {
	bucket := c.resource("aws_s3_bucket", "this")
	if bucket == nil {
		return
	}
	if _, ok := bucket.Body.Attributes["acl"]; ok {
		c.fail("aws_s3_bucket.this sets an acl")
	}
	for _, typ := range []string{"aws_s3_bucket_acl", "aws_s3_bucket_website_configuration"} {
		for _, r := range c.m.top("resource") {
			if r.Labels[0] == typ {
				c.fail("%s.%s: the store is private and not a website", typ, r.Labels[1])
			}
		}
	}
	if pab := c.resource("aws_s3_bucket_public_access_block", "this"); pab != nil {
		if r, ok := c.refAttr(pab, "bucket", "aws_s3_bucket"); ok && r.name != "this" {
			c.fail("the public access block is on aws_s3_bucket.%s", r.name)
		}
		for _, attr := range []string{"block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"} {
			if v, ok := c.boolean(pab, attr); ok && !v {
				c.fail("aws_s3_bucket_public_access_block.this: %s = false", attr)
			}
		}
	}
	if sse := c.resource("aws_s3_bucket_server_side_encryption_configuration", "this"); sse != nil {
		if len(nested(sse, "rule")) == 0 {
			c.fail("server-side encryption has no rule")
		}
	}
	if oac := c.resource("aws_cloudfront_origin_access_control", "this"); oac != nil {
		for attr, want := range map[string]string{
			"origin_access_control_origin_type": "s3",
			"signing_behavior":                  "always",
			"signing_protocol":                  "sigv4",
		} {
			if v, ok := c.str(oac, attr); ok && v != want {
				c.fail("origin access control: %s = %q, want %q", attr, v, want)
			}
		}
	}
	if d := c.distribution(); d != nil {
		for _, o := range nested(d.block, "origin") {
			if _, ok := o.Body.Attributes["origin_access_control_id"]; !ok {
				continue
			}
			c.refAttr(o, "origin_access_control_id", "aws_cloudfront_origin_access_control")
			if len(nested(o, "s3_origin_config")) > 0 {
				c.fail("the S3 origin also has s3_origin_config (a legacy origin access identity)")
			}
		}
	}
	policy := c.resource("aws_s3_bucket_policy", "this")
	if policy == nil {
		return
	}
	r, ok := c.refAttr(policy, "policy", "aws_iam_policy_document")
	if !ok {
		return
	}
	doc := c.m.find("data", r.typ, r.name)
	if doc == nil {
		c.fail("no data.%s.%s", r.typ, r.name)
		return
	}
	allows := 0
	for _, st := range nested(doc, "statement") {
		effect := "Allow"
		if _, ok := st.Body.Attributes["effect"]; ok {
			effect, _ = c.str(st, "effect")
		}
		if effect != "Allow" {
			continue
		}
		allows++
		actions, _ := c.strings(st, "actions")
		for _, a := range actions {
			if a != "s3:GetObject" {
				c.fail("bucket policy allows %s; CloudFront needs s3:GetObject only", a)
			}
		}
		for _, p := range nested(st, "principals") {
			typ, _ := c.str(p, "type")
			ids, _ := c.strings(p, "identifiers")
			if typ != "Service" || !slices.Equal(ids, []string{"cloudfront.amazonaws.com"}) {
				c.fail("bucket policy allows principal %s %v; want the CloudFront service only", typ, ids)
			}
		}
		if len(nested(st, "principals")) == 0 {
			c.fail("bucket policy statement allows without principals")
		}
		bound := false
		for _, cond := range nested(st, "condition") {
			variable, _ := c.str(cond, "variable")
			test, _ := c.str(cond, "test")
			if !strings.EqualFold(variable, "aws:SourceArn") || test != "StringEquals" {
				continue
			}
			a := cond.Body.Attributes["values"]
			if a != nil && strings.Contains(c.m.text(a.Expr), "aws_cloudfront_distribution.this.arn") {
				bound = true
			}
		}
		if !bound {
			c.fail("bucket policy allows CloudFront without StringEquals aws:SourceArn = aws_cloudfront_distribution.this.arn")
		}
	}
	if allows == 0 {
		c.fail("bucket policy allows nothing; CloudFront could not read the store")
	}
	if lc := c.resource("aws_s3_bucket_lifecycle_configuration", "this"); lc != nil {
		expires := false
		for _, rule := range nested(lc, "rule") {
			if len(nested(rule, "expiration")) == 0 {
				continue
			}
			for _, f := range nested(rule, "filter") {
				if p, ok := f.Body.Attributes["prefix"]; ok && strings.Contains(c.m.text(p.Expr), "v1/rooms/") {
					expires = true
				}
			}
		}
		if !expires {
			c.fail("no lifecycle rule expires objects under v1/rooms/")
		}
	}
}

// checkTimeoutsAboveHold: the hold comes from the Go code (origin.DefaultHold);
// the module passes the same value to the origin, and every timeout a held
// read crosses is comfortably longer.
func checkTimeoutsAboveHold(c *check) {
	hold := origin.DefaultHold
	if v := c.m.find("variable", "hold_seconds"); v == nil {
		c.fail("no variable hold_seconds")
	} else if def, ok := c.number(v, "default"); ok && time.Duration(def*float64(time.Second)) != hold {
		c.fail("variable hold_seconds defaults to %vs; the origin's DefaultHold is %v", def, hold)
	}
	// The value the origin containers get.
	var env hcl.Expression
	for _, l := range c.m.top("locals") {
		if a, ok := l.Body.Attributes["role_environment"]; ok {
			env = a.Expr
		}
	}
	if env == nil {
		c.fail("no local role_environment")
	} else if o := objectItem(env, "origin"); o == nil {
		c.fail("local role_environment has no origin entry")
	} else if h := objectItem(o, "DANMAKU_HOLD"); h == nil {
		c.fail("the origin containers get no DANMAKU_HOLD")
	} else if v, diags := h.Value(c.m.ctx); diags.HasErrors() || !v.IsKnown() || v.Type() != cty.String {
		c.fail("DANMAKU_HOLD = %s cannot be evaluated", c.m.text(h))
	} else if got, err := time.ParseDuration(v.AsString()); err != nil || got != hold {
		c.fail("the origin containers get DANMAKU_HOLD=%q; want %v", v.AsString(), hold)
	}

	seconds := func(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
	d := c.distribution()
	if d == nil {
		return
	}
	var keepalive float64
	for _, o := range nested(d.block, "origin") {
		for _, co := range nested(o, "custom_origin_config") {
			rt, ok := c.number(co, "origin_read_timeout")
			if ok {
				if seconds(rt) < 2*hold || seconds(rt) < hold+5*time.Second {
					c.fail("origin_read_timeout = %vs; want at least twice the hold (%v) and 5 s above it", rt, hold)
				}
				if rt > 180 {
					c.fail("origin_read_timeout = %vs; CloudFront allows at most 180", rt)
				}
			}
			keepalive, _ = c.number(co, "origin_keepalive_timeout")
		}
	}
	if lb := c.resource("aws_lb", "this"); lb != nil {
		if idle, ok := c.number(lb, "idle_timeout"); ok {
			if seconds(idle) < 2*hold {
				c.fail("the load balancer's idle_timeout = %vs; want at least twice the hold (%v)", idle, hold)
			}
			if keepalive >= idle {
				c.fail("CloudFront keeps idle origin connections %vs, not less than the load balancer's %vs: reused connections would be reset", keepalive, idle)
			}
		}
	}
	for _, tg := range c.m.top("resource") {
		if tg.Labels[0] != "aws_lb_target_group" {
			continue
		}
		if dd, ok := c.number(tg, "deregistration_delay"); ok && seconds(dd) <= hold {
			c.fail("target group %s: deregistration_delay = %vs; held reads need longer than %v", tg.Labels[1], dd, hold)
		}
		for _, hc := range nested(tg, "health_check") {
			if p, ok := c.str(hc, "path"); ok && p != "/readyz" {
				c.fail("target group %s checks %s; want /readyz", tg.Labels[1], p)
			}
		}
	}
}

// checkLeastPrivilege: ingest has no AWS permissions; the origin reads; the
// writer writes, reads back and deletes, only under the prefix.
func checkLeastPrivilege(c *check) {
	allowed := map[string]map[string]bool{
		"writer": setOf("s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:ListBucket"),
		"origin": setOf("s3:GetObject", "s3:ListBucket"),
	}
	required := map[string][]string{
		"writer": {"s3:PutObject", "s3:DeleteObject"},
		"origin": {"s3:GetObject"},
	}
	granted := map[string]map[string]bool{}
	for _, r := range c.m.top("resource") {
		if r.Labels[0] != "aws_iam_role_policy" && r.Labels[0] != "aws_iam_role_policy_attachment" {
			continue
		}
		a, ok := r.Body.Attributes["role"]
		if !ok {
			c.fail("%s.%s has no role", r.Labels[0], r.Labels[1])
			continue
		}
		role, ok := refOf(a.Expr)
		if !ok || role.typ != "aws_iam_role" || role.name != "task" {
			continue
		}
		if _, ok := allowed[role.key]; !ok {
			c.fail("%s.%s grants the %q task role permissions; only the writer and the origin have any", r.Labels[0], r.Labels[1], role.key)
			continue
		}
		if r.Labels[0] == "aws_iam_role_policy_attachment" {
			c.fail("%s.%s attaches a managed policy to the %s task role; write the statements out", r.Labels[0], r.Labels[1], role.key)
			continue
		}
		doc, ok := c.refAttr(r, "policy", "aws_iam_policy_document")
		if !ok {
			continue
		}
		db := c.m.find("data", doc.typ, doc.name)
		if db == nil {
			c.fail("no data.%s.%s", doc.typ, doc.name)
			continue
		}
		if granted[role.key] == nil {
			granted[role.key] = map[string]bool{}
		}
		for _, st := range nested(db, "statement") {
			actions, _ := c.strings(st, "actions")
			for _, act := range actions {
				granted[role.key][act] = true
				if !allowed[role.key][act] {
					c.fail("the %s task role is granted %s", role.key, act)
				}
			}
			res := st.Body.Attributes["resources"]
			if res == nil {
				c.fail("a statement of data.%s.%s has no resources", doc.typ, doc.name)
				continue
			}
			text := c.m.text(res.Expr)
			objectLevel := slices.ContainsFunc(actions, func(a string) bool { return a != "s3:ListBucket" })
			if objectLevel && !strings.Contains(text, "${local.key_prefix}*") {
				c.fail("the %s task role's object permissions are on %s, not under the prefix", role.key, text)
			}
			if !strings.Contains(text, "aws_s3_bucket.this.arn") {
				c.fail("the %s task role's permissions are on %s, not the store bucket", role.key, text)
			}
		}
	}
	for role, acts := range required {
		for _, a := range acts {
			if !granted[role][a] {
				c.fail("the %s task role lacks %s", role, a)
			}
		}
	}
}

var cdnChecks = []struct {
	name string
	fn   func(*check)
}{
	{"ErrorCaching", checkErrorCaching},
	{"ObjectBehaviours", checkObjectBehaviours},
	{"HeadBehaviour", checkHeadBehaviour},
	{"OriginShield", checkOriginShield},
	{"CORS", checkCORS},
	{"NoRouteToAdminOrIngest", checkNoRouteToAdminOrIngest},
	{"BucketPrivate", checkBucketPrivate},
	{"TimeoutsAboveHold", checkTimeoutsAboveHold},
	{"LeastPrivilege", checkLeastPrivilege},
}

func TestDeploymentRules(t *testing.T) {
	m := loadModule(t, ".")
	for _, tc := range cdnChecks {
		t.Run(tc.name, func(t *testing.T) { runCheck(t, m, tc.fn) })
	}
}

// ---------------------------------------------------------------------------
// Module hygiene: formatting, variables, outputs, references.

func tfFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && p != "." {
			return filepath.SkipDir // .terraform
		}
		if !d.IsDir() && strings.HasSuffix(p, ".tf") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no .tf files")
	}
	return files
}

// TestCanonicalFormat: what `terraform fmt -check -recursive` checks.
func TestCanonicalFormat(t *testing.T) {
	for _, p := range tfFiles(t) {
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, diags := hclsyntax.ParseConfig(src, p, hcl.InitialPos); diags.HasErrors() {
			t.Errorf("%s: %s", p, diags.Error())
			continue
		}
		if out := hclwrite.Format(src); !bytes.Equal(out, src) {
			t.Errorf("%s is not in canonical format (run terraform fmt)", p)
		}
	}
}

func TestModuleHygiene(t *testing.T) {
	for _, dir := range []string{".", exampleDir} {
		m := loadModule(t, dir)
		t.Run(dir, func(t *testing.T) { runCheck(t, m, checkHygiene) })
	}
}

// checkHygiene: every variable typed and described, its default of its type;
// every var.X declared and every variable used; every output described; every
// reference names something declared; every function is Terraform's.
func checkHygiene(c *check) {
	declared := map[string]*hclsyntax.Block{}
	for _, v := range c.m.top("variable") {
		name := v.Labels[0]
		if declared[name] != nil {
			c.fail("variable %s is declared twice", name)
		}
		declared[name] = v
		if d, ok := c.str(v, "description"); ok && strings.TrimSpace(d) == "" {
			c.fail("variable %s has an empty description", name)
		}
		ta, ok := v.Body.Attributes["type"]
		if !ok {
			c.fail("variable %s has no type", name)
			continue
		}
		ty, defaults, diags := typeexpr.TypeConstraintWithDefaults(ta.Expr)
		if diags.HasErrors() {
			c.fail("variable %s: type %s: %s", name, c.m.text(ta.Expr), diags.Error())
			continue
		}
		if ty == cty.DynamicPseudoType {
			c.fail("variable %s has type any; give it a real type", name)
		}
		if da, ok := v.Body.Attributes["default"]; ok {
			val, diags := da.Expr.Value(nil)
			if diags.HasErrors() {
				c.fail("variable %s: default: %s", name, diags.Error())
				continue
			}
			if defaults != nil {
				val = defaults.Apply(val)
			}
			if _, err := convert.Convert(val, ty); err != nil {
				c.fail("variable %s: default %s is not a %s: %v", name, c.m.text(da.Expr), typeexpr.TypeString(ty), err)
			}
		}
	}
	for _, o := range c.m.top("output") {
		if d, ok := c.str(o, "description"); ok && strings.TrimSpace(d) == "" {
			c.fail("output %s has an empty description", o.Labels[0])
		}
	}

	// Every reference, everywhere.
	resources, datas, locals, modules := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, b := range c.m.blocks {
		switch b.Type {
		case "resource":
			resources[b.Labels[0]+"."+b.Labels[1]] = true
		case "data":
			datas[b.Labels[0]+"."+b.Labels[1]] = true
		case "module":
			modules[b.Labels[0]] = true
		case "locals":
			for name := range b.Body.Attributes {
				if locals[name] {
					c.fail("local %s is defined twice", name)
				}
				locals[name] = true
			}
		}
	}
	resourceTypes := map[string]bool{}
	for r := range resources {
		resourceTypes[strings.SplitN(r, ".", 2)[0]] = true
	}
	used := map[string]bool{}
	for _, b := range c.m.blocks {
		own := ""
		if b.Type == "variable" {
			own = b.Labels[0]
		}
		c.walkRefs(b, map[string]bool{}, func(tr hcl.Traversal, at hcl.Range) {
			root := tr.RootName()
			attr := func(i int) string {
				if i < len(tr) {
					if a, ok := tr[i].(hcl.TraverseAttr); ok {
						return a.Name
					}
				}
				return ""
			}
			switch {
			case root == "var":
				name := attr(1)
				if declared[name] == nil {
					c.fail("%s: var.%s is not declared", at.String(), name)
				}
				if name != own {
					used[name] = true
				}
			case root == "local":
				if !locals[attr(1)] {
					c.fail("%s: local.%s is not defined", at.String(), attr(1))
				}
			case root == "data":
				if !datas[attr(1)+"."+attr(2)] {
					c.fail("%s: data.%s.%s is not declared", at.String(), attr(1), attr(2))
				}
			case root == "module":
				if !modules[attr(1)] {
					c.fail("%s: module.%s is not declared", at.String(), attr(1))
				}
			case root == "each" || root == "count" || root == "self" || root == "path" || root == "terraform":
			case resourceTypes[root]:
				if !resources[root+"."+attr(1)] {
					c.fail("%s: %s.%s is not declared", at.String(), root, attr(1))
				}
			default:
				c.fail("%s: %s refers to nothing declared", at.String(), root)
			}
		})
	}
	for name := range declared {
		if !used[name] {
			c.fail("variable %s is declared but never used", name)
		}
	}

	// Functions (a variable's type is a type expression, not calls).
	var visit func(b *hclsyntax.Block)
	visit = func(b *hclsyntax.Block) {
		for name, a := range b.Body.Attributes {
			if b.Type == "variable" && name == "type" {
				continue
			}
			hclsyntax.VisitAll(a.Expr, func(n hclsyntax.Node) hcl.Diagnostics {
				if call, ok := n.(*hclsyntax.FunctionCallExpr); ok && !terraformFunctions[call.Name] {
					c.fail("%s: %s() is not a Terraform function", call.NameRange.String(), call.Name)
				}
				return nil
			})
		}
		for _, nb := range b.Body.Blocks {
			visit(nb)
		}
	}
	for _, b := range c.m.blocks {
		visit(b)
	}
}

// walkRefs calls fn for every reference in b's attributes and nested blocks,
// skipping what is not a reference: a variable's type, lifecycle's
// ignore_changes, and a dynamic block's iterator.
func (c *check) walkRefs(b *hclsyntax.Block, iterators map[string]bool, fn func(hcl.Traversal, hcl.Range)) {
	if b.Type == "dynamic" && len(b.Labels) == 1 {
		iterators = mapsWith(iterators, b.Labels[0])
		if it, ok := b.Body.Attributes["iterator"]; ok {
			iterators = mapsWith(iterators, hcl.ExprAsKeyword(it.Expr))
		}
	}
	for name, a := range b.Body.Attributes {
		if (b.Type == "variable" && name == "type") || (b.Type == "lifecycle" && name == "ignore_changes") ||
			(b.Type == "dynamic" && name == "iterator") {
			continue
		}
		for _, tr := range a.Expr.Variables() {
			if !iterators[tr.RootName()] {
				fn(tr, tr.SourceRange())
			}
		}
	}
	for _, nb := range b.Body.Blocks {
		c.walkRefs(nb, iterators, fn)
	}
}

func mapsWith(m map[string]bool, k string) map[string]bool {
	out := map[string]bool{k: true}
	for key := range m {
		out[key] = true
	}
	return out
}

// TestExampleCallsModule: examples/complete gives every required input and
// nothing the module does not declare (what `terraform validate` would say).
func TestExampleCallsModule(t *testing.T) {
	root := loadModule(t, ".")
	ex := loadModule(t, exampleDir)
	call := ex.find("module", "danmaku")
	if call == nil {
		t.Fatal("examples/complete has no module \"danmaku\"")
	}
	if src, ok := call.Body.Attributes["source"]; !ok || ex.text(src.Expr) != `"../../"` {
		t.Errorf("module source should be \"../../\"")
	}
	meta := setOf("source", "version", "providers", "depends_on", "count", "for_each")
	for name, a := range call.Body.Attributes {
		if !meta[name] && root.find("variable", name) == nil {
			t.Errorf("%s: the module has no variable %s", a.SrcRange.String(), name)
		}
	}
	for _, v := range root.top("variable") {
		if _, hasDefault := v.Body.Attributes["default"]; !hasDefault {
			if _, given := call.Body.Attributes[v.Labels[0]]; !given {
				t.Errorf("the example does not set the required variable %s", v.Labels[0])
			}
		}
	}
	for _, o := range ex.top("output") {
		a := o.Body.Attributes["value"]
		if a == nil {
			continue
		}
		for _, tr := range a.Expr.Variables() {
			if tr.RootName() != "module" || len(tr) < 3 {
				continue
			}
			name, _ := tr[2].(hcl.TraverseAttr)
			if root.find("output", name.Name) == nil {
				t.Errorf("%s: the module has no output %s", tr.SourceRange().String(), name.Name)
			}
		}
	}
}

// TestChecksCatchMistakes breaks the configuration in ways that would hide
// seconds, open the bucket or expose admin, and expects the check for that
// rule to report it: the checks read the configuration, they do not just pass.
func TestChecksCatchMistakes(t *testing.T) {
	cases := []struct {
		name, file, from, to string
		check                func(*check)
	}{
		{"404 cached for 10 s", "main.tf",
			"error_code            = 404\n    error_caching_min_ttl = 0",
			"error_code            = 404\n    error_caching_min_ttl = 10", checkErrorCaching},
		{"403 not configured", "main.tf",
			"  custom_error_response {\n    error_code            = 403\n    error_caching_min_ttl = 0\n  }\n", "", checkErrorCaching},
		{"404 turned into a 200 page", "main.tf",
			"error_code            = 404\n",
			"error_code            = 404\n    response_code         = 200\n    response_page_path    = \"/empty.json\"\n", checkErrorCaching},
		{"gzip normalisation off", "main.tf",
			"enable_accept_encoding_gzip   = true", "enable_accept_encoding_gzip   = false", checkObjectBehaviours},
		{"min TTL above 0", "main.tf",
			"min_ttl     = 0\n  default_ttl = 86400", "min_ttl     = 1\n  default_ttl = 86400", checkObjectBehaviours},
		{"query string in the key", "main.tf",
			"query_string_behavior = \"none\"\n    }\n  }\n}\n\n# The head", "query_string_behavior = \"all\"\n    }\n  }\n}\n\n# The head", checkObjectBehaviours},
		{"buckets bypass the failover group", "main.tf",
			"path_pattern               = local.bucket_path_pattern\n    target_origin_id           = local.read_group_id",
			"path_pattern               = local.bucket_path_pattern\n    target_origin_id           = local.s3_origin_id", checkObjectBehaviours},
		{"failover on 404", "main.tf",
			"status_codes = [500, 502, 503, 504]", "status_codes = [404, 500, 502, 503, 504]", checkObjectBehaviours},
		{"edge compression on", "main.tf",
			"path_pattern               = local.segment_path_pattern\n    target_origin_id           = local.read_group_id\n    viewer_protocol_policy     = \"redirect-to-https\"\n    allowed_methods            = [\"GET\", \"HEAD\"]\n    cached_methods             = [\"GET\", \"HEAD\"]\n    compress                   = false",
			"path_pattern               = local.segment_path_pattern\n    target_origin_id           = local.read_group_id\n    viewer_protocol_policy     = \"redirect-to-https\"\n    allowed_methods            = [\"GET\", \"HEAD\"]\n    cached_methods             = [\"GET\", \"HEAD\"]\n    compress                   = true", checkObjectBehaviours},
		{"head cached 60 s", "main.tf",
			"default_ttl = 1\n  max_ttl     = 1", "default_ttl = 1\n  max_ttl     = 60", checkHeadBehaviour},
		{"admin routed to the origin service", "main.tf",
			"  # CloudFront caches errors for 10 s",
			"  ordered_cache_behavior {\n    path_pattern           = \"/admin/*\"\n    target_origin_id       = local.service_origin_id\n    viewer_protocol_policy = \"https-only\"\n    allowed_methods        = [\"GET\", \"HEAD\"]\n    cached_methods         = [\"GET\", \"HEAD\"]\n    cache_policy_id        = aws_cloudfront_cache_policy.head.id\n  }\n\n  # CloudFront caches errors for 10 s",
			checkNoRouteToAdminOrIngest},
		{"default behaviour to the origin service", "main.tf",
			"target_origin_id           = local.s3_origin_id", "target_origin_id           = local.service_origin_id", checkNoRouteToAdminOrIngest},
		{"default behaviour takes POST", "main.tf",
			"target_origin_id           = local.s3_origin_id\n    viewer_protocol_policy     = \"redirect-to-https\"\n    allowed_methods            = [\"GET\", \"HEAD\"]",
			"target_origin_id           = local.s3_origin_id\n    viewer_protocol_policy     = \"redirect-to-https\"\n    allowed_methods            = [\"DELETE\", \"GET\", \"HEAD\", \"OPTIONS\", \"PATCH\", \"POST\", \"PUT\"]",
			checkNoRouteToAdminOrIngest},
		{"CloudFront pointed at the ingest listener", "variables.tf",
			"default     = 8080", "default     = 80", checkNoRouteToAdminOrIngest},
		{"origin listener forwards admin", "alb.tf",
			"values = [local.bucket_path_pattern, local.segment_path_pattern, local.head_path_pattern]",
			"values = [local.bucket_path_pattern, \"/admin/*\", local.head_path_pattern]", checkNoRouteToAdminOrIngest},
		{"public policy allowed", "main.tf",
			"block_public_policy     = true", "block_public_policy     = false", checkBucketPrivate},
		{"bucket policy not bound to the distribution", "main.tf",
			"variable = \"AWS:SourceArn\"", "variable = \"AWS:SourceAccount\"", checkBucketPrivate},
		{"bucket readable by anyone", "main.tf",
			"type        = \"Service\"\n      identifiers = [\"cloudfront.amazonaws.com\"]",
			"type        = \"*\"\n      identifiers = [\"*\"]", checkBucketPrivate},
		{"read timeout below the hold", "main.tf",
			"origin_read_timeout      = var.origin_read_timeout", "origin_read_timeout      = 4", checkTimeoutsAboveHold},
		{"hold drifts from the Go default", "variables.tf",
			"type        = number\n  default     = 3\n", "type        = number\n  default     = 5\n", checkTimeoutsAboveHold},
		{"origin not given the hold", "ecs.tf",
			"      DANMAKU_HOLD  = \"${var.hold_seconds}s\"\n", "", checkTimeoutsAboveHold},
		{"Origin Shield off", "variables.tf",
			"type        = bool\n  default     = true\n}\n\nvariable \"origin_shield_region\"", "type        = bool\n  default     = false\n}\n\nvariable \"origin_shield_region\"", checkOriginShield},
		{"CORS allows POST", "main.tf",
			"items = [\"GET\", \"HEAD\"]", "items = [\"GET\", \"HEAD\", \"POST\"]", checkCORS},
		{"ingest gets S3", "ecs.tf",
			"role   = aws_iam_role.task[\"origin\"].id", "role   = aws_iam_role.task[\"ingest\"].id", checkLeastPrivilege},
		{"origin may write", "ecs.tf",
			"actions   = [\"s3:GetObject\"]\n    resources = [\"${aws_s3_bucket.this.arn}/${local.key_prefix}*\"]\n  }\n\n  statement {\n    sid       = \"KnowMissingKeys\"\n    actions   = [\"s3:ListBucket\"]\n    resources = [aws_s3_bucket.this.arn]\n  }\n}\n\nresource \"aws_iam_role_policy\" \"origin_s3\"",
			"actions   = [\"s3:GetObject\", \"s3:PutObject\"]\n    resources = [\"${aws_s3_bucket.this.arn}/${local.key_prefix}*\"]\n  }\n\n  statement {\n    sid       = \"KnowMissingKeys\"\n    actions   = [\"s3:ListBucket\"]\n    resources = [aws_s3_bucket.this.arn]\n  }\n}\n\nresource \"aws_iam_role_policy\" \"origin_s3\"",
			checkLeastPrivilege},
		{"variable without a description", "variables.tf",
			"  description = \"Tags added to every resource that takes tags.\"\n", "", checkHygiene},
		{"undeclared variable used", "main.tf",
			"force_destroy = var.force_destroy", "force_destroy = var.force_destroy_bucket", checkHygiene},
		{"typo in a resource reference", "main.tf",
			"bucket = aws_s3_bucket.this.id\n\n  rule {\n    object_ownership", "bucket = aws_s3_bucket.thsi.id\n\n  rule {\n    object_ownership", checkHygiene},
		{"output without a description", "outputs.tf",
			"  description = \"ARN of the store bucket.\"\n", "", checkHygiene},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			paths, _ := filepath.Glob("*.tf")
			for _, p := range paths {
				src, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if p == tc.file {
					if n := bytes.Count(src, []byte(tc.from)); n != 1 {
						t.Fatalf("%q occurs %d times in %s; the mutation needs it exactly once", tc.from, n, p)
					}
					src = bytes.Replace(src, []byte(tc.from), []byte(tc.to), 1)
				}
				if err := os.WriteFile(filepath.Join(dir, p), src, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m, err := parseModule(dir)
			if err != nil {
				t.Fatal(err)
			}
			c := &check{m: m}
			tc.check(c)
			if len(c.problems) == 0 {
				t.Errorf("the check passed a configuration where %s", tc.name)
			}
			t.Logf("caught: %v", c.problems)
		})
	}
}

// TestReadmeListsInputsAndOutputs keeps the README's tables in step with the
// module: every variable and output has its row.
func TestReadmeListsInputsAndOutputs(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := loadModule(t, ".")
	for _, kind := range []string{"variable", "output"} {
		for _, b := range m.top(kind) {
			if !bytes.Contains(readme, []byte("| `"+b.Labels[0]+"` |")) {
				t.Errorf("README.md has no row for %s %s", kind, b.Labels[0])
			}
		}
	}
}
