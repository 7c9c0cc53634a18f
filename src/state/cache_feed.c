/* cache_feed.c -- API server objects into the cache (cache_apply_json, see cache.h). */
#include "gx/arena.h"
#include "gx/cache.h"
#include "gx/jscan.h"
#include "gx/objects.h"

/* Scratch for one object's decoded strings; a Node or Pod never comes near it. */
#define FEED_ARENA_BYTES (32u << 20)

static void apply(struct cache *c, bool pod, bool deleted, const struct pod_info *p,
                  const struct node_info *n)
{
    if (pod && deleted)
        cache_pod_delete(c, p);
    else if (pod)
        cache_pod_upsert(c, p);
    else if (deleted)
        cache_node_delete(c, n->name);
    else
        cache_node_upsert(c, n);
}

enum err cache_apply_json(struct cache *c, bool pod, bool deleted, const char *json, size_t len,
                          struct errbuf *eb)
{
    struct arena arena;
    struct jscan js;
    struct node_info node;
    struct pod_info p;
    bool ok;

    arena_init(&arena, FEED_ARENA_BYTES);
    jscan_init(&js, json, len, 128);
    ok = pod ? obj_pod_decode(&js, &arena, &p) : obj_node_decode(&js, &arena, &node);
    if (ok)
        apply(c, pod, deleted, &p, &node);
    else
        errbuf_set(eb, "%s", jscan_error(&js, NULL) ? jscan_error(&js, NULL) : "unreadable object");
    arena_destroy(&arena);
    return ok ? ERR_OK : ERR_PARSE;
}
