/*
 * tv.c: the C side of the tracing machine. Compiled for general registers
 * only: generated code saves only the general registers and the flags
 * before calling in here, so nothing here may touch a vector register
 * before the whole vector state is saved (xsave) around calls into Go.
 * Memory comes from raw system calls for the same reason.
 */
#include <stddef.h>
#include <stdint.h>

#include "tv.h"
#include "_cgo_export.h"

#pragma GCC target("general-regs-only")
#pragma GCC optimize("no-tree-loop-distribute-patterns")

/* After the pragmas: its helpers are compiled for general registers too. */
#include "tv_cpu.h"

static inline void tv_xsave(void *buf)
{
	tv_xsave_as(tv_g.xsave_mask, tv_g.use_xsave, buf);
}

static inline void tv_xrstor(void *buf)
{
	tv_xrstor_as(tv_g.xsave_mask, tv_g.use_xsave, buf);
}

_Static_assert(offsetof(struct tv_tls, gpr) == TV_OFF_GPR, "gpr");
_Static_assert(offsetof(struct tv_tls, flags) == TV_OFF_FLAGS, "flags");
_Static_assert(offsetof(struct tv_tls, next) == TV_OFF_NEXT, "next");
_Static_assert(offsetof(struct tv_tls, exit) == TV_OFF_EXIT, "exit");
_Static_assert(offsetof(struct tv_tls, scratch) == TV_OFF_SCRATCH, "scratch");
_Static_assert(offsetof(struct tv_tls, ref) == TV_OFF_REF, "ref");

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

struct tv_global tv_g;

/* Initial-exec: a fixed offset from %fs in every thread, which generated
 * code uses as an absolute %fs:disp32 operand. */
static __thread struct tv_tls tv_tls
	__attribute__((tls_model("initial-exec"), aligned(64)));

uint64_t tv_rdtsc_now(void)
{
	return tv_rdtsc();
}

uint64_t tv_jit_cycles(void)
{
	return tv_tls.jit_cycles;
}

uint64_t tv_fs_base(void)
{
	uint64_t b;
	__asm__("mov %%fs:0, %0" : "=r"(b));
	return b;
}

uint64_t tv_tls_offset(void)
{
	return (uint64_t)(uintptr_t)&tv_tls - tv_fs_base();
}

struct tv_tls *tv_self(void)
{
	return &tv_tls;
}

/* Adds the cycles since t0 to what the thread and the process spent in
 * the JIT. */
static void tv_spent(struct tv_tls *t, uint64_t t0)
{
	uint64_t d = tv_rdtsc() - t0;
	t->jit_cycles += d;
	__atomic_fetch_add(&tv_g.jit_cycles, d, __ATOMIC_RELAXED);
}

void tv_spent_bg(uint64_t t0)
{
	uint64_t d = tv_rdtsc() - t0;
	__atomic_fetch_add(&tv_g.bg_cycles, d, __ATOMIC_RELAXED);
	__atomic_fetch_add(&tv_g.jit_cycles, d, __ATOMIC_RELAXED);
}

/* The budget's shift for the compiler thread's cycles: 2 (a quarter) when
 * the process may run on two processors or more, where compiling beside
 * the program costs it little wall time (a busy loop on the other core
 * left a CPython loop's time unchanged on the 2-core machine this was
 * measured on); 0 (all) when it has one processor, which compiling takes
 * from the program. */
static uint32_t tv_bg_shift(void)
{
	uint64_t mask[16];
	for (int i = 0; i < 16; i++)
		mask[i] = 0;
	long n = tv_syscall6(TV_SYS_SCHED_GETAFFINITY, 0, (long)sizeof mask,
			     (long)mask, 0, 0, 0);
	int cpus = 0;
	for (long i = 0; i < n / 8 && i < 16; i++)
		for (uint64_t x = mask[i]; x; x &= x - 1)
			cpus++;
	return cpus >= 2 ? 2 : 0;
}

static uint64_t tv_earned(void);

