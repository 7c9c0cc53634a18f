/* publish.c -- the node agent's side of the API server: read the Node, patch what changed
 * (see agent.h). One merge patch per change, with only the keys that differ; the Node as the
 * API server holds it is the reference, read at start and after every failure, so a restart
 * or an outage loses nothing and re-sends nothing that is already there. */
#include <stdlib.h>
#include <string.h>

#include "gx/agent.h"
#include "gx/alloc.h"
#include "gx/arena.h"
#include "gx/buf.h"
#include "gx/jscan.h"
#include "gx/k8s.h"
#include "gx/kube.h"

struct agent_publisher {
    struct kube_client *kc;
    struct kube_session *s;
    char node[K8S_NAME_MAX + 1];
    char path[K8S_NAME_MAX + 32];
    long timeout_ms;
    struct agent_state have;
    bool read_once; /* have reflects the Node as last read or patched */
    /* GPU Feature Discovery labels the Node: its labels are never written. Unknown until the
     * Node was read once (and then assumed, so nothing is overwritten meanwhile); once seen, it
     * stays so. */
    bool gfd_known, gfd;
    char *wrote_product; /* the product label we last patched, to notice another writer */
};

enum err agent_publisher_new(const struct kubeconfig_creds *creds, const char *node_name,
                             long timeout_ms, struct agent_publisher **out, struct errbuf *eb)
{
    struct agent_publisher *p;
    enum err e;

    if (!kube_name_is_valid(node_name)) {
        errbuf_set(eb, "node name \"%s\" is not a valid Kubernetes name", node_name);
        return ERR_INVALID;
    }
    p = xcalloc(1, sizeof(*p));
    e = kube_client_new(creds, &p->kc, eb);
    if (e != ERR_OK) {
        free(p);
        return e;
    }
    p->s = kube_session_new(p->kc);
    snprintf(p->node, sizeof(p->node), "%s", node_name);
    snprintf(p->path, sizeof(p->path), "/api/v1/nodes/%s", node_name);
    p->timeout_ms = timeout_ms;
    *out = p;
    return ERR_OK;
}

void agent_publisher_free(struct agent_publisher *p)
{
    if (!p)
        return;
    agent_state_clear(&p->have);
    free(p->wrote_product);
    kube_session_free(p->s);
    kube_client_free(p->kc);
    free(p);
}

const struct agent_state *agent_publisher_have(const struct agent_publisher *p)
{
    return &p->have;
}

bool agent_publisher_node_has_gfd(const struct agent_publisher *p)
{
    return !p->gfd_known || p->gfd;
}

/* Someone else labels the Node: a product label that the agent did not write (no
 * "gfdLabels":true in its own annotation), or another value than the one it last wrote. */
static void notice_gfd(struct agent_publisher *p)
{
    const char *meta = p->have.v[AGENT_KEY_AGENT];
    const char *product = p->have.v[AGENT_KEY_LABEL_PRODUCT];

    p->gfd_known = true;
    if (product && (!(meta && strstr(meta, "\"gfdLabels\":true")) ||
                    (p->wrote_product && strcmp(product, p->wrote_product) != 0)))
        p->gfd = true;
}

/* ---- reading the Node ---- */

struct read_ctx {
    struct agent_state *st;
    struct arena *arena;
    bool labels; /* walking metadata.labels, else annotations */
};

/* Members of labels or annotations: keep ours (as strings), skip the rest. */
static bool read_members(struct jscan *js, struct read_ctx *c)
{
    struct str key;
    int r;

    if (jscan_peek(js) == JSON_NULL)
        return jscan_skip(js, NULL);
    if (!jscan_enter_object(js))
        return false;
    while ((r = jscan_next_member(js, &key)) == 1) {
        int found = -1;
        struct str v;

        for (unsigned k = 0; k < AGENT_KEY_COUNT && found < 0; k++) {
            if (agent_key_is_label(k) == c->labels && jstr_eq(key, agent_key_name(k)))
                found = (int)k;
        }
        if (found < 0 || jscan_peek(js) != JSON_STRING) {
            if (!jscan_skip(js, NULL))
                return false;
            continue;
        }
        if (!jscan_string_decoded(js, c->arena, &v))
            return false;
        free(c->st->v[found]);
        c->st->v[found] = xstrndup(v.ptr, v.len);
    }
    return r == 0;
}

static bool meta_member(struct jscan *js, int idx, void *ctx)
{
    struct read_ctx *c = ctx;

    c->labels = idx == 0;
    return read_members(js, c);
}

