/*
 * rm_internal.h: declarations shared by the runtime's C files (rm_init.c,
 * rm_fast.c, rm_api_entry.S through the constants) and its Go side (the
 * stats snapshot and the header validator used by tests and fuzzing).
 *
 * Global site numbering: object k's sites are numbered base_k + i, i being
 * the index the object's trampolines pass. Counters are keyed by
 * (global site, id).
 */
#ifndef RM_INTERNAL_H
#define RM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "include/redmagic_patch.h"

#define RM_HIDDEN __attribute__((visibility("hidden")))

/* Each registered object gets its own hit function and API stubs (they add
 * the object's site base), so the number of patched objects is bounded. The
 * assembly stubs in rm_api_entry.S are generated for this many objects. */
#define RM_MAX_OBJECTS 8
#define RM_MAX_SITES_PER_OBJECT (1u << 20)
#define RM_MAX_SITES (1u << 24)
#define RM_MAX_SITE_SIZE 4096u

#define RM_HOT_DEFAULT 1000
/* Sampled back-edges call the runtime once in about threshold/16 hits, at
 * most once in RM_SAMPLE_MAX (jittered, so that a loop nest's periodic
 * pattern of hits cannot alias with it), and at every hit while a trace
 * of the site is being entered; RM_FULL_MISSES full-rate hits that
 * enter no trace put the site back to sampling. */
#define RM_SAMPLE_MAX 64
#define RM_FULL_MISSES 4096
/* The JIT (its Go runtime and first reading of the program: 10-20 ms) is
 * loaded only in a process that has run this long, so that a short
 * program never pays for it: REDMAGIC_JIT_DELAY, in milliseconds. */
#define RM_JIT_DELAY_MS 200
/* ... but a quarter of it once one loop has run this many iterations
 * (counted every 2^RM_JIT_RECHECK_LOG2): a loop that fast has a short body,
 * where a trace gains most for the least recording and compiling, and a
 * program that runs it for long gets the JIT's start-up back soonest (Lua's
 * numeric loops get there in 20-30 ms: 1.6x -> 1.8x on a 0.8 s program).
 * Not sooner: loaded within the first 50 ms, the JIT's start (5-10 ms of
 * the program's time, most of it the loading thread's page faults and
 * first recordings) was 7-15% of programs that ended soon after.
 * REDMAGIC_JIT_EAGER, 0: never. */
#define RM_JIT_EAGER_HITS (1ull << 20)
/* ... and only while hot loops run this many back-edges a second
 * (REDMAGIC_JIT_RATE; 0: at any rate), measured over windows of 10-200 ms.
 * Once started, the JIT costs the rest of the run whatever it traces (its
 * Go runtime's threads and heap, the C library's malloc on its locked
 * path, recordings that come to nothing: 0-4% against the JIT off on six
 * object-oriented programs), and only loops with short bodies have given
 * that back: over the benchmark harness's 63 Lua and Python
 * programs, every one the JIT made 3% faster or more had windows of 19-135
 * million back-edges a second, while those whose windows stayed below 10
 * million (object-oriented programs: long bodies of calls and allocations,
 * recursion) gained nothing and ran at 0.98x with it. HotSpot decays its
 * counters for the same reason: what it compiles must be hot per unit of
 * time, not only in total. */
#define RM_JIT_RATE 10000000ull
#define RM_JIT_RATE_MIN_NS 10000000ull
/* A window older than this is judged and a new one begun. */
#define RM_JIT_RATE_MAX_NS 200000000ull
/* A trace must run a loop at 97% of the interpreter's cost or less. */
#define RM_GOV_KEEP_PCT 97
/* Quiet mode: entered after RM_GOV_QUIET_DROPS traces were dropped and
 * none kept; the entries are re-armed after RM_GOV_QUIET_NS (or
 * REDMAGIC_GOVERNOR_QUIET), then twice
 * as long each time, and go quiet again after RM_GOV_QUIET_HITS hits of
 * dropped loops with still no trace kept. */
#define RM_GOV_QUIET_DROPS 2
#define RM_GOV_QUIET_NS 1000000000ull
#define RM_GOV_QUIET_HITS 100000

