/* jscan.c -- the validating JSON cursor (see jscan.h).
 *
 * Speed matters here: in full-Nodes mode a 1,000-node request is about 12 MB, and kube-scheduler
 * waits on us while we read it. The string scanner therefore checks 16 bytes at a time for the
 * only bytes that need attention (quote, backslash, controls, non-ASCII) and the structural
 * state machine keeps its container stack as bits. */
#include "gx/jscan.h"

#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static inline bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

void jscan_init(struct jscan *js, const char *buf, size_t len, uint32_t max_depth)
{
    memset(js, 0, sizeof(*js));
    js->buf = buf;
    js->len = len;
    js->max_depth = max_depth > JSCAN_MAX_DEPTH ? JSCAN_MAX_DEPTH : max_depth;
}

static bool fail_kind(struct jscan *js, enum jscan_errkind kind, const char *msg)
{
    if (!js->err) {
        js->err = msg;
        js->err_pos = js->pos;
        js->err_kind = kind;
    }
    return false;
}

static bool fail_syntax(struct jscan *js, const char *msg)
{
    return fail_kind(js, JSCAN_ERR_SYNTAX, msg);
}

bool jscan_fail(struct jscan *js, const char *msg)
{
    return fail_kind(js, JSCAN_ERR_TYPE, msg);
}

bool jscan_fail_budget(struct jscan *js)
{
    return fail_kind(js, JSCAN_ERR_BUDGET, "request too large for its memory budget");
}

enum jscan_errkind jscan_error_kind(const struct jscan *js)
{
    return js->err ? js->err_kind : JSCAN_ERR_NONE;
}

bool jscan_failed(const struct jscan *js)
{
    return js->err != NULL;
}

const char *jscan_error(const struct jscan *js, size_t *pos)
{
    if (pos)
        *pos = js->err_pos;
    return js->err;
}

/* Returns the next non-whitespace byte (not consumed), or -1 at the end. */
static inline int skip_ws(struct jscan *js)
{
    const unsigned char *p = (const unsigned char *)js->buf;
    size_t i = js->pos;

    /* Compact JSON (what Kubernetes sends) has no whitespace between tokens, and every byte
     * a token starts with is above the space. */
    if (i < js->len && p[i] > ' ')
        return p[i];
    while (i < js->len && is_ws(p[i]))
        i++;
    js->pos = i;
    return i < js->len ? p[i] : -1;
}

static bool push(struct jscan *js, bool is_object)
{
    uint64_t bit;

    if (js->depth >= js->max_depth)
        return fail_syntax(js, "nesting too deep");
    bit = (uint64_t)1 << (js->depth & 63);
    if (is_object)
        js->kinds[js->depth >> 6] |= bit;
    else
        js->kinds[js->depth >> 6] &= ~bit;
    js->depth++;
    return true;
}

static inline bool top_is_object(const struct jscan *js)
{
    uint32_t d = js->depth - 1;

    return (js->kinds[d >> 6] >> (d & 63)) & 1;
}

/* Counts leading bytes that need no attention inside a string: printable ASCII other than
 * '"' and '\\'. */
#if defined(__SSE2__)
static inline size_t plain_run(const unsigned char *p, size_t n)
{
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i bslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);
    size_t i = 0;

    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        /* A signed compare against 0x20 catches controls and every byte >= 0x80 at once. */
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                 _mm_cmplt_epi8(v, space));
        unsigned mask = (unsigned)_mm_movemask_epi8(m);
        if (mask)
            return i + (size_t)__builtin_ctz(mask);
    }
    while (i < n && p[i] >= 0x20 && p[i] < 0x80 && p[i] != '"' && p[i] != '\\')
        i++;
    return i;
}
#else
static inline size_t plain_run(const unsigned char *p, size_t n)
{
    size_t i = 0;

    while (i < n && p[i] >= 0x20 && p[i] < 0x80 && p[i] != '"' && p[i] != '\\')
        i++;
    return i;
}
#endif

