/*
 * Coordinate-wise sums of secp256k1 points, for the fe scheme's aggregator.
 *
 * Why this exists: summing one point from each of m parties for every coordinate
 * through libsecp256k1's public API costs a full Jacobian addition per point and a
 * field inversion per coordinate, and (for compressed points) a square root per
 * point.  Here points travel uncompressed (x || y, 32 bytes each, big-endian; the
 * all-zero string is the identity), so parsing is a curve-equation check, and the
 * additions are affine with Montgomery's simultaneous inversion across a block of
 * coordinates ("batched point additions"): one inversion per block and party, about
 * six field multiplications per point.
 *
 * References: P. L. Montgomery, "Speeding the Pollard and elliptic curve methods of
 * factorization", Math. Comp. 48 (1987), section 10.3.1 (simultaneous inversion);
 * SEC 2 v2 (secp256k1: y^2 = x^3 + 7 over p = 2^256 - 2^32 - 977).
 *
 * What is promised: every input point is checked (coordinates below p, on the
 * curve) before it is used, and the first bad one is reported by (input, position)
 * without any output; the sum is exact, including P + P, P + (-P) and the identity.
 * What is not: constant time.  Every input here is public (ciphertexts on their way
 * to the aggregator), so the code branches on data; never feed it secrets.
 *
 * Only public group arithmetic lives here; keys and scalars stay with libsecp256k1.
 * The field code needs a 64-bit compiler with unsigned __int128 (gcc, clang).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef uint64_t u64;
typedef unsigned __int128 u128;

#define POINT 64   /* bytes per point: x || y, big-endian */
#define BLOCK 512  /* coordinates per simultaneous inversion (the working set stays in L2) */
/* The most coordinates a call may name: stop * POINT must fit a Py_ssize_t.  Every size is compared with it
 * (or divided, never multiplied) before any product is formed. */
#define MAX_POINTS (PY_SSIZE_T_MAX / POINT)

/* p = 2^256 - C */
static const u64 C = 0x1000003D1ULL;
static const u64 P0 = 0xFFFFFFFEFFFFFC2FULL;
static const u64 MAX = 0xFFFFFFFFFFFFFFFFULL;

typedef struct { u64 v[4]; } fe; /* little-endian limbs, always fully reduced (< p) */

static int fe_ge_p(const fe *a) {
    return a->v[3] == MAX && a->v[2] == MAX && a->v[1] == MAX && a->v[0] >= P0;
}

/* r = a + C (mod 2^256): subtracts p from a value in [p, 2^256) */
static void add_c(fe *r) {
    u128 acc = (u128)r->v[0] + C;
    r->v[0] = (u64)acc; acc >>= 64;
    for (int i = 1; i < 4; i++) { acc += r->v[i]; r->v[i] = (u64)acc; acc >>= 64; }
}

static inline u64 adc(u64 a, u64 b, u64 *carry) {
    u64 s;
    u64 c1 = __builtin_add_overflow(a, b, &s);
    u64 c2 = __builtin_add_overflow(s, *carry, &s);
    *carry = c1 | c2;
    return s;
}

static inline u64 sbb(u64 a, u64 b, u64 *borrow) {
    u64 s;
    u64 b1 = __builtin_sub_overflow(a, b, &s);
    u64 b2 = __builtin_sub_overflow(s, *borrow, &s);
    *borrow = b1 | b2;
    return s;
}

/* r = a + b (mod p), without branches on the data (the carry pattern is random) */
static void fe_add(fe *r, const fe *a, const fe *b) {
    u64 c = 0;
    u64 r0 = adc(a->v[0], b->v[0], &c), r1 = adc(a->v[1], b->v[1], &c);
    u64 r2 = adc(a->v[2], b->v[2], &c), r3 = adc(a->v[3], b->v[3], &c);
    u64 carry = c;
    /* s = r + C = r - p (mod 2^256); its carry says r >= p.  Since a + b < 2p, a carry out of
     * a + b means the value is r + 2^256, whose reduction is s as well. */
    c = 0;
    u64 s0 = adc(r0, C, &c), s1 = adc(r1, 0, &c), s2 = adc(r2, 0, &c), s3 = adc(r3, 0, &c);
    u64 mask = (u64)0 - (carry | c);
    r->v[0] = (s0 & mask) | (r0 & ~mask);
    r->v[1] = (s1 & mask) | (r1 & ~mask);
    r->v[2] = (s2 & mask) | (r2 & ~mask);
    r->v[3] = (s3 & mask) | (r3 & ~mask);
}

