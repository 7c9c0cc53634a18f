/* test_jscan.c -- the validating JSON cursor: grammar, UTF-8, depth, spans, escapes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx/jscan.h"

#include "check.h"

/* Walks a whole document with jscan_skip; returns true when it is valid JSON. */
static bool valid(const char *doc)
{
    struct jscan js;

    jscan_init(&js, doc, strlen(doc), JSCAN_MAX_DEPTH);
    return jscan_skip(&js, NULL) && jscan_finish(&js);
}

static void test_grammar(void)
{
    static const char *const good[] = {
        "{}",
        "[]",
        "0",
        "-0",
        "1.5e-3",
        "-12.0E+2",
        "\"\"",
        "true",
        "false",
        "null",
        " { \"a\" : [ 1 , 2 , { } , [ ] ] , \"b\" : null } ",
        "\"\\u00e9\\n\\\"\\/\"",
        "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"",
        "[[[[[]]]]]",
        "{\"a\":{\"b\":{\"c\":1}}}",
    };
    static const char *const bad[] = {
        "",
        " ",
        "{",
        "}",
        "[1,]",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{a:1}",
        "[1 2]",
        "01",
        "1.",
        "1e",
        "-",
        "+1",
        ".5",
        "tru",
        "nul",
        "\"abc",
        "\"\\x\"",
        "\"\\u12g4\"",
        "[1]]",
        "{} {}",
        "\"\x01\"",
        "\"\xc0\xaf\"",
        "\"\xed\xa0\x80\"",
        "\"\xf5\x80\x80\x80\"",
        "\"\x80\"",
        "\"\xe2\x82\"",
        "[\"a\",]",
        "{\"a\":}",
        "NaN",
        "[Infinity]",
    };

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!valid(good[i])) {
            fprintf(stderr, "should be valid: %s\n", good[i]);
            abort();
        }
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (valid(bad[i])) {
            fprintf(stderr, "should be invalid: %s\n", bad[i]);
            abort();
        }
    }
}

static void test_nul_byte(void)
{
    const char doc[] = "\"a\0b\"";
    struct jscan js;

    jscan_init(&js, doc, sizeof(doc) - 1, 16);
    CHECK(!jscan_skip(&js, NULL));
}

static void test_depth(void)
{
    char deep[2000];
    struct jscan js;

    memset(deep, '[', 1000);
    memset(deep + 1000, ']', 1000);
    jscan_init(&js, deep, sizeof(deep), 128);
    CHECK(!jscan_skip(&js, NULL));
    CHECK_STR_EQ(jscan_error(&js, NULL), "nesting too deep");
    jscan_init(&js, deep + 1000 - 100, 200, 128);
    CHECK(jscan_skip(&js, NULL));
}

static void test_cursor_and_spans(void)
{
    const char *doc = "{\"Pod\": {\"x\": [1, 2]}, \"NodeNames\": [\"a\", \"b\\u0021\"], \"z\": 1}";
    struct jscan js;
    struct str key, span, raw;
    char out[16];

    jscan_init(&js, doc, strlen(doc), 64);
    CHECK(jscan_enter_object(&js));
    CHECK_EQ(jscan_next_member(&js, &key), 1);
    CHECK(jstr_eq(key, "Pod"));
    CHECK(jscan_skip(&js, &span));
    CHECK_STRN_EQ(span.ptr, span.len, "{\"x\": [1, 2]}");
    CHECK_EQ(jscan_next_member(&js, &key), 1);
    CHECK(jstr_ieq(key, "nodenames"));
    CHECK(!jstr_eq(key, "nodenames"));
    CHECK(jscan_enter_array(&js));
    CHECK_EQ(jscan_next_element(&js), 1);
    CHECK(jscan_string(&js, &raw));
    CHECK_STRN_EQ(raw.ptr, raw.len, "a");
    CHECK_EQ(jscan_next_element(&js), 1);
    CHECK(jscan_string(&js, &raw));
    CHECK(!jstr_is_plain(raw));
    CHECK_EQ(jstr_decode(raw, out, sizeof(out)), 2);
    CHECK_STR_EQ(out, "b!");
    CHECK_EQ(jscan_next_element(&js), 0);
    CHECK_EQ(jscan_next_member(&js, &key), 1);
    CHECK(jscan_skip(&js, NULL));
    CHECK_EQ(jscan_next_member(&js, &key), 0);
    CHECK(jscan_finish(&js));
}

