/*
 * rm_init.c: everything outside the hit path. The constructor finds the
 * patched objects and fills their slots; the thread registry lets the
 * statistics sum every thread; fork and exit handling.
 *
 * This library has no Go in it: the JIT (Go) is loaded by rm_load.c at the
 * first hot loop, so a process that never runs one pays for no runtime,
 * thread or heap of Go's.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../rm_internal.h"
#include "tv_cpu.h"

RM_HIDDEN void rm_thread_forget(void);
RM_HIDDEN struct rm_thread *rm_thread_nomem(void);

/* What the statistics need about each object; the fast path reads only
 * rm_g.obj. */
struct rm_obj_info {
	char *path;
	struct rm_restore_obj restore;
	uintptr_t bias;
	const char *profile, *build_id, *tool_version;
	const unsigned char *sites;
	const char *strtab;
	uint32_t site_size;
};

static struct {
	int disabled;
	char *stats_path;
	uint64_t restored;      /* dispatch-table entries put back */
	uint32_t nobjs;
	struct rm_obj_info obj[RM_MAX_OBJECTS];

	pthread_mutex_t mu;     /* registry, dead-thread table */
	pthread_key_t key;
	int key_ok;
	struct rm_thread *threads;
	uint64_t nthreads;      /* ever registered */
	struct rm_entry *dead;  /* folded counts of exited threads (hash) */
	uint64_t dead_mask, dead_used;
} rm_s = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* ------------------------------------------------------------------------ */
/* Finding the patched objects. */

#define RM_MAX_SEGS 64

struct rm_found {
	struct rm_objinfo info;
	char *path;
	uintptr_t bias;
	struct rm_seg *segs;    /* for rm_restore_dispatch */
	int nsegs;
	int keyed;      /* has sites keyed by header (RM_SITE_KEYED) */
};

static struct rm_restore_obj rm_restore_of(const struct rm_found *f)
{
	return (struct rm_restore_obj){
		.bias = f->bias, .segs = f->segs, .nsegs = f->nsegs,
		.sites = f->info.sites, .nsites = f->info.nsites,
		.site_size = f->info.site_size,
	};
}

struct rm_scan {
	struct rm_found found[RM_MAX_OBJECTS];
	uint32_t nfound;
	uint64_t nsites;
};

static char *rm_object_name(const char *name)
{
	if (name && *name)
		return strdup(name);
	char buf[PATH_MAX];
	ssize_t r = readlink("/proc/self/exe", buf, sizeof buf - 1);
	if (r <= 0)
		return strdup("main program");
	buf[r] = 0;
	return strdup(buf);
}

static void rm_refuse(const char *name, const char *why)
{
	char *p = rm_object_name(name);
	fprintf(stderr, "redmagic: %s: %s, running without the runtime\n",
		p ? p : "?", why);
	free(p);
}

