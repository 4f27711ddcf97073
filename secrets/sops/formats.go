package sops

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v4"
)

const metaKey = "sops"

// ---- YAML ----

type yamlDoc struct{ docs []*yaml.Node }

func parseYAML(b []byte) (*yamlDoc, error) {
	d := &yamlDoc{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("yaml: %w", err)
		}
		if len(n.Content) > 0 && n.Content[0].Kind != yaml.MappingNode {
			return nil, errors.New("yaml: a sops document is a mapping")
		}
		d.docs = append(d.docs, &n)
	}
	return d, nil
}

func (d *yamlDoc) metadata() (*metadata, error) {
	if len(d.docs) == 0 || len(d.docs[0].Content) == 0 {
		return nil, nil
	}
	m := d.docs[0].Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == metaKey {
			var v map[string]any
			if err := m.Content[i+1].Decode(&v); err != nil {
				return nil, fmt.Errorf("sops metadata: %w", err)
			}
			return metadataFromMap(v)
		}
	}
	return nil, nil
}

func (d *yamlDoc) walk(fn func(*leaf) error) error {
	for _, doc := range d.docs {
		if len(doc.Content) == 0 {
			continue
		}
		if err := yamlWalk(doc.Content[0], nil, true, fn); err != nil {
			return err
		}
	}
	return nil
}

func yamlWalk(n *yaml.Node, path []string, top bool, fn func(*leaf) error) error {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if top && k == metaKey {
				continue
			}
			if err := yamlWalk(n.Content[i+1], append(path[:len(path):len(path)], k), false, fn); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if err := yamlWalk(c, path, false, fn); err != nil {
				return err
			}
		}
	case yaml.AliasNode:
		return fmt.Errorf("%s: YAML aliases are not supported in a sops document", strings.Join(path, "."))
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return err
		}
		return fn(&leaf{path: path, value: v, set: func(plain []byte, typ string) {
			n.Value, n.Style = string(plain), 0
			n.Tag = map[string]string{"str": "!!str", "bytes": "!!str", "int": "!!int", "float": "!!float",
				"bool": "!!bool", "time": "!!timestamp", "comment": "!!str"}[typ]
			if typ == "bool" {
				n.Value = strings.ToLower(n.Value)
			}
		}})
	}
	return nil
}

// stripComments removes the comments sops encrypted (and, before
// encryption, all of them: sops would encrypt them).
func stripComments(n *yaml.Node, all bool) {
	clean := func(c string) string {
		if all {
			return ""
		}
		var keep []string
		for _, l := range strings.Split(c, "\n") {
			if !strings.HasPrefix(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "#")), "ENC[AES256_GCM,") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	n.HeadComment, n.LineComment, n.FootComment = clean(n.HeadComment), clean(n.LineComment), clean(n.FootComment)
	for _, c := range n.Content {
		stripComments(c, all)
	}
}

func (d *yamlDoc) emit(md map[string]any) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(4)
	for i, doc := range d.docs {
		if len(doc.Content) == 0 {
			continue
		}
		m := doc.Content[0]
		var content []*yaml.Node
		for j := 0; j+1 < len(m.Content); j += 2 {
			if m.Content[j].Value != metaKey {
				content = append(content, m.Content[j], m.Content[j+1])
			}
		}
		if i == 0 && md != nil {
			var v yaml.Node
			if err := v.Encode(md); err != nil {
				return nil, err
			}
			content = append(content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: metaKey}, &v)
		}
		m.Content = content
		stripComments(doc, md != nil)
		if err := enc.Encode(doc); err != nil {
			return nil, err
		}
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (d *yamlDoc) plaintext() ([]byte, error)                  { return d.emit(nil) }
func (d *yamlDoc) encrypted(md map[string]any) ([]byte, error) { return d.emit(md) }

// ---- JSON (and the binary envelope) ----

const (
	jObject = iota
	jArray
	jScalar
)

type jnode struct {
	kind  int
	keys  []string
	kids  []*jnode
	value any    // string, int, float64, bool, nil
	raw   string // a number's literal, kept as written
}

type jsonDoc struct {
	root   *jnode
	binary bool
}

func parseJSON(b []byte, binary bool) (*jsonDoc, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	root, err := jparse(dec)
	if err != nil {
		return nil, fmt.Errorf("json: %w", err)
	}
	if root.kind != jObject {
		return nil, errors.New("json: a sops document is an object")
	}
	return &jsonDoc{root: root, binary: binary}, nil
}

