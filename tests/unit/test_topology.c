/* test_topology.c -- set choice against hand-checked answers and against a brute-force
 * reference, fragmentation sequences, the guaranteed query, concurrent lazy fill, and shapes
 * shared between topologies. The parsers and the mask helpers are in test_topology_parse.c.
 *
 * Fixtures (../topology_fixtures.h): an HGX H100 (8 GPUs, every pair NV18 through NVSwitch), a
 * DGX-1 V100 (hybrid cube mesh, as its `nvidia-smi topo -m` prints it), a 4-GPU PCIe box on two
 * NUMA nodes, an HGX-2 (16 GPUs, all NV6), a 16-GPU node of two 8-GPU NVLink islands joined by SYS,
 * and seeded random topologies with every link class. The brute-force reference (brute_all) knows
 * only the public pair accessors and enumerates every subset. */
#include <pthread.h>

#include "gx/topology.h"

#include "check.h"
#include "topo_doc.h"
#include "topology_fixtures.h"

/* ---- brute-force reference ---- */

struct ref {
    unsigned n;
    uint32_t healthy;
    uint32_t *sum; /* pair-score sum per mask */
    uint8_t *cls;  /* min pair class per mask (NVLINK below two GPUs) */
};

static void ref_init(struct ref *r, const struct topo *t)
{
    r->n = topo_gpu_count(t);
    r->healthy = topo_healthy_mask(t);
    r->sum = calloc((size_t)1 << r->n, sizeof(*r->sum));
    r->cls = calloc((size_t)1 << r->n, sizeof(*r->cls));
    CHECK(r->sum && r->cls);
    for (uint32_t m = 0; m < BIT(r->n); m++) {
        unsigned c = TOPO_NVLINK;
        for (unsigned a = 0; a < r->n; a++) {
            for (unsigned b = a + 1; b < r->n; b++) {
                if ((m & BIT(a)) && (m & BIT(b))) {
                    r->sum[m] += topo_pair_score(t, a, b);
                    if ((unsigned)topo_pair_class(t, a, b) < c)
                        c = topo_pair_class(t, a, b);
                }
            }
        }
        r->cls[m] = (uint8_t)c;
    }
}

static void ref_destroy(struct ref *r)
{
    free(r->sum);
    free(r->cls);
}

/* The answer to every (k, required) on one free mask, from all subsets at once. */
struct brute {
    bool ok[TOPO_MAX_GPUS + 1][TOPO_CLASS_COUNT];
    uint32_t set[TOPO_MAX_GPUS + 1][TOPO_CLASS_COUNT];
    uint64_t key[TOPO_MAX_GPUS + 1][TOPO_CLASS_COUNT];
    unsigned bmc[TOPO_MAX_GPUS + 1];
};

static void brute_all(const struct ref *r, uint32_t free_mask, struct brute *b)
{
    uint32_t F = free_mask & r->healthy, S = F;

    memset(b, 0, sizeof(*b));
    for (;;) {
        unsigned k = (unsigned)__builtin_popcount(S), c = r->cls[S];
        uint64_t key = (uint64_t)r->sum[S] << 32 | r->sum[F ^ S];

        if (c > b->bmc[k])
            b->bmc[k] = c;
        for (unsigned rr = 0; rr <= c; rr++) {
            if (!b->ok[k][rr] || key > b->key[k][rr] ||
                (key == b->key[k][rr] && S < b->set[k][rr])) {
                b->ok[k][rr] = true;
                b->key[k][rr] = key;
                b->set[k][rr] = S;
            }
        }
        if (!S)
            break;
        S = (S - 1) & F;
    }
}

static void check_pick(const struct ref *r, struct topo_pick p, bool ok, uint32_t set)
{
    CHECK_EQ(p.ok, ok);
    CHECK_EQ(p.set, ok ? set : 0);
    if (ok) {
        CHECK_EQ(p.score, r->sum[set]);
        CHECK_EQ(p.min_class, r->cls[set]);
    }
}

