/* topo_doc.h -- what the topology tests and bench/bench_topology.c both need to write
 * gpu-extender.io/topology documents: a fixed-size text buffer with a printf-style append that
 * aborts when the buffer is full, and the xorshift32 generator behind their seeded random
 * topologies. Header-only (static inline), so each test or benchmark that includes it stays one
 * executable. */
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gx/compiler.h"

#include "check.h"

struct doc {
    char buf[16384];
    size_t len;
};

static inline void doc_add(struct doc *d, const char *fmt, ...) GX_PRINTF(2, 3);

static inline void doc_add(struct doc *d, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(d->buf + d->len, sizeof(d->buf) - d->len, fmt, ap);
    va_end(ap);
    CHECK(n >= 0 && (size_t)n < sizeof(d->buf) - d->len);
    d->len += (size_t)n;
}

static inline uint32_t rng_next(uint32_t *state)
{
    uint32_t x = *state;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}
