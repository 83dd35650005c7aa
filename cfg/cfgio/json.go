package cfgio

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/redmagic-patch/redmagic-patch/cfg"
)

// Format and Version identify the JSON schema described in the package
// documentation.
const (
	Format  = "redmagic-cfg"
	Version = 1
)

// The wire types mirror the schema. ReadJSON decodes into them; WriteJSON
// encodes by hand for speed, and the tests check that its output is what
// encoding/json makes of these types.
type (
	jsonDoc struct {
		Format    string      `json:"format"`
		Version   int         `json:"version"`
		Binary    jsonBinary  `json:"binary"`
		Functions []*jsonFunc `json:"functions"`
	}
	jsonBinary struct {
		Path    string `json:"path,omitempty"`
		BuildID string `json:"build_id,omitempty"`
	}
	jsonFunc struct {
		Name     string          `json:"name,omitempty"`
		Start    uint64          `json:"start"`
		End      uint64          `json:"end"`
		Parts    []jsonRange     `json:"parts,omitempty"`
		Sources  []string        `json:"sources,omitempty"`
		NoReturn bool            `json:"noreturn,omitempty"`
		Blocks   []jsonBlock     `json:"blocks,omitempty"`
		Indirect []*jsonIndirect `json:"indirect_jumps,omitempty"`
	}
	jsonRange struct {
		Start uint64 `json:"start"`
		End   uint64 `json:"end"`
	}
	jsonBlock struct {
		Start uint64     `json:"start"`
		End   uint64     `json:"end"`
		Insts int        `json:"insts"`
		Last  uint64     `json:"last,omitempty"`
		Succs []jsonEdge `json:"succs,omitempty"`
	}
	jsonEdge struct {
		Kind   string `json:"kind"`
		Target uint64 `json:"target,omitempty"`
	}
	jsonIndirect struct {
		Addr      uint64   `json:"addr"`
		Kind      string   `json:"kind"`
		Table     uint64   `json:"table,omitempty"`
		Entries   int      `json:"entries,omitempty"`
		BoundFrom uint64   `json:"bound_from,omitempty"`
		Targets   []uint64 `json:"targets,omitempty"`
	}
)

// FormatError reports a JSON document that does not follow the schema.
// Field locates the offending value (for example
// "functions[12].blocks[3].succs[0].kind"); Value is that value.
type FormatError struct {
	Field string
	Msg   string
	Value any
}

func (e *FormatError) Error() string {
	s := "cfg json: "
	if e.Field != "" {
		s += e.Field + ": "
	}
	s += e.Msg
	if e.Value != nil {
		switch v := e.Value.(type) {
		case string:
			s += fmt.Sprintf(" %q", v)
		case uint64:
			s += fmt.Sprintf(" %#x", v)
		default:
			s += fmt.Sprintf(" %v", v)
		}
	}
	return s
}

// sortedBy returns xs ascending by key (stable), copying only when the
// stored order is not already ascending: graphs from Recover and ReadJSON
// are sorted, so the common case costs one pass and no allocation.
func sortedBy[T any](xs []T, key func(T) uint64) []T {
	cmp := func(a, b T) int { return compareU64(key(a), key(b)) }
	if slices.IsSortedFunc(xs, cmp) {
		return xs
	}
	xs = slices.Clone(xs)
	slices.SortStableFunc(xs, cmp)
	return xs
}

func sortedFunctions(fs []*cfg.Function) []*cfg.Function {
	return sortedBy(fs, func(f *cfg.Function) uint64 { return f.Start })
}

func sortedBlocks(bs []*cfg.Block) []*cfg.Block {
	return sortedBy(bs, func(b *cfg.Block) uint64 { return b.Start })
}

func sortedIndirect(js []*cfg.IndirectJump) []*cfg.IndirectJump {
	return sortedBy(js, func(j *cfg.IndirectJump) uint64 { return j.Addr })
}

func sortedU64(xs []uint64) []uint64 {
	return sortedBy(xs, func(x uint64) uint64 { return x })
}

func compareU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// flushAt is how much encoded output WriteJSON buffers before writing.
const flushAt = 64 << 10

// jsonEncoder appends the document to buf and hands it to w in chunks.
type jsonEncoder struct {
	w   io.Writer
	buf []byte
	err error
}

func (e *jsonEncoder) flush() {
	if e.err == nil && len(e.buf) > 0 {
		_, e.err = e.w.Write(e.buf)
	}
	e.buf = e.buf[:0]
}

