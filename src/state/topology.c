/* topology.c -- GPU topology model and set choice (see topology.h). The two annotation parsers
 * are in topology_parse.c; they hand a struct desc to topo_build().
 *
 * Tables, built once per topology of n GPUs (masks are n-bit):
 *   sets[2^n]       for every GPU mask: its pair-score sum in bits 0..23 (at most 120 pairs *
 *                   1800 = 216,000 < 2^24) and its min class in bits 24..26. Built by a DP
 *                   over masks: a mask is the mask without its lowest GPU i, plus i's links
 *                   into the rest. 256 KiB at n = 16. This makes score(S), score(F \ S) and
 *                   minclass(S) O(1) for any candidate S.
 *   bmc[2^n * n]    best min class of (free mask F, k), stored + 1 so that 0 means unknown.
 *   memo[j][2^n*n]  the chosen set for (F, k) among sets of min class >= level j; 0 means
 *                   unknown (an answer for k >= 1 is never the empty set).
 *
 * Levels: a required class matters only through the classes that occur in the topology. A
 * requirement r behaves like the smallest class present that is >= r (its "level"), and the
 * lowest class present is no constraint at all (level 0). An HGX or a DGX-1 has two levels
 * (SYS and NVLINK); PCIe boxes have two to four.
 *
 * solve(F, k) visits every k-subset S of F once: Gosper's hack walks the k-of-|F| bit
 * patterns in increasing order and two 256-entry tables deposit each onto F's bits, so S also
 * increases. Each S costs two loads from sets[]. The best candidate is kept per exact min
 * class (replaced only when strictly better, so ties go to the lowest mask); a suffix maximum
 * over classes then yields the answer for every level and the best min class in one pass, and
 * all of (F, k)'s memo entries are written from it.
 *
 * Costs (worst case n = 16, |F| = 16, k = 8: C(16,8) = 12,870 candidates per solve):
 *   n <= 8   every (F, k) is solved while building (3^8 = 6,561 candidates in all), so every
 *            query is O(1).
 *   n >= 9   memo filled lazily: the first query on (F, k) costs one solve, later ones O(1).
 *            All tables of a topology fit in TOPO_MEMO_BUDGET_BYTES (8 MiB), allocated at build
 *            (calloc, so untouched pages cost no RAM). n <= 15 memoizes every level. At n = 16:
 *            sets 256 KiB + bmc 1 MiB + three 2 MiB memo levels: level 0 and the two highest.
 *            A query at another level (only possible with four or more classes present) pays
 *            a solve every time: bounded by the 12,870 above.
 *   k == |F| and k == 0 never touch the memo.
 *   topo_choose_guaranteed(): at most TOPO_GUARANTEE_MAX_CASES cases of one topo_choose() and
 *   one topo_best_min_class() each.
 *
 * Sharing: the tables depend only on the links and health (the "shape"), never on UUIDs or
 * NUMA nodes, and every GPU in a cluster has its own UUID, so nodes with the same hardware
 * have different annotation texts but one shape. Shapes are interned process-wide (a hash
 * table under a mutex, touched only when a topology is built or freed): each node keeps its
 * UUIDs and NUMA nodes (struct topo) and points at the shared tables, which stay warm in the
 * CPU caches however many nodes there are.
 *
 * Guaranteed answers (GPUs taken by unnamed pods) are memoized too for n <= 8, by (F, unknown,
 * k, level), so on common nodes they cost O(1) after the first query.
 *
 * Concurrency: the memo arrays are atomics, loaded and stored relaxed. Each entry stands alone
 * (0 = unknown) and is a pure function of tables that are immutable before the topology is
 * published, so racing fillers store identical values and a reader sees 0 (and solves itself)
 * or the final value. No locks, no allocation after build. */
#include "gx/topology.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "gx/alloc.h"
#include "gx/bits.h"

#include "topology_internal.h"

#define TOPO_MEMO_BUDGET_BYTES ((size_t)8 << 20)
#define TOPO_EAGER_MAX_GPUS 8
#define SCORE_BITS 24
#define SCORE_MASK ((UINT32_C(1) << SCORE_BITS) - 1)

_Static_assert(SCORE_MASK / TOPO_MAX_PAIR_SCORE >= MAX_LINKS, "a set score fits in SCORE_BITS");
_Static_assert(TOPO_MAX_GPUS <= 16, "memo entries are 16-bit masks");