/* Every k (0..n+1) and every required class on one free mask. */
static void check_mask(const struct topo *t, const struct ref *r, uint32_t free_mask)
{
    struct brute b;

    brute_all(r, free_mask, &b);
    for (unsigned k = 0; k <= r->n + 1; k++) {
        for (unsigned rr = 0; rr < TOPO_CLASS_COUNT; rr++) {
            struct topo_pick p = topo_choose(t, free_mask, k, (enum topo_class)rr);
            if (k > r->n)
                check_pick(r, p, false, 0);
            else
                check_pick(r, p, b.ok[k][rr], b.set[k][rr]);
        }
        CHECK_EQ(topo_best_min_class(t, free_mask, k), k > r->n ? TOPO_SYS : b.bmc[k]);
    }
}

/* ---- hand-checked answers ---- */

static void check_choice(const struct topo *t, uint32_t free_mask, unsigned k,
                         enum topo_class required, uint32_t set, uint32_t score)
{
    struct topo_pick p = topo_choose(t, free_mask, k, required);

    CHECK(p.ok);
    CHECK_EQ(p.set, set);
    CHECK_EQ(p.score, score);
}

static void test_choose_hgx(void)
{
    struct topo *t = hgx_h100();

    check_choice(t, ALL8, 1, TOPO_SYS, 0x01, 0);
    check_choice(t, ALL8, 2, TOPO_NVLINK, 0x03, 1800);
    check_choice(t, ALL8, 8, TOPO_NVLINK, ALL8, 28 * 1800);
    check_choice(t, 0xFE, 3, TOPO_NVLINK, 0x0E, 3 * 1800);
    CHECK_EQ(topo_choose(t, ALL8, 2, TOPO_SYS).min_class, TOPO_NVLINK);
    CHECK_EQ(topo_best_min_class(t, ALL8, 8), TOPO_NVLINK);
    CHECK(!topo_choose(t, 0x0F, 5, TOPO_SYS).ok);
    /* k = 0 asks nothing and always fits. */
    CHECK(topo_choose(t, 0, 0, TOPO_NVLINK).ok);
    topo_release(t);
}

static void test_choose_dgx1(void)
{
    struct topo *t = parse_ok(DGX1, sizeof(DGX1) - 1);
    struct topo_pick p;

    /* k = 1: of {0..4}, GPU 4 has the fewest links into the rest (0-4 NV2 plus three SYS:
     * 230, against 600, 410, 510, 510), so it goes and quad {0,1,2,3} stays whole. */
    check_choice(t, 0x1F, 1, TOPO_SYS, BIT(4), 0);
    /* Every GPU is equally connected (6 NVLinks, 630) on a free DGX-1: lowest index. */
    check_choice(t, ALL8, 1, TOPO_SYS, BIT(0), 0);
    /* k = 2: eight NV2 pairs tie on 200 and on what they leave (5450 - 200 - 860); the lowest
     * mask is {1,2}. */
    check_choice(t, ALL8, 2, TOPO_SYS, 0x06, 200);
    /* k = 4: both quads score 900 and leave 900; the lower one wins. */
    check_choice(t, ALL8, 4, TOPO_NVLINK, 0x0F, 900);
    /* With 3 free of each quad, {1,2,5} (NV2 + NV2 + SYS = 410) beats either NVLink triangle
     * (400) unless all-NVLink is required. */
    p = topo_choose(t, 0x77, 3, TOPO_SYS);
    CHECK_EQ(p.set, 0x26);
    CHECK_EQ(p.score, 410);
    CHECK_EQ(p.min_class, TOPO_SYS);
    check_choice(t, 0x77, 3, TOPO_NVLINK, 0x07, 400);
    CHECK_EQ(topo_best_min_class(t, 0x77, 3), TOPO_NVLINK);
    /* No 4-GPU NVLink clique crosses the quads. */
    CHECK_EQ(topo_best_min_class(t, 0x77, 4), TOPO_SYS);
    CHECK(!topo_choose(t, 0x77, 4, TOPO_NVLINK).ok);
    CHECK(!topo_choose(t, 0x77, 4, TOPO_PIX).ok);
    CHECK_EQ(topo_best_min_class(t, ALL8, 4), TOPO_NVLINK);
    CHECK_EQ(topo_best_min_class(t, ALL8, 5), TOPO_SYS);
    CHECK_EQ(topo_best_min_class(t, 0x01, 1), TOPO_NVLINK);
    CHECK_EQ(topo_best_min_class(t, 0x01, 2), TOPO_SYS);
    topo_release(t);
}

