/*
 * park.c: parking the Go runtime's threads while the JIT has nothing to do.
 *
 * Loading the JIT starts the Go runtime's threads, and from the first one
 * glibc's malloc takes its arena lock and uses atomic instructions on every
 * call its thread cache does not serve (its __libc_single_threaded goes to
 * 0 for good): an interpreter that allocates as much as Lua does ran 5-9%
 * slower with one idle thread beside it, whether or not a trace ever ran.
 * The JIT's Go work is done on the calling program thread (recording) or
 * on its compiler goroutine (tv_g.bg_jobs counts its work: no parking
 * meanwhile), so between calls into Go and compilations its threads only
 * wait.
 *
 * Parking stops them where they cannot be inside the C library and gives
 * the program its single-threaded malloc back. Each other thread of the
 * process must have the JIT's threads' signal mask (tv_park_golike: a
 * thread of the program's is never signalled, it could see a system call
 * interrupted) and is sent TV_PARK_SIGNAL, whose handler waits on a futex
 * when the thread was interrupted in Go code (not in C, not in the vDSO,
 * not in another signal handler) and says "busy" otherwise. Only when
 * every one waits, and the set of threads is the same after as before
 * (none was being created), is glibc's own flag set to 1. Go code reaches
 * the C library only through cgo (thread creation, the JIT's own C), so a
 * thread stopped in Go code holds none of its locks and touches none of
 * its state until released.
 *
 * Every call into Go first unparks (tv_go_enter): the flag goes back to 0,
 * then the threads are released. A thread the program creates meanwhile
 * sets the flag to 0 itself (pthread_create) and fails later attempts
 * while it lives. The runtime's quiet thread (host.quiet_tid), which
 * sleeps through the governor's quiet periods and never allocates, is
 * left running. A fork while parked keeps the threads parked (glibc's
 * fork then takes no malloc lock, none being held); the child has none of
 * them. What glibc skips for a single-threaded process beyond malloc's
 * locks (setuid's broadcast to every thread, for one) skips the parked
 * threads too: they only ever run the JIT's Go. REDMAGIC_PARK=0 turns
 * parking off.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>
#include <linux/futex.h>

#include "tv.h"

#pragma GCC target("general-regs-only")
#pragma GCC optimize("no-tree-loop-distribute-patterns")

/* After the pragmas: its helpers are compiled for general registers too. */
#include "tv_cpu.h"

/* Idle time after a call into Go before the threads are parked, and the
 * longest wait between failed attempts. */
#define TV_PARK_IDLE_MS 20
#define TV_PARK_BACKOFF_MAX_MS 1000
/* How long an attempt waits for every thread to answer. */
#define TV_PARK_WAIT_NS (5ll * 1000 * 1000)
/* Threads an attempt can handle; more and parking is off. */
#define TV_PARK_MAX_THREADS 64

struct tv_park tv_park_g;

