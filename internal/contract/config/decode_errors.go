// Decoding errors named by field path.
//
// yaml.v3 reports a value of the wrong type or an unknown key as a line
// number and Go type names ("line 39: cannot unmarshal !!str `fifty` into
// float64", "field percnt not found in type config.Release"). Validation
// names the field instead ("releases[0] (shop-v2).percent"); so do the
// decoding errors, once mapped back to the node at their line.

package config

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// located is one node of the file with the field path that names it.
type located struct {
	node *yaml.Node
	path string
	// typ is the Go type the node decodes into (nil: unknown).
	typ reflect.Type
	// key is true for a mapping key; known then lists the keys the
	// mapping may have (none for a map with free keys).
	key   bool
	known []string
}

var (
	lineRE       = regexp.MustCompile(`^line (\d+): (.*)$`)
	unknownRE    = regexp.MustCompile(`^field (\S+) not found in type `)
	wrongTypeRE  = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `([^`]*)`)? into (.+)$")
	duplicateRE  = regexp.MustCompile(`^mapping key "([^"]*)" already defined at line (\d+)$`)
	timeType     = reflect.TypeFor[time.Time]()
	durationType = reflect.TypeFor[Duration]()
)

// decodeError rewrites err, as yaml.v3 decoding data into a Config returned
// it, so that each of its problems names the field path. An error that is
// not about one field (a syntax error) is returned as it is.
func decodeError(data []byte, err error) error {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return fmt.Errorf("decode: %w", err)
	}
	nodes := locate(&root, reflect.TypeFor[Config](), "")
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		// A time that does not parse stops yaml.v3 with time's own
		// error, which names neither line nor field.
		if bad := badTimes(nodes); len(bad) > 0 {
			return errors.Join(bad...)
		}
		return fmt.Errorf("decode: %w", err)
	}
	errs := make([]error, 0, len(te.Errors))
	for _, msg := range te.Errors {
		errs = append(errs, errors.New(describe(nodes, msg)))
	}
	return errors.Join(errs...)
}

// describe turns one of yaml.v3's messages into "line N: path: problem".
func describe(nodes []located, msg string) string {
	m := lineRE.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	line, _ := strconv.Atoi(m[1])
	text := m[2]
	if u := unknownRE.FindStringSubmatch(text); u != nil {
		if n := find(nodes, line, func(l located) bool { return l.key && l.node.Value == u[1] }); n != nil {
			return fmt.Sprintf("line %d: %s: unknown field%s", line, n.path, suggest(u[1], n.known))
		}
	}
	if d := duplicateRE.FindStringSubmatch(text); d != nil {
		if n := find(nodes, line, func(l located) bool { return l.key && l.node.Value == d[1] }); n != nil {
			return fmt.Sprintf("line %d: %s: is set twice (first at line %s)", line, n.path, d[2])
		}
	}
	if w := wrongTypeRE.FindStringSubmatch(text); w != nil {
		if n := find(nodes, line, func(l located) bool { return !l.key && sameValue(l.node, w[1], w[2]) }); n != nil {
			return fmt.Sprintf("line %d: %s: %s is not %s", line, n.path, shown(n.node), want(w[3], n.typ))
		}
	}
	// A message of our own unmarshalers (a duration) quotes the value.
	if n := find(nodes, line, func(l located) bool { return !l.key && strings.Contains(text, strconv.Quote(l.node.Value)) }); n != nil {
		return fmt.Sprintf("line %d: %s: %s", line, n.path, text)
	}
	return msg
}

// badTimes names every time field whose value is neither a YAML timestamp
// nor an RFC 3339 time.
func badTimes(nodes []located) []error {
	var errs []error
	for _, l := range nodes {
		if l.key || l.typ != timeType || l.node.Kind != yaml.ScalarNode || l.node.ShortTag() == "!!timestamp" {
			continue
		}
		if _, err := time.Parse(time.RFC3339, l.node.Value); err != nil {
			errs = append(errs, fmt.Errorf("line %d: %s: %s is not %s", l.node.Line, l.path, shown(l.node), want("time.Time", l.typ)))
		}
	}
	return errs
}

