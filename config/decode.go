package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// MaxRange is the largest number of addresses one VIP range a-b may hold.
const MaxRange = 65536

// source remembers where every value came from, so semantic checks can
// name file:line.
type source struct {
	file  string
	pos   map[string]Pos    // path ("nodes[1].addresses[0]") → position
	bad   map[string]bool   // paths whose value did not decode
	spans map[string][]span // path of a ranges list → its items as written
}

// span is one item of a VIP list as written: an address or a range.
type span struct {
	text        string
	first, last netip.Addr
	start, n    int // indexes into the expanded list
	pos         Pos
}

// Load reads and parses the config file at path. Errors are Errors.
func Load(path string) (*Config, error) {
	data, err := ReadFile(path, "config", MaxConfigSize)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse parses a config file's contents over DefaultConfig and validates
// it. name is used in error messages; relative key_file, token_file,
// tls_cert and tls_key paths are resolved against its directory. On failure
// it returns nil and Errors holding every problem found.
func Parse(name string, data []byte) (*Config, error) {
	c := DefaultConfig()
	c.File = name
	d := &decoder{src: &source{
		file:  name,
		pos:   map[string]Pos{"": {Line: 1}},
		bad:   map[string]bool{},
		spans: map[string][]span{},
	}}
	c.src = d.src

	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	switch err := dec.Decode(&root); {
	case errors.Is(err, io.EOF):
		return nil, Errors{{File: name, Msg: "the file is empty; start from examples/lab/ringway.yaml"}}
	case err != nil:
		return nil, syntaxErrors(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, Errors{{File: name, Line: extra.Line, Msg: "a second YAML document (after ---); a config file holds one document"}}
	} else if !errors.Is(err, io.EOF) {
		return nil, syntaxErrors(name, err)
	}
	body := &root
	if body.Kind == yaml.DocumentNode && len(body.Content) == 1 {
		body = body.Content[0]
	}
	d.value("", body, nil, reflect.ValueOf(&c).Elem(), "")
	c.resolvePaths()
	for i := range c.Subnets {
		if c.Subnets[i].Name == "" {
			c.Subnets[i].Name = c.Subnets[i].Interface // documented default
		}
	}
	c.resolveFilter() // after the subnet names: rules may name them
	errs := append(d.errs, c.validate()...)
	if err := errs.err(); err != nil {
		return nil, err
	}
	return &c, nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// syntaxErrors turns a YAML syntax error into Errors with line numbers.
func syntaxErrors(name string, err error) Errors {
	var es Errors
	for _, l := range strings.Split(err.Error(), "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(l, "yaml: unmarshal errors:"))
		if l == "" {
			continue
		}
		if m := yamlLine.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[1])
			es = append(es, Error{File: name, Line: n, Msg: "YAML syntax: " + m[2] + " (check indentation, colons and quotes)"})
			continue
		}
		es = append(es, Error{File: name, Msg: "YAML syntax: " + strings.TrimPrefix(l, "yaml: ")})
	}
	return es
}

// resolvePaths makes file paths relative to the config file's directory.
func (c *Config) resolvePaths() {
	if c.File == "" {
		return
	}
	dir := filepath.Dir(c.File)
	for _, p := range []*string{&c.Cluster.KeyFile, &c.Management.TokenFile, &c.Management.ReadTokenFile, &c.Management.TLSCert, &c.Management.TLSKey} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
}

type decoder struct {
	src   *source
	errs  Errors
	nodes int // values visited, to stop alias bombs
}

// maxNodes bounds the values one file may hold, VIP ranges expanded: twice
// MaxVIPs, so a file over MaxVIPs gets validation's message for it.
// (Aliases, which could multiply values, are refused.)
const maxNodes = 2 * MaxVIPs

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, Error{File: d.src.file, Line: n.Line, Column: n.Column, Msg: fmt.Sprintf(format, args...)})
}

// fail records a problem with the value at path and marks it bad, so the
// semantic checks skip what depends on it.
func (d *decoder) fail(path string, n *yaml.Node, format string, args ...any) {
	d.src.bad[path] = true
	d.errorf(n, format, args...)
}

// field describes one YAML key of a struct.
type field struct {
	key    string
	index  int
	ranges bool // a VIP list that accepts ranges a-b
}

var fieldCache sync.Map // reflect.Type → []field

