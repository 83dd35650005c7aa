/*
 * rm_fast.c: the code patched binaries call on every site hit.
 *
 * Back-edge trampolines save only the general registers and the flags, so
 * everything here is compiled for general registers only (the pragma below:
 * no SSE/AVX/x87 can be emitted) and calls nothing that could touch a vector
 * register before saving the whole vector state with xsave: memory comes
 * from raw mmap system calls, and the only calls into libc or the JIT's Go
 * happen between rm_xsave and rm_xrstor (tracevm/tv_cpu.h). Calls into the
 * JIT's C side (trace lookup, recording) go through rm_g.ops, which is set
 * before rm_g.jit and never cleared. The hot path takes no
 * lock and issues no atomic read-modify-write: counters live in a table
 * owned by the thread.
 */
#include <stddef.h>
#include <stdint.h>

#include "../rm_internal.h"

#pragma GCC target("general-regs-only")
/* Keep gcc from turning the rehash loop into memset/memcpy calls. */
#pragma GCC optimize("no-tree-loop-distribute-patterns")

/* After the pragmas: its helpers are compiled for general registers too. */
#include "tv_cpu.h"

static inline void rm_xsave(void *buf)
{
	tv_xsave_as(rm_g.xsave_mask, rm_g.use_xsave, buf);
}

static inline void rm_xrstor(void *buf)
{
	tv_xrstor_as(rm_g.xsave_mask, rm_g.use_xsave, buf);
}

/* Brackets a call into code that may touch the vector registers (libc,
 * the JIT's Go): the whole vector state saved in t's area, t marked so
 * that a nested hit (a signal handler) does not reuse the area. Returns 0
 * when t has no area or is already inside such a call. Always inlined:
 * the save must stand in the function that makes the call (a test checks
 * the code). */
static inline __attribute__((always_inline)) int
rm_slow_begin(struct rm_thread *t)
{
	if (!t || !t->xbuf || t->in_slow)
		return 0;
	t->in_slow = 1;
	rm_xsave(t->xbuf);
	return 1;
}

static inline __attribute__((always_inline)) void
rm_slow_end(struct rm_thread *t)
{
	rm_xrstor(t->xbuf);
	t->in_slow = 0;
}

_Static_assert(RM_MAX_OBJECTS == 8 && RM_API_COUNT == 16,
	       "rm_api_entry.S generates 8 x 16 stubs");
_Static_assert(sizeof(struct rm_entry) == 64, "entry layout: a cache line");
_Static_assert(sizeof(struct rm_table) == 64, "table header is a cache line");

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define NOINLINE __attribute__((noinline))
#define COLD __attribute__((noinline, cold))

struct rm_global rm_g;

/* 8 bytes of initial-exec TLS: the thread's table, NULL before its first
 * hit. Initial-exec because it is the cheapest access (one GOT load plus a
 * %fs-relative load) and the library is loaded with the program. */
static __thread struct rm_thread *rm_self __attribute__((tls_model("initial-exec")));

/* A thread whose first-hit allocation failed uses this one: its single slot
 * stays empty and the table counts as full and unable to grow, so every hit
 * goes to the insert path and from there to the per-site overflow
 * counters. */
static struct {
	struct rm_table t;
	struct rm_entry e[1];
} rm_nomem_table;
static struct rm_thread rm_nomem_thread = {
	.e = rm_nomem_table.e, .mask = 0, .used = 1, .limit = 1,
	.table = &rm_nomem_table.t,
};

RM_HIDDEN void rm_unmap(void *p, uint64_t len)
{
	tv_unmap(p, len);
}

/* ------------------------------------------------------------------------ */
/* Tables. */

/* One multiply: the site goes to bits 40-63, away from the low bits where
 * ids (pointers, pcs) differ; the product's bits 32-63 are the index. */
static inline uint64_t rm_hash(uint32_t site1, uint64_t id)
{
	return ((id ^ ((uint64_t)site1 << 40)) * 0x9e3779b97f4a7c15ull) >> 32;
}

static struct rm_table *rm_table_new(unsigned log2)
{
	uint64_t n = 1ull << log2;
	uint64_t len = sizeof(struct rm_table) + n * sizeof(struct rm_entry);
	struct rm_table *t = tv_map(len);
	if (!t)
		return NULL;
	t->mask = n - 1;
	t->len = len;
	return t;
}

/* Doubles t's table; the old one stays mapped (a statistics reader may hold
 * it) until the thread exits. Returns 0 if the table cannot grow. */
static COLD int rm_grow(struct rm_thread *t)
{
	if (t == &rm_nomem_thread || t->mask + 1 >= (1ull << RM_TABLE_MAX_LOG2))
		return 0;
	unsigned log2 = 0;
	while ((1ull << log2) < (t->mask + 1) * 2)
		log2++;
	struct rm_table *nt = rm_table_new(log2);
	if (!nt)
		return 0;
	for (uint64_t i = 0; i <= t->mask; i++) {
		const struct rm_entry *o = &t->e[i];
		if (!o->site1)
			continue;
		uint64_t j = rm_hash(o->site1, o->id) & nt->mask;
		while (nt->e[j].site1)
			j = (j + 1) & nt->mask;
		/* nt is not published yet: no order to keep. */
		nt->e[j] = *o;
	}
	nt->older = t->table;
	t->last_site1 = 0; /* last_e points into the old table */
	t->e = nt->e;
	t->mask = nt->mask;
	t->limit = (nt->mask + 1) / 2;
	__atomic_store_n(&t->table, nt, __ATOMIC_RELEASE);
	return 1;
}

