package tracevm

import (
	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
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
		case opCall, opClose, opLink, opCount:
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

// postPoint finds where a guard on register r, which op i loads, can go:
// before op k, the first op after i with the flags dead before it (a
// guard's compare kills them). The ops between must neither read nor
// write r (they ran on the value the guard has not yet checked) and only
// be plain instructions or guards on earlier flags; k must be an
// instruction or an indirect jump, so that its original code is where
// the guard's exit resumes. ok is false when there is no such place
// within a few ops.
func postPoint(ops []op, insts []*x86dec.Inst, i int, r x86enc.Reg) (k int, ok bool) {
	const reach = 16
	for j := i; j < len(ops)-1 && j < i+reach; j++ {
		if j > i {
			switch ops[j].kind {
			case opGuard:
			case opInsn:
				inst := insts[j]
				if inst == nil || inst.Special != x86dec.SpecialNone {
					return 0, false
				}
				rd, rall := reads(inst)
				w, wall := writes(inst)
				if rall || wall || (rd|w)&(1<<r) != 0 {
					return 0, false
				}
			default:
				return 0, false
			}
		}
		if !flagsDeadAfter(ops, j) {
			continue
		}
		if j > i && ops[j+1].kind != opInsn && ops[j+1].kind != opGuardTarget {
			return 0, false
		}
		return j + 1, true
	}
	return 0, false
}
