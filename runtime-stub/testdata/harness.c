/*
 * harness.c: a stand-in for a patched interpreter, for the runtime's tests.
 *
 * It carries a struct rm_patch_header, a site table and a string table
 * that the test fills in after linking, together with a DT_REDMAGIC entry
 * written over one of the spare DT_NULL entries GNU ld leaves at the end of
 * .dynamic: the same things the patcher adds. libredmagic.so is a DT_NEEDED
 * of this program, so its constructor finds the header exactly as it finds
 * a patched interpreter's. The program then calls the slots the runtime
 * wrote, as the trampolines would, following the operations on its
 * command line (see usage()).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "redmagic_patch.h"

/* Filled in by the test. Non-zero initialisers keep them out of .bss, so
 * they have bytes in the file. */
__attribute__((aligned(64), used)) struct rm_patch_header rm_test_header = {
	.magic = "unset",
};
__attribute__((aligned(64), used)) const struct rm_patch_header
	rm_test_header_ro = { .magic = "unset" };
__attribute__((aligned(64), used, section(".data.rel.ro.rmtest")))
struct rm_patch_header rm_test_header_relro = { .magic = "unset" };
/* Writable, as in a patched file: the runtime sets sampled sites'
 * countdowns. */
__attribute__((aligned(64), used)) struct rm_site rm_test_sites[64] = {
	{ .kind = 0xffffffff },
};
__attribute__((aligned(64), used)) const char rm_test_strtab[4096] = "unset";
/* Dispatch-table entries as a patcher leaves them, for the tests of
 * rm_restore.c (filled in by the test): 8-byte entries in read-only and in
 * writable memory, and a 4-byte PIC table offset. */
__attribute__((aligned(64), used)) const uint64_t rm_test_ro64[2] = { 1, 1 };
__attribute__((aligned(64), used)) uint64_t rm_test_rw64[2] = { 1, 1 };
__attribute__((aligned(64), used)) const int32_t rm_test_pic32[2] = { 1, 1 };

typedef void (*hit_fn)(uint32_t, uint64_t, uint64_t);

/* harness_call.S */
uint64_t rmt_call_api(uint64_t fn, uint64_t arg, uint32_t site);
void rmt_call_hit_zmm(uint64_t fn, uint32_t site, uint64_t id, uint64_t aux,
		      const void *in, void *out);
void rmt_call_hit_ymm(uint64_t fn, uint32_t site, uint64_t id, uint64_t aux,
		      const void *in, void *out);

static struct rm_patch_header *hdr(void)
{
	/* The runtime writes these behind the compiler's back. */
	return (struct rm_patch_header *)(volatile void *)&rm_test_header;
}

static uint64_t slot_hit(void)
{
	return *(volatile uint64_t *)&hdr()->hit_fn;
}

static uint64_t slot_api(int a)
{
	return *(volatile uint64_t *)&hdr()->api_fn[a];
}

static void die(const char *msg)
{
	fprintf(stderr, "harness: %s\n", msg);
	exit(2);
}

static uint64_t num(const char *s)
{
	char *end;
	errno = 0;
	uint64_t v = strtoull(s, &end, 0);
	if (errno || *end)
		die("bad number");
	return v;
}

static void hit(uint32_t site, uint64_t id, uint64_t aux, uint64_t n)
{
	hit_fn f = (hit_fn)slot_hit();
	if (!f)
		die("hit_fn is 0");
	for (uint64_t i = 0; i < n; i++)
		f(site, id, aux);
}

/* What a sampling trampoline does (elfpatch/redmagic/patch.go, sampledPrefix):
 * only a hit that takes the site's countdown below 0 calls hit_fn. Prints
 * how many did. */
static void sampled(uint32_t site, uint64_t first, uint64_t count, uint64_t n)
{
	hit_fn f = (hit_fn)slot_hit();
	if (!f)
		die("hit_fn is 0");
	volatile int64_t *cd = &rm_test_sites[site % 64].countdown;
	uint64_t calls = 0;
	for (uint64_t r = 0; r < n; r++)
		for (uint64_t i = 0; i < count; i++)
			if (--*cd < 0) {
				f(site, first + i, 0);
				calls++;
			}
	printf("calls=%" PRIu64 "\n", calls);
}

/* Hits ids first..first+count-1, n times each, round-robin. */
static void ids(uint32_t site, uint64_t first, uint64_t count, uint64_t n)
{
	hit_fn f = (hit_fn)slot_hit();
	if (!f)
		die("hit_fn is 0");
	for (uint64_t r = 0; r < n; r++)
		for (uint64_t i = 0; i < count; i++)
			f(site, first + i, 0);
}