/*
 * The governor: a trace must beat the interpreter or step aside. Each loop
 * is sampled on each thread that enters its trace, in pairs of windows of
 * RM_GOV_WINDOW iterations or more (rm_gov_window): first the
 * interpreter's (the trace is entered only after it, so that recording,
 * compiling and loading the JIT are over), then the trace's: hits of the
 * back-edge plus iterations inside the trace and its side traces, so
 * exits, re-entries and the interpreter's share count, and cycles spent
 * recording and compiling do not. The first trace window is not measured
 * (side traces are recorded then).
 *
 * A window is wall time: a preemption, a signal handler or the other
 * core's load in it makes either side look slower than it is, and a
 * program's phases change the cost of an iteration (fannkuch's outer loop
 * read 4829 and 3893 cycles in two windows of the same code, a trace that
 * lost by 9% was once measured winning by 10%). So the verdict is a sign
 * test over short pairs, each trace window against the interpreter window
 * just before it: the trace is kept once it was faster (or within a
 * REDMAGIC_GOVERNOR_PCT over 100) in RM_GOV_NEED pairs of at most
 * RM_GOV_PAIRS (by chance alone: 2%) and at gov_keep_pct%
 * (REDMAGIC_GOVERNOR_PCT, default 97) or better in more than half of them
 * (the median pair); it is dropped as soon as it cannot be.
 * A dropped trace's loop runs the original code at counting cost.
 */
#define RM_GOV_WINDOW 2048
/* Windows last at least about 2^RM_GOV_WINDOW_CYCLES_LOG2 cycles (half a
 * millisecond): a loop of 58 cycles an iteration had a quarter of its
 * 2,048-iteration trace windows 16% slower than the rest (an event of
 * some 17 us: a page fault costs 10 here), enough to lose the sign test
 * with a trace 9% faster. */
#define RM_GOV_WINDOW_CYCLES_LOG2 20
#define RM_GOV_WSHIFT_MAX 6

static inline uint64_t rm_gov_window(const struct rm_entry *e)
{
	return (uint64_t)RM_GOV_WINDOW << e->wshift;
}

/* The window shift for a loop whose interpreter window cost c16. */
static inline uint8_t rm_gov_wshift(uint32_t c16)
{
	uint8_t s = 0;
	/* RM_GOV_WINDOW << s iterations at c16 / 16 cycles each. */
	while (s < RM_GOV_WSHIFT_MAX &&
	       ((uint64_t)RM_GOV_WINDOW << s) * c16 / 16 <
		       (1ull << RM_GOV_WINDOW_CYCLES_LOG2))
		s++;
	return s;
}
#define RM_GOV_PAIRS 15
#define RM_GOV_NEED 12

/* A window's cost (cycles per iteration x16) in 16 bits: 12 bits of
 * mantissa, 4 of exponent (1/2048 or better). */
static inline uint16_t rm_c16_pack(uint32_t c16)
{
	unsigned e = 0;
	while (c16 >= 4096 && e < 15) {
		c16 >>= 1;
		e++;
	}
	return (uint16_t)(e << 12 | (c16 > 4095 ? 4095 : c16));
}

static inline uint32_t rm_c16_unpack(uint16_t v)
{
	return (uint32_t)(v & 4095) << (v >> 12);
}

/* Cycles the thread t has spent on the JIT rather than the program: in
 * its Go (recording, compiling) and loading it. Windows leave them out: a
 * loop sampled in the interpreter while other loops were being recorded
 * would otherwise look slower than it is, and keep traces that lose. */
static inline uint64_t rm_spent(const struct rm_thread *t)
{
	return (rm_g.jit ? rm_g.ops.jit_cycles() : 0) + t->load_cycles;
}

/* Cycles per iteration x16 of e's open window (time stamp e->tsc, JIT
 * cycles e->jit0) over n iterations, the JIT's cycles left out. */
static uint32_t rm_window_c16(const struct rm_entry *e, uint64_t n)
{
	uint64_t cyc = tv_rdtsc() - e->tsc, jit = rm_spent(rm_self) - e->jit0;
	uint64_t c16 = (cyc > jit ? cyc - jit : 0) * 16 / (n ? n : 1);
	return c16 > UINT32_MAX ? UINT32_MAX : (uint32_t)c16;
}

/* Starts a window of e at count base (hits plus trace iterations): its
 * time stamp and the thread's JIT cycles so far. */
static inline void rm_window_open(struct rm_entry *e, uint64_t base)
{
	e->tsc = tv_rdtsc();
	e->jit0 = rm_spent(rm_self);
	e->base = base;
}

/* Opens e's interpreter window at count c; it: the loop's trace
 * iteration counters. */
static COLD void rm_sample_open(struct rm_entry *e, uint64_t c,
				const volatile uint64_t *it)
{
	rm_window_open(e, c);
	e->it0 = (uint16_t)(it[0] + it[1]);
	e->gov = RM_GOV_INTERP;
}

/* Whether a count that went from old to c passed x (sampled sites count
 * in steps: see rm_hit_obj). */
static inline int rm_crossed(uint64_t old, uint64_t c, uint64_t x)
{
	return old < x && c >= x;
}

static COLD void rm_jit_try(struct rm_thread *t, uint64_t c, uint64_t w);

/* The counter e reached the hot threshold on this thread. The first time
 * in the process (with the JIT wanted) the JIT library is loaded: the Go
 * runtime starts here, not at program start. Go runs on this thread's own
 * stack (the trampoline has stepped over the red zone): switching stacks
 * would make every Go callback read /proc/self/maps. */
static COLD void rm_hot(struct rm_thread *t, struct rm_entry *e)
{
	if (rm_g.forked || !t->xbuf || t->in_slow)
		return;
	e->slow = 1;
	rm_jit_try(t, e->count, e->count);
}

