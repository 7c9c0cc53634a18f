/* test_jscan_skip.c -- jscan_skip() against the cursor entering every container: on generated
 * documents, valid and broken, both must end at the same byte or fail with the same message at
 * the same position, whatever mix of skipping and entering reads them. Skipping is how every
 * byte of a Node that nobody reads (images, managedFields) is validated, and its loop is not
 * the one that entering runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx/jscan.h"

#include "check.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

/* ---- generated documents ---- */

struct doc {
    char *p;
    size_t len, cap;
};

static void put(struct doc *d, const char *s, size_t n)
{
    if (n == 0)
        return; /* d->p may still be NULL */
    if (d->len + n > d->cap) {
        d->cap = (d->len + n) * 2 + 64;
        d->p = realloc(d->p, d->cap);
        CHECK(d->p != NULL);
    }
    memcpy(d->p + d->len, s, n);
    d->len += n;
}

static void puts_(struct doc *d, const char *s)
{
    put(d, s, strlen(s));
}

static void ws(struct doc *d)
{
    static const char *const w[] = {"", "", "", "", " ", "\n  ", "\t", "\r\n"};
    puts_(d, w[rnd(8)]);
}

/* A string with runs long and short, escapes (backslash runs too) and UTF-8 of every length,
 * so quotes and backslashes land on every side of the 64-byte blocks. */
static void gen_string(struct doc *d)
{
    static const char *const pieces[] = {
        "a",
        "gpu-node-",
        "nvidia.com/gpu",
        "\\\"",
        "\\\\",
        "\\\\\\\"",
        "\\n",
        "\\/",
        "\\u00e9",
        "\\ud83d\\ude00",
        "\xc3\xa9",
        "\xe2\x82\xac",
        "\xf0\x9f\x98\x80",
        "{}[]:,",
        " ",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "x\\\\",
        "'"};
    unsigned n = rnd(6);

    put(d, "\"", 1);
    for (unsigned i = 0; i < n; i++)
        puts_(d, pieces[rnd(sizeof(pieces) / sizeof(pieces[0]))]);
    put(d, "\"", 1);
}

static void gen_value(struct doc *d, unsigned depth)
{
    static const char *const scalars[] = {"0",     "-1",   "12.5e-3",          "true",
                                          "false", "null", "9007199254740993", "-0.0"};
    unsigned kind = depth > 6 ? rnd(2) : rnd(4);

    ws(d);
    if (kind == 0) {
        gen_string(d);
    } else if (kind == 1) {
        puts_(d, scalars[rnd(sizeof(scalars) / sizeof(scalars[0]))]);
    } else {
        bool obj = kind == 2;
        unsigned n = rnd(7);
        put(d, obj ? "{" : "[", 1);
        for (unsigned i = 0; i < n; i++) {
            if (i)
                put(d, ",", 1);
            if (obj) {
                ws(d);
                gen_string(d);
                ws(d);
                put(d, ":", 1);
            }
            gen_value(d, depth + 1);
        }
        ws(d);
        put(d, obj ? "}" : "]", 1);
    }
    ws(d);
}

/* Breaks one byte (or none): each of these is something the index or the cursor refuses or
 * reads differently. */
static void mutate(struct doc *d)
{
    static const unsigned char bytes[] = {'"', '\\', 0x01, 0x80, 0xc3, 0xe2, '{',  '}',  '[', ']',
                                          ',', ':',  ' ',  'x',  '\n', '0',  0x7f, 0xff, 'u', '\t'};
    if (!d->len || rnd(4) == 0)
        return;
    d->p[rnd((uint32_t)d->len)] = (char)bytes[rnd(sizeof(bytes))];
    if (rnd(8) == 0)
        d->len = rnd((uint32_t)d->len); /* cut short */
}

/* ---- walking a document ---- */

struct trace {
    char *p;
    size_t len, cap;
};

static void note(struct trace *t, const char *tag, const char *s, size_t n, size_t at)
{
    char line[128];
    int k = snprintf(line, sizeof(line), "%s%.*s/%zu@%zu ", tag, (int)(n > 40 ? 40 : n), s, n, at);
    if (t->len + (size_t)k + 1 > t->cap) {
        t->cap = (t->len + (size_t)k + 1) * 2;
        t->p = realloc(t->p, t->cap);
        CHECK(t->p != NULL);
    }
    memcpy(t->p + t->len, line, (size_t)k + 1);
    t->len += (size_t)k;
}

/* Reads the value at the cursor. A container is skipped whole when bit (depth % 16) of choice
 * is set, else entered and read member by member; choice 0 enters everything, which never
 * uses jscan_skip() on a container: the reference. Strings are read with jscan_string, other
 * scalars skipped. */
static bool walk(struct jscan *js, struct trace *t, uint32_t choice, unsigned depth)
{
    struct str s;
    enum jtype type = jscan_peek(js);
    int r;

    if ((type == JSON_OBJECT || type == JSON_ARRAY) && ((choice >> (depth % 16)) & 1)) {
        if (!jscan_skip(js, &s))
            return false;
        note(t, "{", s.ptr, s.len, js->pos);
        return true;
    }
    switch (type) {
    case JSON_STRING:
        if (!jscan_string(js, &s))
            return false;
        note(t, "s", s.ptr, s.len, js->pos);
        return true;
    case JSON_OBJECT:
        if (!jscan_enter_object(js))
            return false;
        while ((r = jscan_next_member(js, &s)) == 1)
            if (!walk(js, t, choice, depth + 1))
                return false;
        note(t, "}", "", 0, js->pos);
        return r == 0;
    case JSON_ARRAY:
        if (!jscan_enter_array(js))
            return false;
        while ((r = jscan_next_element(js)) == 1)
            if (!walk(js, t, choice, depth + 1))
                return false;
        note(t, "]", "", 0, js->pos);
        return r == 0;
    default:
        if (!jscan_skip(js, &s))
            return false;
        note(t, "v", s.ptr, s.len, js->pos);
        return true;
    }
}

