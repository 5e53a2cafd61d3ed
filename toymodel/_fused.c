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
 * adds the all-zero samples in closed form). Eight samples are processed at once in GCC vector
 * lanes; every sum runs in a fixed order, so results do not depend on how a caller splits the
 * instances across threads. tests/test_fused.py checks it against autograd.
 *
 * Inputs per instance k (float32 / int32, C-contiguous):
 *   words (inst, rows, n) int32 or NULL; then x (inst, rows, n) float32 is read instead.
 *   From a word w: r = w * 2^-32 + 1/2 is uniform on [0, 1); uniform01: x = max(off + slope * w, 0)
 *   = relu(1 - r/p); uniform_pm1: v = off + slope * w, x = v if v < 1 else 0 (see sparse_step.py).
 *   off, slope (inst, n); W (inst, m, n); W2 (inst, n, m) or NULL; b, imp (inst, n); l1 (inst) or NULL.
 * Outputs (overwritten): gW (inst, m, n), gW2 (inst, n, m) or NULL, gb (inst, n), loss (inst).
 * Returns 0, or -1 if scratch memory could not be allocated.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LANES 8
typedef float v8 __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

enum { LINEAR = 0, RELU_OUTPUT = 1, RELU_HIDDEN = 2, ABS = 3 };
enum { UNIFORM01 = 0, UNIFORM_PM1 = 1 };

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

/* out[r] = sum_c M[r * rs + c * cs] v[c], r < rows, c < cols: four rows at a time in registers, so
 * each v[c] is loaded once per four rows and the four sums advance side by side. */
