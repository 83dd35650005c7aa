/*
 * rm_jit.c: the JIT library's side of the meeting with the runtime
 * (rm_internal.h). The runtime loads this library at the first hot loop
 * and calls rm_jit_start, which starts the tracing machine (Go) and hands
 * back the entry points of its C side (tracevm/tv.c).
 */
#include <stddef.h>
#include <stdio.h>

#include "rm_internal.h"
#include "tv.h"
#include "_cgo_export.h"

_Static_assert(offsetof(struct tv_global, cache_hi) ==
		       offsetof(struct tv_global, cache_lo) + 8,
	       "rm_jit_ops.cache reads cache_lo and cache_hi as a pair");
_Static_assert(RM_ANY_SITE == TV_ANY_SITE, "force_jump_to_trace's site");
_Static_assert(RM_PARK_SIGNAL_OFFSET == TV_PARK_SIGNAL_OFFSET,
	       "the parking signal");

static const struct rm_host *rm_host_p;

int rm_host_object_desc(uint32_t k, struct rm_jit_obj *out)
{
	return rm_host_p ? rm_host_p->object_desc(k, out) : -1;
}

int rm_host_on_loader(void)
{
	return rm_host_p && rm_host_p->on_loader;
}

/* The runtime's calls into Go: the JIT's threads are released first. */
static void rm_jit_annotate(int what, uint64_t arg)
{
	tv_go_enter();
	rmJITCall(what, arg);
}

static void rm_jit_report(char **jit, char **gave_up)
{
	tv_go_enter();
	rmJITReport(jit, gave_up);
}

/* The quiet thread's id, for rmJITStart's tv_park_setup. */
const volatile int32_t *rm_host_quiet_tid(void)
{
	return rm_host_p ? rm_host_p->quiet_tid : 0;
}

__attribute__((visibility("default"))) int
rm_jit_start(const struct rm_host *host, struct rm_jit_ops *ops, char *why,
	     size_t whylen)
{
	if (!host || host->abi != RM_JIT_ABI) {
		snprintf(why, whylen, "runtime speaks JIT ABI %u, the JIT %u",
			 host ? host->abi : 0, RM_JIT_ABI);
		return -1;
	}
	if (rm_host_p)
		return -1; /* started once per process */
	rm_host_p = host;
	tv_g.unpublish_hook = host->ic_clear;
	int r = rmJITStart(why, whylen);
	if (r != 0)
		return r;
	tv_budget_from(host->start_tsc);
	*ops = (struct rm_jit_ops){
		.trace_lookup = tv_trace_lookup,
		.trace_iters = tv_trace_iters,
		.jit_cycles = tv_jit_cycles,
		.trace_verdict = tv_trace_verdict,
		.retry_due = tv_retry_due,
		.try_record = tv_try_record,
		.annotate = rm_jit_annotate,
		.fork_prepare = tv_fork_prepare,
		.fork_parent = tv_fork_parent,
		.fork_child = tv_fork_child,
		.report = rm_jit_report,
		.cache = (const volatile uint64_t *)&tv_g.cache_lo,
		.generation = &tv_g.generation,
		.park_due = tv_park_due,
		.park = tv_park,
	};
	return 0;
}