/* The shared part: links, health and every table derived from them. d's uuid and numa are
 * unused (zero). refs and next are guarded by the registry lock. */
struct shape {
    struct shape *next; /* registry chain */
    unsigned refs;
    uint64_t hash;
    struct desc d;
    unsigned nlevels;
    enum topo_class level[TOPO_CLASS_COUNT]; /* classes present among the pairs, ascending */
    uint32_t *sets;
    void *memo_block;                         /* one allocation holding memo[] and bmc */
    _Atomic uint16_t *memo[TOPO_CLASS_COUNT]; /* by level index; NULL when not memoized */
    _Atomic uint8_t *bmc;
    _Atomic uint32_t *guar; /* n <= 8: guaranteed picks by (F, unknown, k, level); 0 unknown */
    size_t mem_bytes;
};

/* One node's topology: its shape, and what is its own. */
struct topo {
    atomic_int refs;
    uint16_t uuid_at[TOPO_MAX_GPUS]; /* where each GPU's UUID starts in text */
    struct shape *s;
    size_t own_bytes;
    int32_t numa[TOPO_MAX_GPUS];
    char text[]; /* the UUIDs, each NUL-terminated: one allocation with the rest */
};
_Static_assert(TOPO_MAX_GPUS *(TOPO_UUID_MAX + 1) <= UINT16_MAX, "a UUID's offset fits uuid_at");

/* The answers of one solve: for every class c, the best set of min class >= c (0: none). */
struct solution {
    uint32_t best[TOPO_CLASS_COUNT];
    enum topo_class bmc;
};

/* Maps k-of-count bit patterns onto the bits of a mask of up to 16 GPUs. */
struct deposit {
    unsigned count;
    uint32_t lo[256];
    uint32_t hi[256];
};

static inline unsigned ctz32(uint32_t x)
{
    return (unsigned)__builtin_ctz(x);
}

static inline uint32_t set_score(const struct shape *t, uint32_t mask)
{
    return t->sets[mask] & SCORE_MASK;
}

static inline enum topo_class set_class(const struct shape *t, uint32_t mask)
{
    return (enum topo_class)(t->sets[mask] >> SCORE_BITS);
}

/* ---- building ---- */

void topo_desc_init(struct desc *d)
{
    memset(d, 0, sizeof(*d));
    for (unsigned a = 0; a < TOPO_MAX_GPUS; a++) {
        d->numa[a] = -1;
        for (unsigned b = 0; b < TOPO_MAX_GPUS; b++) {
            d->score[a][b] = a == b ? 0 : 10;
            d->cls[a][b] = (uint8_t)(a == b ? TOPO_NVLINK : TOPO_SYS);
        }
    }
}

void topo_desc_link(struct desc *d, unsigned a, unsigned b, enum topo_class c, unsigned score)
{
    d->score[a][b] = d->score[b][a] = (uint16_t)score;
    d->cls[a][b] = d->cls[b][a] = (uint8_t)c;
}

static void find_levels(struct shape *t)
{
    unsigned present = 0;

    for (unsigned a = 0; a < t->d.n; a++) {
        for (unsigned b = a + 1; b < t->d.n; b++)
            present |= 1u << t->d.cls[a][b];
    }
    if (!present)
        present = 1u << TOPO_SYS;
    for (unsigned c = 0; c < TOPO_CLASS_COUNT; c++) {
        if (present >> c & 1)
            t->level[t->nlevels++] = (enum topo_class)c;
    }
}

static void build_sets(struct shape *t)
{
    uint32_t count = UINT32_C(1) << t->d.n;

    t->sets = xmalloc(count * sizeof(*t->sets));
    t->sets[0] = (uint32_t)TOPO_NVLINK << SCORE_BITS;
    for (uint32_t m = 1; m < count; m++) {
        unsigned i = ctz32(m);
        uint32_t rest = m & (m - 1);
        uint32_t sum = set_score(t, rest);
        unsigned cls = set_class(t, rest);

        for (uint32_t r = rest; r; r &= r - 1) {
            unsigned j = ctz32(r);
            sum += t->d.score[i][j];
            if (t->d.cls[i][j] < cls)
                cls = t->d.cls[i][j];
        }
        t->sets[m] = (uint32_t)cls << SCORE_BITS | sum;
    }
}

/* Allocates bmc and as many memo levels as the budget allows, in one block: level 0 first,
 * then from the highest class down, since "all NVLink" is what pods actually ask for. */