static int rm_phdr_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct rm_scan *sc = arg;
	(void)size;
	struct rm_seg segs[RM_MAX_SEGS];
	int nsegs = 0;
	const ElfW(Phdr) *dyn = NULL;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type == PT_DYNAMIC)
			dyn = ph;
		if ((ph->p_type == PT_LOAD || ph->p_type == PT_GNU_RELRO) &&
		    nsegs < RM_MAX_SEGS)
			segs[nsegs++] = (struct rm_seg){
				.vaddr = ph->p_vaddr,
				.memsz = ph->p_memsz,
				.flags = ph->p_flags,
				.relro = ph->p_type == PT_GNU_RELRO,
			};
	}
	if (!dyn)
		return 0;
	const ElfW(Dyn) *d = (const void *)(info->dlpi_addr + dyn->p_vaddr);
	uint64_t hv = 0;
	int have = 0;
	for (size_t i = 0; i < dyn->p_memsz / sizeof *d && d[i].d_tag != DT_NULL;
	     i++)
		if (d[i].d_tag == DT_REDMAGIC) {
			hv = d[i].d_un.d_ptr;
			have = 1;
			break;
		}
	if (!have)
		return 0;
	char why[256];
	struct rm_objdesc od = {
		.bias = info->dlpi_addr, .segs = segs, .nsegs = nsegs,
		.hdr_vaddr = hv,
	};
	struct rm_objinfo oi;
	if (rm_validate(&od, &oi, why, sizeof why) != 0) {
		rm_refuse(info->dlpi_name, why);
		return 0;
	}
	if (sc->nfound == RM_MAX_OBJECTS) {
		snprintf(why, sizeof why, "more than %d patched objects",
			 RM_MAX_OBJECTS);
		rm_refuse(info->dlpi_name, why);
		return 0;
	}
	if (sc->nsites + oi.nsites > RM_MAX_SITES) {
		rm_refuse(info->dlpi_name, "too many sites in all objects");
		return 0;
	}
	struct rm_found *f = &sc->found[sc->nfound];
	f->info = oi;
	f->path = strdup(info->dlpi_name ? info->dlpi_name : "");
	f->bias = info->dlpi_addr;
	f->segs = malloc(nsegs * sizeof *segs);
	if (f->segs) {
		memcpy(f->segs, segs, nsegs * sizeof *segs);
		f->nsegs = nsegs;
	}
	sc->nfound++;
	sc->nsites += oi.nsites;
	return 0;
}

/* Fills rm_g.obj and writes the slots, once every object is accepted. */
static void rm_install(struct rm_scan *sc)
{
	rm_g.overflow = calloc(sc->nsites ? sc->nsites : 1, sizeof(uint64_t));
	if (!rm_g.overflow) {
		for (uint32_t k = 0; k < sc->nfound; k++)
			rm_refuse(sc->found[k].path, "out of memory");
		return;
	}
	uint32_t base = 0;
	for (uint32_t k = 0; k < sc->nfound; k++) {
		struct rm_found *f = &sc->found[k];
		uint8_t *flags = calloc(f->info.nsites ? f->info.nsites : 1, 1);
		uint64_t *resume = calloc(f->info.nsites ? f->info.nsites : 1, 8);
		struct rm_site_rt *srt = calloc(f->info.nsites ? f->info.nsites : 1,
						sizeof *srt);
		f->keyed = 0;
		if (!flags || !resume || !srt) {
			rm_refuse(f->path, "out of memory");
			return;
		}
		for (uint32_t i = 0; i < f->info.nsites; i++) {
			struct rm_site s;
			memcpy(&s, f->info.sites + (uint64_t)i * f->info.site_size,
			       sizeof s);
			flags[i] = (uint8_t)s.flags;
			resume[i] = f->bias + s.resume;
			/* The patcher wrote link-time resume addresses. */
			if (s.flags & RM_SITE_IC) {
				struct rm_site *m = (struct rm_site *)(uintptr_t)(
					f->info.sites +
					(uint64_t)i * f->info.site_size);
				for (int w = RM_IC_FIRST_WAY(s.flags);
				     w < RM_IC_WAYS; w++) {
					__atomic_store_n(&m->ic_id[w], RM_IC_EMPTY,
							 __ATOMIC_RELAXED);
					__atomic_store_n(&m->ic_head[w],
							 resume[i],
							 __ATOMIC_RELEASE);
				}
			}
			f->keyed |= (s.flags & RM_SITE_KEYED) != 0;
		}
		const char *str = f->info.strtab;
		struct rm_patch_header *h = f->info.hdr;
		rm_s.obj[k] = (struct rm_obj_info){
			.path = f->path,
			.restore = rm_restore_of(f),
			.bias = f->bias,
			.profile = str + h->profile,
			.build_id = str + h->build_id,
			.tool_version = str + h->tool_version,
			.sites = f->info.sites,
			.strtab = str,
			.site_size = f->info.site_size,
		};
		rm_g.obj[k] = (struct rm_obj_rt){
			.base = base, .nsites = f->info.nsites, .flags = flags,
			.resume = resume, .sites = (unsigned char *)f->info.sites,
			.site_size = f->info.site_size, .srt = srt,
		};
		base += f->info.nsites;
	}
	rm_g.nsites_total = base;
	rm_s.nobjs = sc->nfound;
	for (uint32_t k = 0; k < sc->nfound; k++) {
		struct rm_patch_header *h = sc->found[k].info.hdr;
		for (int a = 0; a < RM_API_COUNT; a++)
			__atomic_store_n(&h->api_fn[a],
					 (uint64_t)(uintptr_t)rm_api_entries[k][a],
					 __ATOMIC_RELEASE);
		__atomic_store_n(&h->hit_fn, (uint64_t)(uintptr_t)rm_hit_fns[k][sc->found[k].keyed],
				 __ATOMIC_RELEASE);
	}
}