/* Whether the JIT, having spent spent cycles of elapsed since its budget
 * began, has spent more than its share of the run time, scaled
 * by share (1 for a root recording, TV_SIDE_SHARE for a side one): a base
 * of budget_pct percent of it, plus half of what the kept traces have
 * earned (the cycles the governor measured them to save per iteration,
 * times their iterations), so that the JIT spends more where it pays and
 * little where it does not; at most three times the base in all, since
 * the governor's windows are wall time between trace entries and have
 * been seen to credit a trace that lost (pyperformance's deltablue: 30%
 * saved by the windows, 8% lost by the process). Until a kept trace has
 * earned anything the base is halved and side recordings get no more than
 * roots: where no trace wins (the Lua corpus' object-oriented programs),
 * what the JIT spends is the program's loss (collision: 0.966 of the
 * time this took with the full base). */
int tv_budget_refuses(uint64_t spent, uint64_t elapsed, uint64_t pct,
		      uint64_t share, uint64_t earned)
{
	if (!pct || spent < TV_BUDGET_FREE)
		return 0;
	if (!earned)
		share = 1;
	uint64_t base = elapsed * pct * share / 100;
	if (!earned)
		base /= 2;
	if (spent <= base)
		return 0;
	uint64_t credit = earned / 2;
	if (credit > 2 * base)
		credit = 2 * base;
	return spent - base > credit;
}

int tv_over_budget(uint64_t share)
{
	uint64_t bg = __atomic_load_n(&tv_g.bg_cycles, __ATOMIC_RELAXED);
	uint64_t spent = __atomic_load_n(&tv_g.jit_cycles, __ATOMIC_RELAXED) -
			 bg + (bg >> tv_g.bg_shift);
	if (!tv_g.budget_pct || spent < TV_BUDGET_FREE)
		return 0;
	if (!tv_budget_refuses(spent, tv_rdtsc() - tv_g.budget_tsc,
			       tv_g.budget_pct, share, tv_earned()))
		return 0;
	__atomic_fetch_add(&tv_g.budget_refusals, 1, __ATOMIC_RELAXED);
	return 1;
}

void tv_budget_from(uint64_t t)
{
	if (t && t < tv_rdtsc())
		tv_g.budget_tsc = t;
}

void tv_setup(void)
{
	tv_g.start_tsc = tv_rdtsc();
	tv_g.budget_tsc = tv_g.start_tsc;
	tv_g.bg_shift = tv_bg_shift();
	tv_g.tls_off = tv_tls_offset();
	tv_xsave_probe(&tv_g.xsave_mask, &tv_g.xsave_size, &tv_g.use_xsave);
}

/* The thread's xsave area, mapped on first use (zeroed: a valid xsave
 * header). */
static struct tv_tls *tv_ready(void)
{
	struct tv_tls *t = &tv_tls;
	if (unlikely(!t->xbuf)) {
		uint64_t len = (tv_g.xsave_size + 4095) & ~4095ull;
		t->xbuf = tv_map(len);
		t->fs_base = tv_fs_base();
	}
	return t->xbuf ? t : NULL;
}

/* ------------------------------------------------------------------------ */
/* Compiled traces: (global site, id) -> head. Open addressing; entries are
 * published with a release store of head and never removed except by
 * tv_unpublish_all (a flush), which zeroes heads. */

#define TV_TRACE_LOG2 16
struct tv_slot {
	uint64_t id;
	uint32_t site1;
	uint32_t verdict;     /* 0 none, 1 kept, 2 dropped (never again) */
	uint64_t head;
	uint64_t iters;       /* the root trace's two iteration counters */
	uint64_t gone;        /* its word set when dropped (tv_publish) */
	uint32_t interp16;    /* cycles per iteration x16, interpreter */
	uint32_t trace16;     /* ... with the trace */
	uint32_t listed;      /* in tv_kept */
};
static struct tv_slot tv_traces[1u << TV_TRACE_LOG2];

/* The slots of the traces the governor kept, for tv_earned. */
#define TV_KEPT_MAX 4096
static struct tv_slot *tv_kept[TV_KEPT_MAX];
static uint32_t tv_nkept;