/* r = a - b (mod p), without branches on the data */
static void fe_sub(fe *r, const fe *a, const fe *b) {
    u64 c = 0;
    u64 r0 = sbb(a->v[0], b->v[0], &c), r1 = sbb(a->v[1], b->v[1], &c);
    u64 r2 = sbb(a->v[2], b->v[2], &c), r3 = sbb(a->v[3], b->v[3], &c);
    /* a borrow means the value is r - 2^256: adding p subtracts C, with no borrow out (r > C then) */
    u64 k = C & ((u64)0 - c);
    c = 0;
    r->v[0] = sbb(r0, k, &c);
    r->v[1] = sbb(r1, 0, &c);
    r->v[2] = sbb(r2, 0, &c);
    r->v[3] = sbb(r3, 0, &c);
}

/* r = t mod p for a 512-bit t (little-endian words), fully reduced.  2^256 = C (mod p), so
 * t = lo + hi * 2^256 = lo + hi * C, below 2^256 + 2^290; its top word (below 2^34) is folded once more, which
 * leaves a value below 2^256 + 2^98 that a carry out, or a value in [p, 2^256), turns into one subtraction of p
 * (adding C mod 2^256; after a carry out the value is below 2^98, so adding C cannot carry again). */
static inline void fe_reduce(fe *r, const u64 t[8]) {
    u64 m[4];
    u128 acc = 0;
    for (int i = 0; i < 4; i++) {
        acc += (u128)t[i + 4] * C + t[i];
        m[i] = (u64)acc;
        acc >>= 64;
    }
    acc = (u128)(u64)acc * C + m[0];
    r->v[0] = (u64)acc; acc >>= 64;
    for (int i = 1; i < 4; i++) { acc += m[i]; r->v[i] = (u64)acc; acc >>= 64; }
    if (acc) add_c(r);
    if (fe_ge_p(r)) add_c(r);
}

/* r = a * b mod p: schoolbook rows of 64 x 64 -> 128-bit products (16), then the special-form reduction */
static void fe_mul(fe *r, const fe *a, const fe *b) {
    u64 t[8] = {0};
    for (int i = 0; i < 4; i++) {
        u128 carry = 0;
        for (int j = 0; j < 4; j++) {
            carry += (u128)a->v[i] * b->v[j] + t[i + j]; /* < 2^128: (2^64 - 1)^2 + 2 (2^64 - 1) */
            t[i + j] = (u64)carry;
            carry >>= 64;
        }
        t[i + 4] = (u64)carry;
    }
    fe_reduce(r, t);
}

/* r = a^2 mod p: each cross product a_i a_j (i < j) once, the sum doubled by a one-bit shift, then the four
 * squares a_i^2 added on the diagonal: 10 word products instead of 16. */
static void fe_sqr(fe *r, const fe *a) {
    const u64 *x = a->v;
    u64 t[8] = {0};
    for (int i = 0; i < 3; i++) {
        u128 carry = 0;
        for (int j = i + 1; j < 4; j++) {
            carry += (u128)x[i] * x[j] + t[i + j];
            t[i + j] = (u64)carry;
            carry >>= 64;
        }
        t[i + 4] = (u64)carry;
    }
    /* the cross sum is below 2^448 (t[7] = 0): doubled word by word (each takes the bit shifted out of the word
     * below) as the squares are added, in scalar code (an array shift invites slow vector code) */
    u128 carry = 0;
    u64 below = 0;
    for (int i = 0; i < 4; i++) {
        u128 sq = (u128)x[i] * x[i];
        u64 lo = t[2 * i], hi = t[2 * i + 1];
        carry += (u128)((lo << 1) | below) + (u64)sq;
        t[2 * i] = (u64)carry; carry >>= 64;
        carry += (u128)((hi << 1) | (lo >> 63)) + (u64)(sq >> 64);
        t[2 * i + 1] = (u64)carry; carry >>= 64;
        below = hi >> 63;
    }
    fe_reduce(r, t);
}

