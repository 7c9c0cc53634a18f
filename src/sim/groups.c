/* groups.c -- nodes grouped by decision state (see groups.h). */
#include "groups.h"

#include <stdlib.h>
#include <string.h>

#include "gx/alloc.h"

struct group {
    uint32_t cls;
    int64_t used;
    uint32_t taken;
    size_t *nodes; /* members, in no order */
    size_t size, cap;
    uint64_t *bits;    /* members by index */
    size_t min_hint;   /* no member below it */
    size_t active_pos; /* in g->active; SIZE_MAX when empty */
};

struct groups {
    size_t node_count, words;
    size_t *group_of; /* per node: its group, or SIZE_MAX */
    size_t *pos;      /* per node: its place in its group's array */
    struct group *all;
    size_t count, cap;
    size_t *slots; /* open addressing: group index + 1; 0 empty */
    size_t slot_mask;
    size_t *active; /* non-empty groups */
    size_t active_len;
};

static uint64_t key_hash(uint32_t cls, int64_t used, uint32_t taken)
{
    uint64_t h = (uint64_t)cls * UINT64_C(0x9e3779b97f4a7c15) ^
                 (uint64_t)used * UINT64_C(0xbf58476d1ce4e5b9) ^
                 (uint64_t)taken * UINT64_C(0x94d049bb133111eb);

    return h ^ (h >> 29);
}

struct groups *groups_new(size_t nodes)
{
    struct groups *g = xcalloc(1, sizeof(*g));

    g->node_count = nodes;
    g->words = nodes / 64 + 1;
    g->group_of = xmalloc((nodes + 1) * sizeof(*g->group_of));
    g->pos = xcalloc(nodes + 1, sizeof(*g->pos));
    for (size_t i = 0; i < nodes; i++)
        g->group_of[i] = SIZE_MAX;
    g->slot_mask = 255;
    g->slots = xcalloc(g->slot_mask + 1, sizeof(*g->slots));
    return g;
}

void groups_free(struct groups *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->count; i++) {
        free(g->all[i].nodes);
        free(g->all[i].bits);
    }
    free(g->all);
    free(g->slots);
    free(g->active);
    free(g->group_of);
    free(g->pos);
    free(g);
}

static void rehash(struct groups *g)
{
    free(g->slots);
    g->slot_mask = g->slot_mask * 2 + 1;
    g->slots = xcalloc(g->slot_mask + 1, sizeof(*g->slots));
    for (size_t i = 0; i < g->count; i++) {
        const struct group *x = &g->all[i];
        size_t s = key_hash(x->cls, x->used, x->taken) & g->slot_mask;
        while (g->slots[s])
            s = (s + 1) & g->slot_mask;
        g->slots[s] = i + 1;
    }
}

/* The group of (cls, used, taken), created empty when there is none. */
static size_t group_find(struct groups *g, uint32_t cls, int64_t used, uint32_t taken)
{
    size_t s = key_hash(cls, used, taken) & g->slot_mask;
    struct group *x;

    for (; g->slots[s]; s = (s + 1) & g->slot_mask) {
        x = &g->all[g->slots[s] - 1];
        if (x->cls == cls && x->used == used && x->taken == taken)
            return g->slots[s] - 1;
    }
    if (g->count == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 64;
        g->all = xrealloc(g->all, g->cap * sizeof(*g->all));
        g->active = xrealloc(g->active, g->cap * sizeof(*g->active));
    }
    x = &g->all[g->count];
    *x = (struct group){
        .cls = cls, .used = used, .taken = taken, .active_pos = SIZE_MAX, .min_hint = SIZE_MAX};
    x->bits = xcalloc(g->words, sizeof(*x->bits));
    g->slots[s] = ++g->count;
    if (g->count * 2 > g->slot_mask)
        rehash(g);
    return g->count - 1;
}

static void leave(struct groups *g, size_t node)
{
    size_t id = g->group_of[node], last;
    struct group *x;

    if (id == SIZE_MAX)
        return;
    x = &g->all[id];
    last = x->nodes[--x->size];
    x->nodes[g->pos[node]] = last;
    g->pos[last] = g->pos[node];
    x->bits[node / 64] &= ~(UINT64_C(1) << (node % 64));
    if (x->size == 0) {
        size_t moved = g->active[--g->active_len];
        g->active[x->active_pos] = moved;
        g->all[moved].active_pos = x->active_pos;
        x->active_pos = SIZE_MAX;
        x->min_hint = SIZE_MAX;
    }
    g->group_of[node] = SIZE_MAX;
}

void groups_set(struct groups *g, size_t node, uint32_t cls, int64_t used, uint32_t taken)
{
    size_t id;
    struct group *x;

    leave(g, node);
    id = group_find(g, cls, used, taken);
    x = &g->all[id];
    if (x->size == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 8;
        x->nodes = xrealloc(x->nodes, x->cap * sizeof(*x->nodes));
    }
    g->pos[node] = x->size;
    x->nodes[x->size++] = node;
    x->bits[node / 64] |= UINT64_C(1) << (node % 64);
    if (node < x->min_hint)
        x->min_hint = node;
    if (x->active_pos == SIZE_MAX) {
        x->active_pos = g->active_len;
        g->active[g->active_len++] = id;
    }
    g->group_of[node] = id;
}

size_t groups_count(const struct groups *g)
{
    return g->active_len;
}

struct group_view groups_at(const struct groups *g, size_t i)
{
    size_t id = g->active[i];
    const struct group *x = &g->all[id];

    return (struct group_view){id, x->cls, x->used, x->taken, x->size};
}

size_t groups_min_node(struct groups *g, size_t id)
{
    struct group *x = &g->all[id];
    size_t w = x->min_hint / 64;

    for (; w < g->words; w++) {
        uint64_t m = x->bits[w];
        if (w == x->min_hint / 64)
            m &= ~UINT64_C(0) << (x->min_hint % 64);
        if (m) {
            x->min_hint = w * 64 + (size_t)__builtin_ctzll(m);
            return x->min_hint;
        }
    }
    return SIZE_MAX;
}

size_t groups_node_at(const struct groups *g, size_t id, size_t k)
{
    return g->all[id].nodes[k];
}