static void alloc_memo(struct shape *t)
{
    size_t entries = (size_t)t->d.n << t->d.n;
    size_t sets_bytes = sizeof(uint32_t) << t->d.n;
    size_t level_bytes = entries * sizeof(uint16_t);
    size_t budget = TOPO_MEMO_BUDGET_BYTES - sets_bytes - entries;
    unsigned levels = 0;
    unsigned char *block;

    while (levels < t->nlevels && (levels + 1) * level_bytes <= budget)
        levels++;
    /* calloc'd zeroes are valid values of these lock-free atomic integer types. */
    block = xcalloc(levels * level_bytes + entries, 1);
    for (unsigned i = 0; i < levels; i++) {
        unsigned j = i == 0 ? 0 : t->nlevels - i;
        t->memo[j] = (_Atomic uint16_t *)(void *)(block + i * level_bytes);
    }
    t->bmc = (_Atomic uint8_t *)(void *)(block + levels * level_bytes);
    t->memo_block = block;
    t->mem_bytes = sizeof(*t) + sets_bytes + levels * level_bytes + entries;
}

static void deposit_init(struct deposit *dp, uint32_t mask)
{
    uint32_t bit[TOPO_MAX_GPUS] = {0};
    unsigned count = 0;

    for (uint32_t m = mask; m && count < TOPO_MAX_GPUS; m &= m - 1)
        bit[count++] = m & (0u - m);
    dp->count = count;
    dp->lo[0] = dp->hi[0] = 0;
    for (uint32_t b = 1; b < (UINT32_C(1) << (count < 8 ? count : 8)); b++)
        dp->lo[b] = dp->lo[b & (b - 1)] | bit[ctz32(b)];
    for (uint32_t b = 1; count > 8 && b < (UINT32_C(1) << (count - 8)); b++)
        dp->hi[b] = dp->hi[b & (b - 1)] | bit[8 + ctz32(b)];
}

static inline uint32_t deposit(const struct deposit *dp, uint32_t x)
{
    /* x has bits only below the mask's count, whose entries deposit_init() filled. */
    return dp->lo[x & 0xff] | dp->hi[x >> 8]; /* NOLINT(clang-analyzer-core.*) */
}

/* Gosper's hack: the next larger integer with the same number of set bits (x != 0). */
static inline uint32_t next_combination(uint32_t x)
{
    uint32_t low = x & (0u - x);
    uint32_t ripple = x + low;

    return (((ripple ^ x) >> 2) / low) | ripple;
}

/* Visits every k-subset of F (1 <= k <= |F|); see the top of the file. */
static void solve(const struct shape *t, const struct deposit *dp, uint32_t F, unsigned k,
                  struct solution *sol)
{
    uint64_t key[TOPO_CLASS_COUNT] = {0}, best_key = 0; /* key 0: no candidate */
    uint32_t set[TOPO_CLASS_COUNT] = {0}, best_set = 0;
    uint32_t end = UINT32_C(1) << dp->count;

    for (uint32_t x = (UINT32_C(1) << k) - 1; x < end; x = next_combination(x)) {
        uint32_t s = deposit(dp, x);
        uint32_t e = t->sets[s];
        unsigned c = e >> SCORE_BITS;
        uint64_t kk = ((uint64_t)(e & SCORE_MASK) << SCORE_BITS | set_score(t, F ^ s)) + 1;

        if (kk > key[c]) {
            key[c] = kk;
            set[c] = s;
        }
    }
    sol->bmc = TOPO_SYS;
    for (int c = TOPO_CLASS_COUNT - 1; c >= 0; c--) {
        if (key[c] && !best_key)
            sol->bmc = (enum topo_class)c;
        if (key[c] > best_key || (key[c] && key[c] == best_key && set[c] < best_set)) {
            best_key = key[c];
            best_set = set[c];
        }
        sol->best[c] = best_set;
    }
}

static inline size_t slot(const struct shape *t, uint32_t F, unsigned k)
{
    return (size_t)F * t->d.n + (k - 1);
}

static void store(const struct shape *t, uint32_t F, unsigned k, const struct solution *sol)
{
    size_t i = slot(t, F, k);

    atomic_store_explicit(&t->bmc[i], (uint8_t)(sol->bmc + 1), memory_order_relaxed);
    for (unsigned j = 0; j < t->nlevels; j++) {
        if (t->memo[j])
            atomic_store_explicit(&t->memo[j][i], (uint16_t)sol->best[t->level[j]],
                                  memory_order_relaxed);
    }
}