/* ------------------------------------------------------------------------ */
/* Thread registry. */

static uint64_t rm_fold_hash(uint32_t site1, uint64_t id)
{
	return ((id ^ ((uint64_t)site1 * 0xd6e8feb86659fd93ull)) *
		0x9e3779b97f4a7c15ull) >> 32;
}

/* Adds a dead thread's counter to rm_s.dead, under rm_s.mu. Returns -1 when
 * out of memory (the caller then counts the hits as overflow). */
static int rm_dead_add(uint32_t site1, uint64_t id, uint64_t count,
		       uint32_t slow)
{
	if ((rm_s.dead_used + 1) * 2 > rm_s.dead_mask + 1 || !rm_s.dead) {
		uint64_t n = rm_s.dead ? (rm_s.dead_mask + 1) * 2 : 1024;
		struct rm_entry *ne = calloc(n, sizeof *ne);
		if (!ne)
			return -1;
		for (uint64_t i = 0; rm_s.dead && i <= rm_s.dead_mask; i++) {
			struct rm_entry *o = &rm_s.dead[i];
			if (!o->site1)
				continue;
			uint64_t j = rm_fold_hash(o->site1, o->id) & (n - 1);
			while (ne[j].site1)
				j = (j + 1) & (n - 1);
			ne[j] = *o;
		}
		free(rm_s.dead);
		rm_s.dead = ne;
		rm_s.dead_mask = n - 1;
	}
	uint64_t j = rm_fold_hash(site1, id) & rm_s.dead_mask;
	for (;; j = (j + 1) & rm_s.dead_mask) {
		struct rm_entry *e = &rm_s.dead[j];
		if (e->site1 == site1 && e->id == id) {
			e->count += count;
			e->slow += slow;
			return 0;
		}
		if (!e->site1) {
			*e = (struct rm_entry){ .id = id, .site1 = site1,
						.count = count, .slow = slow };
			rm_s.dead_used++;
			return 0;
		}
	}
}

static void rm_thread_exit(void *p)
{
	struct rm_thread *t = p;
	if (!t || t == rm_thread_nomem())
		return;
	pthread_mutex_lock(&rm_s.mu);
	struct rm_table *tab = t->table;
	for (uint64_t i = 0; i <= tab->mask; i++)
		if (tab->e[i].site1 &&
		    rm_dead_add(tab->e[i].site1, tab->e[i].id,
				tab->e[i].count, tab->e[i].slow) != 0)
			__atomic_fetch_add(&rm_g.overflow[tab->e[i].site1 - 1],
					   tab->e[i].count, __ATOMIC_RELAXED);
	if (t->prev)
		t->prev->next = t->next;
	else
		rm_s.threads = t->next;
	if (t->next)
		t->next->prev = t->prev;
	pthread_mutex_unlock(&rm_s.mu);
	rm_thread_forget();
	while (tab) {
		struct rm_table *older = tab->older;
		rm_unmap(tab, tab->len);
		tab = older;
	}
	rm_unmap(t, t->len);
}