// find is the first node at line that ok accepts, or nil.
func find(nodes []located, line int, ok func(located) bool) *located {
	for i := range nodes {
		if nodes[i].node.Line == line && ok(nodes[i]) {
			return &nodes[i]
		}
	}
	return nil
}

// sameValue reports whether n is the node yaml.v3 described with tag and
// value (shortened to 7 characters and "..." past 10).
func sameValue(n *yaml.Node, tag, value string) bool {
	switch tag {
	case "!!map":
		return n.Kind == yaml.MappingNode
	case "!!seq":
		return n.Kind == yaml.SequenceNode
	}
	if n.Kind != yaml.ScalarNode {
		return false
	}
	if short, ok := strings.CutSuffix(value, "..."); ok && len(n.Value) > 10 {
		return strings.HasPrefix(n.Value, short)
	}
	return n.Value == value
}

// shown is how a message quotes the value of n.
func shown(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return strconv.Quote(n.Value)
}

// want says what a field accepts, in the file's terms: t is its Go type
// when known, goType the type yaml.v3 named.
func want(goType string, t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration like 50ms"
	case goType == "time.Time":
		return "an RFC 3339 time like 2026-11-21T10:00:00Z"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case strings.HasPrefix(goType, "int"):
		return "a whole number"
	case strings.HasPrefix(goType, "uint"):
		return "a whole number, 0 or more"
	case goType == "bool":
		return "true or false"
	case goType == "string":
		return "a string"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["), strings.HasPrefix(goType, "config."), strings.HasPrefix(goType, "*config."):
		return "a mapping"
	}
	return "a " + goType
}

// suggest names the known key nearest to name, or lists them all when none
// is near.
func suggest(name string, known []string) string {
	if len(known) == 0 {
		return ""
	}
	best, dist := "", -1
	for _, k := range known {
		if d := editDistance(name, k); dist < 0 || d < dist {
			best, dist = k, d
		}
	}
	if dist <= max(2, len(name)/3) {
		return fmt.Sprintf("; did you mean %s?", best)
	}
	return "; known fields here: " + strings.Join(known, ", ")
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// locate lists n and every node under it with its field path, walking the
// Go type t (nil where the file has what the type has not) alongside.
func locate(n *yaml.Node, t reflect.Type, path string) []located {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	out := []located{{node: n, path: path, typ: t}}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			out = append(out, locate(c, t, path)...)
		}
	case yaml.SequenceNode:
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i, item := range n.Content {
			out = append(out, locate(item, elem, fmt.Sprintf("%s[%d]%s", path, i, label(item)))...)
		}
	case yaml.MappingNode:
		out = append(out, locateMapping(n, t, path)...)
	}
	return out
}

// locateMapping lists the keys and values of mapping n, of Go type t.
func locateMapping(n *yaml.Node, t reflect.Type, path string) []located {
	var fields map[string]reflect.Type
	var known []string
	var elem reflect.Type
	switch {
	case t != nil && t.Kind() == reflect.Struct && t != timeType && t != durationType:
		fields = yamlFields(t)
		known = slices.Sorted(maps.Keys(fields))
	case t != nil && t.Kind() == reflect.Map:
		elem = t.Elem()
	}
	var out []located
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := k.Value
		if path != "" {
			p = path + "." + k.Value
		}
		out = append(out, located{node: k, path: p, key: true, known: known})
		vt := elem
		if fields != nil {
			vt = fields[k.Value]
		}
		out = append(out, locate(v, vt, p)...)
	}
	return out
}

// label names a list item as validation does: "(shop-v2)" for an item
// with a name (or a key's kid), else nothing.
func label(item *yaml.Node) string {
	if item.Kind != yaml.MappingNode {
		return ""
	}
	for _, key := range []string{"name", "kid"} {
		for i := 0; i+1 < len(item.Content); i += 2 {
			if item.Content[i].Value == key && item.Content[i+1].Kind == yaml.ScalarNode && item.Content[i+1].Value != "" {
				return " (" + item.Content[i+1].Value + ")"
			}
		}
	}
	return ""
}

// yamlFields maps the keys a struct of type t decodes to their types,
// inline structs' keys included.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if strings.Contains(opts, "inline") {
			maps.Copy(out, yamlFields(f.Type))
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}
