/* cache_demand.c -- what the demand for GPU models is worked out from (see cache.h).
 *
 * Kept as the cache changes, so that publishing it costs the number of models and groups, not
 * of nodes and pods: each model's GPUs follow node upserts and deletes; each pod record that is
 * pending or counted belongs to a group of pods with the same facts (a pending pod's group also
 * keys on its labels), and the group's GPUs follow the records' accounting. The published
 * struct cache_demand is immutable and refcounted; the first reader after a change builds a new
 * one, and keeps the old one (and its generation) when nothing it holds has changed. Every
 * function here expects the cache lock held, except cache_demand_release() and
 * cache_demand_counts_pending(). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx/alloc.h"
#include "gx/buf.h"
#include "gx/compiler.h"

#include "cache_internal.h"

struct demand_model {
    int64_t gpus;
    size_t nodes;
    struct node_info rep; /* strings in text */
    char text[];
};

struct demand_group {
    int64_t gpus;
    size_t refs;                /* pod records in the group */
    struct strmap_entry *entry; /* its entry in c->demand_groups */
    bool pending;
    struct pod_info pod; /* the facts; strings in text */
    char text[];
};

struct demand_impl {
    struct cache_demand pub;
    atomic_int refs;
    struct cache_demand_model *models;
    struct cache_demand_group *groups;
    uint64_t *uids;
    char *strings;
};

void cache_demand_init(struct cache *c)
{
    strmap_init(&c->demand_models);
    strmap_init(&c->demand_groups);
    strmap_init(&c->demand_pending);
    c->demand_dirty = true;
}

void cache_demand_release(const struct cache_demand *d)
{
    struct demand_impl *s = (struct demand_impl *)(uintptr_t)d;

    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    free(s->models);
    free(s->groups);
    free(s->uids);
    free(s->strings);
    free(s);
}

void cache_demand_free(struct cache *c)
{
    if (c->demand_current)
        cache_demand_release(&c->demand_current->pub);
    strmap_destroy(&c->demand_models, free);
    strmap_destroy(&c->demand_groups, free);
    strmap_destroy(&c->demand_pending, NULL);
}

/* ---- models ---- */

static struct demand_model *model_new(const struct node_info *n)
{
    struct demand_model *m = xcalloc(1, sizeof(*m) + n->product.len + n->family.len + 2);
    char *p = m->text;

    m->rep.product = cache_put_string(&p, n->product);
    m->rep.model = (struct str){m->rep.product.ptr, n->model.len};
    m->rep.family = cache_put_string(&p, n->family);
    m->rep.gpu_memory_mib = n->gpu_memory_mib;
    m->rep.ready = true;
    return m;
}

void cache_demand_node(struct cache *c, const struct node_info *n, int delta)
{
    struct strmap_entry *e;
    struct demand_model *m;
    bool created;

    if (n->gpu_allocatable <= 0 || n->model.len == 0)
        return;
    e = delta > 0 ? strmap_upsert(&c->demand_models, n->model, &created)
                  : strmap_find(&c->demand_models, n->model);
    if (!e)
        return;
    if (delta > 0 && created)
        e->value = model_new(n);
    m = e->value;
    m->gpus += delta * n->gpu_allocatable;
    m->nodes = delta > 0 ? m->nodes + 1 : m->nodes - 1;
    if (m->nodes == 0)
        free(strmap_remove(&c->demand_models, n->model));
    c->demand_dirty = true;
}

/* ---- groups ---- */

#define GROUP_FIELDS 7

/* The facts of a pod that key its group and that the group keeps, as pointers into p. */
static void group_fields(struct pod_info *p, struct str *out[GROUP_FIELDS])
{
    struct str *fields[GROUP_FIELDS] = {&p->ns,
                                        &p->priority_class,
                                        &p->ann_gpu_model,
                                        &p->ann_use_gputype,
                                        &p->ann_nouse_gputype,
                                        &p->labels,
                                        &p->rule_record};

    memcpy(out, fields, sizeof(fields));
}

/* What of p decides its demand: labels only while it is pending (the cache keeps none of a
 * bound pod's), the rule that placed it only once it is bound. */
static struct pod_info group_facts(const struct pod_info *p, bool pending)
{
    return (struct pod_info){.ns = p->ns,
                             .priority_class = p->priority_class,
                             .ann_gpu_model = p->ann_gpu_model,
                             .ann_use_gputype = p->ann_use_gputype,
                             .ann_nouse_gputype = p->ann_nouse_gputype,
                             .labels = pending ? p->labels : STR_NULL,
                             .rule_record = pending ? STR_NULL : p->rule_record};
}

