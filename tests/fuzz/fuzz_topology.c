/* fuzz_topology.c -- libFuzzer target for the topology parsers (gpu-extender.io/topology and
 * hami.io/node-nvidia-score). Every input goes to both. A topology that parses is queried on a
 * few free masks derived from the input, and each answer is checked against invariants that do
 * not need a reference: the set is free, healthy and of size k, its score and class match the
 * accessors, the class meets the requirement, and ok agrees with topo_best_min_class(). Built
 * with clang (GX_FUZZ=ON) it links libFuzzer; otherwise replay_main.c replays the corpus. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gx/topology.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t hash(const uint8_t *data, size_t size)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 16777619u;
    return h;
}

static void check_pick(const struct topo *t, uint32_t free_mask, unsigned k, enum topo_class req,
                       struct topo_pick p)
{
    uint32_t eligible = free_mask & topo_healthy_mask(t);
    unsigned f = (unsigned)__builtin_popcount(eligible);
    enum topo_class best = topo_best_min_class(t, free_mask, k);
    bool fits = k <= f && (k < 2 || best >= req);

    if (p.ok != fits)
        abort();
    if (!p.ok) {
        if (p.set)
            abort();
        return;
    }
    if ((p.set & ~eligible) || (unsigned)__builtin_popcount(p.set) != k)
        abort();
    if (p.score != topo_set_score(t, p.set) || p.min_class > best)
        abort();
    if (k >= 2 && p.min_class < req)
        abort();
}

static void check_guaranteed(const struct topo *t, uint32_t free_mask, unsigned k)
{
    bool conservative;
    struct topo_pick g = topo_choose_guaranteed(t, free_mask, 1, k, TOPO_SYS, &conservative);
    struct topo_pick p = topo_choose(t, free_mask, k, TOPO_SYS);

    /* One unknown GPU in use can only make things worse. */
    if (conservative || (g.ok && (!p.ok || g.score > p.score)))
        abort();
}

static void exercise(const struct topo *t, uint32_t seed)
{
    unsigned n = topo_gpu_count(t);
    uint32_t masks[4] = {UINT32_MAX, seed, seed >> 7, seed ^ 0x5555u};
    enum topo_class reqs[] = {TOPO_SYS, TOPO_PXB, TOPO_NVLINK};

    if (n == 0 || n > TOPO_MAX_GPUS || topo_healthy_mask(t) >> n)
        abort();
    for (unsigned i = 0; i < n; i++) {
        if (strlen(topo_gpu_uuid(t, i)) > TOPO_UUID_MAX || topo_gpu_numa(t, i) < -1)
            abort();
    }
    for (size_t m = 0; m < GX_ARRAY_LEN(masks); m++) {
        unsigned ks[] = {0, 1, 2, n / 2, n - 1, n, n + 1};
        for (size_t i = 0; i < GX_ARRAY_LEN(ks); i++) {
            for (size_t r = 0; r < GX_ARRAY_LEN(reqs); r++)
                check_pick(t, masks[m], ks[i], reqs[r], topo_choose(t, masks[m], ks[i], reqs[r]));
        }
    }
    check_guaranteed(t, seed, 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    uint32_t seed = hash(data, size);
    struct errbuf eb = ERRBUF_INIT;
    struct topo *t;
    uint32_t mask;

    errbuf_clear(&eb);
    if (topo_parse(text, size, &t, &eb) == ERR_OK) {
        exercise(t, seed);
        topo_release(t);
    } else if (!errbuf_is_set(&eb)) {
        abort();
    }
    errbuf_clear(&eb);
    if (topo_parse_hami(text, size, &t, &eb) == ERR_OK) {
        exercise(t, seed);
        topo_release(t);
    } else if (!errbuf_is_set(&eb)) {
        abort();
    }
    /* The mask helpers round-trip whatever they accept. */
    if (topo_mask_parse((struct str){text, size}, &mask)) {
        char buf[TOPO_MASK_STR_MAX];
        uint32_t again = 0;
        size_t len = topo_mask_format(mask, buf, sizeof(buf));
        if (len >= sizeof(buf) || !topo_mask_parse((struct str){buf, len}, &again) || again != mask)
            abort();
    }
    return 0;
}