static inline void matvec(const float *restrict M, size_t rs, size_t cs, int rows, int cols,
                          const v8 *restrict v, v8 *restrict out) {
    int r = 0;
    for (; r + 3 < rows; r += 4) {
        const float *m0 = M + r * rs, *m1 = m0 + rs, *m2 = m1 + rs, *m3 = m2 + rs;
        v8 a0 = splat(0.0f), a1 = splat(0.0f), a2 = splat(0.0f), a3 = splat(0.0f);
        for (int c = 0; c < cols; c++) {
            const v8 vc = v[c];
            const size_t o = c * cs;
            a0 += splat(m0[o]) * vc;
            a1 += splat(m1[o]) * vc;
            a2 += splat(m2[o]) * vc;
            a3 += splat(m3[o]) * vc;
        }
        out[r] = a0;
        out[r + 1] = a1;
        out[r + 2] = a2;
        out[r + 3] = a3;
    }
    for (; r < rows; r++) {
        const float *mr = M + r * rs;
        v8 a = splat(0.0f);
        for (int c = 0; c < cols; c++) a += splat(mr[c * cs]) * v[c];
        out[r] = a;
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
                         float *gW, float *gW2, float *gb, float *loss, v8 *buf) {
    v8 *xb = buf;               /* n */
    v8 *pre = xb + n;           /* m */
    v8 *h = pre + m;            /* m */
    v8 *gh = h + m;             /* m */
    v8 *gz = gh + m;            /* n */
    v8 *acc_gb = gz + n;        /* n */
    v8 *acc_gW = acc_gb + n;    /* m * n, [j * n + i] */
    v8 *acc_gW2 = acc_gW + (size_t)m * n; /* n * m, [i * m + j], abs only */
    v8 *zb = acc_gW2 + (model == ABS ? (size_t)m * n : 0); /* n, after the accumulators */
    const int hidden_relu = model == RELU_HIDDEN || model == ABS;
    const float two_over_b = 2.0f / batch;
    v8 acc_loss = splat(0.0f), acc_l1 = splat(0.0f);
    memset(acc_gb, 0, sizeof(v8) * (size_t)n * (1 + m + (model == ABS ? m : 0)));

    for (int s0 = 0; s0 < rows; s0 += LANES) {
        const int lanes = rows - s0 < LANES ? rows - s0 : LANES;
        v8 valid = splat(0.0f);
        for (int l = 0; l < lanes; l++) valid[l] = 1.0f;
        /* the block's inputs, feature-major */
        for (int i = 0; i < n; i++) {
            v8 v = splat(0.0f);
            if (words) {
                for (int l = 0; l < lanes; l++) v[l] = (float)words[(size_t)(s0 + l) * n + i];
                v = splat(off[i]) + splat(slope[i]) * v;
                if (values == UNIFORM01) {
                    v = relu(v);
                } else {
                    v8i keep = v < splat(1.0f);
                    v = (v8)((v8i)v & keep);
                }
                v *= valid; /* padding lanes hold x = 0 */
            } else {
                for (int l = 0; l < lanes; l++) v[l] = x[(size_t)(s0 + l) * n + i];
            }
            xb[i] = v;
        }
        /* encoder */
        matvec(W, (size_t)n, 1, m, n, xb, pre);
        for (int j = 0; j < m; j++) h[j] = hidden_relu ? relu(pre[j]) : pre[j];
        /* decoder */
        if (model == ABS) matvec(W2, (size_t)m, 1, n, m, h, zb);
        else matvec(W, 1, (size_t)n, n, m, h, zb);
        /* loss and output-side gradients */
        for (int i = 0; i < n; i++) {
            v8 z = zb[i] + splat(b[i]);
            v8 t = model == ABS ? vabs(xb[i]) : xb[i];
            v8 r = (model == LINEAR ? z : relu(z)) - t;
            v8 wr = splat(imp[i]) * r * valid;
            acc_loss += wr * r;
            v8 g = splat(two_over_b) * wr;
            if (model != LINEAR) g = select_pos(g, z);
            gz[i] = g;
            acc_gb[i] += g;
        }
        /* back through the decoder */
        if (model == ABS) matvec(W2, 1, (size_t)m, m, n, gz, gh);
        else matvec(W, (size_t)n, 1, m, n, gz, gh);
        /* hidden-side gradients */
        for (int j = 0; j < m; j++) {
            v8 gj = gh[j];
            if (l1 != 0.0f) {
                acc_l1 += vabs(h[j]) * valid;
                gj += splat(l1 / batch) * vsign(h[j]) * valid;
            }
            gh[j] = hidden_relu ? select_pos(gj, pre[j]) : gj;
        }
        /* weight gradients: decoder side h_j dz_i and encoder side dpre_j x_i, one pass, two rows
         * of the accumulator at a time (each load of dz_i and x_i serves both) */
        int j = 0;
        if (model != ABS) {
            for (; j + 1 < m; j += 2) {
                v8 *restrict a0 = acc_gW + (size_t)j * n, *restrict a1 = a0 + n;
                const v8 h0 = h[j], g0 = gh[j], h1 = h[j + 1], g1 = gh[j + 1];
                for (int i = 0; i < n; i++) {
                    const v8 gzi = gz[i], xi = xb[i];
                    a0[i] += h0 * gzi + g0 * xi;
                    a1[i] += h1 * gzi + g1 * xi;
                }
            }
        }
        for (; j < m; j++) {
            v8 *restrict aj = acc_gW + (size_t)j * n;
            const v8 hj = h[j], gj = gh[j];
            if (model == ABS) {
                for (int i = 0; i < n; i++) aj[i] += gj * xb[i];
            } else {
                for (int i = 0; i < n; i++) aj[i] += hj * gz[i] + gj * xb[i];
            }
        }
        if (model == ABS) {
            for (int i = 0; i < n; i++) {
                v8 *a2 = acc_gW2 + (size_t)i * m;
                const v8 g = gz[i];
                for (int j = 0; j < m; j++) a2[j] += h[j] * g;
            }
        }
    }
    for (int i = 0; i < n; i++) gb[i] = hsum(acc_gb[i]);
    for (size_t k = 0; k < (size_t)m * n; k++) gW[k] = hsum(acc_gW[k]);
    if (model == ABS)
        for (size_t k = 0; k < (size_t)m * n; k++) gW2[k] = hsum(acc_gW2[k]);
    *loss = hsum(acc_loss) / batch + (l1 != 0.0f ? l1 * hsum(acc_l1) / batch : 0.0f);
}

int toymodel_fused_step(int model, int values, int inst, int rows, int n, int m, float batch,
                        const int32_t *words, const float *x, const float *off, const float *slope,
                        const float *W, const float *W2, const float *b, const float *imp, const float *l1,
                        float *gW, float *gW2, float *gb, float *loss) {
    size_t nbuf = (size_t)(4 * n + 3 * m) + (size_t)m * n * (model == ABS ? 2 : 1);
    v8 *buf = NULL;
    if (posix_memalign((void **)&buf, 64, sizeof(v8) * nbuf) != 0) return -1;
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