static size_t facts_bytes(struct pod_info *facts)
{
    struct str *f[GROUP_FIELDS];
    size_t len = 0;

    group_fields(facts, f);
    for (size_t i = 0; i < GROUP_FIELDS; i++)
        len += f[i]->len + 1;
    return len;
}

/* Copies the strings of src into dst's fields, from *t on. */
static void copy_facts(struct pod_info *dst, struct pod_info *src, char **t)
{
    struct str *from[GROUP_FIELDS], *to[GROUP_FIELDS];

    group_fields(src, from);
    group_fields(dst, to);
    for (size_t i = 0; i < GROUP_FIELDS; i++)
        *to[i] = cache_put_string(t, *from[i]);
}

static struct demand_group *group_new(struct pod_info *facts, bool pending)
{
    struct demand_group *g = xcalloc(1, sizeof(*g) + facts_bytes(facts));
    char *t = g->text;

    g->pending = pending;
    copy_facts(&g->pod, facts, &t);
    return g;
}

void cache_demand_attach(struct cache *c, struct pod_rec *r, const struct pod_info *p)
{
    bool pending = r->pending != NULL, ok = true, created;
    struct pod_info facts = group_facts(p, pending);
    struct str *fields[GROUP_FIELDS];
    struct strmap_entry *e;
    struct buf key;

    if (!pending && !r->counted)
        return;
    group_fields(&facts, fields);
    buf_init(&key, SIZE_MAX / 2);
    ok = buf_append(&key, pending ? "p" : "b", 1) == ERR_OK;
    /* Each field as its length, ':' and its bytes, so that no value can pass for two. */
    for (size_t i = 0; i < GROUP_FIELDS && ok; i++)
        ok = buf_printf(&key, "%zu:", fields[i]->len) == ERR_OK &&
             buf_append(&key, fields[i]->ptr, fields[i]->len) == ERR_OK;
    if (ok) {
        e = strmap_upsert(&c->demand_groups, (struct str){key.ptr, key.len}, &created);
        if (created) {
            e->value = group_new(&facts, pending);
            ((struct demand_group *)e->value)->entry = e;
        }
        r->group = e->value;
        r->group->refs++;
    }
    buf_destroy(&key);
}

void cache_demand_account(struct cache *c, struct pod_rec *r, int delta)
{
    struct demand_group *g = r->group;

    if (!g)
        return;
    g->gpus += delta * r->gpus;
    if (g->pending && r->pending) {
        if (delta > 0)
            strmap_upsert(&c->demand_pending, r->pending->uid, NULL)->num = r->gpus;
        else
            strmap_remove(&c->demand_pending, r->pending->uid);
    }
    c->demand_dirty = true;
}

void cache_demand_detach(struct cache *c, struct pod_rec *r)
{
    struct demand_group *g = r->group;

    if (!g)
        return;
    r->group = NULL;
    if (--g->refs == 0)
        free(strmap_remove(&c->demand_groups, (struct str){g->entry->key, g->entry->key_len}));
}

struct str cache_demand_models(const struct pod_rec *r)
{
    return r->group ? r->group->pod.ann_gpu_model : STR_NULL;
}

/* ---- publishing ---- */

struct build {
    struct demand_impl *s;
    char *p; /* the next free byte of s->strings */
    size_t bytes;
};

static void count_model(struct strmap_entry *e, void *ctx)
{
    struct build *b = ctx;
    struct demand_model *m = e->value;

    b->bytes += m->rep.product.len + m->rep.family.len + 2;
}

static void count_group(struct strmap_entry *e, void *ctx)
{
    struct build *b = ctx;
    struct demand_group *g = e->value;

    if (g->gpus <= 0)
        return;
    b->bytes += facts_bytes(&g->pod);
    b->s->pub.group_count++;
}

static void put_model(struct strmap_entry *e, void *ctx)
{
    struct build *b = ctx;
    struct demand_model *m = e->value;
    struct cache_demand_model *out = &b->s->models[b->s->pub.model_count++];

    out->rep = m->rep;
    out->rep.product = cache_put_string(&b->p, m->rep.product);
    out->rep.model = (struct str){out->rep.product.ptr, m->rep.model.len};
    out->rep.family = cache_put_string(&b->p, m->rep.family);
    out->gpus = m->gpus;
}