static void test_choose_pcie(void)
{
    struct topo *t = pcie4(0);
    struct topo_pick p;

    p = topo_choose(t, 0xF, 2, TOPO_SYS);
    CHECK_EQ(p.set, 0x3);
    CHECK_EQ(p.score, 50);
    CHECK_EQ(p.min_class, TOPO_PIX);
    CHECK(!topo_choose(t, 0xF, 2, TOPO_NVLINK).ok);
    CHECK_EQ(topo_best_min_class(t, 0xF, 2), TOPO_PIX);
    CHECK_EQ(topo_best_min_class(t, 0xF, 3), TOPO_SYS);
    /* k = 1 of {0,2,3}: GPU 0 is the one without a PIX partner. */
    check_choice(t, 0xD, 1, TOPO_SYS, BIT(0), 0);
    CHECK(!topo_choose(t, 0x5, 2, TOPO_PIX).ok);
    CHECK_EQ(topo_best_min_class(t, 0x5, 2), TOPO_SYS);
    check_choice(t, 0x5, 2, TOPO_SYS, 0x5, 10);
    topo_release(t);
    /* GPU 1 unhealthy: its bit in free_mask is ignored. */
    t = pcie4(BIT(1));
    CHECK_EQ(topo_healthy_mask(t), 0xD);
    check_choice(t, 0xF, 2, TOPO_PIX, 0xC, 50);
    check_choice(t, 0xF, 1, TOPO_SYS, BIT(0), 0);
    CHECK(!topo_choose(t, 0xF, 4, TOPO_SYS).ok);
    topo_release(t);
}

static void test_choose_16(void)
{
    struct topo *t = two_islands();

    check_choice(t, ALL16, 8, TOPO_NVLINK, 0xFF, 28 * 1200);
    CHECK_EQ(topo_best_min_class(t, ALL16, 8), TOPO_NVLINK);
    CHECK_EQ(topo_best_min_class(t, ALL16, 9), TOPO_SYS);
    CHECK(!topo_choose(t, ALL16, 9, TOPO_NVLINK).ok);
    /* The stray GPU of island B goes before island A is broken. */
    check_choice(t, 0x80FF, 1, TOPO_SYS, BIT(15), 0);
    check_choice(t, 0xC0FF, 2, TOPO_SYS, 0xC000, 1200);
    check_choice(t, ALL16, 16, TOPO_SYS, ALL16, 2 * 28 * 1200 + 64 * 10);
    topo_release(t);
    t = hgx2();
    check_choice(t, ALL16, 16, TOPO_NVLINK, ALL16, 120 * 600);
    check_choice(t, ALL16, 5, TOPO_NVLINK, 0x1F, 10 * 600);
    check_choice(t, 0xF0F0, 3, TOPO_NVLINK, 0x70, 3 * 600);
    topo_release(t);
}

/* ---- fragmentation: what the look-ahead buys ---- */

typedef uint32_t pick_fn(const struct topo *t, uint32_t free_mask, unsigned k);

static uint32_t pick_lookahead(const struct topo *t, uint32_t free_mask, unsigned k)
{
    struct topo_pick p = topo_choose(t, free_mask, k, TOPO_SYS);

    CHECK(p.ok);
    return p.set;
}

/* The naive first fit: the k lowest free indices. */
static uint32_t pick_first_fit(const struct topo *t, uint32_t free_mask, unsigned k)
{
    uint32_t set = 0;

    (void)t;
    for (uint32_t m = free_mask; m && k; m &= m - 1, k--)
        set |= m & (0u - m);
    CHECK(k == 0);
    return set;
}

