/*
 * rm_restore.c: putting a patched object's original dispatch-table entries
 * back. A redirected entry sends every execution of its handler through a
 * trampoline; where nothing can come of counting the site (the runtime is
 * disabled, or there is no JIT to feed and no one asked for statistics),
 * the original entry makes the site cost exactly what it cost before
 * patching. Code is never written: call sites redirected through their
 * rel32 (annotated interpreters) keep their trampolines, whose empty-slot
 * path is a jump to the original function. The governor also re-arms
 * entries it put back (rm_rearm_dispatch), to see whether the program's
 * new loops pay.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../rm_internal.h"

/* How the loader left the page holding [a, a+len): its PROT_* bits, or -1
 * when it is code or not in one segment (then it is left alone). */
static int rm_prot_at(const struct rm_restore_obj *o, uint64_t vaddr,
		      uint64_t len)
{
	int prot = -1;
	for (int i = 0; i < o->nsegs; i++) {
		const struct rm_seg *s = &o->segs[i];
		if (s->relro || vaddr < s->vaddr || vaddr + len > s->vaddr + s->memsz)
			continue;
		if (s->flags & PF_X)
			return -1;
		prot = ((s->flags & PF_R) ? PROT_READ : 0) |
		       ((s->flags & PF_W) ? PROT_WRITE : 0);
	}
	if (prot < 0)
		return -1;
	/* The loader made RELRO read-only after relocating the object. */
	for (int i = 0; i < o->nsegs; i++) {
		const struct rm_seg *s = &o->segs[i];
		if (s->relro && vaddr < s->vaddr + s->memsz &&
		    s->vaddr < vaddr + len)
			prot &= ~PROT_WRITE;
	}
	return prot;
}

/* Stores v (width 4 or 8) at p if p holds want; 1 if stored. */
static int rm_swap_entry(void *p, unsigned width, uint64_t want, uint64_t v)
{
	if (width == 8) {
		uint64_t cur;
		memcpy(&cur, p, 8);
		if (cur != want)
			return 0;
		if (((uintptr_t)p & 7) == 0)
			__atomic_store_n((uint64_t *)p, v, __ATOMIC_RELEASE);
		else
			memcpy(p, &v, 8);
		return 1;
	}
	uint32_t cur, v32 = (uint32_t)v;
	memcpy(&cur, p, 4);
	if (cur != (uint32_t)want)
		return 0;
	if (((uintptr_t)p & 3) == 0)
		__atomic_store_n((uint32_t *)p, v32, __ATOMIC_RELEASE);
	else
		memcpy(p, &v32, 4);
	return 1;
}

uint32_t rm_swap_site(const struct rm_restore_obj *o, uint32_t i, int to_orig)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	if (i >= o->nsites)
		return 0;
	struct rm_site s;
	memcpy(&s, o->sites + (uint64_t)i * o->site_size, sizeof s);
	if (s.slot_kind == RM_SLOT_NONE)
		return 0;
	unsigned width = s.slot_kind == RM_SLOT_ADDR64 ? 8 : 4;
	uint64_t want, orig;
	if (s.slot_kind == RM_SLOT_ADDR64) {
		want = o->bias + s.trampoline;
		orig = o->bias + s.slot_orig;
	} else {
		want = (uint32_t)(s.slot_orig + s.trampoline - s.resume);
		orig = (uint32_t)s.slot_orig;
	}
	int prot = rm_prot_at(o, s.slot, width);
	if (prot < 0)
		return 0;
	void *p = (void *)(o->bias + s.slot);
	uintptr_t lo = (uintptr_t)p & ~(page - 1);
	uintptr_t hi = ((uintptr_t)p + width + page - 1) & ~(page - 1);
	if (!(prot & PROT_WRITE) &&
	    mprotect((void *)lo, hi - lo, prot | PROT_WRITE) != 0)
		return 0;
	uint32_t moved = to_orig ? rm_swap_entry(p, width, want, orig) :
				   rm_swap_entry(p, width, orig, want);
	if (!(prot & PROT_WRITE))
		mprotect((void *)lo, hi - lo, prot);
	return moved;
}

/* Moves every entry of o from its trampoline to its original (to_orig) or
 * back; returns how many moved. */
static uint32_t rm_swap_dispatch(const struct rm_restore_obj *o, int to_orig)
{
	uint32_t moved = 0;
	for (uint32_t i = 0; i < o->nsites; i++)
		moved += rm_swap_site(o, i, to_orig);
	return moved;
}

uint32_t rm_restore_dispatch(const struct rm_restore_obj *o)
{
	return rm_swap_dispatch(o, 1);
}

uint32_t rm_rearm_dispatch(const struct rm_restore_obj *o)
{
	return rm_swap_dispatch(o, 0);
}