func jparse(dec *json.Decoder) (*jnode, error) {
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := t.(type) {
	case json.Delim:
		switch t {
		case '{':
			n := &jnode{kind: jObject}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := jparse(dec)
				if err != nil {
					return nil, err
				}
				n.keys = append(n.keys, k.(string))
				n.kids = append(n.kids, v)
			}
			_, err := dec.Token()
			return n, err
		case '[':
			n := &jnode{kind: jArray}
			for dec.More() {
				v, err := jparse(dec)
				if err != nil {
					return nil, err
				}
				n.kids = append(n.kids, v)
			}
			_, err := dec.Token()
			return n, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case json.Number:
		n := &jnode{kind: jScalar, raw: t.String()}
		if i, err := t.Int64(); err == nil {
			n.value = int(i)
		} else if f, err := t.Float64(); err == nil {
			n.value = f
		} else {
			return nil, err
		}
		return n, nil
	default:
		return &jnode{kind: jScalar, value: t}, nil
	}
}

// generic is the node as plain Go values (for the metadata).
func (n *jnode) generic() any {
	switch n.kind {
	case jObject:
		m := map[string]any{}
		for i, k := range n.keys {
			m[k] = n.kids[i].generic()
		}
		return m
	case jArray:
		l := []any{}
		for _, c := range n.kids {
			l = append(l, c.generic())
		}
		return l
	}
	return n.value
}

func (d *jsonDoc) metadata() (*metadata, error) {
	for i, k := range d.root.keys {
		if k == metaKey {
			m, ok := d.root.kids[i].generic().(map[string]any)
			if !ok {
				return nil, errors.New("sops metadata is not an object")
			}
			return metadataFromMap(m)
		}
	}
	return nil, nil
}

func (d *jsonDoc) walk(fn func(*leaf) error) error {
	return jwalk(d.root, nil, true, fn)
}

func jwalk(n *jnode, path []string, top bool, fn func(*leaf) error) error {
	switch n.kind {
	case jObject:
		for i, k := range n.keys {
			if top && k == metaKey {
				continue
			}
			if err := jwalk(n.kids[i], append(path[:len(path):len(path)], k), false, fn); err != nil {
				return err
			}
		}
	case jArray:
		for _, c := range n.kids {
			if err := jwalk(c, path, false, fn); err != nil {
				return err
			}
		}
	default:
		return fn(&leaf{path: path, value: n.value, set: func(plain []byte, typ string) {
			n.raw = ""
			switch typ {
			case "int", "float":
				n.raw, n.value = string(plain), nil
			case "bool":
				n.value, _ = strconv.ParseBool(string(plain))
			default:
				n.value = string(plain)
			}
		}})
	}
	return nil
}

func jemit(w *bytes.Buffer, n *jnode) error {
	switch n.kind {
	case jObject:
		w.WriteByte('{')
		for i, k := range n.keys {
			if i > 0 {
				w.WriteByte(',')
			}
			b, _ := json.Marshal(k)
			w.Write(b)
			w.WriteByte(':')
			if err := jemit(w, n.kids[i]); err != nil {
				return err
			}
		}
		w.WriteByte('}')
	case jArray:
		w.WriteByte('[')
		for i, c := range n.kids {
			if i > 0 {
				w.WriteByte(',')
			}
			if err := jemit(w, c); err != nil {
				return err
			}
		}
		w.WriteByte(']')
	default:
		if n.raw != "" {
			w.WriteString(n.raw)
			return nil
		}
		b, err := json.Marshal(n.value)
		if err != nil {
			return err
		}
		w.Write(b)
	}
	return nil
}

func (d *jsonDoc) emit(md map[string]any) ([]byte, error) {
	root := &jnode{kind: jObject}
	for i, k := range d.root.keys {
		if k != metaKey {
			root.keys, root.kids = append(root.keys, k), append(root.kids, d.root.kids[i])
		}
	}
	var buf bytes.Buffer
	if err := jemit(&buf, root); err != nil {
		return nil, err
	}
	if md != nil {
		b, err := json.Marshal(md)
		if err != nil {
			return nil, err
		}
		buf.Truncate(buf.Len() - 1)
		if len(root.keys) > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`"sops":`)
		buf.Write(b)
		buf.WriteByte('}')
	}
	var out bytes.Buffer
	if err := json.Indent(&out, buf.Bytes(), "", "    "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

func (d *jsonDoc) plaintext() ([]byte, error) {
	if d.binary {
		for i, k := range d.root.keys {
			if k == "data" {
				if s, ok := d.root.kids[i].value.(string); ok {
					return []byte(s), nil
				}
			}
		}
		return nil, errors.New("binary sops document without a data string")
	}
	return d.emit(nil)
}

func (d *jsonDoc) encrypted(md map[string]any) ([]byte, error) { return d.emit(md) }

// ---- dotenv ----

type envLine struct {
	comment bool
	key     string
	value   string
}

type dotenvDoc struct{ lines []envLine }

func parseDotenv(b []byte) (*dotenvDoc, error) {
	d := &dotenvDoc{}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSuffix(l, "\r")
		if l == "" {
			continue
		}
		if l[0] == '#' {
			d.lines = append(d.lines, envLine{comment: true, value: l[1:]})
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return nil, fmt.Errorf("dotenv: invalid line %q", l)
		}
		d.lines = append(d.lines, envLine{key: k, value: strings.ReplaceAll(v, `\n`, "\n")})
	}
	return d, nil
}