void rm_thread_register(struct rm_thread *t)
{
	pthread_mutex_lock(&rm_s.mu);
	t->next = rm_s.threads;
	t->prev = NULL;
	if (t->next)
		t->next->prev = t;
	rm_s.threads = t;
	rm_s.nthreads++;
	t->registered = 1;
	pthread_mutex_unlock(&rm_s.mu);
	if (rm_s.key_ok)
		pthread_setspecific(rm_s.key, t);
}

/* ------------------------------------------------------------------------ */
/* fork: Go's threads do not exist in the child, and a Go call that
 * allocates would hang there. The child keeps counting in C, and never
 * loads the JIT either (another thread may hold the loader's locks). */

static void rm_atfork_prepare(void)
{
	rm_jit_fork_lock();
	if (rm_g.jit)
		rm_g.ops.fork_prepare();
	pthread_mutex_lock(&rm_s.mu);
}

static void rm_atfork_parent(void)
{
	pthread_mutex_unlock(&rm_s.mu);
	if (rm_g.jit)
		rm_g.ops.fork_parent();
	rm_jit_fork_unlock(0);
}

static void rm_atfork_child(void)
{
	rm_g.forked = 1;
	if (rm_g.jit) {
		rm_g.jit = 0;
		rm_g.ops.fork_child();
	}
	pthread_mutex_init(&rm_s.mu, NULL);
	rm_jit_fork_unlock(1);
}

/* Every served object's dispatch entries to their originals (to_orig),
 * counted in the statistics, or back to their trampolines. */
static void rm_dispatch_all(int to_orig)
{
	for (uint32_t k = 0; k < rm_s.nobjs; k++) {
		if (to_orig)
			rm_s.restored += rm_restore_dispatch(&rm_s.obj[k].restore);
		else
			rm_rearm_dispatch(&rm_s.obj[k].restore);
	}
}

/* The JIT will not run: unless statistics were asked for, counting
 * cannot pay any more, and the original dispatch entries go back. */
void rm_step_aside(void)
{
	if (!rm_s.stats_path)
		rm_dispatch_all(1);
}

/* Serialises going quiet and re-arming. */
static pthread_mutex_t rm_quiet_mu = PTHREAD_MUTEX_INITIALIZER;

void rm_disarm_site(unsigned k, uint32_t site)
{
	pthread_mutex_lock(&rm_quiet_mu);
	if (!rm_g.gov_quiet && k < rm_s.nobjs &&
	    rm_swap_site(&rm_s.obj[k].restore, site, 1)) {
		rm_s.restored++;
		rm_g.cond_disarmed++;
	}
	pthread_mutex_unlock(&rm_quiet_mu);
}

void rm_rearm_disarmed(void)
{
	pthread_mutex_lock(&rm_quiet_mu);
	if (rm_g.cond_disarmed && !rm_g.gov_quiet) {
		for (uint32_t k = 0; k < rm_s.nobjs; k++)
			rm_swap_sites(&rm_s.obj[k].restore, rm_g.obj[k].flags,
				      RM_SITE_COND, 0);
		rm_g.cond_disarmed = 0;
	}
	pthread_mutex_unlock(&rm_quiet_mu);
}