/* ------------------------------------------------------------------------ */
/* The runtime (libredmagic.so, C) and the JIT (libredmagic-jit.so, Go).
 *
 * The runtime is all a patched binary loads: counting costs no Go runtime,
 * no thread and no heap. At the first hot loop (with the JIT on) it
 * dlopen()s the JIT library from its own directory and calls its
 * rm_jit_start; neither library links against the other, so everything
 * they share passes through the two tables below. */

#define RM_JIT_LIBRARY "libredmagic-jit.so"
#define RM_JIT_START "rm_jit_start"
#define RM_JIT_ABI 6

/* The site of redmagic_force_jump_to_trace(id), which names none: every
 * root trace is also filed under it (tracevm's TV_ANY_SITE). */
#define RM_ANY_SITE 0xfffffffeu

/* Annotations the JIT acts on (rm_jit_ops.annotate). */
enum { RM_JIT_DO_NOT_TRACE = 1, RM_JIT_DISABLE_BRANCH = 2 };

/* An object as the JIT reads it (rm_host.object_desc). */
struct rm_jit_obj {
	const char *path;       /* the file; "" for the main program */
	const char *profile;    /* the profile it was patched with */
	uintptr_t bias;
	uint32_t base;          /* global index of site 0 */
	uint32_t nsites;
	const unsigned char *sites;
	uint32_t site_size;
};

/* What the runtime offers the JIT. */
struct rm_host {
	uint32_t abi;           /* RM_JIT_ABI */
	uint32_t on_loader;     /* the JIT starts on the runtime's loader
				   thread, not the program's (rm_jit_begin) */
	/* Fills *out for object k; -1 past the last object. */
	int (*object_desc)(uint32_t k, struct rm_jit_obj *out);
	/* Empties every trampoline inline cache (RM_SITE_IC): the JIT calls
	 * it when it unpublishes its traces (a flush). */
	void (*ic_clear)(void);
	/* The thread id of the runtime's quiet thread (0: none), which
	 * never allocates: parking the JIT's threads leaves it running. */
	const volatile int32_t *quiet_tid;
	/* The time stamp counter at the runtime's constructor: the JIT's
	 * budget is a share of the program's run time, not of its own. */
	uint64_t start_tsc;
};

/* The signal that parks the JIT's threads (tracevm's TV_PARK_SIGNAL):
 * loading leaves it unblocked in them. */
#define RM_PARK_SIGNAL_OFFSET 7

/* What the JIT gives the runtime. Called on the interpreter's stack with
 * only the general registers and flags saved, except annotate and report,
 * which the runtime calls with the vector state saved (they run Go). */
struct rm_jit_ops {
	uint64_t (*trace_lookup)(uint32_t gsite, uint64_t id);
	/* The loop's iterations in traces: root, side traces (tv.h). */
	const volatile uint64_t *(*trace_iters)(uint32_t gsite, uint64_t id);
	/* Cycles the calling thread has spent in the JIT's Go (recording,
	 * compiling): the governor leaves them out of its windows. */
	uint64_t (*jit_cycles)(void);
	/* The governor's verdict: cycles per iteration x16 in the
	 * interpreter and with the trace; drop unpublishes the trace and
	 * keeps the loop from being recorded again. */
	void (*trace_verdict)(uint32_t gsite, uint64_t id, uint32_t interp16,
			      uint32_t trace16, int drop);
	int (*retry_due)(uint32_t gsite, uint64_t id);
	uint64_t (*try_record)(uint32_t gsite, uint64_t id, uint64_t resume,
			       uint64_t reason);
	void (*annotate)(int what, uint64_t arg);
	void (*fork_prepare)(void);
	void (*fork_parent)(void);
	void (*fork_child)(void);
	/* The "jit" and "gave_up" JSON texts of the statistics (malloc'd). */
	void (*report)(char **jit, char **gave_up);
	/* The code cache's executable range: cache[0] <= a < cache[1]. */
	const volatile uint64_t *cache;
	/* Changes whenever trace_lookup or retry_due may answer anew. */
	const volatile uint64_t *generation;
	/* Parking the JIT's threads while it is idle (tracevm/park.c):
	 * park_due is cheap; park (force: even before it is due) is called
	 * with the vector state saved. */
	int (*park_due)(void);
	int (*park)(int force);
};

