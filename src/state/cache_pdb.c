/* cache_pdb.c -- the PodDisruptionBudgets preemption counts (see cache.h). A budget is kept
 * as its decoded facts: namespace, name, raw selector, raw disruptedPods and the number of
 * disruptions allowed. Budgets are few, so they live in one map. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx/alloc.h"
#include "gx/arena.h"
#include "gx/jscan.h"

#include "cache_internal.h"

/* Budgets larger than this (a selector or disruptedPods list that big) are not kept whole:
 * their disruptedPods list is dropped, which can only overcount violations. */
#define PDB_TEXT_MAX (64u << 10)
/* Scratch for one budget's decoded strings. */
#define PDB_ARENA_BYTES (1u << 20)

void cache_pdbs_init(struct cache *c)
{
    strmap_init(&c->pdbs);
    strmap_init(&c->pdb_ns);
}

void cache_pdbs_free(struct cache *c)
{
    strmap_destroy(&c->pdbs, free);
    strmap_destroy(&c->pdb_ns, NULL);
}

bool cache_ns_has_pdb(struct cache *c, struct str ns)
{
    return c->pdb_ns.count && strmap_find(&c->pdb_ns, ns) != NULL;
}

/* One budget more (delta 1) or fewer (-1) in its namespace. A namespace's first budget after
 * the pods were listed means their labels were not kept there: list them again. */
static void ns_count(struct cache *c, struct str ns, int delta)
{
    struct strmap_entry *e = strmap_upsert(&c->pdb_ns, ns, NULL);

    e->num += delta;
    if (e->num == 1 && delta > 0 && c->pods_listed)
        c->relist_pods = true;
    if (e->num <= 0)
        strmap_remove(&c->pdb_ns, ns);
}

/* Drops the budget at key; the caller holds the lock. */
static void pdb_drop(struct cache *c, struct str key)
{
    struct strmap_entry *e = strmap_find(&c->pdbs, key);

    if (!e)
        return;
    ns_count(c, ((struct pdb_rec *)e->value)->info.ns, -1);
    free(strmap_remove(&c->pdbs, key));
}

bool cache_pods_relist_wanted(struct cache *c)
{
    bool want;

    pthread_mutex_lock(&c->lock);
    want = c->relist_pods;
    c->relist_pods = false;
    pthread_mutex_unlock(&c->lock);
    return want;
}

static struct pdb_rec *pdb_rec_new(const struct pdb_info *p)
{
    struct str disrupted = p->disrupted.len <= PDB_TEXT_MAX ? p->disrupted : STR_NULL;
    size_t len = p->ns.len + p->name.len + p->selector.len + disrupted.len + 4;
    struct pdb_rec *r = xcalloc(1, sizeof(*r) + len);
    char *t = r->text;

    r->info.ns = cache_put_string(&t, p->ns);
    r->info.name = cache_put_string(&t, p->name);
    r->info.selector = cache_put_string(&t, p->selector);
    r->info.disrupted = cache_put_string(&t, disrupted);
    r->info.allowed = p->allowed;
    r->seen = true;
    return r;
}

static struct str pdb_key(char *buf, size_t cap, const struct pdb_info *p)
{
    int n =
        snprintf(buf, cap, "%.*s/%.*s", (int)p->ns.len, p->ns.ptr, (int)p->name.len, p->name.ptr);

    return (struct str){buf, n < 0 ? 0 : ((size_t)n < cap ? (size_t)n : cap - 1)};
}

static void pdb_mark_unseen(struct strmap_entry *e, void *ctx)
{
    (void)ctx;
    ((struct pdb_rec *)e->value)->seen = false;
}

void cache_pdbs_relist_begin(struct cache *c)
{
    pthread_mutex_lock(&c->lock);
    strmap_each(&c->pdbs, pdb_mark_unseen, NULL);
    pthread_mutex_unlock(&c->lock);
}

struct pdb_sweep {
    char keys[64][2 * K8S_NAME_MAX + 2];
    size_t n;
};

static void pdb_find_unseen(struct strmap_entry *e, void *ctx)
{
    struct pdb_sweep *sw = ctx;

    if (!((struct pdb_rec *)e->value)->seen && sw->n < 64 && e->key_len < sizeof(sw->keys[0]))
        snprintf(sw->keys[sw->n++], sizeof(sw->keys[0]), "%s", e->key);
}

void cache_pdbs_relist_end(struct cache *c)
{
    struct pdb_sweep *sw = xmalloc(sizeof(*sw));

    pthread_mutex_lock(&c->lock);
    do {
        sw->n = 0;
        strmap_each(&c->pdbs, pdb_find_unseen, sw);
        for (size_t i = 0; i < sw->n; i++)
            pdb_drop(c, str_from_cstr(sw->keys[i]));
    } while (sw->n == 64);
    c->pdbs_listed = true;
    pthread_mutex_unlock(&c->lock);
    free(sw);
}

static void pdb_apply(struct cache *c, bool deleted, const struct pdb_info *p)
{
    char buf[2 * K8S_NAME_MAX + 2];
    struct str key = pdb_key(buf, sizeof(buf), p);
    struct pdb_rec *r = deleted ? NULL : pdb_rec_new(p);
    struct strmap_entry *e;

    pthread_mutex_lock(&c->lock);
    c->pdb_events++;
    if (deleted) {
        pdb_drop(c, key);
    } else {
        bool created = false;
        e = strmap_upsert(&c->pdbs, key, &created);
        free(e->value);
        e->value = r;
        if (created)
            ns_count(c, r->info.ns, 1);
    }
    pthread_mutex_unlock(&c->lock);
}

enum err cache_pdb_apply_json(struct cache *c, bool deleted, const char *json, size_t len,
                              struct errbuf *eb)
{
    struct arena arena;
    struct pdb_info p;
    struct jscan js;
    bool ok;

    arena_init(&arena, PDB_ARENA_BYTES);
    jscan_init(&js, json, len, 64);
    ok = obj_pdb_decode(&js, &arena, &p) && jscan_finish(&js);
    if (!ok)
        errbuf_set(eb, "PodDisruptionBudget: %s",
                   jscan_error(&js, NULL) ? jscan_error(&js, NULL) : "unreadable object");
    else if (p.ns.len == 0 || p.name.len == 0 || p.ns.len > K8S_NAME_MAX ||
             p.name.len > K8S_NAME_MAX) {
        errbuf_set(eb, "PodDisruptionBudget without a usable namespace and name");
        ok = false;
    } else {
        pdb_apply(c, deleted, &p);
    }
    arena_destroy(&arena);
    return ok ? ERR_OK : ERR_PARSE;
}
