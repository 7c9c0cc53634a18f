/* fuzz_codec.c -- libFuzzer target for the extender request decoders. Built with clang
 * (GX_FUZZ=ON) it links libFuzzer; otherwise replay_main.c replays the corpus under ctest. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gx/codec.h"
#include "gx/jscan.h"
#include "gx/objects.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A decoded string is a view of the input, or a decoded copy that is never longer. */
static void check_view(struct str s, const char *body, size_t size)
{
    bool inside = s.ptr >= body && s.ptr <= body + size;

    if (s.len > size || (s.len && !s.ptr) || (inside && s.len > (size_t)(body + size - s.ptr)))
        abort();
}

/* Every node and victim is accounted for by input bytes, every string is a view of the input
 * or a shorter decoded copy, UIDs are never empty, and a full Pod comes with each victim
 * exactly in NodeNameToVictims mode. */
static void check_preempt(const struct ext_preempt_args *a, const char *body, size_t size)
{
    size_t victims = 0;

    if (a->node_count > size || (a->node_count && !a->nodes))
        abort();
    for (size_t i = 0; i < a->node_count; i++) {
        const struct ext_preempt_node *n = &a->nodes[i];
        check_view(n->name, body, size);
        if (n->pdb_violations < 0 || (n->victim_count && !n->victims))
            abort();
        victims += n->victim_count;
        for (size_t j = 0; j < n->victim_count; j++) {
            const struct ext_victim *v = &n->victims[j];
            check_view(v->uid, body, size);
            if (v->uid.len == 0 || a->meta != (v->pod == NULL))
                abort();
            if (v->pod &&
                (!str_eq(v->pod->uid, v->uid) || v->pod->gpus < 0 || v->pod->gpus > OBJ_MAX_GPUS))
                abort();
        }
    }
    if (victims > size || a->pod.gpus < 0 || a->pod.gpus > OBJ_MAX_GPUS)
        abort();
}

/* Our reply to a decoded request, read back as a request (a reply is a meta-mode request
 * without its Pod), names the same nodes and UIDs in the same order. */
static void check_preempt_reply(const struct ext_preempt_args *a)
{
    static const char head[] = "{\"Pod\":{},";
    struct codec_preempt_result res = {a->nodes, a->node_count};
    struct ext_preempt_args back;
    struct exchange ex;
    size_t len = sizeof(head) - 1;
    char *text;

    memset(&ex, 0, sizeof(ex));
    arena_init(&ex.arena, 256u << 20);
    if (codec_reply_preempt(&ex, &res) != ERR_OK || ex.iov_count != 1)
        abort();
    text = malloc(len + ex.iov[0].len);
    if (!text)
        abort();
    memcpy(text, head, len);
    memcpy(text + len, (const char *)ex.iov[0].base + 1, ex.iov[0].len - 1);
    len += ex.iov[0].len - 1;
    if (codec_decode_preempt(&ex.arena, text, len, &back, NULL) != ERR_OK || !back.meta ||
        back.node_count != a->node_count)
        abort();
    for (size_t i = 0; i < a->node_count; i++) {
        const struct ext_preempt_node *x = &a->nodes[i], *y = &back.nodes[i];
        if (!str_eq(x->name, y->name) || x->pdb_violations != y->pdb_violations ||
            x->victim_count != y->victim_count)
            abort();
        for (size_t j = 0; j < x->victim_count; j++) {
            if (!str_eq(x->victims[j].uid, y->victims[j].uid))
                abort();
        }
    }
    free(text);
    arena_destroy(&ex.arena);
}

/* The budget decoder and the selector matcher (src/state/pdb.c), on any bytes: the input as a
 * PodDisruptionBudget, and as both a selector and a labels object. */
static void check_pdb(const char *body, size_t size)
{
    struct str all = {body, size};
    struct pdb_info pdb;
    struct arena arena;
    struct jscan js;

    arena_init(&arena, 1 << 20);
    jscan_init(&js, body, size, 64);
    if (obj_pdb_decode(&js, &arena, &pdb)) {
        check_view(pdb.ns, body, size);
        check_view(pdb.name, body, size);
        check_view(pdb.selector, body, size);
        check_view(pdb.disrupted, body, size);
        (void)obj_pdb_covers(&pdb, pdb.ns, pdb.name, pdb.selector);
    }
    (void)obj_selector_matches(all, all);
    arena_destroy(&arena);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct arena arena;
    struct ext_args args;
    struct ext_bind_args bind;
    struct ext_preempt_args preempt;
    struct errbuf eb = ERRBUF_INIT;
    const char *body = (const char *)data;

    arena_init(&arena, 64u << 20);
    if (codec_decode_args(&arena, body, size, &args, &eb) == ERR_OK) {
        /* Invariants: every node's bytes lie inside the input, and counts are bounded by it. */
        if (args.node_count > size || args.name_count > size)
            abort();
        for (size_t i = 0; i < args.node_count; i++) {
            const struct node_info *n = &args.nodes[i];
            if (n->raw.ptr < body || n->raw.ptr + n->raw.len > body + size || n->name.len == 0)
                abort();
            if (n->model.len > n->product.len || n->gpu_allocatable < 0)
                abort();
        }
        if (args.pod.gpus < 0 || args.pod.gpus > OBJ_MAX_GPUS)
            abort();
    }
    arena_destroy(&arena);
    arena_init(&arena, 1 << 20);
    if (codec_decode_bind(&arena, body, size, &bind, &eb) == ERR_OK && bind.node.len == 0)
        abort();
    arena_destroy(&arena);
    arena_init(&arena, 64u << 20);
    if (codec_decode_preempt(&arena, body, size, &preempt, &eb) == ERR_OK) {
        check_preempt(&preempt, body, size);
        check_preempt_reply(&preempt);
    }
    arena_destroy(&arena);
    check_pdb(body, size);
    return 0;
}