/* Exported by the JIT library. Returns 0 when the JIT runs; 1 when it has
 * nothing to trace; -1 with why filled when it could not start. */
typedef int (*rm_jit_start_fn)(const struct rm_host *host,
			       struct rm_jit_ops *ops, char *why,
			       size_t whylen);

/* The JIT library's view of rm_host.object_desc (rm_jit.c). */
int rm_host_object_desc(uint32_t k, struct rm_jit_obj *out);
int rm_host_on_loader(void);

/* ------------------------------------------------------------------------ */
/* State read on the fast path (rm_fast.c), written once by the constructor. */

/* A sampled back-edge site's state (rm_fast.c). Threads update it
 * without locks: a lost update only moves the next sample. */
/* Flags of sites keyed by header: their object gets the hit function that
 * reads site flags (rm_hit_keyed_<k>). */
#define RM_SITE_KEYED \
	(RM_SITE_LUA54_SJ | RM_SITE_COND | RM_SITE_OPARG_BACK)

/* The first inline-cache entry of a site with these flags: a comparison's
 * ic_id[0] is its forward countdown (icFirstWay in elfpatch/redmagic). */
#define RM_IC_FIRST_WAY(fl) (((fl) & RM_SITE_COND) ? 1 : 0)

struct rm_site_rt {
	uint32_t weight;        /* hits the running countdown stands for */
	uint32_t misses;        /* full-rate hits since a trace was entered */
	uint32_t full;          /* every hit calls: a trace may be entered */
	uint32_t ic_next;       /* the inline-cache entry to fill next */
	uint32_t backs;         /* RM_SITE_COND: back jumps sampled
				   since its forward countdown last ran out */
};

struct rm_obj_rt {
	uint32_t base;          /* global index of the object's site 0 */
	uint32_t nsites;
	const uint8_t *flags;   /* per site: enum rm_site_flags (copied) */
	const uint64_t *resume; /* per site: run-time resume address */
	unsigned char *sites;   /* the site table in memory (countdowns) */
	uint32_t site_size;
	struct rm_site_rt *srt; /* per site */
};

struct rm_global {
	struct rm_obj_rt obj[RM_MAX_OBJECTS];
	uint64_t hot_threshold; /* a (site,id) counter equal to this calls Go */
	uint32_t sample_period; /* mean hits per sample of a sampled site */
	uint64_t *overflow;     /* per global site: hits not in a table */
	uint64_t invalid_site_calls;
	uint32_t nsites_total;
	volatile uint32_t forked; /* set in a fork child: never enter Go */
	volatile uint32_t jit;    /* the tracing JIT is running: ops is set */
	uint32_t jit_wanted;      /* REDMAGIC_JIT is not 0: load it when hot */
	uint64_t start_ns;        /* CLOCK_MONOTONIC at the constructor */
	uint64_t start_tsc;       /* the time stamp counter then */
	uint64_t jit_delay_ns;    /* the JIT loads no earlier than this */
	uint64_t jit_eager;       /* ... unless a loop counts this many hits */
	uint64_t jit_rate;        /* ... and while hot loops run this many
				   * back-edges a second (0: any) */
	/* The open window of that rate (rm_load.c): since rate_ns, hot loops
	 * counted rate_hits; the fastest window judged, and the times the JIT
	 * was due but the loops too slow. Updated without a lock: a lost
	 * update only blurs an estimate. */
	uint64_t rate_ns, rate_hits;
	uint64_t rate_best, rate_refusals;
	uint32_t gov_on;          /* REDMAGIC_GOVERNOR is not 0 */
	uint32_t gov_keep_pct;    /* a trace is kept at this % of the
				   * interpreter's cost or less */
	/* Process-wide verdicts, and the quiet mode: when traces were
	 * dropped and none kept, the dispatch entries go back (no cost at
	 * all) and are re-armed later, ever less often. */
	uint32_t gov_kept, gov_dropped;
	uint64_t ic_fills;       /* inline-cache entries written */
	volatile uint32_t gov_quiet;  /* the entries are back */
	/* Lua comparison sites put back for closing no loop (rm_disarm_site),
	 * re-armed when new loops become hot: at the rearm_at'th, which
	 * doubles each time. */
	uint32_t cond_disarmed;
	uint32_t cond_new_hot, cond_rearm_at;
	uint64_t gov_quiet_hits;      /* dropped-loop hits since re-armed */
	uint64_t gov_rearm_ns;        /* the next quiet period */
	uint64_t gov_quiet_ns;        /* the first (REDMAGIC_GOVERNOR_QUIET) */
	uint64_t gov_quiets;          /* quiet periods so far */
	volatile int32_t quiet_tid;   /* the quiet thread, once started */
	uint32_t gov_measure;     /* the governor measures loops */
	volatile uint32_t jit_tried; /* the JIT library was loaded or refused */
	uint32_t jit_started;     /* its loading began (rm_jit_begin) */
	uint32_t jit_sync;        /* REDMAGIC_JIT_BACKGROUND=0: load it on
				   * the thread that found the hot loop */
	struct rm_jit_ops ops;
	/* The vector state the slow paths save (tv_xsave_probe). */
	uint64_t xsave_mask;
	uint32_t xsave_size;
	uint32_t use_xsave;
};