static void api(int a, uint32_t site, uint64_t arg, uint64_t n)
{
	if (a < 0 || a >= RM_API_COUNT || !slot_api(a))
		die("api slot is 0");
	for (uint64_t i = 0; i < n; i++)
		if (rmt_call_api(slot_api(a), arg, site) != 0 &&
		    a == RM_API_IS_TRACED)
			die("is_traced returned nonzero");
}

/* ---- threads ---- */

struct tharg {
	uint32_t site;
	uint64_t id, n;
	pthread_barrier_t *bar;
};

static void *thread_main(void *p)
{
	struct tharg *a = p;
	hit(a->site, a->id, 0, a->n);
	hit(a->site, 1, 0, a->n);
	if (a->bar) {
		/* Stay alive until exit: the runtime must count live
		 * threads' tables too. */
		pthread_barrier_wait(a->bar);
		for (;;)
			pause();
	}
	return NULL;
}

static void threads(int t, uint32_t site, uint64_t n, uint64_t idbase,
		    int live)
{
	pthread_t th[64];
	struct tharg args[64];
	static pthread_barrier_t bar;
	if (t <= 0 || t > 64)
		die("bad thread count");
	if (live)
		pthread_barrier_init(&bar, NULL, t + 1);
	for (int i = 0; i < t; i++) {
		args[i] = (struct tharg){ site, idbase + i, n, live ? &bar : NULL };
		if (pthread_create(&th[i], NULL, thread_main, &args[i]))
			die("pthread_create");
	}
	if (live)
		pthread_barrier_wait(&bar);
	else
		for (int i = 0; i < t; i++)
			pthread_join(th[i], NULL);
}

/* ---- fork ---- */

static uint64_t hot_threshold(void)
{
	const char *v = getenv("REDMAGIC_HOT");
	return v ? num(v) : 1000;
}

static void *child_thread(void *p)
{
	uint32_t site = *(uint32_t *)p;
	hit(site, 999999, 0, hot_threshold() + 1);
	return NULL;
}

/* The child makes n loops hot (each would call Go in the parent), also
 * from a new thread, then exits through exit() so atexit handlers run. */
static void forkop(uint32_t site, uint64_t n)
{
	fflush(stdout); /* the child must not print it again */
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		for (uint64_t i = 0; i < n; i++)
			hit(site, 1000000 + i, 0, hot_threshold() + 1);
		pthread_t th;
		if (pthread_create(&th, NULL, child_thread, &site))
			die("pthread_create in child");
		pthread_join(th, NULL);
		exit(0);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid)
		die("waitpid");
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("child failed");
}

/* ---- vector state ---- */

enum { VEC_BYTES = 32 * 64 + 8 * 8 + 64 };
#define MXCSR_OFF (32 * 64 + 8 * 8)

static void vec_fill(unsigned char *b, unsigned seed)
{
	for (int i = 0; i < VEC_BYTES; i++)
		b[i] = (unsigned char)(seed * 131 + i * 7 + (i >> 6));
	/* A valid MXCSR, different from the default 0x1f80: round toward
	 * zero, flush to zero, all exceptions masked. */
	uint32_t mx = 0x1f80 | 0x6000 | 0x8000;
	memcpy(b + MXCSR_OFF, &mx, 4);
}

static int vec_level(void)
{
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") &&
	    __builtin_cpu_supports("avx512bw"))
		return 512;
	if (__builtin_cpu_supports("avx2"))
		return 256;
	return 0;
}

/* Calls fn(site, id, 0) with every vector register loaded with a pattern
 * and checks them afterwards. Returns the number of differing bytes. */
static int vec_call(uint64_t fn, uint32_t site, uint64_t id, unsigned seed)
{
	static _Alignas(64) unsigned char in[VEC_BYTES], out[VEC_BYTES];
	int level = vec_level();
	vec_fill(in, seed);
	memset(out, 0, sizeof out);
	int bad = 0;
	if (level == 512) {
		rmt_call_hit_zmm(fn, site, id, 0, in, out);
		for (int i = 0; i < MXCSR_OFF + 4; i++)
			if (in[i] != out[i]) {
				bad++;
				if (getenv("HARNESS_VERBOSE"))
					fprintf(stderr, "byte %d: %#x != %#x\n", i, in[i], out[i]);
			}
	} else if (level == 256) {
		rmt_call_hit_ymm(fn, site, id, 0, in, out);
		for (int i = 0; i < 16 * 32; i++)
			bad += in[i] != out[i];
		bad += memcmp(in + MXCSR_OFF, out + MXCSR_OFF, 4) != 0;
	} else {
		die("no AVX2: vector test not supported");
	}
	return bad;
}

