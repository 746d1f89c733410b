/* The C runtime every native loop program shares (rnnsearch.cells.native_c): after the
   multiply kernel (gemm.c), Cephes-style expf and tanhf (within 2 ulp of libm,
   vectorisable, NaN in gives NaN out), the loop's multiplies and copies. The op table's
   kernels (rnnsearch.cells.ops) are defined after this file. */
#include <omp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

extern void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*,
                   const float*, const int*, const float*, const int*, const float*, float*, const int*);

static inline float rs_exp(float x) {
    x = x > 88.3762626647949f ? 88.3762626647949f : x;
    x = x < -88.3762626647949f ? -88.3762626647949f : x;
    float fx = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
    x = x - fx * 0.693359375f;
    x = x + fx * 2.12194440e-4f;
    float z = x * x;
    float y = 1.9875691500E-4f;
    y = y * x + 1.3981999507E-3f;
    y = y * x + 8.3334519073E-3f;
    y = y * x + 4.1665795894E-2f;
    y = y * x + 1.6666665459E-1f;
    y = y * x + 5.0000001201E-1f;
    y = y * z + x + 1.0f;
    union { int i; float f; } u;
    u.i = ((int)fx + 127) << 23;
    return y * u.f;
}
static inline float rs_sigmoid(float x) { return 1.0f / (1.0f + rs_exp(-x)); }
static inline float rs_tanh(float x) {
    float a = x < 0.0f ? -x : x;
    float e = rs_exp(-2.0f * a);
    float big = (1.0f - e) / (1.0f + e);
    float z = x * x;
    float small = ((((-5.70498872745E-3f * z + 2.06390887954E-2f) * z - 5.37397155531E-2f) * z
                    + 1.33314422036E-1f) * z - 3.33332819422E-1f) * z * x + x;
    float r = x < 0.0f ? -big : big;
    return a < 0.625f ? small : r;
}

/* The loop's multiplies: by a weight packed once per call where gemm.c's kernel runs,
   else by BLAS (rs_weight gives NULL). Every function below runs inside the loop's
   parallel region: each of its threads (tid of nth) does its share. */
/* RS_SPLIT: under BLAS too the threads split each step's elementwise rows, and thread 0
   multiplies (MKL then runs on one thread: it is inside an active parallel region) */
#if defined(RS_PACKED) || defined(RS_SPLIT)
#define RS_THREADED 1
#endif
static int rs_threads(int nt) {
#ifdef RS_THREADED
    return nt < 1 ? 1 : nt;
#else
    return 1; /* BLAS runs its own threads */
#endif
}
/* the next packed weight's memory, carved from the caller's area; NULL under BLAS */
static float* rs_weight(float** area, int K, int N) {
#ifdef RS_PACKED
    float* P = *area;
    *area += rs_packed_floats(K, N);
    return P;
#else
    (void)area; (void)K; (void)N;
    return NULL;
#endif
}
/* P <- W[K, N] (row stride ldw), or W^T when trans; the threads share the panels */
static void rs_pack_w(int K, int N, const float* W, int ldw, int trans, float* P) {
    if (!P) return;
    const size_t sk = trans ? 1 : (size_t)ldw, sj = trans ? (size_t)ldw : 1;
#pragma omp for schedule(static)
    for (int p = 0; p < (N + RS_NR - 1) / RS_NR; p++) rs_pack_panel(K, N, W, sk, sj, P, p);
}
/* this thread's share of C[B, m] (+)= A[B, k] @ B[k, m], B packed: its rows when each
   thread gets a full tile of them (measured faster than splitting panels: a thread's
   accumulators see every panel once per step), else its panels */
static void rs_share(int tid, int nth, int B, int m, int k, const float* A, int lda, const float* P, float* C, int ldc,
                     int acc) {
#ifdef RS_PACKED
    const int np = (m + RS_NR - 1) / RS_NR;
    if (B >= nth * RS_MR) {
        for (int p = 0; p < np; p++)
            rs_gemm_panel(B * tid / nth, B * (tid + 1) / nth, m, k, A, (size_t)lda, 1, P, C, ldc, acc, p);
    } else {
        for (int p = np * tid / nth; p < np * (tid + 1) / nth; p++)
            rs_gemm_panel(0, B, m, k, A, (size_t)lda, 1, P, C, ldc, acc, p);
    }
#else
    (void)tid; (void)nth; (void)B; (void)m; (void)k; (void)A; (void)lda; (void)P; (void)C; (void)ldc; (void)acc;
#endif
}
/* row-major C[B, m] = beta * C + A[B, k] @ W[k, m] (beta 0 or 1); PW: W packed, or NULL */
static void rs_mm(int tid, int nth, int B, int k, int m, const float* A, int lda, const float* W, const float* PW,
                  float* C, int ldc, float beta) {
    if (PW) {
        rs_share(tid, nth, B, m, k, A, lda, PW, C, ldc, beta != 0.0f);
    } else if (tid == 0) {
        const float one = 1.0f;
        sgemm_("N", "N", &m, &B, &k, &one, W, &m, A, &lda, &beta, C, &ldc);
    }
#pragma omp barrier
}
/* row-major C[B, k] = G[B, m] @ W[k, m]^T; PWT: W^T packed, or NULL */
static void rs_mm_t(int tid, int nth, int B, int m, int k, const float* G, int ldg, const float* W, const float* PWT,
                    float* C, int ldc) {
    if (PWT) {
        rs_share(tid, nth, B, k, m, G, ldg, PWT, C, ldc, 0);
    } else if (tid == 0) {
        const float one = 1.0f, zero = 0.0f;
        sgemm_("T", "N", &k, &B, &m, &one, W, &m, G, &ldg, &zero, C, &ldc);
    }
#pragma omp barrier
}
/* rows split among the threads; rs_copy waits for all of them, rs_copy_nowait does not
   (for a copy nothing in this call reads) */
static void rs_copy_nowait(int B, int n, const float* src, int lds, float* dst, int ldd) {
#pragma omp for schedule(static) nowait
    for (int b = 0; b < B; b++) memcpy(dst + (size_t)b * ldd, src + (size_t)b * lds, sizeof(float) * n);
}
static void rs_copy(int B, int n, const float* src, int lds, float* dst, int ldd) {
    rs_copy_nowait(B, n, src, lds, dst, ldd);
#pragma omp barrier
}
