/*
 * tv.h: the C side of the tracing machine (tracevm): the per-thread save
 * area that generated code addresses through %fs, the exit table, the
 * table of compiled traces, and the entry points the runtime calls.
 *
 * Everything generated (switch-out stub, block ends, trace exits) saves the
 * interpreter's machine state into struct tv_tls of the running thread and
 * calls tv_switch, which decides where execution continues (tls->next).
 * No byte is ever written below the interpreter's %rsp except by the
 * instructions the interpreter itself executes and by ordinary calls made
 * 128 bytes below it (past the red zone).
 */
#ifndef TV_H
#define TV_H

#include <signal.h>
#include <stdint.h>

/* Offsets into struct tv_tls used by generated code (checked by
 * _Static_assert in tv.c and by a Go test). */
#define TV_OFF_GPR 0
#define TV_OFF_FLAGS 128
#define TV_OFF_NEXT 136
#define TV_OFF_EXIT 144
#define TV_OFF_SCRATCH 152
#define TV_OFF_REF 224
#define TV_RECBUF_SIZE (256u << 10)

/* Values of tls->exit below TV_EXIT_BASE are recorder events. */
enum {
	TV_REC_START = 1,     /* recording begins at rec->pc */
	TV_REC_NEXT = 2,      /* a block ended at rec->pc */
	TV_REC_TAKEN = 3,     /* the block's conditional branch was taken */
	TV_REC_NOT_TAKEN = 4, /* ... was not taken */
	TV_EXIT_BASE = 16,    /* trace exit ids start here */
};

struct tv_tls {
	uint64_t gpr[16];     /* x86 encoding order; gpr[4] is %rsp */
	uint64_t flags;       /* %ax after lahf; seto %al */
	uint64_t next;        /* where the restore continues */
	uint64_t exit;        /* why the state was saved */
	uint64_t scratch[3];  /* guards spill %rcx/%r11 here */
	void *xbuf;           /* xsave area (64-byte aligned) or NULL */
	uint64_t rec;         /* the recording in progress (a Go handle), 0 none */
	uint64_t recbuf;      /* this thread's block buffer in the code cache */
	uint32_t in_go;       /* inside a call to Go: no nested recording */
	uint32_t pad;
	uint64_t fs_base;     /* %fs base of the thread (for operands) */
	uint64_t exits_taken; /* trace exits of this thread */
	/* A recorder event names the original address its state belongs to
	 * by a literal in its block: ref is that literal's offset from
	 * cache_lo. So a block knows where the original code resumes without
	 * Go, whether its recording is alive, abandoned or in a fork child. */
	uint64_t ref;
	uint64_t start;       /* resume address of TV_REC_START */
	/* A loop whose recording ended to mark a callee native asks for a
	 * new recording at its next hit instead of backing off. */
	uint64_t retry_id;
	uint32_t retry_gsite;
	uint32_t retry;       /* 1: retry, 2: a retired trace's (tv_retire) */
	uint32_t respec;      /* the retry now due is a retired trace's */
	uint64_t jit_cycles;  /* time stamp cycles this thread spent in Go */
};

/* One trace exit: where the original code resumes. */
struct tv_exit {
	uint64_t orig;        /* original address to resume at */
	uint64_t count;       /* times taken (racy across threads: statistics) */
	uint64_t guard;       /* RX address of the rel32 to patch, 0 none */
	uint32_t trace;       /* index of the trace it belongs to */
	uint32_t state;       /* enum tv_exit_state */
};

enum tv_exit_state {
	TV_EXIT_OPEN = 0,     /* counts; may start a side trace */
	TV_EXIT_LINKED = 1,   /* a side trace is linked into its guard */
	TV_EXIT_DEAD = 2,     /* side recording failed too often */
	TV_EXIT_RISKY = 3,    /* a root's guard on a value its recording's
				 concrete run found: when due, retires the
				 trace whatever the budget (respec.go) */
};