static void *vec_thread(void *p)
{
	uint32_t site = *(uint32_t *)p;
	/* First hit and first Go call on a new thread. */
	intptr_t bad = vec_call(slot_hit(), site, 777777, 3);
	return (void *)bad;
}

/* Each call crosses a path that calls libc or Go: the thread's first hit,
 * the hot threshold (run with REDMAGIC_HOT=1), table growth. */
static void vec(uint32_t site)
{
	uint64_t f = slot_hit();
	if (!f)
		die("hit_fn is 0");
	int bad = vec_call(f, site, 1, 1);  /* first hit, hot: Go */
	bad += vec_call(f, site, 1, 2);     /* plain counter update */
	for (uint64_t id = 2; id < 3000; id++)  /* inserts, growth, Go */
		bad += vec_call(f, site, id, (unsigned)id);
	pthread_t th;
	void *r;
	if (pthread_create(&th, NULL, vec_thread, &site))
		die("pthread_create");
	pthread_join(th, &r);
	bad += (int)(intptr_t)r;
	printf("vector level %d, %d bytes differ\n", vec_level(), bad);
	if (bad)
		exit(5);
}

/* What a careless runtime does: glibc's AVX2 string functions end with
 * vzeroupper, which clears the upper halves of every ymm/zmm register (a
 * small memset takes that path; the asm makes sure). The vector check
 * must see it. */
__attribute__((noinline)) static void clobber(uint32_t site, uint64_t id,
					      uint64_t aux)
{
	static char buf[100];
	(void)site;
	(void)aux;
	memset(buf, (int)id, sizeof buf);
	__asm__ volatile("vzeroupper" : : "r"(buf) : "memory");
}

static void vec_control(void)
{
	int bad = vec_call((uint64_t)(uintptr_t)clobber, 0, 1, 1);
	printf("control: %d bytes differ\n", bad);
	if (bad)
		exit(5);
}

/* ---- benchmark ---- */

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Both benchmarks time n calls in 20 chunks and report the fastest chunk:
 * on a shared machine the minimum is the figure that repeats. */
#define CHUNKS 20

static void bench(uint32_t site, uint64_t n)
{
	hit_fn f = (hit_fn)slot_hit();
	if (!f)
		die("hit_fn is 0");
	f(site, 42, 0);
	double best = 0;
	for (int c = 0; c < CHUNKS; c++) {
		double t0 = now_ns();
		for (uint64_t i = 0; i < n / CHUNKS; i++)
			f(site, 42, 0);
		double ns = (now_ns() - t0) / (double)(n / CHUNKS);
		if (c == 0 || ns < best)
			best = ns;
	}
	printf("%.3f ns/hit\n", best);
}

static void bench_api(uint32_t site, uint64_t n)
{
	uint64_t f = slot_api(RM_API_BACKWARDS_BRANCH);
	if (!f)
		die("api slot is 0");
	rmt_call_api(f, 42, site);
	double best = 0;
	for (int c = 0; c < CHUNKS; c++) {
		double t0 = now_ns();
		for (uint64_t i = 0; i < n / CHUNKS; i++)
			rmt_call_api(f, 42, site);
		double ns = (now_ns() - t0) / (double)(n / CHUNKS);
		if (c == 0 || ns < best)
			best = ns;
	}
	printf("%.3f ns/call\n", best);
}

/* The floor: the same loop calling a function that returns at once. */
__attribute__((noinline)) static void empty_hit(uint32_t site, uint64_t id,
						uint64_t aux)
{
	(void)site;
	(void)id;
	(void)aux;
	__asm__ volatile("");
}

static void bench_empty(uint64_t n)
{
	hit_fn volatile fv = empty_hit;
	hit_fn f = fv;
	double best = 0;
	for (int c = 0; c < CHUNKS; c++) {
		double t0 = now_ns();
		for (uint64_t i = 0; i < n / CHUNKS; i++)
			f(0, 42, 0);
		double ns = (now_ns() - t0) / (double)(n / CHUNKS);
		if (c == 0 || ns < best)
			best = ns;
	}
	printf("%.3f ns/call\n", best);
}