/* Loads the JIT if it is wanted and its time has come (rm_jit_due: the
 * process has run REDMAGIC_JIT_DELAY, or the loop has counted c hits, and
 * the hot loops run fast; w: the loop's hits since it last came here),
 * with the vector state saved. */
static COLD void rm_jit_try(struct rm_thread *t, uint64_t c, uint64_t w)
{
	if (!rm_g.jit_wanted || rm_g.jit_started || rm_g.forked ||
	    !rm_slow_begin(t))
		return;
	if (rm_jit_due(c, w)) {
		uint64_t t0 = tv_rdtsc();
		rm_jit_begin();
		t->load_cycles += tv_rdtsc() - t0;
	}
	rm_slow_end(t);
}

/* A hot loop before the JIT runs: every 2^RM_JIT_RECHECK_LOG2 counts, the JIT
 * may load now if it was too early before. (Not at the counts where a
 * recording is due: they double, and a loop hot at once would load it
 * many times the delay late.) */
#define RM_JIT_RECHECK_LOG2 16

/* c: the count after this hit, w: what the hit added. */
static inline uint64_t rm_jit_later(uint64_t c, uint64_t w)
{
	if (rm_g.jit_wanted && !rm_g.jit_started && c > rm_g.hot_threshold &&
	    (c >> RM_JIT_RECHECK_LOG2) != ((c - w) >> RM_JIT_RECHECK_LOG2))
		rm_jit_try(rm_self, c, 1ull << RM_JIT_RECHECK_LOG2);
	return rm_g.jit;
}

static COLD void rm_count_overflow(uint32_t gsite, uint64_t w)
{
	__atomic_fetch_add(&rm_g.overflow[gsite], w, __ATOMIC_RELAXED);
}

static COLD void rm_insert(struct rm_thread *t, uint32_t gsite, uint64_t id,
			   int hot, uint64_t w)
{
	if (t->used >= t->limit && !rm_grow(t)) {
		rm_count_overflow(gsite, w);
		return;
	}
	uint32_t site1 = gsite + 1;
	uint64_t i = rm_hash(site1, id) & t->mask;
	while (t->e[i].site1)
		i = (i + 1) & t->mask;
	struct rm_entry *e = &t->e[i];
	e->id = id;
	e->count = w;
	/* Readers test site1 first: publish it last. */
	__atomic_store_n(&e->site1, site1, __ATOMIC_RELEASE);
	t->used++;
	if (hot && w >= rm_g.hot_threshold)
		rm_hot(t, e);
}

static uint64_t rm_count(uint32_t gsite, uint64_t id, int hot, uint64_t w);

/* This thread's state, mapped and registered (libc: mutex, pthread key)
 * with the vector state saved, at its first hit. */
static COLD struct rm_thread *rm_thread_init(void)
{
	struct rm_thread *t = &rm_nomem_thread;
	uint64_t head = (sizeof(struct rm_thread) + 63) & ~63ull;
	uint64_t len = (head + rm_g.xsave_size + 4095) & ~4095ull;
	struct rm_thread *nt = tv_map(len);
	struct rm_table *tab = nt ? rm_table_new(RM_TABLE_MIN_LOG2) : NULL;
	if (tab) {
		nt->len = len;
		nt->xbuf = (char *)nt + head;
		nt->e = tab->e;
		nt->mask = tab->mask;
		nt->limit = (tab->mask + 1) / 2;
		nt->table = tab;
		t = nt;
	} else if (nt) {
		rm_unmap(nt, len);
	}
	rm_self = t;
	if (rm_slow_begin(t)) {
		rm_thread_register(t);
		rm_slow_end(t);
	}
	return t;
}

static COLD uint64_t rm_first(uint32_t gsite, uint64_t id, int hot,
			      uint64_t w)
{
	rm_thread_init();
	return rm_count(gsite, id, hot, w);
}

/* Counts w hits (a sample standing for w) and returns the (site, id) count
 * of this thread: w for a new key, 0 when the key has no counter (table
 * full). */
static inline __attribute__((always_inline)) uint64_t
rm_count(uint32_t gsite, uint64_t id, int hot, uint64_t w)
{
	struct rm_thread *t = rm_self;
	if (unlikely(!t))
		return rm_first(gsite, id, hot, w);
	uint32_t site1 = gsite + 1;
	struct rm_entry *e;
	/* A loop repeats its own back-edge: most hits are the thread's last
	 * key, which skips the hash. */
	if (likely(t->last_site1 == site1 && t->last_id == id)) {
		e = t->last_e;
	} else {
		struct rm_entry *tab = t->e;
		uint64_t mask = t->mask;
		uint64_t i = rm_hash(site1, id) & mask;
		for (;;) {
			e = &tab[i];
			uint32_t s = e->site1;
			if (likely(s == site1 && e->id == id))
				break;
			if (s == 0) {
				rm_insert(t, gsite, id, hot, w);
				return w;
			}
			i = (i + 1) & mask;
		}
		t->last_site1 = site1;
		t->last_id = id;
		t->last_e = e;
	}
	/* Relaxed atomics compile to plain moves (no lock prefix); they only
	 * tell the compiler that the statistics reader may look. */
	uint64_t old = __atomic_load_n(&e->count, __ATOMIC_RELAXED);
	uint64_t c = old + w;
	__atomic_store_n(&e->count, c, __ATOMIC_RELAXED);
	if (unlikely(hot && rm_crossed(old, c, rm_g.hot_threshold)))
		rm_hot(t, e);
	return c;
}

static COLD void rm_jit_call(int what, uint64_t arg);

/* Dropped traces and none kept: once RM_GOV_QUIET_HITS hits of dropped
 * loops have gone by since the entries were last armed, they go back to
 * the original (rm_go_quiet: libc, with the vector state saved). w: the
 * hits this call stands for. */