func (e *jsonEncoder) str(s string) { e.buf = appendJSONString(e.buf, s) }
func (e *jsonEncoder) raw(s string) { e.buf = append(e.buf, s...) }
func (e *jsonEncoder) u64(x uint64) { e.buf = strconv.AppendUint(e.buf, x, 10) }
func (e *jsonEncoder) int(x int)    { e.buf = strconv.AppendInt(e.buf, int64(x), 10) }

// WriteJSON writes g as a version 1 redmagic-cfg document (see the package
// documentation). The same graph always gives the same bytes.
func WriteJSON(w io.Writer, g *cfg.Graph) error {
	e := &jsonEncoder{w: w, buf: make([]byte, 0, flushAt+4096)}
	e.raw(`{"format":`)
	e.str(Format)
	e.raw(`,"version":`)
	e.int(Version)
	e.raw(`,"binary":{`)
	sep := ""
	if g.Path != "" {
		e.raw(`"path":`)
		e.str(g.Path)
		sep = ","
	}
	if g.BuildID != "" {
		e.raw(sep + `"build_id":`)
		e.str(g.BuildID)
	}
	e.raw(`},"functions":[`)
	for i, f := range sortedFunctions(g.Functions) {
		if i > 0 {
			e.raw(",")
		}
		e.raw("\n")
		e.function(f)
		if len(e.buf) >= flushAt {
			e.flush()
		}
	}
	if len(g.Functions) > 0 {
		e.raw("\n")
	}
	e.raw("]}\n")
	e.flush()
	if e.err != nil {
		return fmt.Errorf("cfg json: write: %w", e.err)
	}
	return nil
}

func (e *jsonEncoder) function(f *cfg.Function) {
	e.raw("{")
	if f.Name != "" {
		e.raw(`"name":`)
		e.str(f.Name)
		e.raw(",")
	}
	e.raw(`"start":`)
	e.u64(f.Start)
	e.raw(`,"end":`)
	e.u64(f.End)
	jsonArray(e, "parts", f.Parts, func(p cfg.Range) {
		e.raw(`{"start":`)
		e.u64(p.Start)
		e.raw(`,"end":`)
		e.u64(p.End)
		e.raw("}")
	})
	jsonArray(e, "sources", f.Sources, e.str)
	if f.NoReturn {
		e.raw(`,"noreturn":true`)
	}
	jsonArray(e, "blocks", sortedBlocks(f.Blocks), e.block)
	jsonArray(e, "indirect_jumps", sortedIndirect(f.Indirect), e.indirect)
	e.raw("}")
}

// jsonArray writes `,"key":[item,item,...]`, or nothing for an empty
// slice: every array member of the schema is optional and follows another
// member.
func jsonArray[T any](e *jsonEncoder, key string, xs []T, item func(T)) {
	if len(xs) == 0 {
		return
	}
	e.raw(`,"`)
	e.raw(key)
	e.raw(`":[`)
	for i, x := range xs {
		if i > 0 {
			e.raw(",")
		}
		item(x)
	}
	e.raw("]")
}

func (e *jsonEncoder) block(b *cfg.Block) {
	e.raw(`{"start":`)
	e.u64(b.Start)
	e.raw(`,"end":`)
	e.u64(b.End)
	e.raw(`,"insts":`)
	e.int(b.Insts)
	if b.Last != 0 {
		e.raw(`,"last":`)
		e.u64(b.Last)
	}
	jsonArray(e, "succs", b.Succs, func(s cfg.Edge) {
		e.raw(`{"kind":`)
		e.str(s.Kind.String())
		if s.Target != 0 {
			e.raw(`,"target":`)
			e.u64(s.Target)
		}
		e.raw("}")
	})
	e.raw("}")
}

func (e *jsonEncoder) indirect(j *cfg.IndirectJump) {
	e.raw(`{"addr":`)
	e.u64(j.Addr)
	e.raw(`,"kind":`)
	e.str(j.Kind.String())
	if j.Table != 0 {
		e.raw(`,"table":`)
		e.u64(j.Table)
	}
	if j.Entries != 0 {
		e.raw(`,"entries":`)
		e.int(j.Entries)
	}
	if j.BoundFrom != 0 {
		e.raw(`,"bound_from":`)
		e.u64(j.BoundFrom)
	}
	jsonArray(e, "targets", sortedU64(j.Targets), e.u64)
	e.raw("}")
}