static void rm_rearm(void)
{
	pthread_mutex_lock(&rm_quiet_mu);
	if (rm_g.gov_quiet && !rm_g.forked) {
		rm_g.gov_quiet_hits = 0;
		rm_g.cond_disarmed = 0;
		rm_dispatch_all(0);
		__atomic_store_n(&rm_g.gov_quiet, 0, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&rm_quiet_mu);
}

int rm_spawn_quiet(void *(*fn)(void *), void *arg, size_t stack)
{
	sigset_t all, saved;
	sigfillset(&all);
	pthread_attr_t attr;
	pthread_t th;
	int ok = pthread_attr_init(&attr) == 0;
	ok = ok && pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0;
	ok = ok && (!stack || pthread_attr_setstacksize(&attr, stack) == 0);
	ok = ok && pthread_sigmask(SIG_BLOCK, &all, &saved) == 0;
	if (ok) {
		ok = pthread_create(&th, &attr, fn, arg) == 0;
		pthread_sigmask(SIG_SETMASK, &saved, NULL);
	}
	pthread_attr_destroy(&attr);
	return ok;
}

/* The quiet thread: sleeps through each quiet period, then re-arms. One
 * thread for the whole run, started at the first quiet period, with
 * every signal blocked: no timer of Go's (its first timer would open an
 * epoll and an eventfd descriptor in the program's table) and no signal
 * taken from the program's threads. It never allocates, so it may run
 * while the JIT's threads are parked (tracevm/park.c), which know it by
 * rm_g.quiet_tid. */
static pthread_cond_t rm_quiet_cv = PTHREAD_COND_INITIALIZER;
static uint64_t rm_quiet_period_ns; /* under rm_quiet_mu */
static int rm_quiet_started;

static void *rm_quiet_thread(void *arg)
{
	(void)arg;
	__atomic_store_n(&rm_g.quiet_tid, (int32_t)syscall(SYS_gettid),
			 __ATOMIC_RELEASE);
	pthread_mutex_lock(&rm_quiet_mu);
	for (;;) {
		while (!rm_quiet_period_ns)
			pthread_cond_wait(&rm_quiet_cv, &rm_quiet_mu);
		uint64_t ns = rm_quiet_period_ns;
		rm_quiet_period_ns = 0;
		pthread_mutex_unlock(&rm_quiet_mu);
		struct timespec ts = { .tv_sec = ns / 1000000000ull,
				       .tv_nsec = ns % 1000000000ull };
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
		rm_rearm();
		pthread_mutex_lock(&rm_quiet_mu);
	}
	return NULL;
}

/* No trace pays: the dispatch entries go back, so that the program runs
 * at the original's speed, and come back after a quiet period, twice as
 * long each time, to see whether the program's later loops pay. */
void rm_go_quiet(void)
{
	pthread_mutex_lock(&rm_quiet_mu);
	if (!rm_g.gov_quiet) {
		uint64_t ns = rm_g.gov_rearm_ns ? rm_g.gov_rearm_ns : rm_g.gov_quiet_ns;
		if (!rm_quiet_started)
			rm_quiet_started = rm_spawn_quiet(rm_quiet_thread, NULL,
							  64 << 10);
		/* Without a thread to re-arm them, the entries stay. */
		if (rm_quiet_started) {
			rm_quiet_period_ns = ns;
			pthread_cond_signal(&rm_quiet_cv);
			rm_dispatch_all(1);
			rm_g.gov_quiet = 1;
			rm_g.gov_quiets++;
			rm_g.gov_rearm_ns = ns * 2;
		}
	}
	pthread_mutex_unlock(&rm_quiet_mu);
	/* Parking skips the quiet thread by its id: wait for it. */
	for (int i = 0; i < 1000 && rm_quiet_started &&
			!__atomic_load_n(&rm_g.quiet_tid, __ATOMIC_ACQUIRE); i++)
		sched_yield();
}

RM_HIDDEN int rm_object_desc(uint32_t k, struct rm_jit_obj *out)
{
	if (k >= rm_s.nobjs)
		return -1;
	struct rm_obj_info *o = &rm_s.obj[k];
	*out = (struct rm_jit_obj){
		.path = o->path, .profile = o->profile, .bias = o->bias, .base = rm_g.obj[k].base,
		.nsites = rm_g.obj[k].nsites, .sites = o->sites,
		.site_size = o->site_size,
	};
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Statistics at exit. */

static void rm_atexit(void)
{
	/* A forked child writes nothing (a Go call could hang there, and the
	 * file belongs to the parent); one that exec()s starts afresh. */
	if (rm_g.forked || !rm_s.stats_path)
		return;
	struct rm_snapshot snap = {
		.out = rm_s.stats_path,
		.pid = getpid(),
		.disabled = rm_s.disabled,
		.hot_threshold = rm_g.hot_threshold,
		.invalid_site_calls = __atomic_load_n(&rm_g.invalid_site_calls,
						      __ATOMIC_RELAXED),
		.dispatch_restored = rm_s.restored,
		.inline_cache_fills = __atomic_load_n(&rm_g.ic_fills,
						      __ATOMIC_RELAXED),
		.governor_quiets = rm_g.gov_quiets,
		.jit_rate_best = __atomic_load_n(&rm_g.rate_best,
						 __ATOMIC_RELAXED),
		.jit_rate_refusals = __atomic_load_n(&rm_g.rate_refusals,
						     __ATOMIC_RELAXED),
	};
	struct rm_snap_obj objs[RM_MAX_OBJECTS];
	struct rm_snap_site *sites = NULL;
	struct rm_snap_row *rows = NULL;

	pthread_mutex_lock(&rm_s.mu);
	/* Each table pointer is loaded once: its owner may grow it meanwhile,
	 * and the retired table stays mapped until the owner exits, which
	 * needs this mutex. */
	uint64_t nlive = 0, nrows = rm_s.dead_used;
	for (struct rm_thread *t = rm_s.threads; t; t = t->next)
		nlive++;
	struct rm_table **tabs = calloc(nlive ? nlive : 1, sizeof *tabs);
	if (tabs) {
		uint64_t k = 0;
		for (struct rm_thread *t = rm_s.threads; t; t = t->next) {
			tabs[k] = __atomic_load_n(&t->table, __ATOMIC_ACQUIRE);
			nrows += tabs[k++]->mask + 1;
		}
	}
	sites = calloc(rm_g.nsites_total ? rm_g.nsites_total : 1, sizeof *sites);
	rows = malloc((nrows ? nrows : 1) * sizeof *rows);
	if (tabs && sites && rows) {
		uint64_t r = 0;
		for (uint64_t i = 0; rm_s.dead && i <= rm_s.dead_mask; i++) {
			struct rm_entry *e = &rm_s.dead[i];
			if (e->site1)
				rows[r++] = (struct rm_snap_row){
					.id = e->id, .count = e->count,
					.site = e->site1 - 1, .slow = e->slow,
				};
		}
		for (uint64_t k = 0; k < nlive; k++) {
			struct rm_table *tab = tabs[k];
			for (uint64_t i = 0; i <= tab->mask; i++) {
				struct rm_entry *e = &tab->e[i];
				uint32_t s1 = __atomic_load_n(&e->site1,
							      __ATOMIC_ACQUIRE);
				if (!s1)
					continue;
				rows[r++] = (struct rm_snap_row){
					.id = e->id,
					.count = __atomic_load_n(&e->count,
								 __ATOMIC_RELAXED),
					.site = s1 - 1, .slow = e->slow,
				};
			}
		}
		snap.nrows = r;
	}
	snap.threads = rm_s.nthreads;
	pthread_mutex_unlock(&rm_s.mu);

	free(tabs);
	if (!tabs || !sites || !rows) {
		fprintf(stderr, "redmagic: stats: out of memory\n");
		free(sites);
		free(rows);
		return;
	}
	for (uint32_t k = 0; k < rm_s.nobjs; k++) {
		struct rm_obj_info *o = &rm_s.obj[k];
		char *path = *o->path ? o->path : rm_object_name(o->path);
		objs[k] = (struct rm_snap_obj){
			.path = path ? path : o->path,
			.profile = o->profile,
			.build_id = o->build_id, .tool_version = o->tool_version,
			.base = rm_g.obj[k].base, .nsites = rm_g.obj[k].nsites,
		};
		for (uint32_t i = 0; i < rm_g.obj[k].nsites; i++) {
			struct rm_site s;
			memcpy(&s, o->sites + (uint64_t)i * o->site_size, sizeof s);
			uint32_t g = rm_g.obj[k].base + i;
			sites[g] = (struct rm_snap_site){
				.addr = s.addr, .name = o->strtab + s.name,
				.overflow_hits = __atomic_load_n(
					&rm_g.overflow[g], __ATOMIC_RELAXED),
				.object = k, .index = i, .kind = s.kind,
				.api = s.api, .flags = s.flags,
			};
		}
	}
	snap.nobjs = rm_s.nobjs;
	snap.objs = objs;
	snap.nsites = rm_g.nsites_total;
	snap.sites = sites;
	snap.rows = rows;
	char *jit = NULL, *gave_up = NULL;
	if (rm_g.jit)
		rm_g.ops.report(&jit, &gave_up);
	snap.jit_json = jit;
	snap.gave_up_json = gave_up;
	char why[512];
	if (rm_stats_write(&snap, why, sizeof why) != 0)
		fprintf(stderr, "redmagic: stats: %s\n", why);
	for (uint32_t k = 0; k < rm_s.nobjs; k++)
		if (objs[k].path != rm_s.obj[k].path)
			free((char *)objs[k].path);
	free(jit);
	free(gave_up);
	free(sites);
	free(rows);
}

/* ------------------------------------------------------------------------ */

/* An unsigned variable in [lo, hi]; unset or empty gives def, anything
 * else is reported as not `what` and def used. */
static uint64_t rm_env_uint(const char *name, uint64_t def, uint64_t lo,
			    uint64_t hi, const char *what)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return def;
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno || *end || v[0] == '-' || n < lo || n > hi) {
		fprintf(stderr, "redmagic: %s=%s is not %s, using %llu\n", name,
			v, what, (unsigned long long)def);
		return def;
	}
	return n;
}