/* Parks the JIT's threads (tracevm/park.c) while it has nothing to do:
 * the program's malloc goes back to its single-threaded path. */
static COLD void rm_park(struct rm_thread *t, int force)
{
	if (rm_g.forked || !rm_slow_begin(t))
		return;
	rm_g.ops.park(force);
	rm_slow_end(t);
}

static COLD void rm_quiet_check(uint64_t w)
{
	if (rm_g.gov_kept || rm_g.gov_dropped < RM_GOV_QUIET_DROPS ||
	    rm_g.gov_quiet || rm_g.forked)
		return;
	if (rm_g.gov_quiets &&
	    __atomic_add_fetch(&rm_g.gov_quiet_hits, w, __ATOMIC_RELAXED) <
		    RM_GOV_QUIET_HITS)
		return;
	struct rm_thread *t = rm_self;
	if (!rm_slow_begin(t))
		return;
	rm_go_quiet();
	/* Nothing for the JIT to do until the entries are re-armed. */
	if (rm_g.jit && rm_g.gov_quiet)
		rm_g.ops.park(1);
	rm_slow_end(t);
}

/*
 * Inline caches (RM_SITE_IC). A sampled site's trampoline compares the loop
 * id with the site's cached ids before its countdown and jumps straight to
 * the cached head on a match: a trace the governor kept is entered for two
 * instructions instead of a runtime call. Entries are written here only:
 * the head first, then its id; an entry is emptied by its id alone, so its
 * head always stays a safe place to enter (a trace whose first guard
 * checks the id, or the header it leads to, or the handler).
 */
static inline struct rm_site *rm_site_at(const struct rm_obj_rt *o,
					 uint32_t site)
{
	return (struct rm_site *)(o->sites + (uint64_t)site * o->site_size);
}

static COLD void rm_ic_put(const struct rm_obj_rt *o, uint32_t site,
			   uint64_t id, uint64_t head)
{
	struct rm_site *s = rm_site_at(o, site);
	int first = RM_IC_FIRST_WAY(o->flags[site]), w;
	for (w = first; w < RM_IC_WAYS; w++)
		if (__atomic_load_n(&s->ic_id[w], __ATOMIC_RELAXED) == id)
			break;
	if (w == RM_IC_WAYS)
		w = first + (int)(o->srt[site].ic_next++ % (RM_IC_WAYS - first));
	else if (__atomic_load_n(&s->ic_head[w], __ATOMIC_RELAXED) == head)
		return;
	__atomic_store_n(&s->ic_id[w], RM_IC_EMPTY, __ATOMIC_RELEASE);
	__atomic_store_n(&s->ic_head[w], head, __ATOMIC_RELEASE);
	__atomic_store_n(&s->ic_id[w], id, __ATOMIC_RELEASE);
	__atomic_fetch_add(&rm_g.ic_fills, 1, __ATOMIC_RELAXED);
}

/* Empties the entries that lead to head at global site gs; any: every
 * entry of every site. By head, not by id: the ids cached are the sites'
 * own, which for a loop keyed by its header (Lua's OP_JMP) are not the
 * loop's key. */
static void rm_ic_forget(uint32_t gs, uint64_t head, int any)
{
	for (unsigned k = 0; k < RM_MAX_OBJECTS; k++) {
		const struct rm_obj_rt *o = &rm_g.obj[k];
		for (uint32_t i = 0; i < o->nsites; i++) {
			if (!(o->flags[i] & RM_SITE_IC) ||
			    (!any && o->base + i != gs))
				continue;
			struct rm_site *s = rm_site_at(o, i);
			for (int w = RM_IC_FIRST_WAY(o->flags[i]);
			     w < RM_IC_WAYS; w++)
				if (any || __atomic_load_n(&s->ic_head[w],
							   __ATOMIC_RELAXED) == head)
					__atomic_store_n(&s->ic_id[w],
							 RM_IC_EMPTY,
							 __ATOMIC_RELEASE);
		}
	}
}

RM_HIDDEN void rm_ic_clear(void)
{
	rm_ic_forget(0, 0, 1);
}

/* Closes e's interpreter window at count c (cycles per iteration), unless
 * the loop ran in traces during it (entered from another loop's trace,
 * which links to its own): its cycles per hit were then those of the
 * whole program between rare hits. The window is then opened again, up to
 * RM_GOV_RETRIES times (that other trace may be dropped meanwhile), and
 * after that the loop goes unjudged. */
#define RM_GOV_RETRIES 8

static COLD void rm_interp_close(struct rm_entry *e, uint64_t c,
				 const volatile uint64_t *it)
{
	if ((uint16_t)(it[0] + it[1]) != e->it0) {
		if (++e->retries < RM_GOV_RETRIES) {
			e->gov = RM_GOV_NONE;
		} else {
			e->gov = RM_GOV_DONE;
		}
		return;
	}
	uint32_t c16 = rm_window_c16(e, c - e->base);
	if (c16 && (!e->icost || c16 < e->icost))
		e->icost = c16;
	e->pair_i = rm_c16_pack(c16);
	if (e->rounds == 0 && c16)
		e->wshift = rm_gov_wshift(c16);
	e->gov = c16 ? RM_GOV_MEASURED : RM_GOV_DONE;
}

/* The trace of (gs, id) is about to be entered at count c. Returns where
 * to continue: head, or 0 (the original code) when the trace was dropped
 * or waits for an interpreter window. */
