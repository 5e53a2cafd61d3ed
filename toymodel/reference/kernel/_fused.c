/* One fused training step of the toy models for small m*n: forward pass, loss and hand-derived
 * gradients for a run of instances, one pass over the batch, inputs generated on the fly.
 *
 * Why: for the paper's small models (n <= ~100, m <= ~10) every batched product and elementwise
 * op of the step is memory bound, so the unfused step streams each (instances, batch, n) tensor
 * through memory 15-20 times. Here every sample is read once (as the 32-bit words the sampler
 * drew, or as given float inputs) and everything else stays in registers and L1/L2.
 *
 * Arithmetic (per sample, features i < n, hidden j < m; D_ji = W_ji, or W2_ij for abs):
 *   pre_j = sum_i W_ji x_i,  h_j = relu(pre_j) (relu_hidden, abs) or pre_j,
 *   z_i = b_i + sum_j D_ji h_j,  out_i = relu(z_i) (z_i for linear),  r_i = out_i - t_i
 *   (t = |x| for abs, else x),
 *   loss = sum_i imp_i r_i^2 / B + l1 sum_j |h_j| / B,
 *   dz_i = 2 imp_i r_i / B [z_i > 0], dD_ji = h_j dz_i, db_i = dz_i,
 *   dh_j = sum_i D_ji dz_i + l1 sign(h_j) / B,  dpre_j = dh_j [pre_j > 0] (relu_hidden, abs),
 *   dW_ji += dpre_j x_i.
 * B (``batch``) is the divisor of the mean; ``rows`` <= B samples are processed (the sparse step
 * adds the all-zero samples in closed form). Eight samples are processed at once in GCC/clang vector
 * lanes, in blocks of up to 64 samples (eight sub-blocks): the products load each weight once per
 * two sub-blocks, and the weight-gradient accumulators (m * n vectors, in L2) are read and written
 * once per block rather than once per eight samples. Every sum runs in a fixed order, so results
 * do not depend on how a caller splits the instances across threads. tests/test_fused.py checks
 * it against autograd, built with each of gcc and clang and as the scalar path.
 *
 * Portability: the vector path needs the vector extensions of GCC (>= 9) or clang: `vector_size`
 * types, `__builtin_convertvector` and a constant shuffle, `__builtin_shufflevector` (clang,
 * GCC >= 12) or else GCC's `__builtin_shuffle`. The compiler lowers these to whatever the target
 * has (AVX2, SSE, NEON, or scalar code), so any CPU runs it. A compiler without them, or a build
 * with -DTOYMODEL_FUSED_SCALAR, gets the scalar path: plain C99, the same arithmetic with sums in
 * another (still fixed) order. toymodel_fused_variant() names the path built.
 *
 * Inputs per instance k (float32 / int32, C-contiguous):
 *   words (inst, rows, n) int32 or NULL; then x (inst, rows, n) float32 is read instead.
 *   From a word w: r = w * 2^-32 + 1/2 is uniform on [0, 1); uniform01: x = max(off + slope * w, 0)
 *   = relu(1 - r/p); uniform_pm1: v = off + slope * w, x = v if v < 1 else 0 (see dense.py).
 *   off, slope (inst, n); W (inst, m, n); W2 (inst, n, m) or NULL; b, imp (inst, n); l1 (inst) or NULL.
 * Outputs (overwritten): gW (inst, m, n), gW2 (inst, n, m) or NULL, gb (inst, n), loss (inst).
 * Returns 0, or -1 if scratch memory could not be allocated.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { LINEAR = 0, RELU_OUTPUT = 1, RELU_HIDDEN = 2, ABS = 3 };
enum { UNIFORM01 = 0, UNIFORM_PM1 = 1 };

/* Which path to build: TOYMODEL_VECTOR 1 with __builtin_shufflevector, 2 with __builtin_shuffle,
 * undefined for the scalar path. */