int64_t tv_park_now_ns(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* The next attempt is due in ms milliseconds. */
static void tv_park_after(struct tv_park *p, uint64_t ms)
{
	p->due_tsc = tv_rdtsc() + ms * p->cycles_per_ms;
}

static long tv_futex(volatile uint32_t *w, int op, uint32_t v)
{
	return syscall(SYS_futex, w, op, v, NULL, NULL, 0);
}

/* Runs on the thread interrupted; async-signal-safe. */
static void tv_park_handler(int sig, siginfo_t *si, void *ucv)
{
	struct tv_park *p = &tv_park_g;
	int saved = errno;
	uint32_t gen = (uint32_t)si->si_value.sival_int;
	if (si->si_code != SI_QUEUE || si->si_pid != getpid() || gen == 0 ||
	    __atomic_load_n(&p->req, __ATOMIC_ACQUIRE) != gen) {
		/* Not ours, or an attempt already given up. */
		errno = saved;
		return;
	}
	const ucontext_t *uc = ucv;
	uint64_t pc = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
	uint64_t sp = (uint64_t)uc->uc_mcontext.gregs[REG_RSP];
	int ok = pc - p->go_lo < p->go_hi - p->go_lo;
	if (ok) {
		/* Interrupted in a signal handler that runs Go code (on the
		 * alternate stack): what that handler interrupted may hold a
		 * lock of the C library. */
		stack_t ss;
		if (sigaltstack(NULL, &ss) == 0 && !(ss.ss_flags & SS_DISABLE) &&
		    sp - (uint64_t)(uintptr_t)ss.ss_sp < ss.ss_size)
			ok = 0;
	}
	if (!ok) {
		__atomic_fetch_add(&p->busy, 1, __ATOMIC_ACQ_REL);
		errno = saved;
		return;
	}
	__atomic_fetch_add(&p->inside, 1, __ATOMIC_ACQ_REL);
	__atomic_fetch_add(&p->acked, 1, __ATOMIC_ACQ_REL);
	for (;;) {
		uint32_t r = __atomic_load_n(&p->released, __ATOMIC_ACQUIRE);
		if ((int32_t)(r - gen) >= 0)
			break;
		tv_futex(&p->released, FUTEX_WAIT_PRIVATE, r);
	}
	__atomic_fetch_sub(&p->inside, 1, __ATOMIC_ACQ_REL);
	errno = saved;
}

int tv_park_setup(uint64_t go_lo, uint64_t go_hi, const volatile int32_t *trusted)
{
	struct tv_park *p = &tv_park_g;
	if (p->sig || go_lo >= go_hi)
		return 0;
	/* glibc's own flag, which malloc reads: the name may resolve to a
	 * copy in the executable (a copy relocation), which only the
	 * program reads. */
	void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
	volatile char *flag = libc ? dlsym(libc, "__libc_single_threaded") : NULL;
	if (libc)
		dlclose(libc);
	if (!flag)
		return 0;
	int sig = TV_PARK_SIGNAL;
	struct sigaction old, sa;
	if (sigaction(sig, NULL, &old) != 0 ||
	    (!(old.sa_flags & SA_SIGINFO) && old.sa_handler != SIG_DFL))
		return 0; /* the program's own */
	if ((old.sa_flags & SA_SIGINFO) && old.sa_sigaction)
		return 0;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = tv_park_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigfillset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL) != 0)
		return 0;
	/* Time stamp cycles per millisecond, for tv_park_due, which must
	 * not call the C library: measured over 2 ms. */
	int64_t n0 = tv_park_now_ns();
	uint64_t c0 = tv_rdtsc();
	struct timespec two = { 0, 2000000 };
	while (nanosleep(&two, &two) != 0 && errno == EINTR)
		;
	int64_t n1 = tv_park_now_ns();
	uint64_t c1 = tv_rdtsc();
	if (n1 <= n0 || c1 <= c0)
		return 0;
	p->cycles_per_ms = (c1 - c0) * 1000000ull / (uint64_t)(n1 - n0);
	if (!p->cycles_per_ms)
		return 0;
	p->flag = flag;
	p->go_lo = go_lo;
	p->go_hi = go_hi;
	p->trusted = trusted;
	p->self = getpid();
	p->backoff_ms = TV_PARK_IDLE_MS;
	tv_park_after(p, p->backoff_ms);
	__atomic_store_n(&p->sig, sig, __ATOMIC_RELEASE);
	return 1;
}

/* The process's threads other than the caller (self) and the trusted one,
 * at most max; -1 when they cannot be listed or are too many. Raw system
 * calls: no allocation. */
static int tv_park_tasks(int32_t *tids, int max, int32_t self, int32_t trusted)
{
	int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/task",
			      O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char buf[4096] __attribute__((aligned(8)));
	int n = 0;
	for (;;) {
		long got = syscall(SYS_getdents64, fd, buf, sizeof buf);
		if (got <= 0) {
			if (got < 0)
				n = -1;
			break;
		}
		for (long off = 0; off < got;) {
			/* struct linux_dirent64: ino 8, off 8, reclen 2,
			 * type 1, name. */
			unsigned short reclen;
			memcpy(&reclen, buf + off + 16, sizeof reclen);
			const char *name = buf + off + 19;
			off += reclen;
			if (name[0] < '0' || name[0] > '9')
				continue;
			int32_t tid = 0;
			for (const char *c = name; *c >= '0' && *c <= '9'; c++)
				tid = tid * 10 + (*c - '0');
			if (tid == self || tid == trusted)
				continue;
			if (n >= max) {
				n = -1;
				break;
			}
			tids[n++] = tid;
		}
		if (n < 0)
			break;
	}
	syscall(SYS_close, fd);
	return n;
}

/* Whether thread tid has the signal mask of the JIT's threads: the
 * program's usual signals blocked (the runtime loads the JIT with them
 * blocked, and Go keeps them so in a library), the parking signal not. A
 * thread of the program's is never signalled: it would see its system
 * calls interrupted (nanosleep, poll) where it does not expect it. */
