/*
 * rm_stats.c: the statistics written at exit (STATS.md). Turns the snapshot
 * rm_init.c takes into the one-line JSON object and writes it to the file
 * or to standard error.
 *
 * Field order and string escaping are those of encoding/json for the Go
 * Stats struct (stats.go), which the tests decode it into; [] for empty
 * arrays.
 * Nothing here touches global state, so it may run on any thread.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../rm_internal.h"

/* Site kinds, as in enum rm_site_kind. */
#define RM_STATS_BACKEDGE 1
#define RM_STATS_API_CALL 2
#define RM_STATS_MAX_HOT 50

/* The API functions without "redmagic_", indexed by enum rm_api. */
static const char *const rm_api_names[] = {
#define RM_API_NAME(NAME, name) #name,
	RM_API_LIST(RM_API_NAME)
#undef RM_API_NAME
};

/* ------------------------------------------------------------------------ */
/* Output buffer. An allocation failure sticks, so callers check once. */

struct rm_buf {
	char *p;
	size_t len, cap;
	int nomem;
};

static int rm_buf_grow(struct rm_buf *b, size_t n)
{
	if (b->nomem)
		return -1;
	if (b->cap - b->len >= n)
		return 0;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap - b->len < n) {
		if (cap > SIZE_MAX / 2) {
			b->nomem = 1;
			return -1;
		}
		cap *= 2;
	}
	char *p = realloc(b->p, cap);
	if (!p) {
		b->nomem = 1;
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

static void rm_put(struct rm_buf *b, const char *s, size_t n)
{
	if (rm_buf_grow(b, n) == 0) {
		memcpy(b->p + b->len, s, n);
		b->len += n;
	}
}

static void rm_puts(struct rm_buf *b, const char *s)
{
	rm_put(b, s, strlen(s));
}

static void rm_putu(struct rm_buf *b, uint64_t v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
	rm_put(b, tmp, (size_t)n);
}

/* An unsigned field; name carries its separator, quotes and colon. */
static void rm_field_u(struct rm_buf *b, const char *name, uint64_t v)
{
	rm_puts(b, name);
	rm_putu(b, v);
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. The same
 * rules as Go's utf8.DecodeRune: no overlong forms, no surrogates, nothing
 * above U+10FFFF. */
static size_t rm_utf8_len(const unsigned char *s, size_t n, uint32_t *r)
{
	unsigned char c = s[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	uint32_t v = c & (0x7f >> len);
	v = v << 6 | (s[1] & 0x3f);
	for (size_t i = 2; i < len; i++) {
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
		v = v << 6 | (s[i] & 0x3f);
	}
	*r = v;
	return len;
}

/* A JSON string as encoding/json writes it: HTML-safe (<, >, & escaped),
 * invalid UTF-8 as U+FFFD, U+2028 and U+2029 escaped. NULL is "", as
 * C.GoString made it. */
static void rm_put_str(struct rm_buf *b, const char *str)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)(str ? str : "");
	size_t n = strlen((const char *)s);
	size_t i = 0, start = 0;
	char esc[8];

	rm_put(b, "\"", 1);
	while (i < n) {
		unsigned char c = s[i];
		size_t elen = 0, adv = 1;
		if (c < 0x80) {
			if (c >= 0x20 && c != '"' && c != '\\' && c != '<' &&
			    c != '>' && c != '&') {
				i++;
				continue;
			}
			esc[0] = '\\';
			elen = 2;
			switch (c) {
			case '"':
			case '\\':
				esc[1] = (char)c;
				break;
			case '\b':
				esc[1] = 'b';
				break;
			case '\f':
				esc[1] = 'f';
				break;
			case '\n':
				esc[1] = 'n';
				break;
			case '\r':
				esc[1] = 'r';
				break;
			case '\t':
				esc[1] = 't';
				break;
			default:
				memcpy(esc + 1, "u00", 3);
				esc[4] = hex[c >> 4];
				esc[5] = hex[c & 0xf];
				elen = 6;
			}
		} else {
			uint32_t r = 0;
			adv = rm_utf8_len(s + i, n - i, &r);
			if (adv == 0) {
				memcpy(esc, "\\ufffd", 6);
				elen = 6;
				adv = 1;
			} else if (r == 0x2028 || r == 0x2029) {
				memcpy(esc, "\\u202", 5);
				esc[5] = hex[r & 0xf];
				elen = 6;
			} else {
				i += adv;
				continue;
			}
		}
		rm_put(b, (const char *)s + start, i - start);
		rm_put(b, esc, elen);
		i += adv;
		start = i;
	}
	rm_put(b, (const char *)s + start, n - start);
	rm_put(b, "\"", 1);
}

/* ------------------------------------------------------------------------ */
/* Merging the per-thread rows. */

/* One key's counter over all threads. 32 bytes: glibc's qsort sorts larger
 * elements through an array of pointers, several times slower. */
struct rm_key {
	uint64_t id;
	uint64_t count;
	uint64_t slow;
	uint32_t site;
	uint32_t pad;
};

_Static_assert(sizeof(struct rm_key) == 32, "struct rm_key grew");

static int rm_key_cmp(const void *pa, const void *pb)
{
	const struct rm_key *a = pa, *b = pb;
	if (a->site != b->site)
		return a->site < b->site ? -1 : 1;
	if (a->id != b->id)
		return a->id < b->id ? -1 : 1;
	return 0;
}

/* A loop counter and where it ranks. */
struct rm_hot {
	uint64_t hits;
	uint64_t id;
	uint64_t slow;
	uint32_t object;
	uint32_t index;
	uint32_t site;
};

/* Most hits first, then by object, site index, id; the global site last so
 * that two sites claiming one (object, index) still give one order. */
static int rm_hot_before(const struct rm_hot *a, const struct rm_hot *b)
{
	if (a->hits != b->hits)
		return a->hits > b->hits;
	if (a->object != b->object)
		return a->object < b->object;
	if (a->index != b->index)
		return a->index < b->index;
	if (a->id != b->id)
		return a->id < b->id;
	return a->site < b->site;
}

static int rm_loop_site(const struct rm_snap_site *s)
{
	return s->kind == RM_STATS_BACKEDGE ||
	       (s->kind == RM_STATS_API_CALL &&
		s->api == RM_API_BACKWARDS_BRANCH);
}

/* Copies the rows of valid sites into *out, sorted and merged by key.
 * Returns the number of keys, or -1 when out of memory. */
static int64_t rm_merge(const struct rm_snapshot *s, struct rm_key **out)
{
	uint64_t n = 0;
	*out = NULL;
	for (uint64_t r = 0; r < s->nrows; r++)
		n += s->rows[r].site < s->nsites;
	if (n == 0)
		return 0;
	if (n > SIZE_MAX / sizeof(struct rm_key))
		return -1;
	struct rm_key *k = malloc(n * sizeof *k);
	if (!k)
		return -1;
	uint64_t m = 0;
	for (uint64_t r = 0; r < s->nrows; r++) {
		const struct rm_snap_row *row = &s->rows[r];
		if (row->site >= s->nsites)
			continue;
		k[m++] = (struct rm_key){
			.id = row->id, .count = row->count, .slow = row->slow,
			.site = row->site,
		};
	}
	qsort(k, n, sizeof *k, rm_key_cmp);
	m = 0;
	for (uint64_t i = 0; i < n; i++) {
		if (m && k[m - 1].site == k[i].site && k[m - 1].id == k[i].id) {
			k[m - 1].count += k[i].count;
			k[m - 1].slow += k[i].slow;
		} else {
			k[m++] = k[i];
		}
	}
	*out = k;
	return (int64_t)m;
}

/* ------------------------------------------------------------------------ */
/* The JSON object. */

static void rm_put_sites(struct rm_buf *b, const struct rm_snapshot *s,
			 const struct rm_key *k, uint64_t nk)
{
	uint64_t j = 0;
	rm_puts(b, "\"sites\":[");
	for (uint32_t g = 0; g < s->nsites; g++) {
		const struct rm_snap_site *x = &s->sites[g];
		uint64_t hits = x->overflow_hits, distinct = 0;
		/* k is sorted by site, so site g's keys are the next run. */
		for (; j < nk && k[j].site == g; j++) {
			hits += k[j].count;
			distinct++;
		}
		rm_puts(b, g ? ",{" : "{");
		rm_field_u(b, "\"object\":", x->object);
		rm_field_u(b, ",\"index\":", x->index);
		rm_puts(b, ",\"name\":");
		rm_put_str(b, x->name);
		rm_field_u(b, ",\"addr\":", x->addr);
		rm_puts(b, ",\"kind\":\"");
		if (x->kind == RM_STATS_BACKEDGE) {
			rm_puts(b, "backedge");
		} else if (x->kind == RM_STATS_API_CALL &&
			   x->api < RM_API_COUNT) {
			rm_puts(b, "api:");
			rm_puts(b, rm_api_names[x->api]);
		} else {
			rm_puts(b, "unknown(");
			rm_putu(b, x->kind);
			rm_puts(b, ")");
		}
		rm_field_u(b, "\",\"hits\":", hits);
		rm_field_u(b, ",\"distinct_ids\":", distinct);
		rm_puts(b, "}");
	}
	rm_puts(b, "]");
}

/* The RM_STATS_MAX_HOT first loop counters in rm_hot_before order. Keys
 * are unique, so keeping a sorted top list by insertion gives what sorting
 * them all would, without a second copy of millions of keys. */
static void rm_put_hot(struct rm_buf *b, const struct rm_snapshot *s,
		       const struct rm_key *k, uint64_t nk)
{
	struct rm_hot top[RM_STATS_MAX_HOT];
	size_t n = 0;

	for (uint64_t i = 0; i < nk; i++) {
		const struct rm_snap_site *x = &s->sites[k[i].site];
		if (!rm_loop_site(x))
			continue;
		struct rm_hot h = {
			.hits = k[i].count, .id = k[i].id, .slow = k[i].slow,
			.object = x->object, .index = x->index, .site = k[i].site,
		};
		if (n == RM_STATS_MAX_HOT && !rm_hot_before(&h, &top[n - 1]))
			continue;
		size_t j = n < RM_STATS_MAX_HOT ? n++ : n - 1;
		for (; j > 0 && rm_hot_before(&h, &top[j - 1]); j--)
			top[j] = top[j - 1];
		top[j] = h;
	}
	rm_puts(b, "\"hot_loops\":[");
	for (size_t i = 0; i < n; i++) {
		rm_puts(b, i ? ",{" : "{");
		rm_field_u(b, "\"object\":", top[i].object);
		rm_field_u(b, ",\"site\":", top[i].index);
		rm_field_u(b, ",\"id\":", top[i].id);
		rm_field_u(b, ",\"hits\":", top[i].hits);
		rm_field_u(b, ",\"slow_path_calls\":", top[i].slow);
		rm_puts(b, "}");
	}
	rm_puts(b, "]");
}

static void rm_put_stats(struct rm_buf *b, const struct rm_snapshot *s,
			 const struct rm_key *k, uint64_t nk)
{
	uint64_t site_hits = 0, overflow = 0, slow = 0;
	char pid[24];

	for (uint64_t i = 0; i < nk; i++) {
		site_hits += k[i].count;
		slow += k[i].slow;
	}
	for (uint32_t g = 0; g < s->nsites; g++)
		overflow += s->sites[g].overflow_hits;
	site_hits += overflow;

	rm_puts(b, "{\"version\":1,\"pid\":");
	snprintf(pid, sizeof pid, "%" PRId64, s->pid);
	rm_puts(b, pid);
	rm_puts(b, ",\"objects\":[");
	for (uint32_t o = 0; o < s->nobjs; o++) {
		const struct rm_snap_obj *x = &s->objs[o];
		rm_puts(b, o ? ",{\"path\":" : "{\"path\":");
		rm_put_str(b, x->path);
		rm_puts(b, ",\"profile\":");
		rm_put_str(b, x->profile);
		rm_puts(b, ",\"build_id\":");
		rm_put_str(b, x->build_id);
		rm_puts(b, ",\"tool_version\":");
		rm_put_str(b, x->tool_version);
		rm_puts(b, "}");
	}
	rm_field_u(b, "],\"site_hits\":", site_hits);
	rm_puts(b, ",");
	rm_put_sites(b, s, k, nk);
	rm_puts(b, ",");
	rm_put_hot(b, s, k, nk);
	rm_field_u(b, ",\"threads\":", s->threads);
	rm_puts(b, s->forked ? ",\"forked_child\":true" :
		",\"forked_child\":false");
	rm_puts(b, s->disabled ? ",\"disabled\":true" : ",\"disabled\":false");
	rm_puts(b, ",\"gave_up\":");
	rm_puts(b, s->gave_up_json ? s->gave_up_json : "{}");
	rm_field_u(b, ",\"hot_threshold\":", s->hot_threshold);
	rm_field_u(b, ",\"slow_path_calls\":", slow);
	rm_field_u(b, ",\"table_full_hits\":", overflow);
	rm_field_u(b, ",\"invalid_site_calls\":", s->invalid_site_calls);
	rm_field_u(b, ",\"dispatch_restored\":", s->dispatch_restored);
	rm_field_u(b, ",\"inline_cache_fills\":", s->inline_cache_fills);
	rm_field_u(b, ",\"governor_quiets\":", s->governor_quiets);
	rm_field_u(b, ",\"jit_rate_best\":", s->jit_rate_best);
	rm_field_u(b, ",\"jit_rate_refusals\":", s->jit_rate_refusals);
	rm_puts(b, ",\"jit\":");
	rm_puts(b, s->jit_json ? s->jit_json : "null");
	rm_puts(b, "}\n");
}

/* ------------------------------------------------------------------------ */
/* Where the report goes. */

/* Appends to out (n bytes, k used) the expansion of pattern for process
 * pid: "%p" is the process id and "%%" a '%'; any other character, a lone
 * '%' included, stands for itself. *has_pid tells whether "%p" occurred.
 * Returns the new length, or -1 when the result does not fit. */
static long rm_stats_expand(const char *pattern, int64_t pid, char *out,
			    size_t n, size_t k, int *has_pid)
{
	char num[24];
	*has_pid = 0;
	for (const char *p = pattern; *p; p++) {
		const char *piece = p;
		size_t len = 1;
		if (p[0] == '%' && p[1] == 'p') {
			len = (size_t)snprintf(num, sizeof num, "%" PRId64, pid);
			piece = num;
			*has_pid = 1;
			p++;
		} else if (p[0] == '%' && p[1] == '%') {
			p++;
		}
		if (k + len >= n)
			return -1;
		memcpy(out + k, piece, len);
		k += len;
	}
	if (k >= n)
		return -1;
	out[k] = 0;
	return (long)k;
}

int rm_stats_target(const char *pattern, const char *cwd, int64_t pid,
		    int64_t owner, char *out, size_t n, int *shared)
{
	size_t k = 0;
	if (pattern[0] != '/' && cwd && *cwd) {
		size_t c = strlen(cwd);
		int slash = cwd[c - 1] != '/';
		if (c + slash >= n)
			return -1;
		memcpy(out, cwd, c);
		if (slash)
			out[c] = '/';
		k = c + slash;
	}
	int has_pid;
	long len = rm_stats_expand(pattern, pid, out, n, k, &has_pid);
	if (len < 0)
		return -1;
	*shared = !has_pid;
	if (*shared && owner != pid) {
		int r = snprintf(out + len, n - (size_t)len, ".%" PRId64, pid);
		if (r < 0 || (size_t)r >= n - (size_t)len)
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Writing. */

static int rm_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int rm_fail(char *why, size_t whylen, const char *path, int err)
{
	if (why && whylen)
		snprintf(why, whylen, "%s: %s", path, strerror(err));
	return -1;
}

int rm_stats_write(const struct rm_snapshot *s, char *why, size_t whylen)
{
	const char *out = s->out ? s->out : "";
	struct rm_buf b = { 0 };
	struct rm_key *k;
	int64_t nk = rm_merge(s, &k);

	if (nk < 0)
		return rm_fail(why, whylen, out, ENOMEM);
	rm_put_stats(&b, s, k, (uint64_t)nk);
	free(k);
	if (b.nomem) {
		free(b.p);
		return rm_fail(why, whylen, out, ENOMEM);
	}

	int err = 0;
	if (strcmp(out, "1") == 0) {
		if (rm_write_all(2, b.p, b.len) != 0)
			err = errno;
	} else {
		int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			      0644);
		if (fd < 0) {
			err = errno;
		} else {
			if (rm_write_all(fd, b.p, b.len) != 0)
				err = errno;
			/* A failed close can be the first report of a failed
			 * write (NFS, quotas). */
			if (close(fd) != 0 && !err && errno != EINTR)
				err = errno;
		}
	}
	free(b.p);
	if (err)
		return rm_fail(why, whylen, out, err);
	return 0;
}