extern struct rm_global rm_g RM_HIDDEN;

/* ------------------------------------------------------------------------ */
/* Per-thread counter tables. */

/* One (site, id) counter. site1 = global site + 1, so 0 marks a free slot. */
struct rm_entry {
	uint64_t id;
	uint32_t site1;
	uint16_t slow;          /* the counter took the slow path */
	uint8_t wins;           /* window pairs where the trace was faster */
	uint8_t sure;           /* ... and at gov_keep_pct% or better */
	uint64_t count;
	/* The governor's sample of the loop on this thread (rm_fast.c). */
	uint64_t tsc;           /* time stamp at the open window's start */
	uint64_t base;          /* hits + trace iterations then */
	uint64_t jit0;          /* the thread's cycles in the JIT then */
	uint32_t icost;         /* best interpreter window: cycles per
				   iteration x16 (0: none yet) */
	uint8_t gov;            /* enum rm_gov */
	uint8_t rounds;         /* interpreter + trace window pairs judged */
	uint8_t retries;        /* interpreter windows spoilt by traces */
	uint8_t wshift;         /* windows are RM_GOV_WINDOW << wshift */
	uint16_t asked;         /* 0, or a recording was asked for on this
				   thread: 0x8000 | the low bits of the
				   lookup generation then (rm_hit_hot) */
	union {
		uint16_t it0;   /* interpreter window open: low bits of the
				   trace iterations when it opened */
		uint16_t pair_i; /* then: its cost (rm_c16_pack) */
	};
	uint32_t tcost;         /* best trace window, as icost */
};

/* Where a loop's measurement stands. */
enum rm_gov {
	RM_GOV_NONE = 0,        /* not sampled (yet) */
	RM_GOV_INTERP = 1,      /* interpreter window open */
	RM_GOV_MEASURED = 2,    /* icost known; waits for a trace */
	RM_GOV_WARM = 3,        /* the trace runs its first window unmeasured */
	RM_GOV_TRACE = 4,       /* trace window open */
	RM_GOV_DONE = 5,        /* judged, or cannot be */
	RM_GOV_DROPPED = 6,     /* judged here: its trace was dropped */
};

/* A table is one mapping: this header, then entries[mask + 1]. Readers
 * (statistics, thread exit) go through the header, so the pair (entries,
 * mask) they see is always consistent. */
struct rm_table {
	uint64_t mask;
	uint64_t len;           /* bytes mapped */
	struct rm_table *older; /* retired tables, unmapped at thread exit */
	uint64_t pad[5];
	struct rm_entry e[];
};

#define RM_TABLE_MIN_LOG2 10
#define RM_TABLE_MAX_LOG2 20

struct rm_thread {
	/* Hot fields, owner only. last_*: the key hit last and its entry. */
	uint64_t last_id;
	uint32_t last_site1;    /* 0: none */
	uint32_t pad;
	struct rm_entry *last_e;
	struct rm_entry *e;
	uint64_t mask;
	uint64_t used;
	uint64_t limit;         /* grow when used reaches this */
	/* Published for readers (release store after each growth). */
	struct rm_table *table;
	void *xbuf;             /* xsave area, 64-byte aligned, NULL if none */
	uint32_t in_slow;       /* nested slow path (a signal handler): skip Go */
	uint32_t registered;
	uint64_t len;           /* bytes mapped for this struct + xbuf */
	struct rm_thread *prev, *next; /* registry, under its mutex */
	uint64_t load_cycles;   /* time stamp cycles spent loading the JIT */
};

