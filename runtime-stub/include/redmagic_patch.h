/*
 * redmagic_patch.h: the contract between a binary patched by redmagic-patch
 * and the runtime shared object it loads (libredmagic.so).
 *
 * The patcher adds to the binary a new R+W segment whose first bytes are a
 * struct rm_patch_header, and a dynamic entry DT_REDMAGIC whose d_ptr is the
 * header's link-time address. At load, the runtime's constructor walks the
 * loaded objects (dl_iterate_phdr), finds each one carrying DT_REDMAGIC,
 * checks the header and, unless REDMAGIC_DISABLE=1, writes its entry points
 * into hit_fn and api_fn[]. Everything the patched code does goes through
 * those slots, and a zero slot means "run the original code": a binary whose
 * runtime is disabled, missing or broken behaves exactly like the original.
 *
 * All addresses in these structures are link-time virtual addresses; the
 * load bias of an object is (address of the header) - header->self.
 *
 * The runtime refuses an object (one line on stderr, slots left 0) unless:
 * the header is 8-byte aligned, lies in a writable PT_LOAD segment outside
 * PT_GNU_RELRO, and self equals DT_REDMAGIC's d_ptr; magic and abi_version
 * match; header_size >= sizeof(struct rm_patch_header); every slot is 0 in
 * the file; site_size is a multiple of 8, >= sizeof(struct rm_site) and <=
 * 4096; nsites <= 2^20; sites (8-byte aligned) and strtab lie inside
 * PT_LOAD segments; strtab is non-empty and ends with a NUL; every string
 * offset is < strtab_size; every site has a known kind, api and flags, and
 * a slot of a known kind inside a PT_LOAD segment.
 * At most 8 objects per process are served.
 *
 * The patcher (Go, package elfpatch/redmagic) mirrors these layouts; a test
 * checks the offsets on both sides. The Go side's one copy of enum rm_api
 * is package runtime-stub/abi.
 */
#ifndef REDMAGIC_PATCH_H
#define REDMAGIC_PATCH_H

#include <stdint.h>

#define RM_MAGIC "RMPATCH"          /* 8 bytes with the NUL */
#define RM_ABI_VERSION 5
/* In the OS-specific range DT_LOOS..DT_HIOS, which ld.so ignores. */
#define DT_REDMAGIC 0x6d726d31

/*
 * The redmagic API, in the order of redmagic.h: index into api_fn[]. One
 * X(NAME, name) per function, name without "redmagic_": the list makes
 * both enum rm_api and the runtime's table of names.
 */
#define RM_API_LIST(X)                                                         \
	X(START, start)                                                        \
	X(BACKWARDS_BRANCH, backwards_branch)                                  \
	X(FELLTHROUGH_BRANCH, fellthrough_branch)                              \
	X(BEGIN_BRANCHABLE_FRAME, begin_branchable_frame)                      \
	X(END_BRANCHABLE_FRAME, end_branchable_frame)                          \
	X(FORCE_BEGIN_TRACE, force_begin_trace)                                \
	X(FORCE_END_TRACE, force_end_trace)                                    \
	X(FORCE_JUMP_TO_TRACE, force_jump_to_trace)                            \
	X(ENSURE_NOT_TRACED, ensure_not_traced)                                \
	X(TEMP_DISABLE, temp_disable)                                          \
	X(TEMP_ENABLE, temp_enable)                                            \
	X(DO_NOT_TRACE_FUNCTION, do_not_trace_function)                        \
	X(DISABLE_BRANCH, disable_branch)                                      \
	X(IS_TRACED, is_traced)                                                \
	X(BEGIN_MERGE_BLOCK, begin_merge_block)                                \
	X(END_MERGE_BLOCK, end_merge_block)

enum rm_api {
#define RM_API_ENUM(NAME, name) RM_API_##NAME,
	RM_API_LIST(RM_API_ENUM)
#undef RM_API_ENUM
	RM_API_COUNT
};