/* Best own score only, ties to the lowest mask: the choice without look-ahead. */
static uint32_t pick_score_only(const struct topo *t, uint32_t free_mask, unsigned k)
{
    uint32_t best = 0, best_score = 0;
    bool found = false;

    for (uint32_t s = 0; s <= free_mask; s++) {
        if ((s & ~free_mask) || (unsigned)__builtin_popcount(s) != k)
            continue;
        if (!found || topo_set_score(t, s) > best_score) {
            best = s;
            best_score = topo_set_score(t, s);
            found = true;
        }
    }
    CHECK(found);
    return best;
}

struct event {
    unsigned pod;  /* 1.. */
    unsigned k;    /* GPUs asked; 0: the pod leaves */
    uint32_t want; /* the look-ahead's hand-checked pick (0: not checked) */
};

/* Plays the events with one policy; returns the free mask at the end. */
static uint32_t play(const struct topo *t, pick_fn *pick, const struct event *ev, size_t n,
                     uint32_t all)
{
    uint32_t held[16] = {0}, free_mask = all;

    for (size_t i = 0; i < n; i++) {
        if (ev[i].k == 0) {
            free_mask |= held[ev[i].pod];
            held[ev[i].pod] = 0;
            continue;
        }
        held[ev[i].pod] = pick(t, free_mask, ev[i].k);
        if (pick == pick_lookahead && ev[i].want)
            CHECK_EQ(held[ev[i].pod], ev[i].want);
        free_mask &= ~held[ev[i].pod];
    }
    return free_mask;
}

static void test_fragmentation_dgx1(void)
{
    /* Pod 1 takes quad A, pod 2 a pair in quad B, pod 1 leaves, pod 3 wants a pair: all NV2
     * pairs tie on score, but only {4,7} leaves quad A whole. */
    static const struct event ev[] = {
        {1, 4, 0x0F},
        {2, 2, 0x60},
        {1, 0, 0},
        {3, 2, 0x90},
    };
    struct topo *t = parse_ok(DGX1, sizeof(DGX1) - 1);
    uint32_t la = play(t, pick_lookahead, ev, GX_ARRAY_LEN(ev), ALL8);
    uint32_t ff = play(t, pick_first_fit, ev, GX_ARRAY_LEN(ev), ALL8);
    uint32_t so = play(t, pick_score_only, ev, GX_ARRAY_LEN(ev), ALL8);

    CHECK_EQ(la, 0x0F);
    CHECK_EQ(ff, 0xCC); /* first fit took {4,5} then {0,1} */
    CHECK_EQ(so, 0x99); /* score only took {5,6} then {1,2} */
    check_choice(t, la, 4, TOPO_NVLINK, 0x0F, 900);
    CHECK(!topo_choose(t, ff, 4, TOPO_NVLINK).ok);
    CHECK(!topo_choose(t, so, 4, TOPO_NVLINK).ok);
    topo_release(t);
}

static void test_fragmentation_islands(void)
{
    /* Island A fills and empties; island B is half used; a pair, then a 4-GPU pod arrive. */
    static const struct event ev[] = {
        {1, 8, 0x00FF}, {2, 4, 0x0F00}, {3, 2, 0x3000}, {1, 0, 0}, {4, 2, 0xC000}, {5, 4, 0x000F},
    };
    struct topo *t = two_islands();
    uint32_t la = play(t, pick_lookahead, ev, GX_ARRAY_LEN(ev), ALL16);
    uint32_t ff = play(t, pick_first_fit, ev, GX_ARRAY_LEN(ev), ALL16);
    uint32_t so = play(t, pick_score_only, ev, GX_ARRAY_LEN(ev), ALL16);

    CHECK_EQ(la, 0x00F0);
    CHECK_EQ(ff, 0xC0C0);
    CHECK_EQ(so, 0xC0C0);
    CHECK(topo_choose(t, la, 4, TOPO_NVLINK).ok);
    CHECK_EQ(topo_best_min_class(t, la, 4), TOPO_NVLINK);
    CHECK(!topo_choose(t, ff, 4, TOPO_NVLINK).ok);
    CHECK_EQ(topo_best_min_class(t, ff, 4), TOPO_SYS);
    topo_release(t);
}

/* ---- against brute force ---- */

