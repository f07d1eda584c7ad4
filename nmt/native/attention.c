/* Additive attention of one search step, fused: scores, masked softmax, values mix.
 *
 * For each sentence n, its W rows (beams) w and its S source positions s:
 *
 *   score[w, s]  = sum_a 1 / (c_a + p[w, a] e[s, a]),   p = exp(-q) c,  c = 1 / 2v,
 *   weight[w, :] = softmax over the unmasked s of score[w, :],
 *   mixed[w, :]  = sum_s weight[w, s] values[s, :]  (+ offsets[index[w], :]).
 *
 * q = 2 W_q query and e = exp(-2 W_k key): 1 / (c_a + p_a e_a) = 2 v_a sigmoid(q_a +
 * k_a), so score is v^T tanh(W_q query + W_k key) + sum(v), a constant that the
 * softmax ignores (see AdditiveAttention.prepared_weights). PyTorch takes ~10
 * operations and an (N, W, S, A) buffer for this and mixes bfloat16-rounded weights;
 * here a sentence's e and values are read from cache by all its rows, in float32.
 * A row whose positions are all masked gets NaN weights, as with torch.softmax.
 *
 * The optional offsets row of each query row (the decoder's per-token table of the
 * embedding's share of the same linear maps) is added after the sum, as PyTorch
 * would add the gathered rows: one pass instead of a gather and an add.
 *
 * Returns 0, or 1 when some |q| > 80 or q is NaN (exp(-q) may then leave float32;
 * nothing is written), some index is out of range, or some unmasked score is not
 * finite (NaN or inf in the keys or v): the caller then uses PyTorch, whose NaN
 * handling it keeps. Built and loaded by nmt/native/__init__.py.
 */
#include <math.h>

#include "common.h"

#define EXP_LIMIT 80.0f
/* the mix: up to RB rows share a pass over the sentence's values, KV_ROWS vectors of
 * VW floats each (RB x KV_ROWS accumulators fit AVX2's 16 registers); a lone row
 * (greedy) takes KV_MAX vectors, enough independent sums to hide the FMA latency.
 * A beam of 5 is one pass: a second would re-read the values from L2 (at G = 2048
 * bfloat16 the S value rows lie 4 KB apart, in one L1 set). */
#define VW 8
#define RB 5
#define KV_ROWS 2
#define KV_MAX 8

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

/* `rows` rows' weights wt (rows, S) times the sentence's values[:, g0 : g0 + kv VW]
 * plus each row's offsets (off[r], G floats, or NULL) into out (rows, G); rows and
 * kv are constants after inlining */
static inline __attribute__((always_inline)) void mix_block(
    const float *wt, const char *values, int bf16, int64_t src, int64_t gates,
    int64_t g0, const float *const *off, float *out, const int rows, const int kv) {
    vec acc[RB][KV_MAX];
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < kv; k++) acc[r][k] = (vec){0};
    const int64_t bytes = bf16 ? 2 : 4;
    for (int64_t s = 0; s < src; s++) {
        const char *v = values + (s * gates + g0) * bytes;
        vec b[KV_MAX];
        for (int k = 0; k < kv; k++) b[k] = load_vec(v + VW * k * bytes, bf16);
        for (int r = 0; r < rows; r++) {
            float ws = wt[r * src + s];
            for (int k = 0; k < kv; k++) acc[r][k] += ws * b[k];
        }
    }
    for (int r = 0; r < rows; r++) {
        if (off[r])
            for (int k = 0; k < kv; k++)
                acc[r][k] += *(const vec_unaligned *)(off[r] + g0 + VW * k);
        memcpy(out + r * gates + g0, acc[r], kv * sizeof(vec));
    }
}

/* `rows` rows of one sentence (weights wt (rows, S)) times its values (S, G), plus
 * their offsets (off[r] or NULL), into out (rows, G): blocks of kv vectors, then
 * the last G % (kv VW) columns */
static inline __attribute__((always_inline)) void mix_rows(
    const float *wt, const char *values, int bf16, int64_t src, int64_t gates,
    const float *const *off, float *out, const int rows, const int kv) {
    int64_t g = 0;
    for (; g + kv * VW <= gates; g += kv * VW)
        mix_block(wt, values, bf16, src, gates, g, off, out, rows, kv);
    for (int r = 0; r < rows; r++)
        for (int64_t col = g; col < gates; col++) {
            float sum = 0.0f;
            for (int64_t s = 0; s < src; s++)
                sum += wt[r * src + s] * load(values, s * gates + col, bf16);
            out[r * gates + col] = off[r] ? sum + off[r][col] : sum;
        }
}

/* one sentence: weights wt (W, S) x values (S, G) (+ offsets (V, G) rows index
 * (W,), when offsets is not NULL) -> mixed (W, G) */
static inline __attribute__((always_inline)) void mix(const float *wt, const char *values,
                                                      int bf16, int64_t width,
                                                      int64_t src, int64_t gates,
                                                      const float *offsets,
                                                      const int64_t *index,
                                                      float *mixed) {
    for (int64_t w = 0; w < width; w += RB) {
        const float *rw = wt + w * src;
        float *out = mixed + w * gates;
        const int rows = width - w < RB ? (int)(width - w) : RB;
        const float *off[RB] = {NULL};
        for (int r = 0; offsets && r < rows; r++) off[r] = offsets + index[w + r] * gates;
        switch (rows) {
        case 5: mix_rows(rw, values, bf16, src, gates, off, out, 5, KV_ROWS); break;
        case 4: mix_rows(rw, values, bf16, src, gates, off, out, 4, KV_ROWS); break;
        case 3: mix_rows(rw, values, bf16, src, gates, off, out, 3, KV_ROWS); break;
        case 2: mix_rows(rw, values, bf16, src, gates, off, out, 2, KV_ROWS); break;
        case 1: mix_rows(rw, values, bf16, src, gates, off, out, 1, KV_MAX); break;
        }
    }
}

/* q (N*W rows of A, row stride q_stride) float32 or bfloat16; exp_keys (N, S, A),
 * v (A,) float32; mask (N, S) bool; values (N, S, G) float32 or bfloat16; offsets
 * (offset_rows, G) float32 and index (N*W,) int64, or both NULL; all contiguous
 * but q's rows. scratch: 2A floats. Out: weights (N*W, S) and mixed (N*W, G)
 * float32. */
CLONES int64_t nmt_additive_mix(const void *q, int64_t q_stride, int q_bf16,
                                const float *exp_keys, const float *v,
                                const uint8_t *mask, const void *values, int values_bf16,
                                const float *offsets, const int64_t *index,
                                int64_t offset_rows, int64_t sentences, int64_t width,
                                int64_t src, int64_t size, int64_t gates,
                                float *scratch, float *weights, float *mixed) {
    int64_t rows = sentences * width;
    for (int64_t r = 0; r < rows; r++) {
        int bad = offsets && !(index[r] >= 0 && index[r] < offset_rows);
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
            values_bf16, width, src, gates, offsets, index ? index + n * width : NULL,
            mixed + n * width * gates);
    }
    return 0;
}
