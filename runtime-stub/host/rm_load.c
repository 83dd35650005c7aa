/*
 * rm_load.c: loading the JIT. libredmagic-jit.so (Go, c-shared) is loaded
 * from this library's own directory, on a thread of its own, the first
 * time a loop gets hot with the JIT wanted, and never before: a program
 * without hot loops runs with the original's threads, heap and start-up. Anything that keeps the JIT
 * from starting (limits, a missing or refused library, a Go start-up
 * failure the limits below would cause) leaves the counters on, the JIT
 * off and one line on standard error.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "../rm_internal.h"

RM_HIDDEN int rm_object_desc(uint32_t k, struct rm_jit_obj *out);

/* Address space the Go runtime reserves as it starts (its heap arena
 * index and page summaries), with the JIT's code cache and heap on top:
 * below this much headroom under RLIMIT_AS it would die with "fatal
 * error: failed to reserve page summary memory" instead of failing. */
#define RM_JIT_MIN_AS (1ull << 30)

/* Threads the Go runtime starts (sysmon, GC workers, the template thread
 * and spares) before any is reused. */
#define RM_JIT_MIN_THREADS 16

/* on_loader is set under rm_jit_mu, before the JIT starts. */
static struct rm_host rm_host = {
	.abi = RM_JIT_ABI,
	.object_desc = rm_object_desc,
	.ic_clear = rm_ic_clear,
	.quiet_tid = &rm_g.quiet_tid,
};

static int rm_why(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, n, fmt, ap);
	va_end(ap);
	return -1;
}

/* Address space mapped now, from /proc/self/statm (pages); 0 if unknown. */
static uint64_t rm_mapped_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "re");
	if (!f)
		return 0;
	unsigned long long pages = 0;
	if (fscanf(f, "%llu", &pages) != 1)
		pages = 0;
	fclose(f);
	return pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Threads in the process now, from /proc/self/task; 0 if unknown. */
static uint64_t rm_thread_count(void)
{
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return 0;
	uint64_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Refuses to start Go where the Go runtime would abort the process. */
static int rm_jit_preflight(char *why, size_t n)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		uint64_t used = rm_mapped_bytes();
		if (rl.rlim_cur < used + RM_JIT_MIN_AS)
			return rm_why(why, n,
				      "the address-space limit (ulimit -v %llu "
				      "KiB) leaves less than %llu MiB for it",
				      (unsigned long long)rl.rlim_cur >> 10,
				      RM_JIT_MIN_AS >> 20);
	}
	if (getrlimit(RLIMIT_NPROC, &rl) == 0 &&
	    rl.rlim_cur != RLIM_INFINITY && geteuid() != 0) {
		/* The limit counts the user's threads in every process; this
		 * process's own are a lower bound of them. */
		uint64_t used = rm_thread_count();
		if (rl.rlim_cur < used + RM_JIT_MIN_THREADS)
			return rm_why(why, n,
				      "the thread limit (ulimit -u %llu) leaves "
				      "too few threads for it",
				      (unsigned long long)rl.rlim_cur);
	}
	return 0;
}

/* The JIT library's path: beside this library, whatever name the dynamic
 * linker found it by ($ORIGIN of the patched file). */
static int rm_jit_path(char *out, size_t n, char *why, size_t whylen)
{
	Dl_info info;
	if (!dladdr((void *)&rm_host, &info) || !info.dli_fname)
		return rm_why(why, whylen, "cannot tell where libredmagic.so is");
	const char *slash = strrchr(info.dli_fname, '/');
	int dirlen = slash ? (int)(slash - info.dli_fname) : 1;
	const char *dir = slash ? info.dli_fname : ".";
	if (snprintf(out, n, "%.*s/%s", dirlen, dir, RM_JIT_LIBRARY) >= (int)n)
		return rm_why(why, whylen, "path of %s too long", RM_JIT_LIBRARY);
	return 0;
}