static void solve_and_store(const struct shape *t, uint32_t F, unsigned k, struct solution *sol)
{
    struct deposit dp;

    deposit_init(&dp, F);
    solve(t, &dp, F, k, sol);
    store(t, F, k, sol);
}

/* n <= TOPO_EAGER_MAX_GPUS: fill everything now, so queries never solve. */
static void fill_all(const struct shape *t)
{
    struct deposit dp;
    struct solution sol;

    for (uint32_t F = 1; F < (UINT32_C(1) << t->d.n); F++) {
        deposit_init(&dp, F);
        for (unsigned k = 1; k <= dp.count; k++) {
            solve(t, &dp, F, k, &sol);
            store(t, F, k, &sol);
        }
    }
}

/* n <= TOPO_EAGER_MAX_GPUS: room for every guaranteed answer, (F, unknown, k, level). */
static size_t guar_slot(const struct shape *t, uint32_t F, unsigned u, unsigned k, unsigned j)
{
    return (((size_t)F * TOPO_EAGER_MAX_GPUS + (u - 1)) * TOPO_EAGER_MAX_GPUS + (k - 1)) *
               t->nlevels +
           j;
}

static struct shape *shape_build(const struct desc *d, uint64_t hash)
{
    struct shape *t = xcalloc(1, sizeof(*t));

    t->refs = 1;
    t->hash = hash;
    t->d.n = d->n;
    t->d.healthy = d->healthy;
    memcpy(t->d.score, d->score, sizeof(d->score));
    memcpy(t->d.cls, d->cls, sizeof(d->cls));
    find_levels(t);
    build_sets(t);
    alloc_memo(t);
    if (d->n <= TOPO_EAGER_MAX_GPUS) {
        size_t entries = guar_slot(t, UINT32_C(1) << d->n, 1, 1, 0);
        fill_all(t);
        t->guar = xcalloc(entries, sizeof(*t->guar));
        t->mem_bytes += entries * sizeof(*t->guar);
    }
    return t;
}

static void shape_free(struct shape *t)
{
    free(t->guar);
    free(t->memo_block);
    free(t->sets);
    free(t);
}

/* ---- the shape registry ---- */

#define REGISTRY_BUCKETS 256

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shape *registry[REGISTRY_BUCKETS];

/* What makes two topologies share tables: GPU count, health, and every pair's score and class
 * (the unused parts of the matrices are the same constants in every desc). */
static uint64_t shape_hash(const struct desc *d)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    const unsigned char *parts[] = {(const unsigned char *)d->score, (const unsigned char *)d->cls};
    size_t sizes[] = {sizeof(d->score), sizeof(d->cls)};

    h = (h ^ d->n) * UINT64_C(0x100000001b3);
    h = (h ^ d->healthy) * UINT64_C(0x100000001b3);
    for (size_t p = 0; p < 2; p++) {
        for (size_t i = 0; i < sizes[p]; i++)
            h = (h ^ parts[p][i]) * UINT64_C(0x100000001b3);
    }
    return h;
}

static bool same_shape(const struct shape *t, const struct desc *d)
{
    return t->d.n == d->n && t->d.healthy == d->healthy &&
           memcmp(t->d.score, d->score, sizeof(d->score)) == 0 &&
           memcmp(t->d.cls, d->cls, sizeof(d->cls)) == 0;
}

/* The shape of d, shared when one like it exists, with a reference held. */
static struct shape *shape_get(const struct desc *d)
{
    uint64_t h = shape_hash(d);
    struct shape **bucket = &registry[h % REGISTRY_BUCKETS], *t;

    pthread_mutex_lock(&registry_lock);
    for (t = *bucket; t; t = t->next) {
        if (t->hash == h && same_shape(t, d)) {
            t->refs++;
            break;
        }
    }
    if (!t) {
        t = shape_build(d, h);
        t->next = *bucket;
        *bucket = t;
    }
    pthread_mutex_unlock(&registry_lock);
    return t;
}

