/* cache_resv.c -- reservations for binds in flight, and the GPU indices taken on each node
 * (see cache.h). A reservation is taken before a bind POSTs and lasts until the watch shows
 * the pod bound, the bind fails, or it expires. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx/alloc.h"
#include "gx/bits.h"
#include "gx/clock.h"

#include "cache_internal.h"

struct expire_ctx {
    struct cache *c;
    uint64_t now;
    char uids[64][400];
    size_t n;
};

static void find_expired(struct strmap_entry *e, void *ctx)
{
    struct expire_ctx *x = ctx;
    struct resv *r = e->value;

    if (x->now - r->created_ms > CACHE_RESERVATION_TTL_MS && x->n < 64 &&
        e->key_len < sizeof(x->uids[0]))
        snprintf(x->uids[x->n++], sizeof(x->uids[0]), "%s", e->key);
}

/* Counts the indices in mask as taken (delta 1) or given back (-1) on node. */
void cache_index_add(struct cache *c, struct str node, uint32_t mask, int delta)
{
    struct strmap_entry *e;
    struct index_refs *x;
    bool empty = true;

    if (!mask)
        return;
    cache_touch(c, node);
    e = strmap_upsert(&c->named, node, NULL);
    if (!e->value)
        e->value = xcalloc(1, sizeof(struct index_refs));
    x = e->value;
    for (unsigned i = 0; i < INDEX_SLOTS; i++) {
        if (mask & (1u << i))
            x->refs[i] = (uint16_t)(x->refs[i] + delta);
        empty &= x->refs[i] == 0;
    }
    if (empty)
        free(strmap_remove(&c->named, node));
}

/* The key of one pod's reservation on one node. */
struct str cache_resv_key(char *buf, size_t cap, struct str uid, struct str node)
{
    int n = snprintf(buf, cap, "%.*s@%.*s", (int)uid.len, uid.ptr, (int)node.len, node.ptr);

    return (struct str){buf, n < 0 ? 0 : ((size_t)n < cap ? (size_t)n : cap - 1)};
}

void cache_drop_reservation(struct cache *c, struct str key)
{
    struct resv *r = strmap_remove(&c->resv, key);
    struct strmap_entry *e;

    if (!r)
        return;
    cache_index_add(c, str_from_cstr(r->node), r->mask, -1);
    e = strmap_find(&c->reserved, str_from_cstr(r->node));
    if (e && (e->num -= r->gpus) <= 0)
        strmap_remove(&c->reserved, str_from_cstr(r->node));
    cache_touch(c, str_from_cstr(r->node));
    free(r);
    c->dirty = true;
}

/* Drops every reservation of a pod (it is gone): reservations are few, so a scan is cheap. */
struct uid_scan {
    struct str uid;
    char keys[8][400];
    size_t n;
};

static void find_uid(struct strmap_entry *e, void *ctx)
{
    struct uid_scan *u = ctx;
    struct resv *r = e->value;

    if (u->n < 8 && str_eq_cstr(u->uid, r->uid) && e->key_len < sizeof(u->keys[0]))
        snprintf(u->keys[u->n++], sizeof(u->keys[0]), "%s", e->key);
}

void cache_drop_pod_reservations(struct cache *c, struct str uid)
{
    struct uid_scan u = {.uid = uid};

    do {
        u.n = 0;
        strmap_each(&c->resv, find_uid, &u);
        for (size_t i = 0; i < u.n; i++)
            cache_drop_reservation(c, str_from_cstr(u.keys[i]));
    } while (u.n == 8);
}

void cache_expire_reservations(struct cache *c)
{
    struct expire_ctx x; /* 25 KB: not zeroed, every request comes here */

    if (c->resv.count == 0)
        return;
    x.c = c;
    x.now = clock_mono_ms();
    x.n = 0;
    strmap_each(&c->resv, find_expired, &x);
    for (size_t i = 0; i < x.n; i++)
        cache_drop_reservation(c, str_from_cstr(x.uids[i]));
}

int64_t cache_num_of(const struct strmap *m, struct str key)
{
    const struct strmap_entry *e = strmap_find(m, key);

    return e ? e->num : 0;
}

struct reserve_req {
    struct str uid, node, key;
    int64_t gpus;
    cache_choose_fn *choose;
    void *choose_ctx;
    uint32_t mask; /* out */
};

/* Asks the chooser which indices to take, and keeps its answer only when it is sound. */
static uint32_t choose_locked(struct cache *c, const struct node_rec *nr,
                              const struct reserve_req *q)
{
    struct cache_node view;
    uint32_t m;

    if (!q->choose || !nr->topo)
        return 0;
    cache_node_view(c, nr, cache_num_of(&c->usage, q->node), cache_num_of(&c->reserved, q->node),
                    &view);
    m = q->choose(q->choose_ctx, &view);
    if ((m & ~view.free_mask) || bits_popcount32(m) != q->gpus)
        return 0;
    return m;
}