static uint64_t rm_env_threshold(void)
{
	const char *name = "REDMAGIC_THRESHOLD";
	const char *v = getenv(name);
	if (!v || !*v)
		name = "REDMAGIC_HOT"; /* its name before the JIT */
	return rm_env_uint(name, RM_HOT_DEFAULT, 1, UINT64_MAX,
			   "a positive integer");
}

/* A boolean variable: "0" or "1"; anything else is reported and ignored
 * (def is used). */
static int rm_env_bool(const char *name, int def)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return def;
	if (strcmp(v, "0") == 0 || strcmp(v, "1") == 0)
		return v[0] == '1';
	fprintf(stderr, "redmagic: %s=%s is not 0 or 1, ignored\n", name, v);
	return def;
}

/* Where this process writes its statistics (REDMAGIC_STATS; "1" is
 * standard error): see rm_stats_target. A file without "%p" is owned by
 * the first process that reads the variable, which names itself in
 * REDMAGIC_STATS_OWNER for the processes it starts; one that exec()s keeps
 * its pid, and so its file. NULL when the path does not fit. */
static char *rm_stats_claim(const char *v)
{
	if (strcmp(v, "1") == 0)
		return strdup(v);
	int64_t pid = getpid();
	const char *o = getenv("REDMAGIC_STATS_OWNER");
	int64_t owner = o && *o ? strtoll(o, NULL, 10) : pid;
	char cwd[PATH_MAX], path[PATH_MAX + 32];
	if (!getcwd(cwd, sizeof cwd))
		cwd[0] = 0;
	int shared;
	if (rm_stats_target(v, cwd, pid, owner, path, sizeof path, &shared)) {
		fprintf(stderr, "redmagic: REDMAGIC_STATS=%s: path too long, no statistics\n", v);
		return NULL;
	}
	if (shared && owner == pid) {
		char num[24];
		snprintf(num, sizeof num, "%lld", (long long)pid);
		setenv("REDMAGIC_STATS_OWNER", num, 1);
	}
	return strdup(path);
}

