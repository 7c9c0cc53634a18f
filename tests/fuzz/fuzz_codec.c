/* fuzz_codec.c -- libFuzzer target for the extender request decoders. Built with clang
 * (GX_FUZZ=ON) it links libFuzzer; otherwise replay_main.c replays the corpus under ctest. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gx/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct arena arena;
    struct ext_args args;
    struct ext_bind_args bind;
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
    return 0;
}