static enum err reserve_locked(struct cache *c, struct reserve_req *q, struct errbuf *eb)
{
    struct str uid = q->uid, node = q->node, key = q->key;
    int64_t gpus = q->gpus;
    const struct strmap_entry *ne = strmap_find(&c->nodes, node);
    const struct strmap_entry *pe = strmap_find(&c->pods, uid);
    struct resv *r;
    int64_t free_gpus;

    if (!(c->nodes_listed && c->pods_listed)) {
        errbuf_set(eb, "the cluster cache has not synced yet%s%s%s",
                   c->last_error[0] ? " (API server: " : "", c->last_error,
                   c->last_error[0] ? ")" : "");
        return ERR_UNAVAILABLE;
    }
    if (!ne) {
        errbuf_set(eb, "node %.*s is not in the cluster cache", (int)node.len, node.ptr);
        return ERR_NOT_FOUND;
    }
    if (pe && ((struct pod_rec *)pe->value)->counted &&
        str_eq_cstr(node, ((struct pod_rec *)pe->value)->text)) {
        q->mask = ((struct pod_rec *)pe->value)->mask;
        return ERR_OK;
    }
    if ((pe = strmap_find(&c->resv, key))) {
        q->mask = ((struct resv *)pe->value)->mask;
        return ERR_OK;
    }
    free_gpus = ((struct node_rec *)ne->value)->info.gpu_allocatable -
                cache_num_of(&c->usage, node) - cache_num_of(&c->reserved, node);
    if (free_gpus < gpus) {
        errbuf_set(eb, "node %.*s has %lld free nvidia.com/gpu, the pod needs %lld", (int)node.len,
                   node.ptr, (long long)(free_gpus < 0 ? 0 : free_gpus), (long long)gpus);
        return ERR_UNAVAILABLE;
    }
    r = xcalloc(1, sizeof(*r));
    snprintf(r->uid, sizeof(r->uid), "%.*s", (int)uid.len, uid.ptr);
    snprintf(r->node, sizeof(r->node), "%.*s", (int)node.len, node.ptr);
    r->gpus = gpus;
    r->mask = choose_locked(c, ne->value, q);
    r->created_ms = clock_mono_ms();
    q->mask = r->mask;
    strmap_upsert(&c->resv, key, NULL)->value = r;
    strmap_upsert(&c->reserved, node, NULL)->num += gpus;
    cache_touch(c, node);
    cache_index_add(c, node, r->mask, 1);
    c->dirty = true;
    return ERR_OK;
}

enum err cache_reserve(struct cache *c, struct str pod_uid, struct str node, int64_t gpus,
                       cache_choose_fn *choose, void *choose_ctx, uint32_t *mask, struct errbuf *eb)
{
    struct reserve_req q = {
        .uid = pod_uid, .node = node, .gpus = gpus, .choose = choose, .choose_ctx = choose_ctx};
    char buf[400];
    enum err e;

    if (mask)
        *mask = 0;
    if (pod_uid.len == 0 || pod_uid.len >= sizeof(((struct resv *)0)->uid) || node.len == 0 ||
        node.len > K8S_NAME_MAX) {
        errbuf_set(eb, "a reservation needs a pod UID and a node name");
        return ERR_INVALID;
    }
    q.key = cache_resv_key(buf, sizeof(buf), pod_uid, node);
    pthread_mutex_lock(&c->lock);
    cache_expire_reservations(c);
    e = reserve_locked(c, &q, eb);
    pthread_mutex_unlock(&c->lock);
    if (mask && e == ERR_OK)
        *mask = q.mask;
    return e;
}

void cache_release(struct cache *c, struct str pod_uid, struct str node)
{
    char buf[400];
    struct str key = cache_resv_key(buf, sizeof(buf), pod_uid, node);

    pthread_mutex_lock(&c->lock);
    cache_drop_reservation(c, key);
    pthread_mutex_unlock(&c->lock);
}

struct mask_scan {
    struct str node;
    uint32_t mask;
};

static void add_resv_mask(struct strmap_entry *e, void *ctx)
{
    struct mask_scan *m = ctx;
    const struct resv *r = e->value;

    if (str_eq_cstr(m->node, r->node))
        m->mask |= r->mask;
}

uint32_t cache_reserved_mask(struct cache *c, struct str node)
{
    struct mask_scan m = {.node = node};

    if (c->resv.count)
        strmap_each(&c->resv, add_resv_mask, &m);
    return m.mask;
}