func fieldsOf(t reflect.Type) []field {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.([]field)
	}
	var fs []field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		key, opts, _ := strings.Cut(tag, ",")
		fs = append(fs, field{key: key, index: i, ranges: opts == "ranges"})
	}
	fieldCache.Store(t, fs)
	return fs
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	addrType     = reflect.TypeOf(netip.Addr{})
	prefixType   = reflect.TypeOf(netip.Prefix{})
	textType     = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
)

// describe says in words what a value of type t looks like in the file.
func describe(t reflect.Type) string {
	switch t {
	case durationType:
		return "a duration such as 5ms or 2s"
	case addrType:
		return "an IPv4 address such as 192.0.2.1"
	case prefixType:
		return "an IPv4 prefix such as 192.0.2.0/24"
	case reflect.TypeOf(PersistNone):
		return "none, current or preferred"
	case reflect.TypeOf(QuorumAvailability):
		return "availability or majority"
	case reflect.TypeOf(Net{}):
		return "a subnet name, a prefix such as 192.0.2.0/24, or any"
	case reflect.TypeOf(PortRange{}):
		return "a port such as 22 or a range such as 7000-7002"
	case reflect.TypeOf(ProtoAny):
		return "tcp, udp, icmp or any"
	case reflect.TypeOf(ActionDrop):
		return "accept or drop"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64:
		return "a whole number"
	case reflect.Float64:
		return "a number such as 0.25"
	case reflect.Slice:
		return "a list ([a, b] or lines starting with -)"
	case reflect.Struct:
		keys := make([]string, 0)
		for _, f := range fieldsOf(t) {
			keys = append(keys, f.key)
		}
		return "a mapping with keys " + strings.Join(keys, ", ")
	}
	return t.String()
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("the value %q", n.Value)
}

// record stores the position of the value at path: the key for
// collections (their first line), the value itself for scalars.
func (d *decoder) record(path string, key, n *yaml.Node) {
	at := n
	if key != nil && n.Kind != yaml.ScalarNode {
		at = key
	}
	d.src.pos[path] = Pos{Line: at.Line, Column: at.Column}
}

var indexes = regexp.MustCompile(`\[\d+\]|#\d+`)

// display is how a path is named in messages: the keys without list
// indexes (the line number says which entry).
func display(path string) string {
	if path == "" {
		return "the top level"
	}
	return indexes.ReplaceAllString(path, "")
}

// value decodes n into v. key is the mapping key n belongs to, if any.
func (d *decoder) value(path string, n *yaml.Node, key *yaml.Node, v reflect.Value, opts string) {
	if n.Kind == yaml.AliasNode {
		d.alias(path, n)
		return
	}
	if d.nodes++; d.nodes > maxNodes {
		if d.nodes == maxNodes+1 {
			d.fail(path, n, "the file holds more than %d values; a config is far smaller: check it is the right file", maxNodes)
		}
		return
	}
	d.record(path, key, n)
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		switch v.Kind() {
		case reflect.Struct:
			if !reflect.PointerTo(v.Type()).Implements(textType) {
				return // an empty section keeps its defaults
			}
		case reflect.Slice:
			v.Set(reflect.Zero(v.Type()))
			return
		}
		d.fail(path, n, "%s has no value; write %s, or remove the key to use the default", display(path), describe(v.Type()))
		return
	}
	switch t := v.Type(); {
	case t == durationType:
		d.duration(path, n, v)
	case t == addrType:
		if d.scalar(path, n, t) {
			a, err := parseAddr(n.Value)
			if err != nil {
				d.fail(path, n, "%s: %v", display(path), err)
				return
			}
			v.Set(reflect.ValueOf(a))
		}
	case t == prefixType:
		if d.scalar(path, n, t) {
			p, err := parsePrefix(n.Value)
			if err != nil {
				d.fail(path, n, "%s: %v", display(path), err)
				return
			}
			v.Set(reflect.ValueOf(p))
		}
	case reflect.PointerTo(t).Implements(textType):
		if d.scalar(path, n, t) {
			if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
				d.fail(path, n, "%v", err) // the message names the key
			}
		}
	case t.Kind() == reflect.Struct:
		d.mapping(path, n, v)
	case t.Kind() == reflect.Slice:
		if opts == "ranges" {
			d.vipList(path, n, v)
			return
		}
		d.list(path, n, v)
	case t.Kind() == reflect.String:
		if d.scalar(path, n, t) {
			if n.ShortTag() != "!!str" {
				d.fail(path, n, "%s: expected a string, found %s; put it in quotes: %q", display(path), n.ShortTag()[2:], n.Value)
				return
			}
			v.SetString(n.Value)
		}
	case t.Kind() == reflect.Bool:
		if d.scalar(path, n, t) {
			if n.ShortTag() != "!!bool" {
				d.fail(path, n, "%s: %q is not true or false; write true or false", display(path), n.Value)
				return
			}
			v.SetBool(n.Value == "true" || n.Value == "True" || n.Value == "TRUE")
		}
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		if d.scalar(path, n, t) {
			i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
			if n.ShortTag() != "!!int" || err != nil || v.OverflowInt(i) {
				d.fail(path, n, "%s: %q is not a whole number; write digits only, such as 3", display(path), n.Value)
				return
			}
			v.SetInt(i)
		}
	case t.Kind() == reflect.Float64:
		if d.scalar(path, n, t) {
			f, err := strconv.ParseFloat(n.Value, 64)
			if (n.ShortTag() != "!!float" && n.ShortTag() != "!!int") || err != nil {
				d.fail(path, n, "%s: %q is not a number; write a decimal such as 0.25", display(path), n.Value)
				return
			}
			v.SetFloat(f)
		}
	default:
		panic("config: no decoder for " + t.String())
	}
}