static void test_escaped_keys(void)
{
    struct str raw = STR_LIT("nvidia.com\\/gpu");
    struct str pair = STR_LIT("\\ud83d\\ude00");
    struct str lone = STR_LIT("\\ud800x");
    char out[16];

    CHECK(jstr_eq(raw, "nvidia.com/gpu"));
    /* As long as the literal, byte for byte, yet an escape: not equal. */
    CHECK(!jstr_eq(STR_LIT("\\n"), "\\n"));
    CHECK(!jstr_ieq(STR_LIT("\\t"), "\\T"));
    CHECK(jstr_eq(STR_LIT("\\n"), "\n"));
    CHECK(jstr_eq(STR_LIT("a\\\\b"), "a\\b"));
    CHECK(!jstr_eq(STR_LIT("gpu"), "gpus"));
    CHECK(jstr_ieq(STR_LIT("NodeNames"), "nodenames"));
    CHECK_EQ(jstr_decode(pair, out, sizeof(out)), 4);
    CHECK(memcmp(out, "\xf0\x9f\x98\x80", 4) == 0);
    CHECK_EQ(jstr_decode(lone, out, sizeof(out)), 4);
    CHECK(memcmp(out, "\xef\xbf\xbdx", 4) == 0);
    CHECK_EQ(jstr_decode(pair, out, 4), SIZE_MAX);
    /* Runs between escapes are copied whole; the cap counts them too, and the NUL. */
    CHECK_EQ(jstr_decode(STR_LIT("{\\\"gpus\\\":[1]}"), out, sizeof(out)), 12);
    CHECK_STR_EQ(out, "{\"gpus\":[1]}");
    CHECK_EQ(jstr_decode(STR_LIT("plain text"), out, sizeof(out)), 10);
    CHECK_STR_EQ(out, "plain text");
    CHECK_EQ(jstr_decode(STR_LIT("0123456789abcdef"), out, sizeof(out)), SIZE_MAX);
    CHECK_EQ(jstr_decode(STR_LIT("0123456789abcd\\n"), out, sizeof(out)), 15);
    CHECK_EQ(jstr_decode(STR_LIT("0123456789abcde\\n"), out, sizeof(out)), SIZE_MAX);
}

/* jscan_walk_object() compares a key the scanner saw no escape in by its bytes and length,
 * and decodes one with escapes first: both ways must find the same names. */
static bool record_key(struct jscan *js, int key, void *ctx)
{
    int *got = ctx;

    got[got[0] + 1] = key;
    got[0]++;
    return jscan_skip(js, NULL);
}

static void test_walk_keys(void)
{
    static const char *const names[] = {"name", "nvidia.com/gpu",
                                        "a-name-over-thirty-two-bytes-long-here", "Kind"};
    static const struct {
        const char *doc;
        unsigned flags;
        int want[6]; /* count, then the index found for each member (-1: none) */
    } cases[] = {
        /* plain keys, by bytes and length: a prefix or an extension of a name is not it */
        {"{\"name\":1,\"nam\":2,\"names\":3,\"nvidia.com/gpu\":4}",
         JSCAN_WALK_ALL_KEYS,
         {4, 0, -1, -1, 1}},
        /* escaped keys are decoded: the same names, and a longer raw key may still match */
        {"{\"n\\u0061me\":1,\"nvidia.com\\/gpu\":2,\"n\\u0061mes\":3}",
         JSCAN_WALK_ALL_KEYS,
         {3, 0, 1, -1}},
        /* over 32 bytes the scanner takes its long way, plain or escaped (a name found twice
         * in one object is refused, so one document each) */
        {"{\"a-name-over-thirty-two-bytes-long-here\":1,\"a-name-over-thirty-two-bytes-long-her\":"
         "2}",
         JSCAN_WALK_ALL_KEYS,
         {2, 2, -1}},
        {"{\"a-name-over-thirty-two-bytes-long-her\\u0065\":1}", JSCAN_WALK_ALL_KEYS, {1, 2}},
        /* case-insensitive walks fold plain and escaped keys alike */
        {"{\"KIND\":1,\"kinds\":2}", JSCAN_WALK_ALL_KEYS | JSCAN_WALK_ICASE, {2, 3, -1}},
        {"{\"kin\\u0044\":1,\"NAME\":2}", JSCAN_WALK_ALL_KEYS | JSCAN_WALK_ICASE, {2, 3, 0}},
        /* case matters otherwise */
        {"{\"kind\":1,\"Kind\":2}", JSCAN_WALK_ALL_KEYS, {2, -1, 3}},
    };

    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct jscan js;
        int got[8] = {0};

        jscan_init(&js, cases[c].doc, strlen(cases[c].doc), 8);
        CHECK(jscan_walk_object(&js, names, 4, cases[c].flags, record_key, got));
        CHECK(jscan_finish(&js));
        CHECK_EQ(got[0], cases[c].want[0]);
        for (int i = 0; i < cases[c].want[0]; i++)
            CHECK_EQ(got[i + 1], cases[c].want[i + 1]);
    }
}

