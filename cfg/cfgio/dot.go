package cfgio

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/redmagic-patch/redmagic-patch/cfg"
)

// DOTOptions controls WriteDOT.
type DOTOptions struct {
	// Disasm, when set, returns the instructions of a block, one per line,
	// to print in the block's node. A nil Disasm labels blocks with their
	// address range and instruction count alone.
	Disasm func(b *cfg.Block) []string
}

// Edge styles by kind. A conditional branch's taken edge is green and its
// not-taken fallthrough red; calls are dashed; indirect edges are blue.
var dotEdgeStyle = [...]string{
	cfg.EdgeFallthrough: ``,
	cfg.EdgeJump:        ``,
	cfg.EdgeCond:        `color="green"`,
	cfg.EdgeCall:        `style="dashed"`,
	cfg.EdgeReturn:      `color="gray"`,
	cfg.EdgeTailCall:    `style="dashed,bold"`,
	cfg.EdgeIndirect:    `color="blue"`,
	cfg.EdgeUnresolved:  `color="blue" style="dotted"`,
}

// WriteDOT writes g as a Graphviz digraph: one cluster per function, one
// box per block labelled with its address range (and instructions, see
// DOTOptions), edges styled by kind. Targets outside the graph's blocks
// (callees not in g, data) become ellipses named by function when known.
// To draw a few functions, pass a graph holding only those.
func WriteDOT(w io.Writer, g *cfg.Graph, opts DOTOptions) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	ix := newAddrIndex(g)
	blocks := map[uint64]bool{}
	for _, f := range g.Functions {
		for _, b := range f.Blocks {
			blocks[b.Start] = true
		}
	}
	external := map[uint64]bool{}
	target := func(addr uint64) string {
		if blocks[addr] {
			return dotID("b", addr)
		}
		external[addr] = true
		return dotID("x", addr)
	}

	fmt.Fprintf(bw, "digraph %s {\n", dotQuote("cfg "+g.Path))
	fmt.Fprintf(bw, "  graph [label=%s labelloc=\"t\" fontname=\"monospace\"];\n", dotQuote(g.Path))
	bw.WriteString("  node [shape=\"box\" fontname=\"monospace\" fontsize=\"10\"];\n")
	bw.WriteString("  edge [fontname=\"monospace\" fontsize=\"9\"];\n")
	var edges []byte // written after the clusters so nodes are placed in their cluster first
	for _, f := range sortedFunctions(g.Functions) {
		fmt.Fprintf(bw, "  subgraph %s {\n", dotID("cluster_", f.Start))
		label := fmt.Sprintf("%s [%#x,%#x)", orNone(f.Name), f.Start, f.End)
		if f.NoReturn {
			label += " noreturn"
		}
		fmt.Fprintf(bw, "    label=%s;\n", dotQuote(label))
		needReturn, needIndirectCall := false, false
		for _, b := range sortedBlocks(f.Blocks) {
			var lbl strings.Builder
			fmt.Fprintf(&lbl, "%#x-%#x (%d insts)\\l", b.Start, b.End, b.Insts)
			if opts.Disasm != nil {
				for _, s := range opts.Disasm(b) {
					lbl.WriteString(dotEscape(s))
					lbl.WriteString(`\l`)
				}
			}
			fmt.Fprintf(bw, "    %s [label=\"%s\"];\n", dotID("b", b.Start), lbl.String())

			hasCond := slices.ContainsFunc(b.Succs, func(e cfg.Edge) bool { return e.Kind == cfg.EdgeCond })
			from := dotID("b", b.Start)
			for _, e := range b.Succs {
				var to string
				switch {
				case e.Kind == cfg.EdgeReturn:
					to, needReturn = dotID("r", f.Start), true
				case e.Kind == cfg.EdgeUnresolved:
					to = dotID("u", b.Start)
					fmt.Fprintf(bw, "    %s [shape=\"diamond\" label=\"?\" color=\"blue\"];\n", to)
				case e.Kind == cfg.EdgeCall && e.Target == 0:
					to, needIndirectCall = dotID("c", f.Start), true
				case e.Target == 0:
					continue // a kind that should have a target but has none: nothing to draw
				default:
					to = target(e.Target)
				}
				style := ""
				if int(e.Kind) < len(dotEdgeStyle) {
					style = dotEdgeStyle[e.Kind]
				}
				if e.Kind == cfg.EdgeFallthrough && hasCond {
					style = `color="red"`
				}
				edges = fmt.Appendf(edges, "  %s -> %s", from, to)
				if style != "" {
					edges = fmt.Appendf(edges, " [%s]", style)
				}
				edges = append(edges, ";\n"...)
			}
		}
		if needReturn {
			fmt.Fprintf(bw, "    %s [shape=\"plaintext\" label=\"return\"];\n", dotID("r", f.Start))
		}
		if needIndirectCall {
			fmt.Fprintf(bw, "    %s [shape=\"plaintext\" label=\"call *\"];\n", dotID("c", f.Start))
		}
		bw.WriteString("  }\n")
	}
	for _, addr := range sortedKeys(external) {
		label := fmt.Sprintf("%#x", addr)
		if sym := ix.symbol(addr); sym != "" {
			label = sym + "\\n" + label
		}
		fmt.Fprintf(bw, "  %s [shape=\"ellipse\" label=\"%s\"];\n", dotID("x", addr), dotEscape(label))
	}
	bw.Write(edges)
	bw.WriteString("}\n")
	return bw.Flush()
}

func sortedKeys(m map[uint64]bool) []uint64 {
	ks := make([]uint64, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// dotID is a quoted node or cluster ID: a prefix saying what the node is
// and an address.
func dotID(prefix string, addr uint64) string {
	return fmt.Sprintf(`"%s%#x"`, prefix, addr)
}

// dotQuote quotes s as a DOT string whose text is shown as is.
func dotQuote(s string) string { return `"` + dotEscape(s) + `"` }

// dotEscape escapes s for a DOT quoted string used as a label: quotes and
// backslashes (which would start label escapes like \l) are escaped, and
// line breaks become left-justified breaks.
func dotEscape(s string) string {
	if !strings.ContainsAny(s, "\"\\\n\r") {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\l`)
		case '\r':
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
