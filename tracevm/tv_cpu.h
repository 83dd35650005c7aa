/*
 * tv_cpu.h: raw system calls and vector-state saving for code that may
 * touch only the general registers (tracevm/tv.c, and the runtime's fast
 * path in runtime-stub): libc's wrappers are not guaranteed vector-free,
 * and every call into libc or Go happens between tv_xsave and tv_xrstor.
 * The save area's size and components come from tv_setup (CPUID).
 */
#ifndef TV_CPU_H
#define TV_CPU_H

#include <stdint.h>

#include "tv.h"

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

static inline void tv_xsave(void *buf)
{
	uint32_t lo = (uint32_t)tv_g.xsave_mask;
	uint32_t hi = (uint32_t)(tv_g.xsave_mask >> 32);
	if (__builtin_expect(tv_g.use_xsave, 1))
		__asm__ volatile("xsave64 (%0)" : : "r"(buf), "a"(lo), "d"(hi)
				 : "memory");
	else
		__asm__ volatile("fxsave64 (%0)" : : "r"(buf) : "memory");
}

static inline void tv_xrstor(void *buf)
{
	uint32_t lo = (uint32_t)tv_g.xsave_mask;
	uint32_t hi = (uint32_t)(tv_g.xsave_mask >> 32);
	if (__builtin_expect(tv_g.use_xsave, 1))
		__asm__ volatile("xrstor64 (%0)" : : "r"(buf), "a"(lo), "d"(hi)
				 : "memory");
	else
		__asm__ volatile("fxrstor64 (%0)" : : "r"(buf) : "memory");
}

#endif