static bool node_member(struct jscan *js, int idx, void *ctx)
{
    static const char *const names[] = {"labels", "annotations"};

    (void)idx;
    return jscan_walk_object(js, names, 2, JSCAN_WALK_OR_NULL, meta_member, ctx);
}

/* Replaces have with what the Node object in body carries of ours. */
static enum err read_node(struct agent_publisher *p, const char *body, size_t len,
                          struct errbuf *eb)
{
    static const char *const names[] = {"metadata"};
    struct agent_state st = {{0}};
    struct arena arena;
    struct read_ctx c = {&st, &arena, false};
    struct jscan js;
    bool ok;

    arena_init(&arena, len + 1024);
    jscan_init(&js, body, len, 64);
    ok = jscan_walk_object(&js, names, 1, 0, node_member, &c) && jscan_finish(&js);
    arena_destroy(&arena);
    if (!ok) {
        errbuf_set(eb, "the API server's Node is not readable: %s", jscan_error(&js, NULL));
        agent_state_clear(&st);
        return ERR_PARSE;
    }
    agent_state_clear(&p->have);
    p->have = st;
    p->read_once = true;
    notice_gfd(p);
    return ERR_OK;
}

static enum err call(struct agent_publisher *p, const char *method, const char *ctype,
                     const char *body, size_t len, struct errbuf *eb)
{
    struct kube_response r = {0};
    enum err e;

    e = kube_request(p->s, method, p->path, ctype, body, len, p->timeout_ms, &r, eb);
    if (e != ERR_OK)
        return e;
    if (r.status < 200 || r.status > 299) {
        char msg[256];

        kube_status_message(r.body, r.len, msg, sizeof(msg));
        errbuf_set(eb, "%s %s: HTTP %ld%s%s", method, p->path, r.status, msg[0] ? ": " : "", msg);
        kube_response_destroy(&r);
        p->read_once = false;
        return ERR_UPSTREAM;
    }
    e = read_node(p, r.body, r.len, eb);
    kube_response_destroy(&r);
    return e;
}

enum err agent_publisher_refresh(struct agent_publisher *p, struct errbuf *eb)
{
    return call(p, "GET", NULL, NULL, 0, eb);
}

/* The patch from have to want with want's changed-at taken as have's. */
static enum err facts_patch(const struct agent_state *want, const struct agent_state *have,
                            struct buf *out)
{
    struct agent_state probe = {{0}};
    const char *at = have->v[AGENT_KEY_CHANGED_AT];
    enum err e;

    agent_state_copy(&probe, want);
    free(probe.v[AGENT_KEY_CHANGED_AT]);
    probe.v[AGENT_KEY_CHANGED_AT] = at ? xstrdup(at) : NULL;
    e = agent_patch(&probe, have, out);
    agent_state_clear(&probe);
    return e;
}

enum err agent_publisher_sync(struct agent_publisher *p, const struct agent_state *want,
                              bool *patched, struct errbuf *eb)
{
    struct agent_state send = {{0}};
    struct buf patch;
    enum err e;

    *patched = false;
    if (!p->read_once) {
        e = agent_publisher_refresh(p, eb);
        if (e != ERR_OK)
            return e;
    }
    /* want may have been built before the Node could be read: GFD's labels, when the Node has
     * them, are never overwritten. */
    agent_state_copy(&send, want);
    for (unsigned k = 0; k < AGENT_KEY_COUNT && agent_publisher_node_has_gfd(p); k++) {
        if (agent_key_is_label(k)) {
            free(send.v[k]);
            send.v[k] = NULL;
        }
    }
    buf_init(&patch, 4u << 20);
    /* changed-at moves only with the facts: nothing else to change, nothing to send. */
    e = facts_patch(&send, &p->have, &patch);
    if (e == ERR_OK && patch.len > 0)
        e = agent_patch(&send, &p->have, &patch);
    if (e == ERR_OK && patch.len > 0) {
        /* What we write now is ours when the reply is read (notice_gfd); a failed patch wrote
         * nothing. */
        char *before = p->wrote_product;

        *patched = true;
        if (send.v[AGENT_KEY_LABEL_PRODUCT])
            p->wrote_product = xstrdup(send.v[AGENT_KEY_LABEL_PRODUCT]);
        e = call(p, "PATCH", "application/merge-patch+json", patch.ptr, patch.len, eb);
        if (e != ERR_OK && p->wrote_product != before) {
            free(p->wrote_product);
            p->wrote_product = before;
        } else if (p->wrote_product != before) {
            free(before);
        }
        if (e != ERR_OK)
            p->read_once = false;
    }
    buf_destroy(&patch);
    agent_state_clear(&send);
    return e;
}