static void check_exhaustive8(struct topo *t)
{
    struct ref r;

    ref_init(&r, t);
    for (uint32_t F = 0; F <= ALL8; F++)
        check_mask(t, &r, F);
    /* Bits past n are ignored. */
    check_mask(t, &r, 0xFFFFFF00u | 0x5A);
    ref_destroy(&r);
}

static void test_exhaustive8(void)
{
    struct topo *topos[] = {parse_ok(DGX1, sizeof(DGX1) - 1), random_topo(8, 0x9e3779b9u),
                            random_topo(8, 12345), pcie4(BIT(2)), hgx_h100()};

    for (size_t i = 0; i < GX_ARRAY_LEN(topos); i++) {
        check_exhaustive8(topos[i]);
        topo_release(topos[i]);
    }
}

/* Random free masks (dense and sparse), each checked for every k and class. */
static void check_sampled16(struct topo *t, uint32_t seed, unsigned masks)
{
    struct ref r;

    ref_init(&r, t);
    check_mask(t, &r, ALL16);
    for (unsigned i = 0; i < masks; i++) {
        uint32_t a = rng_next(&seed), b = rng_next(&seed);
        uint32_t F = i % 3 == 0 ? (a | b) : i % 3 == 1 ? a : (a & b);
        check_mask(t, &r, F & ALL16);
    }
    ref_destroy(&r);
}

static void test_sampled16(void)
{
    struct topo *t = two_islands();

    check_sampled16(t, 7, 1500);
    topo_release(t);
    /* Six classes: levels 1..3 are not memoized at n = 16 and are solved each time. */
    t = random_topo(16, 4242);
    check_sampled16(t, 8, 1500);
    topo_release(t);
    t = random_topo(11, 99);
    check_sampled16(t, 9, 300);
    topo_release(t);
}

/* ---- concurrent lazy fill ---- */

struct query {
    uint32_t free_mask;
    unsigned k;
    enum topo_class required;
    bool ok;
    uint32_t set;
    enum topo_class bmc;
};

struct racer {
    const struct topo *t;
    const struct query *q;
    size_t count;
    bool backwards;
};

static void *race(void *arg)
{
    const struct racer *r = arg;

    for (size_t i = 0; i < r->count; i++) {
        const struct query *q = &r->q[r->backwards ? r->count - 1 - i : i];
        struct topo_pick p = topo_choose(r->t, q->free_mask, q->k, q->required);
        CHECK_EQ(p.ok, q->ok);
        CHECK_EQ(p.set, q->set);
        CHECK_EQ(topo_best_min_class(r->t, q->free_mask, q->k), q->bmc);
    }
    return NULL;
}