static inline bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* Validates one UTF-8 sequence starting at p[0] >= 0x80; returns its length or 0. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];

    if (c >= 0xC2 && c <= 0xDF)
        return (n >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        return (n >= 3 && p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80) ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        return (n >= 4 && p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 &&
                (p[3] & 0xC0) == 0x80)
                   ? 4
                   : 0;
    }
    return 0;
}

/* Validates an escape at p[0] == '\\'; returns its length or 0. */
static size_t escape_len(const unsigned char *p, size_t n)
{
    if (n < 2)
        return 0;
    switch (p[1]) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't':
        return 2;
    case 'u':
        return (n >= 6 && is_hex(p[2]) && is_hex(p[3]) && is_hex(p[4]) && is_hex(p[5])) ? 6 : 0;
    default:
        return 0;
    }
}

/* Consumes a string whose opening quote is at js->pos; *raw gets the content. */
static bool scan_string_any(struct jscan *js, struct str *raw)
{
    const unsigned char *p = (const unsigned char *)js->buf;
    size_t i = js->pos + 1;
    size_t start = i;
    bool plain = true;

    for (;;) {
        size_t step;

        i += plain_run(p + i, js->len - i);
        if (i >= js->len) {
            js->pos = i;
            return fail_syntax(js, "unterminated string");
        }
        if (p[i] == '"')
            break;
        if (p[i] == '\\') {
            step = escape_len(p + i, js->len - i);
            plain = false;
        } else if (p[i] >= 0x80)
            step = utf8_seq(p + i, js->len - i);
        else
            step = 0;
        if (!step) {
            js->pos = i;
            return fail_syntax(js, p[i] == '\\'  ? "invalid escape in string"
                                   : p[i] < 0x20 ? "control character in string"
                                                 : "invalid UTF-8 in string");
        }
        i += step;
    }
    if (raw) {
        raw->ptr = js->buf + start;
        raw->len = i - start;
    }
    js->str_plain = plain;
    js->pos = i + 1;
    return true;
}

/* The bytes among 16 at p that need attention in a string: quote, backslash, controls and
 * (by the signed compare) every byte >= 0x80. */
#if defined(__SSE2__)
static inline unsigned special16(const unsigned char *p)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i m = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
        _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
    return (unsigned)_mm_movemask_epi8(m);
}
#endif

/* scan_string_any(), with the common case inline: most strings in Kubernetes objects (keys,
 * names, label values) end within 32 bytes with nothing to check on the way, which one or two
 * compares of 16 bytes settle. The rest, and strings near the buffer's end, go the whole way. */
static inline bool scan_string(struct jscan *js, struct str *raw)
{
#if defined(__SSE2__)
    const unsigned char *p = (const unsigned char *)js->buf;
    size_t i = js->pos + 1, end;

    /* 32 bytes, and the one after them: a plain run of 32 may end there. */
    if (js->len - i > 32) {
        unsigned mask = special16(p + i);
        if (mask)
            end = i + (size_t)__builtin_ctz(mask);
        else
            end = i + 16 + (size_t)__builtin_ctz(special16(p + i + 16) | 0x10000u);
        if (p[end] == '"') {
            if (raw) {
                raw->ptr = js->buf + i;
                raw->len = end - i;
            }
            js->str_plain = true;
            js->pos = end + 1;
            return true;
        }
    }
#endif
    return scan_string_any(js, raw);
}

static inline bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool scan_number(struct jscan *js)
{
    const unsigned char *p = (const unsigned char *)js->buf;
    size_t i = js->pos, n = js->len;

    if (i < n && p[i] == '-')
        i++;
    if (i < n && p[i] == '0') {
        i++;
    } else if (i < n && p[i] >= '1' && p[i] <= '9') {
        while (i < n && is_digit(p[i]))
            i++;
    } else {
        js->pos = i;
        return fail_syntax(js, "invalid number");
    }
    if (i < n && p[i] == '.') {
        i++;
        if (i >= n || !is_digit(p[i])) {
            js->pos = i;
            return fail_syntax(js, "invalid number");
        }
        while (i < n && is_digit(p[i]))
            i++;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-'))
            i++;
        if (i >= n || !is_digit(p[i])) {
            js->pos = i;
            return fail_syntax(js, "invalid number");
        }
        while (i < n && is_digit(p[i]))
            i++;
    }
    js->pos = i;
    return true;
}