// alias refuses a YAML alias (*name): a few lines of them can expand to
// millions of values, and a config file gains nothing from them.
func (d *decoder) alias(path string, n *yaml.Node) {
	d.fail(path, n, "%s: YAML aliases (*%s) are not supported; write the value out in full", display(path), n.Value)
}

// scalar reports whether n is a single value, recording an error if not.
func (d *decoder) scalar(path string, n *yaml.Node, t reflect.Type) bool {
	if n.Kind == yaml.ScalarNode {
		return true
	}
	d.fail(path, n, "%s: expected %s, found %s", display(path), describe(t), kindName(n))
	return false
}

func (d *decoder) duration(path string, n *yaml.Node, v reflect.Value) {
	if !d.scalar(path, n, durationType) {
		return
	}
	if n.ShortTag() == "!!int" || n.ShortTag() == "!!float" {
		if f, err := strconv.ParseFloat(n.Value, 64); err == nil && f == 0 {
			v.SetInt(0)
			return
		}
		d.fail(path, n, "%s: %s has no unit; write it with one, such as %sms or %ss", display(path), n.Value, n.Value, n.Value)
		return
	}
	dur, err := time.ParseDuration(n.Value)
	if err != nil {
		d.fail(path, n, "%s: %q is not a duration; write a number with a unit (ns, us, ms, s, m, h) such as 5ms or 1m30s", display(path), n.Value)
		return
	}
	v.SetInt(int64(dur))
}

func (d *decoder) mapping(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, n, "%s: expected %s, found %s", display(path), describe(v.Type()), kindName(n))
		return
	}
	fs := fieldsOf(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
			d.errorf(k, "%s: keys must be plain words; YAML merge keys and complex keys are not supported", display(path))
			continue
		}
		var f *field
		for j := range fs {
			if fs[j].key == k.Value {
				f = &fs[j]
			}
		}
		if f == nil {
			d.errorf(k, "%s", unknownKey(path, k.Value, fs))
			continue
		}
		if line, dup := seen[k.Value]; dup {
			d.errorf(k, "%s: key %q appears twice (first on line %d); keep one", display(path), k.Value, line)
			continue
		}
		seen[k.Value] = k.Line
		sub := k.Value
		if path != "" {
			sub = path + "." + k.Value
		}
		opts := ""
		if f.ranges {
			opts = "ranges"
		}
		d.value(sub, val, k, v.Field(f.index), opts)
	}
}

// unknownKey words the error for a key the schema does not have.
func unknownKey(path, key string, fs []field) string {
	where := "at the top level"
	if path != "" {
		where = "in " + display(path)
	}
	best, bestD := "", 1<<30
	keys := make([]string, len(fs))
	for i, f := range fs {
		keys[i] = f.key
		if dist := levenshtein(strings.ToLower(key), f.key); dist < bestD {
			best, bestD = f.key, dist
		}
	}
	if bestD <= max(2, len(key)/3) {
		return fmt.Sprintf("unknown key %q %s; did you mean %q?", key, where, best)
	}
	sort.Strings(keys)
	return fmt.Sprintf("unknown key %q %s; known keys are %s", key, where, strings.Join(keys, ", "))
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (d *decoder) list(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.fail(path, n, "%s: expected %s, found %s", display(path), describe(v.Type()), kindName(n))
		return
	}
	out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		d.value(fmt.Sprintf("%s[%d]", path, i), item, nil, out.Index(i), "")
	}
	v.Set(out)
}

