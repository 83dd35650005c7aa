/*
 * tt_simd.c: floating-point and vector code inside traced loops. Every
 * variant computes, for each iteration i of the user loop,
 *   dot(i) = sum over j < 64 with x[j] > (i & 63) of x[j] * y[j] * c(i),
 *   x[j] = j + 1, y[j] = 64 - j, c(i) = (i & 7) + 0.5,
 * with SSE2, AVX2+FMA or AVX-512 (mask registers) intrinsics. Every value
 * is a multiple of 0.5 far below 2^52, so all variants are exact: the
 * result is the integer sum of 2 * dot(i). out[0] is the double total
 * (times 2) of a second accumulator kept in memory.
 */
#include <immintrin.h>
#include <stdint.h>

#include "th.h"

#define ID(k) ((void *)(uintptr_t)(in[0] + (k)))
#define N 64

static double tt_x[N] __attribute__((aligned(64)));
static double tt_y[N] __attribute__((aligned(64)));
/* tt_fp_c's accumulators: a loop gcc vectorises on its own. */
static double tt_z[N] __attribute__((aligned(64)));

__attribute__((constructor)) static void tt_simd_init(void)
{
	for (int j = 0; j < N; j++) {
		tt_x[j] = j + 1;
		tt_y[j] = N - j;
	}
}

/* Plain C: z[j] += x[j] * y[j] * c, which gcc -O2 vectorises (packed
 * SSE2); the loop also reads z back. out[0] = 2 * sum of z. */
TT int64_t tt_fp_c(const int64_t *in, int64_t *out)
{
	int64_t n = in[1], s = 0;
	for (int j = 0; j < N; j++)
		tt_z[j] = 0;
	for (int64_t i = 0; i < n; i++) {
		double c = (double)(i & 7) + 0.5;
		for (int j = 0; j < N; j++)
			tt_z[j] += tt_x[j] * tt_y[j] * c;
		s += (int64_t)(2 * tt_z[(i * 5) & (N - 1)]);
		th_backwards_branch(ID(0));
	}
	double t = 0;
	for (int j = 0; j < N; j++)
		t += tt_z[j];
	out[0] = (int64_t)(2 * t);
	return s;
}

TT int64_t tt_fp_sse2(const int64_t *in, int64_t *out)
{
	int64_t n = in[1], s = 0;
	double total = 0;
	for (int64_t i = 0; i < n; i++) {
		__m128d c = _mm_set1_pd((double)(i & 7) + 0.5);
		__m128d t = _mm_set1_pd((double)(i & 63));
		__m128d acc = _mm_setzero_pd();
		for (int j = 0; j < N; j += 2) {
			__m128d x = _mm_load_pd(&tt_x[j]);
			__m128d y = _mm_load_pd(&tt_y[j]);
			__m128d m = _mm_cmpgt_pd(x, t);
			__m128d p = _mm_mul_pd(_mm_mul_pd(x, y), c);
			acc = _mm_add_pd(acc, _mm_and_pd(p, m));
		}
		double dot = _mm_cvtsd_f64(_mm_add_sd(acc, _mm_unpackhi_pd(acc, acc)));
		s += (int64_t)(2 * dot);
		total += dot;
		th_backwards_branch(ID(0));
	}
	out[0] = (int64_t)(2 * total);
	return s;
}

__attribute__((target("avx2,fma"))) TT int64_t tt_fp_avx2(const int64_t *in,
							  int64_t *out)
{
	int64_t n = in[1], s = 0;
	double total = 0;
	for (int64_t i = 0; i < n; i++) {
		__m256d c = _mm256_set1_pd((double)(i & 7) + 0.5);
		__m256d t = _mm256_set1_pd((double)(i & 63));
		__m256d acc = _mm256_setzero_pd();
		for (int j = 0; j < N; j += 4) {
			__m256d x = _mm256_load_pd(&tt_x[j]);
			__m256d y = _mm256_load_pd(&tt_y[j]);
			__m256d m = _mm256_cmp_pd(x, t, _CMP_GT_OQ);
			__m256d p = _mm256_and_pd(_mm256_mul_pd(x, y), m);
			acc = _mm256_fmadd_pd(p, c, acc);
		}
		__m128d h = _mm_add_pd(_mm256_castpd256_pd128(acc),
				       _mm256_extractf128_pd(acc, 1));
		double dot = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
		s += (int64_t)(2 * dot);
		total += dot;
		th_backwards_branch(ID(0));
	}
	out[0] = (int64_t)(2 * total);
	return s;
}

__attribute__((target("avx512f"))) TT int64_t tt_fp_avx512(const int64_t *in,
							    int64_t *out)
{
	int64_t n = in[1], s = 0;
	double total = 0;
	for (int64_t i = 0; i < n; i++) {
		__m512d c = _mm512_set1_pd((double)(i & 7) + 0.5);
		__m512d t = _mm512_set1_pd((double)(i & 63));
		__m512d acc = _mm512_setzero_pd();
		for (int j = 0; j < N; j += 8) {
			__m512d x = _mm512_load_pd(&tt_x[j]);
			__m512d y = _mm512_load_pd(&tt_y[j]);
			__mmask8 m = _mm512_cmp_pd_mask(x, t, _CMP_GT_OQ);
			acc = _mm512_mask3_fmadd_pd(_mm512_mul_pd(x, y), c, acc, m);
		}
		double dot = _mm512_reduce_add_pd(acc);
		s += (int64_t)(2 * dot);
		total += dot;
		th_backwards_branch(ID(0));
	}
	out[0] = (int64_t)(2 * total);
	return s;
}

int th_cpu_has(int feature)
{
	__builtin_cpu_init();
	switch (feature) {
	case TH_CPU_SSE2:
		return __builtin_cpu_supports("sse2");
	case TH_CPU_AVX2_FMA:
		return __builtin_cpu_supports("avx2") &&
		       __builtin_cpu_supports("fma");
	case TH_CPU_AVX512F:
		return __builtin_cpu_supports("avx512f");
	}
	return 0;
}
