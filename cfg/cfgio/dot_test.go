package cfgio

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"unicode"

	"github.com/redmagic-patch/redmagic-patch/cfg"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dotGraph is what parseDOT learnt of a document.
type dotGraph struct {
	nodes    map[string]map[string]string // node ID -> attributes
	edges    []dotEdge
	clusters []string
}

type dotEdge struct {
	from, to string
	attrs    map[string]string
}

// parseDOT checks src against the DOT grammar (graphviz.org/doc/info/lang.html)
// for the subset WriteDOT may use: a digraph of node, edge, attribute and
// ID=ID statements and nested subgraphs, with identifiers, numerals and
// quoted strings as IDs. It stands in for `dot` on machines without
// Graphviz.
func parseDOT(src string) (*dotGraph, error) {
	toks, err := lexDOT(src)
	if err != nil {
		return nil, err
	}
	p := &dotParser{toks: toks, g: &dotGraph{nodes: map[string]map[string]string{}}}
	if err := p.graph(); err != nil {
		return nil, err
	}
	return p.g, nil
}

type dotTok struct {
	kind byte // 'i' identifier/numeral, 'q' quoted string, else the punctuation itself ('-' for "->")
	text string
}

func lexDOT(s string) ([]dotTok, error) {
	var toks []dotTok
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case strings.ContainsRune("{}[];,=", rune(c)):
			toks = append(toks, dotTok{c, string(c)})
			i++
		case strings.HasPrefix(s[i:], "->"):
			toks = append(toks, dotTok{'-', "->"})
			i += 2
		case c == '"':
			var b strings.Builder
			i++
			for {
				if i >= len(s) {
					return nil, fmt.Errorf("unterminated string")
				}
				if s[i] == '\\' && i+1 < len(s) {
					// An escaped quote ends nothing; other escapes
					// (\\, \l, \n) are label syntax, kept as written.
					if s[i+1] == '"' {
						b.WriteByte('"')
					} else {
						b.WriteString(s[i : i+2])
					}
					i += 2
					continue
				}
				if s[i] == '"' {
					i++
					break
				}
				b.WriteByte(s[i])
				i++
			}
			toks = append(toks, dotTok{'q', b.String()})
		case c == '_' || unicode.IsLetter(rune(c)) || unicode.IsDigit(rune(c)) || c == '.':
			j := i
			for j < len(s) && (s[j] == '_' || s[j] == '.' || unicode.IsLetter(rune(s[j])) || unicode.IsDigit(rune(s[j]))) {
				j++
			}
			toks = append(toks, dotTok{'i', s[i:j]})
			i = j
		default:
			return nil, fmt.Errorf("unexpected character %q at offset %d", c, i)
		}
	}
	return toks, nil
}

type dotParser struct {
	toks []dotTok
	pos  int
	g    *dotGraph
}

func (p *dotParser) peek() dotTok {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return dotTok{}
}

func (p *dotParser) next() dotTok { t := p.peek(); p.pos++; return t }

func (p *dotParser) expect(kind byte) (dotTok, error) {
	t := p.next()
	if t.kind != kind {
		return t, fmt.Errorf("token %d: want %q, got %q", p.pos-1, kind, t.text)
	}
	return t, nil
}

func (p *dotParser) isID() bool { k := p.peek().kind; return k == 'i' || k == 'q' }

func (p *dotParser) graph() error {
	if t := p.next(); t.kind != 'i' || t.text != "digraph" {
		return fmt.Errorf("want digraph, got %q", t.text)
	}
	if p.isID() {
		p.next()
	}
	if err := p.block(); err != nil {
		return err
	}
	if p.pos != len(p.toks) {
		return fmt.Errorf("trailing tokens after the graph")
	}
	return nil
}

func (p *dotParser) block() error {
	if _, err := p.expect('{'); err != nil {
		return err
	}
	for p.peek().kind != '}' {
		if p.pos >= len(p.toks) {
			return fmt.Errorf("unbalanced braces")
		}
		if err := p.stmt(); err != nil {
			return err
		}
		if p.peek().kind == ';' {
			p.next()
		}
	}
	p.next()
	return nil
}

