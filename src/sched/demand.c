/* demand.c -- the constrained-demand table and model scarcity (see sched.h).
 *
 * Plain data in the caller's storage: no allocation, no pointers, so a table can be copied,
 * kept across requests and compared. Every sum is over integers, so the same pods give the same
 * table whatever their order. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "gx/sched.h"

#define PPM 1000000
/* Scarcity is capped far above anything meaningful, so that the score's products stay well
 * inside 64 bits. */
#define SCARCITY_MAX_PPM ((int64_t)1000 * PPM)

void sched_demand_init(struct sched_demand *d)
{
    memset(d, 0, sizeof(*d));
}

/* A cheap fingerprint of a model name: its length and its last 8 bytes. Scoring looks a model
 * up for every node, so this is what a lookup costs, plus one comparison on a match. */
static uint64_t fingerprint(struct str model)
{
    uint64_t tail = 0;

    if (model.len >= 8)
        memcpy(&tail, model.ptr + model.len - 8, 8);
    else
        for (size_t i = 0; i < model.len; i++)
            tail = tail << 8 | (unsigned char)model.ptr[i];
    return (tail ^ model.len) * UINT64_C(0x9e3779b97f4a7c15);
}

/* Are the first n bytes of a and b the same? For the part of a name its fingerprint does not
 * cover, without a call: words, the last one overlapping the one before. */
static bool same_bytes(const char *a, const char *b, size_t n)
{
    uint64_t x, y;
    size_t i = 0;

    if (n < 8) {
        for (; i < n; i++)
            if (a[i] != b[i])
                return false;
        return true;
    }
    for (; i + 8 < n; i += 8) {
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        if (x != y)
            return false;
    }
    memcpy(&x, a + n - 8, 8);
    memcpy(&y, b + n - 8, 8);
    return x == y;
}

#define SLOTS ((size_t)2 * SCHED_DEMAND_MAX_MODELS)

static size_t slot_of(uint64_t key)
{
    return (size_t)(key >> 57) % SLOTS; /* the multiply's best-mixed bits */
}

static struct str model_name(const struct sched_demand_model *m)
{
    return (struct str){m->product, m->model_len};
}

int sched_demand_find(const struct sched_demand *d, struct str model)
{
    uint64_t key;

    if (model.len == 0)
        return -1;
    key = fingerprint(model);
    /* Equal fingerprints mean equal lengths and last 8 bytes: only the rest is compared. */
    for (size_t s = slot_of(key); d->slots[s]; s = (s + 1) % SLOTS) {
        size_t i = d->slots[s] - 1u;
        if (d->keys[i] == key && d->models[i].model_len == model.len &&
            same_bytes(d->models[i].product, model.ptr, model.len > 8 ? model.len - 8 : 0))
            return (int)i;
    }
    return -1;
}

static void copy_name(char *dst, uint8_t *len, struct str s)
{
    if (s.len) /* an absent label is a NULL view */
        memcpy(dst, s.ptr, s.len);
    *len = (uint8_t)s.len;
}

void sched_demand_add_node(struct sched_demand *d, const struct node_info *node)
{
    struct sched_demand_model *m;
    size_t s;
    int i;

    if (node->gpu_allocatable <= 0 || node->model.len == 0)
        return;
    i = sched_demand_find(d, node->model);
    if (i >= 0) {
        d->models[i].gpus += node->gpu_allocatable;
        return;
    }
    if (d->model_count == SCHED_DEMAND_MAX_MODELS || node->product.len >= SCHED_DEMAND_NAME_MAX ||
        node->family.len >= SCHED_DEMAND_NAME_MAX)
        return;
    m = &d->models[d->model_count];
    copy_name(m->product, &m->product_len, node->product);
    copy_name(m->family, &m->family_len, node->family);
    m->model_len = (uint8_t)node->model.len;
    m->memory_mib = node->gpu_memory_mib;
    m->gpus = node->gpu_allocatable;
    d->keys[d->model_count] = fingerprint(node->model);
    for (s = slot_of(d->keys[d->model_count]); d->slots[s]; s = (s + 1) % SLOTS)
        ;
    d->slots[s] = (uint8_t)(d->model_count + 1);
    d->all_models |= UINT64_C(1) << d->model_count;
    d->model_count++;
}

/* The model's first node, as the filter sees a node. */
static struct node_info representative(const struct sched_demand_model *m)
{
    return (struct node_info){.product = {m->product, m->product_len},
                              .model = model_name(m),
                              .family = {m->family, m->family_len},
                              .gpu_memory_mib = m->memory_mib,
                              .gpu_allocatable = m->gpus,
                              .ready = true};
}

