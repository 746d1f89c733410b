/* rs_gemm: float32 C = A @ B (+ C) for rnnsearch's native code, register-blocked for AVX-512.

B is packed first (rs_pack) into panels of 64 columns, each K rows x 64 floats, zero
padded: a time loop packs its weights once per call and multiplies by them T times. A is
read in place through two strides, so A or its transpose serve alike. Why not BLAS: on
AMD CPUs MKL runs its AVX2 code, at about half of what this kernel does with AVX-512.
Where AVX-512 is missing, callers use BLAS (RS_PACKED is then undefined). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Denormals: the threads of a parallel region take the calling thread's flush-to-zero
   and denormals-are-zero bits (torch.set_flush_denormal) for the region, so a setting
   whose values drift towards denormals runs no slower on the C loop's threads than on
   torch's; each thread's own mode comes back at the region's end. */
#if defined(__SSE__)
#include <xmmintrin.h>
#define RS_DENORMAL_BITS 0x8040u
static inline unsigned rs_fp_mode(void) { return _mm_getcsr() & RS_DENORMAL_BITS; }
static inline unsigned rs_fp_enter(unsigned mode) {
    const unsigned saved = _mm_getcsr();
    _mm_setcsr((saved & ~RS_DENORMAL_BITS) | mode);
    return saved;
}
static inline void rs_fp_leave(unsigned saved) { _mm_setcsr(saved); }
#else
static inline unsigned rs_fp_mode(void) { return 0; }
static inline unsigned rs_fp_enter(unsigned mode) { return mode; }
static inline void rs_fp_leave(unsigned saved) { (void)saved; }
#endif

#define RS_NR 64  /* columns of a packed panel */
#define RS_MR 6   /* rows of A per register tile: 6 x 4 accumulators of 16 floats */
#define RS_KC 192 /* rows of B per pass: a pass's panel (48 KiB) stays in the L1 cache */

/* floats a packed B[K, N] takes (a multiple of 64 bytes) */
static size_t rs_packed_floats(int K, int N) { return (size_t)((N + RS_NR - 1) / RS_NR) * (size_t)K * RS_NR; }

/* panel p of P <- B[K, N], B(k, j) = W[k * sk + j * sj] */
static void rs_pack_panel(int K, int N, const float* W, size_t sk, size_t sj, float* P, int p) {
    const int j0 = p * RS_NR, w = N - j0 < RS_NR ? N - j0 : RS_NR;
    float* d = P + (size_t)j0 * K;
    if (w < RS_NR) memset(d, 0, sizeof(float) * (size_t)K * RS_NR);
    if (sj == 1) {
        for (int k = 0; k < K; k++) memcpy(d + (size_t)k * RS_NR, W + k * sk + j0, sizeof(float) * w);
    } else {
        for (int j = 0; j < w; j++) {
            const float* s = W + (j0 + j) * sj;
            for (int k = 0; k < K; k++) d[(size_t)k * RS_NR + j] = s[k * sk];
        }
    }
}

static void rs_pack(int K, int N, const float* W, size_t sk, size_t sj, float* P) {
    for (int p = 0; p * RS_NR < N; p++) rs_pack_panel(K, N, W, sk, sj, P, p);
}

#if defined(__AVX512F__) && !defined(RS_BLAS)
#define RS_PACKED 1
#include <immintrin.h>

/* C[mr, w] = A[mr, kc] @ panel[kc, w], plus C when acc, else plus Z (row stride szi) when
   given; mr and nv (vectors of 16 columns) are constants after inlining, so the
   accumulators stay in registers */
static inline __attribute__((always_inline)) void rs_tile(const int mr, const int nv, int kc, const float* A,
                                                         size_t sai, size_t sak, const float* P, float* C, int ldc,
                                                         int w, int acc, const float* Z, size_t szi) {
    __m512 c[RS_MR][4];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) c[i][v] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++) {
        __m512 b[4];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) b[v] = _mm512_loadu_ps(P + (size_t)k * RS_NR + 16 * v);
        const float* a = A + k * sak;
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            const __m512 ai = _mm512_set1_ps(a[i * sai]);
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) c[i][v] = _mm512_fmadd_ps(ai, b[v], c[i][v]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
        float* ci = C + (size_t)i * ldc;
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) {
            const int rem = w - 16 * v;
            const __mmask16 m = rem >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rem) - 1u);
            __m512 r = c[i][v];
            if (acc)
                r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m, ci + 16 * v));
            else if (Z)
                r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m, Z + i * szi + 16 * v));
            _mm512_mask_storeu_ps(ci + 16 * v, m, r);
        }
    }
}

#define RS_CASE(m, v) \
    case (m) * 8 + (v): rs_tile(m, v, kc, A, sai, sak, P, C, ldc, w, acc, Z, szi); break;
#define RS_CASES(m) RS_CASE(m, 1) RS_CASE(m, 2) RS_CASE(m, 3) RS_CASE(m, 4)

static void rs_block(int mr, int nv, int kc, const float* A, size_t sai, size_t sak, const float* P, float* C, int ldc,
                     int w, int acc, const float* Z, size_t szi) {
    switch (mr * 8 + nv) {
        RS_CASES(1) RS_CASES(2) RS_CASES(3) RS_CASES(4) RS_CASES(5) RS_CASES(6)
    }
}

/* rows i0 <= i < i1 of C[:, panel p] = A @ B, plus C when acc, else plus Z (a row-major
   [M, N] with row stride szi; 0 broadcasts one row) when given; A(i, k) = A[i * sai + k * sak] */
static void rs_gemm_panel_z(int i0, int i1, int N, int K, const float* A, size_t sai, size_t sak, const float* P,
                            float* C, int ldc, int acc, int p, const float* Z, size_t szi) {
    const int j0 = p * RS_NR, w = N - j0 < RS_NR ? N - j0 : RS_NR;
    for (int k0 = 0; k0 < K; k0 += RS_KC) {
        const int kc = K - k0 < RS_KC ? K - k0 : RS_KC;
        const float* Pp = P + ((size_t)p * K + k0) * RS_NR;
        for (int i = i0; i < i1; i += RS_MR) {
            const int mr = i1 - i < RS_MR ? i1 - i : RS_MR;
            rs_block(mr, (w + 15) / 16, kc, A + i * sai + k0 * sak, sai, sak, Pp, C + (size_t)i * ldc + j0, ldc, w,
                     acc || k0 > 0, Z ? Z + i * szi + j0 : NULL, szi);
        }
    }
}

static void rs_gemm_panel(int i0, int i1, int N, int K, const float* A, size_t sai, size_t sak, const float* P,
                          float* C, int ldc, int acc, int p) {
    rs_gemm_panel_z(i0, i1, N, K, A, sai, sak, P, C, ldc, acc, p, NULL, 0);
}

/* C[M, N] = A @ B (+ C when acc), one thread */
static void rs_gemm(int M, int N, int K, const float* A, size_t sai, size_t sak, const float* P, float* C, int ldc,
                    int acc) {
    for (int p = 0; p * RS_NR < N; p++) rs_gemm_panel(0, M, N, K, A, sai, sak, P, C, ldc, acc, p);
}
#endif

/* 1 where the kernel runs (AVX-512, RS_BLAS not defined), else 0: callers use BLAS */
int rs_is_packed(void) {
#ifdef RS_PACKED
    return 1;
#else
    return 0;
#endif
}
