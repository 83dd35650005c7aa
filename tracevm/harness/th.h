/*
 * th.h: the C side of the tracevm test harness.
 *
 * Test functions (tt_*.c) are written against the annotation API through
 * the shims th_<name> (th_shims.S), which call th_api exactly as
 * runtime-stub's rm_api_<name>_entry stubs call rm_api_call. Setup finds
 * every direct call of a shim by decoding every C function of the test
 * binary. The helpers listed by th_native_fn (tn_*) run natively when a
 * trace calls them, as the PLT does.
 */
#ifndef TH_H
#define TH_H

#include <stdint.h>

#define TH_HIDDEN __attribute__((visibility("hidden")))
/* A test function: a real out-of-line function, as in an interpreter. */
#define TT __attribute__((noinline)) TH_HIDDEN
/* A helper a trace inlines: opaque to the caller's optimiser, so that the
 * call stays a call with the standard convention. */
#define TT_HELPER __attribute__((noinline, noipa)) TH_HIDDEN

/* The shims (th_shims.S). Hidden: every call is a direct call rel32. */
TH_HIDDEN void th_start(void);
TH_HIDDEN void th_backwards_branch(void *id);
TH_HIDDEN void th_fellthrough_branch(void *id);
TH_HIDDEN void th_begin_branchable_frame(uint_fast64_t *frame);
TH_HIDDEN void th_end_branchable_frame(uint_fast64_t *frame);
TH_HIDDEN void th_force_begin_trace(void *id);
TH_HIDDEN void th_force_end_trace(void);
TH_HIDDEN void th_force_jump_to_trace(void *id);
TH_HIDDEN void th_ensure_not_traced(void);
TH_HIDDEN void th_temp_disable(void);
TH_HIDDEN void th_temp_enable(void);
TH_HIDDEN void th_do_not_trace_function(void *fn);
TH_HIDDEN void th_disable_branch(void *id);
TH_HIDDEN int th_is_traced(void);
TH_HIDDEN void th_begin_merge_block(void);
TH_HIDDEN void th_end_merge_block(void);

/* Reached from every shim: arg is the API function's first argument, api
 * its number (tracevm.API), ret the call's return address. Returns 0 (the
 * call returns normally, %rax = 0) or where to continue as if the call
 * had returned there. */
uint64_t th_api(uint64_t arg, uint64_t unused, uint32_t api, uint64_t ret);

/* Counters the Go side reads (th_stats). */
struct th_stats {
	uint64_t calls[16];     /* shim calls by API */
	uint64_t unknown_site;  /* return address of no registered site */
	uint64_t api_mismatch;  /* a site called a shim of another API */
	uint64_t from_cache;    /* native calls made from traces/blocks */
	uint64_t lookups_hit;   /* backwards branches sent into a trace */
	uint64_t record_tries;  /* tv_try_record calls */
	uint64_t record_starts; /* ... that returned a recording stub */
	uint64_t count_full;    /* (site, id) pairs with no counter */
};

/* Setup (th_api.c). */
int th_set_sites(const uint64_t *calls, const uint8_t *apis, uint32_t n);
void th_set_threshold(uint64_t threshold);
/* Drops loop id's root traces as the governor would (tv_trace_verdict). */
void th_drop_traces(uint64_t id);
void th_set_jit(int on);
int th_jit_on(void);
void th_get_stats(struct th_stats *out);
int th_atfork(void);

/* Every test function has this signature: inputs in[0..TH_NIN), in[0]
 * the base of its loop ids; extra results in out[0..TH_NOUT). */
#define TH_NIN 8
#define TH_NOUT 16
typedef int64_t (*tt_fn)(const int64_t *in, int64_t *out);
static inline int64_t th_call(void *fn, const int64_t *in, int64_t *out)
{
	return ((tt_fn)fn)(in, out);
}

/* Runners (th_run.c), not traced themselves. */
int th_race(void *fn, const int64_t *in0, const int64_t *in1, int64_t rounds,
	    int64_t *rets, int64_t *outs, int64_t *times);
int th_with_signals(void *fn, const int64_t *in, int64_t *out, int64_t *ret,
		    int64_t interval_ns, int64_t *sigstats);
uint64_t th_main_bias(void);
const void *th_shim(int api);
const void *th_native_fn(int i);
TH_HIDDEN int64_t th_fork_finish(int64_t pid, int fd[2], int64_t s,
				 int64_t after, int64_t *out);

/* The test functions (tt_loops.c, tt_simd.c). */
#define TT_DECL(name) TH_HIDDEN int64_t name(const int64_t *in, int64_t *out);
TT_DECL(tt_sum)
TT_DECL(tt_branchy)
TT_DECL(tt_chain)
TT_DECL(tt_chain_long)
TT_DECL(tt_chain_ret)
TT_DECL(tt_nested)
TT_DECL(tt_calls)
TT_DECL(tt_callee_loop)
TT_DECL(tt_callee_once)
TT_DECL(tt_lookup_loop)
TT_DECL(tt_find_loop)
TT_DECL(tt_nw_sum)
TT_DECL(tt_nw_switch)
TT_DECL(tt_nw_frame)
TT_DECL(tt_nw_calls)
TT_DECL(tt_w_out)
TT_DECL(tt_w_calls)
TT_DECL(tt_w_global)
TT_DECL(tt_w_switch_split)
TT_DECL(tt_recurse)
TT_DECL(tt_interp)
TT_DECL(tt_interp_branch)
TT_DECL(tt_mem_interp)
TT_DECL(tt_frames)
TT_DECL(tt_tagged)
TT_DECL(tt_tvstack)
TT_DECL(tt_fstack)
TT_DECL(tt_alias)
TT_DECL(tt_frame)
TT_DECL(tt_fptr)
TT_DECL(tt_globals)
TT_DECL(tt_is_traced)
TT_DECL(tt_ensure)
TT_DECL(tt_merge)
TT_DECL(tt_helper_ret)
TT_DECL(tt_syscall)
TT_DECL(tt_spin)
TT_DECL(tt_fork)
TT_DECL(tt_invariant_fp)
TT_DECL(tt_native_api)
TT_DECL(tt_smc)
TT_DECL(tt_fp_c)
TT_DECL(tt_fp_sse2)
TT_DECL(tt_fp_avx2)
TT_DECL(tt_fp_avx512)
#undef TT_DECL
void th_globals_extra(int64_t *ticks, int64_t *last);
/* Native helpers: a trace calls them, never inlines them. */
TH_HIDDEN void tn_fork_at(int64_t i, int64_t at, int64_t *pid);
TH_HIDDEN int tn_in_trace(void);
TH_HIDDEN int64_t tn_lookup(const int64_t *tab, int64_t n, int64_t key);
struct tn_obj {
	int64_t kind, val;
};
TH_HIDDEN const struct tn_obj *tn_find(int64_t *calls, int64_t from);

enum { TH_CPU_SSE2, TH_CPU_AVX2_FMA, TH_CPU_AVX512F };
int th_cpu_has(int feature);

#endif