/* Process-wide state shared with Go. */
struct tv_global {
	uint64_t tls_off;     /* %fs offset of struct tv_tls */
	uint64_t switch_out;  /* generated stub: saves state, calls tv_switch */
	uint64_t rec_start;   /* generated stub: exit = TV_REC_START; switch out */
	uint64_t cache_lo, cache_hi; /* RX range of the code cache */
	struct tv_exit *exits;
	uint32_t nexits, cap_exits;
	uint64_t side_threshold;
	uint64_t xsave_mask;
	uint32_t xsave_size;
	uint32_t use_xsave;
	volatile uint32_t enabled;
	volatile uint32_t forked;
	/* statistics */
	uint64_t trace_entries;
	uint64_t side_exits;
	uint64_t side_starts;
	/* The JIT's budget: cycles all threads spent in Go, since start_tsc;
	 * recordings refused for being over it. */
	uint64_t jit_cycles;
	uint64_t start_tsc;
	/* What the budget is a share of the time since: the program's start
	 * when the embedding runtime knows it (tv_budget_from), else
	 * start_tsc. */
	uint64_t budget_tsc;
	uint64_t budget_refusals;
	uint64_t budget_pct;  /* 0: no budget */
	/* Of jit_cycles, those the compiler thread spent (Config.Background),
	 * which the budget charges shifted right by bg_shift (tv_setup). */
	uint64_t bg_cycles;
	uint32_t bg_shift;
	/* Called by tv_unpublish_all (a flush), so that the embedding runtime
	 * forgets the trace heads it keeps outside the trace table (its
	 * trampolines' inline caches). */
	void (*unpublish_hook)(void);
	/* Bumped whenever a lookup of a loop's trace may give a new answer:
	 * a trace published or flushed, a recording asking to be retried.
	 * The runtime remembers a loop's missed lookup with it. */
	volatile uint64_t generation;
	/* Recordings handed to the JIT's compiler thread and not yet
	 * installed (Config.Background): the Go runtime's threads are not
	 * parked while there are any, or the compile would wait for the
	 * program's next call into Go. */
	uint64_t bg_jobs;
};

/* Recordings start only while the JIT's cycles stay under budget_pct
 * percent of the program's time (since budget_tsc), past a first
 * TV_BUDGET_FREE. */
#define TV_BUDGET_FREE (20ull << 20)
/* Side recordings may spend up to this many times the root recordings'
 * share, once a kept trace has earned anything (before, the same share):
 * a root trace whose hot exits stay open is judged by the governor
 * with every exit's return to the interpreter in its cost, so the root's
 * own spending is lost unless its side traces follow (a CPython 2.7 loop
 * leaves its trace every 19 iterations for the ticker's work). */
#define TV_SIDE_SHARE 2

/* The budget's rule (tv.c), apart from the clock and the counters. */
int tv_budget_refuses(uint64_t spent, uint64_t elapsed, uint64_t pct,
		      uint64_t share, uint64_t earned);

extern struct tv_global tv_g;

/* Parking the Go runtime's threads while the JIT is idle (park.c). The
 * signal is SIGRTMIN + TV_PARK_SIGNAL_OFFSET; the runtime leaves it
 * unblocked in the threads the JIT's loading starts. */
#define TV_PARK_SIGNAL_OFFSET 7
#define TV_PARK_SIGNAL (SIGRTMIN + TV_PARK_SIGNAL_OFFSET)
struct tv_park {
	volatile char *flag;          /* glibc's __libc_single_threaded */
	uint64_t go_lo, go_hi;        /* the JIT library's Go code */
	const volatile int32_t *trusted; /* a runtime thread left running */
	int32_t self;                 /* the process id */
	volatile int32_t sig;         /* 0: parking off */
	volatile uint32_t req;        /* generation being asked for, 0 none */
	volatile uint32_t released;   /* last generation released */
	volatile uint32_t acked, busy;
	volatile uint32_t inside;     /* threads in the handler */
	uint32_t gen;
	volatile uint32_t parked;
	uint32_t set_flag;            /* parking set __libc_single_threaded */
	volatile uint32_t busy_attempt;
	uint32_t forked;
	uint32_t lost;                /* the program took the signal */
	uint64_t cycles_per_ms;       /* time stamp counter rate */
	uint64_t due_tsc, backoff_ms; /* the next attempt */
	int64_t parked_at;
	/* statistics */
	uint64_t parks, refusals, unparks, parked_ns;
};
extern struct tv_park tv_park_g;
/* Installs the handler; go_lo..go_hi is the JIT library's Go code, trusted
 * the thread id of a runtime thread that never allocates (0 none). Returns
 * 1 when parking is on. */
