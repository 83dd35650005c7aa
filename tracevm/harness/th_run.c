/*
 * th_run.c: the harness's C runners, which are not traced themselves:
 * two threads racing on one test function, a test function run under a
 * stream of signals, the end of the fork test, and what Setup needs to
 * know about the process (load bias, shim addresses).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tv.h"
#include "th.h"

/* ------------------------------------------------------------------------ */
/* Two threads run fn at the same time (both spin until the other is
 * there), rounds times. Thread t of round r writes rets[2r+t] and outs[(2r+t)*TH_NOUT..]. */

struct th_racer {
	void *fn;
	const int64_t *in;
	int64_t *ret;
	int64_t *out;
	int *arrived;
	int64_t t0, t1; /* CLOCK_MONOTONIC ns around the call */
};

static int64_t th_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *th_racer_main(void *p)
{
	struct th_racer *r = p;
	/* Spin, not sleep, until both are here: both are then on a CPU. */
	__atomic_add_fetch(r->arrived, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(r->arrived, __ATOMIC_SEQ_CST) < 2)
		__builtin_ia32_pause();
	r->t0 = th_now();
	*r->ret = th_call(r->fn, r->in, r->out);
	r->t1 = th_now();
	return NULL;
}

int th_race(void *fn, const int64_t *in0, const int64_t *in1, int64_t rounds,
	    int64_t *rets, int64_t *outs, int64_t *times)
{
	times[0] = times[1] = 0;
	for (int64_t k = 0; k < rounds; k++) {
		int arrived = 0;
		pthread_t th[2];
		struct th_racer r[2];
		for (int t = 0; t < 2; t++) {
			r[t] = (struct th_racer){
				.fn = fn, .in = t ? in1 : in0,
				.ret = &rets[2 * k + t],
				.out = &outs[(2 * k + t) * TH_NOUT],
				.arrived = &arrived,
			};
			int err = pthread_create(&th[t], NULL, th_racer_main, &r[t]);
			if (err) {
				if (t == 1) {
					/* Release the first thread. */
					__atomic_add_fetch(&arrived, 1, __ATOMIC_SEQ_CST);
					pthread_join(th[0], NULL);
				}
				return err;
			}
		}
		pthread_join(th[0], NULL);
		pthread_join(th[1], NULL);
		/* times[0]: both threads inside fn; times[1]: either. */
		int64_t lo = r[0].t0 > r[1].t0 ? r[0].t0 : r[1].t0;
		int64_t hi = r[0].t1 < r[1].t1 ? r[0].t1 : r[1].t1;
		if (hi > lo)
			times[0] += hi - lo;
		times[1] += (r[0].t1 > r[1].t1 ? r[0].t1 : r[1].t1) -
			    (r[0].t0 < r[1].t0 ? r[0].t0 : r[1].t0);
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Signals: a timer of this thread sends SIGALRM every interval_ns while
 * fn runs. The handler counts, notes whether it interrupted code in the
 * code cache, and does some floating-point work of its own (the kernel
 * must give the trace its vector state back). */

static volatile int64_t th_sig_count, th_sig_in_cache;
static volatile double th_sig_sink;

static void th_on_alarm(int sig, siginfo_t *si, void *ctx)
{
	(void)sig;
	(void)si;
	ucontext_t *uc = ctx;
	uint64_t rip = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
	th_sig_count++;
	if (tv_in_cache(rip))
		th_sig_in_cache++;
	double d = th_sig_sink;
	for (int i = 0; i < 8; i++)
		d = d * 0.5 + 1.25;
	th_sig_sink = d;
}

int th_with_signals(void *fn, const int64_t *in, int64_t *out, int64_t *ret,
		    int64_t interval_ns, int64_t *sigstats)
{
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = th_on_alarm;
	/* SA_ONSTACK: the signal may interrupt Go code (a recorder step). */
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, &old) != 0)
		return errno;
	sigset_t alrm, oldmask;
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	pthread_sigmask(SIG_UNBLOCK, &alrm, &oldmask);

	struct sigevent sev;
	memset(&sev, 0, sizeof sev);
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = SIGALRM;
	sev._sigev_un._tid = gettid();
	timer_t tm;
	int err = 0;
	if (timer_create(CLOCK_MONOTONIC, &sev, &tm) != 0) {
		err = errno;
		goto restore;
	}
	th_sig_count = th_sig_in_cache = 0;
	struct itimerspec its = {
		.it_interval = { interval_ns / 1000000000, interval_ns % 1000000000 },
		.it_value = { interval_ns / 1000000000, interval_ns % 1000000000 },
	};
	timer_settime(tm, 0, &its, NULL);
	*ret = th_call(fn, in, out);
	pthread_sigmask(SIG_BLOCK, &alrm, NULL);
	timer_delete(tm);
	/* A signal still pending goes to this handler, not Go's. */
	struct timespec zero = { 0, 0 };
	while (sigtimedwait(&alrm, NULL, &zero) == SIGALRM)
		th_sig_count++;
	sigstats[0] = th_sig_count;
	sigstats[1] = th_sig_in_cache;
restore:
	pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
	sigaction(SIGALRM, &old, NULL);
	return err;
}

/* ------------------------------------------------------------------------ */
/* The end of tt_fork (tt_loops.c): the child reports and exits; the
 * parent collects. */

static int th_read_full(int fd, void *buf, size_t n)
{
	char *p = buf;
	while (n) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

TH_HIDDEN int64_t th_fork_finish(int64_t pid, int fd[2], int64_t s, int64_t after,
		       int64_t *out)
{
	if (pid == 0) {
		int64_t msg[2] = { s, after };
		ssize_t w = write(fd[1], msg, sizeof msg);
		_exit(w == (ssize_t)sizeof msg ? 0 : 1);
	}
	close(fd[1]);
	out[2] = after;
	out[4] = pid;
	if (pid < 0) {
		close(fd[0]);
		out[3] = -1;
		return s;
	}
	int64_t msg[2] = { -1, -1 };
	int rd = th_read_full(fd[0], msg, sizeof msg);
	close(fd[0]);
	int st = 0;
	while (waitpid((pid_t)pid, &st, 0) < 0 && errno == EINTR)
		;
	out[0] = rd == 0 ? msg[0] : -1;
	out[1] = rd == 0 ? msg[1] : -1;
	out[3] = st;
	return s;
}

/* ------------------------------------------------------------------------ */
/* Setup. */

static int th_first_phdr(struct dl_phdr_info *info, size_t size, void *p)
{
	(void)size;
	*(uint64_t *)p = info->dlpi_addr;
	return 1; /* the first object is the main program */
}

uint64_t th_main_bias(void)
{
	uint64_t bias = 0;
	dl_iterate_phdr(th_first_phdr, &bias);
	return bias;
}

static void *const th_shims[16] = {
	th_start, th_backwards_branch, th_fellthrough_branch,
	th_begin_branchable_frame, th_end_branchable_frame,
	th_force_begin_trace, th_force_end_trace, th_force_jump_to_trace,
	th_ensure_not_traced, th_temp_disable, th_temp_enable,
	th_do_not_trace_function, th_disable_branch, (void *)th_is_traced,
	th_begin_merge_block, th_end_merge_block,
};

const void *th_shim(int api)
{
	return api >= 0 && api < 16 ? th_shims[api] : NULL;
}

static void *const th_natives[] = { tn_fork_at, tn_in_trace, tn_lookup, tn_find };

const void *th_native_fn(int i)
{
	return i >= 0 && i < (int)(sizeof th_natives / sizeof th_natives[0]) ?
		       th_natives[i] : NULL;
}
