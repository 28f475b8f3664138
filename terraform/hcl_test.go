package terraform_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// This file is the small part of Terraform that the checks need offline: it
// parses a module's .tf files, evaluates what can be known without a provider
// (variable defaults, locals, literals; anything that depends on a resource
// is unknown) and answers questions about blocks and references.

// module is one Terraform module: the .tf files of one directory.
type module struct {
	dir    string
	src    map[string][]byte // file name -> source
	blocks []*hclsyntax.Block
	ctx    *hcl.EvalContext
}

// loadModule parses every .tf file of dir. Syntax errors fail the test.
func loadModule(t *testing.T, dir string) *module {
	t.Helper()
	m, err := parseModule(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func parseModule(dir string) (*module, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no .tf files in %s", dir)
	}
	sort.Strings(paths)
	m := &module{dir: dir, src: map[string][]byte{}}
	for _, p := range paths {
		src, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		f, diags := hclsyntax.ParseConfig(src, p, hcl.InitialPos)
		if diags.HasErrors() {
			return nil, fmt.Errorf("parse %s: %s", p, diags.Error())
		}
		m.src[p] = src
		m.blocks = append(m.blocks, f.Body.(*hclsyntax.Body).Blocks...)
	}
	m.ctx = m.evalContext()
	return m, nil
}

// top returns the top-level blocks of a kind ("resource", "variable", ...).
func (m *module) top(kind string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, b := range m.blocks {
		if b.Type == kind {
			out = append(out, b)
		}
	}
	return out
}

// find returns the top-level block of kind with these labels, or nil.
func (m *module) find(kind string, labels ...string) *hclsyntax.Block {
	for _, b := range m.top(kind) {
		if strings.Join(b.Labels, ".") == strings.Join(labels, ".") {
			return b
		}
	}
	return nil
}

// text is the source text of an expression, as written.
func (m *module) text(e hcl.Expression) string {
	r := e.Range()
	return string(r.SliceBytes(m.src[r.Filename]))
}

// nested returns the blocks of a type directly inside b, in source order.
func nested(b *hclsyntax.Block, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, c := range b.Body.Blocks {
		if c.Type == typ {
			out = append(out, c)
		}
	}
	return out
}

// evalContext makes the context expressions are evaluated in: var.* from the
// declared defaults (unknown without one), local.* as far as they can be
// computed, every resource, data source and module unknown, and the Terraform
// functions that the standard cty library also has.
func (m *module) evalContext() *hcl.EvalContext {
	vars := map[string]cty.Value{}
	for _, b := range m.top("variable") {
		vars[b.Labels[0]] = variableDefault(b)
	}
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(vars)},
		Functions: functions(),
	}
	for _, root := range []string{"data", "module", "each", "count", "path", "self", "terraform"} {
		ctx.Variables[root] = cty.DynamicVal
	}
	for _, b := range m.top("resource") {
		ctx.Variables[b.Labels[0]] = cty.DynamicVal
	}

	// Locals may use each other: evaluate until nothing changes.
	attrs := map[string]*hclsyntax.Attribute{}
	for _, b := range m.top("locals") {
		for name, a := range b.Body.Attributes {
			attrs[name] = a
		}
	}
	vals := map[string]cty.Value{}
	for pass := 0; pass <= len(attrs); pass++ {
		ctx.Variables["local"] = cty.ObjectVal(vals)
		changed := false
		next := map[string]cty.Value{}
		for name, a := range attrs {
			v, diags := a.Expr.Value(ctx)
			if diags.HasErrors() {
				v = cty.DynamicVal
			}
			if old, ok := vals[name]; !ok || !old.RawEquals(v) {
				changed = true
			}
			next[name] = v
		}
		vals = next
		if !changed {
			break
		}
	}
	ctx.Variables["local"] = cty.ObjectVal(vals)
	return ctx
}

// variableDefault is a variable's default converted to its type, with
// optional attributes filled in; unknown if it has no default.
func variableDefault(b *hclsyntax.Block) cty.Value {
	ty, defaults := cty.DynamicPseudoType, (*typeexpr.Defaults)(nil)
	if a, ok := b.Body.Attributes["type"]; ok {
		t, d, diags := typeexpr.TypeConstraintWithDefaults(a.Expr)
		if !diags.HasErrors() {
			ty, defaults = t, d
		}
	}
	a, ok := b.Body.Attributes["default"]
	if !ok {
		return cty.UnknownVal(ty)
	}
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		return cty.UnknownVal(ty)
	}
	if defaults != nil {
		v = defaults.Apply(v)
	}
	if c, err := convert.Convert(v, ty); err == nil {
		return c
	}
	return cty.UnknownVal(ty)
}