struct rm_patch_header {
	char magic[8];          /* RM_MAGIC */
	uint32_t abi_version;   /* RM_ABI_VERSION */
	uint32_t header_size;   /* sizeof(struct rm_patch_header) */
	/*
	 * Written by the runtime. Back-edge trampolines call
	 *   uint64_t hit(uint32_t site, uint64_t id, uint64_t aux)
	 * (SysV ABI) with the whole machine state saved around the call; 0 means
	 * skip the call. site is the index into this object's sites[]. The
	 * runtime's hit function may clobber what the SysV ABI lets a function
	 * clobber among the general registers and the flags, and preserves
	 * all vector, mask, x87 and MXCSR state, so trampolines need save only
	 * the general registers and the flags. It needs a 16-byte aligned
	 * stack and runs on it (Go included): trampolines step over the red
	 * zone first. It returns 0 to continue at the site's resume address,
	 * or an address to continue at instead (a compiled trace, the stub
	 * that starts recording) with exactly the same machine state: the
	 * trampoline restores everything and jumps there with %rsp as it was
	 * at the site.
	 */
	uint64_t hit_fn;
	/*
	 * Written by the runtime. An API call-site trampoline is entered by the
	 * interpreter's own call (or tail jump) with the API function's C
	 * arguments in place and the site index in %r11d; it jumps to
	 * api_fn[api], or to the original function when that slot is 0. The
	 * runtime's entries behave as C functions with the API's prototype
	 * (they may clobber what a C call may) and return what the defaults
	 * in redmagic.h return until there is a JIT (redmagic_is_traced: 0).
	 */
	uint64_t api_fn[RM_API_COUNT];
	uint64_t self;          /* link-time address of this header */
	uint32_t nsites;
	uint32_t site_size;     /* sizeof(struct rm_site) */
	uint64_t sites;         /* link-time address of struct rm_site[nsites] */
	uint64_t strtab;        /* link-time address of NUL-terminated strings */
	uint32_t strtab_size;
	uint32_t profile;       /* strtab offset: profile name ("cpython3.11", ...) */
	uint32_t tool_version;  /* strtab offset: version of redmagic-patch */
	uint32_t build_id;      /* strtab offset: the original's build-id, hex */
	uint64_t reserved[4];
};

enum rm_site_kind {
	RM_SITE_BACKEDGE = 1,   /* a user-level loop back-edge handler */
	RM_SITE_API_CALL = 2,   /* a call of a redmagic API function */
};

/* Site flags: how the runtime reads aux. */
enum rm_site_flags {
	/* aux is a Lua 5.4 instruction word; the site is a back-edge only when
	 * its sJ operand is negative (OP_JMP serves both directions). */
	RM_SITE_LUA54_SJ = 1u << 0,
	/* The runtime counts the site but never enters or records a trace
	 * from it (its profile's traces are not validated yet). */
	RM_SITE_NO_TRACE = 1u << 1,
	/* A back-edge whose trampoline samples: see rm_site.countdown. The
	 * patcher sets it where the handler does not read the flags it is
	 * entered with (the countdown's sub changes them), and on every call
	 * site of redmagic_backwards_branch (no inline cache there). */
	RM_SITE_SAMPLED = 1u << 2,
	/* A sampled back-edge whose trampoline first looks its loop id up in
	 * the site's inline cache (ic_id, ic_head) and enters the trace found
	 * there directly. Needs RM_SITE_SAMPLED and an id register. */
	RM_SITE_IC = 1u << 3,
	/* aux holds, in its low 32 bits, how far the site jumps back in
	 * 2-byte code units from past the instruction whose address is the
	 * id (CPython 3.11's JUMP_BACKWARD: frame->prev_instr and oparg): the
	 * loop is keyed by the header it lands at, id + 2 - 2 * oparg, so
	 * that every back jump to one header is one loop. */
	RM_SITE_OPARG_BACK = 1u << 4,
	/* A Lua 5.4 comparison or test (OP_EQ ... OP_TESTSET), which takes the
	 * OP_JMP after it inline: the site is a back-edge only when that
	 * jump, the instruction word at the id (the pc past the comparison),
	 * has a negative sJ; the loop (repeat ... until) is keyed by where it
	 * lands, id + 4 + 4 * sJ. One inline-cache entry, ic_id[1]. */
	RM_SITE_LUA54_COND_SJ = 1u << 5,
	/* A CPython 3.11 combined compare-and-jump (COMPARE_OP_INT_JUMP,
	 * _FLOAT_JUMP, _STR_JUMP), which takes the POP_JUMP_* after it
	 * inline: the id is the comparison's instruction, the jump's code
	 * unit lies 6 bytes on (past COMPARE_OP's two cache entries); a
	 * back-edge only when its opcode is POP_JUMP_BACKWARD_IF_FALSE or
	 * _IF_TRUE (175, 176); the loop (a while whose condition compares
	 * ints, floats or strings) is keyed by where it lands, id + 8 - 2 *
	 * its oparg. One inline-cache entry, ic_id[1]. */
	RM_SITE_CPY311_CMP_JUMP = 1u << 6,
};

/* Where a RM_SITE_CPY311_CMP_JUMP site finds its jump: the POP_JUMP_*
 * code unit (opcode, oparg) lies RM_CPY311_JUMP_AT bytes past the
 * comparison, and goes back when its opcode is at least
 * RM_CPY311_JUMP_BACK_MIN (POP_JUMP_BACKWARD_IF_FALSE; _IF_TRUE is 176,
 * the forward ones 114 and 115). */
#define RM_CPY311_JUMP_AT 6
#define RM_CPY311_JUMP_BACK_MIN 175

/* Comparison sites: back-edges only when the jump they take inline goes
 * back, and counted down when it goes forward (RM_COND_FORWARD_PERIOD). */