static void put_group(struct strmap_entry *e, void *ctx)
{
    struct build *b = ctx;
    struct demand_group *g = e->value;
    struct cache_demand_group *out;

    if (g->gpus <= 0)
        return;
    out = &b->s->groups[b->s->pub.group_count++];
    out->gpus = g->gpus;
    out->pending = g->pending;
    copy_facts(&out->pod, &g->pod, &b->p);
    out->pod.gpus = g->gpus;
}

static void put_uid(struct strmap_entry *e, void *ctx)
{
    struct build *b = ctx;

    b->s->uids[b->s->pub.pending_count++] = strmap_hash((struct str){e->key, e->key_len});
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

static struct demand_impl *build(struct cache *c)
{
    struct demand_impl *s = xcalloc(1, sizeof(*s));
    struct build b = {.s = s};

    atomic_init(&s->refs, 1);
    strmap_each(&c->demand_models, count_model, &b);
    strmap_each(&c->demand_groups, count_group, &b);
    s->models = xcalloc(c->demand_models.count + 1, sizeof(*s->models));
    s->groups = xcalloc(s->pub.group_count + 1, sizeof(*s->groups));
    s->uids = xcalloc(c->demand_pending.count + 1, sizeof(*s->uids));
    s->strings = xcalloc(b.bytes + 1, 1);
    b.p = s->strings;
    s->pub.group_count = 0;
    strmap_each(&c->demand_models, put_model, &b);
    strmap_each(&c->demand_groups, put_group, &b);
    strmap_each(&c->demand_pending, put_uid, &b);
    qsort(s->uids, s->pub.pending_count, sizeof(*s->uids), cmp_u64);
    s->pub.models = s->models;
    s->pub.groups = s->groups;
    s->pub.pending_uids = s->uids;
    return s;
}

static bool same_pod(const struct pod_info *a, const struct pod_info *b)
{
    struct pod_info x = *a, y = *b;
    struct str *fa[GROUP_FIELDS], *fb[GROUP_FIELDS];

    group_fields(&x, fa);
    group_fields(&y, fb);
    for (size_t i = 0; i < GROUP_FIELDS; i++)
        if (!str_eq(*fa[i], *fb[i]))
            return false;
    return true;
}

/* Does a hold exactly what b does, in the same order? (A status update of a running pod takes
 * its GPUs off its group and puts them back: nothing to publish.) */
static bool same_demand(const struct cache_demand *a, const struct cache_demand *b)
{
    if (a->model_count != b->model_count || a->group_count != b->group_count ||
        a->pending_count != b->pending_count ||
        memcmp(a->pending_uids, b->pending_uids, a->pending_count * sizeof(uint64_t)) != 0)
        return false;
    for (size_t i = 0; i < a->model_count; i++) {
        const struct node_info *x = &a->models[i].rep, *y = &b->models[i].rep;
        if (a->models[i].gpus != b->models[i].gpus || !str_eq(x->product, y->product) ||
            x->model.len != y->model.len || !str_eq(x->family, y->family) ||
            x->gpu_memory_mib != y->gpu_memory_mib)
            return false;
    }
    for (size_t i = 0; i < a->group_count; i++) {
        if (a->groups[i].gpus != b->groups[i].gpus ||
            a->groups[i].pending != b->groups[i].pending ||
            !same_pod(&a->groups[i].pod, &b->groups[i].pod))
            return false;
    }
    return true;
}

const struct cache_demand *cache_demand_acquire(struct cache *c)
{
    if (c->demand_dirty || !c->demand_current) {
        struct demand_impl *s = build(c);
        if (c->demand_current && same_demand(&s->pub, &c->demand_current->pub)) {
            cache_demand_release(&s->pub);
        } else {
            s->pub.generation = ++c->demand_generation;
            if (c->demand_current)
                cache_demand_release(&c->demand_current->pub);
            c->demand_current = s;
        }
        c->demand_dirty = false;
    }
    atomic_fetch_add(&c->demand_current->refs, 1);
    return &c->demand_current->pub;
}

bool cache_demand_counts_pending(const struct cache_demand *d, struct str uid)
{
    uint64_t h = strmap_hash(uid);
    size_t lo = 0, hi = d->pending_count;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->pending_uids[mid] < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < d->pending_count && d->pending_uids[lo] == h;
}