static COLD uint64_t rm_govern(struct rm_entry *e, uint32_t gs, uint64_t id,
			       uint64_t c, uint64_t head)
{
	const volatile uint64_t *it = rm_g.ops.trace_iters(gs, id);
	if (it && e->gov == RM_GOV_NONE && rm_g.gov_measure) {
		/* The trace waits while the interpreter is sampled, now that
		 * recording and compiling are over. */
		rm_sample_open(e, c, it);
		return 0;
	}
	if (it && e->gov == RM_GOV_INTERP) {
		/* Its window is over (rm_hit_hot returns before coming here
		 * while it runs). */
		rm_interp_close(e, c, it);
		if (e->gov == RM_GOV_NONE)
			return 0; /* sampled again from the next back-edge */
		if (e->gov != RM_GOV_MEASURED)
			return head;
	}
	if (!it || e->gov < RM_GOV_MEASURED) {
		e->gov = RM_GOV_DONE;
		return head;
	}
	uint64_t done = c + it[0] + it[1];
	if (e->gov == RM_GOV_MEASURED) {
		/* The first trace window follows one unmeasured (side traces
		 * are recorded then); later ones follow an interpreter
		 * window, as that one followed a trace window. */
		e->base = done;
		if (e->rounds == 0) {
			e->gov = RM_GOV_WARM;
		} else {
			rm_window_open(e, done);
			e->gov = RM_GOV_TRACE;
		}
		return head;
	}
	uint64_t n = done - e->base;
	if (n < rm_gov_window(e))
		return head;
	if (e->gov == RM_GOV_WARM) {
		rm_window_open(e, done);
		e->gov = RM_GOV_TRACE;
		return head;
	}
	uint32_t t16 = rm_window_c16(e, n), i16 = rm_c16_unpack(e->pair_i);
	if (!e->tcost || t16 < e->tcost)
		e->tcost = t16;
	e->rounds++;
	uint64_t bar = rm_g.gov_keep_pct > 100 ? rm_g.gov_keep_pct : 100;
	e->wins += (uint64_t)t16 * 100 < (uint64_t)i16 * bar;
	e->sure += (uint64_t)t16 * 100 <= (uint64_t)i16 * rm_g.gov_keep_pct;
	int half = RM_GOV_PAIRS / 2 + 1;
	int keep = e->wins >= RM_GOV_NEED && e->sure >= half;
	int drop = e->rounds - e->wins > RM_GOV_PAIRS - RM_GOV_NEED ||
		   e->rounds - e->sure > RM_GOV_PAIRS - half;
	if (!keep && !drop) {
		/* Another pair: the interpreter's window first. */
		e->retries = 0;
		rm_sample_open(e, c, it);
		return 0;
	}
	rm_g.ops.trace_verdict(gs, id, e->icost, e->tcost, drop);
	e->gov = drop ? RM_GOV_DROPPED : RM_GOV_DONE;
	__atomic_fetch_add(drop ? &rm_g.gov_dropped : &rm_g.gov_kept, 1,
			   __ATOMIC_RELAXED);
	if (drop) {
		rm_ic_forget(gs, head, 0);
		rm_quiet_check(1);
	}
	return drop ? 0 : head;
}

/* Entering the trace head of (gs, id), hit for the c-th time on this
 * thread (e: its counter, NULL if not at hand): the governor looks first
 * while the loop is being measured. */
static inline uint64_t rm_enter(struct rm_entry *e, uint32_t gs, uint64_t id,
				uint64_t c, uint64_t head)
{
	if (likely(!rm_g.gov_on) || !e || e->gov >= RM_GOV_DONE)
		return head;
	return rm_govern(e, gs, id, c, head);
}