#if defined(TOYMODEL_FUSED_SCALAR)
#elif defined(__has_builtin)
#if __has_builtin(__builtin_convertvector) && __has_builtin(__builtin_shufflevector)
#define TOYMODEL_VECTOR 1
#elif __has_builtin(__builtin_convertvector) && __has_builtin(__builtin_shuffle)
#define TOYMODEL_VECTOR 2
#endif
#elif defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 9 /* GCC 9: no __has_builtin yet */
#define TOYMODEL_VECTOR 2
#endif

#if defined(TOYMODEL_VECTOR)

#define LANES 8
typedef float v8 __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

/* The lanes of a and b (0-7 from a, 8-15 from b) picked by eight constant indices. */
#if TOYMODEL_VECTOR == 1
#define VARIANT "vector (__builtin_shufflevector)"
#define SHUFFLE8(a, b, i0, i1, i2, i3, i4, i5, i6, i7) \
    __builtin_shufflevector(a, b, i0, i1, i2, i3, i4, i5, i6, i7)
#else
#define VARIANT "vector (__builtin_shuffle)"
#define SHUFFLE8(a, b, i0, i1, i2, i3, i4, i5, i6, i7) \
    __builtin_shuffle(a, b, (v8i){i0, i1, i2, i3, i4, i5, i6, i7})
#endif

static inline v8 splat(float a) { return (v8){a, a, a, a, a, a, a, a}; }

static inline v8 select_pos(v8 a, v8 mask_src) { /* a where mask_src > 0, else 0 */
    v8i keep = mask_src > splat(0.0f);
    return (v8)((v8i)a & keep);
}

static inline v8 relu(v8 a) { return select_pos(a, a); }

static inline v8 vabs(v8 a) { return (v8)((v8i)a & (v8i){0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff,
                                                            0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff}); }

static inline v8 vsign(v8 a) { /* -1, 0, +1 */
    v8i pos = a > splat(0.0f), neg = a < splat(0.0f);
    return (v8)((v8i)splat(1.0f) & pos) - (v8)((v8i)splat(1.0f) & neg);
}