func (p *dotParser) attrs() (map[string]string, error) {
	m := map[string]string{}
	for p.peek().kind == '[' {
		p.next()
		for p.peek().kind != ']' {
			if !p.isID() {
				return nil, fmt.Errorf("token %d: attribute name expected, got %q", p.pos, p.peek().text)
			}
			k := p.next().text
			if _, err := p.expect('='); err != nil {
				return nil, err
			}
			if !p.isID() {
				return nil, fmt.Errorf("token %d: attribute value expected", p.pos)
			}
			m[k] = p.next().text
			if k := p.peek().kind; k == ',' || k == ';' {
				p.next()
			}
		}
		p.next()
	}
	return m, nil
}

func (p *dotParser) stmt() error {
	t := p.peek()
	switch {
	case t.kind == 'i' && t.text == "subgraph":
		p.next()
		if p.isID() {
			p.g.clusters = append(p.g.clusters, p.next().text)
		}
		return p.block()
	case t.kind == '{':
		return p.block()
	case t.kind == 'i' && (t.text == "graph" || t.text == "node" || t.text == "edge"):
		p.next()
		_, err := p.attrs()
		return err
	case p.isID():
		id := p.next().text
		switch p.peek().kind {
		case '=':
			p.next()
			if !p.isID() {
				return fmt.Errorf("token %d: value expected after =", p.pos)
			}
			p.next()
			return nil
		case '-':
			e := dotEdge{from: id}
			for p.peek().kind == '-' {
				p.next()
				if !p.isID() {
					return fmt.Errorf("token %d: edge target expected", p.pos)
				}
				e.to = p.next().text
			}
			var err error
			e.attrs, err = p.attrs()
			p.g.edges = append(p.g.edges, e)
			return err
		default:
			a, err := p.attrs()
			if err != nil {
				return err
			}
			if p.g.nodes[id] == nil {
				p.g.nodes[id] = map[string]string{}
			}
			for k, v := range a {
				p.g.nodes[id][k] = v
			}
			return nil
		}
	}
	return fmt.Errorf("token %d: statement expected, got %q", p.pos, t.text)
}

func TestParseDOTRejects(t *testing.T) {
	// The checker must be able to fail.
	for _, bad := range []string{
		`digraph { "a" -> "b" `,
		`digraph { "a\" -> "b" }`, // the quote after a\ is escaped
		`digraph { "a [label="x"]; }`,
		`digraph { a -> ; }`,
		`digraph { a [label] }`,
		`graph { a }`,
		`digraph { a } }`,
	} {
		_, err := parseDOT(bad)
		assert.Error(t, err, bad)
	}
	g, err := parseDOT(`digraph { "a\\" -> "b" [label="x\"y"] }`)
	require.NoError(t, err)
	assert.Equal(t, []dotEdge{{`a\\`, "b", map[string]string{"label": `x"y`}}}, g.edges)
}

func writeDOT(t *testing.T, g *cfg.Graph, opts DOTOptions) string {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, WriteDOT(&buf, g, opts))
	return buf.String()
}

// graphviz runs a Graphviz tool on src when it is installed, and fails the
// test if it reports an error.
func graphviz(t *testing.T, src string, tool string, args ...string) {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		t.Logf("%s not installed: checked with parseDOT only", tool)
		return
	}
	cmd := exec.Command(path, args...)
	cmd.Stdin = strings.NewReader(src)
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s: %s", tool, msg)
}

// checkDOT validates out with parseDOT and Graphviz's syntax checker (nop;
// dot's layout is too slow for whole binaries), then checks it against g:
// a node per block, a cluster per function, an edge per successor, every
// edge between declared nodes.
func checkDOT(t *testing.T, g *cfg.Graph, out string) *dotGraph {
	t.Helper()
	dg, err := parseDOT(out)
	require.NoError(t, err)
	graphviz(t, out, "nop", "-p")
	var blocks, edges int
	for _, f := range g.Functions {
		blocks += len(f.Blocks)
		for _, b := range f.Blocks {
			for _, e := range b.Succs {
				if e.Target != 0 || e.Kind == cfg.EdgeReturn || e.Kind == cfg.EdgeUnresolved || e.Kind == cfg.EdgeCall {
					edges++
				}
			}
			if _, ok := dg.nodes[fmt.Sprintf("b%#x", b.Start)]; !ok {
				t.Errorf("no node for block %#x", b.Start)
			}
		}
	}
	assert.Len(t, dg.clusters, len(g.Functions))
	assert.Len(t, dg.edges, edges)
	for _, e := range dg.edges {
		// Map lookups, not assert.Contains: that scans the map per call.
		_, okFrom := dg.nodes[e.from]
		_, okTo := dg.nodes[e.to]
		if !okFrom || !okTo {
			t.Errorf("edge %s -> %s between undeclared nodes", e.from, e.to)
		}
	}
	nb := 0
	for id := range dg.nodes {
		if strings.HasPrefix(id, "b0x") {
			nb++
		}
	}
	assert.Equal(t, blocks, nb)
	return dg
}