/* Cycles the kept traces have saved so far, by the governor's measure. */
static uint64_t tv_earned(void)
{
	uint64_t sum = 0;
	uint32_t n = __atomic_load_n(&tv_nkept, __ATOMIC_ACQUIRE);
	for (uint32_t i = 0; i < n && i < TV_KEPT_MAX; i++) {
		struct tv_slot *s = tv_kept[i];
		if (!s || s->trace16 >= s->interp16 || !s->iters)
			continue;
		const volatile uint64_t *it =
			(const volatile uint64_t *)(uintptr_t)s->iters;
		sum += (it[0] + it[1]) * (s->interp16 - s->trace16) / 16;
	}
	return sum;
}

static inline uint64_t tv_hash(uint32_t site1, uint64_t id)
{
	return ((id ^ ((uint64_t)site1 << 40)) * 0x9e3779b97f4a7c15ull) >> 40;
}

static struct tv_slot *tv_slot_of(uint32_t gsite, uint64_t id)
{
	uint32_t site1 = gsite + 1;
	uint64_t mask = (1u << TV_TRACE_LOG2) - 1;
	uint64_t i = tv_hash(site1, id) & mask;
	for (uint64_t n = 0; n <= mask; n++, i = (i + 1) & mask) {
		struct tv_slot *s = &tv_traces[i];
		uint32_t s1 = __atomic_load_n(&s->site1, __ATOMIC_ACQUIRE);
		if (s1 == 0)
			return 0;
		if (s1 == site1 && s->id == id)
			return s;
	}
	return 0;
}

uint64_t tv_trace_lookup(uint32_t gsite, uint64_t id)
{
	struct tv_slot *s = tv_slot_of(gsite, id);
	if (!s)
		return 0;
	uint64_t h = __atomic_load_n(&s->head, __ATOMIC_ACQUIRE);
	if (h)
		__atomic_fetch_add(&tv_g.trace_entries, 1, __ATOMIC_RELAXED);
	return h;
}

const volatile uint64_t *tv_trace_iters(uint32_t gsite, uint64_t id)
{
	struct tv_slot *s = tv_slot_of(gsite, id);
	return s ? (const volatile uint64_t *)(uintptr_t)s->iters : 0;
}

/* Unpublishes slot s (of loop id): other loops' traces jump into its trace
 * directly, and their links leave for the original code from now on;
 * redmagic_force_jump_to_trace's copy goes too. */