static int tv_park_golike(int32_t tid, int sig)
{
	char path[48] = "/proc/self/task/";
	int n = 16;
	char digits[12];
	int k = 0;
	do {
		digits[k++] = (char)('0' + tid % 10);
		tid /= 10;
	} while (tid && k < 11);
	while (k)
		path[n++] = digits[--k];
	memcpy(path + n, "/status", 8);
	int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	char buf[2048];
	long got = syscall(SYS_read, fd, buf, sizeof buf - 1);
	syscall(SYS_close, fd);
	if (got <= 0)
		return 0;
	buf[got] = 0;
	const char *at = NULL;
	for (long i = 0; i + 8 <= got && !at; i++)
		if (!memcmp(buf + i, "\nSigBlk:", 8))
			at = buf + i + 8;
	if (!at)
		return 0;
	while (*at == '\t' || *at == ' ')
		at++;
	uint64_t mask = 0;
	int digitsn = 0;
	for (;; at++, digitsn++) {
		int v;
		if (*at >= '0' && *at <= '9')
			v = *at - '0';
		else if (*at >= 'a' && *at <= 'f')
			v = *at - 'a' + 10;
		else
			break;
		mask = mask << 4 | (uint64_t)v;
	}
	if (digitsn != 16)
		return 0;
	/* Go unblocks some (SIGCHLD, SIGURG, the synchronous ones), not
	 * these. */
	uint64_t want = 1ull << (SIGHUP - 1) | 1ull << (SIGINT - 1) |
			1ull << (SIGQUIT - 1) | 1ull << (SIGTERM - 1);
	return (mask & want) == want && !(mask & 1ull << (sig - 1));
}

static int tv_park_same(const int32_t *a, int na, const int32_t *b, int nb)
{
	if (na != nb)
		return 0;
	for (int i = 0; i < na; i++) {
		int found = 0;
		for (int j = 0; j < nb && !found; j++)
			found = a[i] == b[j];
		if (!found)
			return 0;
	}
	return 1;
}

/* Releases the threads of the current attempt (or parking). */
static void tv_park_release(struct tv_park *p)
{
	__atomic_store_n(&p->req, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&p->released, p->gen, __ATOMIC_RELEASE);
	tv_futex(&p->released, FUTEX_WAKE_PRIVATE, 0x7fffffff);
}

void tv_unpark(void)
{
	struct tv_park *p = &tv_park_g;
	if (!__atomic_load_n(&p->parked, __ATOMIC_ACQUIRE))
		return;
	/* The flag first: a released thread may allocate at once. Set by
	 * the parking, it can only still be 1 on the thread that parked (a
	 * thread created since has set it to 0). */
	if (p->set_flag && *p->flag)
		*p->flag = 0;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	p->set_flag = 0;
	tv_park_release(p);
	int64_t now = tv_park_now_ns();
	if (now > p->parked_at)
		p->parked_ns += (uint64_t)(now - p->parked_at);
	p->unparks++;
	__atomic_store_n(&p->parked, 0, __ATOMIC_RELEASE);
}

void tv_go_enter(void)
{
	struct tv_park *p = &tv_park_g;
	if (!__atomic_load_n(&p->sig, __ATOMIC_ACQUIRE))
		return;
	tv_unpark();
	p->backoff_ms = TV_PARK_IDLE_MS;
	tv_park_after(p, p->backoff_ms);
}

int tv_park_due(void)
{
	struct tv_park *p = &tv_park_g;
	if (!__atomic_load_n(&p->sig, __ATOMIC_ACQUIRE) || p->forked ||
	    __atomic_load_n(&tv_g.bg_jobs, __ATOMIC_ACQUIRE))
		return 0;
	/* Parked, and the flag still ours: nothing to do. */
	if (p->parked && *p->flag)
		return 0;
	return tv_rdtsc() >= p->due_tsc;
}

/* One attempt; the caller is a program thread outside Go with its vector
 * state saved. */