static bool scan_literal(struct jscan *js, const char *lit, size_t n)
{
    if (js->len - js->pos < n || memcmp(js->buf + js->pos, lit, n) != 0)
        return fail_syntax(js, "invalid literal");
    js->pos += n;
    return true;
}

/* Consumes one scalar at the cursor (c is its first byte). */
static bool scan_scalar(struct jscan *js, int c)
{
    switch (c) {
    case '"':
        return scan_string(js, NULL);
    case 't':
        return scan_literal(js, "true", 4);
    case 'f':
        return scan_literal(js, "false", 5);
    case 'n':
        return scan_literal(js, "null", 4);
    default:
        if (c == '-' || is_digit(c))
            return scan_number(js);
        return fail_syntax(js, c < 0 ? "unexpected end of input" : "unexpected character");
    }
}

enum jtype jscan_peek(struct jscan *js)
{
    int c;

    if (js->err)
        return JSON_NONE;
    c = skip_ws(js);
    switch (c) {
    case '{':
        return JSON_OBJECT;
    case '[':
        return JSON_ARRAY;
    case '"':
        return JSON_STRING;
    case 't':
        return JSON_TRUE;
    case 'f':
        return JSON_FALSE;
    case 'n':
        return JSON_NULL;
    default:
        return (c == '-' || is_digit(c)) ? JSON_NUMBER : JSON_NONE;
    }
}

/* After a member value inside an object: reads ',' + key + ':' or the closing '}'.
 * Returns 1 when a value follows, 0 when the object closed, -1 on error. */
static int object_continue(struct jscan *js, bool first, struct str *key)
{
    int c = skip_ws(js);

    if (c == '}') {
        js->pos++;
        js->depth--;
        return 0;
    }
    if (!first) {
        if (c != ',')
            return fail_syntax(js, "expected ',' or '}' in object") ? 0 : -1;
        js->pos++;
        c = skip_ws(js);
    }
    if (c != '"')
        return fail_syntax(js, "expected string key in object") ? 0 : -1;
    if (!scan_string(js, key))
        return -1;
    if (skip_ws(js) != ':')
        return fail_syntax(js, "expected ':' after key") ? 0 : -1;
    js->pos++;
    return 1;
}

/* Same for arrays: 1 when an element follows, 0 when the array closed, -1 on error. */
static int array_continue(struct jscan *js, bool first)
{
    int c = skip_ws(js);

    if (c == ']') {
        js->pos++;
        js->depth--;
        return 0;
    }
    if (!first) {
        if (c != ',')
            return fail_syntax(js, "expected ',' or ']' in array") ? 0 : -1;
        js->pos++;
    }
    return 1;
}

/* Consumes one whole value of any type without recursion: containers are tracked on the bit
 * stack, and the loop ends when the depth returns to where it started. */
static bool skip_any(struct jscan *js)
{
    uint32_t base = js->depth;
    bool first = false;
    int r;

    for (;;) {
        int c = skip_ws(js);

        if (c == '{' || c == '[') {
            js->pos++;
            if (!push(js, c == '{'))
                return false;
            first = true;
        } else if (!scan_scalar(js, c)) {
            return false;
        } else {
            first = false;
        }
        /* Close containers until one wants another value, or we are back at the base. */
        for (;;) {
            if (js->depth == base)
                return true;
            r = top_is_object(js) ? object_continue(js, first, NULL) : array_continue(js, first);
            if (r < 0 || js->err)
                return false;
            first = false;
            if (r == 1)
                break;
        }
    }
}