/* Defined in rm_init.c (ordinary C: may use libc and vector registers; the
 * fast path calls them only with the vector state saved). */
RM_HIDDEN void rm_thread_register(struct rm_thread *t);
/* Loads and starts the JIT once per process; returns rm_g.jit. */
RM_HIDDEN int rm_jit_load(void);
RM_HIDDEN void rm_jit_begin(void);
/* Starts fn(arg) on a detached thread with every signal blocked (so that
 * no signal meant for the program's threads is taken there); stack 0 is
 * the default size. Returns whether it started. */
RM_HIDDEN int rm_spawn_quiet(void *(*fn)(void *), void *arg, size_t stack);
RM_HIDDEN void rm_jit_fork_lock(void);
RM_HIDDEN void rm_jit_fork_unlock(int child);
/* Passes on the annotations made before the JIT was loaded (rm_fast.c). */
RM_HIDDEN void rm_jit_replay(void);
/* Whether the JIT may pay for its start now: the process has run long
 * enough (REDMAGIC_JIT_DELAY) and its hot loops iterate fast enough
 * (REDMAGIC_JIT_RATE); c: the loop's count, w: its hits since it last
 * asked (rm_load.c). */
RM_HIDDEN int rm_jit_due(uint64_t c, uint64_t w);
RM_HIDDEN int rm_std_fds_open(void);
/* CLOCK_MONOTONIC in nanoseconds, 0 if it cannot be read (rm_load.c). */
RM_HIDDEN uint64_t rm_now_ns(void);
RM_HIDDEN uint64_t rm_tsc_now(void);
/* The JIT will not run: puts the original dispatch entries back unless
 * statistics are wanted (rm_init.c). */
RM_HIDDEN void rm_step_aside(void);
/* The governor's quiet mode (rm_init.c): every object's dispatch entries
 * back to the original, and re-armed later by a thread of its own. */
RM_HIDDEN void rm_go_quiet(void);
/* Empties every inline cache of every object (rm_fast.c). */
RM_HIDDEN void rm_ic_clear(void);
/* Puts site's dispatch entry of object k back to its handler (a Lua
 * comparison that closes no loop), or every such entry back to its
 * trampoline (rm_init.c). */
RM_HIDDEN void rm_disarm_site(unsigned k, uint32_t site);
RM_HIDDEN void rm_rearm_disarmed(void);

/* Defined in rm_fast.c. */
/* rm_hit_fns[k][keyed]: object k's hit function; keyed = 1 for objects with
 * sites keyed by header (RM_SITE_KEYED). */
RM_HIDDEN extern void *const rm_hit_fns[RM_MAX_OBJECTS][2];
RM_HIDDEN void rm_unmap(void *p, uint64_t len);

/* Defined in rm_api_entry.S: rm_api_entries[k][api] is the stub of API
 * function api for object k. */
RM_HIDDEN extern void *const rm_api_entries[RM_MAX_OBJECTS][RM_API_COUNT];

/* ------------------------------------------------------------------------ */
/* Header validation (rm_init.c). Addresses are link-time unless noted. */

struct rm_seg {
	uint64_t vaddr;
	uint64_t memsz;
	uint32_t flags;         /* PF_R | PF_W | PF_X */
	uint32_t relro;         /* 1: a PT_GNU_RELRO range, not a PT_LOAD */
};

struct rm_objdesc {
	uintptr_t bias;         /* run-time address = bias + link-time address */
	const struct rm_seg *segs;
	int nsegs;
	uint64_t hdr_vaddr;     /* DT_REDMAGIC's d_ptr */
};

struct rm_objinfo {
	struct rm_patch_header *hdr;    /* run-time pointers, all validated */
	const unsigned char *sites;
	const char *strtab;
	uint32_t nsites;
	uint32_t site_size;
	uint32_t strtab_size;
};

