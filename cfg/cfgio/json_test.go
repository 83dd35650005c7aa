package cfgio

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/redmagic-patch/redmagic-patch/cfg"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// marshalReference encodes g through encoding/json and the wire types: the
// reference WriteJSON's hand-written encoder must agree with.
func marshalReference(g *cfg.Graph) ([]byte, error) {
	doc := jsonDoc{Format: Format, Version: Version, Binary: jsonBinary{Path: g.Path, BuildID: g.BuildID}, Functions: []*jsonFunc{}}
	for _, f := range sortedFunctions(g.Functions) {
		jf := &jsonFunc{Name: f.Name, Start: f.Start, End: f.End, Sources: f.Sources, NoReturn: f.NoReturn}
		for _, p := range f.Parts {
			jf.Parts = append(jf.Parts, jsonRange{p.Start, p.End})
		}
		for _, b := range sortedBlocks(f.Blocks) {
			jb := jsonBlock{Start: b.Start, End: b.End, Insts: b.Insts, Last: b.Last}
			for _, s := range b.Succs {
				jb.Succs = append(jb.Succs, jsonEdge{Kind: s.Kind.String(), Target: s.Target})
			}
			jf.Blocks = append(jf.Blocks, jb)
		}
		for _, j := range sortedIndirect(f.Indirect) {
			jf.Indirect = append(jf.Indirect, &jsonIndirect{
				Addr: j.Addr, Kind: j.Kind.String(), Table: j.Table, Entries: j.Entries,
				BoundFrom: j.BoundFrom, Targets: sortedU64(j.Targets),
			})
		}
		doc.Functions = append(doc.Functions, jf)
	}
	return json.Marshal(doc)
}

func writeJSON(t testing.TB, g *cfg.Graph) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, WriteJSON(&buf, g))
	return buf.Bytes()
}

// shuffled returns a deep-enough copy of g with functions, blocks, indirect
// jumps and targets in reverse order, which WriteJSON must undo.
func shuffled(g *cfg.Graph) *cfg.Graph {
	c := *g
	c.Functions = nil
	for _, f := range slices.Backward(g.Functions) {
		fc := *f
		fc.Blocks = slices.Clone(f.Blocks)
		slices.Reverse(fc.Blocks)
		fc.Indirect = nil
		for _, j := range slices.Backward(f.Indirect) {
			jc := *j
			jc.Targets = slices.Clone(j.Targets)
			slices.Reverse(jc.Targets)
			fc.Indirect = append(fc.Indirect, &jc)
		}
		c.Functions = append(c.Functions, &fc)
	}
	return &c
}

func TestWriteJSONMatchesEncodingJSON(t *testing.T) {
	escapes := smallGraph()
	escapes.Path = "dir with \"quotes\"\\ and \x01 control, \u2028 separator, caf\u00e9 and bad \xff utf-8"
	escapes.Functions[0].Name = "operator<<&>>"
	escapes.Functions[0].Sources = append(escapes.Functions[0].Sources, "t\tab")
	tests := []struct {
		name string
		g    *cfg.Graph
	}{
		{"empty", &cfg.Graph{}},
		{"no path", &cfg.Graph{Functions: []*cfg.Function{{Start: 1, End: 2}}}},
		{"small", smallGraph()},
		{"shuffled", shuffled(smallGraph())},
		{"escapes", escapes},
		{"synthetic", synthGraph(300, 5000, 1)},
		{"lua5.4", realLua(t)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := writeJSON(t, tt.g)
			want, err := marshalReference(tt.g)
			require.NoError(t, err)
			var compact bytes.Buffer
			require.NoError(t, json.Compact(&compact, got))
			require.Equal(t, string(want), compact.String())
			// One function per line, and nothing but the document.
			lines := bytes.Count(got, []byte("\n"))
			if n := len(tt.g.Functions); n > 0 {
				assert.Equal(t, n+2, lines)
			} else {
				assert.Equal(t, 1, lines)
			}
		})
	}
}

func TestWriteJSONDeterministic(t *testing.T) {
	for _, g := range []*cfg.Graph{smallGraph(), synthGraph(200, 3000, 7), realLua(t)} {
		first := writeJSON(t, g)
		assert.Equal(t, first, writeJSON(t, g))
		assert.Equal(t, first, writeJSON(t, shuffled(g)), "stored order must not matter")
	}
}

func TestJSONRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		g    *cfg.Graph
	}{
		{"empty", &cfg.Graph{}},
		{"small", smallGraph()},
		{"synthetic", synthGraph(300, 5000, 2)},
		{"lua5.4", realLua(t)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := writeJSON(t, tt.g)
			got, err := ReadJSON(bytes.NewReader(enc))
			require.NoError(t, err)
			assert.Equal(t, enc, writeJSON(t, got), "write(read(write(g))) == write(g)")
			assert.Equal(t, tt.g.Stats(), got.Stats())
			assert.True(t, Diff(tt.g, got).Equal())
			if tt.name != "lua5.4" {
				// Hand-built graphs are already in schema order with nil
				// empty slices, so they must come back identical.
				assert.Equal(t, tt.g, got)
			}
		})
	}
}

func TestReadJSONRejects(t *testing.T) {
	good := string(writeJSON(t, smallGraph()))
	replace := func(old, new string) string {
		require.Contains(t, good, old)
		return strings.Replace(good, old, new, 1)
	}
	tests := []struct {
		name, doc string
		field     string // FormatError.Field; "" for syntax errors
		msg       string // substring of the error text
	}{
		{"empty input", "", "", "unexpected EOF"},
		{"not an object", "[1,2]", "", `expected "{"`},
		{"stats object", `{"functions":3,"blocks":9}`, "", "not a redmagic-cfg document"},
		{"wrong format", replace(`"redmagic-cfg"`, `"other-cfg"`), "format", `format is "other-cfg"`},
		{"format not a string", replace(`"redmagic-cfg"`, `7`), "format", "not a redmagic-cfg document"},
		{"future version", replace(`"version":1`, `"version":2`), "version", "unsupported version 2"},
		{"no version", replace(`"version":1,`, ``), "version", "missing before functions"},
		{"functions first", `{"functions":[],"format":"redmagic-cfg","version":1,"binary":{}}`, "", "no format member before functions"},
		{"unknown member", replace(`"binary":`, `"extra":1,"binary":`), "", `unknown member "extra"`},
		{"unknown function field", replace(`"noreturn":true`, `"noreturn":true,"color":"red"`), "functions[1]", "unknown field"},
		{"function start>end", replace(`"start":4096,"end":4160`, `"start":4160,"end":4096`), "functions[0]", "start 0x1040 > end 0x1000"},
		{"part start>end", replace(`"parts":[{"start":36864,"end":36880}]`, `"parts":[{"start":36880,"end":36864}]`), "functions[0].parts[0]", "start 0x9010 > end 0x9000"},
		{"block start>end", replace(`{"start":4096,"end":4112,"insts":4`, `{"start":4096,"end":4000,"insts":4`), "functions[0].blocks[0]", "start 0x1000 > end 0xfa0"},
		{"negative insts", replace(`"insts":4`, `"insts":-4`), "functions[0].blocks[0].insts", "negative"},
		{"last outside", replace(`"last":4108`, `"last":4112`), "functions[0].blocks[0].last", "outside the block"},
		{"blocks out of order", replace(`{"start":4112,"end":4128`, `{"start":4096,"end":4128`), "functions[0].blocks[1].start", "blocks out of order"},
		{"functions out of order", replace(`"start":12288,"end":12289`, `"start":8,"end":12289`), "functions[2].start", "functions out of order"},
		{"bad edge kind", replace(`"kind":"cond"`, `"kind":"maybe"`), "functions[0].blocks[0].succs[0].kind", `unknown edge kind "maybe"`},
		{"return with target", replace(`{"kind":"return"}`, `{"kind":"return","target":5}`), "functions[2].blocks[0].succs[0].target", "return edge with a target"},
		{"bad table kind", replace(`"kind":"computed-goto"`, `"kind":"jump-table"`), "functions[0].indirect_jumps[0].kind", "unknown table kind"},
		{"targets unsorted", replace(`"targets":[4144,4152]`, `"targets":[4152,4144]`), "functions[0].indirect_jumps[0].targets", "not ascending"},
		{"negative address", replace(`"start":8192`, `"start":-8192`), "functions[1]", "cannot unmarshal"},
		{"address too big", replace(`"start":8192`, `"start":18446744073709551616`), "functions[1]", "cannot unmarshal"},
		{"truncated", good[:len(good)/2], "", "unexpected EOF"},
		{"trailing data", good + "{}", "", "trailing data"},
		{"trailing garbage", good + "x", "", "invalid character"},
		{"missing functions", `{"format":"redmagic-cfg","version":1,"binary":{}}`, "functions", "missing"},
		{"missing binary", `{"format":"redmagic-cfg","version":1,"functions":[]}`, "binary", "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := ReadJSON(strings.NewReader(tt.doc))
			require.Error(t, err)
			assert.Nil(t, g)
			assert.Contains(t, err.Error(), tt.msg)
			assert.NotContains(t, err.Error(), "\n")
			var fe *FormatError
			if errors.As(err, &fe) {
				assert.Equal(t, tt.field, fe.Field)
			} else {
				assert.Empty(t, tt.field, "want a *FormatError, got %T: %v", err, err)
			}
		})
	}
}