static void usage(void)
{
	fputs("usage: harness OP...\n"
	      "  slots                  print which slots are set\n"
	      "  hit SITE ID AUX N      call hit_fn(SITE, ID, AUX) N times\n"
	      "  ids SITE FIRST COUNT N hit ids FIRST.. (COUNT of them) N\n"
	      "                         times each, round-robin\n"
	      "  sampled SITE FIRST COUNT N\n"
	      "                         the same through the site's countdown\n"
	      "                         as a sampling trampoline does\n"
	      "  api API SITE ARG N     call api_fn[API](ARG), %r11d = SITE\n"
	      "  threads T SITE N       T threads hit (SITE, 1000+i) and\n"
	      "                         (SITE, 1) N times each; joined\n"
	      "  threads-live T SITE N  the same with ids 2000+i; they stay\n"
	      "                         alive until exit\n"
	      "  fork SITE N            a child makes N loops hot, exits\n"
	      "  vec SITE               vector registers survive hit_fn\n"
	      "  vec-control            the vector check catches a clobber\n"
	      "  bench SITE N           ns per hit_fn call\n"
	      "  bench-api SITE N       ns per backwards_branch API call\n"
	      "  bench-empty N          ns per call of an empty function\n"
	      "  park-wait SITE MS      hit SITE every 20 ms until parked (MS at most)\n"
	      "  single                 print __libc_single_threaded\n"
	      "  churn N                malloc and free N blocks\n"
	      "  take-park-signal       install a handler for SIGRTMIN+7\n"
	      "  park-signals           print how often it ran\n"
	      "  tasks                  print the number of threads\n"
	      "  sleep MS               sleep MS milliseconds\n"
	      "  tables                 print the test's dispatch entries\n"
	      "  block-usr1             block SIGUSR1 in this thread\n"
	      "  raise-usr1             send the process SIGUSR1, say whether\n"
	      "                         it stays pending, then take it\n",
	      stderr);
	exit(2);
}

