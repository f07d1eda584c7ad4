/* Fused log-softmax + top-k of each row of a (rows, vocab) score matrix, on a CPU.
 *
 * What the search needs from a step's scores (logits, or log-probs) is each row's k
 * best log-probs and their columns: log_softmax(x).topk(k). PyTorch does that in
 * three passes over all rows x vocab entries (cast to float32, log-softmax, topk,
 * whose CPU kernel partially sorts (value, index) pairs at ~1 ns per entry). Here
 * each row is read twice, both passes vectorised, and only a few entries are sorted:
 *
 *   1. block maxima (32 columns each) and the row maximum m;
 *   2. the k blocks with the largest maxima; the k-th largest of those maxima, t, is
 *      a lower bound of the row's k-th largest entry (those k blocks hold k entries
 *      >= t), so every top-k entry is >= t and lies in one of those blocks;
 *   3. their entries >= t (typically k to 3k) sorted by insertion;
 *   4. log-probs (x - m) - log(sum exp(x - m)), the sum over 16 lanes, exp by range
 *      reduction and a polynomial (relative error < 1e-7).
 *
 * Ties are ordered by column; a row of -inf (all masked) gives -inf. Rows with NaN
 * or +inf are counted and returned; the caller then redoes the whole matrix with
 * PyTorch, whose NaN handling it keeps. Stack use: vocab / 8 + 396 * k bytes, so
 * the caller bounds vocab and k. Built and loaded by nmt/native/__init__.py.
 */
#include <float.h>
#include <math.h>

#include "common.h"

#define BLOCK 32 /* columns per block */

/* exp(x) for x <= 0 (x - row maximum); ~1e-38 below -87 */
static inline float exp_nonpositive(float x) {
    x = x >= -87.0f ? x : -87.0f; /* NaN too: rows with NaN are rejected anyway */
    return exp_bounded(x);
}

/* Insert (v, j) into the sorted (descending, ties by column) list val/idx of n <= k. */
static inline int insert(float *val, int64_t *idx, int n, int k, float v, int64_t j) {
    if (n == k && !(v > val[k - 1] || (v == val[k - 1] && j < idx[k - 1]))) return n;
    int p = n < k ? n++ : k - 1;
    while (p > 0 && (val[p - 1] < v || (val[p - 1] == v && idx[p - 1] > j))) {
        val[p] = val[p - 1];
        idx[p] = idx[p - 1];
        p--;
    }
    val[p] = v;
    idx[p] = j;
    return n;
}

/* One row: its k best log-probs (descending) and columns; returns 1 if lse is finite. */
static inline __attribute__((always_inline)) int row(const void *x, int64_t vocab,
                                                      int k, float *val, int64_t *idx,
                                                      int bf16) {
    int64_t full = vocab / BLOCK, blocks = (vocab + BLOCK - 1) / BLOCK;
    float block_max[blocks];
    float m = -INFINITY;
    int bad = 0; /* NaN or +inf entries (-inf is a masked token, fine) */
    for (int64_t b = 0; b < blocks; b++) {
        int64_t start = b * BLOCK, end = b < full ? start + BLOCK : vocab;
        float bm = -INFINITY;
        if (b < full) {
#pragma omp simd reduction(max : bm) reduction(| : bad)
            for (int j = 0; j < BLOCK; j++) {
                float v = load(x, start + j, bf16);
                bm = v > bm ? v : bm;
                bad |= !(v <= FLT_MAX);
            }
        } else {
            for (int64_t j = start; j < end; j++) {
                float v = load(x, j, bf16);
                bm = v > bm ? v : bm;
                bad |= !(v <= FLT_MAX);
            }
        }
        block_max[b] = bm;
        m = bm > m ? bm : m;
    }
    /* the k blocks with the largest maxima (all blocks when there are fewer) */
    int nb = 0, kb = k < blocks ? k : (int)blocks;
    float best_max[kb];
    int64_t best[kb];
    for (int64_t b = 0; b < blocks; b++) nb = insert(best_max, best, nb, kb, block_max[b], b);
    float bound = kb == k ? best_max[kb - 1] : -INFINITY;
    float cand[kb * BLOCK];
    int64_t cand_idx[kb * BLOCK];
    int nc = 0;
    for (int c = 0; c < nb; c++) {
        int64_t start = best[c] * BLOCK, end = start + BLOCK < vocab ? start + BLOCK : vocab;
        for (int64_t j = start; j < end; j++) { /* branch-free compaction */
            float v = load(x, j, bf16);
            cand[nc] = v;
            cand_idx[nc] = j;
            nc += v >= bound;
        }
    }
    int n = 0;
    for (int c = 0; c < nc; c++) n = insert(val, idx, n, k, cand[c], cand_idx[c]);
    float lane_sum[LANES] = {0.0f}; /* LANES partial sums: vectorised, and accurate */
    int64_t j = 0;
    for (; j + LANES <= vocab; j += LANES)
        for (int l = 0; l < LANES; l++)
            lane_sum[l] += exp_nonpositive(load(x, j + l, bf16) - m);
    float sum = 0.0f;
    for (; j < vocab; j++) sum += exp_nonpositive(load(x, j, bf16) - m);
    for (int l = 0; l < LANES; l++) sum += lane_sum[l];
    if (m == -INFINITY) { /* every entry masked: all -inf, as log_softmax's rows */
        for (int i = 0; i < k; i++) val[i] = -INFINITY;
        return n == k && !bad;
    }
    float log_sum = logf(sum); /* (x - m) - log_sum: exact x - m, one rounding less */
    for (int i = 0; i < k; i++) val[i] = (val[i] - m) - log_sum;
    return n == k && !bad && isfinite(log_sum);
}

/* x: rows x vocab float32 (bf16 = 0) or bfloat16 (bf16 = 1), row r at x + r * stride
 * elements; 1 <= k <= vocab. Writes values (rows, k) and columns (rows, k); returns
 * the number of rows that need the caller's fallback. */
CLONES int64_t nmt_top_log_probs(const void *x, int64_t rows, int64_t vocab,
                                 int64_t stride, int k, int bf16, float *values,
                                 int64_t *columns) {
    int64_t bad = 0;
    for (int64_t r = 0; r < rows; r++) {
        const void *xr = bf16 ? (const void *)((const uint16_t *)x + r * stride)
                              : (const void *)((const float *)x + r * stride);
        int ok = bf16 ? row(xr, vocab, k, values + r * k, columns + r * k, 1)
                      : row(xr, vocab, k, values + r * k, columns + r * k, 0);
        bad += !ok;
    }
    return bad;
}