#define RM_SITE_COND (RM_SITE_LUA54_COND_SJ | RM_SITE_CPY311_CMP_JUMP)

/* Every flag above: the runtime refuses a site with any other. */
#define RM_SITE_FLAGS_KNOWN                                                   \
	(RM_SITE_LUA54_SJ | RM_SITE_NO_TRACE | RM_SITE_SAMPLED | RM_SITE_IC |  \
	 RM_SITE_OPARG_BACK | RM_SITE_LUA54_COND_SJ | RM_SITE_CPY311_CMP_JUMP)

/* A comparison site (RM_SITE_COND) has one inline-cache entry, ic_id[1],
 * compared only for a comparison whose jump goes back: its ic_id[0] counts
 * down the comparisons whose jump goes forward, which its trampoline sends
 * straight on to the handler, and below 0 it calls hit_fn, which sets it to
 * RM_COND_FORWARD_PERIOD - 1 again. A comparison site that no sampled
 * back jump reached in that time has its dispatch entry put back, so that
 * the comparisons of a program whose loops do not close there cost nothing
 * (rm_fast.c). */
#define RM_COND_FORWARD_PERIOD (1 << 16)

/* Entries of a site's inline cache of traces (RM_SITE_IC). */
#define RM_IC_WAYS 2
#define RM_IC_EMPTY 0x8000000000000000ull

struct rm_site {
	uint64_t addr;     /* the site: handler entry or call instruction */
	uint64_t resume;   /* where the original code continues */
	uint32_t kind;     /* enum rm_site_kind */
	uint32_t api;      /* enum rm_api, for RM_SITE_API_CALL */
	int32_t id_reg;    /* DWARF number of the register holding the loop id, -1 none */
	int32_t aux_reg;   /* DWARF number of the register passed as aux, -1 none */
	uint32_t name;     /* strtab offset: "JUMP_BACKWARD", "OP_FORLOOP", ... */
	uint32_t flags;    /* enum rm_site_flags */
	uint64_t trampoline; /* the site's trampoline: where the redirected
	                        dispatch or call now lands; 0 for an API call
	                        the patcher elided in place (a call that acts
	                        only while recording, replaced by a 5-byte
	                        instruction with the default's effect): the
	                        JIT's recorder alone sees it */
	/*
	 * The dispatch-table entry the patcher redirected to the trampoline, so
	 * that the runtime can put the original back where counting the site
	 * cannot pay (REDMAGIC_DISABLE=1, no JIT to feed): the site then costs
	 * nothing at all. RM_SLOT_NONE for a call's rel32 (code is never
	 * written at run time).
	 */
	uint64_t slot;      /* link-time address of the entry */
	uint64_t slot_orig; /* its original value (enum rm_slot_kind) */
	uint32_t slot_kind; /* enum rm_slot_kind */
	/*
	 * For a back-edge and a call of redmagic_backwards_branch: the stack
	 * slots of the site's function whose addresses never leave it, as
	 * offsets [lo, hi) from %rsp in its body, packed lo | hi << 16; 0
	 * when there are none or the patcher did not look (the JIT forwards
	 * values a trace stores there across calls and stores through
	 * unknown pointers).
	 */
	uint32_t frame;
	/*
	 * RM_SITE_SAMPLED back-edges: the trampoline subtracts 1 and calls
	 * hit_fn only when the result is below 0, so the runtime sees one hit
	 * in countdown + 1 and sets the next countdown itself. 0 in the file
	 * (the first hit calls).
	 */
	int64_t countdown;
	/*
	 * RM_SITE_IC back-edges: before the countdown, the trampoline
	 * compares the id register with ic_id[0], then ic_id[1], and on a
	 * match jumps to ic_head[k] with the machine state of the site (the
	 * arithmetic flags excepted: dead there). The runtime fills an entry
	 * with a trace that has passed the governor; RM_IC_EMPTY (not a
	 * canonical address, never an id) marks an empty one, and ic_head
	 * always holds an address that is safe to enter with any id: the
	 * site's resume address, or a trace head, whose first guard checks
	 * the id and leaves for the handler on a mismatch.
	 */
	uint64_t ic_id[RM_IC_WAYS];
	uint64_t ic_head[RM_IC_WAYS];
};

enum rm_slot_kind {
	RM_SLOT_NONE = 0,
	/* 8 bytes: a link-time address; in memory, plus the load bias (the
	 * entry is absolute in an ET_EXEC, RELATIVE-relocated otherwise). The
	 * patched entry holds the trampoline's address the same way. */
	RM_SLOT_ADDR64 = 1,
	/* 4 bytes: a signed offset from the table base (PIC switch tables);
	 * the patched entry holds slot_orig + trampoline - resume. */
	RM_SLOT_OFF32 = 2,
};

#endif