/* Transpose eight rows of eight 32-bit values in place: r[c][l] becomes the old r[l][c]. */
static inline void transpose8(v8i r[LANES]) {
    v8i t[LANES], u[LANES];
    for (int k = 0; k < LANES; k += 2) {
        t[k] = SHUFFLE8(r[k], r[k + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        t[k + 1] = SHUFFLE8(r[k], r[k + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (int k = 0; k < LANES; k += 4) {
        u[k] = SHUFFLE8(t[k], t[k + 2], 0, 1, 8, 9, 4, 5, 12, 13);
        u[k + 1] = SHUFFLE8(t[k], t[k + 2], 2, 3, 10, 11, 6, 7, 14, 15);
        u[k + 2] = SHUFFLE8(t[k + 1], t[k + 3], 0, 1, 8, 9, 4, 5, 12, 13);
        u[k + 3] = SHUFFLE8(t[k + 1], t[k + 3], 2, 3, 10, 11, 6, 7, 14, 15);
    }
    for (int c = 0; c < 4; c++) {
        r[c] = SHUFFLE8(u[c], u[c + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        r[c + 4] = SHUFFLE8(u[c], u[c + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    }
}

/* Inputs from words already converted to float (see the header); padding lanes (valid 0) give 0. */
static inline v8 to_input(v8 w, float off, float slope, int values, v8 valid) {
    v8 v = splat(off) + splat(slope) * w;
    if (values == UNIFORM01) {
        v = relu(v);
    } else {
        v8i keep = v < splat(1.0f);
        v = (v8)((v8i)v & keep);
    }
    return v * valid;
}

/* Samples are processed in blocks of up to BLOCK = T * LANES: T sub-blocks of eight lanes. A block's
 * per-sample vectors are stored feature-major with the sub-block innermost, v[c * T + t], so the
 * products below can work on several sub-blocks per load of a weight. */
#define T 8
#define BLOCK (T * LANES)

/* out[r * T + t] = sum_c M[r * rs + c * cs] v[c * T + t], r < rows, c < cols, t < nt: four rows and two
 * sub-blocks at a time in registers, so each weight is loaded once per two sub-blocks and each v
 * once per four rows; the last rows % 4 rows go two at a time with four sub-blocks. */
static inline void matvec(const float *restrict M, size_t rs, size_t cs, int rows, int cols,
                          const v8 *restrict v, v8 *restrict out, int nt) {
    for (int t = 0; t < nt; t += 2) {
        const int two = t + 1 < nt;
        int r = 0;
        for (; r + 3 < rows; r += 4) {
            const float *m0 = M + r * rs, *m1 = m0 + rs, *m2 = m1 + rs, *m3 = m2 + rs;
            v8 a0 = splat(0.0f), a1 = splat(0.0f), a2 = splat(0.0f), a3 = splat(0.0f);
            v8 c0 = splat(0.0f), c1 = splat(0.0f), c2 = splat(0.0f), c3 = splat(0.0f);
            if (two) {
                for (int c = 0; c < cols; c++) {
                    const v8 va = v[c * T + t], vb = v[c * T + t + 1];
                    const size_t o = c * cs;
                    const v8 w0 = splat(m0[o]), w1 = splat(m1[o]), w2 = splat(m2[o]), w3 = splat(m3[o]);
                    a0 += w0 * va; c0 += w0 * vb;
                    a1 += w1 * va; c1 += w1 * vb;
                    a2 += w2 * va; c2 += w2 * vb;
                    a3 += w3 * va; c3 += w3 * vb;
                }
            } else {
                for (int c = 0; c < cols; c++) {
                    const v8 va = v[c * T + t];
                    const size_t o = c * cs;
                    a0 += splat(m0[o]) * va;
                    a1 += splat(m1[o]) * va;
                    a2 += splat(m2[o]) * va;
                    a3 += splat(m3[o]) * va;
                }
            }
            out[r * T + t] = a0;
            out[(r + 1) * T + t] = a1;
            out[(r + 2) * T + t] = a2;
            out[(r + 3) * T + t] = a3;
            if (two) {
                out[r * T + t + 1] = c0;
                out[(r + 1) * T + t + 1] = c1;
                out[(r + 2) * T + t + 1] = c2;
                out[(r + 3) * T + t + 1] = c3;
            }
        }
    }
    /* the last rows % 4 rows: two (or one) rows and four sub-blocks at a time */
    for (int r = rows & ~3; r < rows; r += 2) {
        const int pair = r + 1 < rows;
        const float *m0 = M + r * rs, *m1 = pair ? m0 + rs : m0;
        int t = 0;
        for (; t + 3 < nt; t += 4) {
            v8 a0 = splat(0.0f), a1 = splat(0.0f), a2 = splat(0.0f), a3 = splat(0.0f);
            v8 c0 = splat(0.0f), c1 = splat(0.0f), c2 = splat(0.0f), c3 = splat(0.0f);
            for (int c = 0; c < cols; c++) {
                const v8 *vc = v + c * T + t;
                const size_t o = c * cs;
                const v8 w0 = splat(m0[o]), w1 = splat(m1[o]);
                a0 += w0 * vc[0]; a1 += w0 * vc[1]; a2 += w0 * vc[2]; a3 += w0 * vc[3];
                c0 += w1 * vc[0]; c1 += w1 * vc[1]; c2 += w1 * vc[2]; c3 += w1 * vc[3];
            }
            v8 *o0 = out + r * T + t;
            o0[0] = a0; o0[1] = a1; o0[2] = a2; o0[3] = a3;
            if (pair) {
                v8 *o1 = o0 + T;
                o1[0] = c0; o1[1] = c1; o1[2] = c2; o1[3] = c3;
            }
        }
        for (; t < nt; t++) {
            v8 a0 = splat(0.0f), c0 = splat(0.0f);
            for (int c = 0; c < cols; c++) {
                const v8 vc = v[c * T + t];
                a0 += splat(m0[c * cs]) * vc;
                c0 += splat(m1[c * cs]) * vc;
            }
            out[r * T + t] = a0;
            if (pair) out[(r + 1) * T + t] = c0;
        }
    }
}

/* acc[r * cols + c] += sum_{t < nt} (p[r * T + t] * q[c * T + t] + u[r * T + t] * w[c * T + t]) (u, w
 * may be NULL): the weight-gradient outer products of a block, two columns by three rows of
 * accumulators at a time in registers, so each accumulator is read and written once per block. */
static inline void outer_acc(v8 *restrict acc, int rows, int cols, int nt, const v8 *restrict p,
                             const v8 *restrict q, const v8 *restrict u, const v8 *restrict w) {
    int c = 0;
    for (; c + 1 < cols; c += 2) {
        const v8 *q0 = q + c * T, *q1 = q0 + T, *w0 = w ? w + c * T : NULL, *w1 = w ? w0 + T : NULL;
        int r = 0;
        for (; r + 2 < rows; r += 3) {
            const v8 *p0 = p + r * T, *p1 = p0 + T, *p2 = p1 + T;
            v8 a00 = splat(0.0f), a01 = splat(0.0f), a10 = splat(0.0f), a11 = splat(0.0f);
            v8 a20 = splat(0.0f), a21 = splat(0.0f);
            for (int t = 0; t < nt; t++) {
                const v8 x0 = q0[t], x1 = q1[t], y0 = p0[t], y1 = p1[t], y2 = p2[t];
                a00 += y0 * x0; a01 += y0 * x1;
                a10 += y1 * x0; a11 += y1 * x1;
                a20 += y2 * x0; a21 += y2 * x1;
            }
            if (u) {
                const v8 *u0 = u + r * T, *u1 = u0 + T, *u2 = u1 + T;
                for (int t = 0; t < nt; t++) {
                    const v8 x0 = w0[t], x1 = w1[t], y0 = u0[t], y1 = u1[t], y2 = u2[t];
                    a00 += y0 * x0; a01 += y0 * x1;
                    a10 += y1 * x0; a11 += y1 * x1;
                    a20 += y2 * x0; a21 += y2 * x1;
                }
            }
            v8 *o = acc + (size_t)r * cols + c;
            o[0] += a00; o[1] += a01;
            o[cols] += a10; o[cols + 1] += a11;
            o[2 * cols] += a20; o[2 * cols + 1] += a21;
        }
        for (; r < rows; r++) {
            const v8 *p0 = p + r * T, *u0 = u ? u + r * T : NULL;
            v8 a0 = splat(0.0f), a1 = splat(0.0f);
            for (int t = 0; t < nt; t++) { a0 += p0[t] * q0[t]; a1 += p0[t] * q1[t]; }
            if (u)
                for (int t = 0; t < nt; t++) { a0 += u0[t] * w0[t]; a1 += u0[t] * w1[t]; }
            acc[(size_t)r * cols + c] += a0;
            acc[(size_t)r * cols + c + 1] += a1;
        }
    }
    for (; c < cols; c++) {
        for (int r = 0; r < rows; r++) {
            v8 a = splat(0.0f);
            for (int t = 0; t < nt; t++) a += p[r * T + t] * q[c * T + t];
            if (u)
                for (int t = 0; t < nt; t++) a += u[r * T + t] * w[c * T + t];
            acc[(size_t)r * cols + c] += a;
        }
    }
}

static inline float hsum(v8 a) {
    float s = 0.0f;
    for (int l = 0; l < LANES; l++) s += a[l];
    return s;
}

static void one_instance(int model, int values, int rows, int n, int m, float batch,
                         const int32_t *words, const float *x, const float *off, const float *slope,
                         const float *W, const float *W2, const float *b, const float *imp, float l1,
                         float *gW, float *gW2, float *gb, float *loss, void *scratch) {
    v8 *xb = scratch;                  /* n * T */
    v8 *pre = xb + (size_t)n * T;      /* m * T */
    v8 *h = pre + (size_t)m * T;       /* m * T */
    v8 *gh = h + (size_t)m * T;        /* m * T */
    v8 *gz = gh + (size_t)m * T;       /* n * T */
    v8 *zb = gz + (size_t)n * T;       /* n * T */
    v8 *acc_gb = zb + (size_t)n * T;   /* n */
    v8 *acc_gW = acc_gb + n;           /* m * n, [j * n + i] */
    v8 *acc_gW2 = acc_gW + (size_t)m * n; /* n * m, [i * m + j], abs only */
    const int hidden_relu = model == RELU_HIDDEN || model == ABS;
    const float two_over_b = 2.0f / batch;
    v8 acc_loss = splat(0.0f), acc_l1 = splat(0.0f);
    v8 valid[T];
    memset(acc_gb, 0, sizeof(v8) * (size_t)n * (1 + m + (model == ABS ? m : 0)));

    for (int s0 = 0; s0 < rows; s0 += BLOCK) {
        const int left = rows - s0;
        const int nt = left >= BLOCK ? T : (left + LANES - 1) / LANES;
        for (int t = 0; t < nt; t++) {
            const int lanes = left - t * LANES < LANES ? left - t * LANES : LANES;
            valid[t] = splat(0.0f);
            for (int l = 0; l < lanes; l++) valid[t][l] = 1.0f;
        }
        /* the block's inputs, feature-major: eight features of eight samples per 8x8 transpose,
         * the last n % 8 features one lane at a time */
        const int n8 = n & ~(LANES - 1);
        for (int t = 0; t < nt; t++) {
            const int s = s0 + t * LANES;
            const int lanes = left - t * LANES < LANES ? left - t * LANES : LANES;
            for (int i = 0; i < n8; i += LANES) {
                v8i r[LANES];
                for (int l = 0; l < LANES; l++) {
                    if (l < lanes) memcpy(&r[l], words ? (const void *)(words + (size_t)(s + l) * n + i)
                                                       : (const void *)(x + (size_t)(s + l) * n + i), sizeof(v8i));
                    else r[l] = (v8i){0, 0, 0, 0, 0, 0, 0, 0};
                }
                transpose8(r);
                for (int c = 0; c < LANES; c++)
                    xb[(i + c) * T + t] = words ? to_input(__builtin_convertvector(r[c], v8), off[i + c], slope[i + c],
                                                           values, valid[t])
                                                : (v8)r[c];
            }
            for (int i = n8; i < n; i++) {
                v8 v = splat(0.0f);
                if (words) {
                    for (int l = 0; l < lanes; l++) v[l] = (float)words[(size_t)(s + l) * n + i];
                    v = to_input(v, off[i], slope[i], values, valid[t]);
                } else {
                    for (int l = 0; l < lanes; l++) v[l] = x[(size_t)(s + l) * n + i];
                }
                xb[i * T + t] = v;
            }
        }
        /* encoder */
        matvec(W, (size_t)n, 1, m, n, xb, pre, nt);
        for (int j = 0; j < m; j++)
            for (int t = 0; t < nt; t++) h[j * T + t] = hidden_relu ? relu(pre[j * T + t]) : pre[j * T + t];
        /* decoder */
        if (model == ABS) matvec(W2, (size_t)m, 1, n, m, h, zb, nt);
        else matvec(W, 1, (size_t)n, n, m, h, zb, nt);
        /* loss and output-side gradients */
        for (int i = 0; i < n; i++) {
            v8 gsum = splat(0.0f);
            for (int t = 0; t < nt; t++) {
                v8 z = zb[i * T + t] + splat(b[i]);
                v8 xi = xb[i * T + t];
                v8 tg = model == ABS ? vabs(xi) : xi;
                v8 r = (model == LINEAR ? z : relu(z)) - tg;
                v8 wr = splat(imp[i]) * r * valid[t];
                acc_loss += wr * r;
                v8 g = splat(two_over_b) * wr;
                if (model != LINEAR) g = select_pos(g, z);
                gz[i * T + t] = g;
                gsum += g;
            }
            acc_gb[i] += gsum;
        }
        /* back through the decoder */
        if (model == ABS) matvec(W2, 1, (size_t)m, m, n, gz, gh, nt);
        else matvec(W, (size_t)n, 1, m, n, gz, gh, nt);
        /* hidden-side gradients */
        for (int j = 0; j < m; j++) {
            for (int t = 0; t < nt; t++) {
                v8 gj = gh[j * T + t];
                const v8 hj = h[j * T + t];
                if (l1 != 0.0f) {
                    acc_l1 += vabs(hj) * valid[t];
                    gj += splat(l1 / batch) * vsign(hj) * valid[t];
                }
                gh[j * T + t] = hidden_relu ? select_pos(gj, pre[j * T + t]) : gj;
            }
        }
        /* weight gradients: encoder side dpre_j x_i, plus decoder side h_j dz_i for tied weights
         * (D = W) or into gW2 for abs */
        if (model == ABS) {
            outer_acc(acc_gW, m, n, nt, gh, xb, NULL, NULL);
            outer_acc(acc_gW2, n, m, nt, gz, h, NULL, NULL);
        } else {
            outer_acc(acc_gW, m, n, nt, h, gz, gh, xb);
        }
    }
    for (int i = 0; i < n; i++) gb[i] = hsum(acc_gb[i]);
    for (size_t k = 0; k < (size_t)m * n; k++) gW[k] = hsum(acc_gW[k]);
    if (model == ABS)
        for (size_t k = 0; k < (size_t)m * n; k++) gW2[k] = hsum(acc_gW2[k]);
    *loss = hsum(acc_loss) / batch + (l1 != 0.0f ? l1 * hsum(acc_l1) / batch : 0.0f);
}

/* One instance's scratch memory (see one_instance), 64-byte aligned; NULL if out of memory. */
static void *scratch_alloc(int model, int n, int m) {
    size_t count = (size_t)(3 * n + 3 * m) * T + (size_t)n + (size_t)m * n * (model == ABS ? 2 : 1);
    void *buf = NULL;
    return posix_memalign(&buf, 64, sizeof(v8) * count) == 0 ? buf : NULL;
}

#else /* the scalar path: plain C99 */

/* The vector path's algorithm on plain arrays: S samples at a time, every per-sample quantity
 * stored feature-major with the sample innermost (v[i * S + s]), and per-sample accumulators, so
 * that every inner loop runs over independent samples (no reduction across them) and an
 * optimising compiler may vectorise it without reassociating sums. Still 2-3x slower than the
 * vector path (no register tiling, no 8x8 input transposes) and no faster than the unfused torch
 * step: fused.py trains with it only where asked to, and uses such a library for its SFC64 stream. */
#define VARIANT "scalar"
#define S 32 /* samples per block: 8 and 16 ran ~3x slower at n=100, m=20 (accumulator traffic) */

static inline float relu1(float a) { return a > 0.0f ? a : 0.0f; }

/* out[r * S + s] = sum_c M[r * rs + c * cs] v[c * S + s] */
static void matvec1(const float *restrict M, size_t rs, size_t cs, int rows, int cols, const float *restrict v,
                    float *restrict out) {
    for (int r = 0; r < rows; r++) {
        float acc[S] = {0.0f};
        for (int c = 0; c < cols; c++) {
            const float w = M[r * rs + c * cs];
            for (int s = 0; s < S; s++) acc[s] += w * v[c * S + s];
        }
        for (int s = 0; s < S; s++) out[r * S + s] = acc[s];
    }
}

/* acc[(r * cols + c) * S + s] += p[r * S + s] q[c * S + s] (+ u[r * S + s] w[c * S + s]) */
static void outer_acc1(float *restrict acc, int rows, int cols, const float *restrict p, const float *restrict q,
                       const float *restrict u, const float *restrict w) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            float *a = acc + ((size_t)r * cols + c) * S;
            for (int s = 0; s < S; s++) a[s] += p[r * S + s] * q[c * S + s];
            if (u)
                for (int s = 0; s < S; s++) a[s] += u[r * S + s] * w[c * S + s];
        }
}

static float sum1(const float *a) {
    float t = 0.0f;
    for (int s = 0; s < S; s++) t += a[s];
    return t;
}

static void one_instance(int model, int values, int rows, int n, int m, float batch,
                         const int32_t *words, const float *x, const float *off, const float *slope,
                         const float *W, const float *W2, const float *b, const float *imp, float l1,
                         float *gW, float *gW2, float *gb, float *loss, void *scratch) {
    float *xb = scratch;                      /* n * S */
    float *pre = xb + (size_t)n * S;          /* m * S */
    float *h = pre + (size_t)m * S;           /* m * S */
    float *gh = h + (size_t)m * S;            /* m * S */
    float *gz = gh + (size_t)m * S;           /* n * S */
    float *zb = gz + (size_t)n * S;           /* n * S */
    float *acc_gb = zb + (size_t)n * S;       /* n * S */
    float *acc_gW = acc_gb + (size_t)n * S;   /* m * n * S, [(j * n + i) * S + s] */
    float *acc_gW2 = acc_gW + (size_t)m * n * S; /* n * m * S, [(i * m + j) * S + s], abs only */
    const int hidden_relu = model == RELU_HIDDEN || model == ABS;
    const float two_over_b = 2.0f / batch;
    float acc_loss[S] = {0.0f}, acc_l1[S] = {0.0f}, valid[S];
    memset(acc_gb, 0, sizeof(float) * S * (size_t)n * (1 + m + (model == ABS ? m : 0)));

    for (int s0 = 0; s0 < rows; s0 += S) {
        const int lanes = rows - s0 < S ? rows - s0 : S;
        for (int s = 0; s < S; s++) valid[s] = s < lanes ? 1.0f : 0.0f;
        for (int i = 0; i < n; i++)
            for (int s = 0; s < S; s++) {
                float v = 0.0f;
                if (s < lanes && words) {
                    v = off[i] + slope[i] * (float)words[(size_t)(s0 + s) * n + i];
                    v = values == UNIFORM01 ? relu1(v) : (v < 1.0f ? v : 0.0f);
                } else if (s < lanes) {
                    v = x[(size_t)(s0 + s) * n + i];
                }
                xb[i * S + s] = v;
            }
        matvec1(W, (size_t)n, 1, m, n, xb, pre);
        for (int k = 0; k < m * S; k++) h[k] = hidden_relu ? relu1(pre[k]) : pre[k];
        if (model == ABS) matvec1(W2, (size_t)m, 1, n, m, h, zb);
        else matvec1(W, 1, (size_t)n, n, m, h, zb);
        for (int i = 0; i < n; i++)
            for (int s = 0; s < S; s++) {
                const float z = zb[i * S + s] + b[i], xi = xb[i * S + s];
                const float r = (model == LINEAR ? z : relu1(z)) - (model == ABS ? fabsf(xi) : xi);
                const float wr = imp[i] * r * valid[s];
                acc_loss[s] += wr * r;
                const float g = model != LINEAR && !(z > 0.0f) ? 0.0f : two_over_b * wr;
                gz[i * S + s] = g;
                acc_gb[i * S + s] += g;
            }
        if (model == ABS) matvec1(W2, 1, (size_t)m, m, n, gz, gh);
        else matvec1(W, (size_t)n, 1, m, n, gz, gh);
        for (int k = 0; k < m * S; k++) {
            float g = gh[k];
            if (l1 != 0.0f) {
                acc_l1[k % S] += fabsf(h[k]) * valid[k % S];
                g += l1 / batch * (float)((h[k] > 0.0f) - (h[k] < 0.0f)) * valid[k % S];
            }
            gh[k] = hidden_relu && !(pre[k] > 0.0f) ? 0.0f : g;
        }
        if (model == ABS) {
            outer_acc1(acc_gW, m, n, gh, xb, NULL, NULL);
            outer_acc1(acc_gW2, n, m, gz, h, NULL, NULL);
        } else {
            outer_acc1(acc_gW, m, n, h, gz, gh, xb);
        }
    }
    for (int i = 0; i < n; i++) gb[i] = sum1(acc_gb + (size_t)i * S);
    for (size_t k = 0; k < (size_t)m * n; k++) gW[k] = sum1(acc_gW + k * S);
    if (model == ABS)
        for (size_t k = 0; k < (size_t)m * n; k++) gW2[k] = sum1(acc_gW2 + k * S);
    *loss = sum1(acc_loss) / batch + (l1 != 0.0f ? l1 * sum1(acc_l1) / batch : 0.0f);
}

static void *scratch_alloc(int model, int n, int m) {
    return malloc(sizeof(float) * S * ((size_t)(4 * n + 3 * m) + (size_t)m * n * (model == ABS ? 2 : 1)));
}

#endif /* TOYMODEL_VECTOR */

/* Which path this library was built with: "vector (...)" or "scalar". */
const char *toymodel_fused_variant(void) { return VARIANT; }

int toymodel_fused_step(int model, int values, int inst, int rows, int n, int m, float batch,
                        const int32_t *words, const float *x, const float *off, const float *slope,
                        const float *W, const float *W2, const float *b, const float *imp, const float *l1,
                        float *gW, float *gW2, float *gb, float *loss) {
    void *buf = scratch_alloc(model, n, m);
    if (buf == NULL) return -1;
    for (int k = 0; k < inst; k++) {
        size_t mn = (size_t)m * n, rn = (size_t)rows * n;
        one_instance(model, values, rows, n, m, batch, words ? words + k * rn : NULL, x ? x + k * rn : NULL,
                     off ? off + (size_t)k * n : NULL, slope ? slope + (size_t)k * n : NULL, W + k * mn,
                     W2 ? W2 + k * mn : NULL, b + (size_t)k * n, imp + (size_t)k * n, l1 ? l1[k] : 0.0f,
                     gW + k * mn, gW2 ? gW2 + k * mn : NULL, gb + (size_t)k * n, loss + k, buf);
    }
    free(buf);
    return 0;
}

/* The next `count` 64-bit outputs of numpy's SFC64 bit generator (Chris Doty-Humphrey's Small Fast
 * Chaotic PRNG) from the state s = {a, b, c, counter}, which is advanced: bit for bit what
 * numpy.random.SFC64.random_raw(count) returns, without its per-value function call. */
void toymodel_sfc64_fill(uint64_t *restrict s, uint64_t *restrict out, size_t count) {
    uint64_t a = s[0], b = s[1], c = s[2], w = s[3];
    for (size_t k = 0; k < count; k++) {
        const uint64_t tmp = a + b + w++;
        a = b ^ (b >> 11);
        b = c + (c << 3);
        c = ((c << 24) | (c >> 40)) + tmp;
        out[k] = tmp;
    }
    s[0] = a;
    s[1] = b;
    s[2] = c;
    s[3] = w;
}
