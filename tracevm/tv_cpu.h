/*
 * tv_cpu.h: raw system calls and vector-state saving for code that may
 * touch only the general registers (tracevm/tv.c, and the runtime's fast
 * path in runtime-stub/host): libc's wrappers are not guaranteed
 * vector-free, and every call into libc or Go happens between an xsave and
 * its xrstor. The save area's size and components come from
 * tv_xsave_probe (CPUID); each user keeps its own copy, since the runtime
 * and the JIT are separate libraries.
 */
#ifndef TV_CPU_H
#define TV_CPU_H

#include <stdint.h>
#include <cpuid.h>

static inline long tv_syscall6(long n, long a, long b, long c, long d,
			       long e, long f)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8),
			   "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

#define TV_SYS_MMAP 9
#define TV_SYS_MPROTECT 10
#define TV_SYS_MUNMAP 11
#define TV_SYS_MREMAP 25
#define TV_SYS_SCHED_GETAFFINITY 204

/* The time-stamp counter: the JIT's and the governor's clock. */
static inline uint64_t tv_rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

/* len bytes of zeroed read-write memory, or NULL. */
static inline void *tv_map(uint64_t len)
{
	/* PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS */
	long r = tv_syscall6(TV_SYS_MMAP, 0, (long)len, 3, 0x22, -1, 0);
	if ((unsigned long)r > -4096ul)
		return (void *)0;
	return (void *)r;
}

static inline void tv_unmap(void *p, uint64_t len)
{
	tv_syscall6(TV_SYS_MUNMAP, (long)p, (long)len, 0, 0, 0, 0);
}

/* What xsave saves here: mask (XCR0 less AMX tiles) and the area's size;
 * use = 0 means fxsave (512 bytes, no upper vector halves). */
static inline void tv_xsave_probe(uint64_t *mask, uint32_t *size,
				  uint32_t *use)
{
	unsigned a, b, c, d;
	*mask = 0;
	*size = 512;
	*use = 0;
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE))
		return;
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	uint64_t xcr0 = (uint64_t)hi << 32 | lo;
	__cpuid_count(0xd, 0, a, b, c, d);
	if (b < 576)
		return;
	/* AMX tiles need a per-process permission; nothing uses them. */
	*mask = xcr0 & ~(3ull << 17);
	*size = b;
	*use = 1;
}

static inline void tv_xsave_as(uint64_t mask, uint32_t use, void *buf)
{
	uint32_t lo = (uint32_t)mask;
	uint32_t hi = (uint32_t)(mask >> 32);
	if (__builtin_expect(use, 1))
		__asm__ volatile("xsave64 (%0)" : : "r"(buf), "a"(lo), "d"(hi)
				 : "memory");
	else
		__asm__ volatile("fxsave64 (%0)" : : "r"(buf) : "memory");
}

static inline void tv_xrstor_as(uint64_t mask, uint32_t use, void *buf)
{
	uint32_t lo = (uint32_t)mask;
	uint32_t hi = (uint32_t)(mask >> 32);
	if (__builtin_expect(use, 1))
		__asm__ volatile("xrstor64 (%0)" : : "r"(buf), "a"(lo), "d"(hi)
				 : "memory");
	else
		__asm__ volatile("fxrstor64 (%0)" : : "r"(buf) : "memory");
}

#endif
