/* err.h -- the one list of error codes, and a small caller-owned buffer for the
 * human-readable detail. Modules return an enum err and never log; the caller that
 * decides what happens logs once. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "gx/compiler.h"

#define GX_ERR_MAP(X)                                                                              \
    X(OK, "ok")                                                                                    \
    X(NOMEM, "out of memory")                                                                      \
    X(INVALID, "invalid argument")                                                                 \
    X(PARSE, "malformed input")                                                                    \
    X(TOO_LARGE, "too large")                                                                      \
    X(NOT_FOUND, "not found")                                                                      \
    X(IO, "i/o error")                                                                             \
    X(TIMEOUT, "timed out")                                                                        \
    X(UPSTREAM, "upstream error")                                                                  \
    X(UNAVAILABLE, "unavailable")

enum err {
#define GX_ERR_ENUM(name, text) ERR_##name,
    GX_ERR_MAP(GX_ERR_ENUM)
#undef GX_ERR_ENUM
};

/* Returns a static string naming the error; never NULL. */
const char *err_str(enum err e);

/* Room for an API server's message inside a bind's error; the codec sends at most 1 KiB. */
#define ERRBUF_LEN 1024

/* Detail for a failed call. The first message written wins, so the innermost
 * (most specific) cause is kept. Callers may pass NULL where an errbuf is taken.
 * Every errbuf starts as ERRBUF_INIT (tests/lint.sh refuses a declaration without an
 * initializer), so no callee ever reads a message it did not write. */
struct errbuf {
    char msg[ERRBUF_LEN];
};

#define ERRBUF_INIT                                                                                \
    {                                                                                              \
        .msg = { 0 }                                                                               \
    }

/* Empties eb; NULL is a no-op. */
void errbuf_clear(struct errbuf *eb);
/* Writes the message unless one is already there; NULL is a no-op. */
void errbuf_set(struct errbuf *eb, const char *fmt, ...) GX_PRINTF(2, 3);
/* Returns true when a message has been written. */
bool errbuf_is_set(const struct errbuf *eb);