bool jscan_skip(struct jscan *js, struct str *span)
{
    size_t start;

    if (js->err)
        return false;
    skip_ws(js);
    start = js->pos;
    if (!skip_any(js))
        return false;
    js->fresh = false;
    if (span) {
        span->ptr = js->buf + start;
        span->len = js->pos - start;
    }
    return true;
}

bool jscan_enter_object(struct jscan *js)
{
    if (js->err)
        return false;
    if (skip_ws(js) != '{')
        return jscan_fail(js, "expected object");
    js->pos++;
    js->fresh = true;
    return push(js, true);
}

bool jscan_enter_array(struct jscan *js)
{
    if (js->err)
        return false;
    if (skip_ws(js) != '[')
        return jscan_fail(js, "expected array");
    js->pos++;
    js->fresh = true;
    return push(js, false);
}

int jscan_next_member(struct jscan *js, struct str *key)
{
    bool first = js->fresh;
    int r;

    if (js->err)
        return -1;
    js->fresh = false;
    r = object_continue(js, first, key);
    return js->err ? -1 : r;
}

int jscan_next_element(struct jscan *js)
{
    bool first = js->fresh;
    int r;

    if (js->err)
        return -1;
    js->fresh = false;
    r = array_continue(js, first);
    return js->err ? -1 : r;
}

bool jscan_string(struct jscan *js, struct str *raw)
{
    if (js->err)
        return false;
    if (skip_ws(js) != '"')
        return jscan_fail(js, "expected string");
    js->fresh = false;
    return scan_string(js, raw);
}

bool jscan_string_decoded(struct jscan *js, struct arena *arena, struct str *out)
{
    struct str raw = {0}; /* set by jscan_string(); clang-analyzer loses it in the SSE2 path */
    char *p;

    if (!jscan_string(js, &raw))
        return false;
    if (js->str_plain) {
        *out = raw;
        return true;
    }
    p = arena_alloc(arena, raw.len + 1);
    if (!p)
        return jscan_fail_budget(js);
    out->len = jstr_decode(raw, p, raw.len + 1);
    out->ptr = p;
    return true;
}

/* The common case of an array of strings, NodeNames: a separator, then a string with nothing
 * to decode, taken in one pass. Anything else (the array's end, an escape, UTF-8, an error)
 * goes the general way from where it began, so errors and positions are the same. */
int jscan_next_string(struct jscan *js, struct arena *arena, struct str *out, bool *plain)
{
    const unsigned char *p = (const unsigned char *)js->buf;
    size_t i = js->pos, start, end;
    int r;

    if (js->err)
        return -1;
    while (i < js->len && is_ws(p[i]))
        i++;
    if (!js->fresh) {
        if (i >= js->len || p[i] != ',')
            goto general;
        i++;
        while (i < js->len && is_ws(p[i]))
            i++;
    }
    if (i >= js->len || p[i] != '"')
        goto general;
    start = i + 1;
    end = start + plain_run(p + start, js->len - start);
    if (end >= js->len || p[end] != '"')
        goto general;
    js->pos = end + 1;
    js->fresh = false;
    *out = (struct str){js->buf + start, end - start};
    *plain = true;
    return 1;
general:
    r = jscan_next_element(js);
    if (r != 1)
        return r;
    if (!jscan_string_decoded(js, arena, out))
        return -1;
    *plain = (uintptr_t)out->ptr > (uintptr_t)js->buf &&
             (uintptr_t)out->ptr + out->len < (uintptr_t)js->buf + js->len;
    return 1;
}

bool jscan_bool(struct jscan *js, bool *out)
{
    enum jtype t = jscan_peek(js);

    if (t != JSON_TRUE && t != JSON_FALSE)
        return jscan_fail(js, "expected boolean");
    *out = t == JSON_TRUE;
    js->fresh = false;
    return scan_literal(js, *out ? "true" : "false", *out ? 4 : 5);
}

bool jscan_finish(struct jscan *js)
{
    if (js->err)
        return false;
    if (js->depth != 0)
        return fail_syntax(js, "unexpected end of input");
    if (skip_ws(js) != -1)
        return fail_syntax(js, "trailing data after JSON value");
    return true;
}

