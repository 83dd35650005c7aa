/*
 * th_api.c: what runtime-stub's rm_api_call does for a patched binary,
 * for the harness's test functions: find the global site of a shim call
 * from its return address, count hits per (site, id), and send hot
 * backwards branches into their trace or into the recorder.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "tv.h"
#include "th.h"

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

enum {
	TH_API_BACKWARDS_BRANCH = 1,
	TH_API_FELLTHROUGH_BRANCH = 2,
	TH_API_FORCE_BEGIN_TRACE = 5,
	TH_API_FORCE_JUMP_TO_TRACE = 7,
	TH_API_DO_NOT_TRACE_FUNCTION = 11,
	TH_API_DISABLE_BRANCH = 12,
	TH_NAPI = 16,
};

/* As rm_api_keyed: APIs whose argument names a loop or a function are
 * counted per (site, argument), the others per site. */
static const uint8_t th_keyed[TH_NAPI] = {
	[TH_API_BACKWARDS_BRANCH] = 1,
	[TH_API_FELLTHROUGH_BRANCH] = 1,
	[TH_API_FORCE_BEGIN_TRACE] = 1,
	[TH_API_FORCE_JUMP_TO_TRACE] = 1,
	[TH_API_DO_NOT_TRACE_FUNCTION] = 1,
	[TH_API_DISABLE_BRANCH] = 1,
};

static struct th_stats th_st;
static volatile int th_jit;
static uint64_t th_threshold = 64;

/* Sites: the address of each shim call instruction, sorted; the index is
 * the global site number. Written once by Setup before the JIT is on. */
static const uint64_t *th_calls;
static const uint8_t *th_apis;
static uint32_t th_ncalls;

int th_set_sites(const uint64_t *calls, const uint8_t *apis, uint32_t n)
{
	for (uint32_t i = 1; i < n; i++)
		if (calls[i - 1] >= calls[i])
			return -1;
	th_apis = apis;
	th_ncalls = n;
	__atomic_store_n(&th_calls, calls, __ATOMIC_RELEASE);
	return 0;
}

void th_drop_traces(uint64_t id)
{
	for (uint32_t gsite = 0; gsite < th_ncalls; gsite++)
		tv_trace_verdict(gsite, id, 0, 0, 1);
}

void th_set_threshold(uint64_t threshold)
{
	th_threshold = threshold ? threshold : 1;
}

void th_set_jit(int on)
{
	__atomic_store_n(&th_jit, on, __ATOMIC_SEQ_CST);
}

int th_jit_on(void)
{
	return th_jit;
}

void th_get_stats(struct th_stats *out)
{
	uint64_t *d = (uint64_t *)out;
	const uint64_t *s = (const uint64_t *)&th_st;
	for (size_t i = 0; i < sizeof th_st / 8; i++)
		d[i] = __atomic_load_n(&s[i], __ATOMIC_RELAXED);
}

int th_atfork(void)
{
	/* The JIT is off in a fork child; its traces keep running there. */
	return pthread_atfork(NULL, NULL, tv_fork_child);
}

static inline void th_inc(uint64_t *p)
{
	__atomic_fetch_add(p, 1, __ATOMIC_RELAXED);
}