static int fe_is_zero(const fe *a) { return !(a->v[0] | a->v[1] | a->v[2] | a->v[3]); }
static int fe_eq(const fe *a, const fe *b) { return !memcmp(a, b, sizeof(fe)); }

static void fe_sqr_n(fe *r, const fe *a, int n) {
    *r = *a;
    while (n--) fe_sqr(r, r);
}

/* a^(p-2) = a^-1 for a != 0 (Fermat), by the addition chain libsecp256k1 used (255 squarings,
 * 15 multiplications): p - 2 is 223 ones, a zero, 22 ones, then 0000101101. */
static void fe_inv(fe *r, const fe *a) {
    fe x2, x3, x6, x9, x11, x22, x44, x88, x176, x220, x223, t;
    fe_sqr(&x2, a);         fe_mul(&x2, &x2, a);
    fe_sqr(&x3, &x2);        fe_mul(&x3, &x3, a);
    fe_sqr_n(&x6, &x3, 3);     fe_mul(&x6, &x6, &x3);
    fe_sqr_n(&x9, &x6, 3);     fe_mul(&x9, &x9, &x3);
    fe_sqr_n(&x11, &x9, 2);    fe_mul(&x11, &x11, &x2);
    fe_sqr_n(&x22, &x11, 11);  fe_mul(&x22, &x22, &x11);
    fe_sqr_n(&x44, &x22, 22);  fe_mul(&x44, &x44, &x22);
    fe_sqr_n(&x88, &x44, 44);  fe_mul(&x88, &x88, &x44);
    fe_sqr_n(&x176, &x88, 88); fe_mul(&x176, &x176, &x88);
    fe_sqr_n(&x220, &x176, 44); fe_mul(&x220, &x220, &x44);
    fe_sqr_n(&x223, &x220, 3); fe_mul(&x223, &x223, &x3);
    fe_sqr_n(&t, &x223, 23);   fe_mul(&t, &t, &x22);
    fe_sqr_n(&t, &t, 5);       fe_mul(&t, &t, a);
    fe_sqr_n(&t, &t, 3);       fe_mul(&t, &t, &x2);
    fe_sqr_n(&t, &t, 2);       fe_mul(r, &t, a);
}

static u64 load_be64(const unsigned char *p) {
    u64 x;
    memcpy(&x, p, 8);
    return __builtin_bswap64(x);
}

static void store_be64(unsigned char *p, u64 x) {
    x = __builtin_bswap64(x);
    memcpy(p, &x, 8);
}

static void fe_load(fe *r, const unsigned char *b) {
    for (int i = 0; i < 4; i++) r->v[3 - i] = load_be64(b + 8 * i);
}

static void fe_store(unsigned char *b, const fe *a) {
    for (int i = 0; i < 4; i++) store_be64(b + 8 * i, a->v[3 - i]);
}

typedef struct { fe x, y; int inf; } point;

/* Parse one encoded point: 1 on success (identity included), 0 if it is not a point. */
static int point_load(point *r, const unsigned char *b) {
    static const unsigned char zero[POINT] = {0};
    if (!memcmp(b, zero, POINT)) { r->inf = 1; return 1; }
    fe_load(&r->x, b);
    fe_load(&r->y, b + 32);
    if (fe_ge_p(&r->x) || fe_ge_p(&r->y)) return 0;
    fe y2, x3;
    static const fe seven = {{7, 0, 0, 0}};
    fe_sqr(&y2, &r->y);
    fe_sqr(&x3, &r->x);
    fe_mul(&x3, &x3, &r->x);
    fe_add(&x3, &x3, &seven);
    if (!fe_eq(&y2, &x3)) return 0;
    r->inf = 0;
    return 1;
}

