/* cache.c -- cluster state and its snapshots (see cache.h).
 *
 * Node facts live in immutable, refcounted records: a snapshot points at the records that
 * were current when it was built, so an update never frees strings a reader still uses.
 * Counters (used, reserved) are copied into each snapshot. Snapshots are rebuilt lazily, by
 * the first reader after a change, so a burst of watch events costs one rebuild, not one per
 * event. */
#include "gx/cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gx/alloc.h"
#include "gx/strmap.h"

struct node_rec {
    atomic_int refs;
    bool seen; /* during a relist; guarded by the cache lock */
    struct node_info info;
    char strings[];
};

struct pod_rec {
    char node[KUBE_NODE_NAME_MAX + 1];
    int64_t gpus;
    bool counted; /* bound and not terminal: its GPUs are in use */
    bool seen;
};

struct resv {
    char uid[128];
    char node[KUBE_NODE_NAME_MAX + 1];
    int64_t gpus;
    uint64_t created_ms;
};

struct snapshot_impl {
    struct cache_snapshot pub; /* first: the public view */
    atomic_int refs;
    struct cache_node *nodes;
    struct node_rec **recs;
    uint32_t *index; /* open addressing: node position + 1, 0 = empty */
    size_t index_mask;
};

struct cache {
    pthread_mutex_t lock;
    struct strmap nodes;    /* name -> struct node_rec * */
    struct strmap usage;    /* node name -> num: GPUs of counted pods */
    struct strmap reserved; /* node name -> num: GPUs reserved */
    struct strmap pods;     /* uid -> struct pod_rec * */
    struct strmap resv;     /* "<pod uid>@<node>" -> struct resv * */
    bool nodes_listed, pods_listed;
    bool dirty;
    uint64_t generation;
    struct snapshot_impl *current;
    uint64_t last_contact_ms;
    bool connected;
    char last_error[200]; /* why the last outage began */
    uint64_t events, relists;
};

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct str entry_key(const struct strmap_entry *e)
{
    return (struct str){e->key, e->key_len};
}

/* ---- node records ---- */

static struct node_rec *node_rec_new(const struct node_info *n)
{
    size_t len = n->name.len + n->product.len + n->family.len + 3;
    struct node_rec *r = xcalloc(1, sizeof(*r) + len);
    char *p = r->strings;

    atomic_init(&r->refs, 1);
    r->info = *n;
    r->info.raw = STR_NULL;
    memcpy(p, n->name.ptr, n->name.len);
    r->info.name = (struct str){p, n->name.len};
    p += n->name.len + 1;
    if (n->product.len)
        memcpy(p, n->product.ptr, n->product.len);
    r->info.product = (struct str){p, n->product.len};
    r->info.model = (struct str){p, n->model.len};
    p += n->product.len + 1;
    if (n->family.len)
        memcpy(p, n->family.ptr, n->family.len);
    r->info.family = (struct str){p, n->family.len};
    return r;
}

static void node_rec_release(void *v)
{
    struct node_rec *r = v;

    if (r && atomic_fetch_sub(&r->refs, 1) == 1)
        free(r);
}

/* ---- snapshots ---- */

static void snapshot_free(struct snapshot_impl *s)
{
    for (size_t i = 0; i < s->pub.node_count; i++)
        node_rec_release(s->recs[i]);
    free(s->nodes);
    free(s->recs);
    free(s->index);
    free(s);
}

void cache_snapshot_release(struct cache_snapshot *pub)
{
    struct snapshot_impl *s = (struct snapshot_impl *)pub;

    if (s && atomic_fetch_sub(&s->refs, 1) == 1)
        snapshot_free(s);
}

struct build_ctx {
    struct cache *c;
    struct snapshot_impl *s;
    size_t n;
};

static void index_insert(struct snapshot_impl *s, struct str name, uint32_t pos)
{
    size_t i = strmap_hash(name) & s->index_mask;

    while (s->index[i])
        i = (i + 1) & s->index_mask;
    s->index[i] = pos + 1;
}

static void add_node(struct strmap_entry *e, void *ctx)
{
    struct build_ctx *b = ctx;
    struct node_rec *r = e->value;
    struct cache_node *cn = &b->s->nodes[b->n];
    struct strmap_entry *u = strmap_find(&b->c->usage, entry_key(e));
    struct strmap_entry *rv = strmap_find(&b->c->reserved, entry_key(e));

    atomic_fetch_add(&r->refs, 1);
    b->s->recs[b->n] = r;
    cn->info = r->info;
    cn->gpus_used = u ? u->num : 0;
    cn->gpus_reserved = rv ? rv->num : 0;
    index_insert(b->s, r->info.name, (uint32_t)b->n);
    b->n++;
}

