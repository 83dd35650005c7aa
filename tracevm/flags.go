package tracevm

import (
	"github.com/redmagic-patch/redmagic-patch/cfg/x86dec"
)

// flagsDeadAfter reports whether the arithmetic flags are dead after op i
// on the trace's own path: the ops that follow write them all before
// anything could read them. Native calls and annotation points kill them
// (the C ABI does not pass flags); an exit or anything unknown keeps them.
func flagsDeadAfter(ops []op, i int) bool {
	for j := i + 1; j < len(ops) && j < i+64; j++ {
		o := &ops[j]
		switch o.kind {
		case opPush, opPop, opIsTraced:
			continue
		case opCall, opClose, opLink:
			return true
		case opInsn:
			inst, err := o.decoded()
			if err != nil || inst.Special != x86dec.SpecialNone {
				return false
			}
			switch x86dec.Flags(inst) {
			case x86dec.FlagsWriteAll:
				return true
			case x86dec.FlagsNone:
				continue
			}
			return false
		default:
			return false
		}
	}
	return false
}

// decoded returns the op's instruction: the recorder's shared decoding
// when it kept one (never modified), else a fresh one.
func (o *op) decoded() (*x86dec.Inst, error) {
	if o.inst != nil {
		return o.inst, nil
	}
	inst, err := x86dec.Decode(o.code, o.addr)
	if err != nil {
		return nil, err
	}
	return &inst, nil
}