func TestReadJSONAcceptsMemberOrder(t *testing.T) {
	// Any JSON writer may reorder members inside objects; only format and
	// version must precede functions.
	doc := `{"version":1,"format":"redmagic-cfg","functions":[{"end":2,"start":1,"blocks":[{"succs":[{"target":1,"kind":"jump"}],"insts":1,"end":2,"start":1}]}],"binary":{"build_id":"aa","path":"p"}}`
	g, err := ReadJSON(strings.NewReader(doc))
	require.NoError(t, err)
	assert.Equal(t, &cfg.Graph{Path: "p", BuildID: "aa", Functions: []*cfg.Function{{
		Start: 1, End: 2, Blocks: []*cfg.Block{{Start: 1, End: 2, Insts: 1, Succs: []cfg.Edge{{Kind: cfg.EdgeJump, Target: 1}}}},
	}}}, g)
}

type failWriter struct{ after int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.after -= len(p); w.after < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestWriteJSONReportsWriteErrors(t *testing.T) {
	g := synthGraph(500, 20000, 3)
	for _, after := range []int{0, 70 << 10, 300 << 10} {
		err := WriteJSON(&failWriter{after: after}, g)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "disk full")
	}
}

func FuzzReadJSON(f *testing.F) {
	f.Add(writeJSON(f, smallGraph()))
	f.Add(writeJSON(f, &cfg.Graph{}))
	f.Add(writeJSON(f, synthGraph(3, 20, 4)))
	f.Add([]byte(`{"format":"redmagic-cfg","version":1,"binary":{},"functions":[{"start":1,"end":0}]}`))
	f.Add([]byte(`{"format":"redmagic-cfg","version":1,"binary":{},"functions":[{"start":1,"end":9,"blocks":[{"start":1,"end":3,"insts":1,"succs":[{"kind":"return"}]}],"indirect_jumps":[{"addr":2,"kind":"none"}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := ReadJSON(bytes.NewReader(data))
		if err != nil {
			return
		}
		// Whatever ReadJSON accepts re-encodes to a document it reads back
		// to the same bytes: the checks and the writer agree on the schema.
		enc := writeJSON(t, g)
		g2, err := ReadJSON(bytes.NewReader(enc))
		require.NoError(t, err)
		require.Equal(t, enc, writeJSON(t, g2))
	})
}

// pythonSized is the size of python3.11's whole graph: ~30k functions and
// ~500k blocks.
func pythonSized() *cfg.Graph { return synthGraph(30000, 500000, 42) }

func BenchmarkWriteJSON(b *testing.B) {
	g := pythonSized()
	st := g.Stats()
	b.ReportMetric(float64(st.Blocks), "blocks")
	var n int64
	for b.Loop() {
		cw := &countWriter{}
		if err := WriteJSON(cw, g); err != nil {
			b.Fatal(err)
		}
		n = cw.n
	}
	b.SetBytes(n)
}

func BenchmarkReadJSON(b *testing.B) {
	enc := writeJSON(b, pythonSized())
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		if _, err := ReadJSON(bytes.NewReader(enc)); err != nil {
			b.Fatal(err)
		}
	}
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }
