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
#include "gx/bits.h"
#include "gx/clock.h"
#include "gx/k8s.h"
#include "gx/log.h"
#include "gx/metrics.h"
#include "gx/strmap.h"
#include "gx/topology.h"

/* Room for a topology's intern key: "<t|h>:<length>:<hash>:<hash>". */
#define TOPO_KEY_MAX 64
/* Taints longer than this are not kept (they are only shown, never decided on). */
#define TAINTS_MAX_BYTES 2048
#define TOPO_ERROR_MAX 160
/* GPU indices the books track per node: masks are 32 bits. */
#define INDEX_SLOTS 32

struct node_rec {
    atomic_int refs;
    bool seen; /* during a relist; guarded by the cache lock */
    struct node_info info;
    struct topo *topo;               /* one reference, counted in c->topos; NULL: count-only */
    char topo_key[TOPO_KEY_MAX];     /* of the annotation text; "" when there is none */
    char topo_error[TOPO_ERROR_MAX]; /* "" unless the annotation was refused */
    uint32_t in_use_mask;            /* gpu-extender.io/gpus-in-use */
    char strings[];
};

struct pod_rec {
    int64_t gpus;
    uint32_t mask; /* gpu-extender.io/gpus when it names exactly gpus indices */
    bool counted;  /* bound and not terminal: its GPUs are in use */
    bool seen;
    struct pod_info *pending; /* unbound pods only: what explain needs; NULL otherwise */
    char node[];
};

struct resv {
    char uid[128];
    char node[K8S_NAME_MAX + 1];
    int64_t gpus;
    uint32_t mask; /* the GPU indices it holds; 0 when it holds a count only */
    uint64_t created_ms;
};

/* How many pods and reservations hold each GPU index of a node. */
struct index_refs {
    uint16_t refs[INDEX_SLOTS];
};

struct snapshot_impl {
    struct cache_snapshot pub; /* first: the public view */
    atomic_int refs;
    struct cache_node *nodes;
    struct node_rec **recs;
    uint64_t *index; /* open addressing: hash's high 32 bits << 32 | node position + 1; 0 empty */
    size_t index_mask;
};

struct cache {
    pthread_mutex_t lock;
    struct strmap nodes;    /* name -> struct node_rec * */
    struct strmap usage;    /* node name -> num: GPUs of counted pods */
    struct strmap reserved; /* node name -> num: GPUs reserved */
    struct strmap pods;     /* uid -> struct pod_rec * */
    struct strmap resv;     /* "<pod uid>@<node>" -> struct resv * */
    struct strmap named;    /* node name -> struct index_refs *: indices taken by name */
    struct strmap topos;    /* topology key -> struct topo *, num = nodes using it */
    bool nodes_listed, pods_listed;
    bool dirty;
    uint64_t generation;
    struct snapshot_impl *current;
    uint64_t last_contact_ms;
    bool connected;
    char last_error[200]; /* why the last outage began */
    uint64_t events, relists;
};

static struct str entry_key(const struct strmap_entry *e)
{
    return (struct str){e->key, e->key_len};
}

/* ---- node records ---- */

/* Copies s to *p and advances it past a NUL. */
static struct str put_string(char **p, struct str s)
{
    struct str out = {*p, s.len};

    if (s.len)
        memcpy(*p, s.ptr, s.len);
    *p += s.len + 1;
    return out;
}

/* Only what decisions and /debug/nodes read is kept: the annotations are digested into the
 * topology and the in-use mask, and the raw object is never copied. */
static struct node_rec *node_rec_new(const struct node_info *n)
{
    struct str taints = n->taints.len <= TAINTS_MAX_BYTES ? n->taints : STR_NULL;
    size_t len = n->name.len + n->product.len + n->family.len + taints.len + 4;
    struct node_rec *r = xcalloc(1, sizeof(*r) + len);
    char *p = r->strings;

    atomic_init(&r->refs, 1);
    r->info = *n;
    r->info.raw = STR_NULL;
    r->info.ann_topology = r->info.ann_hami_score = r->info.ann_gpus_in_use = STR_NULL;
    r->info.name = put_string(&p, n->name);
    r->info.product = put_string(&p, n->product);
    r->info.model = (struct str){r->info.product.ptr, n->model.len};
    r->info.family = put_string(&p, n->family);
    r->info.taints = put_string(&p, taints);
    return r;
}