/* How a walk ends: ok and where, or the error and where; the trace is not compared, since
 * skipping a container leaves out what entering it notes. */
static void walk_doc(const char *p, size_t len, uint32_t choice, unsigned max_depth, char *out,
                     size_t cap)
{
    struct trace t = {0};
    struct jscan js;
    const char *msg;
    size_t pos = 0;
    bool ok;

    jscan_init(&js, p, len, max_depth);
    ok = walk(&js, &t, choice, 0) && jscan_finish(&js);
    msg = jscan_error(&js, &pos);
    if (ok)
        snprintf(out, cap, "ok at %zu", js.pos);
    else
        snprintf(out, cap, "%s at %zu", msg ? msg : "?", pos);
    free(t.p);
}

static size_t valid_docs, broken_docs, deep_docs;

static void check_doc(const char *p, size_t len)
{
    char ref[160], got[160];
    /* A small depth limit now and then, so that skipping meets it too. */
    unsigned max_depth = rnd(8) == 0 ? 3 + rnd(4) : 24;

    walk_doc(p, len, 0, max_depth, ref, sizeof(ref));
    strncmp(ref, "ok", 2) == 0 ? valid_docs++ : broken_docs++;
    deep_docs += max_depth < 24;
    for (unsigned k = 0; k < 4; k++) {
        uint32_t choice = k == 0 ? 0xffffu : rnd(1u << 16);
        walk_doc(p, len, choice, max_depth, got, sizeof(got));
        if (strcmp(ref, got) != 0) {
            fprintf(stderr,
                    "skipping (choice %04x) read differently:\nentering: %s\nskipping: %s\n"
                    "document: %.*s\n",
                    (unsigned)choice, ref, got, (int)len, p);
            abort();
        }
    }
}

static void test_generated(void)
{
    for (unsigned i = 0; i < 4000; i++) {
        struct doc d = {0};
        gen_value(&d, 0);
        check_doc(d.p, d.len);
        mutate(&d);
        check_doc(d.p, d.len);
        free(d.p);
    }
    CHECK(valid_docs > 4000);
    CHECK(broken_docs > 1000);
    CHECK(deep_docs > 500);
}

/* Hand-made: every kind of refusal inside a skipped container, and deep nesting. */
static void test_refusals(void)
{
    static const char *const docs[] = {
        "[{\"a\":[1,2,{\"b\":\"c\"}],\"d\":true}]",
        "[{\"a\":[1,2,{\"b\":\"c\"}],\"d\":tru}]",
        "[{\"a\":[1,2,{\"b\" \"c\"}]}]",
        "[{\"a\":[1,2,{\"b\":\"c\"},]}]",
        "[{\"a\":[1,2,{\"b\":\"c\"}],}]",
        "[{\"a\":[01]}]",
        "[{\"a\":[1.]}]",
        "[{\"a\":[-]}]",
        "[{\"a\":\"\x01\"}]",
        "[{\"a\":\"\\x\"}]",
        "[{\"a\":\"\xc3\"}]",
        "[{\"a\":[1\x01]}]",
        "[{\"a\":[1 , 2 ,\n 3 ]\t}\r]",
        "[{1:2}]",
        "[{\"a\":1]}",
        "[[1}]",
        "[{\"a\":",
        "[{\"a\":\"b",
        "[\x80]",
        "[nul]",
        "[null,false,true,-0.5e+3]",
        "[falsx]",
        "[fals]",
        "[trux]",
        "[nulx]",
        "[tru",
        "[-01]",
        "[1e]",
        "[1.5e+]",
        "[1.5E-2,0e0]",
        "[\"a\\u00zz\"]",
        "[\"a\\u00e9\\/\\b\"]",
        "[\"0123456789abcdef0123456789abcdef0123456789\\\"\"]",
        "[\"0123456789abcdef0123456789abcdef0123456789\x1f\"]",
        "{\"0123456789abcdef0123456789abcdef0123456789\":{}}",
        "{\"a\":{}  ,\"b\"  :  []  }",
        "{\"a\" : 1 , }",
        "{,}",
        "[,]",
        "[1,,2]",
        "{\"a\"}",
    };
    char ref[160], got[160], deep[300];

    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        walk_doc(docs[i], strlen(docs[i]), 0, 24, ref, sizeof(ref));
        walk_doc(docs[i], strlen(docs[i]), 0xffffu, 24, got, sizeof(got));
        if (strcmp(ref, got) != 0) {
            fprintf(stderr, "%s: entering %s, skipping %s\n", docs[i], ref, got);
            abort();
        }
    }
    /* 100 levels: within the depth limit, and past it. */
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    walk_doc(deep, 200, 0xffffu, 128, got, sizeof(got));
    CHECK_STR_EQ(got, "ok at 200");
    walk_doc(deep, 200, 0, 80, ref, sizeof(ref));
    walk_doc(deep, 200, 0xffffu, 80, got, sizeof(got));
    CHECK_STR_EQ(got, ref);
    CHECK(strncmp(got, "nesting too deep", 16) == 0);
}

int main(void)
{
    test_refusals();
    test_generated();
    printf("test_jscan_skip: ok (%zu valid, %zu broken documents, %zu under a small depth limit)\n",
           valid_docs, broken_docs, deep_docs);
    return 0;
}