func functions() map[string]function.Function {
	return map[string]function.Function{
		"abs":        stdlib.AbsoluteFunc,
		"can":        tryfunc.CanFunc,
		"coalesce":   stdlib.CoalesceFunc,
		"compact":    stdlib.CompactFunc,
		"concat":     stdlib.ConcatFunc,
		"contains":   stdlib.ContainsFunc,
		"distinct":   stdlib.DistinctFunc,
		"element":    stdlib.ElementFunc,
		"flatten":    stdlib.FlattenFunc,
		"floor":      stdlib.FloorFunc,
		"format":     stdlib.FormatFunc,
		"join":       stdlib.JoinFunc,
		"jsonencode": stdlib.JSONEncodeFunc,
		"keys":       stdlib.KeysFunc,
		"length":     stdlib.LengthFunc,
		"lookup":     stdlib.LookupFunc,
		"lower":      stdlib.LowerFunc,
		"max":        stdlib.MaxFunc,
		"merge":      stdlib.MergeFunc,
		"min":        stdlib.MinFunc,
		"range":      stdlib.RangeFunc,
		"regex":      stdlib.RegexFunc,
		"replace":    stdlib.ReplaceFunc,
		"sort":       stdlib.SortFunc,
		"split":      stdlib.SplitFunc,
		"substr":     stdlib.SubstrFunc,
		"tolist":     stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)),
		"tomap":      stdlib.MakeToFunc(cty.Map(cty.DynamicPseudoType)),
		"tonumber":   stdlib.MakeToFunc(cty.Number),
		"toset":      stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
		"tostring":   stdlib.MakeToFunc(cty.String),
		"trim":       stdlib.TrimFunc,
		"trimprefix": stdlib.TrimPrefixFunc,
		"trimsuffix": stdlib.TrimSuffixFunc,
		"try":        tryfunc.TryFunc,
		"upper":      stdlib.UpperFunc,
		"values":     stdlib.ValuesFunc,
	}
}

// terraformFunctions are Terraform's built-in functions (those a module may
// call); a name outside this list is a typo that only `terraform validate`
// would otherwise catch.
var terraformFunctions = setOf(
	"abs", "abspath", "alltrue", "anytrue", "base64decode", "base64encode", "base64gzip", "base64sha256",
	"base64sha512", "basename", "can", "ceil", "chomp", "chunklist", "cidrhost", "cidrnetmask",
	"cidrsubnet", "cidrsubnets", "coalesce", "coalescelist", "compact", "concat", "contains", "csvdecode",
	"dirname", "distinct", "element", "endswith", "file", "filebase64", "fileexists", "fileset", "flatten",
	"floor", "format", "formatdate", "formatlist", "indent", "index", "join", "jsondecode", "jsonencode",
	"keys", "length", "log", "lookup", "lower", "matchkeys", "max", "md5", "merge", "min", "nonsensitive",
	"one", "parseint", "pathexpand", "pow", "range", "regex", "regexall", "replace", "reverse", "sensitive",
	"setintersection", "setproduct", "setsubtract", "setunion", "sha1", "sha256", "sha512", "signum",
	"slice", "sort", "split", "startswith", "strcontains", "strrev", "substr", "sum", "templatefile",
	"timeadd", "timestamp", "title", "tobool", "tolist", "tomap", "tonumber", "toset", "tostring",
	"transpose", "trim", "trimprefix", "trimspace", "trimsuffix", "try", "type", "upper", "urlencode",
	"uuid", "values", "yamldecode", "yamlencode", "zipmap",
)

func setOf(items ...string) map[string]bool {
	s := map[string]bool{}
	for _, i := range items {
		s[i] = true
	}
	return s
}

// ref is a reference to a resource or data source: type, name and, for
// for_each resources, the literal index key ("" without one).
type ref struct {
	kind, typ, name, key string
}

