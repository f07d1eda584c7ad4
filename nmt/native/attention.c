/* Additive attention of one search step, fused: scores, masked softmax, values mix.
 *
 * For each sentence n, its W rows (beams) w and its S source positions s:
 *
 *   score[w, s]  = sum_a 1 / (c_a + p[w, a] e[s, a]),   p = exp(-q) c,  c = 1 / 2v,
 *   weight[w, :] = softmax over the unmasked s of score[w, :],
 *   mixed[w, :]  = sum_s weight[w, s] values[s, :].
 *
 * q = 2 W_q query and e = exp(-2 W_k key): 1 / (c_a + p_a e_a) = 2 v_a sigmoid(q_a +
 * k_a), so score is v^T tanh(W_q query + W_k key) + sum(v), a constant that the
 * softmax ignores (see AdditiveAttention.prepared_weights). PyTorch takes ~10
 * operations and an (N, W, S, A) buffer for this and mixes bfloat16-rounded weights;
 * here a sentence's e and values are read from cache by all its rows, in float32.
 * A row whose positions are all masked gets NaN weights, as with torch.softmax.
 *
 * Returns 0, or 1 when some |q| > 80 or q is NaN (exp(-q) may then leave float32;
 * nothing is written) or some unmasked score is not finite (NaN or inf in the keys
 * or v): the caller then uses PyTorch, whose NaN handling it keeps. Built and
 * loaded by nmt/native/__init__.py.
 */
#include <math.h>

#include "common.h"

#define EXP_LIMIT 80.0f
/* the mix: KV vectors of VW floats (GBLOCK columns) for up to RB rows at a time,
 * 16 accumulators (AVX2 has 16 registers; 32-byte vectors lose nothing on AMD) */
#define VW 8
#define KV 4
#define RB 4
#define GBLOCK (VW * KV)

typedef float vec __attribute__((vector_size(VW * 4)));
typedef float vec_unaligned __attribute__((vector_size(VW * 4), aligned(4)));
typedef uint16_t half_unaligned __attribute__((vector_size(VW * 2), aligned(2)));
typedef uint32_t words __attribute__((vector_size(VW * 4)));

#if defined(__has_builtin)
#if __has_builtin(__builtin_convertvector)
#define HAS_CONVERTVECTOR 1
#endif
#endif

/* x[0 .. VW) as floats */
static inline __attribute__((always_inline)) vec load_vec(const void *x, int bf16) {
    if (bf16) {
#ifdef HAS_CONVERTVECTOR /* GCC >= 9, clang */
        words bits = __builtin_convertvector(*(const half_unaligned *)x, words) << 16;
#else
        words bits;
        for (int i = 0; i < VW; i++) bits[i] = (uint32_t)((const uint16_t *)x)[i] << 16;
#endif
        vec out;
        memcpy(&out, &bits, sizeof out);
        return out;
    }
    return *(const vec_unaligned *)x;
}

/* sum_a 1 / (c_a + p_a e_a) over LANES partial sums */
static inline float score(const float *c, const float *p, const float *e, int64_t size) {
    float acc[LANES] = {0.0f};
    int64_t a = 0;
    for (; a + LANES <= size; a += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += 1.0f / (c[a + l] + p[a + l] * e[a + l]);
    for (int l = 0; a + l < size; l++) acc[l] += 1.0f / (c[a + l] + p[a + l] * e[a + l]);
    float total = 0.0f;
    for (int l = 0; l < LANES; l++) total += acc[l];
    return total;
}

/* `rows` (a constant after inlining) rows' weights wt (rows, S) times the sentence's
 * values[:, g0 : g0 + GBLOCK] into out (rows, G); each value vector is loaded once */
static inline __attribute__((always_inline)) void mix_block(
    const float *wt, const char *values, int bf16, int64_t src, int64_t gates,
    int64_t g0, float *out, const int rows) {
    vec acc[RB][KV];
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < KV; k++) acc[r][k] = (vec){0};
    const int64_t bytes = bf16 ? 2 : 4;
    for (int64_t s = 0; s < src; s++) {
        const char *v = values + (s * gates + g0) * bytes;
        vec b[KV];
        for (int k = 0; k < KV; k++) b[k] = load_vec(v + VW * k * bytes, bf16);
        for (int r = 0; r < rows; r++) {
            float ws = wt[r * src + s];
            for (int k = 0; k < KV; k++) acc[r][k] += ws * b[k];
        }
    }
    for (int r = 0; r < rows; r++) memcpy(out + r * gates + g0, acc[r], sizeof acc[r]);
}