// appendJSONString appends s quoted exactly as encoding/json quotes it
// (HTML-safe escapes, invalid UTF-8 as U+FFFD), taking a fast path for the
// plain ASCII that symbol names almost always are.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // cannot fail for a string
			return append(dst, q...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// ReadJSON reads a document written by WriteJSON (or by any tool following
// the schema) and checks it: the format and version, known edge and table
// kinds, start <= end everywhere, blocks strictly and functions and indirect
// jumps weakly ascending, a block's last instruction inside the block, no
// target on return and unresolved edges, and no trailing data. Errors are
// *FormatError, or wrap the JSON syntax error.
func ReadJSON(r io.Reader) (*cfg.Graph, error) {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 64<<10))
	dec.DisallowUnknownFields()
	if err := expectDelim(dec, '{', ""); err != nil {
		return nil, err
	}
	var (
		g                       = &cfg.Graph{}
		sawFormat, sawVersion   bool
		sawBinary, sawFunctions bool
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntaxError(err)
		}
		key, _ := tok.(string)
		switch key {
		case "format":
			var s string
			if err := dec.Decode(&s); err != nil {
				return nil, &FormatError{Field: "format", Msg: "not a " + Format + " document: " + err.Error()}
			}
			if s != Format {
				return nil, &FormatError{Field: "format", Msg: "not a " + Format + " document: format is", Value: s}
			}
			sawFormat = true
		case "version":
			var v int
			if err := dec.Decode(&v); err != nil {
				return nil, &FormatError{Field: "version", Msg: err.Error()}
			}
			if v != Version {
				return nil, &FormatError{Field: "version", Msg: fmt.Sprintf("unsupported version %d (this build reads version %d)", v, Version)}
			}
			sawVersion = true
		case "binary":
			var b jsonBinary
			if err := dec.Decode(&b); err != nil {
				return nil, decodeError("binary", err)
			}
			g.Path, g.BuildID = b.Path, b.BuildID
			sawBinary = true
		case "functions":
			// Knowing the schema before decoding the bulk keeps errors
			// about a foreign document short and lets readers stream.
			if !sawFormat {
				return nil, &FormatError{Msg: "not a " + Format + " document: no format member before functions"}
			}
			if !sawVersion {
				return nil, &FormatError{Field: "version", Msg: "missing before functions"}
			}
			if err := readFunctions(dec, g); err != nil {
				return nil, err
			}
			sawFunctions = true
		default:
			if !sawFormat {
				return nil, &FormatError{Msg: "not a " + Format + " document: unexpected member", Value: key}
			}
			return nil, &FormatError{Msg: "unknown member", Value: key}
		}
	}
	if err := expectDelim(dec, '}', ""); err != nil {
		return nil, err
	}
	switch {
	case !sawFormat:
		return nil, &FormatError{Msg: "not a " + Format + " document: no format member"}
	case !sawVersion:
		return nil, &FormatError{Field: "version", Msg: "missing"}
	case !sawBinary:
		return nil, &FormatError{Field: "binary", Msg: "missing"}
	case !sawFunctions:
		return nil, &FormatError{Field: "functions", Msg: "missing"}
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			return nil, &FormatError{Msg: "trailing data after the document"}
		}
		return nil, syntaxError(err)
	}
	return g, nil
}

func expectDelim(dec *json.Decoder, want json.Delim, field string) error {
	tok, err := dec.Token()
	if err != nil {
		return syntaxError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return &FormatError{Field: field, Msg: fmt.Sprintf("expected %q, found", string(want)), Value: fmt.Sprint(tok)}
	}
	return nil
}

func syntaxError(err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("cfg json: %w", err)
}

func decodeError(field string, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return syntaxError(err)
	}
	return &FormatError{Field: field, Msg: err.Error()}
}

// readFunctions decodes the functions array one element at a time so that
// a large dump never exists twice in memory.
func readFunctions(dec *json.Decoder, g *cfg.Graph) error {
	if err := expectDelim(dec, '[', "functions"); err != nil {
		return err
	}
	for i := 0; dec.More(); i++ {
		field := "functions[" + strconv.Itoa(i) + "]"
		var jf jsonFunc
		if err := dec.Decode(&jf); err != nil {
			return decodeError(field, err)
		}
		f, err := jf.toFunction(field)
		if err != nil {
			return err
		}
		if n := len(g.Functions); n > 0 && g.Functions[n-1].Start > f.Start {
			return &FormatError{Field: field + ".start", Msg: "functions out of order: start below the previous function's", Value: f.Start}
		}
		g.Functions = append(g.Functions, f)
	}
	return expectDelim(dec, ']', "functions")
}