// refOf reads the one resource or data source reference an expression is made
// of, such as aws_cloudfront_cache_policy.objects.id or
// aws_iam_role.task["writer"].id. ok is false for anything else.
func refOf(e hcl.Expression) (r ref, ok bool) {
	vs := e.Variables()
	if len(vs) != 1 {
		return r, false
	}
	tr := vs[0]
	steps := tr[1:]
	r.kind, r.typ = "resource", tr.RootName()
	if r.typ == "data" {
		if len(steps) == 0 {
			return r, false
		}
		a, ok := steps[0].(hcl.TraverseAttr)
		if !ok {
			return r, false
		}
		r.kind, r.typ, steps = "data", a.Name, steps[1:]
	}
	if len(steps) == 0 {
		return r, false
	}
	a, ok := steps[0].(hcl.TraverseAttr)
	if !ok {
		return r, false
	}
	r.name = a.Name
	if len(steps) > 1 {
		if i, ok := steps[1].(hcl.TraverseIndex); ok && i.Key.Type() == cty.String && i.Key.IsKnown() {
			r.key = i.Key.AsString()
		}
	}
	return r, true
}

// objectItem returns the value expression of key in an object constructor
// expression ({ key = value }), looking through a call such as merge(...) at
// its arguments, last first (the one that wins).
func objectItem(e hcl.Expression, key string) hclsyntax.Expression {
	switch e := e.(type) {
	case *hclsyntax.ObjectConsExpr:
		for i := len(e.Items) - 1; i >= 0; i-- {
			item := e.Items[i]
			k := hcl.ExprAsKeyword(item.KeyExpr)
			if k == "" {
				if v, diags := item.KeyExpr.Value(nil); !diags.HasErrors() && v.Type() == cty.String {
					k = v.AsString()
				}
			}
			if k == key {
				return item.ValueExpr
			}
		}
	case *hclsyntax.FunctionCallExpr:
		for i := len(e.Args) - 1; i >= 0; i-- {
			if v := objectItem(e.Args[i], key); v != nil {
				return v
			}
		}
	}
	return nil
}

// cloudFrontMatch reports whether a CloudFront cache behaviour path pattern
// matches a request path: case-sensitive, '*' any run of characters
// (slashes included), '?' one character, leading '/' optional.
func cloudFrontMatch(pattern, path string) bool {
	if !strings.HasPrefix(pattern, "/") {
		pattern = "/" + pattern
	}
	return glob(pattern, path)
}

// albMatch reports whether an ALB path-pattern condition value matches a
// path: the same wildcards, case-sensitive.
func albMatch(pattern, path string) bool { return glob(pattern, path) }

func glob(p, s string) bool {
	// match[j] reports whether p[:i] matches s[:j], row by row.
	match := make([]bool, len(s)+1)
	match[0] = true
	for i := 0; i < len(p); i++ {
		next := make([]bool, len(s)+1)
		switch p[i] {
		case '*':
			next[0] = match[0]
			for j := 1; j <= len(s); j++ {
				next[j] = match[j] || next[j-1]
			}
		default:
			for j := 1; j <= len(s); j++ {
				next[j] = match[j-1] && (p[i] == '?' || p[i] == s[j-1])
			}
		}
		match = next
	}
	return match[len(s)]
}

func TestGlob(t *testing.T) {
	cases := []struct {
		pattern, path string
		want          bool
	}{
		{"/v1/rooms/*/buckets/*.json", "/v1/rooms/lobby/buckets/1700000000.json", true},
		{"v1/rooms/*/buckets/*.json", "/v1/rooms/lobby/buckets/1700000000.json", true},
		{"/v1/rooms/*/buckets/*.json", "/v1/rooms/lobby/buckets/1700000000.JSON", false},
		{"/v1/rooms/*/head", "/v1/rooms/a/b/head", true},
		{"/v1/rooms/*/head", "/v1/rooms/a/header", false},
		{"/admin/*", "/admin/purge", true},
		{"/admin/*", "/administrator", false},
		{"/a?c", "/abc", true},
		{"/a?c", "/ac", false},
		{"*", "/anything/at/all", true},
	}
	for _, c := range cases {
		if got := cloudFrontMatch(c.pattern, c.path); got != c.want {
			t.Errorf("cloudFrontMatch(%q, %q) = %v, want %v", c.pattern, c.path, got, c.want)
		}
	}
}