static struct snapshot_impl *build_snapshot(struct cache *c)
{
    struct snapshot_impl *s = xcalloc(1, sizeof(*s));
    struct build_ctx b = {c, s, 0};
    size_t n = c->nodes.count, slots = 16;

    while (slots < 2 * n)
        slots *= 2;
    atomic_init(&s->refs, 1);
    s->nodes = xcalloc(n ? n : 1, sizeof(*s->nodes));
    s->recs = xcalloc(n ? n : 1, sizeof(*s->recs));
    s->index = xcalloc(slots, sizeof(*s->index));
    s->index_mask = slots - 1;
    strmap_each(&c->nodes, add_node, &b);
    s->pub.node_count = b.n;
    s->pub.nodes = s->nodes;
    s->pub.synced = c->nodes_listed && c->pods_listed;
    s->pub.generation = c->generation;
    return s;
}

const struct cache_node *cache_snapshot_find(const struct cache_snapshot *pub, struct str name)
{
    const struct snapshot_impl *s = (const struct snapshot_impl *)pub;
    size_t i = strmap_hash(name) & s->index_mask;

    for (; s->index[i]; i = (i + 1) & s->index_mask) {
        const struct cache_node *cn = &s->nodes[s->index[i] - 1];
        if (str_eq(cn->info.name, name))
            return cn;
    }
    return NULL;
}

/* Drops reservations the watch never confirmed; the caller holds the lock. */
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

/* The key of one pod's reservation on one node. */
static struct str resv_key(char *buf, size_t cap, struct str uid, struct str node)
{
    int n = snprintf(buf, cap, "%.*s@%.*s", (int)uid.len, uid.ptr, (int)node.len, node.ptr);

    return (struct str){buf, n < 0 ? 0 : ((size_t)n < cap ? (size_t)n : cap - 1)};
}

static void drop_reservation(struct cache *c, struct str key)
{
    struct resv *r = strmap_remove(&c->resv, key);
    struct strmap_entry *e;

    if (!r)
        return;
    e = strmap_find(&c->reserved, str_from_cstr(r->node));
    if (e && (e->num -= r->gpus) <= 0)
        strmap_remove(&c->reserved, str_from_cstr(r->node));
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

static void drop_pod_reservations(struct cache *c, struct str uid)
{
    struct uid_scan u = {.uid = uid};

    do {
        u.n = 0;
        strmap_each(&c->resv, find_uid, &u);
        for (size_t i = 0; i < u.n; i++)
            drop_reservation(c, str_from_cstr(u.keys[i]));
    } while (u.n == 8);
}

static void expire_reservations(struct cache *c)
{
    struct expire_ctx x = {.c = c, .now = now_ms()};

    if (c->resv.count == 0)
        return;
    strmap_each(&c->resv, find_expired, &x);
    for (size_t i = 0; i < x.n; i++)
        drop_reservation(c, str_from_cstr(x.uids[i]));
}

struct cache_snapshot *cache_snapshot_acquire(struct cache *c)
{
    struct snapshot_impl *s;

    pthread_mutex_lock(&c->lock);
    expire_reservations(c);
    if (c->dirty || !c->current) {
        struct snapshot_impl *old = c->current;
        c->generation++;
        c->current = build_snapshot(c);
        c->dirty = false;
        if (old)
            cache_snapshot_release(&old->pub);
    }
    s = c->current;
    atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&c->lock);
    return &s->pub;
}

/* ---- lifecycle ---- */

struct cache *cache_new(void)
{
    struct cache *c = xcalloc(1, sizeof(*c));

    pthread_mutex_init(&c->lock, NULL);
    strmap_init(&c->nodes);
    strmap_init(&c->usage);
    strmap_init(&c->reserved);
    strmap_init(&c->pods);
    strmap_init(&c->resv);
    c->dirty = true;
    return c;
}