/* Threads in this process, from /proc/self/task. */
static int tasks(void)
{
	DIR *d = opendir("/proc/self/task");
	if (!d)
		die("opendir /proc/self/task");
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static volatile sig_atomic_t park_signals;

static void count_park_signal(int sig)
{
	(void)sig;
	park_signals++;
}

/* glibc's own __libc_single_threaded, which its malloc reads: this
 * program's references to the name go to a copy (a copy relocation). */
static int libc_single_threaded(void)
{
	void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
	const volatile char *flag = libc ? dlsym(libc, "__libc_single_threaded") : NULL;
	if (!flag)
		die("dlsym __libc_single_threaded");
	int v = *flag;
	dlclose(libc);
	return v;
}

/* Allocates and frees n blocks of assorted sizes, keeping some alive:
 * malloc's single-threaded path while the JIT's threads are parked. */
static void churn(uint64_t n)
{
	void *keep[64] = { 0 };
	uint64_t sum = 0;
	for (uint64_t i = 0; i < n; i++) {
		size_t sz = 16 + (i * 37) % 2048;
		unsigned char *p = malloc(sz);
		if (!p)
			die("malloc");
		p[0] = (unsigned char)i;
		p[sz - 1] = (unsigned char)(i >> 3);
		sum += p[0] + p[sz - 1];
		free(keep[i % 64]);
		keep[i % 64] = p;
	}
	for (int k = 0; k < 64; k++)
		free(keep[k]);
	printf("churn=%" PRIu64 "\n", sum);
}

/* A process-directed SIGUSR1 while this thread blocks it: it must stay
 * pending for this thread, not be taken by a thread of the runtime's. */
static void raise_usr1(void)
{
	sigset_t set, pend;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	if (kill(getpid(), SIGUSR1))
		die("kill");
	struct timespec ts = { 0, 50 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	sigpending(&pend);
	printf("usr1 pending=%d\n", sigismember(&pend, SIGUSR1));
	int sig;
	if (sigismember(&pend, SIGUSR1) && sigwait(&set, &sig))
		die("sigwait");
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc;) {
		const char *op = argv[i];
		int left = argc - i - 1;
#define NEED(k) do { if (left < (k)) usage(); } while (0)
		if (!strcmp(op, "slots")) {
			int n = 0;
			for (int a = 0; a < RM_API_COUNT; a++)
				n += slot_api(a) != 0;
			printf("hit=%d api=%d\n", slot_hit() != 0, n);
			i += 1;
		} else if (!strcmp(op, "hit")) {
			NEED(4);
			hit(num(argv[i + 1]), num(argv[i + 2]),
			    num(argv[i + 3]), num(argv[i + 4]));
			i += 5;
		} else if (!strcmp(op, "ids")) {
			NEED(4);
			ids(num(argv[i + 1]), num(argv[i + 2]),
			    num(argv[i + 3]), num(argv[i + 4]));
			i += 5;
		} else if (!strcmp(op, "sampled")) {
			NEED(4);
			sampled(num(argv[i + 1]), num(argv[i + 2]),
				num(argv[i + 3]), num(argv[i + 4]));
			i += 5;
		} else if (!strcmp(op, "api")) {
			NEED(4);
			api(num(argv[i + 1]), num(argv[i + 2]),
			    num(argv[i + 3]), num(argv[i + 4]));
			i += 5;
		} else if (!strcmp(op, "threads") ||
			   !strcmp(op, "threads-live")) {
			NEED(3);
			int live = !strcmp(op, "threads-live");
			threads(num(argv[i + 1]), num(argv[i + 2]),
				num(argv[i + 3]), live ? 2000 : 1000, live);
			i += 4;
		} else if (!strcmp(op, "fork")) {
			NEED(2);
			forkop(num(argv[i + 1]), num(argv[i + 2]));
			i += 3;
		} else if (!strcmp(op, "vec")) {
			NEED(1);
			vec(num(argv[i + 1]));
			i += 2;
		} else if (!strcmp(op, "vec-control")) {
			vec_control();
			i += 1;
		} else if (!strcmp(op, "bench")) {
			NEED(2);
			bench(num(argv[i + 1]), num(argv[i + 2]));
			i += 3;
		} else if (!strcmp(op, "bench-empty")) {
			NEED(1);
			bench_empty(num(argv[i + 1]));
			i += 2;
		} else if (!strcmp(op, "tables")) {
			printf("ro64=%#" PRIx64 " rw64=%#" PRIx64 " pic32=%#x\n",
			       *(volatile const uint64_t *)&rm_test_ro64[0],
			       *(volatile uint64_t *)&rm_test_rw64[0],
			       (unsigned)*(volatile const int32_t *)&rm_test_pic32[0]);
			i += 1;
		} else if (!strcmp(op, "sleep")) {
			NEED(1);
			uint64_t ms = num(argv[i + 1]);
			struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
			nanosleep(&ts, NULL);
			i += 2;
		} else if (!strcmp(op, "park-wait")) {
			/* Hits SITE ten times every 20 ms until glibc's flag
			 * says the JIT's threads are parked, for at most MS
			 * milliseconds: a loaded machine may refuse (a thread
			 * busy) and back off before an attempt succeeds. */
			NEED(2);
			uint64_t site = num(argv[i + 1]), ms = num(argv[i + 2]);
			struct timespec ts = { 0, 20 * 1000000 };
			for (uint64_t waited = 0; waited < ms && !libc_single_threaded(); waited += 20) {
				nanosleep(&ts, NULL);
				hit(site, 1, 0, 10);
			}
			i += 3;
		} else if (!strcmp(op, "single")) {
			/* glibc's view: 1 while the JIT's threads are parked. */
			printf("single=%d\n", libc_single_threaded());
			i += 1;
		} else if (!strcmp(op, "take-park-signal")) {
			/* The program's own handler for the signal the runtime
			 * parks its threads with: it must never run for that. */
			struct sigaction sa;
			memset(&sa, 0, sizeof sa);
			sa.sa_handler = count_park_signal;
			if (sigaction(SIGRTMIN + 7, &sa, NULL))
				die("sigaction");
			i += 1;
		} else if (!strcmp(op, "park-signals")) {
			printf("park-signals=%d\n", (int)park_signals);
			i += 1;
		} else if (!strcmp(op, "churn")) {
			NEED(1);
			churn(num(argv[i + 1]));
			i += 2;
		} else if (!strcmp(op, "tasks")) {
			printf("threads=%d\n", tasks());
			i += 1;
		} else if (!strcmp(op, "block-usr1")) {
			sigset_t set;
			sigemptyset(&set);
			sigaddset(&set, SIGUSR1);
			if (pthread_sigmask(SIG_BLOCK, &set, NULL))
				die("pthread_sigmask");
			i += 1;
		} else if (!strcmp(op, "raise-usr1")) {
			raise_usr1();
			i += 1;
		} else if (!strcmp(op, "bench-api")) {
			NEED(2);
			bench_api(num(argv[i + 1]), num(argv[i + 2]));
			i += 3;
		} else {
			usage();
		}
	}
	return 0;
}