/* Returns 0 and fills *out, or -1 with a reason (no trailing newline) in
 * why. Reads only memory inside d's segments. */
int rm_validate(const struct rm_objdesc *d, struct rm_objinfo *out,
		char *why, size_t whylen);

/* A patched object as rm_restore_dispatch needs it. */
struct rm_restore_obj {
	uintptr_t bias;
	const struct rm_seg *segs; /* its PT_LOAD and PT_GNU_RELRO headers */
	int nsegs;
	const unsigned char *sites;
	uint32_t nsites;
	uint32_t site_size;
};

/* Puts back every dispatch-table entry of o that still holds its
 * trampoline (rm_restore.c); returns how many. Safe while other threads
 * dispatch through the table: each entry changes in one store. */
uint32_t rm_restore_dispatch(const struct rm_restore_obj *o);
/* The inverse: every entry of o that holds its original gets its
 * trampoline back. */
uint32_t rm_rearm_dispatch(const struct rm_restore_obj *o);
/* Moves site i's entry of o to its original (to_orig) or back to its
 * trampoline; 1 if it moved. */
uint32_t rm_swap_site(const struct rm_restore_obj *o, uint32_t i, int to_orig);
/* Moves the entries of o's sites whose flags (per site) have a bit of any
 * (every site when flags is NULL or any 0) to their originals (to_orig)
 * or back, making each page writable once for the batch; returns how many
 * moved. */
uint32_t rm_swap_sites(const struct rm_restore_obj *o, const uint8_t *flags,
		       uint8_t any, int to_orig);

/* ------------------------------------------------------------------------ */
/* Statistics snapshot written at exit. */

struct rm_snap_obj {
	const char *path;       /* "" for the main program */
	const char *profile;
	const char *build_id;
	const char *tool_version;
	uint32_t base;
	uint32_t nsites;
};

struct rm_snap_site {
	uint64_t addr;
	const char *name;
	uint64_t overflow_hits; /* hits counted outside any table */
	uint32_t object;
	uint32_t index;
	uint32_t kind;
	uint32_t api;
	uint32_t flags;
	uint32_t pad;
};

struct rm_snap_row {
	uint64_t id;
	uint64_t count;
	uint32_t site;          /* global site */
	uint32_t slow;          /* this thread's counter took the slow path */
};

struct rm_snapshot {
	const char *out;        /* REDMAGIC_STATS: a path, or "1" for stderr */
	int64_t pid;
	uint32_t disabled;
	uint32_t forked;
	uint32_t nobjs;
	uint32_t nsites;
	struct rm_snap_obj *objs;
	struct rm_snap_site *sites; /* indexed by global site */
	struct rm_snap_row *rows;   /* may repeat a key (one row per thread) */
	uint64_t nrows;
	uint64_t threads;
	uint64_t hot_threshold;
	uint64_t invalid_site_calls;
	uint64_t dispatch_restored; /* entries rm_restore_dispatch put back */
	uint64_t inline_cache_fills;
	uint64_t governor_quiets; /* quiet periods the governor entered */
	uint64_t jit_rate_best;   /* back-edges a second, fastest window */
	uint64_t jit_rate_refusals; /* JIT due by time, loops too slow */
	/* From the JIT when it started, else NULL: JSON texts of the "jit"
	 * report object and of the "gave_up" object (reason -> count). */
	const char *jit_json;
	const char *gave_up_json;
};

/* Writes the statistics of s as one JSON line to s->out (rm_stats.c).
 * Returns 0, or -1 with why filled (no trailing newline). */
int rm_stats_write(const struct rm_snapshot *s, char *why, size_t whylen);

/* The file process pid writes its statistics to, for REDMAGIC_STATS=
 * pattern, into out (n bytes; rm_stats.c). "%p" in pattern is the process
 * id, "%%" a '%'; a relative path is taken from cwd. Without "%p" the file
 * is shared by every process that inherits the variable (*shared is set)
 * and belongs to the process owner: any other one, started below it,
 * writes to "<file>.<pid>" instead, never over its parent's report.
 * Returns 0, or -1 when the path does not fit. */
int rm_stats_target(const char *pattern, const char *cwd, int64_t pid,
		    int64_t owner, char *out, size_t n, int *shared);

#endif