/* The escapes jstr_decode() meets in annotation values, and what each stands for. */
static const struct {
    const char *raw, *text;
} pieces[] = {
    {"a", "a"},
    {"{", "{"},
    {"\\\"", "\""},
    {"\\\\", "\\"},
    {"\\/", "/"},
    {"\\n", "\n"},
    {"\\u0041", "A"},
    {"\\u00e9", "\xc3\xa9"},
    {"\\ud83d\\ude00", "\xf0\x9f\x98\x80"},
    {"0123456789", "0123456789"},
};

/* Strings of pieces drawn at random, up to 80 bytes and more, decoded into buffers of every
 * size around what they need: the 16-byte path and the byte path must agree with the pieces
 * (the text, or SIZE_MAX when it and its NUL do not fit) and write nothing past the cap. */
static void test_decode_runs(void)
{
    unsigned seed = 12345;

    for (int round = 0; round < 3000; round++) {
        char raw[512], want[512], out[600];
        size_t rl = 0, wl = 0, pieces_n = (size_t)(round % 24);

        for (size_t k = 0; k < pieces_n; k++) {
            size_t pick;
            seed = seed * 1103515245u + 12345u;
            pick = (seed >> 16) % (sizeof(pieces) / sizeof(pieces[0]));
            memcpy(raw + rl, pieces[pick].raw, strlen(pieces[pick].raw));
            rl += strlen(pieces[pick].raw);
            memcpy(want + wl, pieces[pick].text, strlen(pieces[pick].text));
            wl += strlen(pieces[pick].text);
        }
        for (size_t cap = 0; cap <= wl + 2; cap++) {
            size_t got;
            memset(out, '#', sizeof(out));
            got = jstr_decode((struct str){raw, rl}, out, cap);
            if (cap > wl) {
                CHECK_EQ(got, wl);
                CHECK(memcmp(out, want, wl) == 0 && out[wl] == '\0');
            } else {
                CHECK_EQ(got, SIZE_MAX);
            }
            for (size_t b = cap; b < sizeof(out); b++)
                CHECK(out[b] == '#');
        }
    }
}

static void test_errors_are_sticky(void)
{
    struct jscan js;
    size_t pos;

    jscan_init(&js, "[1, x]", 6, 8);
    CHECK(!jscan_skip(&js, NULL));
    CHECK(jscan_failed(&js));
    CHECK_STR_EQ(jscan_error(&js, &pos), "unexpected character");
    CHECK_EQ(pos, 4);
    CHECK_EQ(jscan_peek(&js), JSON_NONE);
    CHECK(!jscan_enter_object(&js));
}

/* Reads the array in text with jscan_next_string(), or with jscan_next_element() and
 * jscan_string_decoded() when general; writes what it read and how it ended into out. */
static void read_strings(const char *text, bool general, char *out, size_t cap)
{
    struct arena arena;
    struct jscan js;
    size_t len = 0, pos = 0;
    int r;

    arena_init(&arena, 1 << 16);
    jscan_init(&js, text, strlen(text), 64);
    CHECK(jscan_enter_array(&js));
    for (;;) {
        struct str s;
        bool plain = false;
        if (general) {
            r = jscan_next_element(&js);
            if (r == 1 && !jscan_string_decoded(&js, &arena, &s))
                r = -1;
            plain = r == 1 && s.ptr > text && s.ptr < text + strlen(text);
        } else {
            r = jscan_next_string(&js, &arena, &s, &plain);
        }
        if (r != 1)
            break;
        len += (size_t)snprintf(out + len, cap - len, "[%.*s|%d]", (int)s.len, s.ptr, plain);
    }
    if (r == 0)
        r = jscan_finish(&js) ? 0 : -1;
    {
        const char *msg = jscan_error(&js, &pos);
        snprintf(out + len, cap - len, " -> %d %s@%zu", r, msg ? msg : "", pos);
    }
    arena_destroy(&arena);
}

