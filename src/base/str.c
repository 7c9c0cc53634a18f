/* str.c -- string views and range-checked number parsing. */
#include "gx/str.h"

#include <string.h>

static inline unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

struct str str_from_cstr(const char *s)
{
    return (struct str){s, s ? strlen(s) : 0};
}

bool str_eq(struct str a, struct str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

bool str_eq_cstr(struct str a, const char *b)
{
    return str_eq(a, str_from_cstr(b));
}

bool str_ieq(struct str a, struct str b)
{
    if (a.len != b.len)
        return false;
    for (size_t i = 0; i < a.len; i++) {
        if (lower((unsigned char)a.ptr[i]) != lower((unsigned char)b.ptr[i]))
            return false;
    }
    return true;
}

bool str_ieq_cstr(struct str a, const char *b)
{
    return str_ieq(a, str_from_cstr(b));
}

bool str_icontains(struct str hay, struct str needle)
{
    if (needle.len == 0)
        return true;
    for (size_t i = 0; i + needle.len <= hay.len; i++) {
        if (str_ieq((struct str){hay.ptr + i, needle.len}, needle))
            return true;
    }
    return false;
}

bool str_has_prefix(struct str s, const char *prefix)
{
    size_t n = strlen(prefix);

    return s.len >= n && memcmp(s.ptr, prefix, n) == 0;
}

struct str str_trim(struct str s)
{
    while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t')) {
        s.ptr++;
        s.len--;
    }
    while (s.len && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t'))
        s.len--;
    return s;
}

bool str_split(struct str *s, char sep, struct str *item)
{
    const char *p;

    if (!s->ptr || s->len == 0)
        return false;
    p = memchr(s->ptr, sep, s->len);
    if (!p) {
        *item = *s;
        s->ptr += s->len;
        s->len = 0;
        return true;
    }
    item->ptr = s->ptr;
    item->len = (size_t)(p - s->ptr);
    s->len -= item->len + 1;
    s->ptr = p + 1;
    return true;
}

enum err str_to_i64(struct str s, int64_t min, int64_t max, int64_t *out)
{
    bool neg = false;
    uint64_t v = 0;
    size_t i = 0;

    if (s.len == 0)
        return ERR_PARSE;
    if (s.ptr[0] == '-' || s.ptr[0] == '+') {
        neg = s.ptr[0] == '-';
        i = 1;
        if (s.len == 1)
            return ERR_PARSE;
    }
    for (; i < s.len; i++) {
        unsigned d = (unsigned)(unsigned char)s.ptr[i] - '0';
        if (d > 9)
            return ERR_PARSE;
        if (v > (UINT64_MAX - d) / 10)
            return ERR_INVALID;
        v = v * 10 + d;
    }
    if (!neg && v > (uint64_t)INT64_MAX)
        return ERR_INVALID;
    if (neg && v > (uint64_t)INT64_MAX + 1)
        return ERR_INVALID;
    {
        int64_t r = neg ? (int64_t)(0 - v) : (int64_t)v;
        if (r < min || r > max)
            return ERR_INVALID;
        *out = r;
    }
    return ERR_OK;
}

enum err str_to_i64_cstr(const char *s, int64_t min, int64_t max, int64_t *out)
{
    return str_to_i64(str_from_cstr(s), min, max, out);
}