static unsigned hex_val(unsigned char c)
{
    return c <= '9' ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
}

/* Decodes the escape at p (already validated); writes UTF-8 to out and returns the bytes
 * consumed from p. Lone surrogates become U+FFFD, as Go's decoder does. */
static size_t decode_escape(const unsigned char *p, size_t n, unsigned char out[4], size_t *out_len)
{
    unsigned cp;
    size_t used = 6;

    if (p[1] != 'u') {
        /* One of " \\ / b f n r t: the first three stand for themselves. */
        switch (p[1]) {
        case 'b':
            out[0] = '\b';
            break;
        case 'f':
            out[0] = '\f';
            break;
        case 'n':
            out[0] = '\n';
            break;
        case 'r':
            out[0] = '\r';
            break;
        case 't':
            out[0] = '\t';
            break;
        default:
            out[0] = p[1];
            break;
        }
        *out_len = 1;
        return 2;
    }
    cp = hex_val(p[2]) << 12 | hex_val(p[3]) << 8 | hex_val(p[4]) << 4 | hex_val(p[5]);
    if (cp >= 0xD800 && cp <= 0xDBFF && n >= 12 && p[6] == '\\' && p[7] == 'u') {
        unsigned lo =
            hex_val(p[8]) << 12 | hex_val(p[9]) << 8 | hex_val(p[10]) << 4 | hex_val(p[11]);
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            used = 12;
        }
    }
    if (cp >= 0xD800 && cp <= 0xDFFF)
        cp = 0xFFFD;
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        *out_len = 1;
    } else if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        *out_len = 2;
    } else if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        *out_len = 3;
    } else {
        out[0] = (unsigned char)(0xF0 | (cp >> 18));
        out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (unsigned char)(0x80 | (cp & 0x3F));
        *out_len = 4;
    }
    return used;
}

bool jstr_is_plain(struct str raw)
{
    return raw.len == 0 || memchr(raw.ptr, '\\', raw.len) == NULL;
}

/* Copies p[0..n) up to its first backslash (or its end) to out, which has room bytes; returns
 * how many, or SIZE_MAX when they do not fit. Annotation values that hold JSON (a node's
 * topology) escape a quote every few bytes, so while 16 bytes fit on both sides they are
 * copied whole and searched at once; past the run, out's bytes are scratch the caller
 * overwrites. The rest goes through memchr, as does most text, which has no escape at all. */
static size_t copy_run(const unsigned char *p, size_t n, char *out, size_t room)
{
    const unsigned char *bs;
    size_t i = 0, run;

#if defined(__SSE2__)
    for (; i + 16 <= n && i + 16 <= room; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
        _mm_storeu_si128((__m128i *)(void *)(out + i), v);
        if (m)
            return i + (size_t)__builtin_ctz(m);
    }
#endif
    bs = memchr(p + i, '\\', n - i);
    run = bs ? (size_t)(bs - p) : n;
    if (run > room)
        return SIZE_MAX;
    memcpy(out + i, p + i, run - i);
    return run;
}

size_t jstr_decode(struct str raw, char *out, size_t cap)
{
    const unsigned char *p = (const unsigned char *)raw.ptr;
    size_t i = 0, o = 0;

    while (i < raw.len) {
        unsigned char tmp[4];
        size_t n, run;

        if (o >= cap) /* no room even for the NUL */
            return SIZE_MAX;
        run = copy_run(p + i, raw.len - i, out + o, cap - o - 1);
        if (run == SIZE_MAX)
            return SIZE_MAX;
        o += run;
        i += run;
        if (i == raw.len)
            break;
        i += decode_escape(p + i, raw.len - i, tmp, &n);
        if (o + n + 1 > cap)
            return SIZE_MAX;
        for (size_t k = 0; k < n; k++) /* one byte, four at most: a loop, not a call */
            out[o + k] = (char)tmp[k];
        o += n;
    }
    if (o + 1 > cap)
        return SIZE_MAX;
    out[o] = '\0';
    return o;
}