static void tv_unlink_slot(struct tv_slot *s, uint64_t id)
{
	uint64_t h = __atomic_exchange_n(&s->head, 0, __ATOMIC_ACQ_REL);
	if (s->gone)
		__atomic_store_n((uint64_t *)(uintptr_t)s->gone, 1,
				 __ATOMIC_RELEASE);
	struct tv_slot *any = tv_slot_of(TV_ANY_SITE, id);
	if (any && h)
		__atomic_compare_exchange_n(&any->head, &h, 0, 0,
					    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

void tv_trace_verdict(uint32_t gsite, uint64_t id, uint32_t interp16,
		      uint32_t trace16, int drop)
{
	struct tv_slot *s = tv_slot_of(gsite, id);
	if (!s || s->verdict == 2)
		return;
	s->interp16 = interp16;
	s->trace16 = trace16;
	__atomic_store_n(&s->verdict, drop ? 2 : 1, __ATOMIC_RELEASE);
	if (!drop) {
		if (__atomic_exchange_n(&s->listed, 1, __ATOMIC_ACQ_REL))
			return;
		uint32_t i = __atomic_fetch_add(&tv_nkept, 1, __ATOMIC_RELAXED);
		if (i < TV_KEPT_MAX)
			__atomic_store_n(&tv_kept[i], s, __ATOMIC_RELEASE);
		return;
	}
	tv_unlink_slot(s, id);
}

int tv_verdict_of(uint32_t gsite, uint64_t id, uint32_t *interp16,
		  uint32_t *trace16)
{
	struct tv_slot *s = tv_slot_of(gsite, id);
	if (!s)
		return 0;
	*interp16 = s->interp16;
	*trace16 = s->trace16;
	return (int)__atomic_load_n(&s->verdict, __ATOMIC_ACQUIRE);
}

/* Retires loop (gsite, id)'s trace so that it is recorded again
 * (respec.go): its head goes, links into it from other loops' traces leave
 * for the original code, the inline caches forget it, and this thread
 * records the loop at its next iteration (tv_retry_due). */
void tv_retire(uint32_t gsite, uint64_t id)
{
	struct tv_slot *s = tv_slot_of(gsite, id);
	if (!s)
		return;
	tv_unlink_slot(s, id);
	tv_bump_generation();
	if (tv_g.unpublish_hook)
		tv_g.unpublish_hook();
	struct tv_tls *t = &tv_tls;
	t->retry_gsite = gsite;
	t->retry_id = id;
	t->retry = 2;
}

/* A loop whose trace was dropped is not recorded again. */
static int tv_dropped(uint32_t gsite, uint64_t id)
{
	struct tv_slot *s = tv_slot_of(gsite, id);
	return s && __atomic_load_n(&s->verdict, __ATOMIC_ACQUIRE) == 2;
}

/* Called from Go under its lock: one writer. */
static int tv_publish1(uint32_t gsite, uint64_t id, uint64_t head,
		       uint64_t iters, uint64_t gone);

int tv_publish(uint32_t gsite, uint64_t id, uint64_t head, uint64_t iters,
	       uint64_t gone)
{
	if (gsite != TV_ANY_SITE)
		tv_publish1(TV_ANY_SITE, id, head, 0, 0);
	int r = tv_publish1(gsite, id, head, iters, gone);
	tv_bump_generation();
	return r;
}

void tv_bump_generation(void)
{
	__atomic_fetch_add(&tv_g.generation, 1, __ATOMIC_RELEASE);
}

static int tv_publish1(uint32_t gsite, uint64_t id, uint64_t head,
		       uint64_t iters, uint64_t gone)
{
	uint32_t site1 = gsite + 1;
	uint64_t mask = (1u << TV_TRACE_LOG2) - 1;
	uint64_t i = tv_hash(site1, id) & mask;
	for (uint64_t n = 0; n <= mask / 2; n++, i = (i + 1) & mask) {
		struct tv_slot *s = &tv_traces[i];
		if (s->site1 == site1 && s->id == id) {
			if (s->verdict == 2)
				return 0; /* dropped: stays unpublished */
			s->iters = iters;
			s->gone = gone;
			s->verdict = 0;
			__atomic_store_n(&s->head, head, __ATOMIC_RELEASE);
			return 0;
		}
		if (s->site1 == 0) {
			s->id = id;
			s->iters = iters;
			s->gone = gone;
			__atomic_store_n(&s->head, head, __ATOMIC_RELAXED);
			__atomic_store_n(&s->site1, site1, __ATOMIC_RELEASE);
			return 0;
		}
	}
	return -1;
}

void tv_unpublish_all(void)
{
	for (uint64_t i = 0; i < (1u << TV_TRACE_LOG2); i++) {
		struct tv_slot *s = &tv_traces[i];
		__atomic_store_n(&s->head, 0, __ATOMIC_RELEASE);
		/* Links between the old generation's traces leave too. */
		if (s->gone)
			__atomic_store_n((uint64_t *)(uintptr_t)s->gone, 1,
					 __ATOMIC_RELEASE);
	}
	tv_bump_generation();
	if (tv_g.unpublish_hook)
		tv_g.unpublish_hook();
}

/* The exit table grows by copying into a new mapping; the old one stays
 * mapped (a thread may be reading it). */
int tv_grow_exits(uint32_t need)
{
	if (need <= tv_g.cap_exits)
		return 0;
	uint32_t cap = tv_g.cap_exits ? tv_g.cap_exits : 1024;
	while (cap < need)
		cap *= 2;
	struct tv_exit *e = tv_map((uint64_t)cap * sizeof *e);
	if (!e)
		return -1;
	for (uint32_t i = 0; i < tv_g.nexits; i++)
		e[i] = tv_g.exits[i];
	__atomic_store_n(&tv_g.exits, e, __ATOMIC_RELEASE);
	tv_g.cap_exits = cap;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Entry points for the embedding runtime. */

int tv_thread_recording(void)
{
	return tv_tls.rec != 0;
}

/* A recording this thread began is not running any more (its code was left
 * by a longjmp, a signal handler that did not return, ...): drop it. */
void tv_abort_stale(void)
{
	struct tv_tls *t = &tv_tls;
	if (!t->rec || t->in_go || tv_g.forked)
		return;
	t->in_go = 1;
	tv_xsave(t->xbuf);
	tv_go_enter();
	uint64_t t0 = tv_rdtsc();
	tvAbortStale(t->rec);
	tv_spent(t, t0);
	tv_xrstor(t->xbuf);
	t->rec = 0;
	t->in_go = 0;
}

/*
 * Begin recording loop (gsite, id) of this thread at resume, the original
 * address where the state that the caller is about to hand over (with
 * rm_api's stack popped) continues. Returns the address to jump to (the
 * stub that saves that state and enters the recorder) or 0 to go on
 * natively.
 */
/* tv_retry_due: the thread's last recording of (gsite, id) asked to be
 * retried at once. */
int tv_retry_due(uint32_t gsite, uint64_t id)
{
	struct tv_tls *t = tv_ready();
	if (!t || !t->retry || t->retry_gsite != gsite || t->retry_id != id)
		return 0;
	if (tv_dropped(gsite, id))
		return 0;
	t->respec = t->retry == 2;
	t->retry = 0;
	return 1;
}

uint64_t tv_try_record(uint32_t gsite, uint64_t id, uint64_t resume,
		       uint64_t reason)
{
	/* A retired trace's loop is recorded again whatever the budget: it
	 * ran in a trace until now. */
	int respec = tv_tls.respec && tv_tls.retry_gsite == gsite &&
		     tv_tls.retry_id == id;
	tv_tls.respec = 0;
	if (!tv_g.enabled || tv_g.forked || tv_dropped(gsite, id) ||
	    (tv_over_budget(1) && !respec))
		return 0;
	struct tv_tls *t = tv_ready();
	if (!t || t->in_go)
		return 0;
	/* A recording still set here was abandoned (a longjmp left its
	 * blocks) or is suspended in a native call that came back here:
	 * either way its blocks resume the original code on their own, and
	 * tvBeginRecord drops it. */
	uint64_t old = t->rec;
	t->rec = 0;
	t->in_go = 1;
	tv_xsave(t->xbuf);
	tv_go_enter();
	uint64_t t0 = tv_rdtsc();
	uint64_t h = tvBeginRecord(gsite, id, resume, reason, old);
	tv_spent(t, t0);
	tv_xrstor(t->xbuf);
	t->in_go = 0;
	if (!h)
		return 0;
	t->rec = h;
	t->start = resume;
	return tv_g.rec_start;
}

static void tv_copy(uint64_t *dst, const uint64_t *src, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		dst[i] = src[i];
}

/*
 * Fork. The JIT stays off in the child (the Go runtime does not survive
 * fork), but its threads' traces keep running. The code cache is a shared
 * mapping, which the parent goes on writing (new blocks, linked guards):
 * the child gets a private copy at the same address, so nothing it runs
 * changes under it. The copy is taken before the fork with every cache
 * write blocked until the fork is done: copied in the child, it could
 * catch the parent's next block already written over the one the forking
 * thread returns into, or a trace published without its code.
 */
static uint64_t *tv_fork_snap;
static uint64_t tv_fork_len;
static int tv_fork_frozen;

void tv_fork_prepare(void)
{
	tv_fork_snap = 0;
	tv_fork_frozen = 0;
	uint64_t len = tv_g.cache_hi - tv_g.cache_lo;
	if (!len || tv_g.forked || tv_tls.in_go)
		return;
	/* With the JIT's threads parked nothing writes the cache, and they
	 * stay parked through the fork (glibc decided before this handler
	 * that the process has one thread, and takes no malloc lock). */
	if (!__atomic_load_n(&tv_park_g.parked, __ATOMIC_ACQUIRE))
		tv_fork_frozen = tvFreezeCache();
	uint64_t *tmp = tv_map(len);
	if (!tmp)
		return;
	tv_copy(tmp, (const uint64_t *)(uintptr_t)tv_g.cache_lo, len / 8);
	tv_fork_snap = tmp;
	tv_fork_len = len;
}

void tv_fork_parent(void)
{
	if (tv_fork_snap)
		tv_unmap(tv_fork_snap, tv_fork_len);
	tv_fork_snap = 0;
	if (tv_fork_frozen)
		tvThawCache();
	tv_fork_frozen = 0;
}

void tv_fork_child(void)
{
	tv_park_fork_child();
	tv_g.forked = 1;
	tv_g.enabled = 0;
	tv_tls.rec = 0;
	uint64_t lo = tv_g.cache_lo, len = tv_g.cache_hi - tv_g.cache_lo;
	if (!len)
		return;
	uint64_t *tmp = tv_fork_snap;
	if (tmp && tv_fork_len == len) {
		tv_fork_snap = 0;
	} else {
		/* No copy from before the fork (out of memory): copy now. */
		tmp = tv_map(len);
		if (!tmp)
			return;
		tv_copy(tmp, (const uint64_t *)(uintptr_t)lo, len / 8);
	}
	/* mprotect(tmp, PROT_READ|PROT_EXEC), then mremap over the shared
	 * view: the replacement is atomic. */
	tv_syscall6(TV_SYS_MPROTECT, (long)tmp, (long)len, 5, 0, 0, 0);
	tv_syscall6(TV_SYS_MREMAP, (long)tmp, (long)len, (long)len, 3, (long)lo, 0);
}

/* Whether an exit taken for the c-th time asks for a side recording: at
 * side_threshold, then at 2x, 4x, ... of it, so that an exit whose chance
 * came while it could not be taken (the JIT over budget, another recording
 * on the thread) is tried again, less and less often. */
static inline int tv_side_due(uint64_t c)
{
	uint64_t h = tv_g.side_threshold;
	if (c < h || c % h)
		return 0;
	uint64_t q = c / h;
	return (q & (q - 1)) == 0;
}

/* Reached from the generated switch-out stub with the machine state in
 * tv_tls; sets tv_tls.next. */
static void tv_switch(void)
{
	struct tv_tls *t = &tv_tls;
	uint64_t why = t->exit;
	if (why >= TV_EXIT_BASE) {
		struct tv_exit *ex = &__atomic_load_n(&tv_g.exits,
			__ATOMIC_ACQUIRE)[why - TV_EXIT_BASE];
		uint64_t c = ex->count + 1;
		ex->count = c;
		t->exits_taken++;
		t->next = ex->orig;
		if (tv_side_due(c) &&
		    (ex->state == TV_EXIT_RISKY ||
		     (ex->state == TV_EXIT_OPEN &&
		      !tv_over_budget(TV_SIDE_SHARE))) &&
		    tv_g.enabled && !tv_g.forked && !t->rec && !t->in_go &&
		    tv_ready()) {
			t->in_go = 1;
			tv_xsave(t->xbuf);
			tv_go_enter();
			uint64_t t0 = tv_rdtsc();
			uint64_t n = tvSideExit(why);
			tv_spent(t, t0);
			tv_xrstor(t->xbuf);
			t->in_go = 0;
			if (n)
				t->next = n;
		} else if (unlikely((t->exits_taken & 1023) == 0) &&
			   tv_park_due() && !t->rec && !t->in_go &&
			   tv_ready()) {
			/* Traces that run for long without a call into Go:
			 * the JIT's threads can be parked. */
			t->in_go = 1;
			tv_xsave(t->xbuf);
			tv_park(0);
			tv_xrstor(t->xbuf);
			t->in_go = 0;
		}
		return;
	}
	/* A recorder event. In a fork child (no Go) the original code
	 * resumes where the recorder said this event would continue. */
	uint64_t resume = why == TV_REC_START ? t->start :
		*(const uint64_t *)(uintptr_t)(tv_g.cache_lo + t->ref);
	uint64_t at = tv_g.cache_lo + t->ref;
	if (!t->rec || tv_g.forked || !t->xbuf || t->in_go ||
	    (why != TV_REC_START && at - t->recbuf >= TV_RECBUF_SIZE)) {
		/* Not the live recording's block: the original code resumes. */
		t->next = resume;
		return;
	}
	t->in_go = 1;
	tv_xsave(t->xbuf);
	tv_go_enter();
	uint64_t t0 = tv_rdtsc();
	t->next = tvStep(t->rec, why);
	tv_spent(t, t0);
	tv_xrstor(t->xbuf);
	t->in_go = 0;
}

uint64_t tv_switch_addr(void)
{
	return (uint64_t)(uintptr_t)tv_switch;
}