static int rm_ops_complete(const struct rm_jit_ops *o)
{
	return o->trace_lookup && o->trace_iters && o->trace_verdict &&
	       o->jit_cycles &&
	       o->retry_due && o->try_record &&
	       o->annotate && o->fork_prepare && o->fork_parent &&
	       o->fork_child && o->report && o->cache && o->park_due &&
	       o->park;
}

/* Loads and starts the JIT. Returns 0 when it runs. */
static int rm_jit_open(char *why, size_t n)
{
	if (rm_jit_preflight(why, n) != 0)
		return -1;
	char path[PATH_MAX];
	if (rm_jit_path(path, sizeof path, why, n) != 0)
		return -1;
	/*
	 * The Go runtime starts in threads of its own created while the
	 * library loads, and they keep the signal mask in force then (Go
	 * unblocks only synchronous signals in a library). With nothing
	 * blocked, a process-directed signal the interpreter has blocked in
	 * its own threads (Python's pthread_sigmask, sigwait) would be taken
	 * by a Go thread instead of staying pending.
	 */
	sigset_t all, saved;
	sigfillset(&all);
	static const int sync_sigs[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL,
					 SIGTRAP, SIGSYS };
	for (size_t i = 0; i < sizeof sync_sigs / sizeof sync_sigs[0]; i++)
		sigdelset(&all, sync_sigs[i]);
	/* Sent to each of them alone, to park it while the JIT is idle. */
	sigdelset(&all, SIGRTMIN + RM_PARK_SIGNAL_OFFSET);
	/* Set, not added to: the loader thread starts with everything
	 * blocked. */
	int masked = pthread_sigmask(SIG_SETMASK, &all, &saved) == 0;
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (masked)
		pthread_sigmask(SIG_SETMASK, &saved, NULL);
	if (!h)
		return rm_why(why, n, "%s", dlerror());
	rm_jit_start_fn start = (rm_jit_start_fn)dlsym(h, RM_JIT_START);
	if (!start)
		return rm_why(why, n, "%s: no %s", path, RM_JIT_START);
	struct rm_jit_ops ops;
	memset(&ops, 0, sizeof ops);
	why[0] = 0;
	int r = start(&rm_host, &ops, why, n);
	if (r > 0)
		return 1; /* nothing to trace: quietly off */
	if (r < 0)
		return -1;
	if (!rm_ops_complete(&ops))
		return rm_why(why, n, "%s: incomplete interface", path);
	rm_g.ops = ops;
	return 0;
}

