/*
 * rm_validate.c: the checks a patched object's header must pass before the
 * runtime writes a single slot (the list is in include/redmagic_patch.h).
 * Compiled into libredmagic.so, and into the Go package's tests and fuzz
 * target through validate.go, so both run the same code.
 */
#include <elf.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../rm_internal.h"


static int rm_fail(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, n, fmt, ap);
	va_end(ap);
	return -1;
}

/* The segment (not a RELRO range) holding [vaddr, vaddr+len), or NULL. */
static const struct rm_seg *rm_seg_of(const struct rm_objdesc *d,
				      uint64_t vaddr, uint64_t len)
{
	if (vaddr + len < vaddr)
		return NULL;
	for (int i = 0; i < d->nsegs; i++) {
		const struct rm_seg *s = &d->segs[i];
		if (s->relro || !(s->flags & PF_R))
			continue;
		if (vaddr >= s->vaddr && vaddr + len <= s->vaddr + s->memsz &&
		    s->vaddr + s->memsz >= s->vaddr)
			return s;
	}
	return NULL;
}

static int rm_in_relro(const struct rm_objdesc *d, uint64_t vaddr,
		       uint64_t len)
{
	for (int i = 0; i < d->nsegs; i++) {
		const struct rm_seg *s = &d->segs[i];
		if (s->relro && vaddr < s->vaddr + s->memsz &&
		    s->vaddr < vaddr + len)
			return 1;
	}
	return 0;
}

static int rm_str_ok(uint32_t off, uint32_t size)
{
	return off < size;
}

