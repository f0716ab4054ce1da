package config

import (
	"bytes"
	"encoding"
	"fmt"
	"net/netip"
	"reflect"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Marshal renders c as YAML that Parse reads back to an equal Config. Keys
// at their default value are left out; VIP pools are written as ranges
// where addresses are consecutive.
func (c *Config) Marshal() ([]byte, error) { return c.marshal(nil) }

// marshal is Marshal, writing the keys in keep ("cluster.key_file") even
// at their default value.
func (c *Config) marshal(keep map[string]bool) ([]byte, error) {
	def := DefaultConfig()
	e := encoder{keep: keep}
	n := e.value(reflect.ValueOf(*c), reflect.ValueOf(def), "", "")
	if n == nil {
		n = &yaml.Node{Kind: yaml.MappingNode}
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return b.Bytes(), nil
}

var (
	textMarshalerType = reflect.TypeOf((*encoding.TextMarshaler)(nil)).Elem()
	portRangeType     = reflect.TypeOf(PortRange{})
)

func scalarNode(tag, value string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
}

type encoder struct {
	keep map[string]bool
}

// value builds the node for v at path, or nil when v equals def (a valid
// default to compare against) and can be left out.
func (e encoder) value(v, def reflect.Value, path, opts string) *yaml.Node {
	if def.IsValid() && !e.keep[path] && reflect.DeepEqual(v.Interface(), def.Interface()) {
		return nil
	}
	t := v.Type()
	switch {
	case t == durationType:
		return scalarNode("!!str", v.Interface().(fmt.Stringer).String())
	case t == addrType || t == prefixType:
		return scalarNode("!!str", v.Interface().(fmt.Stringer).String())
	case t == portRangeType && v.Interface().(PortRange).First == v.Interface().(PortRange).Last:
		return scalarNode("!!int", v.Interface().(fmt.Stringer).String()) // 22, not "22"
	case t.Implements(textMarshalerType):
		b, _ := v.Interface().(encoding.TextMarshaler).MarshalText()
		return scalarNode("!!str", string(b))
	case t.Kind() == reflect.Struct:
		m := &yaml.Node{Kind: yaml.MappingNode}
		for _, f := range fieldsOf(t) {
			var fd reflect.Value
			if def.IsValid() {
				fd = def.Field(f.index)
			} else {
				fd = reflect.Zero(t.Field(f.index).Type) // list items: leave out zero fields
			}
			o := ""
			if f.ranges {
				o = "ranges"
			}
			sub := f.key
			if path != "" {
				sub = path + "." + f.key
			}
			child := e.value(v.Field(f.index), fd, sub, o)
			if child == nil {
				continue
			}
			m.Content = append(m.Content, scalarNode("!!str", f.key), child)
		}
		if len(m.Content) == 0 && def.IsValid() && !e.keep[path] {
			return nil
		}
		return m
	case t.Kind() == reflect.Slice:
		s := &yaml.Node{Kind: yaml.SequenceNode}
		if opts == "ranges" {
			for _, r := range compress(v.Interface().([]netip.Addr)) {
				s.Content = append(s.Content, scalarNode("!!str", r))
			}
		} else {
			for i := 0; i < v.Len(); i++ {
				s.Content = append(s.Content, e.value(v.Index(i), reflect.Value{}, path+"[]", ""))
			}
		}
		if t.Elem().Kind() != reflect.Struct || t.Elem().Implements(textMarshalerType) {
			s.Style = yaml.FlowStyle
		}
		return s
	case t.Kind() == reflect.String:
		return scalarNode("!!str", v.String())
	case t.Kind() == reflect.Bool:
		return scalarNode("!!bool", strconv.FormatBool(v.Bool()))
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		return scalarNode("!!int", strconv.FormatInt(v.Int(), 10))
	case t.Kind() == reflect.Float64:
		return scalarNode("!!float", strconv.FormatFloat(v.Float(), 'g', -1, 64))
	}
	panic("config: no encoder for " + t.String())
}

// compress writes runs of consecutive addresses as ranges a-b.
func compress(as []netip.Addr) []string {
	var out []string
	for i := 0; i < len(as); {
		j := i
		for j+1 < len(as) && as[j+1] == as[j].Next() && j+1-i < MaxRange {
			j++
		}
		if j == i {
			out = append(out, as[i].String())
		} else {
			out = append(out, as[i].String()+"-"+as[j].String())
		}
		i = j + 1
	}
	return out
}