/* one sentence: weights wt (W, S) x values (S, G) -> mixed (W, G) */
static inline __attribute__((always_inline)) void mix(const float *wt, const char *values,
                                                      int bf16, int64_t width,
                                                      int64_t src, int64_t gates,
                                                      float *mixed) {
    int64_t full = gates / GBLOCK * GBLOCK;
    for (int64_t g0 = 0; g0 < full; g0 += GBLOCK) {
        int64_t w = 0;
        for (; w + RB <= width; w += RB)
            mix_block(wt + w * src, values, bf16, src, gates, g0, mixed + w * gates, RB);
        const float *rest = wt + w * src;
        float *out = mixed + w * gates;
        switch (width - w) {
        case 3: mix_block(rest, values, bf16, src, gates, g0, out, 3); break;
        case 2: mix_block(rest, values, bf16, src, gates, g0, out, 2); break;
        case 1: mix_block(rest, values, bf16, src, gates, g0, out, 1); break;
        }
    }
    for (int64_t w = 0; w < width; w++) /* the last G % GBLOCK columns */
        for (int64_t g = full; g < gates; g++) {
            float sum = 0.0f;
            for (int64_t s = 0; s < src; s++) sum += wt[w * src + s] * load(values, s * gates + g, bf16);
            mixed[w * gates + g] = sum;
        }
}

/* q (N*W rows of A, row stride q_stride) float32 or bfloat16; exp_keys (N, S, A),
 * v (A,) float32; mask (N, S) bool; values (N, S, G) float32 or bfloat16; all
 * contiguous but q's rows. scratch: 2A floats. Out: weights (N*W, S) and mixed
 * (N*W, G) float32. */
CLONES int64_t nmt_additive_mix(const void *q, int64_t q_stride, int q_bf16,
                                const float *exp_keys, const float *v,
                                const uint8_t *mask, const void *values, int values_bf16,
                                int64_t sentences, int64_t width, int64_t src,
                                int64_t size, int64_t gates, float *scratch,
                                float *weights, float *mixed) {
    int64_t rows = sentences * width;
    for (int64_t r = 0; r < rows; r++) {
        int bad = 0;
        for (int64_t a = 0; a < size; a++) bad |= !(fabsf(load(q, r * q_stride + a, q_bf16)) <= EXP_LIMIT);
        if (bad) return 1;
    }
    float *c = scratch, *p = scratch + size; /* c = 1 / 2v (inf where v is 0) */
    for (int64_t a = 0; a < size; a++) c[a] = 1.0f / (2.0f * v[a]);
    const int64_t value_bytes = values_bf16 ? 2 : 4;
    for (int64_t n = 0; n < sentences; n++) {
        const float *e = exp_keys + n * src * size;
        const uint8_t *m = mask + n * src;
        for (int64_t w = 0; w < width; w++) {
            int64_t row = n * width + w;
            for (int64_t a = 0; a < size; a++)
                p[a] = exp_bounded(-load(q, row * q_stride + a, q_bf16)) * c[a];
            float *wt = weights + row * src;
            float top = -INFINITY;
            int finite = 1;
            for (int64_t s = 0; s < src; s++) {
                wt[s] = m[s] ? score(c, p, e + s * size, size) : -INFINITY;
                finite &= !m[s] || isfinite(wt[s]);
                top = wt[s] > top ? wt[s] : top;
            }
            if (!finite) return 1;
            float total = 0.0f;
            for (int64_t s = 0; s < src; s++) {
                float x = wt[s] - top; /* <= 0, or NaN when all are masked */
                wt[s] = m[s] ? exp_bounded(x >= -87.0f ? x : -87.0f) : 0.0f;
                total += wt[s];
            }
            for (int64_t s = 0; s < src; s++) wt[s] /= total;
        }
        mix(weights + n * width * src, (const char *)values + n * src * gates * value_bytes,
            values_bf16, width, src, gates, mixed + n * width * gates);
    }
    return 0;
}