uint64_t sched_demand_allowed(const struct sched_demand *d, const struct sched_pod *sp)
{
    uint64_t set = 0;

    for (size_t i = 0; i < d->model_count; i++) {
        struct node_info rep = representative(&d->models[i]);
        if (sched_model_allowed(sp, &rep))
            set |= UINT64_C(1) << i;
    }
    return set;
}

void sched_demand_add(struct sched_demand *d, uint64_t set, int64_t gpus)
{
    size_t i;

    set &= d->all_models;
    if (set == 0 || set == d->all_models || gpus == 0)
        return;
    for (i = 0; i < d->set_count && d->sets[i].models != set; i++)
        ;
    if (i == d->set_count) {
        if (i == SCHED_DEMAND_MAX_SETS)
            return;
        d->sets[d->set_count++] = (struct sched_demand_set){.models = set};
    }
    d->sets[i].gpus += gpus;
}

/* Set capacities, for ordering the sets: fewer GPUs to choose from first. */
static int64_t set_gpus(const struct sched_demand *d, uint64_t set)
{
    int64_t cap = 0;

    for (size_t m = 0; m < d->model_count; m++)
        cap += set >> m & 1 ? d->models[m].gpus : 0;
    return cap;
}

/* Pours gpus of demand into the models of set, least scarce first, raising them to one common
 * level (water-filling): the demand goes where the set's other pods leave most room. */
static void pour(struct sched_demand *d, uint64_t set, int64_t gpus)
{
    size_t idx[SCHED_DEMAND_MAX_MODELS], n = 0;
    int64_t cap = 0, mass, level = 0;

    for (size_t m = 0; m < d->model_count; m++) {
        size_t j;
        if (!(set >> m & 1))
            continue;
        /* insertion sort by scarcity, then index: a set has few models */
        for (j = n; j > 0 && d->models[idx[j - 1]].scarcity_ppm > d->models[m].scarcity_ppm; j--)
            idx[j] = idx[j - 1];
        idx[j] = m;
        n++;
    }
    mass = gpus >= SCARCITY_MAX_PPM / PPM * set_gpus(d, set) ? SCARCITY_MAX_PPM * set_gpus(d, set)
                                                             : gpus * PPM;
    for (size_t j = 0; j < n; j++) {
        const struct sched_demand_model *m = &d->models[idx[j]];
        mass += m->scarcity_ppm * m->gpus;
        cap += m->gpus;
        level = mass / cap;
        if (j + 1 == n || level <= d->models[idx[j + 1]].scarcity_ppm)
            break;
    }
    if (level > SCARCITY_MAX_PPM)
        level = SCARCITY_MAX_PPM;
    for (size_t j = 0; j < n; j++) {
        int64_t *v = &d->models[idx[j]].scarcity_ppm;
        *v = *v > level ? *v : level;
    }
}

static int name_cmp(const struct sched_demand_model *a, const struct sched_demand_model *b)
{
    int c =
        memcmp(a->product, b->product, a->model_len < b->model_len ? a->model_len : b->model_len);

    return c ? c : (int)a->model_len - (int)b->model_len;
}

/* Sets are poured in a fixed order that does not depend on the order the models were added
 * in: fewest GPUs first (the most constrained pods choose first), then by the names of their
 * models. key holds each set's models as bits of their rank by name. */
struct pour_item {
    int64_t cap;
    uint64_t key;
    const struct sched_demand_set *set;
};

static bool pour_before(const struct pour_item *a, const struct pour_item *b)
{
    return a->cap != b->cap ? a->cap < b->cap : a->key < b->key;
}

static uint64_t set_key(const struct sched_demand *d, const unsigned *rank, uint64_t set)
{
    uint64_t key = 0;

    for (size_t m = 0; m < d->model_count; m++)
        key |= set >> m & 1 ? UINT64_C(1) << (63 - rank[m]) : 0;
    return key;
}

void sched_demand_finish(struct sched_demand *d)
{
    struct pour_item order[SCHED_DEMAND_MAX_SETS];
    unsigned rank[SCHED_DEMAND_MAX_MODELS];
    size_t n = 0;

    for (size_t m = 0; m < d->model_count; m++) {
        d->models[m].scarcity_ppm = 0;
        rank[m] = 0;
        for (size_t o = 0; o < d->model_count; o++)
            rank[m] += name_cmp(&d->models[o], &d->models[m]) < 0;
    }
    for (size_t i = 0; i < d->set_count; i++) {
        struct pour_item it = {set_gpus(d, d->sets[i].models), 0, &d->sets[i]};
        size_t j;
        if (d->sets[i].gpus <= 0)
            continue;
        it.key = set_key(d, rank, d->sets[i].models);
        for (j = n; j > 0 && pour_before(&it, &order[j - 1]); j--)
            order[j] = order[j - 1];
        order[j] = it;
        n++;
    }
    for (size_t i = 0; i < n; i++)
        pour(d, order[i].set->models, order[i].set->gpus);
}