static bool raw_cmp(struct str raw, const char *lit, bool ci)
{
    size_t n = strlen(lit);
    char tmp[256];
    struct str dec = raw;

    /* An escape is longer than what it stands for: a raw string shorter than the literal
     * never matches, and one just as long only when it has no escape and the same bytes. */
    if (raw.len < n)
        return false;
    if (raw.len == n)
        return n == 0 ||
               ((ci ? str_ieq_cstr(raw, lit) : memcmp(raw.ptr, lit, n) == 0) && jstr_is_plain(raw));
    if (!jstr_is_plain(raw)) {
        size_t len = jstr_decode(raw, tmp, sizeof(tmp));
        if (len == SIZE_MAX)
            return false;
        dec = (struct str){tmp, len};
    }
    if (dec.len != n)
        return false;
    return ci ? str_ieq_cstr(dec, lit) : memcmp(dec.ptr, lit, n) == 0;
}

bool jstr_eq(struct str raw, const char *lit)
{
    return raw_cmp(raw, lit, false);
}

bool jstr_ieq(struct str raw, const char *lit)
{
    return raw_cmp(raw, lit, true);
}

/* ---- walking an object by its keys ---- */

static unsigned char fold(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* Most keys differ from a name in their first byte; only a key that starts with an escape
 * or with the name's first byte needs the full comparison. */
static bool may_match(struct str key, const char *name, bool icase)
{
    unsigned char k = key.len ? (unsigned char)key.ptr[0] : 0, c = (unsigned char)name[0];

    return k == '\\' || (icase ? fold(k) == fold(c) : k == c);
}

/* plain: the key has no escape (the scanner saw none), so its raw bytes are its text and only
 * a name of its length can match; a key with escapes is decoded to be compared. lens[i] holds
 * strlen(names[i]) once it was needed, 0 before (a name that is empty or over 255 bytes is
 * measured every time). */
static int find_key(struct str key, bool plain, const char *const *names, size_t n, bool icase,
                    uint8_t *lens)
{
    for (size_t i = 0; i < n; i++) {
        if (!may_match(key, names[i], icase))
            continue;
        if (plain) {
            size_t len = lens[i];
            if (!len) {
                len = strlen(names[i]);
                lens[i] = len <= UINT8_MAX ? (uint8_t)len : 0;
            }
            if (len == key.len && (icase ? str_ieq_cstr(key, names[i])
                                         : len == 0 || memcmp(key.ptr, names[i], len) == 0))
                return (int)i;
        } else if (icase ? jstr_ieq(key, names[i]) : jstr_eq(key, names[i])) {
            return (int)i;
        }
    }
    return -1;
}

bool jscan_walk_object(struct jscan *js, const char *const *names, size_t n, unsigned flags,
                       jscan_member_fn *fn, void *ctx)
{
    uint32_t seen = 0;
    struct str key = {0}; /* as raw in jscan_string_decoded() */
    uint8_t lens[JSCAN_WALK_MAX_KEYS] = {0};
    int r;

    if ((flags & JSCAN_WALK_OR_NULL) && jscan_peek(js) == JSON_NULL)
        return jscan_skip(js, NULL);
    if (n > JSCAN_WALK_MAX_KEYS)
        return jscan_fail(js, "too many keys for a walk");
    if (!jscan_enter_object(js))
        return false;
    while ((r = jscan_next_member(js, &key)) == 1) {
        int i = find_key(key, js->str_plain, names, n, flags & JSCAN_WALK_ICASE, lens);
        bool ok;

        if (i >= 0 && (seen & (1u << i)))
            return jscan_fail(js, "duplicate key in object");
        if (i >= 0)
            seen |= 1u << i;
        if (i < 0 && !(flags & JSCAN_WALK_ALL_KEYS))
            ok = jscan_skip(js, NULL);
        else
            ok = fn(js, i, ctx);
        if (!ok)
            return false;
    }
    return r == 0;
}