void cache_free(struct cache *c)
{
    if (!c)
        return;
    if (c->current)
        cache_snapshot_release(&c->current->pub);
    strmap_destroy(&c->nodes, node_rec_release);
    strmap_destroy(&c->usage, NULL);
    strmap_destroy(&c->reserved, NULL);
    strmap_destroy(&c->pods, free);
    strmap_destroy(&c->resv, free);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* ---- nodes ---- */

static void mark_unseen(struct strmap_entry *e, void *ctx)
{
    bool is_node = ctx != NULL;

    if (is_node)
        ((struct node_rec *)e->value)->seen = false;
    else
        ((struct pod_rec *)e->value)->seen = false;
}

void cache_nodes_relist_begin(struct cache *c)
{
    pthread_mutex_lock(&c->lock);
    strmap_each(&c->nodes, mark_unseen, c);
    c->relists++;
    pthread_mutex_unlock(&c->lock);
}

/* Collects keys of unseen entries (a bounded batch per pass; the caller loops). */
struct sweep_ctx {
    bool is_node;
    char keys[256][KUBE_NODE_NAME_MAX + 1];
    size_t n;
};

static void find_unseen(struct strmap_entry *e, void *ctx)
{
    struct sweep_ctx *sw = ctx;
    bool seen = sw->is_node ? ((struct node_rec *)e->value)->seen
                            : ((struct pod_rec *)e->value)->seen;

    if (!seen && sw->n < 256 && e->key_len < sizeof(sw->keys[0]))
        snprintf(sw->keys[sw->n++], sizeof(sw->keys[0]), "%s", e->key);
}

static void pod_forget(struct cache *c, struct str uid);

static void sweep(struct cache *c, bool is_node)
{
    struct sweep_ctx *sw = xmalloc(sizeof(*sw));

    do {
        sw->is_node = is_node;
        sw->n = 0;
        strmap_each(is_node ? &c->nodes : &c->pods, find_unseen, sw);
        for (size_t i = 0; i < sw->n; i++) {
            if (is_node)
                node_rec_release(strmap_remove(&c->nodes, str_from_cstr(sw->keys[i])));
            else
                pod_forget(c, str_from_cstr(sw->keys[i]));
        }
        c->dirty |= sw->n > 0;
    } while (sw->n == 256);
    free(sw);
}

void cache_nodes_relist_end(struct cache *c)
{
    pthread_mutex_lock(&c->lock);
    sweep(c, true);
    c->nodes_listed = true;
    c->dirty = true;
    c->connected = true;
    c->last_contact_ms = now_ms();
    pthread_mutex_unlock(&c->lock);
}

void cache_node_upsert(struct cache *c, const struct node_info *n)
{
    struct node_rec *r;
    struct strmap_entry *e;

    if (n->name.len == 0 || n->name.len > KUBE_NODE_NAME_MAX)
        return;
    r = node_rec_new(n);
    r->seen = true;
    pthread_mutex_lock(&c->lock);
    e = strmap_upsert(&c->nodes, n->name, NULL);
    node_rec_release(e->value);
    e->value = r;
    c->dirty = true;
    c->events++;
    pthread_mutex_unlock(&c->lock);
}

void cache_node_delete(struct cache *c, struct str name)
{
    pthread_mutex_lock(&c->lock);
    node_rec_release(strmap_remove(&c->nodes, name));
    c->dirty = true;
    c->events++;
    pthread_mutex_unlock(&c->lock);
}

/* ---- pods ---- */

static void usage_add(struct cache *c, const char *node, int64_t gpus)
{
    struct strmap_entry *e = strmap_upsert(&c->usage, str_from_cstr(node), NULL);

    e->num += gpus;
    if (e->num <= 0)
        strmap_remove(&c->usage, str_from_cstr(node));
}

/* Removes a pod and its GPUs from the books; the caller holds the lock. */
static void pod_forget(struct cache *c, struct str uid)
{
    struct pod_rec *p = strmap_remove(&c->pods, uid);

    if (p && p->counted)
        usage_add(c, p->node, -p->gpus);
    free(p);
    if (c->resv.count)
        drop_pod_reservations(c, uid);
    c->dirty = true;
}

void cache_pods_relist_begin(struct cache *c)
{
    pthread_mutex_lock(&c->lock);
    strmap_each(&c->pods, mark_unseen, NULL);
    c->relists++;
    pthread_mutex_unlock(&c->lock);
}

void cache_pods_relist_end(struct cache *c)
{
    pthread_mutex_lock(&c->lock);
    sweep(c, false);
    c->pods_listed = true;
    c->dirty = true;
    c->connected = true;
    c->last_contact_ms = now_ms();
    pthread_mutex_unlock(&c->lock);
}

static bool is_terminal(struct str phase)
{
    return str_eq_cstr(phase, "Succeeded") || str_eq_cstr(phase, "Failed");
}

void cache_pod_upsert(struct cache *c, const struct pod_info *p)
{
    struct strmap_entry *e;
    struct pod_rec *r;

    if (p->uid.len == 0 || p->node_name.len > KUBE_NODE_NAME_MAX)
        return;
    pthread_mutex_lock(&c->lock);
    c->events++;
    if (p->gpus <= 0) {
        /* GPU requests cannot change on a live pod, so this one was never ours to track. */
        if (strmap_find(&c->pods, p->uid))
            pod_forget(c, p->uid);
        pthread_mutex_unlock(&c->lock);
        return;
    }
    e = strmap_upsert(&c->pods, p->uid, NULL);
    if (!e->value)
        e->value = xcalloc(1, sizeof(struct pod_rec));
    r = e->value;
    if (r->counted)
        usage_add(c, r->node, -r->gpus);
    snprintf(r->node, sizeof(r->node), "%.*s", (int)p->node_name.len, p->node_name.ptr);
    r->gpus = p->gpus;
    r->counted = p->node_name.len > 0 && !is_terminal(p->phase);
    r->seen = true;
    if (r->counted) {
        char key[400];
        usage_add(c, r->node, r->gpus);
        /* The watch shows it bound: that reservation becomes ordinary accounting. One for
         * another node stays until its own bind gives it back (it will get a 409). */
        drop_reservation(c, resv_key(key, sizeof(key), p->uid, p->node_name));
    }
    c->dirty = true;
    pthread_mutex_unlock(&c->lock);
}

void cache_pod_delete(struct cache *c, const struct pod_info *p)
{
    pthread_mutex_lock(&c->lock);
    c->events++;
    pod_forget(c, p->uid);
    pthread_mutex_unlock(&c->lock);
}

void cache_contact(struct cache *c)
{
    pthread_mutex_lock(&c->lock);
    c->connected = true;
    c->last_contact_ms = now_ms();
    pthread_mutex_unlock(&c->lock);
}

void cache_disconnected(struct cache *c, const char *why)
{
    pthread_mutex_lock(&c->lock);
    c->connected = false;
    snprintf(c->last_error, sizeof(c->last_error), "%s", why ? why : "");
    pthread_mutex_unlock(&c->lock);
}

/* ---- reservations ---- */

static int64_t num_of(const struct strmap *m, struct str key)
{
    const struct strmap_entry *e = strmap_find(m, key);

    return e ? e->num : 0;
}

static enum err reserve_locked(struct cache *c, struct str uid, struct str node, int64_t gpus,
                               struct str key, struct errbuf *eb)
{
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
        str_eq_cstr(node, ((struct pod_rec *)pe->value)->node))
        return ERR_OK;
    if (strmap_find(&c->resv, key))
        return ERR_OK;
    free_gpus = ((struct node_rec *)ne->value)->info.gpu_allocatable - num_of(&c->usage, node) -
                num_of(&c->reserved, node);
    if (free_gpus < gpus) {
        errbuf_set(eb, "node %.*s has %lld free nvidia.com/gpu, the pod needs %lld",
                   (int)node.len, node.ptr, (long long)(free_gpus < 0 ? 0 : free_gpus),
                   (long long)gpus);
        return ERR_UNAVAILABLE;
    }
    r = xcalloc(1, sizeof(*r));
    snprintf(r->uid, sizeof(r->uid), "%.*s", (int)uid.len, uid.ptr);
    snprintf(r->node, sizeof(r->node), "%.*s", (int)node.len, node.ptr);
    r->gpus = gpus;
    r->created_ms = now_ms();
    strmap_upsert(&c->resv, key, NULL)->value = r;
    strmap_upsert(&c->reserved, node, NULL)->num += gpus;
    c->dirty = true;
    return ERR_OK;
}