/* The one-pass string reader gives what the general one gives, errors and positions too. */
static void test_next_string(void)
{
    static const char *const cases[] = {
        "[]",
        "[ ]",
        "[\"a\"]",
        "[\"a\",\"bc\" , \"\"]",
        "[\n\"gpu-node-1\",\t\"x\"\r]",
        "[\"a\\\"b\",\"c\"]",
        "[\"\\u0067pu\"]",
        "[\"caf\xc3\xa9\"]",
        "[\"a\",1]",
        "[1]",
        "[\"a\" \"b\"]",
        "[\"a\",]",
        "[\"a\"",
        "[\"abc",
        "[\"a\x01\"]",
        "[\"a\",\"\\q\"]",
        "[\"0123456789abcdef0123456789abcdef\",\"z\"]",
        "[\"a\"]x",
        "[null]",
    };
    char a[512], b[512];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        read_strings(cases[i], false, a, sizeof(a));
        read_strings(cases[i], true, b, sizeof(b));
        if (strcmp(a, b) != 0) {
            fprintf(stderr, "%s: one pass %s, general %s\n", cases[i], a, b);
            abort();
        }
    }
    read_strings("[\"a\",\"b\\n\"]", false, a, sizeof(a));
    CHECK_STR_EQ(a, "[a|1][b\n|0] -> 0 @0");
}

/* Walks text (a one-string array) with jscan_string; writes what it read and how it ended. */
static void read_one(const char *text, size_t len, char *out, size_t cap)
{
    struct jscan js;
    struct str raw = {0};
    const char *msg;
    size_t pos = 0;
    bool ok;

    jscan_init(&js, text, len, 8);
    ok = jscan_enter_array(&js) && jscan_next_element(&js) == 1 && jscan_string(&js, &raw) &&
         jscan_next_element(&js) == 0 && jscan_finish(&js);
    msg = jscan_error(&js, &pos);
    snprintf(out, cap, "%d [%.*s] %s@%zu", ok, (int)raw.len, raw.ptr ? raw.ptr : "", msg ? msg : "",
             pos);
}

/* Strings of every length up to 48 with one byte of each kind at every place in them: read
 * with 40 bytes after them (where the 16- and 32-byte checks run) and at the buffer's end
 * (where they cannot), the two reads agree, errors and positions included. */
static void test_string_fast_path(void)
{
    static const char *const kinds[] = {"",     "\\n",      "\\q",  "\\u00e9",  "\x01", "\t",
                                        "\x7f", "\xc3\xa9", "\x80", "\xe2\x82", "\\\"", "/"};
    char text[160], a[256], b[256];
    unsigned checked = 0;

    for (size_t len = 0; len <= 48; len++) {
        for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
            for (size_t at = 0; at <= len; at++) {
                size_t n = 0, klen = strlen(kinds[k]);
                if (k == 0 && at > 0)
                    break; /* the plain string: once per length */
                text[n++] = '[';
                text[n++] = '"';
                memset(text + n, 'x', len + klen);
                memcpy(text + n + at, kinds[k], klen);
                n += len + klen;
                text[n++] = '"';
                text[n++] = ']';
                read_one(text, n, a, sizeof(a));
                memset(text + n, ' ', 40);
                read_one(text, n + 40, b, sizeof(b));
                if (strcmp(a, b) != 0) {
                    fprintf(stderr, "string %zu+%zu at %zu: at the end %s, with room %s\n", len, k,
                            at, a, b);
                    abort();
                }
                checked++;
            }
        }
    }
    CHECK(checked > 5000);
    {
        const char *exact = "[\"0123456789abcdef0123456789abcdef\"]    ";
        read_one(exact, strlen(exact), a, sizeof(a));
    }
    CHECK_STR_EQ(a, "1 [0123456789abcdef0123456789abcdef] @0");
}

int main(void)
{
    test_string_fast_path();
    test_next_string();
    test_grammar();
    test_nul_byte();
    test_depth();
    test_cursor_and_spans();
    test_escaped_keys();
    test_walk_keys();
    test_decode_runs();
    test_errors_are_sticky();
    printf("test_jscan: ok\n");
    return 0;
}
