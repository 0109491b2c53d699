/* Peak fp32 FMA throughput of one core, AVX2 (8 lanes) or AVX-512 (16 lanes): the roofline for docs/benchmarks.md.
 *
 *   gcc -O3 -funroll-all-loops -mavx2 -mfma fma_peak.c -o fma_avx2 && ./fma_avx2
 *   gcc -O3 -funroll-all-loops -mavx512f -DUSE_AVX512 fma_peak.c -o fma_avx512 && ./fma_avx512
 *
 * 12 independent accumulators hide the FMA latency on two pipes; the result is multiply-adds per second.
 */
#include <immintrin.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#ifdef USE_AVX512
typedef __m512 vec;
#define FMADD _mm512_fmadd_ps
#define SPLAT _mm512_set1_ps
#define LANES 16
#define ISA "avx512"
#else
typedef __m256 vec;
#define FMADD _mm256_fmadd_ps
#define SPLAT _mm256_set1_ps
#define LANES 8
#define ISA "avx2"
#endif
#define CHAINS 12

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
    vec acc[CHAINS];
    const vec scale = SPLAT(1.0000001f), offset = SPLAT(1e-9f);
    for (int i = 0; i < CHAINS; i++) acc[i] = SPLAT((float)i);
    const long iterations = 200000000;
    const double start = seconds();
    for (long k = 0; k < iterations; k++)
        for (int i = 0; i < CHAINS; i++) acc[i] = FMADD(acc[i], scale, offset);
    const double elapsed = seconds() - start;
    float sink = 0.0f, lanes[LANES];
    for (int i = 0; i < CHAINS; i++) {  /* use the results, so the loop cannot be dropped */
        memcpy(lanes, &acc[i], sizeof(lanes));
        sink += lanes[0];
    }
    printf("%s: %.1f GMAC/s on one core (checksum %g)\n", ISA, iterations * (double)CHAINS * LANES / elapsed / 1e9, sink);
    return 0;
}
