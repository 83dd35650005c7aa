/*
 * stress: an annotated C program whose loops the JIT traces while the
 * things that break naive JITs happen: two threads in the same loop, a
 * signal handler running again and again while the loop runs in a trace,
 * a fork in the middle of a traced loop, floating point and vector code,
 * and %rip-relative global data. Each loop announces its back-edge with
 * redmagic_backwards_branch(&its id). The output is deterministic; a
 * patched copy must print exactly what the original prints.
 *
 * usage: stress [N]   (N: iterations per loop, default 2000000)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define REDMAGIC_DEFAULTS
#include "redmagic.h"

static char loop_mix, loop_float, loop_fork, loop_hist;
static volatile sig_atomic_t alarms;
static uint64_t hist[16]; /* %rip-relative data, read and written */

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

__attribute__((noinline)) static uint64_t mix(uint64_t n, uint64_t salt)
{
	uint64_t s = salt * 0x9e3779b97f4a7c15ull;
	for (uint64_t i = 0; i < n; i++) {
		s += (i * 2654435761u) ^ (s >> 7);
		if (i % 7 == 3)
			s ^= i << 3;
		redmagic_backwards_branch(&loop_mix);
	}
	return s;
}

__attribute__((noinline)) static double harmonic(uint64_t n)
{
	double a[4] = { 0, 0, 0, 0 };
	for (uint64_t i = 1; i <= n; i++) {
		for (int k = 0; k < 4; k++)
			a[k] += 1.0 / (double)(i * 4 + (uint64_t)k);
		redmagic_backwards_branch(&loop_float);
	}
	return a[0] + a[1] + a[2] + a[3];
}

__attribute__((noinline)) static uint64_t histogram(uint64_t n)
{
	uint64_t x = 88172645463325252ull, total = 0;
	for (uint64_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		hist[x & 15]++;
		total += hist[(x >> 8) & 15];
		redmagic_backwards_branch(&loop_hist);
	}
	return total;
}

/* Forks when i reaches n/2: the child finishes the loop (in the trace,
 * with the JIT off) and reports through a pipe. */
__attribute__((noinline)) static uint64_t fork_loop(uint64_t n, int fd, pid_t *child)
{
	uint64_t s = 1;
	for (uint64_t i = 0; i < n; i++) {
		s = s * 6364136223846793005ull + i;
		if (i == n / 2) {
			pid_t p = fork();
			if (p == 0)
				*child = 0;
			else
				*child = p;
		}
		redmagic_backwards_branch(&loop_fork);
	}
	(void)fd;
	return s;
}

struct job {
	uint64_t n, salt, out;
};

static void *run_job(void *p)
{
	struct job *j = p;
	j->out = mix(j->n, j->salt);
	return NULL;
}

int main(int argc, char **argv)
{
	uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
	redmagic_start();

	printf("mix %llu\n", (unsigned long long)mix(n, 1));

	/* Two threads in the same loop at once, several times. */
	for (int round = 0; round < 3; round++) {
		struct job a = { n, 2 + (uint64_t)round, 0 }, b = { n, 3 + (uint64_t)round, 0 };
		pthread_t ta, tb;
		if (pthread_create(&ta, NULL, run_job, &a) || pthread_create(&tb, NULL, run_job, &b)) {
			perror("pthread_create");
			return 1;
		}
		pthread_join(ta, NULL);
		pthread_join(tb, NULL);
		printf("threads %d %llu %llu\n", round, (unsigned long long)a.out, (unsigned long long)b.out);
	}

	/* A signal every 200 us while loops run. */
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = { { 0, 200 }, { 0, 200 } };
	setitimer(ITIMER_REAL, &it, NULL);
	uint64_t m = mix(4 * n, 7);
	double h = harmonic(n);
	uint64_t t = histogram(n);
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	setitimer(ITIMER_REAL, &off, NULL);
	printf("signals %s mix %llu\n", alarms > 0 ? "delivered" : "none", (unsigned long long)m);
	printf("harmonic %.12f\n", h);
	printf("histogram %llu", (unsigned long long)t);
	for (int k = 0; k < 16; k++)
		printf(" %llu", (unsigned long long)hist[k]);
	printf("\n");
	fflush(stdout);

	/* fork in the middle of a traced loop */
	int fds[2];
	if (pipe(fds)) {
		perror("pipe");
		return 1;
	}
	pid_t child = -1;
	uint64_t r = fork_loop(n, fds[1], &child);
	if (child == 0) {
		char buf[64];
		int len = snprintf(buf, sizeof buf, "%llu\n", (unsigned long long)r);
		if (write(fds[1], buf, (size_t)len) != len)
			_exit(2);
		_exit(0);
	}
	close(fds[1]);
	char buf[64] = { 0 };
	ssize_t got = read(fds[0], buf, sizeof buf - 1);
	int status = 0;
	waitpid(child, &status, 0);
	printf("fork parent %llu child %s", (unsigned long long)r, got > 0 ? buf : "none\n");
	printf("child status %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 0;
}