// TestWriteDOT checks validity, styles and determinism on a graph whose
// path and disassembly need escaping.
func TestWriteDOT(t *testing.T) {
	g := smallGraph()
	g.Path = `C:\odd "path"\`
	disasm := func(b *cfg.Block) []string {
		return []string{fmt.Sprintf(`mov "%#x", %%rax \ weird`, b.Start), "ret\nmultiline"}
	}
	for _, opts := range []DOTOptions{{}, {Disasm: disasm}} {
		out := writeDOT(t, g, opts)
		dg := checkDOT(t, g, out)
		graphviz(t, out, "dot", "-Tsvg", "-o", "/dev/null")
		assert.Equal(t, out, writeDOT(t, shuffled(g), opts), "deterministic whatever the stored order")

		// Styles per kind, on edges of the hand-built main function.
		style := func(from, to uint64) map[string]string {
			for _, e := range dg.edges {
				if e.from == fmt.Sprintf("b%#x", from) && strings.HasSuffix(e.to, fmt.Sprintf("%#x", to)) {
					return e.attrs
				}
			}
			t.Fatalf("no edge %#x -> %#x", from, to)
			return nil
		}
		assert.Equal(t, "green", style(0x1000, 0x1020)["color"], "cond taken")
		assert.Equal(t, "red", style(0x1000, 0x1010)["color"], "cond fallthrough")
		assert.Empty(t, style(0x1010, 0x1020)["color"], "fallthrough after a call")
		assert.Equal(t, "dashed", style(0x1010, 0x2000)["style"], "call")
		assert.Equal(t, "blue", style(0x1020, 0x1030)["color"], "indirect")
		assert.Equal(t, "blue", style(0x1020, 0x1038)["color"], "indirect")
		// The callee is in the graph, so the call lands on its entry block.
		assert.Contains(t, dg.nodes, "b0x2000")
		if opts.Disasm != nil {
			assert.Contains(t, dg.nodes["b0x1000"]["label"], `mov "0x1000", %rax \\ weird\lret\lmultiline\l`)
		}
	}
}

func TestWriteDOTLua(t *testing.T) {
	lua := realLua(t)
	// The function with the most indirect jumps (luaV_execute's dispatch),
	// and the biggest one small enough for dot to lay out in a moment.
	var dispatch, small *cfg.Function
	for _, f := range lua.Functions {
		if dispatch == nil || len(f.Indirect) > len(dispatch.Indirect) || len(f.Indirect) == len(dispatch.Indirect) && len(f.Blocks) > len(dispatch.Blocks) {
			dispatch = f
		}
		if len(f.Blocks) <= 60 && (small == nil || len(f.Blocks) > len(small.Blocks)) {
			small = f
		}
	}
	require.NotNil(t, dispatch)
	require.NotNil(t, small)
	for _, f := range []*cfg.Function{dispatch, small} {
		one := &cfg.Graph{Path: lua.Path, BuildID: lua.BuildID, Functions: []*cfg.Function{f}}
		out := writeDOT(t, one, DOTOptions{})
		dg := checkDOT(t, one, out)
		// Targets outside the function appear as external nodes.
		for _, e := range dg.edges {
			if strings.HasPrefix(e.to, "x0x") {
				assert.Equal(t, "ellipse", dg.nodes[e.to]["shape"])
			}
		}
		if f == small {
			graphviz(t, out, "dot", "-Tsvg", "-o", "/dev/null")
		}
	}
	checkDOT(t, lua, writeDOT(t, lua, DOTOptions{}))
}