uint64_t rm_now_ns(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* Opens a new window of the loops' rate at now (rm_loops_fast). */
static void rm_rate_open(uint64_t now)
{
	__atomic_store_n(&rm_g.rate_ns, now, __ATOMIC_RELAXED);
	__atomic_store_n(&rm_g.rate_hits, 0, __ATOMIC_RELAXED);
}

/* Whether hot loops run at least jit_rate back-edges a second: w more
 * hits at now are added to the open window, which is judged once it is
 * RM_JIT_RATE_MIN_NS long (shorter ones would take one loop's hits of long
 * ago for a burst) and replaced by a new one once it is RM_JIT_RATE_MAX_NS
 * old (a slow phase long past must not hide a fast one now). */
static int rm_loops_fast(uint64_t now, uint64_t w)
{
	if (!rm_g.jit_rate)
		return 1;
	uint64_t start = __atomic_load_n(&rm_g.rate_ns, __ATOMIC_RELAXED);
	uint64_t hits = __atomic_add_fetch(&rm_g.rate_hits, w,
					   __ATOMIC_RELAXED);
	if (!start || now < start) {
		rm_rate_open(now);
		return 0;
	}
	uint64_t span = now - start;
	if (span < RM_JIT_RATE_MIN_NS)
		return 0;
	uint64_t rate = hits * 1000000000ull / span;
	if (rate > __atomic_load_n(&rm_g.rate_best, __ATOMIC_RELAXED))
		__atomic_store_n(&rm_g.rate_best, rate, __ATOMIC_RELAXED);
	if (span >= RM_JIT_RATE_MAX_NS)
		rm_rate_open(now);
	return rate >= rm_g.jit_rate;
}

int rm_jit_due(uint64_t c, uint64_t w)
{
	uint64_t now = rm_now_ns();
	if (!now)
		return 1;
	int fast = rm_loops_fast(now, w);
	uint64_t ran = now - rm_g.start_ns, delay = rm_g.jit_delay_ns;
	if (rm_g.jit_eager && c >= rm_g.jit_eager)
		delay /= 4;
	if (ran < delay)
		return 0;
	if (!fast)
		__atomic_fetch_add(&rm_g.rate_refusals, 1, __ATOMIC_RELAXED);
	return fast;
}

/* Held while the JIT loads; a fork waits for it (rm_jit_fork_lock), so
 * that no child starts with the loader's locks (ld.so's, Go's) held by a
 * thread it does not have. */
static pthread_mutex_t rm_jit_mu = PTHREAD_MUTEX_INITIALIZER;

void rm_jit_fork_lock(void)
{
	pthread_mutex_lock(&rm_jit_mu);
}

void rm_jit_fork_unlock(int child)
{
	if (child)
		pthread_mutex_init(&rm_jit_mu, NULL);
	else
		pthread_mutex_unlock(&rm_jit_mu);
}

/* Loads the JIT; on_loader: on rm_jit_begin's thread. */
static int rm_jit_load_on(int on_loader)
{
	pthread_mutex_lock(&rm_jit_mu);
	if (!rm_g.jit_tried && !rm_g.forked) {
		rm_host.on_loader = (uint32_t)on_loader;
		rm_host.start_tsc = rm_g.start_tsc;
		char why[512];
		int r = rm_jit_open(why, sizeof why);
		if (r < 0)
			fprintf(stderr, "redmagic: the JIT cannot start: %s; "
				"running on without it\n", why);
		if (r == 0) {
			__atomic_store_n(&rm_g.jit, 1, __ATOMIC_RELEASE);
			rm_jit_replay();
		}
		else
			rm_step_aside();
		__atomic_store_n(&rm_g.jit_tried, 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&rm_jit_mu);
	return rm_g.jit;
}

int rm_jit_load(void)
{
	return rm_jit_load_on(0);
}

static void *rm_jit_loader(void *arg)
{
	(void)arg;
	rm_jit_load_on(1);
	return NULL;
}

/*
 * Starts loading the JIT: on a thread of its own, with every signal
 * blocked, while the thread that found the first hot loop goes on
 * interpreting. Loading is 8-12 ms of one core on the development machine
 * (the library's relocations, the Go runtime's start, reading the
 * program's ELF), most of it page faults at 10 us each; on the program's
 * thread all of it was the program's time. Recordings begin once it is
 * done (rm_g.jit). Without a thread (limits), or with
 * REDMAGIC_JIT_BACKGROUND=0 (tests that want the JIT at the first hot
 * loop), it loads here.
 *
 * Loading opens descriptors for a moment (the program's files, the maps,
 * the Go runtime's reading of cgroups), each the lowest free number: from
 * another thread, one could take the number a program that closed its
 * stdin, stdout or stderr is about to open again, or be seen there (a
 * child started with stdin closed found fd 0 open). With any of the three
 * closed, the JIT loads here, where the program waits for it.
 */
void rm_jit_begin(void)
{
	if (__atomic_exchange_n(&rm_g.jit_started, 1, __ATOMIC_ACQ_REL))
		return;
	/* Loading calls the C library (fcntl, thread creation, dlopen):
	 * the program's errno stays its own. */
	int saved = errno;
	if (rm_g.jit_sync || !rm_std_fds_open() ||
	    !rm_spawn_quiet(rm_jit_loader, NULL, 0))
		rm_jit_load();
	errno = saved;
}

/* Whether descriptors 0, 1 and 2 are all open. */
int rm_std_fds_open(void)
{
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) == -1)
			return 0;
	return 1;
}