static COLD void rm_invalid_site(void)
{
	__atomic_fetch_add(&rm_g.invalid_site_calls, 1, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------------ */
/* Entry points. */

/* A hot loop without a trace asks for a recording when its count passes
 * threshold * 2^k (k = 0, 1, ...): a loop whose recordings fail backs
 * off. The count went from c - w to c. */
static inline int rm_record_due(uint64_t c, uint64_t w)
{
	uint64_t h = rm_g.hot_threshold;
	if (c < h)
		return 0;
	uint64_t q = c / h;
	uint64_t p = 1ull << (63 - __builtin_clzll(q)); /* 2^k <= q */
	return c - w < p * h;
}

/* A hot back-edge: its trace, or a recording that starts at the handler
 * with the state the trampoline restores. o, site: the back-edge site, for
 * its inline cache (o NULL: an API call), which compares ic_id, the value
 * of the site's id register (id is the loop's key); *cached is set to 1 when the
 * trace entered went into it, to -1 when its trace waits for the
 * interpreter's sample. */
static COLD uint64_t rm_hit_hot(uint32_t gs, uint64_t id, uint64_t c,
				uint64_t w, uint64_t resume,
				const struct rm_obj_rt *o, uint32_t site,
				uint64_t ic_id, int *cached)
{
	if (!rm_g.jit && !rm_jit_later(c, w))
		return 0;
	struct rm_thread *t = rm_self;
	if (rm_g.jit && unlikely(rm_g.ops.park_due()))
		rm_park(t, 0);
	struct rm_entry *e = t->last_site1 == gs + 1 && t->last_id == id ?
				     t->last_e : NULL;
	/* A loop whose trace this thread dropped: nothing more to look up. */
	if (e && e->gov == RM_GOV_DROPPED) {
		if (unlikely(!rm_g.gov_kept))
			rm_quiet_check(w);
		return 0;
	}
	/* A loop whose interpreter sample is under way: nothing to look up
	 * before it ends (the lookups would be in the sample, and an API
	 * call comes here at every iteration). */
	if (e && e->gov == RM_GOV_INTERP && c - e->base < rm_gov_window(e)) {
		if (o)
			*cached = -1;
		return 0;
	}
	/* A loop without a trace when last looked up, and nothing changed
	 * since (no trace published, no retry asked): no lookup, nothing to
	 * record until its count doubles. An API back-edge comes here at
	 * every iteration of a hot loop whose recordings failed. */
	uint16_t gen16 = (uint16_t)(*rm_g.ops.generation | 0x8000);
	if (e && e->asked == gen16 && !rm_record_due(c, w))
		return 0;
	uint64_t head = rm_g.ops.trace_lookup(gs, id);
	if (head) {
		uint64_t to = rm_enter(e, gs, id, c, head);
		if (!to && o && e &&
		    (e->gov == RM_GOV_INTERP || e->gov == RM_GOV_NONE)) {
			/* The trace waits for the interpreter's sample: the
			 * site samples meanwhile (a call per hit would be in
			 * the sample). */
			*cached = -1;
			return 0;
		}
		/* Once the governor has kept the trace (or does not look):
		 * while it measures, every entry must come through here. */
		if (to && o && (o->flags[site] & RM_SITE_IC) &&
		    (!rm_g.gov_on || (e && e->gov == RM_GOV_DONE))) {
			rm_ic_put(o, site, ic_id, to);
			*cached = 1;
		}
		return to;
	}
	/* A loop hot before the JIT was loaded asks at once, not at its next
	 * doubling (which backs off failed recordings). */
	int first = e && !e->asked;
	if (e)
		e->asked = gen16;
	if (first || rm_record_due(c, w) || rm_g.ops.retry_due(gs, id))
		return rm_g.ops.try_record(gs, id, resume, 0);
	return 0;
}

/*
 * Sampling. A sampled site's trampoline calls hit once its countdown
 * falls below 0; the hit then stands for the hits the countdown skipped
 * (weight), and sets the next countdown: at random (sampling jitter)
 * around sample_period, or 0 while the site is in full mode because a
 * trace of it is being entered, which must happen at the first hit after
 * the trace's loop is back in the interpreter.
 */
static uint32_t rm_rng = 0x9e3779b9u; /* racy on purpose: jitter only */

static inline uint32_t rm_rand(void)
{
	uint32_t x = rm_rng;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	rm_rng = x;
	return x;
}

static inline int64_t *rm_countdown(const struct rm_obj_rt *o, uint32_t site)
{
	return (int64_t *)(o->sites + (uint64_t)site * o->site_size +
			   offsetof(struct rm_site, countdown));
}

/* Returns the weight of this hit and sets the site's next countdown. */
static inline uint64_t rm_resample(const struct rm_obj_rt *o, uint32_t site,
				   struct rm_site_rt *sr)
{
	uint64_t w = sr->weight ? sr->weight : 1;
	uint32_t next = 1, p = rm_g.sample_period;
	if (!sr->full && p > 1)
		next = p / 2 + rm_rand() % p;
	sr->weight = next;
	__atomic_store_n(rm_countdown(o, site), (int64_t)next - 1,
			 __ATOMIC_RELAXED);
	return w;
}

/* A comparison site's forward countdown (ic_id[0]: its inline cache is
 * ic_id[1] alone). */
static inline int64_t *rm_cond_countdown(const struct rm_obj_rt *o,
					 uint32_t site)
{
	return (int64_t *)(o->sites + (uint64_t)site * o->site_size +
			   offsetof(struct rm_site, ic_id));
}

/* A Lua comparison site's trampoline let RM_COND_FORWARD_PERIOD
 * comparisons jump forward since the last call: if no back jump was
 * sampled meanwhile, nothing closes a loop there now, and its dispatch
 * entry goes back to the handler (a program's comparisons are mostly
 * if-tests: counting them would cost it about one percent for nothing).
 * It is re-armed when new loops become hot (rm_cond_new_hot). */
static COLD void rm_cond_forward(unsigned k, const struct rm_obj_rt *o,
				 uint32_t site, struct rm_site_rt *sr)
{
	/* A trace in the site's inline cache is entered by its back jumps
	 * without a call: they are not sampled, and the site stays. */
	int cached = __atomic_load_n(
			     &rm_site_at(o, site)->ic_id[RM_IC_FIRST_WAY(o->flags[site])],
			     __ATOMIC_RELAXED) != RM_IC_EMPTY;
	if (!sr->backs && !cached && !rm_g.forked) {
		/* The first call of a program without a loop maps its state. */
		struct rm_thread *t = rm_self ? rm_self : rm_thread_init();
		if (rm_slow_begin(t)) {
			rm_disarm_site(k, site); /* libc: mprotect, a lock */
			rm_slow_end(t);
		}
	}
	sr->backs = 0;
	__atomic_store_n(rm_cond_countdown(o, site),
			 (int64_t)RM_COND_FORWARD_PERIOD - 1, __ATOMIC_RELAXED);
}

/* A loop just became hot while comparison sites are disarmed: the program
 * may have moved on to loops that close at them. Re-armed at the first
 * such loop, then the second after, the fourth, ...: a program that keeps
 * finding new hot loops pays for a few forward periods only. */
static COLD void rm_cond_new_hot(void)
{
	if (!rm_g.cond_rearm_at)
		rm_g.cond_rearm_at = 1;
	if (++rm_g.cond_new_hot < rm_g.cond_rearm_at)
		return;
	struct rm_thread *t = rm_self;
	if (rm_g.forked || !rm_slow_begin(t))
		return;
	rm_g.cond_new_hot = 0;
	rm_g.cond_rearm_at *= 2;
	rm_rearm_disarmed();
	rm_slow_end(t);
}

/* A full-rate hit that entered no trace. */
static inline void rm_miss(struct rm_site_rt *sr)
{
	if (++sr->misses >= RM_FULL_MISSES) {
		sr->full = 0;
		sr->misses = 0;
	}
}

/* uint64_t hit(uint32_t site, uint64_t id, uint64_t aux): one per object,
 * in two variants: objects with sites keyed by header (RM_SITE_KEYED) get
 * the one that reads the site flags, the others skip that load. Returns
 * where the trampoline continues: 0 for the handler, or a trace or the recorder. */
static inline __attribute__((always_inline)) uint64_t
rm_hit_obj(unsigned k, int keyed, uint32_t site, uint64_t id, uint64_t aux,
	   uint64_t resume)
{
	const struct rm_obj_rt *o = &rm_g.obj[k];
	if (unlikely(site >= o->nsites)) {
		rm_invalid_site();
		return 0;
	}
	if (!resume)
		resume = o->resume[site];
	uint8_t fl = o->flags[site];
	struct rm_site_rt *sr = NULL;
	uint64_t w = 1;
	if (fl & RM_SITE_SAMPLED) {
		sr = &o->srt[site];
		w = rm_resample(o, site, sr);
	}
	uint64_t key = id;
	int back = 1;
	if (keyed && (fl & (RM_SITE_LUA54_SJ | RM_SITE_LUA54_COND_SJ))) {
		/* OP_JMP serves both directions: only a negative sJ closes
		 * a loop. A comparison takes the OP_JMP after it, the word
		 * at its pc. A loop is its header: every back jump to one pc
		 * (the branches of an if/elseif chain ending a while body
		 * each jump back on their own) is one loop, counted and
		 * traced once. past is the pc past the jump. */
		uint64_t word = aux, past = id;
		if (fl & RM_SITE_LUA54_COND_SJ) {
			word = *(const uint32_t *)id;
			past = id + 4;
		}
		int64_t sj = (int64_t)((word >> 7) & 0x1ffffff) - 0xffffff;
		back = sj < 0;
		key = past + (uint64_t)(sj * 4);
	} else if (keyed && (fl & RM_SITE_CPY311_CMP_JUMP)) {
		/* A CPython comparison takes the POP_JUMP_* after it: a loop
		 * when it goes back, keyed by its header as the backward
		 * jumps' are (below), oparg code units back from past it. */
		const uint8_t *jump = (const uint8_t *)id + RM_CPY311_JUMP_AT;
		back = jump[0] >= RM_CPY311_JUMP_BACK_MIN;
		key = id + RM_CPY311_JUMP_AT + 2 - 2 * (uint64_t)jump[1];
	} else if (keyed && (fl & RM_SITE_OPARG_BACK)) {
		/* The same for CPython's backward jumps: id is the jump
		 * instruction, oparg how many code units back from past it. */
		key = id + 2 - 2 * (uint64_t)(uint32_t)aux;
	}
	/* A sampled site's trampoline sends an OP_JMP that goes forward on
	 * itself, and counts a comparison's down (rm_cond_forward); an
	 * unsampled one calls for every jump. */
	if (keyed && sr && (fl & RM_SITE_COND)) {
		if (!back) {
			rm_cond_forward(k, o, site, sr);
			return 0;
		}
		sr->backs++;
	}
	if (!back)
		return 0; /* an unsampled site's: no full rate to end */
	uint32_t gs = o->base + site;
	uint64_t c = rm_count(gs, key, 1, w);
	if (unlikely(rm_g.cond_disarmed) && c >= rm_g.hot_threshold &&
	    c - w < rm_g.hot_threshold)
		rm_cond_new_hot();
	uint64_t next = 0;
	int cached = 0;
	if (unlikely(c >= rm_g.hot_threshold) && !(fl & RM_SITE_NO_TRACE))
		next = rm_hit_hot(gs, key, c, w, resume, o, site, id, &cached);
	if (sr) {
		/* A trace in the inline cache is entered without a call: no
		 * need to call on every hit for it. */
		if (cached < 0) {
			sr->full = 0;
			sr->misses = 0;
		} else if (next && !cached) {
			sr->full = 1;
			sr->misses = 0;
		} else if (sr->full) {
			rm_miss(sr);
		}
	}
	return next;
}

#define RM_HIT_FN(k)                                                           \
	RM_HIDDEN uint64_t rm_hit_##k(uint32_t site, uint64_t id,              \
				      uint64_t aux)                            \
	{                                                                      \
		return rm_hit_obj(k, 0, site, id, aux, 0);                     \
	}                                                                      \
	RM_HIDDEN uint64_t rm_hit_keyed_##k(uint32_t site, uint64_t id,          \
					  uint64_t aux)                        \
	{                                                                      \
		return rm_hit_obj(k, 1, site, id, aux, 0);                     \
	}