static void node_rec_release(void *v)
{
    struct node_rec *r = v;

    if (r && atomic_fetch_sub(&r->refs, 1) == 1) {
        topo_release(r->topo);
        free(r);
    }
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

void cache_snapshot_release(struct cache_snapshot *snap)
{
    struct snapshot_impl *s = (struct snapshot_impl *)snap;

    if (s && atomic_fetch_sub(&s->refs, 1) == 1)
        snapshot_free(s);
}

static uint32_t refs_mask(const struct index_refs *x)
{
    uint32_t m = 0;

    for (unsigned i = 0; x && i < INDEX_SLOTS; i++)
        m |= x->refs[i] ? 1u << i : 0;
    return m;
}

/* A node as decisions see it: counters, and which GPU indices are free. The caller holds the
 * lock; out points into r, which must stay referenced as long as out is used. */
static void node_view(struct cache *c, const struct node_rec *r, int64_t used, int64_t reserved,
                      struct cache_node *out)
{
    const struct strmap_entry *e;
    unsigned named_count;
    int64_t unknown;

    memset(out, 0, sizeof(*out));
    out->info = r->info;
    out->gpus_used = used;
    out->gpus_reserved = reserved;
    out->topo = r->topo;
    out->topo_error = r->topo_error;
    if (!r->topo)
        return;
    e = strmap_find(&c->named, r->info.name);
    out->named_mask = r->in_use_mask | refs_mask(e ? e->value : NULL);
    out->free_mask = topo_healthy_mask(r->topo) & ~out->named_mask;
    named_count = bits_popcount32(out->named_mask);
    unknown = used + reserved - (int64_t)named_count;
    out->unknown_used = unknown > 0 ? (unsigned)(unknown > INDEX_SLOTS ? INDEX_SLOTS : unknown) : 0;
}

struct build_ctx {
    struct cache *c;
    struct snapshot_impl *s;
    size_t n;
};

/* The high half of the hash rides along in the slot, so a probe compares names only when the
 * hashes agree: almost never for the wrong node. */
static void index_insert(struct snapshot_impl *s, struct str name, uint32_t pos)
{
    uint64_t h = strmap_hash(name);
    size_t i = h & s->index_mask;

    while (s->index[i])
        i = (i + 1) & s->index_mask;
    s->index[i] = (h >> 32) << 32 | (uint64_t)(pos + 1);
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
    node_view(b->c, r, u ? u->num : 0, rv ? rv->num : 0, cn);
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

const struct cache_node *cache_snapshot_find(const struct cache_snapshot *snap, struct str name)
{
    const struct snapshot_impl *s = (const struct snapshot_impl *)snap;
    uint64_t h = strmap_hash(name), tag = (h >> 32) << 32;
    size_t i = h & s->index_mask;

    for (; s->index[i]; i = (i + 1) & s->index_mask) {
        const struct cache_node *cn;
        if ((s->index[i] & ~UINT64_C(0xffffffff)) != tag)
            continue;
        cn = &s->nodes[(uint32_t)s->index[i] - 1];
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

/* Counts the indices in mask as taken (delta 1) or given back (-1) on node. */
static void index_add(struct cache *c, struct str node, uint32_t mask, int delta)
{
    struct strmap_entry *e;
    struct index_refs *x;
    bool empty = true;

    if (!mask)
        return;
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
    index_add(c, str_from_cstr(r->node), r->mask, -1);
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
    struct expire_ctx x = {.c = c, .now = clock_mono_ms()};

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

static void pod_rec_free(void *v)
{
    struct pod_rec *p = v;

    if (p)
        free(p->pending);
    free(p);
}

static void topo_value_release(void *v)
{
    topo_release(v);
}

struct cache *cache_new(void)
{
    struct cache *c = xcalloc(1, sizeof(*c));

    pthread_mutex_init(&c->lock, NULL);
    strmap_init(&c->nodes);
    strmap_init(&c->usage);
    strmap_init(&c->reserved);
    strmap_init(&c->pods);
    strmap_init(&c->resv);
    strmap_init(&c->named);
    strmap_init(&c->topos);
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
    strmap_destroy(&c->pods, pod_rec_free);
    strmap_destroy(&c->resv, free);
    strmap_destroy(&c->named, free);
    strmap_destroy(&c->topos, topo_value_release);
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
    char keys[256][K8S_NAME_MAX + 1];
    size_t n;
};

static void find_unseen(struct strmap_entry *e, void *ctx)
{
    struct sweep_ctx *sw = ctx;
    bool seen =
        sw->is_node ? ((struct node_rec *)e->value)->seen : ((struct pod_rec *)e->value)->seen;

    if (!seen && sw->n < 256 && e->key_len < sizeof(sw->keys[0]))
        snprintf(sw->keys[sw->n++], sizeof(sw->keys[0]), "%s", e->key);
}

static void pod_forget(struct cache *c, struct str uid);
static void node_drop(struct cache *c, struct node_rec *r);

static void sweep(struct cache *c, bool is_node)
{
    struct sweep_ctx *sw = xmalloc(sizeof(*sw));

    do {
        sw->is_node = is_node;
        sw->n = 0;
        strmap_each(is_node ? &c->nodes : &c->pods, find_unseen, sw);
        for (size_t i = 0; i < sw->n; i++) {
            if (is_node)
                node_drop(c, strmap_remove(&c->nodes, str_from_cstr(sw->keys[i])));
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
    c->last_contact_ms = clock_mono_ms();
    pthread_mutex_unlock(&c->lock);
}

/* ---- topologies ---- */

/* Identifies an annotation's text by its format, length and two independent 64-bit hashes,
 * so that nodes with the same topology share one struct topo without keeping the text. */
static void topo_key(char fmt, struct str text, char out[TOPO_KEY_MAX])
{
    uint64_t fnv = UINT64_C(0xcbf29ce484222325), mix = UINT64_C(0x9e3779b97f4a7c15);

    for (size_t i = 0; i < text.len; i++) {
        unsigned char b = (unsigned char)text.ptr[i];
        fnv = (fnv ^ b) * UINT64_C(0x100000001b3);
        mix = (mix ^ b) * UINT64_C(0xff51afd7ed558ccd);
        mix ^= mix >> 29;
    }
    snprintf(out, TOPO_KEY_MAX, "%c:%zu:%016llx:%016llx", fmt, text.len, (unsigned long long)fnv,
             (unsigned long long)mix);
}

static void topo_unintern(struct cache *c, const struct node_rec *r)
{
    struct strmap_entry *e;

    if (!r->topo || !(e = strmap_find(&c->topos, str_from_cstr(r->topo_key))))
        return;
    if (--e->num <= 0)
        topo_release(strmap_remove(&c->topos, str_from_cstr(r->topo_key)));
}

static void node_drop(struct cache *c, struct node_rec *r)
{
    if (!r)
        return;
    topo_unintern(c, r);
    node_rec_release(r);
}

/* Gives r its topology: shared with other nodes when the text is the same, parsed otherwise.
 * A refused annotation is logged and counted once per change of its text (prev holds the
 * node's previous record, if any), and leaves the node count-only. The caller holds the lock. */
static void node_rec_topology(struct cache *c, struct node_rec *r, const struct node_info *n,
                              const struct node_rec *prev)
{
    bool hami = n->ann_topology.len == 0;
    struct str text = hami ? n->ann_hami_score : n->ann_topology;
    struct errbuf eb = ERRBUF_INIT;
    struct strmap_entry *e;
    struct topo *t = NULL;
    struct log_q q;

    if (text.len == 0)
        return;
    topo_key(hami ? 'h' : 't', text, r->topo_key);
    if (prev && strcmp(prev->topo_key, r->topo_key) == 0 && prev->topo_error[0]) {
        snprintf(r->topo_error, sizeof(r->topo_error), "%s", prev->topo_error);
        return;
    }
    e = strmap_find(&c->topos, str_from_cstr(r->topo_key));
    if (!e) {
        enum err err = hami ? topo_parse_hami(text.ptr, text.len, &t, &eb)
                            : topo_parse(text.ptr, text.len, &t, &eb);
        if (err != ERR_OK) {
            snprintf(r->topo_error, sizeof(r->topo_error), "%s: %.120s",
                     hami ? OBJ_ANN_HAMI_SCORE : OBJ_ANN_TOPOLOGY,
                     eb.msg[0] ? eb.msg : err_str(err));
            log_warn("state", "node topology refused; the node is count-only",
                     "node=%.*s err=\"%s\"", (int)n->name.len, n->name.ptr,
                     log_quote(&q, r->topo_error));
            metrics_counter_add(METRICS_TOPOLOGY_INVALID, 1);
            return;
        }
        e = strmap_upsert(&c->topos, str_from_cstr(r->topo_key), NULL);
        e->value = t;
    }
    e->num++;
    r->topo = topo_acquire(e->value);
}

/* gpu-extender.io/gpus-in-use: what the node itself says is taken. Unreadable means unsaid. */
static uint32_t in_use_mask(const struct node_info *n)
{
    uint32_t m = 0;

    return n->ann_gpus_in_use.len && topo_mask_parse(n->ann_gpus_in_use, &m) ? m : 0;
}

void cache_node_upsert(struct cache *c, const struct node_info *n)
{
    struct node_rec *r, *prev;
    struct strmap_entry *e;

    if (n->name.len == 0 || n->name.len > K8S_NAME_MAX)
        return;
    r = node_rec_new(n);
    r->seen = true;
    r->in_use_mask = in_use_mask(n);
    pthread_mutex_lock(&c->lock);
    e = strmap_upsert(&c->nodes, n->name, NULL);
    prev = e->value;
    node_rec_topology(c, r, n, prev);
    e->value = r;
    node_drop(c, prev);
    c->dirty = true;
    c->events++;
    pthread_mutex_unlock(&c->lock);
}

void cache_node_delete(struct cache *c, struct str name)
{
    pthread_mutex_lock(&c->lock);
    node_drop(c, strmap_remove(&c->nodes, name));
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

/* Takes a counted pod's GPUs off the books (delta -1) or puts them on (1). */
static void pod_account(struct cache *c, const struct pod_rec *p, int delta)
{
    if (!p->counted)
        return;
    usage_add(c, p->node, delta * p->gpus);
    index_add(c, str_from_cstr(p->node), p->mask, delta);
}

/* Removes a pod and its GPUs from the books; the caller holds the lock. */
static void pod_forget(struct cache *c, struct str uid)
{
    struct pod_rec *p = strmap_remove(&c->pods, uid);

    if (p)
        pod_account(c, p, -1);
    pod_rec_free(p);
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
    c->last_contact_ms = clock_mono_ms();
    pthread_mutex_unlock(&c->lock);
}

static bool is_terminal(struct str phase)
{
    return str_eq_cstr(phase, "Succeeded") || str_eq_cstr(phase, "Failed");
}

/* The strings a pending pod keeps for explain. */
#define PENDING_STRINGS 11

static void pending_strings(struct pod_info *p, struct str *out[PENDING_STRINGS])
{
    struct str *fields[PENDING_STRINGS] = {&p->ns,
                                           &p->name,
                                           &p->uid,
                                           &p->phase,
                                           &p->ann_gpu_model,
                                           &p->ann_gpu_model_preferred,
                                           &p->ann_strategy,
                                           &p->ann_use_gputype,
                                           &p->ann_nouse_gputype,
                                           &p->labels,
                                           &p->priority_class};

    memcpy(out, fields, sizeof(fields));
}

/* One allocation holding a pod_info and its strings: what explain needs of a pending pod.
 * Node name, raw annotations we do not read and the like are left out. */
static struct pod_info *pod_info_clone(const struct pod_info *p)
{
    struct str *src[PENDING_STRINGS], *dst[PENDING_STRINGS];
    struct pod_info copy = *p, *out;
    size_t len = sizeof(*out);
    char *s;

    pending_strings(&copy, src);
    for (size_t i = 0; i < PENDING_STRINGS; i++)
        len += src[i]->len + 1;
    out = xcalloc(1, len);
    s = (char *)(out + 1);
    out->gpus = p->gpus;
    out->deleting = p->deleting;
    pending_strings(out, dst);
    for (size_t i = 0; i < PENDING_STRINGS; i++)
        *dst[i] = put_string(&s, *src[i]);
    return out;
}

/* gpu-extender.io/gpus counts only when it names exactly as many GPUs as the pod has;
 * anything else would make the books lie, so the pod's GPUs stay unnamed. */
static uint32_t pod_mask(const struct pod_info *p)
{
    uint32_t m = 0;

    if (!p->ann_gpus.len || !topo_mask_parse(p->ann_gpus, &m) || bits_popcount32(m) != p->gpus)
        return 0;
    return m;
}

static struct pod_rec *pod_rec_new(const struct pod_info *p)
{
    struct pod_rec *r = xcalloc(1, sizeof(*r) + p->node_name.len + 1);

    if (p->node_name.len)
        memcpy(r->node, p->node_name.ptr, p->node_name.len);
    r->gpus = p->gpus;
    r->mask = pod_mask(p);
    r->counted = p->node_name.len > 0 && !is_terminal(p->phase);
    r->seen = true;
    if (p->node_name.len == 0 && !p->deleting && !is_terminal(p->phase))
        r->pending = pod_info_clone(p);
    return r;
}

void cache_pod_upsert(struct cache *c, const struct pod_info *p)
{
    struct strmap_entry *e;
    struct pod_rec *r;

    if (p->uid.len == 0 || p->node_name.len > K8S_NAME_MAX)
        return;
    r = p->gpus > 0 ? pod_rec_new(p) : NULL;
    pthread_mutex_lock(&c->lock);
    c->events++;
    if (!r) {
        /* GPU requests cannot change on a live pod, so this one was never ours to track. */
        if (strmap_find(&c->pods, p->uid))
            pod_forget(c, p->uid);
        pthread_mutex_unlock(&c->lock);
        return;
    }
    e = strmap_upsert(&c->pods, p->uid, NULL);
    if (e->value) {
        pod_account(c, e->value, -1);
        pod_rec_free(e->value);
    }
    e->value = r;
    pod_account(c, r, 1);
    if (r->counted) {
        char key[400];
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
    c->last_contact_ms = clock_mono_ms();
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
    node_view(c, nr, num_of(&c->usage, q->node), num_of(&c->reserved, q->node), &view);
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
        str_eq_cstr(node, ((struct pod_rec *)pe->value)->node)) {
        q->mask = ((struct pod_rec *)pe->value)->mask;
        return ERR_OK;
    }
    if ((pe = strmap_find(&c->resv, key))) {
        q->mask = ((struct resv *)pe->value)->mask;
        return ERR_OK;
    }
    free_gpus = ((struct node_rec *)ne->value)->info.gpu_allocatable - num_of(&c->usage, node) -
                num_of(&c->reserved, node);
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
    index_add(c, node, r->mask, 1);
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
    q.key = resv_key(buf, sizeof(buf), pod_uid, node);
    pthread_mutex_lock(&c->lock);
    expire_reservations(c);
    e = reserve_locked(c, &q, eb);
    pthread_mutex_unlock(&c->lock);
    if (mask && e == ERR_OK)
        *mask = q.mask;
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

static void add_topo_bytes(struct strmap_entry *e, void *ctx)
{
    *(size_t *)ctx += topo_own_bytes(e->value);
}

void cache_status_get(struct cache *c, struct cache_status *out)
{
    size_t shape_bytes;

    pthread_mutex_lock(&c->lock);
    out->synced = c->nodes_listed && c->pods_listed;
    out->connected = c->connected;
    out->age_ms = c->last_contact_ms ? (int64_t)(clock_mono_ms() - c->last_contact_ms) : -1;
    out->nodes = c->nodes.count;
    out->gpu_pods = c->pods.count;
    out->reservations = c->resv.count;
    out->events = c->events;
    out->relists = c->relists;
    out->topologies = c->topos.count;
    out->topology_bytes = 0;
    strmap_each(&c->topos, add_topo_bytes, &out->topology_bytes);
    pthread_mutex_unlock(&c->lock);
    topo_shapes(&out->topology_shapes, &shape_bytes);
    out->topology_bytes += shape_bytes;
}

struct pending_scan {
    struct str ns, name;
    const struct pod_info *hit;
};

static void find_pending(struct strmap_entry *e, void *ctx)
{
    struct pending_scan *ps = ctx;
    const struct pod_rec *r = e->value;

    if (!ps->hit && r->pending && str_eq(r->pending->ns, ps->ns) &&
        str_eq(r->pending->name, ps->name))
        ps->hit = r->pending;
}

static bool arena_str(struct arena *a, struct str *s)
{
    char *p;

    if (s->len == 0)
        return true;
    p = arena_strndup(a, s->ptr, s->len);
    if (!p)
        return false;
    s->ptr = p;
    return true;
}

bool cache_pending_pod(struct cache *c, struct str ns, struct str name, struct arena *arena,
                       struct pod_info *out)
{
    struct pending_scan ps = {.ns = ns, .name = name};
    bool ok = false;

    pthread_mutex_lock(&c->lock);
    strmap_each(&c->pods, find_pending, &ps);
    if (ps.hit) {
        struct str *fields[PENDING_STRINGS];
        *out = *ps.hit;
        pending_strings(out, fields);
        ok = true;
        for (size_t i = 0; i < PENDING_STRINGS && ok; i++)
            ok = arena_str(arena, fields[i]);
    }
    pthread_mutex_unlock(&c->lock);
    return ok;
}
