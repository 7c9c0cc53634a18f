/* base64.c -- strict-alphabet, whitespace-tolerant base64 decoding (see base64.h). */
#include "base64.h"

#include <stdbool.h>
#include <stdlib.h>

#include "gx/alloc.h"

struct decoder {
    unsigned char quad[4]; /* sextets of the group being read */
    size_t n;              /* how many of quad are filled */
    size_t pad;            /* '=' seen in this group */
    bool done;             /* a padded group ended the data */
    char *dst;
    size_t dst_len;
};

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Returns the 6-bit value of c, or -1 when c is not in the alphabet. */
static int sextet(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* A full group of four sextets yields three bytes, less one per '='. */
static void flush_group(struct decoder *d)
{
    unsigned char out[3];
    size_t keep = d->pad < 3 ? 3 - d->pad : 0; /* feed() allows at most two '=' */

    out[0] = (unsigned char)((d->quad[0] << 2) | (d->quad[1] >> 4));
    out[1] = (unsigned char)(((d->quad[1] & 0x0f) << 4) | (d->quad[2] >> 2));
    out[2] = (unsigned char)(((d->quad[2] & 0x03) << 6) | d->quad[3]);
    /* quad is full here (feed() flushes at n == 4); the analyzer does not follow it. */
    for (size_t i = 0; i < keep; i++)
        d->dst[d->dst_len++] = (char)out[i]; /* NOLINT(clang-analyzer-core.uninitialized.Assign) */
    d->done = d->pad > 0;
    d->n = 0;
}

static enum err feed(struct decoder *d, unsigned char c)
{
    int v = sextet(c);

    if (d->done)
        return ERR_PARSE; /* nothing may follow a padded group */
    if (c == '=') {
        /* "x=" cannot encode a whole byte, so padding starts at the third place at the earliest. */
        if (d->n < 2)
            return ERR_PARSE;
        d->pad++;
        v = 0;
    } else if (v < 0 || d->pad > 0) {
        return ERR_PARSE;
    }
    d->quad[d->n++] = (unsigned char)v;
    if (d->n == 4)
        flush_group(d);
    return ERR_OK;
}

enum err base64_decode(const char *in, size_t len, char **out, size_t *out_len)
{
    struct decoder d = {.dst = xmalloc(len / 4 * 3 + 1)};

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (!is_space(c) && feed(&d, c) != ERR_OK)
            goto out_free_dst;
    }
    if (d.n != 0)
        goto out_free_dst; /* a group was cut short: missing padding */
    d.dst[d.dst_len] = '\0';
    *out = d.dst;
    *out_len = d.dst_len;
    return ERR_OK;

out_free_dst:
    free(d.dst);
    return ERR_PARSE;
}
