/* podres_decode.h -- inside src/podres only: the reply's gRPC message to rows. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "gx/compiler.h"
#include "gx/err.h"
#include "gx/podres.h"

/* gRPC's message prefix: a compressed flag, then a 4-byte big-endian length. */
#define PODRES_GRPC_PREFIX_BYTES 5u

static inline uint32_t podres_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline void podres_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Decodes p[0..len), exactly one uncompressed length-prefixed ListPodResourcesResponse, into
 * *out (written only on success; free with podres_list_free()). Errors: ERR_PARSE (framing, or
 * a message protobuf-c cannot unpack), ERR_TOO_LARGE (over PODRES_MAX_DEVICES rows, or more
 * memory to unpack than a reply under the caps needs). */
enum err podres_decode_message(const uint8_t *p, size_t len, struct podres_list *out,
                               struct errbuf *eb) GX_MUST_CHECK;