/* r = the third point on the line of slope lam through a and q (x3 = lam^2 - xa - xq), negated: a + q */
static void chord(point *r, const fe *lam, const point *a, const fe *qx) {
    fe x3, y3, t;
    fe_sqr(&x3, lam);
    fe_sub(&x3, &x3, &a->x);
    fe_sub(&x3, &x3, qx);
    fe_sub(&t, &a->x, &x3);
    fe_mul(&y3, lam, &t);
    fe_sub(&y3, &y3, &a->y);
    r->x = x3; r->y = y3; r->inf = 0;
}

/* r = 2a, or the identity (a rare case here: only when two inputs of a coordinate coincide) */
static void point_double(point *r, const point *a) {
    if (a->inf || fe_is_zero(&a->y)) { r->inf = 1; return; }
    fe num, den, lam, t;
    fe_sqr(&num, &a->x);
    fe_add(&t, &num, &num);
    fe_add(&num, &t, &num);        /* 3x^2 */
    fe_add(&den, &a->y, &a->y);    /* 2y */
    fe_inv(&den, &den);
    fe_mul(&lam, &num, &den);
    chord(r, &lam, a, &a->x);
}

/* Lanes that share one field inversion: d[k] are the denominators, prefix[k] their running products, idx[k] the
 * lane of each. */
typedef struct {
    fe d[BLOCK], prefix[BLOCK];
    int idx[BLOCK];
} batch;

/* acc[j] += q[j] for the lanes j < width, sharing one field inversion (Montgomery's trick).  Either may be the
 * identity; P + P and P + (-P) take their own (rare) paths. */
static void add_batch(point *acc, const point *q, Py_ssize_t width, batch *s) {
    fe *d = s->d, *prefix = s->prefix;
    int *idx = s->idx;
    int k = 0;
    for (Py_ssize_t j = 0; j < width; j++) {
        if (q[j].inf) continue;
        if (acc[j].inf) { acc[j] = q[j]; continue; }
        if (fe_eq(&q[j].x, &acc[j].x)) {
            if (fe_eq(&q[j].y, &acc[j].y)) point_double(&acc[j], &acc[j]);
            else acc[j].inf = 1; /* q = -acc */
            continue;
        }
        fe_sub(&d[k], &q[j].x, &acc[j].x);
        if (k) fe_mul(&prefix[k], &prefix[k - 1], &d[k]);
        else prefix[0] = d[0];
        idx[k++] = (int)j;
    }
    if (!k) return;
    fe inv;
    fe_inv(&inv, &prefix[k - 1]); /* every d is non-zero, so is their product */
    for (int m = k - 1; m >= 0; m--) {
        fe dinv, lam, t;
        if (m) { fe_mul(&dinv, &inv, &prefix[m - 1]); fe_mul(&inv, &inv, &d[m]); }
        else dinv = inv;
        const point *b = &q[idx[m]];
        point *a = &acc[idx[m]];
        fe_sub(&t, &b->y, &a->y);
        fe_mul(&lam, &t, &dinv);
        chord(a, &lam, a, &b->x);
    }
}

/* acc[j] = 2 acc[j] for the lanes j < width, sharing one field inversion.  y = 0 would be a point of order 2,
 * which secp256k1's prime-order group does not have; it is mapped to the identity all the same. */
static void double_batch(point *acc, Py_ssize_t width, batch *s) {
    fe *d = s->d, *prefix = s->prefix;
    int *idx = s->idx;
    int k = 0;
    for (Py_ssize_t j = 0; j < width; j++) {
        if (acc[j].inf) continue;
        if (fe_is_zero(&acc[j].y)) { acc[j].inf = 1; continue; }
        fe_add(&d[k], &acc[j].y, &acc[j].y); /* 2y */
        if (k) fe_mul(&prefix[k], &prefix[k - 1], &d[k]);
        else prefix[0] = d[0];
        idx[k++] = (int)j;
    }
    if (!k) return;
    fe inv;
    fe_inv(&inv, &prefix[k - 1]);
    for (int m = k - 1; m >= 0; m--) {
        fe dinv, lam, num, t;
        if (m) { fe_mul(&dinv, &inv, &prefix[m - 1]); fe_mul(&inv, &inv, &d[m]); }
        else dinv = inv;
        point *a = &acc[idx[m]];
        fe_sqr(&num, &a->x);
        fe_add(&t, &num, &num);
        fe_add(&num, &t, &num); /* 3x^2 */
        fe_mul(&lam, &num, &dinv);
        chord(a, &lam, a, &a->x);
    }
}

