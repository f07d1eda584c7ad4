/* What the native kernels share: per-ISA clones, bfloat16 loads, a vectorisable exp. */
#ifndef NMT_NATIVE_COMMON_H
#define NMT_NATIVE_COMMON_H

#include <stdint.h>
#include <string.h>

#define LANES 16 /* independent accumulators: one AVX-512 register of floats */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(NMT_NO_CLONES)
/* one copy per instruction set, picked when the library loads */
#define CLONES __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define CLONES
#endif

static inline float bits_to_float(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* x[j] of a float32 (bf16 = 0) or bfloat16 (bf16 = 1: a float's upper 16 bits) array */
static inline __attribute__((always_inline)) float load(const void *x, int64_t j,
                                                         int bf16) {
    if (bf16) return bits_to_float((uint32_t)((const uint16_t *)x)[j] << 16);
    return ((const float *)x)[j];
}

/* exp(x) for -87 <= x <= 88: 2^n * e^f with n = round(x / ln 2) (adding 1.5 * 2^23
 * rounds to an integer, whose bits then hold n) and |f| <= ln(2)/2, e^f by the
 * Cephes polynomial (relative error < 1e-7); branch-free so loops vectorise. */
static inline float exp_bounded(float x) {
    float shifted = x * 1.44269504088896341f + 12582912.0f;
    uint32_t bits;
    memcpy(&bits, &shifted, sizeof bits);
    float n = shifted - 12582912.0f;
    float f = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * f + 1.3981999507e-3f;
    p = p * f + 8.3334519073e-3f;
    p = p * f + 4.1665795894e-2f;
    p = p * f + 1.6666665459e-1f;
    p = p * f + 5.0000001201e-1f;
    p = p * f * f + f + 1.0f;
    return p * bits_to_float((bits - 0x4B400000u + 127u) << 23);
}

#endif