int tv_park(int force)
{
	struct tv_park *p = &tv_park_g;
	if (!__atomic_load_n(&p->sig, __ATOMIC_ACQUIRE) || p->forked)
		return 0;
	if (p->parked && *p->flag)
		return 1; /* already */
	if (!force && !tv_park_due())
		return 0;
	if (__atomic_exchange_n(&p->busy_attempt, 1, __ATOMIC_ACQUIRE))
		return 0;
	/* Parked, but a thread created since took the flag back: start
	 * again (that thread, if still there, fails the attempt). Threads
	 * still leaving the handler have every signal blocked: wait for
	 * them. */
	if (p->parked)
		tv_unpark();
	int64_t settle = tv_park_now_ns() + TV_PARK_WAIT_NS;
	while (__atomic_load_n(&p->inside, __ATOMIC_ACQUIRE) &&
	       tv_park_now_ns() < settle)
		syscall(SYS_sched_yield);
	/* The program may have taken the signal since (a handler of its
	 * own): its handler must never run for us. Parking ends for good. */
	struct sigaction cur;
	if (sigaction(p->sig, NULL, &cur) != 0 ||
	    !(cur.sa_flags & SA_SIGINFO) || cur.sa_sigaction != tv_park_handler) {
		__atomic_store_n(&p->sig, 0, __ATOMIC_RELEASE);
		p->lost = 1;
		__atomic_store_n(&p->busy_attempt, 0, __ATOMIC_RELEASE);
		return 0;
	}
	int32_t self = (int32_t)syscall(SYS_gettid);
	/* The trusted thread is not signalled (it blocks every signal). */
	int32_t trusted = p->trusted ? *p->trusted : 0;
	int32_t tids[TV_PARK_MAX_THREADS], again[TV_PARK_MAX_THREADS];
	int m = tv_park_tasks(tids, TV_PARK_MAX_THREADS, self, trusted);
	int ok = m >= 0;
	for (int i = 0; ok && i < m; i++)
		ok = tv_park_golike(tids[i], p->sig);
	uint32_t gen = 0;
	if (ok && m > 0) {
		gen = ++p->gen;
		if (gen == 0)
			gen = ++p->gen;
		__atomic_store_n(&p->acked, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&p->busy, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&p->req, gen, __ATOMIC_RELEASE);
		siginfo_t si;
		memset(&si, 0, sizeof si);
		si.si_signo = p->sig;
		si.si_code = SI_QUEUE;
		si.si_pid = p->self;
		si.si_uid = getuid();
		si.si_value.sival_int = (int)gen;
		for (int i = 0; ok && i < m; i++)
			ok = syscall(SYS_rt_tgsigqueueinfo, p->self, tids[i],
				     p->sig, &si) == 0;
		int64_t until = tv_park_now_ns() + TV_PARK_WAIT_NS;
		while (ok) {
			uint32_t a = __atomic_load_n(&p->acked, __ATOMIC_ACQUIRE);
			uint32_t b = __atomic_load_n(&p->busy, __ATOMIC_ACQUIRE);
			if (b)
				ok = 0;
			else if (a == (uint32_t)m)
				break;
			else if (tv_park_now_ns() > until)
				ok = 0;
			else
				syscall(SYS_sched_yield);
		}
	}
	if (ok) {
		/* Nobody was creating a thread when it was stopped. */
		int m2 = tv_park_tasks(again, TV_PARK_MAX_THREADS, self, trusted);
		ok = m2 >= 0 && tv_park_same(tids, m, again, m2);
	}
	if (!ok) {
		if (gen)
			tv_park_release(p);
		p->refusals++;
		tv_park_after(p, p->backoff_ms);
		p->backoff_ms *= 2;
		if (p->backoff_ms > TV_PARK_BACKOFF_MAX_MS)
			p->backoff_ms = TV_PARK_BACKOFF_MAX_MS;
		__atomic_store_n(&p->busy_attempt, 0, __ATOMIC_RELEASE);
		return 0;
	}
	p->set_flag = !*p->flag;
	*p->flag = 1;
	p->parked_at = tv_park_now_ns();
	p->parks++;
	p->backoff_ms = TV_PARK_IDLE_MS;
	__atomic_store_n(&p->parked, 1, __ATOMIC_RELEASE);
	__atomic_store_n(&p->busy_attempt, 0, __ATOMIC_RELEASE);
	return 1;
}

/* The fork child has no parked thread; its flag is right as it is. */
void tv_park_fork_child(void)
{
	struct tv_park *p = &tv_park_g;
	p->forked = 1;
	p->parked = 0;
	p->set_flag = 0;
	p->busy_attempt = 0;
}

uint64_t tv_park_addr(void)
{
	return (uint64_t)(uintptr_t)tv_park;
}