/* Write width points as 64-byte x || y (zeros for the identity). */
static void store_points(unsigned char *out, const point *acc, Py_ssize_t width) {
    for (Py_ssize_t j = 0; j < width; j++) {
        unsigned char *o = out + j * POINT;
        if (acc[j].inf) memset(o, 0, POINT);
        else { fe_store(o, &acc[j].x); fe_store(o + 32, &acc[j].y); }
    }
}

/* A sum call's working set (about 106 KB): on the heap, so that a thread with a small stack can call add. */
typedef struct {
    point acc[BLOCK];
    point qs[BLOCK];  /* the points being added this pass, already checked */
    batch b;
} scratch;

/*
 * Sum inputs[0..n-1] over coordinates [start, stop) into out (64 bytes per coordinate).
 * Returns -1 on success, or the input index of the first bad point (its coordinate in *where).
 * The caller has checked 0 <= start <= stop <= MAX_POINTS and that every input holds stop points.
 */
static Py_ssize_t sum_span(const unsigned char **inputs, Py_ssize_t n, Py_ssize_t start, Py_ssize_t stop,
                           unsigned char *out, Py_ssize_t *where, scratch *s) {
    point *acc = s->acc, *qs = s->qs;
    for (Py_ssize_t b0 = start; b0 < stop; b0 += BLOCK) {
        Py_ssize_t width = stop - b0 < BLOCK ? stop - b0 : BLOCK;
        for (Py_ssize_t j = 0; j < width; j++) {
            if (!point_load(&acc[j], inputs[0] + (b0 + j) * POINT)) { *where = b0 + j; return 0; }
        }
        for (Py_ssize_t i = 1; i < n; i++) {
            const unsigned char *in = inputs[i] + b0 * POINT;
            for (Py_ssize_t j = 0; j < width; j++) {
                if (!point_load(&qs[j], in + j * POINT)) { *where = b0 + j; return i; }
            }
            add_batch(acc, qs, width, &s->b);
        }
        store_points(out + (b0 - start) * POINT, acc, width);
    }
    return -1;
}

/*
 * Variable-time scalar multiplication, one scalar k for many points: out_j = k * H_j + A_j (the fe reveal's
 * unmasking, with k = -dk).  NOT constant time: the digits of k decide which operations run.  The caller passes
 * only scalars that are public or its own (the aggregator's function key, which unlocks only the sum the reveal
 * releases); party keys stay on libsecp256k1's constant-time path.
 *
 * k = k1 + k2 * lambda (mod n) with |k1|, |k2| < 2^129 (GLV: Gallant, Lambert, Vanstone, CRYPTO 2001; the split is
 * done by the caller), where lambda * (x, y) = (beta * x, y) is secp256k1's endomorphism.  Each half arrives as
 * its width-5 NAF (signed odd digits |d| <= 15, at least four zeros after each non-zero one; Solinas 2000), so one
 * table of the odd multiples H, 3H, .., 15H per point serves both halves (the second with x scaled by beta).  The
 * lanes of a block walk the same digits together, so every doubling and every addition is affine, with one field
 * inversion per block (about 5 multiplications and 2 squarings per doubling or addition).
 */
#define MUL_LANES 256 /* coordinates per block (the tables stay in L2) */
#define TABLE 8       /* odd multiples 1, 3, .., 15 of each point */
#define MAX_DIGITS 160

static const fe BETA = {{0xc1396c28719501eeULL, 0x9cf0497512f58995ULL, 0x6e64479eac3434e9ULL, 0x7ae96a2b657c0710ULL}};

