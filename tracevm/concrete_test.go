package tracevm

import (
	"os"
	"runtime"
	"testing"
	"unsafe"

	"github.com/redmagic-patch/redmagic-patch/internal/x86dec"
	"github.com/redmagic-patch/redmagic-patch/internal/x86enc"
	"github.com/stretchr/testify/require"
)

// stableCase runs stableLoads over ops decoded from code (hex, or "call"
// for a native call returning ret) with %rbx and %r12 at the head pointing
// at words; the close changes the registers in varying.
type stableCase struct {
	name    string
	code    []string
	varying []x86enc.Reg
	ret     uint64 // what each call returned (0: not known)
	guard   int    // with a guard at this op that the concrete run takes, else -1
	want    map[int]bool
}

// TestStableLoads: a load is a candidate when the concrete run from the
// head follows the recorded path to it and nothing it rests on varies from
// one iteration to the next: not a register the close changes, not memory
// the iteration leaves with another value (even where it writes it past
// the point the run leaves the recorded path), not what a call with a
// varying argument returned; a slot written and restored within the
// iteration (a spill) is not varying.
func TestStableLoads(t *testing.T) {
	obj := heapWords(8)  // an object: a class pointer, a field
	cls := heapWords(8)  // its class: a kind
	slot := heapWords(8) // a loop counter, a spill
	obj[0] = uint64(uintptr(unsafe.Pointer(&cls[0])))
	obj[1] = 7
	cls[0] = 3
	slot[0] = 100
	slot[1] = 5 // what the last iteration spilled
	defer runtime.KeepAlive(obj)
	defer runtime.KeepAlive(cls)
	defer runtime.KeepAlive(slot)
	const (
		loadCls    = "488b03"     // mov (%rbx),%rax
		loadKind   = "488b08"     // mov (%rax),%rcx
		loadField  = "488b5308"   // mov 0x8(%rbx),%rdx
		loadCount  = "498b3424"   // mov (%r12),%rsi
		incCount   = "4883c601"   // add $0x1,%rsi
		storeCount = "49893424"   // mov %rsi,(%r12)
		spill      = "49897c2408" // mov %rdi,0x8(%r12)
		restore    = "498b7c2408" // mov 0x8(%r12),%rdi
		reload     = "498b442408" // mov 0x8(%r12),%rax
		fromRet    = "488b00"     // mov (%rax),%rax
		movRDIRBX  = "4889df"     // mov %rbx,%rdi
		movRDIRSI  = "4889f7"     // mov %rsi,%rdi
		cmpRCX3    = "4883f903"   // cmp $0x3,%rcx
		cmpRCX4    = "4883f904"   // cmp $0x4,%rcx
	)
	objAddr := uint64(uintptr(unsafe.Pointer(&obj[0])))
	for _, tc := range []stableCase{
		{name: "a chain from an invariant pointer", code: []string{loadCls, loadKind, loadField}, guard: -1,
			want: map[int]bool{0: true, 1: true, 2: true}},
		{name: "a pointer the close changes", code: []string{loadCls, loadKind}, varying: []x86enc.Reg{x86enc.RBX}, guard: -1,
			want: map[int]bool{}},
		{name: "a counter the iteration changes", code: []string{loadCount, incCount, storeCount}, guard: -1,
			want: map[int]bool{}},
		{name: "a spill written back", code: []string{spill, movRDIRBX, restore, reload}, guard: -1,
			want: map[int]bool{2: true, 3: true}},
		{name: "a spill of a value the close changes", code: []string{spill, movRDIRBX, restore, reload}, varying: []x86enc.Reg{x86enc.RDI}, guard: -1,
			want: map[int]bool{}},
		{name: "a call's result", code: []string{movRDIRBX, "call", fromRet}, ret: objAddr, guard: -1,
			want: map[int]bool{2: true}},
		{name: "a call of a varying argument", code: []string{loadCount, incCount, storeCount, movRDIRSI, "call", fromRet}, ret: objAddr, guard: -1,
			want: map[int]bool{}},
		{name: "a call's result not logged", code: []string{movRDIRBX, "call", fromRet}, guard: -1,
			want: map[int]bool{}},
		{name: "a call after another", code: []string{movRDIRBX, "call", movRDIRBX, "call", fromRet}, ret: objAddr, guard: -1,
			want: map[int]bool{4: true}},
		{name: "the path the recording took", code: []string{loadCls, loadKind, cmpRCX3, loadField}, guard: 3,
			want: map[int]bool{0: true, 1: true, 4: true}},
		{name: "another path: the run stops", code: []string{loadCls, loadKind, cmpRCX4, loadField}, guard: 3,
			want: map[int]bool{0: true, 1: true}},
		{name: "a counter updated past where the run leaves the path", code: []string{loadCls, loadKind, loadCount, cmpRCX4, incCount, storeCount}, guard: 4,
			want: map[int]bool{0: true, 1: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops, insts := decodeOps(t, tc.code)
			for i := range ops {
				if ops[i].kind == opCall {
					ops[i].logged, ops[i].retKnown, ops[i].ret = true, tc.ret != 0, tc.ret
				}
			}
			if tc.guard >= 0 {
				// jne past the compare: the exit is taken when the
				// kind is not the one compared with.
				g := op{kind: opGuard, addr: ops[tc.guard-1].addr + 4, cond: x86enc.NE, exit: 0x9999}
				ops = append(ops[:tc.guard:tc.guard], append([]op{g}, ops[tc.guard:]...)...)
				insts = append(insts[:tc.guard:tc.guard], append([]*x86dec.Inst{nil}, insts[tc.guard:]...)...)
			}
			ops = append(ops, op{kind: opClose, addr: 0x8000})
			insts = append(insts, nil)
			var head, close [16]uint64
			head[x86enc.RBX] = objAddr
			head[x86enc.R12] = uint64(uintptr(unsafe.Pointer(&slot[0])))
			head[x86enc.RDI] = 5
			close = head
			for _, r := range tc.varying {
				close[r] += 64
			}
			got := stableLoads(ops, insts, &head, &close, newMemView(os.Getpid()), nil)
			gotOps := map[int]bool{}
			for i := range got {
				gotOps[i] = true
			}
			require.Equal(t, tc.want, gotOps)
		})
	}
}