int tv_park_setup(uint64_t go_lo, uint64_t go_hi,
		  const volatile int32_t *trusted);
/* Whether an attempt is due now (cheap; general registers only). */
int tv_park_due(void);
/* Parks the other threads if due (force: now); the caller is a program
 * thread outside Go with its vector state saved. 1 when parked. */
int tv_park(int force);
/* Before any call into Go: releases parked threads. */
void tv_go_enter(void);
void tv_unpark(void);
void tv_park_fork_child(void);
/* The address of a C function of the library (a check of the bounds). */
uint64_t tv_park_addr(void);
int64_t tv_park_now_ns(void);

/* tv_publish also files every root trace under this site, for
 * redmagic_force_jump_to_trace(id), which names no site. */
#define TV_ANY_SITE 0xfffffffeu

/* For the embedding runtime (all callable on the interpreter's stack with
 * only the general registers and flags saved). */
uint64_t tv_trace_lookup(uint32_t gsite, uint64_t id);
/* A new trace-lookup generation (tv_global.generation). */
void tv_bump_generation(void);
/* Iterations run in the root trace of (gsite, id) and in its side traces,
 * as two adjacent counters (root, sides), or NULL. */
const volatile uint64_t *tv_trace_iters(uint32_t gsite, uint64_t id);
/* Time stamp cycles the calling thread has spent recording and compiling. */
uint64_t tv_jit_cycles(void);
uint64_t tv_rdtsc_now(void);
/* Adds the cycles since t0 (tv_rdtsc_now) to the JIT's process-wide
 * spending, for work done on the JIT's own threads. */
void tv_spent_bg(uint64_t t0);
/* The runtime's verdict on the trace of (gsite, id): cycles per loop
 * iteration (x16) in the interpreter and with the trace. A trace that does
 * not pay is dropped: unpublished, and its loop never recorded again. */
void tv_trace_verdict(uint32_t gsite, uint64_t id, uint32_t interp16,
		      uint32_t trace16, int drop);
int tv_retry_due(uint32_t gsite, uint64_t id);
void tv_retire(uint32_t gsite, uint64_t id);
uint64_t tv_try_record(uint32_t gsite, uint64_t id, uint64_t resume,
		       uint64_t reason);
int tv_thread_recording(void);
void tv_abort_stale(void);
void tv_fork_prepare(void);
void tv_fork_parent(void);
void tv_fork_child(void);
static inline int tv_in_cache(uint64_t a)
{
	return a - tv_g.cache_lo < tv_g.cache_hi - tv_g.cache_lo;
}

/* For Go. */
struct tv_tls *tv_self(void);
uint64_t tv_tls_offset(void);
void tv_setup(void);
/* The budget counts the program's time since t (a time stamp taken when
 * it started), not only the JIT's: a JIT loaded early in a short program
 * may spend no more of it than one loaded late. Ignored unless t is in
 * the past. */
void tv_budget_from(uint64_t t);
/* Whether the JIT is over its budget for a recording of share (1 a root,
 * TV_SIDE_SHARE a side one); a yes counts as a refusal. */
int tv_over_budget(uint64_t share);
/* Publishes the root trace of (gsite, id) at head. iters: its iteration
 * counters; gone: a word of the data area that the links of other loops'
 * traces into this one test, set when the governor drops it. */
int tv_publish(uint32_t gsite, uint64_t id, uint64_t head, uint64_t iters,
	       uint64_t gone);
/* What tv_trace_verdict recorded: 0 none, 1 kept, 2 dropped. */
int tv_verdict_of(uint32_t gsite, uint64_t id, uint32_t *interp16,
		  uint32_t *trace16);
void tv_unpublish_all(void);
uint64_t tv_switch_addr(void);
uint64_t tv_fs_base(void);
int tv_grow_exits(uint32_t need);

#endif