// vipList decodes a list of addresses and ranges a-b, expanded in order.
func (d *decoder) vipList(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.fail(path, n, "%s: expected a list of addresses and ranges such as [192.0.2.10, 192.0.2.20-192.0.2.29], found %s", display(path), kindName(n))
		return
	}
	var out []netip.Addr
	var spans []span
	for i, item := range n.Content {
		ipath := fmt.Sprintf("%s#%d", path, i) // the item as written
		if item.Kind == yaml.AliasNode {
			d.alias(ipath, item)
			d.src.bad[path] = true
			continue
		}
		if item.Kind != yaml.ScalarNode || item.ShortTag() != "!!str" {
			d.fail(ipath, item, "%s entry %d: expected an address or a range a-b, found %s", display(path), i+1, kindName(item))
			d.src.bad[path] = true
			continue
		}
		first, last, err := parseRange(item.Value)
		if err != nil {
			d.fail(ipath, item, "%s entry %d: %v", display(path), i+1, err)
			d.src.bad[path] = true
			continue
		}
		if d.nodes += int(addrDiff(first, last)) + 1; d.nodes > maxNodes {
			d.fail(ipath, item, "%s: the VIP lists of this file hold more than %d addresses; list fewer", display(path), maxNodes)
			d.src.bad[path] = true
			break
		}
		s := span{text: item.Value, first: first, last: last, start: len(out), pos: Pos{Line: item.Line, Column: item.Column}}
		for a := first; ; a = a.Next() {
			d.src.pos[fmt.Sprintf("%s[%d]", path, len(out))] = s.pos
			out = append(out, a)
			if a == last {
				break
			}
		}
		s.n = len(out) - s.start
		spans = append(spans, s)
	}
	d.src.spans[path] = spans
	v.Set(reflect.ValueOf(out))
}

// parseAddr parses an IPv4 address; ringway's data plane is IPv4 only.
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IPv4 address; write a dotted quad such as 192.0.2.1", s)
	}
	if !a.Is4() {
		return netip.Addr{}, fmt.Errorf("%q is not IPv4; ringway routes IPv4 only, write a dotted quad such as 192.0.2.1", s)
	}
	return a, nil
}

// parsePrefix parses an IPv4 prefix whose host bits are zero.
func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		if a, aerr := netip.ParseAddr(s); aerr == nil && a.Is4() {
			return netip.Prefix{}, fmt.Errorf("%q has no prefix length; write it as %s/24 (or the right length)", s, s)
		}
		return netip.Prefix{}, fmt.Errorf("%q is not an IPv4 prefix; write it such as 192.0.2.0/24", s)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("%q is not IPv4; ringway routes IPv4 only", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set; write %s", s, p.Masked())
	}
	return p, nil
}

// parseRange parses "a" or "a-b" (spaces around the dash allowed).
func parseRange(s string) (first, last netip.Addr, err error) {
	lo, hi, isRange := strings.Cut(s, "-")
	first, err = parseAddr(strings.TrimSpace(lo))
	if err != nil {
		return first, last, err
	}
	if !isRange {
		return first, first, nil
	}
	last, err = parseAddr(strings.TrimSpace(hi))
	if err != nil {
		return first, last, fmt.Errorf("in range %q: %v", s, err)
	}
	if last.Less(first) {
		return first, last, fmt.Errorf("range %q runs backwards; write %s-%s", s, last, first)
	}
	if size := addrDiff(first, last) + 1; size > MaxRange {
		return first, last, fmt.Errorf("range %q holds %d addresses, more than %d; split it or shorten it", s, size, MaxRange)
	}
	return first, last, nil
}

// addrDiff is last − first for IPv4 addresses.
func addrDiff(first, last netip.Addr) uint64 {
	a, b := first.As4(), last.As4()
	x := uint64(a[0])<<24 | uint64(a[1])<<16 | uint64(a[2])<<8 | uint64(a[3])
	y := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
	return y - x
}
