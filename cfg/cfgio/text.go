package cfgio

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/redmagic-patch/redmagic-patch/cfg"
)

// TextOptions controls WriteText.
type TextOptions struct {
	// Disasm, when set, returns the instructions of a block, one per line,
	// to print under the block. A nil Disasm prints blocks alone.
	Disasm func(b *cfg.Block) []string
}

// WriteText writes a listing of g for people: per function a header with
// its name, range, sources and noreturn, its out-of-line parts, its blocks
// with their successors, and its indirect jumps with their table and
// number of targets. Call and tail-call targets are annotated with the
// name of the function they enter when it has one.
func WriteText(w io.Writer, g *cfg.Graph, opts TextOptions) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	ix := newAddrIndex(g)
	fmt.Fprintf(bw, "binary %s", orNone(g.Path))
	if g.BuildID != "" {
		fmt.Fprintf(bw, " build-id %s", g.BuildID)
	}
	fmt.Fprintf(bw, ", %d functions\n", len(g.Functions))
	var line []byte
	for _, f := range sortedFunctions(g.Functions) {
		fmt.Fprintf(bw, "\nfunction %s [%#x,%#x) %d blocks", orNone(f.Name), f.Start, f.End, len(f.Blocks))
		if len(f.Sources) > 0 {
			fmt.Fprintf(bw, " sources %s", strings.Join(f.Sources, ","))
		}
		if f.NoReturn {
			bw.WriteString(" noreturn")
		}
		bw.WriteByte('\n')
		for _, p := range f.Parts {
			fmt.Fprintf(bw, "  part [%#x,%#x)\n", p.Start, p.End)
		}
		for _, b := range sortedBlocks(f.Blocks) {
			line = fmt.Appendf(line[:0], "  block [%#x,%#x) %d insts", b.Start, b.End, b.Insts)
			for i, e := range b.Succs {
				if i == 0 {
					line = append(line, " ->"...)
				} else {
					line = append(line, ',')
				}
				line = append(line, ' ')
				line = append(line, e.Kind.String()...)
				if e.Target != 0 {
					line = fmt.Appendf(line, " %#x", e.Target)
					if e.Kind == cfg.EdgeCall || e.Kind == cfg.EdgeTailCall {
						if sym := ix.symbol(e.Target); sym != "" {
							line = append(line, " <"...)
							line = append(line, sym...)
							line = append(line, '>')
						}
					}
				}
			}
			line = append(line, '\n')
			bw.Write(line)
			if opts.Disasm != nil {
				for _, s := range opts.Disasm(b) {
					fmt.Fprintf(bw, "      %s\n", s)
				}
			}
		}
		for _, j := range sortedIndirect(f.Indirect) {
			fmt.Fprintf(bw, "  indirect jump %#x: %s", j.Addr, j.Kind)
			if j.Table != 0 {
				fmt.Fprintf(bw, " table %#x", j.Table)
			}
			if j.Entries != 0 {
				fmt.Fprintf(bw, " %d entries", j.Entries)
			}
			if j.BoundFrom != 0 {
				fmt.Fprintf(bw, " bounded at %#x", j.BoundFrom)
			}
			fmt.Fprintf(bw, ", %d targets\n", len(j.Targets))
		}
	}
	return bw.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "(unnamed)"
	}
	return s
}
