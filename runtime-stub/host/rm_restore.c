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

/* A site's dispatch entry: where it is, how wide, what it holds when
 * redirected (tramp) and originally (orig). 0 when it has none or its page
 * is code or outside the object's segments. */
static int rm_entry_of(const struct rm_restore_obj *o, uint32_t i, void **p,
		       unsigned *width, uint64_t *tramp, uint64_t *orig,
		       int *prot)
{
	struct rm_site s;
	memcpy(&s, o->sites + (uint64_t)i * o->site_size, sizeof s);
	if (s.slot_kind == RM_SLOT_NONE)
		return 0;
	*width = s.slot_kind == RM_SLOT_ADDR64 ? 8 : 4;
	if (s.slot_kind == RM_SLOT_ADDR64) {
		*tramp = o->bias + s.trampoline;
		*orig = o->bias + s.slot_orig;
	} else {
		*tramp = (uint32_t)(s.slot_orig + s.trampoline - s.resume);
		*orig = (uint32_t)s.slot_orig;
	}
	*prot = rm_prot_at(o, s.slot, *width);
	if (*prot < 0)
		return 0;
	*p = (void *)(o->bias + s.slot);
	return 1;
}

/* The pages made writable for one batch of swaps, with the protection
 * each goes back to. A dispatch table spans a page or two. */
#define RM_SWAP_PAGES 8

struct rm_unlocked {
	uintptr_t page[RM_SWAP_PAGES];
	int prot[RM_SWAP_PAGES];
	int n;
};

/* Makes the pages of [p, p+width) writable unless they are or u already
 * did; 0 when it cannot. Each mprotect of a process with threads on other
 * processors costs them a TLB shootdown (tens of microseconds on the
 * development machine): a batch unlocks each page once. */
static int rm_unlock(struct rm_unlocked *u, void *p, unsigned width, int prot)
{
	if (prot & PROT_WRITE)
		return 1;
	uintptr_t size = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t lo = (uintptr_t)p & ~(size - 1);
	uintptr_t hi = ((uintptr_t)p + width + size - 1) & ~(size - 1);
	for (uintptr_t pg = lo; pg < hi; pg += size) {
		int have = 0;
		for (int k = 0; k < u->n; k++)
			have |= u->page[k] == pg;
		if (have)
			continue;
		if (u->n == RM_SWAP_PAGES ||
		    mprotect((void *)pg, size, prot | PROT_WRITE) != 0)
			return 0;
		u->page[u->n] = pg;
		u->prot[u->n++] = prot;
	}
	return 1;
}

static void rm_relock(struct rm_unlocked *u)
{
	uintptr_t size = (uintptr_t)sysconf(_SC_PAGESIZE);
	for (int k = 0; k < u->n; k++)
		mprotect((void *)u->page[k], size, u->prot[k]);
	u->n = 0;
}

/* Moves site i's entry of o to its original (to_orig) or back, with its
 * page made writable in u; 1 if it moved. */
static uint32_t rm_swap_in(const struct rm_restore_obj *o, uint32_t i,
			   int to_orig, struct rm_unlocked *u)
{
	void *p;
	unsigned width;
	uint64_t tramp, orig;
	int prot;
	if (!rm_entry_of(o, i, &p, &width, &tramp, &orig, &prot))
		return 0;
	if (!rm_unlock(u, p, width, prot)) {
		/* Out of room: the pages so far go back first. */
		rm_relock(u);
		if (!rm_unlock(u, p, width, prot))
			return 0;
	}
	return to_orig ? rm_swap_entry(p, width, tramp, orig) :
			 rm_swap_entry(p, width, orig, tramp);
}

uint32_t rm_swap_sites(const struct rm_restore_obj *o, const uint8_t *flags,
		       uint8_t any, int to_orig)
{
	struct rm_unlocked u = {.n = 0};
	uint32_t moved = 0;
	for (uint32_t i = 0; i < o->nsites; i++)
		if (!flags || !any || (flags[i] & any))
			moved += rm_swap_in(o, i, to_orig, &u);
	rm_relock(&u);
	return moved;
}

uint32_t rm_swap_site(const struct rm_restore_obj *o, uint32_t i, int to_orig)
{
	if (i >= o->nsites)
		return 0;
	struct rm_unlocked u = {.n = 0};
	uint32_t moved = rm_swap_in(o, i, to_orig, &u);
	rm_relock(&u);
	return moved;
}

uint32_t rm_restore_dispatch(const struct rm_restore_obj *o)
{
	return rm_swap_sites(o, NULL, 0, 1);
}

uint32_t rm_rearm_dispatch(const struct rm_restore_obj *o)
{
	return rm_swap_sites(o, NULL, 0, 0);
}
