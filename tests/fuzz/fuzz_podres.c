/* fuzz_podres.c -- libFuzzer target for the PodResources client's reply path: each input is the
 * kubelet's side of a connection (HTTP/2 frames, HPACK, gRPC framing, the protobuf message) fed
 * to podres_parse_reply(), the code podres_list() runs on what it reads from the socket.
 * Invariants, each an abort:
 *  - the result is one of the errors podres_parse_reply() documents;
 *  - on success, every row's strings are set, the list owns storage exactly when it has rows,
 *    and there are no more rows than input bytes (each device id costs at least two);
 *  - on failure, *out is untouched;
 *  - podres_list_free() empties the list (ASan checks the rest).
 * The corpus starts from replies captured from python3-grpcio (tests/fakes/fake_kubelet.py:
 * pods, an empty node, UNAVAILABLE, garbage) and the hand-built replies of
 * test_podres_parse.c. Built with clang (GX_FUZZ=ON) it links libFuzzer; otherwise
 * replay_main.c replays the corpus. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gx/podres.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_rows(const struct podres_list *l, size_t size)
{
    if (l->n > size || (l->n > 0) != (l->priv != NULL) || (l->n > 0) != (l->v != NULL))
        abort();
    for (size_t i = 0; i < l->n; i++) {
        const struct podres_device *d = &l->v[i];

        if (!d->ns || !d->pod || !d->container || !d->resource || !d->id)
            abort();
        /* Reads every byte of every string: ASan sees any that is not the list's. */
        if (strlen(d->ns) + strlen(d->pod) + strlen(d->container) + strlen(d->resource) +
                strlen(d->id) >
            size)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct podres_list untouched = {NULL, 12345, NULL};
    struct podres_list l = untouched;
    enum err e = podres_parse_reply(data, size, &l, NULL);

    switch (e) {
    case ERR_OK:
        check_rows(&l, size);
        podres_list_free(&l);
        if (l.n != 0 || l.v || l.priv)
            abort();
        break;
    case ERR_IO:
    case ERR_UPSTREAM:
    case ERR_PARSE:
    case ERR_TOO_LARGE:
    case ERR_NOMEM:
        if (memcmp(&l, &untouched, sizeof(l)) != 0)
            abort();
        break;
    default:
        abort();
    }
    return 0;
}