int rm_validate(const struct rm_objdesc *d, struct rm_objinfo *out,
		char *why, size_t n)
{
	const uint64_t hsz = sizeof(struct rm_patch_header);
	uint64_t hv = d->hdr_vaddr;
	if (hv % 8)
		return rm_fail(why, n, "header at %#lx is not 8-byte aligned",
			       (unsigned long)hv);
	const struct rm_seg *hs = rm_seg_of(d, hv, hsz);
	if (!hs)
		return rm_fail(why, n,
			       "header at %#lx is outside the loaded segments",
			       (unsigned long)hv);
	if (!(hs->flags & PF_W) || rm_in_relro(d, hv, hsz))
		return rm_fail(why, n,
			       "header at %#lx is not in a writable segment",
			       (unsigned long)hv);
	struct rm_patch_header *h = (void *)(d->bias + hv);
	if (memcmp(h->magic, RM_MAGIC, sizeof h->magic) != 0)
		return rm_fail(why, n, "bad header magic");
	if (h->abi_version != RM_ABI_VERSION)
		return rm_fail(why, n, "abi version %u, want %u",
			       h->abi_version, RM_ABI_VERSION);
	if (h->header_size < hsz || h->header_size > 65536 ||
	    rm_seg_of(d, hv, h->header_size) != hs)
		return rm_fail(why, n, "bad header size %u", h->header_size);
	if (h->self != hv)
		return rm_fail(why, n,
			       "header says it is at %#lx, DT_REDMAGIC says %#lx",
			       (unsigned long)h->self, (unsigned long)hv);
	if (h->hit_fn)
		return rm_fail(why, n, "slots already set by another runtime");
	for (int i = 0; i < RM_API_COUNT; i++)
		if (h->api_fn[i])
			return rm_fail(why, n,
				       "slots already set by another runtime");
	if (h->site_size < sizeof(struct rm_site) ||
	    h->site_size > RM_MAX_SITE_SIZE || h->site_size % 8)
		return rm_fail(why, n, "bad site size %u", h->site_size);
	if (h->nsites > RM_MAX_SITES_PER_OBJECT)
		return rm_fail(why, n, "%u sites, at most %u allowed",
			       h->nsites, RM_MAX_SITES_PER_OBJECT);
	uint64_t slen = (uint64_t)h->nsites * h->site_size;
	if (h->nsites && (h->sites % 8 || !rm_seg_of(d, h->sites, slen)))
		return rm_fail(why, n,
			       "site table at %#lx (%lu bytes) is outside the "
			       "loaded segments",
			       (unsigned long)h->sites, (unsigned long)slen);
	if (h->strtab_size == 0 || !rm_seg_of(d, h->strtab, h->strtab_size))
		return rm_fail(why, n,
			       "string table at %#lx (%u bytes) is outside the "
			       "loaded segments",
			       (unsigned long)h->strtab, h->strtab_size);
	const char *str = (const char *)(d->bias + h->strtab);
	if (str[h->strtab_size - 1] != 0)
		return rm_fail(why, n, "string table is not NUL-terminated");
	if (!rm_str_ok(h->profile, h->strtab_size) ||
	    !rm_str_ok(h->tool_version, h->strtab_size) ||
	    !rm_str_ok(h->build_id, h->strtab_size))
		return rm_fail(why, n, "header string offset out of range");
	const unsigned char *sites = (const void *)(d->bias + h->sites);
	for (uint32_t i = 0; i < h->nsites; i++) {
		struct rm_site s;
		memcpy(&s, sites + (uint64_t)i * h->site_size, sizeof s);
		if (s.kind != RM_SITE_BACKEDGE && s.kind != RM_SITE_API_CALL)
			return rm_fail(why, n, "site %u: bad kind %u", i,
				       s.kind);
		if (s.kind == RM_SITE_API_CALL && s.api >= RM_API_COUNT)
			return rm_fail(why, n, "site %u: bad api %u", i, s.api);
		if (s.flags & ~(uint32_t)RM_SITE_FLAGS_KNOWN)
			return rm_fail(why, n, "site %u: unknown flags %#x", i,
				       s.flags);
		if ((s.flags & RM_SITE_SAMPLED) && s.kind != RM_SITE_BACKEDGE &&
		    !(s.kind == RM_SITE_API_CALL &&
		      s.api == RM_API_BACKWARDS_BRANCH))
			return rm_fail(why, n,
				       "site %u: a sampled site that is not a "
				       "back-edge", i);
		if ((s.flags & RM_SITE_IC) && s.kind != RM_SITE_BACKEDGE)
			return rm_fail(why, n,
				       "site %u: an inline cache at a call", i);
		if ((s.flags & RM_SITE_IC) &&
		    (!(s.flags & RM_SITE_SAMPLED) || s.id_reg < 0 ||
		     s.id_reg > 16))
			return rm_fail(why, n,
				       "site %u: an inline cache without sampling "
				       "or an id register", i);
		/* The runtime writes a sampled site's countdown. */
		if ((s.flags & RM_SITE_SAMPLED) &&
		    (!(rm_seg_of(d, h->sites, slen)->flags & PF_W) ||
		     rm_in_relro(d, h->sites, slen)))
			return rm_fail(why, n,
				       "site %u: sampled, but the site table is "
				       "not writable", i);
		if (s.slot_kind > RM_SLOT_OFF32)
			return rm_fail(why, n, "site %u: bad slot kind %u", i,
				       s.slot_kind);
		if (s.slot_kind != RM_SLOT_NONE &&
		    !rm_seg_of(d, s.slot, s.slot_kind == RM_SLOT_ADDR64 ? 8 : 4))
			return rm_fail(why, n,
				       "site %u: slot at %#lx is outside the "
				       "loaded segments",
				       i, (unsigned long)s.slot);
		if (!rm_str_ok(s.name, h->strtab_size))
			return rm_fail(why, n,
				       "site %u: name offset %u out of range",
				       i, s.name);
	}
	out->hdr = h;
	out->sites = sites;
	out->strtab = str;
	out->nsites = h->nsites;
	out->site_size = h->site_size;
	out->strtab_size = h->strtab_size;
	return 0;
}