typedef struct {
    point acc[MUL_LANES], q[MUL_LANES];
    point tab[TABLE][MUL_LANES];
    fe tabx_beta[TABLE][MUL_LANES];
    batch b;
} mulwork;

/* q[j] = digit * T_j, with T_j = tab (or its lambda image when beta is set); digit odd, |digit| <= 15 */
static void select_multiple(point *q, const mulwork *w, int digit, int beta, Py_ssize_t width) {
    int i = (digit < 0 ? -digit : digit) >> 1;
    static const fe zero = {{0, 0, 0, 0}};
    for (Py_ssize_t j = 0; j < width; j++) {
        const point *t = &w->tab[i][j];
        q[j].inf = t->inf;
        q[j].x = beta ? w->tabx_beta[i][j] : t->x;
        if (digit < 0) fe_sub(&q[j].y, &zero, &t->y);
        else q[j].y = t->y;
    }
}

/*
 * out (64 bytes per coordinate, x || y, zeros for the identity) = k * bases_j + aggregate_j over
 * coordinates [start, stop).  Returns -1 on success, 0 if an aggregate point is bad, 1 if a base point is
 * (position in *where).  The caller has checked the sizes and the digits.
 */
static int mul_span(const unsigned char *aggregate, const unsigned char *bases, const signed char *naf1,
                    const signed char *naf2, Py_ssize_t digits, Py_ssize_t start, Py_ssize_t stop,
                    unsigned char *out, Py_ssize_t *where, mulwork *w) {
    point *acc = w->acc, *q = w->q;
    for (Py_ssize_t b0 = start; b0 < stop; b0 += MUL_LANES) {
        Py_ssize_t width = stop - b0 < MUL_LANES ? stop - b0 : MUL_LANES;
        for (Py_ssize_t j = 0; j < width; j++) {
            if (!point_load(&w->tab[0][j], bases + (b0 + j) * POINT)) { *where = b0 + j; return 1; }
            q[j] = w->tab[0][j];
        }
        double_batch(q, width, &w->b); /* 2H */
        for (int i = 1; i < TABLE; i++) {
            memcpy(w->tab[i], w->tab[i - 1], sizeof(point) * (size_t)width);
            add_batch(w->tab[i], q, width, &w->b);
        }
        for (int i = 0; i < TABLE; i++)
            for (Py_ssize_t j = 0; j < width; j++) fe_mul(&w->tabx_beta[i][j], &w->tab[i][j].x, &BETA);
        for (Py_ssize_t j = 0; j < width; j++) acc[j].inf = 1;
        int started = 0;
        for (Py_ssize_t pos = digits - 1; pos >= 0; pos--) {
            if (started) double_batch(acc, width, &w->b);
            if (naf1[pos]) { select_multiple(q, w, naf1[pos], 0, width); add_batch(acc, q, width, &w->b); started = 1; }
            if (naf2[pos]) { select_multiple(q, w, naf2[pos], 1, width); add_batch(acc, q, width, &w->b); started = 1; }
        }
        for (Py_ssize_t j = 0; j < width; j++) {
            if (!point_load(&q[j], aggregate + (b0 + j) * POINT)) { *where = b0 + j; return 0; }
        }
        add_batch(acc, q, width, &w->b);
        store_points(out + (b0 - start) * POINT, acc, width);
    }
    return -1;
}

PyDoc_STRVAR(add_doc,
"add(inputs, start, stop) -> (bytes, bad_input, bad_position)\n\n"
"Coordinate-wise sum of uncompressed secp256k1 points (64 bytes each, x || y big-endian,\n"
"zeros for the identity) over coordinates start .. stop - 1 of every input.  On success\n"
"bad_input is -1; otherwise the output is empty and (bad_input, bad_position) name the\n"
"first input and coordinate that is not a point of the curve.  Releases the GIL.\n\n"
"Sizes are checked before any is multiplied: 0 <= start <= stop <= MAX_POINTS (InvalidInputError), every input\n"
"holds at least stop points (MalformedCiphertextError); both are ValueErrors.  The working set (about 106 KB)\n"
"is allocated on the heap, so any thread stack will do.");