const (
	mapSep  = "__map_"
	listSep = "__list_"
)

// metadata unflattens the sops_* keys (sops_age__list_0__map_enc...).
func (d *dotenvDoc) metadata() (*metadata, error) {
	root := map[string]any{}
	found := false
	for _, l := range d.lines {
		if l.comment || !strings.HasPrefix(l.key, metaKey+"_") {
			continue
		}
		found = true
		if err := unflatten(root, strings.TrimPrefix(l.key, metaKey+"_"), l.value); err != nil {
			return nil, err
		}
	}
	if !found {
		return nil, nil
	}
	return metadataFromMap(listify(root).(map[string]any))
}

type listMarker map[int]any

type tok struct {
	list bool
	key  string
	idx  int
}

// tokenize splits a flattened key like sops does: "__map_" and
// "__list_" anywhere start a new component.
func tokenize(path string) ([]tok, error) {
	const (
		plain = iota
		inMap
		inList
	)
	var toks []tok
	state, last, i := plain, 0, 0
	var err error
	finish := func() {
		switch state {
		case plain:
			toks = append(toks, tok{key: path[last:i]})
		case inMap:
			toks = append(toks, tok{key: path[last+len(mapSep) : i]})
		case inList:
			n, e := strconv.Atoi(path[last+len(listSep) : i])
			if e != nil {
				err = e
			}
			toks = append(toks, tok{list: true, idx: n})
		}
		last = i
	}
	for i < len(path) {
		switch {
		case strings.HasPrefix(path[i:], mapSep):
			finish()
			state = inMap
			i += len(mapSep)
		case strings.HasPrefix(path[i:], listSep):
			finish()
			state = inList
			i += len(listSep)
		default:
			i++
		}
	}
	finish()
	return toks, err
}

// unflatten places value at the flattened path key.
func unflatten(root map[string]any, key, value string) error {
	toks, err := tokenize(key)
	if err != nil {
		return fmt.Errorf("sops metadata key %q: %w", key, err)
	}
	var container any = root
	for i, t := range toks {
		last := i == len(toks)-1
		var child any
		if !last {
			if toks[i+1].list {
				child = listMarker{}
			} else {
				child = map[string]any{}
			}
		} else {
			child = value
		}
		switch c := container.(type) {
		case map[string]any:
			if t.list {
				return fmt.Errorf("sops metadata key %q: type mismatch", key)
			}
			if ex, ok := c[t.key]; ok && !last {
				child = ex
			} else {
				c[t.key] = child
			}
		case listMarker:
			if !t.list {
				return fmt.Errorf("sops metadata key %q: type mismatch", key)
			}
			if ex, ok := c[t.idx]; ok && !last {
				child = ex
			} else {
				c[t.idx] = child
			}
		}
		container = child
	}
	return nil
}

func listify(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, c := range v {
			v[k] = listify(c)
		}
		return v
	case listMarker:
		idx := make([]int, 0, len(v))
		for i := range v {
			idx = append(idx, i)
		}
		sort.Ints(idx)
		out := make([]any, 0, len(v))
		for _, i := range idx {
			out = append(out, listify(v[i]))
		}
		return out
	}
	return v
}

func flatten(prefix string, v any, out *[]envLine) {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			flatten(prefix+mapSep+k, v[k], out)
		}
	case []any:
		for i, c := range v {
			flatten(prefix+listSep+strconv.Itoa(i), c, out)
		}
	default:
		*out = append(*out, envLine{key: prefix, value: str(v)})
	}
}

func (d *dotenvDoc) walk(fn func(*leaf) error) error {
	for i := range d.lines {
		l := &d.lines[i]
		if l.comment || strings.HasPrefix(l.key, metaKey+"_") {
			continue
		}
		if err := fn(&leaf{path: []string{l.key}, value: l.value, set: func(plain []byte, _ string) {
			l.value = string(plain)
		}}); err != nil {
			return err
		}
	}
	return nil
}

func (d *dotenvDoc) emit(md map[string]any) []byte {
	var b strings.Builder
	lines := d.lines
	if md != nil {
		keys := make([]string, 0, len(md))
		for k := range md {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			flatten(metaKey+"_"+k, md[k], &lines)
		}
	}
	for _, l := range lines {
		switch {
		case l.comment:
			// comments are encrypted by sops: dropped either way
		case md == nil && strings.HasPrefix(l.key, metaKey+"_"):
		default:
			b.WriteString(l.key + "=" + strings.ReplaceAll(l.value, "\n", `\n`) + "\n")
		}
	}
	return []byte(b.String())
}

func (d *dotenvDoc) plaintext() ([]byte, error)                  { return d.emit(nil), nil }
func (d *dotenvDoc) encrypted(md map[string]any) ([]byte, error) { return d.emit(md), nil }
