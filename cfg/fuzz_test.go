package cfg_test

import (
	"testing"

	"github.com/redmagic-patch/redmagic-patch/cfg"
	"github.com/redmagic-patch/redmagic-patch/internal/elfimage"
)

// FuzzRecover drives the whole path from untrusted bytes to a graph: ELF
// validation, .eh_frame, decoding, table reading. It must never panic,
// and a graph it returns must hold together.
func FuzzRecover(f *testing.F) {
	// The corpus holds a tiny gcc-built executable; larger seeds slow
	// the mutator down more than they add coverage.
	f.Fuzz(func(t *testing.T, data []byte) {
		ef, err := elfimage.NewFile(data, "fuzz")
		if err != nil {
			return
		}
		g, err := cfg.Recover(ef, cfg.Options{})
		if err != nil {
			return
		}
		for _, fn := range g.Functions {
			for _, b := range fn.Blocks {
				if b.Start >= b.End || b.Insts <= 0 {
					t.Fatalf("bad block %#x-%#x in %#x", b.Start, b.End, fn.Start)
				}
			}
		}
	})
}