/* Binary search for the call instruction at a. */
static int64_t th_site(uint64_t a)
{
	const uint64_t *c = __atomic_load_n(&th_calls, __ATOMIC_ACQUIRE);
	uint32_t lo = 0, hi = th_ncalls;
	if (!c)
		return -1;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (c[mid] < a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < th_ncalls && c[lo] == a ? (int64_t)lo : -1;
}

/* ------------------------------------------------------------------------ */
/* Hit counts per (site, id), shared by all threads: open addressing,
 * inserted with a compare-and-swap on site1 (TH_BUSY while the id is
 * written), never removed. */

#define TH_COUNT_LOG2 16
#define TH_BUSY 0xffffffffu

struct th_count {
	uint64_t id;
	uint32_t site1;
	uint32_t pad;
	uint64_t count;
};

static struct th_count th_counts[1u << TH_COUNT_LOG2];

static inline uint64_t th_hash(uint32_t site1, uint64_t id)
{
	return ((id ^ ((uint64_t)site1 << 40)) * 0x9e3779b97f4a7c15ull) >> 32;
}

/* Counts a hit and returns the new count, 0 when the table is full. */
static uint64_t th_count(uint32_t gsite, uint64_t id)
{
	const uint64_t mask = (1u << TH_COUNT_LOG2) - 1;
	uint32_t site1 = gsite + 1;
	uint64_t i = th_hash(site1, id) & mask;
	for (uint64_t n = 0; n <= mask / 2; n++, i = (i + 1) & mask) {
		struct th_count *e = &th_counts[i];
		uint32_t s = __atomic_load_n(&e->site1, __ATOMIC_ACQUIRE);
		if (s == 0) {
			uint32_t zero = 0;
			if (__atomic_compare_exchange_n(&e->site1, &zero, TH_BUSY,
							0, __ATOMIC_ACQUIRE,
							__ATOMIC_ACQUIRE)) {
				e->id = id;
				__atomic_store_n(&e->site1, site1,
						 __ATOMIC_RELEASE);
				return __atomic_add_fetch(&e->count, 1,
							  __ATOMIC_RELAXED);
			}
			s = zero;
		}
		while (s == TH_BUSY) {
			__builtin_ia32_pause();
			s = __atomic_load_n(&e->site1, __ATOMIC_ACQUIRE);
		}
		if (s == site1 && e->id == id)
			return __atomic_add_fetch(&e->count, 1,
						  __ATOMIC_RELAXED);
	}
	th_inc(&th_st.count_full);
	return 0;
}

/* As rm_record_due: a hot loop without a trace asks for a recording at
 * threshold * 2^k hits, so a loop whose recordings fail backs off. */
static inline int th_record_due(uint64_t c)
{
	uint64_t h = th_threshold;
	if (c < h || c % h)
		return 0;
	uint64_t q = c / h;
	return (q & (q - 1)) == 0;
}

/* A native helper, the tests' probe: 1 when called from a trace or a
 * recording block (redmagic_is_traced() is 0 there too). */
TH_HIDDEN __attribute__((noinline)) int tn_in_trace(void)
{
	return tv_in_cache((uint64_t)__builtin_return_address(0));
}

/* A table lookup that writes no memory, run natively (th_natives): a
 * trace that calls it may still take what it read before as known. */
TH_HIDDEN __attribute__((noinline, noipa)) int64_t tn_lookup(const int64_t *tab, int64_t n, int64_t key)
{
	for (int64_t i = 0; i < n; i++)
		if (tab[i] == key)
			return i;
	return -1;
}

/* A lookup run natively (th_natives) that returns a pointer into its
 * table: the same object for its first from calls (counted in *calls),
 * then one of four. */
static struct tn_obj tn_objs[4] = { { 1, 10 }, { 4, 20 }, { 2, 30 }, { 3, 40 } };

TH_HIDDEN __attribute__((noinline, noipa)) const struct tn_obj *tn_find(int64_t *calls, int64_t from)
{
	int64_t i = (*calls)++;
	return i < from ? &tn_objs[0] : &tn_objs[i & 3];
}

uint64_t th_api(uint64_t arg, uint64_t unused, uint32_t api, uint64_t ret)
{
	(void)unused;
	if (likely(api < TH_NAPI))
		th_inc(&th_st.calls[api]);
	/* A native call from a trace or a recording block. */
	if (unlikely(tv_in_cache(ret))) {
		th_inc(&th_st.from_cache);
		return 0;
	}
	if (!th_jit)
		return 0;
	int64_t site = th_site(ret - 5);
	if (unlikely(site < 0)) {
		th_inc(&th_st.unknown_site);
		return 0;
	}
	if (unlikely(api >= TH_NAPI || th_apis[site] != api)) {
		th_inc(&th_st.api_mismatch);
		return 0;
	}
	uint32_t gsite = (uint32_t)site;
	uint64_t id = th_keyed[api] ? arg : 0;
	uint64_t c = th_count(gsite, id);
	switch (api) {
	case TH_API_BACKWARDS_BRANCH: {
		if (c < th_threshold)
			return 0;
		uint64_t head = tv_trace_lookup(gsite, id);
		if (head) {
			th_inc(&th_st.lookups_hit);
			return head;
		}
		if (!th_record_due(c))
			return 0;
		th_inc(&th_st.record_tries);
		uint64_t r = tv_try_record(gsite, id, ret, 0);
		if (r)
			th_inc(&th_st.record_starts);
		return r;
	}
	case TH_API_FORCE_BEGIN_TRACE:
		th_inc(&th_st.record_tries);
		return tv_try_record(gsite, id, ret, 1);
	case TH_API_FORCE_JUMP_TO_TRACE:
		return tv_trace_lookup(TV_ANY_SITE, id);
	}
	return 0;
}
