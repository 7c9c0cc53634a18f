/* cache.c -- cluster state and its snapshots (see cache.h).
 *
 * Node facts live in immutable, refcounted records: a snapshot points at the records that
 * were current when it was built, so an update never frees strings a reader still uses.
 * Counters (used, reserved) are copied into each snapshot. Snapshots are rebuilt lazily, by
 * the first reader after a change, so a burst of watch events costs one rebuild, not one per
 * event. */
#include "gx/cache.h"

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

#include "cache_internal.h"

/* ---- node records ---- */

/* Copies s to *p and advances it past a NUL. */
struct str cache_put_string(char **p, struct str s)
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
    r->info.name = cache_put_string(&p, n->name);
    r->info.product = cache_put_string(&p, n->product);
    r->info.model = (struct str){r->info.product.ptr, n->model.len};
    r->info.family = cache_put_string(&p, n->family);
    r->info.taints = cache_put_string(&p, taints);
    return r;
}

static void node_rec_release(void *v)
{
    struct node_rec *r = v;

    if (r && atomic_fetch_sub(&r->refs, 1) == 1) {
        topo_release(r->topo);
        free(r->topo_error);
        free(r->agent);
        free(r);
    }
}

/* ---- model facts ---- */

/* The 1-based number of the node's model facts, numbering them when they are new; 0 when
 * CACHE_MODELS_MAX are numbered already. The caller holds the lock. */
static uint32_t model_id_of(struct cache *c, const struct node_info *n)
{
    char key[3 * (K8S_NAME_MAX + 1) + 24];
    struct strmap_entry *e;
    struct node_info *m;
    char *p;
    int len;
    bool created;

    if (n->product.len > K8S_NAME_MAX || n->family.len > K8S_NAME_MAX)
        return 0;
    len = snprintf(key, sizeof(key), "%.*s\n%.*s\n%lld", (int)n->product.len, n->product.ptr,
                   (int)n->family.len, n->family.ptr, (long long)n->gpu_memory_mib);
    if (len < 0 || (size_t)len >= sizeof(key))
        return 0;
    e = strmap_find(&c->model_ids, (struct str){key, (size_t)len});
    if (e)
        return (uint32_t)e->num;
    if (c->model_count >= CACHE_MODELS_MAX)
        return 0;
    m = xcalloc(1, sizeof(*m) + n->product.len + n->family.len + 2);
    p = (char *)(m + 1);
    m->product = cache_put_string(&p, n->product);
    m->model = (struct str){m->product.ptr, n->model.len};
    m->family = cache_put_string(&p, n->family);
    m->gpu_memory_mib = n->gpu_memory_mib;
    c->models[c->model_count++] = m;
    e = strmap_upsert(&c->model_ids, (struct str){key, (size_t)len}, &created);
    e->num = (int64_t)c->model_count;
    return (uint32_t)c->model_count;
}

/* ---- snapshots ---- */

static void chunk_release(struct snap_chunk *k)
{
    if (k && atomic_fetch_sub(&k->refs, 1) == 1) {
        for (size_t i = 0; i < SNAP_CHUNK; i++)
            node_rec_release(k->recs[i]);
        free(k);
    }
}

static void frame_release(struct snap_frame *f)
{
    if (f && atomic_fetch_sub(&f->refs, 1) == 1) {
        free(f->names);
        free(f->index);
        free(f);
    }
}

static void snapshot_free(struct snapshot_impl *s)
{
    cache_demand_release(s->pub.demand);
    for (size_t i = 0; i < s->chunk_count; i++)
        chunk_release(s->chunks[i]);
    free(s->chunks);
    frame_release(s->frame);
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
void cache_node_view(struct cache *c, const struct node_rec *r, int64_t used, int64_t reserved,
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
    out->topo_error = r->topo_error ? r->topo_error : "";
    out->agent = r->agent ? &r->agent->pub : NULL;
    out->model_id = r->model_id;
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
    char *names; /* where the next node's name goes in the frame's names */
};

static void add_name_bytes(struct strmap_entry *e, void *ctx)
{
    *(size_t *)ctx += ((const struct node_rec *)e->value)->info.name.len + 1;
}

/* The high half of the hash rides along in the slot, so a probe compares names only when the
 * hashes agree: almost never for the wrong node. */
static void index_insert(struct snap_frame *f, struct str name, uint32_t pos)
{
    uint64_t h = strmap_hash(name);
    size_t i = h & f->index_mask;

    while (f->index[i])
        i = (i + 1) & f->index_mask;
    f->index[i] = (h >> 32) << 32 | (uint64_t)(pos + 1);
}

/* Writes node r's view into chunk slot i, holding a reference to r there; name is where the
 * frame keeps its name. */
static void put_view(struct cache *c, struct snap_chunk *k, size_t i, struct node_rec *r,
                     struct str name)
{
    int64_t used = cache_num_of(&c->usage, r->info.name);
    int64_t reserved = cache_num_of(&c->reserved, r->info.name);

    atomic_fetch_add(&r->refs, 1);
    node_rec_release(k->recs[i]);
    k->recs[i] = r;
    cache_node_view(c, r, used, reserved, &k->nodes[i]);
    /* Names side by side: lookups compare against a few hundred KB, not the records. */
    k->nodes[i].info.name = name;
}

static struct snap_chunk *chunk_new(void)
{
    struct snap_chunk *k = xcalloc(1, sizeof(*k));

    atomic_init(&k->refs, 1);
    return k;
}

static void add_node(struct strmap_entry *e, void *ctx)
{
    struct build_ctx *b = ctx;
    struct node_rec *r = e->value;
    struct snap_chunk **k = &b->s->chunks[b->n / SNAP_CHUNK];

    if (!*k)
        *k = chunk_new();
    put_view(b->c, *k, b->n % SNAP_CHUNK, r, cache_put_string(&b->names, r->info.name));
    index_insert(b->s->frame, r->info.name, (uint32_t)b->n);
    b->n++;
}

static void finish_snapshot(struct cache *c, struct snapshot_impl *s)
{
    s->pub.node_count = s->frame->count;
    s->pub.synced = c->nodes_listed && c->pods_listed;
    s->pub.generation = c->generation;
    s->pub.demand = cache_demand_acquire(c);
    s->pub.models = (const struct node_info *const *)c->models;
    s->pub.model_count = c->model_count;
}

/* Every node's view, a new frame: O(cluster), for the first snapshot and when nodes come or
 * go. */
static struct snapshot_impl *build_snapshot(struct cache *c)
{
    struct snapshot_impl *s = xcalloc(1, sizeof(*s));
    struct snap_frame *f = xcalloc(1, sizeof(*f));
    struct build_ctx b = {c, s, 0, NULL};
    size_t n = c->nodes.count, slots = 16, name_bytes = 1;

    while (slots < 2 * n)
        slots *= 2;
    atomic_init(&s->refs, 1);
    atomic_init(&f->refs, 1);
    strmap_each(&c->nodes, add_name_bytes, &name_bytes);
    f->names = b.names = xcalloc(name_bytes, 1);
    f->index = xcalloc(slots, sizeof(*f->index));
    f->index_mask = slots - 1;
    f->count = n;
    s->frame = f;
    s->chunk_count = (n + SNAP_CHUNK - 1) / SNAP_CHUNK;
    s->chunks = xcalloc(s->chunk_count ? s->chunk_count : 1, sizeof(*s->chunks));
    strmap_each(&c->nodes, add_node, &b);
    finish_snapshot(c, s);
    return s;
}

static const struct cache_node *probe(const struct snapshot_impl *s, struct str name, uint64_t h,
                                      size_t *pos);

struct patch_ctx {
    struct cache *c;
    struct snapshot_impl *s;
    const struct snapshot_impl *prev;
    bool *copied; /* per chunk: already this snapshot's own */
    bool ok;
};

/* Rebuilds one touched node's view in a copy of its chunk. A name the frame does not know, or
 * a node gone from the cache, means the shape changed: the caller builds whole. */
static void patch_node(struct strmap_entry *e, void *ctx)
{
    struct patch_ctx *p = ctx;
    struct str name = {e->key, e->key_len};
    struct strmap_entry *ne = strmap_find(&p->c->nodes, name);
    size_t pos, ci;
    struct snap_chunk *k;
    bool known;

    if (!p->ok)
        return;
    known = probe(p->prev, name, strmap_hash(name), &pos) != NULL;
    if (!ne && !known)
        return; /* pods on a node the cache does not hold: no view to change */
    if (!ne || !known) {
        p->ok = false;
        return;
    }
    ci = pos / SNAP_CHUNK;
    if (!p->copied[ci]) {
        const struct snap_chunk *old = p->s->chunks[ci];
        k = chunk_new();
        memcpy(k->nodes, old->nodes, sizeof(k->nodes));
        for (size_t i = 0; i < SNAP_CHUNK; i++) {
            k->recs[i] = old->recs[i];
            if (k->recs[i])
                atomic_fetch_add(&k->recs[i]->refs, 1);
        }
        chunk_release(p->s->chunks[ci]);
        p->s->chunks[ci] = k;
        p->copied[ci] = true;
    }
    k = p->s->chunks[ci];
    put_view(p->c, k, pos % SNAP_CHUNK, ne->value, k->nodes[pos % SNAP_CHUNK].info.name);
}

/* The previous snapshot with the touched nodes' views rebuilt: its frame and every untouched
 * chunk shared, so a watch event costs the chunks it touched, not the cluster. NULL when the
 * shape changed and the snapshot must be built whole. */
static struct snapshot_impl *patch_snapshot(struct cache *c, const struct snapshot_impl *prev)
{
    struct snapshot_impl *s;
    struct patch_ctx p;

    if (c->reshaped || prev->frame->count != c->nodes.count ||
        c->touched.count > prev->frame->count / 4 + 1)
        return NULL;
    s = xcalloc(1, sizeof(*s));
    atomic_init(&s->refs, 1);
    s->frame = prev->frame;
    atomic_fetch_add(&s->frame->refs, 1);
    s->chunk_count = prev->chunk_count;
    s->chunks = xcalloc(s->chunk_count ? s->chunk_count : 1, sizeof(*s->chunks));
    for (size_t i = 0; i < s->chunk_count; i++) {
        s->chunks[i] = prev->chunks[i];
        atomic_fetch_add(&s->chunks[i]->refs, 1);
    }
    p = (struct patch_ctx){c, s, prev, xcalloc(s->chunk_count + 1, sizeof(bool)), true};
    strmap_each(&c->touched, patch_node, &p);
    free(p.copied);
    if (!p.ok) {
        snapshot_free(s);
        return NULL;
    }
    finish_snapshot(c, s);
    return s;
}

void cache_touch(struct cache *c, struct str node)
{
    if (c->current && !c->reshaped)
        strmap_upsert(&c->touched, node, NULL);
}

const struct cache_node *cache_snapshot_node(const struct cache_snapshot *snap, size_t i)
{
    return snap_node((const struct snapshot_impl *)snap, i);
}

/* Are the n bytes at a and b the same? Names of 8 to 16 bytes, most node names, take two
 * loads each instead of a call. */
static inline bool same_bytes(const char *a, const char *b, size_t n)
{
    uint64_t x0, y0, x1, y1;

    if (n < 8 || n > 16)
        return memcmp(a, b, n) == 0;
    memcpy(&x0, a, 8);
    memcpy(&y0, b, 8);
    memcpy(&x1, a + n - 8, 8);
    memcpy(&y1, b + n - 8, 8);
    return ((x0 ^ y0) | (x1 ^ y1)) == 0;
}

/* The node named name, whose hash is h, probing from its slot; *pos (may be NULL) gets its
 * position. */
static const struct cache_node *probe(const struct snapshot_impl *s, struct str name, uint64_t h,
                                      size_t *pos)
{
    const struct snap_frame *f = s->frame;
    uint64_t tag = (h >> 32) << 32;

    for (size_t i = h & f->index_mask; f->index[i]; i = (i + 1) & f->index_mask) {
        const struct cache_node *cn;
        size_t at;
        if ((f->index[i] & ~UINT64_C(0xffffffff)) != tag)
            continue;
        at = (uint32_t)f->index[i] - 1;
        cn = snap_node(s, at);
        if (cn->info.name.len == name.len && same_bytes(cn->info.name.ptr, name.ptr, name.len)) {
            if (pos)
                *pos = at;
            return cn;
        }
    }
    return NULL;
}

const struct cache_node *cache_snapshot_find(const struct cache_snapshot *snap, struct str name)
{
    return probe((const struct snapshot_impl *)snap, name, strmap_hash(name), NULL);
}

/* In batches, so that memory is asked for before it is needed: every name's hash first, with
 * its index slot prefetched; then the slots, with the nodes they point at prefetched; then
 * the names compared. A request of thousands of names spends its time waiting on memory
 * otherwise, one miss after the other. */
#define FIND_BATCH 32

void cache_snapshot_find_all(const struct cache_snapshot *snap, const struct str *names, size_t n,
                             const struct cache_node **out)
{
    const struct snapshot_impl *s = (const struct snapshot_impl *)snap;
    const struct snap_frame *f = s->frame;

    for (size_t base = 0; base < n; base += FIND_BATCH) {
        size_t m = n - base < FIND_BATCH ? n - base : FIND_BATCH;
        uint64_t h[FIND_BATCH];
        size_t slot[FIND_BATCH];

        for (size_t j = 0; j < m; j++) {
            h[j] = strmap_hash(names[base + j]);
            slot[j] = h[j] & f->index_mask;
            __builtin_prefetch(&f->index[slot[j]]);
        }
        for (size_t j = 0; j < m; j++) {
            uint64_t v = f->index[slot[j]];
            if (v && (v & ~UINT64_C(0xffffffff)) == ((h[j] >> 32) << 32)) {
                const struct cache_node *cn = snap_node(s, (uint32_t)v - 1);
                __builtin_prefetch(cn);
                __builtin_prefetch((const char *)cn + 64);
            }
        }
        for (size_t j = 0; j < m; j++)
            out[base + j] = probe(s, names[base + j], h[j], NULL);
    }
}

/* Drops reservations the watch never confirmed; the caller holds the lock. */
struct snapshot_impl *cache_snapshot_current(struct cache *c)
{
    cache_expire_reservations(c);
    if (c->dirty || !c->current) {
        struct snapshot_impl *old = c->current, *next = NULL;
        c->generation++;
        if (old)
            next = patch_snapshot(c, old);
        c->current = next ? next : build_snapshot(c);
        if (next)
            c->snapshots_patched++;
        else
            c->snapshots_whole++;
        c->dirty = false;
        c->reshaped = false;
        if (c->touched.count) {
            strmap_destroy(&c->touched, NULL);
            strmap_init(&c->touched);
        }
        if (old)
            cache_snapshot_release(&old->pub);
    }
    atomic_fetch_add(&c->current->refs, 1);
    return c->current;
}

struct cache_snapshot *cache_snapshot_acquire(struct cache *c)
{
    struct snapshot_impl *s;

    pthread_mutex_lock(&c->lock);
    s = cache_snapshot_current(c);
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
    strmap_init(&c->on_node);
    strmap_init(&c->nominated_on);
    cache_pdbs_init(c);
    cache_demand_init(c);
    strmap_init(&c->model_ids);
    strmap_init(&c->touched);
    c->models = xcalloc(CACHE_MODELS_MAX, sizeof(*c->models));
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
    strmap_destroy(&c->on_node, NULL);
    strmap_destroy(&c->nominated_on, NULL);
    cache_pdbs_free(c);
    cache_demand_free(c);
    strmap_destroy(&c->model_ids, NULL);
    strmap_destroy(&c->touched, NULL);
    for (size_t i = 0; i < c->model_count; i++)
        free(c->models[i]);
    free(c->models);
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
static void node_remove(struct cache *c, struct str name);

static void sweep(struct cache *c, bool is_node)
{
    struct sweep_ctx *sw = xmalloc(sizeof(*sw));

    do {
        sw->is_node = is_node;
        sw->n = 0;
        strmap_each(is_node ? &c->nodes : &c->pods, find_unseen, sw);
        for (size_t i = 0; i < sw->n; i++) {
            if (is_node)
                node_remove(c, str_from_cstr(sw->keys[i]));
            else
                pod_forget(c, str_from_cstr(sw->keys[i]));
        }
        c->dirty |= sw->n > 0;
    } while (sw->n == 256);
    free(sw);
}

/* A full list leaves the page buffers and the replaced records of a whole cluster freed: hand
 * those pages back to the system (glibc keeps them otherwise; at 15,000 nodes and 150,000 pods
 * that is several MB of resident memory nobody uses). */
static void give_back_memory(void)
{
    alloc_trim();
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
    give_back_memory();
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
    cache_demand_node(c, &r->info, -1);
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
    if (prev && strcmp(prev->topo_key, r->topo_key) == 0 && prev->topo_error) {
        r->topo_error = xstrdup(prev->topo_error);
        return;
    }
    e = strmap_find(&c->topos, str_from_cstr(r->topo_key));
    if (!e) {
        enum err err = hami ? topo_parse_hami(text.ptr, text.len, &t, &eb)
                            : topo_parse(text.ptr, text.len, &t, &eb);
        if (err != ERR_OK) {
            char why[TOPO_ERROR_MAX];
            snprintf(why, sizeof(why), "%s: %.120s", hami ? OBJ_ANN_HAMI_SCORE : OBJ_ANN_TOPOLOGY,
                     eb.msg[0] ? eb.msg : err_str(err));
            r->topo_error = xstrdup(why);
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
    if (prev)
        cache_touch(c, n->name);
    else
        c->reshaped = true;
    node_rec_topology(c, r, n, prev);
    r->model_id = model_id_of(c, n);
    r->agent = cache_agent_parse(n, prev ? prev->agent : NULL);
    cache_demand_node(c, &r->info, 1);
    e->value = r;
    if (r->agent || (prev && prev->agent))
        cache_agent_resync(c, n->name);
    node_drop(c, prev);
    c->dirty = true;
    c->events++;
    pthread_mutex_unlock(&c->lock);
}

/* Forgets a node; its pods that the agent listed count by their own annotations again. */
static void node_remove(struct cache *c, struct str name)
{
    struct node_rec *r = strmap_remove(&c->nodes, name);

    if (r)
        c->reshaped = true;
    if (r && r->agent)
        cache_agent_resync(c, name);
    node_drop(c, r);
}

void cache_node_delete(struct cache *c, struct str name)
{
    pthread_mutex_lock(&c->lock);
    node_remove(c, name);
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
    cache_touch(c, str_from_cstr(node));
}

/* Puts a pod on the list of node in lists (delta 1) or takes it off (-1). */
static void list_update(struct strmap *lists, struct str node, struct pod_rec *p, int delta)
{
    struct strmap_entry *e;

    if (delta > 0) {
        e = strmap_upsert(lists, node, NULL);
        p->node_prev = NULL;
        p->node_next = e->value;
        if (p->node_next)
            p->node_next->node_prev = p;
        e->value = p;
        return;
    }
    if (p->node_next)
        p->node_next->node_prev = p->node_prev;
    if (p->node_prev) {
        p->node_prev->node_next = p->node_next;
    } else if ((e = strmap_find(lists, node))) {
        if (p->node_next)
            e->value = p->node_next;
        else
            strmap_remove(lists, node);
    }
    p->node_prev = p->node_next = NULL;
}

/* Takes a counted pod's GPUs off the books (delta -1) or puts them on (1); a pending pod
 * nominated to a node goes on (or off) that node's nominated list. */
static void pod_account(struct cache *c, struct pod_rec *p, int delta)
{
    if (p->pending && p->pending->nominated_node.len)
        list_update(&c->nominated_on, p->pending->nominated_node, p, delta);
    cache_demand_account(c, p, delta);
    if (!p->counted)
        return;
    usage_add(c, p->text, delta * p->gpus);
    if (delta > 0)
        cache_agent_mark(c, p);
    cache_index_add(c, pod_rec_node(p), p->agent_listed ? 0 : p->mask, delta);
    list_update(&c->on_node, pod_rec_node(p), p, delta);
}

/* Removes a pod and its GPUs from the books; the caller holds the lock. */
static void pod_forget(struct cache *c, struct str uid)
{
    struct pod_rec *p = strmap_remove(&c->pods, uid);

    if (p) {
        pod_account(c, p, -1);
        cache_demand_detach(c, p);
    }
    pod_rec_free(p);
    if (c->resv.count)
        cache_drop_pod_reservations(c, uid);
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
    give_back_memory();
}

static bool is_terminal(struct str phase)
{
    return str_eq_cstr(phase, "Succeeded") || str_eq_cstr(phase, "Failed");
}

void cache_pending_strings(struct pod_info *p, struct str *out[PENDING_STRINGS])
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
                                           &p->priority_class,
                                           &p->nominated_node};

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

    cache_pending_strings(&copy, src);
    for (size_t i = 0; i < PENDING_STRINGS; i++)
        len += src[i]->len + 1;
    out = xcalloc(1, len);
    s = (char *)(out + 1);
    out->gpus = p->gpus;
    out->deleting = p->deleting;
    out->priority = p->priority;
    out->preempt_never = p->preempt_never;
    cache_pending_strings(out, dst);
    for (size_t i = 0; i < PENDING_STRINGS; i++)
        *dst[i] = cache_put_string(&s, *src[i]);
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

static void put_bytes(char **p, struct str s)
{
    if (s.len)
        memcpy(*p, s.ptr, s.len);
    *p += s.len;
}

/* The caller holds the lock (labels depend on the budgets). */
static struct pod_rec *pod_rec_new(struct cache *c, const struct pod_info *p)
{
    bool bound = p->node_name.len > 0;
    bool fits = p->ns.len <= UINT8_MAX && p->name.len <= UINT8_MAX;
    bool keep = bound && fits && p->labels.len <= CACHE_LABELS_MAX && cache_ns_has_pdb(c, p->ns);
    struct str labels = keep ? p->labels : STR_NULL;
    size_t len = p->node_name.len + 1;
    struct pod_rec *r;
    char *t;

    if (bound && fits)
        len += p->ns.len + p->name.len + labels.len;
    r = xcalloc(1, sizeof(*r) + len);
    t = r->text;
    (void)cache_put_string(&t, p->node_name);
    if (bound && fits) {
        put_bytes(&t, p->ns);
        put_bytes(&t, p->name);
        put_bytes(&t, labels);
        r->ns_len = (uint8_t)p->ns.len;
        r->name_len = (uint8_t)p->name.len;
        r->labels_len = (uint16_t)labels.len;
    }
    r->labels_unknown = bound && !keep && p->labels.len > 0;
    r->gpus = p->gpus;
    r->mask = pod_mask(p);
    r->priority = p->priority;
    r->deleting = p->deleting;
    r->counted = bound && !is_terminal(p->phase);
    r->seen = true;
    if (!bound && !p->deleting && !is_terminal(p->phase))
        r->pending = pod_info_clone(p);
    cache_demand_attach(c, r, p);
    return r;
}

void cache_pod_upsert(struct cache *c, const struct pod_info *p)
{
    struct strmap_entry *e;
    struct pod_rec *r;

    if (p->uid.len == 0 || p->node_name.len > K8S_NAME_MAX)
        return;
    pthread_mutex_lock(&c->lock);
    r = p->gpus > 0 ? pod_rec_new(c, p) : NULL;
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
        const struct pod_rec *old = e->value;

        /* A disagreement is reported once per pod, not once per update of it. */
        r->agent_drift = old->agent_drift && str_eq(pod_rec_node(old), pod_rec_node(r));
        pod_account(c, e->value, -1);
        cache_demand_detach(c, e->value);
        pod_rec_free(e->value);
    }
    e->value = r;
    r->uid = e->key;
    pod_account(c, r, 1);
    if (r->counted) {
        char key[400];
        /* The watch shows it bound: that reservation becomes ordinary accounting. One for
         * another node stays until its own bind gives it back (it will get a 409). */
        cache_drop_reservation(c, cache_resv_key(key, sizeof(key), p->uid, p->node_name));
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
    out->snapshots_whole = c->snapshots_whole;
    out->snapshots_patched = c->snapshots_patched;
    out->topologies = c->topos.count;
    out->topology_bytes = 0;
    strmap_each(&c->topos, add_topo_bytes, &out->topology_bytes);
    pthread_mutex_unlock(&c->lock);
    topo_shapes(&out->topology_shapes, &shape_bytes);
    out->topology_bytes += shape_bytes;
}