RM_HIT_FN(0)
RM_HIT_FN(1)
RM_HIT_FN(2)
RM_HIT_FN(3)
RM_HIT_FN(4)
RM_HIT_FN(5)
RM_HIT_FN(6)
RM_HIT_FN(7)

void *const rm_hit_fns[RM_MAX_OBJECTS][2] = {
#define RM_HIT_PAIR(k) { (void *)rm_hit_##k, (void *)rm_hit_keyed_##k }
	RM_HIT_PAIR(0), RM_HIT_PAIR(1), RM_HIT_PAIR(2), RM_HIT_PAIR(3),
	RM_HIT_PAIR(4), RM_HIT_PAIR(5), RM_HIT_PAIR(6), RM_HIT_PAIR(7),
#undef RM_HIT_PAIR
};

/* The API functions whose argument names a loop or a function: counted per
 * (site, argument). The others are counted per site (id 0); the frame
 * pointer of begin/end_branchable_frame is opaque and not a key. */
static const uint8_t rm_api_keyed[RM_API_COUNT] = {
	[RM_API_BACKWARDS_BRANCH] = 1,
	[RM_API_FELLTHROUGH_BRANCH] = 1,
	[RM_API_FORCE_BEGIN_TRACE] = 1,
	[RM_API_FORCE_JUMP_TO_TRACE] = 1,
	[RM_API_DO_NOT_TRACE_FUNCTION] = 1,
	[RM_API_DISABLE_BRANCH] = 1,
};