func (jf *jsonFunc) toFunction(field string) (*cfg.Function, error) {
	if jf.Start > jf.End {
		return nil, &FormatError{Field: field, Msg: fmt.Sprintf("start %#x > end %#x", jf.Start, jf.End)}
	}
	f := &cfg.Function{Name: jf.Name, Start: jf.Start, End: jf.End, Sources: jf.Sources, NoReturn: jf.NoReturn}
	for i, p := range jf.Parts {
		if p.Start > p.End {
			return nil, &FormatError{Field: fmt.Sprintf("%s.parts[%d]", field, i), Msg: fmt.Sprintf("start %#x > end %#x", p.Start, p.End)}
		}
		f.Parts = append(f.Parts, cfg.Range{Start: p.Start, End: p.End})
	}
	if len(jf.Blocks) > 0 {
		f.Blocks = make([]*cfg.Block, len(jf.Blocks))
		all := make([]cfg.Block, len(jf.Blocks)) // one allocation for the function's blocks
		for i := range jf.Blocks {
			jb := &jf.Blocks[i]
			bf := field + ".blocks[" + strconv.Itoa(i) + "]"
			if err := jb.check(bf); err != nil {
				return nil, err
			}
			if i > 0 && jf.Blocks[i-1].Start >= jb.Start {
				return nil, &FormatError{Field: bf + ".start", Msg: "blocks out of order: start not above the previous block's", Value: jb.Start}
			}
			b := &all[i]
			*b = cfg.Block{Start: jb.Start, End: jb.End, Insts: jb.Insts, Last: jb.Last}
			if len(jb.Succs) > 0 {
				b.Succs = make([]cfg.Edge, len(jb.Succs))
				for k, s := range jb.Succs {
					kind, ok := cfg.ParseEdgeKind(s.Kind)
					if !ok {
						return nil, &FormatError{Field: fmt.Sprintf("%s.succs[%d].kind", bf, k), Msg: "unknown edge kind", Value: s.Kind}
					}
					if (kind == cfg.EdgeReturn || kind == cfg.EdgeUnresolved) && s.Target != 0 {
						return nil, &FormatError{Field: fmt.Sprintf("%s.succs[%d].target", bf, k), Msg: kind.String() + " edge with a target", Value: s.Target}
					}
					b.Succs[k] = cfg.Edge{Kind: kind, Target: s.Target}
				}
			}
			f.Blocks[i] = b
		}
	}
	for i, jj := range jf.Indirect {
		jfield := field + ".indirect_jumps[" + strconv.Itoa(i) + "]"
		kind, ok := cfg.ParseTableKind(jj.Kind)
		if !ok {
			return nil, &FormatError{Field: jfield + ".kind", Msg: "unknown table kind", Value: jj.Kind}
		}
		if jj.Entries < 0 {
			return nil, &FormatError{Field: jfield + ".entries", Msg: "negative", Value: jj.Entries}
		}
		if !slices.IsSorted(jj.Targets) {
			return nil, &FormatError{Field: jfield + ".targets", Msg: "not ascending"}
		}
		if i > 0 && jf.Indirect[i-1].Addr > jj.Addr {
			return nil, &FormatError{Field: jfield + ".addr", Msg: "indirect jumps out of order", Value: jj.Addr}
		}
		f.Indirect = append(f.Indirect, &cfg.IndirectJump{
			Addr: jj.Addr, Kind: kind, Table: jj.Table, Entries: jj.Entries,
			BoundFrom: jj.BoundFrom, Targets: jj.Targets,
		})
	}
	return f, nil
}

func (jb *jsonBlock) check(field string) error {
	switch {
	case jb.Start > jb.End:
		return &FormatError{Field: field, Msg: fmt.Sprintf("start %#x > end %#x", jb.Start, jb.End)}
	case jb.Insts < 0:
		return &FormatError{Field: field + ".insts", Msg: "negative", Value: jb.Insts}
	case jb.Last != 0 && (jb.Last < jb.Start || jb.Last >= jb.End):
		return &FormatError{Field: field + ".last", Msg: fmt.Sprintf("outside the block [%#x, %#x):", jb.Start, jb.End), Value: jb.Last}
	}
	return nil
}
