/* err.c -- error names and the error-detail buffer. */
#include "gx/err.h"

#include <stdio.h>

static const char *const err_names[] = {
#define GX_ERR_NAME(name, text) text,
    GX_ERR_MAP(GX_ERR_NAME)
#undef GX_ERR_NAME
};

const char *err_str(enum err e)
{
    if ((size_t)e >= sizeof(err_names) / sizeof(err_names[0]))
        return "unknown error";
    return err_names[e];
}

void errbuf_clear(struct errbuf *eb)
{
    if (eb)
        eb->msg[0] = '\0';
}

void errbuf_set(struct errbuf *eb, const char *fmt, ...)
{
    va_list ap;

    if (!eb || eb->msg[0])
        return;
    va_start(ap, fmt);
    vsnprintf(eb->msg, sizeof(eb->msg), fmt, ap);
    va_end(ap);
}

bool errbuf_is_set(const struct errbuf *eb)
{
    return eb && eb->msg[0] != '\0';
}