/* Annotations that act on the JIT (do_not_trace_function, disable_branch)
 * made before it was loaded: an interpreter names its native functions at
 * start-up, long before a loop is hot. Kept here, passed on when the JIT
 * starts; beyond RM_PENDING_MAX they are dropped. */
#define RM_PENDING_MAX 1024
static struct rm_pending {
	int what;
	uint64_t arg;
} rm_pending[RM_PENDING_MAX];
static uint32_t rm_npending;

static COLD void rm_pend(int what, uint64_t arg)
{
	if (!rm_g.jit_wanted || rm_g.jit_tried)
		return;
	uint32_t i = __atomic_fetch_add(&rm_npending, 1, __ATOMIC_RELAXED);
	if (i < RM_PENDING_MAX)
		rm_pending[i] = (struct rm_pending){ what, arg };
}

/* Called once the JIT runs, with the vector state saved. */
RM_HIDDEN void rm_jit_replay(void)
{
	uint32_t n = __atomic_load_n(&rm_npending, __ATOMIC_RELAXED);
	for (uint32_t i = 0; i < n && i < RM_PENDING_MAX; i++)
		rm_g.ops.annotate(rm_pending[i].what, rm_pending[i].arg);
}

/*
 * Reached from rm_api_<name>_entry_<k> (rm_api_entry.S): arg is the API
 * function's first argument (garbage for those without one), site the
 * index the trampoline put in %r11d, objapi = k << 8 | api, ret the call's
 * return address. Returns 0 to return to the interpreter (redmagic_is_traced
 * then returns 0: the original code is not traced), or where to continue
 * as if the call had returned there: a compiled trace of the loop, or the
 * stub that starts recording it.
 */
/* Whether a is in the JIT's code cache (a call from a trace's native code
 * or a recording block); the JIT runs. */
static inline int rm_in_code_cache(uint64_t a)
{
	return a - rm_g.ops.cache[0] < rm_g.ops.cache[1] - rm_g.ops.cache[0];
}

RM_HIDDEN uint64_t rm_api_call(uint64_t arg, uint32_t site, uint32_t objapi,
			       uint64_t ret)
{
	unsigned k = objapi >> 8, api = objapi & 0xff;
	if (unlikely(k >= RM_MAX_OBJECTS || api >= RM_API_COUNT ||
		     site >= rm_g.obj[k].nsites)) {
		rm_invalid_site();
		return 0;
	}
	uint32_t gs = rm_g.obj[k].base + site;
	uint64_t id = rm_api_keyed[api] ? arg : 0;
	int back = api == RM_API_BACKWARDS_BRANCH;
	if (back && (rm_g.obj[k].flags[site] & RM_SITE_SAMPLED) &&
	    likely(!rm_g.jit || !rm_in_code_cache(ret)))
		/* A sampled call site: a loop like a back-edge's, whose state
		 * continues at ret (a call from a trace's native code only
		 * counts, below). */
		return rm_hit_obj(k, 0, site, id, 0, ret);
	uint64_t c = rm_count(gs, id, back, 1);
	if (unlikely(!rm_g.jit) && (api == RM_API_DO_NOT_TRACE_FUNCTION ||
				    api == RM_API_DISABLE_BRANCH)) {
		rm_pend(api == RM_API_DISABLE_BRANCH ? RM_JIT_DISABLE_BRANCH :
						       RM_JIT_DO_NOT_TRACE,
			id);
		return 0;
	}
	if (!rm_g.jit && !(back && rm_jit_later(c, 1)))
		return 0;
	/* A native call from a trace or a recording block: count only. */
	if (unlikely(rm_in_code_cache(ret)))
		return 0;
	switch (api) {
	case RM_API_BACKWARDS_BRANCH:
		/* A loop like a back-edge's, whose state continues at ret. */
		if (c < rm_g.hot_threshold)
			return 0;
		return rm_hit_hot(gs, id, c, 1, ret, NULL, 0, id, NULL);
	case RM_API_FORCE_BEGIN_TRACE:
		return rm_g.ops.try_record(gs, id, ret, 1);
	case RM_API_FORCE_JUMP_TO_TRACE:
		return rm_g.ops.trace_lookup(RM_ANY_SITE, id);
	case RM_API_DO_NOT_TRACE_FUNCTION:
		rm_jit_call(RM_JIT_DO_NOT_TRACE, id);
		return 0;
	case RM_API_DISABLE_BRANCH:
		rm_jit_call(RM_JIT_DISABLE_BRANCH, id);
		return 0;
	}
	return 0;
}

/* Passes an annotation to the JIT's Go side with the vector state saved. */
static COLD void rm_jit_call(int what, uint64_t arg)
{
	struct rm_thread *t = rm_self;
	if (rm_g.forked || !rm_slow_begin(t))
		return;
	rm_g.ops.annotate(what, arg);
	rm_slow_end(t);
}

/* ------------------------------------------------------------------------ */
/* Thread exit (from rm_init.c's pthread key destructor). */

RM_HIDDEN void rm_thread_forget(void)
{
	rm_self = NULL;
}

RM_HIDDEN struct rm_thread *rm_thread_nomem(void)
{
	return &rm_nomem_thread;
}

RM_HIDDEN uint64_t rm_tsc_now(void)
{
	return tv_rdtsc();
}