/* The typed errors of crypto_backends.errors (InvalidInputError, MalformedCiphertextError), ValueError without them */
static PyObject *bad_range_error, *short_input_error;

static PyObject *py_add(PyObject *self, PyObject *args) {
    PyObject *seq;
    Py_ssize_t start, stop;
    if (!PyArg_ParseTuple(args, "Onn", &seq, &start, &stop)) return NULL;
    if (start < 0 || stop < start || stop > MAX_POINTS) {
        PyErr_Format(bad_range_error, "need 0 <= start <= stop <= %zd, got start %zd and stop %zd", (Py_ssize_t)MAX_POINTS,
                     start, stop);
        return NULL;
    }
    PyObject *fast = PySequence_Fast(seq, "inputs must be a sequence of bytes-like objects");
    if (!fast) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n < 1) {
        Py_DECREF(fast);
        PyErr_SetString(bad_range_error, "need at least one input and 0 <= start <= stop");
        return NULL;
    }
    Py_buffer *views = PyMem_Calloc((size_t)n, sizeof(Py_buffer));
    const unsigned char **ptrs = PyMem_Calloc((size_t)n, sizeof(unsigned char *));
    scratch *work = NULL;
    PyObject *result = NULL, *out = NULL;
    Py_ssize_t got = 0;
    if (!views || !ptrs) { PyErr_NoMemory(); goto done; }
    for (; got < n; got++) {
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(fast, got), &views[got], PyBUF_SIMPLE) < 0) goto done;
        if (views[got].len / POINT < stop) { /* a quotient: no product of caller-given sizes can wrap */
            PyErr_Format(short_input_error, "input %zd holds %zd bytes, fewer than %zd points", got, views[got].len,
                         stop);
            got++;
            goto done;
        }
        ptrs[got] = views[got].buf;
    }
    work = PyMem_Malloc(sizeof(scratch));
    if (!work) { PyErr_NoMemory(); goto done; }
    out = PyBytes_FromStringAndSize(NULL, (stop - start) * POINT); /* stop <= MAX_POINTS: no overflow */
    if (!out) goto done;
    Py_ssize_t bad, where = -1;
    unsigned char *dest = (unsigned char *)PyBytes_AS_STRING(out);
    Py_BEGIN_ALLOW_THREADS
    bad = sum_span(ptrs, n, start, stop, dest, &where, work);
    Py_END_ALLOW_THREADS
    if (bad >= 0) result = Py_BuildValue("(y#nn)", "", (Py_ssize_t)0, bad, where);
    else result = Py_BuildValue("(Onn)", out, (Py_ssize_t)-1, (Py_ssize_t)-1);
done:
    Py_XDECREF(out);
    for (Py_ssize_t i = 0; i < got; i++) PyBuffer_Release(&views[i]);
    PyMem_Free(work);
    PyMem_Free(views);
    PyMem_Free(ptrs);
    Py_DECREF(fast);
    return result;
}

PyDoc_STRVAR(mul_add_doc,
"mul_add(aggregate, bases, naf1, naf2, start, stop) -> (bytes, bad, bad_position)\n\n"
"k * H_j + A_j over coordinates start .. stop - 1, as 64-byte points like its inputs, where A_j and H_j are\n"
"the 64-byte points (x || y big-endian, zeros for the identity) of aggregate and bases and\n"
"k = k1 + k2 * lambda (mod n) with naf1, naf2 the width-5 NAFs of k1 and k2 (int8 digits, least significant\n"
"first, equal lengths of at most 160).  VARIABLE TIME in k: only for public scalars or the caller's own.\n"
"On success bad is -1; otherwise the output is empty and bad is 0 for a bad aggregate point, 1 for a bad base\n"
"point, bad_position its coordinate.  Releases the GIL.  Sizes and digits are checked first (ValueErrors:\n"
"InvalidInputError, MalformedCiphertextError for a short aggregate).");

static int check_naf(const Py_buffer *v, const char *name) {
    const signed char *d = v->buf;
    for (Py_ssize_t i = 0; i < v->len; i++) {
        int x = d[i];
        if (x && (!(x & 1) || x > 15 || x < -15)) {
            PyErr_Format(bad_range_error, "%s digit %zd is %d: NAF digits are 0 or odd within +-15", name, i, x);
            return 0;
        }
    }
    return 1;
}