static void race_on(struct topo *t, uint32_t seed)
{
    enum { QUERIES = 600, THREADS = 4 };
    struct query *q = calloc(QUERIES, sizeof(*q));
    struct racer r[THREADS];
    pthread_t th[THREADS];
    struct brute b;
    struct ref ref;

    CHECK(q);
    ref_init(&ref, t);
    for (size_t i = 0; i < QUERIES; i++) {
        uint32_t F = (rng_next(&seed) | rng_next(&seed)) & ALL16;
        q[i].free_mask = F;
        q[i].k = 1 + rng_next(&seed) % 12;
        q[i].required = (enum topo_class)(rng_next(&seed) % TOPO_CLASS_COUNT);
        brute_all(&ref, F, &b);
        q[i].ok = b.ok[q[i].k][q[i].required];
        q[i].set = q[i].ok ? b.set[q[i].k][q[i].required] : 0;
        q[i].bmc = (enum topo_class)b.bmc[q[i].k];
    }
    for (int i = 0; i < THREADS; i++) {
        r[i] = (struct racer){.t = t, .q = q, .count = QUERIES, .backwards = i % 2};
        CHECK_EQ(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    ref_destroy(&ref);
    free(q);
}

static void test_concurrent(void)
{
    struct topo *t = two_islands(); /* fresh: nothing memoized yet */

    race_on(t, 31337);
    topo_release(t);
    t = random_topo(16, 777);
    race_on(t, 4711);
    topo_release(t);
}

/* ---- guaranteed ---- */

static struct topo_pick brute_guaranteed(const struct ref *r, uint32_t free_mask, unsigned u,
                                         unsigned k, unsigned rr)
{
    struct topo_pick worst = {.score = UINT32_MAX, .min_class = TOPO_NVLINK, .ok = true};
    struct topo_pick none = {.ok = false};
    uint32_t F = free_mask & r->healthy;
    bool any = false;
    struct brute b;

    if (u == 0 || k == 0) {
        brute_all(r, F, &b);
        if (!b.ok[k][rr])
            return none;
        return (struct topo_pick){b.set[k][rr], r->sum[b.set[k][rr]],
                                  (enum topo_class)r->cls[b.set[k][rr]], true};
    }
    for (uint32_t U = 0; U < BIT(r->n); U++) {
        if ((U & ~F) || (unsigned)__builtin_popcount(U) != u)
            continue;
        any = true;
        brute_all(r, F ^ U, &b);
        if (k > r->n || !b.ok[k][rr])
            return none;
        if (r->sum[b.set[k][rr]] < worst.score) {
            worst.score = r->sum[b.set[k][rr]];
            worst.set = b.set[k][rr];
        }
        if (b.bmc[k] < (unsigned)worst.min_class)
            worst.min_class = (enum topo_class)b.bmc[k];
    }
    return any ? worst : none;
}

static void check_guaranteed(const struct topo *t, const struct ref *r, uint32_t F, unsigned u,
                             unsigned k, unsigned rr)
{
    struct topo_pick want = brute_guaranteed(r, F, u, k, rr);
    bool conservative = true;
    struct topo_pick got = topo_choose_guaranteed(t, F, u, k, (enum topo_class)rr, &conservative);

    CHECK(!conservative);
    CHECK_EQ(got.ok, want.ok);
    if (want.ok) {
        CHECK_EQ(got.set, want.set);
        CHECK_EQ(got.score, want.score);
        CHECK_EQ(got.min_class, want.min_class);
    }
}

static void test_guaranteed(void)
{
    struct topo *topos[] = {parse_ok(DGX1, sizeof(DGX1) - 1), pcie4(0), random_topo(8, 5)};
    struct topo *t;
    struct topo_pick p;
    bool conservative;

    for (size_t i = 0; i < GX_ARRAY_LEN(topos); i++) {
        struct ref r;
        unsigned n = topo_gpu_count(topos[i]);
        ref_init(&r, topos[i]);
        for (uint32_t F = 0; F < BIT(n); F += 1 + (F % 3)) {
            for (unsigned u = 0; u <= 3; u++) {
                for (unsigned k = 0; k <= 4; k++) {
                    check_guaranteed(topos[i], &r, F, u, k, TOPO_SYS);
                    check_guaranteed(topos[i], &r, F, u, k, TOPO_PIX);
                    check_guaranteed(topos[i], &r, F, u, k, TOPO_NVLINK);
                }
            }
        }
        ref_destroy(&r);
        topo_release(topos[i]);
    }

    /* DGX-1 with 6 free of which one is in use somewhere: is a 3-GPU NVLink set certain?
     * Free {0,1,2,4,5,6}: whichever GPU is taken, one NVLink triangle survives. Two taken,
     * one from each triangle, and none does. */
    t = parse_ok(DGX1, sizeof(DGX1) - 1);
    p = topo_choose_guaranteed(t, 0x77, 1, 3, TOPO_NVLINK, &conservative);
    CHECK(p.ok && !conservative);
    CHECK_EQ(p.score, 400);
    CHECK_EQ(p.min_class, TOPO_NVLINK);
    CHECK(!topo_choose_guaranteed(t, 0x77, 2, 3, TOPO_NVLINK, NULL).ok);
    CHECK(topo_choose_guaranteed(t, 0x77, 2, 3, TOPO_SYS, NULL).ok);
    CHECK(topo_choose_guaranteed(t, 0x77, 7, 0, TOPO_SYS, NULL).ok); /* k = 0 always fits */
    CHECK(!topo_choose_guaranteed(t, 0x77, 7, 1, TOPO_SYS, NULL).ok);
    topo_release(t);

    /* Too many cases: C(16,8) = 12,870 > 4,096. The answer is what holds in any case. */
    t = two_islands();
    p = topo_choose_guaranteed(t, ALL16, 8, 4, TOPO_NVLINK, &conservative);
    CHECK(conservative);
    CHECK(!p.ok);
    CHECK_EQ(p.score, 0);
    CHECK_EQ(p.min_class, TOPO_SYS);
    p = topo_choose_guaranteed(t, ALL16, 8, 4, TOPO_SYS, &conservative);
    CHECK(conservative && p.ok);
    p = topo_choose_guaranteed(t, ALL16, 8, 9, TOPO_SYS, &conservative);
    CHECK(!conservative && !p.ok); /* certainly too few */
    /* C(16,4) = 1,820 cases: enumerated. However four are taken, an island keeps 4 or more. */
    p = topo_choose_guaranteed(t, ALL16, 4, 4, TOPO_NVLINK, &conservative);
    CHECK(!conservative && p.ok);
    CHECK_EQ(p.min_class, TOPO_NVLINK);
    CHECK_EQ(p.score, 6 * 1200);
    topo_release(t);
    /* On an all-NVLink node, even the conservative answer guarantees NVLink. */
    t = hgx2();
    p = topo_choose_guaranteed(t, ALL16, 8, 4, TOPO_NVLINK, &conservative);
    CHECK(conservative && p.ok);
    CHECK_EQ(p.min_class, TOPO_NVLINK);
    topo_release(t);
}

/* ---- shapes ---- */

/* Topologies that differ only in UUIDs and NUMA nodes share one shape; a change of a link or
 * of health makes another; the last release frees a shape. */
static void test_shapes_are_shared(void)
{
    static const char a[] = "{\"gpus\":[{\"index\":0,\"uuid\":\"GPU-a0\"},{\"index\":1,"
                            "\"uuid\":\"GPU-a1\"}],\"links\":[[0,1,\"NV4\"]]}";
    static const char b[] = "{\"gpus\":[{\"index\":0,\"uuid\":\"GPU-b0\",\"numa\":1},{\"index\":1,"
                            "\"uuid\":\"GPU-b1\"}],\"links\":[[0,1,\"NV4\"]]}";
    static const char c[] = "{\"gpus\":[{\"index\":0},{\"index\":1,\"healthy\":false}],"
                            "\"links\":[[0,1,\"NV4\"]]}";
    struct topo *ta = NULL, *tb = NULL, *tc = NULL;
    struct errbuf eb = ERRBUF_INIT;
    size_t before, after, bytes;

    topo_shapes(&before, &bytes);
    CHECK_EQ(topo_parse(a, strlen(a), &ta, &eb), ERR_OK);
    CHECK_EQ(topo_parse(b, strlen(b), &tb, &eb), ERR_OK);
    topo_shapes(&after, &bytes);
    CHECK_EQ(after, before + 1);
    CHECK_STR_EQ(topo_gpu_uuid(tb, 0), "GPU-b0");
    CHECK_STR_EQ(topo_gpu_uuid(ta, 0), "GPU-a0");
    CHECK_EQ(topo_gpu_numa(tb, 0), 1);
    CHECK_EQ(topo_gpu_numa(ta, 0), -1);
    CHECK_EQ(topo_parse(c, strlen(c), &tc, &eb), ERR_OK);
    topo_shapes(&after, &bytes);
    CHECK_EQ(after, before + 2);
    topo_release(ta);
    topo_shapes(&after, &bytes);
    CHECK_EQ(after, before + 2);
    topo_release(tb);
    topo_release(tc);
    topo_shapes(&after, &bytes);
    CHECK_EQ(after, before);
}

int main(void)
{
    test_shapes_are_shared();
    test_choose_hgx();
    test_choose_dgx1();
    test_choose_pcie();
    test_choose_16();
    test_fragmentation_dgx1();
    test_fragmentation_islands();
    test_exhaustive8();
    test_sampled16();
    test_concurrent();
    test_guaranteed();
    printf("test_topology: ok\n");
    return 0;
}