enum err cache_reserve(struct cache *c, struct str pod_uid, struct str node, int64_t gpus,
                       struct errbuf *eb)
{
    char buf[400];
    struct str key;
    enum err e;

    if (pod_uid.len == 0 || pod_uid.len >= sizeof(((struct resv *)0)->uid) || node.len == 0 ||
        node.len > KUBE_NODE_NAME_MAX) {
        errbuf_set(eb, "a reservation needs a pod UID and a node name");
        return ERR_INVALID;
    }
    key = resv_key(buf, sizeof(buf), pod_uid, node);
    pthread_mutex_lock(&c->lock);
    expire_reservations(c);
    e = reserve_locked(c, pod_uid, node, gpus, key, eb);
    pthread_mutex_unlock(&c->lock);
    return e;
}

void cache_release(struct cache *c, struct str pod_uid, struct str node)
{
    char buf[400];
    struct str key = resv_key(buf, sizeof(buf), pod_uid, node);

    pthread_mutex_lock(&c->lock);
    drop_reservation(c, key);
    pthread_mutex_unlock(&c->lock);
}

void cache_status_get(struct cache *c, struct cache_status *out)
{
    pthread_mutex_lock(&c->lock);
    out->synced = c->nodes_listed && c->pods_listed;
    out->connected = c->connected;
    out->age_ms = c->last_contact_ms ? (int64_t)(now_ms() - c->last_contact_ms) : -1;
    out->nodes = c->nodes.count;
    out->gpu_pods = c->pods.count;
    out->reservations = c->resv.count;
    out->events = c->events;
    out->relists = c->relists;
    pthread_mutex_unlock(&c->lock);
}