__attribute__((constructor)) static void rm_ctor(void)
{
	const char *stats = getenv("REDMAGIC_STATS");
	if (stats && *stats) {
		rm_s.stats_path = rm_stats_claim(stats);
		if (rm_s.stats_path)
			atexit(rm_atexit);
	}
	rm_s.disabled = rm_env_bool("REDMAGIC_DISABLE", 0);
	if (!rm_s.disabled) {
		rm_g.hot_threshold = rm_env_threshold();
		rm_g.jit_wanted = rm_env_bool("REDMAGIC_JIT", 1);
		rm_g.jit_delay_ns = rm_env_uint("REDMAGIC_JIT_DELAY",
						RM_JIT_DELAY_MS, 0, 86400000,
						"a count of milliseconds") *
				    1000000ull;
		rm_g.jit_eager = rm_env_uint("REDMAGIC_JIT_EAGER",
					     RM_JIT_EAGER_HITS, 0,
					     1ull << 40,
					     "a count of loop iterations");
		rm_g.jit_rate = rm_env_uint("REDMAGIC_JIT_RATE", RM_JIT_RATE,
					    0, 1ull << 40,
					    "a count of back-edges a second");
		rm_g.jit_sync = !rm_env_bool("REDMAGIC_JIT_BACKGROUND", 1);
		rm_g.start_ns = rm_now_ns();
		rm_g.start_tsc = rm_tsc_now();
		rm_g.gov_on = rm_env_bool("REDMAGIC_GOVERNOR", 1);
		rm_g.gov_keep_pct = (uint32_t)rm_env_uint(
			"REDMAGIC_GOVERNOR_PCT", RM_GOV_KEEP_PCT, 0, 1000,
			"a percentage (0-1000)");
		rm_g.gov_quiet_ns = rm_env_uint("REDMAGIC_GOVERNOR_QUIET",
						RM_GOV_QUIET_NS / 1000000, 1,
						86400000,
						"a count of milliseconds") *
				    1000000ull;
		/* Not below 32: a test threshold, too low for windows. */
		rm_g.gov_measure = rm_g.gov_on && rm_g.hot_threshold >= 32;
		uint64_t p = rm_g.hot_threshold / 16;
		p = p < 1 ? 1 : p > RM_SAMPLE_MAX ? RM_SAMPLE_MAX : p;
		/* 1 counts every hit exactly (a profile of the loops). */
		rm_g.sample_period = (uint32_t)rm_env_uint(
			"REDMAGIC_SAMPLE", p, 1, 65536,
			"a count of hits per sample (1-65536)");
	}
	/* With the runtime disabled, or with no JIT to feed and no one asking
	 * for statistics, counting cannot pay: the original dispatch entries
	 * go back and no slot is filled, so the patched program runs the
	 * original's code. */
	if (rm_s.disabled || (!rm_g.jit_wanted && !rm_s.stats_path)) {
		struct rm_scan sc = { 0 };
		dl_iterate_phdr(rm_phdr_cb, &sc);
		for (uint32_t k = 0; k < sc.nfound; k++) {
			struct rm_restore_obj o = rm_restore_of(&sc.found[k]);
			rm_s.restored += rm_restore_dispatch(&o);
		}
		return;
	}
	tv_xsave_probe(&rm_g.xsave_mask, &rm_g.xsave_size, &rm_g.use_xsave);
	rm_s.key_ok = pthread_key_create(&rm_s.key, rm_thread_exit) == 0;
	pthread_atfork(rm_atfork_prepare, rm_atfork_parent, rm_atfork_child);
	struct rm_scan sc = { 0 };
	dl_iterate_phdr(rm_phdr_cb, &sc);
	if (sc.nfound)
		rm_install(&sc);
}