static PyObject *py_mul_add(PyObject *self, PyObject *args) {
    Py_buffer agg = {0}, bases = {0}, n1 = {0}, n2 = {0};
    Py_ssize_t start, stop;
    if (!PyArg_ParseTuple(args, "y*y*y*y*nn", &agg, &bases, &n1, &n2, &start, &stop)) return NULL;
    PyObject *result = NULL, *out = NULL;
    mulwork *work = NULL;
    if (start < 0 || stop < start || stop > MAX_POINTS) {
        PyErr_Format(bad_range_error, "need 0 <= start <= stop <= %zd, got start %zd and stop %zd", (Py_ssize_t)MAX_POINTS,
                     start, stop);
        goto done;
    }
    if (n1.len != n2.len || n1.len > MAX_DIGITS) {
        PyErr_Format(bad_range_error, "the two NAFs must have the same length, at most %d digits (got %zd and %zd)",
                     MAX_DIGITS, n1.len, n2.len);
        goto done;
    }
    if (!check_naf(&n1, "naf1") || !check_naf(&n2, "naf2")) goto done;
    if (agg.len / POINT < stop) { /* quotients: no product of caller-given sizes can wrap */
        PyErr_Format(short_input_error, "the aggregate holds %zd bytes, fewer than %zd points", agg.len, stop);
        goto done;
    }
    if (bases.len / POINT < stop) {
        PyErr_Format(bad_range_error, "the bases hold %zd bytes, fewer than %zd points", bases.len, stop);
        goto done;
    }
    work = PyMem_Malloc(sizeof(mulwork));
    if (!work) { PyErr_NoMemory(); goto done; }
    out = PyBytes_FromStringAndSize(NULL, (stop - start) * POINT); /* stop <= MAX_POINTS: no overflow */
    if (!out) goto done;
    int bad;
    Py_ssize_t where = -1;
    unsigned char *dest = (unsigned char *)PyBytes_AS_STRING(out);
    Py_BEGIN_ALLOW_THREADS
    bad = mul_span(agg.buf, bases.buf, n1.buf, n2.buf, n1.len, start, stop, dest, &where, work);
    Py_END_ALLOW_THREADS
    if (bad >= 0) result = Py_BuildValue("(y#in)", "", (Py_ssize_t)0, bad, where);
    else result = Py_BuildValue("(Oin)", out, -1, (Py_ssize_t)-1);
done:
    Py_XDECREF(out);
    PyMem_Free(work);
    PyBuffer_Release(&agg);
    PyBuffer_Release(&bases);
    PyBuffer_Release(&n1);
    PyBuffer_Release(&n2);
    return result;
}

static PyMethodDef methods[] = {
    {"add", py_add, METH_VARARGS, add_doc},
    {"mul_add", py_mul_add, METH_VARARGS, mul_add_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_pointsum",
    "Batched affine sums of public secp256k1 points (see crypto_backends/fe/_pointsum.c).", -1, methods,
};

static PyObject *typed_error(PyObject *errors, const char *name) {
    PyObject *cls = errors ? PyObject_GetAttrString(errors, name) : NULL;
    if (cls && PyType_Check(cls) && PyObject_IsSubclass(cls, PyExc_ValueError) == 1) return cls;
    Py_XDECREF(cls);
    PyErr_Clear();
    Py_INCREF(PyExc_ValueError);
    return PyExc_ValueError;
}

PyMODINIT_FUNC PyInit__pointsum(void) {
    PyObject *errors = PyImport_ImportModule("crypto_backends.errors");
    PyErr_Clear(); /* built and imported on its own: ValueError stands in */
    Py_XSETREF(bad_range_error, typed_error(errors, "InvalidInputError"));
    Py_XSETREF(short_input_error, typed_error(errors, "MalformedCiphertextError"));
    Py_XDECREF(errors);
    return PyModule_Create(&module);
}