static void shape_put(struct shape *t)
{
    struct shape **pp;
    bool last;

    pthread_mutex_lock(&registry_lock);
    last = --t->refs == 0;
    if (last) {
        for (pp = &registry[t->hash % REGISTRY_BUCKETS]; *pp != t; pp = &(*pp)->next)
            ;
        *pp = t->next;
    }
    pthread_mutex_unlock(&registry_lock);
    if (last)
        shape_free(t);
}

struct topo *topo_build(const struct desc *d)
{
    struct topo *t;
    size_t len = 0, at = 0;

    for (unsigned i = 0; i < d->n; i++)
        len += strlen(d->uuid[i]) + 1;
    t = xcalloc(1, sizeof(*t) + len);
    atomic_init(&t->refs, 1);
    t->s = shape_get(d);
    for (unsigned i = 0; i < d->n; i++) {
        size_t n = strlen(d->uuid[i]) + 1;
        memcpy(t->text + at, d->uuid[i], n);
        t->uuid_at[i] = (uint16_t)at;
        at += n;
        t->numa[i] = d->numa[i];
    }
    t->own_bytes = sizeof(*t) + len;
    return t;
}

struct topo *topo_acquire(struct topo *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

void topo_release(struct topo *t)
{
    if (!t || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    shape_put(t->s);
    free(t);
}

/* ---- accessors ---- */

unsigned topo_gpu_count(const struct topo *t)
{
    return t->s->d.n;
}

uint32_t topo_healthy_mask(const struct topo *t)
{
    return t->s->d.healthy;
}

const char *topo_gpu_uuid(const struct topo *t, unsigned index)
{
    return index < t->s->d.n ? t->text + t->uuid_at[index] : "";
}

int topo_gpu_numa(const struct topo *t, unsigned index)
{
    return index < t->s->d.n ? t->numa[index] : -1;
}

unsigned topo_pair_score(const struct topo *t, unsigned a, unsigned b)
{
    return a < t->s->d.n && b < t->s->d.n ? t->s->d.score[a][b] : 0;
}

enum topo_class topo_pair_class(const struct topo *t, unsigned a, unsigned b)
{
    return a < t->s->d.n && b < t->s->d.n ? (enum topo_class)t->s->d.cls[a][b] : TOPO_SYS;
}

uint32_t topo_set_score(const struct topo *t, uint32_t mask)
{
    return set_score(t->s, mask & ((UINT32_C(1) << t->s->d.n) - 1));
}

size_t topo_memory_bytes(const struct topo *t)
{
    return t->own_bytes + t->s->mem_bytes;
}

size_t topo_own_bytes(const struct topo *t)
{
    return t->own_bytes;
}

void topo_shapes(size_t *count, size_t *bytes)
{
    *count = *bytes = 0;
    pthread_mutex_lock(&registry_lock);
    for (size_t b = 0; b < REGISTRY_BUCKETS; b++) {
        for (const struct shape *t = registry[b]; t; t = t->next) {
            (*count)++;
            *bytes += t->mem_bytes;
        }
    }
    pthread_mutex_unlock(&registry_lock);
}

/* ---- queries ---- */

static struct topo_pick no_pick(void)
{
    return (struct topo_pick){.set = 0, .score = 0, .min_class = TOPO_SYS, .ok = false};
}

static struct topo_pick make_pick(const struct shape *t, uint32_t set)
{
    return (struct topo_pick){
        .set = set, .score = set_score(t, set), .min_class = set_class(t, set), .ok = true};
}

/* Requires 2 <= k < |F|. */
static enum topo_class lookup_bmc(const struct shape *t, uint32_t F, unsigned k)
{
    uint8_t v = atomic_load_explicit(&t->bmc[slot(t, F, k)], memory_order_relaxed);
    struct solution sol;

    if (v)
        return (enum topo_class)(v - 1);
    solve_and_store(t, F, k, &sol);
    return sol.bmc;
}

/* Requires 1 <= k < |F| and an eligible set at level j. */
static uint32_t lookup_set(const struct shape *t, uint32_t F, unsigned k, unsigned j)
{
    struct solution sol;

    if (t->memo[j]) {
        uint16_t v = atomic_load_explicit(&t->memo[j][slot(t, F, k)], memory_order_relaxed);
        if (v)
            return v;
    }
    solve_and_store(t, F, k, &sol);
    return sol.best[t->level[j]];
}

/* The smallest level whose class is >= c; the caller knows one exists. */
static unsigned level_index(const struct shape *t, enum topo_class c)
{
    unsigned j = 0;

    while (j + 1 < t->nlevels && t->level[j] < c)
        j++;
    return j;
}

static struct topo_pick choose(const struct shape *t, uint32_t free_mask, unsigned k,
                               enum topo_class required)
{
    uint32_t F = free_mask & t->d.healthy;
    unsigned f = bits_popcount32(F);
    unsigned j = 0;

    if (k > f)
        return no_pick();
    if (k == 0)
        return make_pick(t, 0);
    if (k == f)
        return (unsigned)set_class(t, F) >= (unsigned)required ? make_pick(t, F) : no_pick();
    if (k >= 2 && (unsigned)required > (unsigned)t->level[0]) {
        if ((unsigned)required > (unsigned)lookup_bmc(t, F, k))
            return no_pick();
        j = level_index(t, required);
    }
    return make_pick(t, lookup_set(t, F, k, j));
}

static enum topo_class best_min_class(const struct shape *t, uint32_t free_mask, unsigned k)
{
    uint32_t F = free_mask & t->d.healthy;
    unsigned f = bits_popcount32(F);

    if (k > f)
        return TOPO_SYS;
    if (k < 2)
        return TOPO_NVLINK;
    if (k == f)
        return set_class(t, F);
    return lookup_bmc(t, F, k);
}

static uint64_t binomial(unsigned n, unsigned k)
{
    uint64_t r = 1;

    if (k > n)
        return 0;
    for (unsigned i = 1; i <= k; i++)
        r = r * (n - k + i) / i; /* exact: r * (n-k+i) is C(n-k+i, i) * i */
    return r;
}

/* Too many cases to enumerate: what holds whichever GPUs are taken. Every set meets the
 * lowest class present in the topology, so that much is still guaranteed. */
static struct topo_pick conservative_pick(const struct shape *t, unsigned k,
                                          enum topo_class required)
{
    enum topo_class surely = k < 2 ? TOPO_NVLINK : t->level[0];

    return (struct topo_pick){
        .set = 0, .score = 0, .min_class = surely, .ok = (unsigned)required <= (unsigned)surely};
}

static struct topo_pick guaranteed(const struct shape *t, uint32_t free_mask, unsigned unknown_used,
                                   unsigned k, enum topo_class required, bool *conservative)
{
    uint32_t F = free_mask & t->d.healthy;
    unsigned f = bits_popcount32(F);
    struct topo_pick worst = {.score = UINT32_MAX, .min_class = TOPO_NVLINK, .ok = true};
    struct deposit dp;

    if (conservative)
        *conservative = false;
    if (unknown_used == 0 || k == 0)
        return choose(t, F, k, required);
    if (unknown_used > f || f - unknown_used < k)
        return no_pick();
    if (binomial(f, unknown_used) > TOPO_GUARANTEE_MAX_CASES) {
        if (conservative)
            *conservative = true;
        return conservative_pick(t, k, required);
    }
    deposit_init(&dp, F);
    for (uint32_t x = (UINT32_C(1) << unknown_used) - 1; x < (UINT32_C(1) << f);
         x = next_combination(x)) {
        uint32_t left = F ^ deposit(&dp, x);
        struct topo_pick p = choose(t, left, k, required);
        enum topo_class c = best_min_class(t, left, k);

        if (!p.ok)
            return no_pick();
        if (p.score < worst.score) {
            worst.score = p.score;
            worst.set = p.set;
        }
        if (c < worst.min_class)
            worst.min_class = c;
    }
    return worst;
}

#define GUAR_VALID (UINT32_C(1) << 31)
#define GUAR_OK (UINT32_C(1) << 30)
#define GUAR_CLASS_SHIFT 24

/* The memo slot of a guaranteed query, or SIZE_MAX when it has none: n > 8, or a requirement
 * above every class present (answered at once anyway). */
static size_t guar_index(const struct shape *t, uint32_t F, unsigned u, unsigned k,
                         enum topo_class required)
{
    unsigned j = 0;

    if (!t->guar || u == 0 || k == 0 || u > TOPO_EAGER_MAX_GPUS || k > TOPO_EAGER_MAX_GPUS)
        return SIZE_MAX;
    if (k >= 2 && (unsigned)required > (unsigned)t->level[0]) {
        if ((unsigned)required > (unsigned)t->level[t->nlevels - 1])
            return SIZE_MAX;
        j = level_index(t, required);
    }
    return guar_slot(t, F, u, k, j);
}

static struct topo_pick guaranteed_memo(const struct shape *t, uint32_t free_mask,
                                        unsigned unknown_used, unsigned k, enum topo_class required,
                                        bool *conservative)
{
    uint32_t F = free_mask & t->d.healthy;
    size_t i = guar_index(t, F, unknown_used, k, required);
    struct topo_pick p;
    uint32_t v;

    if (i == SIZE_MAX)
        return guaranteed(t, free_mask, unknown_used, k, required, conservative);
    if (conservative)
        *conservative = false;
    v = atomic_load_explicit(&t->guar[i], memory_order_relaxed);
    if ((v & GUAR_VALID) && !(v & GUAR_OK))
        return no_pick();
    if (v & GUAR_VALID) {
        uint32_t set = v & 0xffffu;
        return (struct topo_pick){.set = set,
                                  .score = set_score(t, set),
                                  .min_class = (enum topo_class)((v >> GUAR_CLASS_SHIFT) & 7u),
                                  .ok = (v & GUAR_OK) != 0};
    }
    /* n <= 8: at most C(8, 4) = 70 cases, never the conservative answer. */
    p = guaranteed(t, F, unknown_used, k, required, NULL);
    v = GUAR_VALID | (p.ok ? GUAR_OK : 0) | (uint32_t)p.min_class << GUAR_CLASS_SHIFT |
        (p.ok ? p.set : 0);
    atomic_store_explicit(&t->guar[i], v, memory_order_relaxed);
    if (!p.ok)
        return no_pick();
    return p;
}

struct topo_pick topo_choose(const struct topo *t, uint32_t free_mask, unsigned k,
                             enum topo_class required)
{
    return choose(t->s, free_mask, k, required);
}

enum topo_class topo_best_min_class(const struct topo *t, uint32_t free_mask, unsigned k)
{
    return best_min_class(t->s, free_mask, k);
}

struct topo_pick topo_choose_guaranteed(const struct topo *t, uint32_t free_mask,
                                        unsigned unknown_used, unsigned k, enum topo_class required,
                                        bool *conservative)
{
    return guaranteed_memo(t->s, free_mask, unknown_used, k, required, conservative);
}

/* ---- names and masks ---- */

static const char *const class_names[TOPO_CLASS_COUNT] = {"SYS", "NODE", "PHB",
                                                          "PXB", "PIX",  "NVLink"};

const char *topo_class_name(enum topo_class c)
{
    return (unsigned)c < TOPO_CLASS_COUNT ? class_names[c] : "?";
}

bool topo_class_parse(struct str s, enum topo_class *out)
{
    for (unsigned c = 0; c < TOPO_CLASS_COUNT; c++) {
        if (str_ieq_cstr(s, class_names[c])) {
            *out = (enum topo_class)c;
            return true;
        }
    }
    return false;
}

/* One to two digits, value < 32. */
static bool parse_index(struct str s, unsigned *out)
{
    unsigned v = 0;

    if (s.len == 0 || s.len > 2)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s.ptr[i] - '0');
    }
    if (v >= 32)
        return false;
    *out = v;
    return true;
}

bool topo_mask_parse(struct str s, uint32_t *mask)
{
    uint32_t m = 0;

    if (str_trim(s).len == 0) {
        *mask = 0;
        return true;
    }
    for (;;) {
        const char *comma = memchr(s.ptr, ',', s.len);
        size_t len = comma ? (size_t)(comma - s.ptr) : s.len;
        unsigned i;

        if (!parse_index(str_trim((struct str){s.ptr, len}), &i) || (m >> i & 1))
            return false;
        m |= UINT32_C(1) << i;
        if (!comma)
            break;
        s.ptr = comma + 1;
        s.len -= len + 1;
    }
    *mask = m;
    return true;
}

size_t topo_mask_format(uint32_t mask, char *out, size_t cap)
{
    char tmp[TOPO_MASK_STR_MAX];
    size_t n = 0;

    for (uint32_t m = mask; m; m &= m - 1) {
        unsigned i = ctz32(m);

        if (n)
            tmp[n++] = ',';
        if (i >= 10)
            tmp[n++] = (char)('0' + i / 10);
        tmp[n++] = (char)('0' + i % 10);
    }
    if (cap) {
        size_t c = n < cap ? n : cap - 1;
        memcpy(out, tmp, c);
        out[c] = '\0';
    }
    return n;
}
