/* test_buf.c -- the capped byte buffer (base/buf.c): the cap on every kind of append, the
 * JSON string writer byte for byte, and handing the bytes out with buf_take(). */
#include "gx/buf.h"

#include "check.h"

/* The buffer's bytes, its length and its terminating NUL, all at once. */
#define CHECK_BUF(b, want)                                                                         \
    do {                                                                                           \
        CHECK_STRN_EQ((b)->ptr, (b)->len, want);                                                   \
        CHECK_EQ((b)->ptr[(b)->len], '\0');                                                        \
    } while (0)

static void test_append_cap(void)
{
    struct buf b;

    buf_init(&b, 8);
    CHECK(b.ptr == NULL);
    CHECK_EQ(b.len, 0);
    CHECK_EQ(buf_append(&b, "1234", 4), ERR_OK);
    CHECK_EQ(buf_append_str(&b, "5678"), ERR_OK);
    CHECK_BUF(&b, "12345678");
    /* One byte over the cap fails and changes nothing. */
    CHECK_EQ(buf_append(&b, "9", 1), ERR_TOO_LARGE);
    CHECK_BUF(&b, "12345678");
    CHECK_EQ(buf_append_str(&b, "9"), ERR_TOO_LARGE);
    CHECK_BUF(&b, "12345678");
    /* Nothing more fits, but nothing is still fine. */
    CHECK_EQ(buf_append(&b, NULL, 0), ERR_OK);
    CHECK_BUF(&b, "12345678");
    /* The allocation never exceeds the cap and its NUL, though growth starts at 256. */
    CHECK(b.alloc <= 8 + 1);
    buf_destroy(&b);
    CHECK(b.ptr == NULL);
    CHECK_EQ(b.len, 0);
    buf_destroy(&b);

    /* One append larger than the whole cap. */
    buf_init(&b, 8);
    CHECK_EQ(buf_append(&b, "123456789", 9), ERR_TOO_LARGE);
    CHECK_EQ(b.len, 0);
    buf_destroy(&b);

    /* A zero cap holds only the empty string. */
    buf_init(&b, 0);
    CHECK_EQ(buf_append(&b, "", 0), ERR_OK);
    CHECK_BUF(&b, "");
    CHECK_EQ(buf_append(&b, "x", 1), ERR_TOO_LARGE);
    CHECK_BUF(&b, "");
    buf_destroy(&b);
}

/* SIZE_MAX, which a caller may pass to mean "no cap": the cap and the NUL after it must not
 * wrap around. It used to allocate one byte for ten, and reserve SIZE_MAX - len said yes. */
static void test_cap_size_max(void)
{
    struct buf b;

    buf_init(&b, SIZE_MAX);
    CHECK_EQ(buf_append(&b, "0123456789", 10), ERR_OK);
    CHECK_BUF(&b, "0123456789");
    CHECK(b.alloc >= 11);
    CHECK_EQ(buf_reserve(&b, SIZE_MAX - 10), ERR_TOO_LARGE);
    CHECK_EQ(buf_reserve(&b, SIZE_MAX), ERR_TOO_LARGE);
    CHECK_EQ(buf_printf(&b, "%s", "abc"), ERR_OK);
    CHECK_BUF(&b, "0123456789abc");
    buf_destroy(&b);
}

/* Growth past the first allocation keeps every byte, up to exactly the cap. */
static void test_growth(void)
{
    enum { CAP = 10000 };
    struct buf b;

    buf_init(&b, CAP);
    for (size_t i = 0; i < CAP; i++) {
        char c = (char)('a' + i % 26);
        CHECK_EQ(buf_append(&b, &c, 1), ERR_OK);
        CHECK(b.alloc <= CAP + 1);
    }
    CHECK_EQ(b.len, CAP);
    for (size_t i = 0; i < CAP; i++)
        CHECK_EQ(b.ptr[i], 'a' + i % 26);
    CHECK_EQ(b.ptr[CAP], '\0');
    CHECK_EQ(buf_append(&b, "z", 1), ERR_TOO_LARGE);
    CHECK_EQ(b.len, CAP);
    buf_destroy(&b);
}

static void test_reserve(void)
{
    struct buf b;

    buf_init(&b, 100);
    CHECK_EQ(buf_append_str(&b, "abc"), ERR_OK);
    CHECK_EQ(buf_reserve(&b, 97), ERR_OK);
    CHECK(b.alloc >= 3 + 97 + 1);
    CHECK_BUF(&b, "abc");
    CHECK_EQ(buf_reserve(&b, 98), ERR_TOO_LARGE);
    CHECK_EQ(buf_reserve(&b, SIZE_MAX), ERR_TOO_LARGE);
    CHECK_EQ(buf_reserve(&b, SIZE_MAX - 1), ERR_TOO_LARGE);
    CHECK_BUF(&b, "abc");
    buf_destroy(&b);
}

static void test_printf(void)
{
    struct buf b;

    buf_init(&b, 16);
    CHECK_EQ(buf_printf(&b, "%d-%s", -42, "x"), ERR_OK);
    CHECK_BUF(&b, "-42-x");
    CHECK_EQ(buf_printf(&b, "%s", ""), ERR_OK);
    CHECK_BUF(&b, "-42-x");
    /* 11 more bytes reach the cap of 16 exactly. */
    CHECK_EQ(buf_printf(&b, "%05d%6s", 7, "end"), ERR_OK);
    CHECK_BUF(&b, "-42-x00007   end");
    /* Past the cap: an error, and the buffer is as it was. */
    CHECK_EQ(buf_printf(&b, "%c", 'y'), ERR_TOO_LARGE);
    CHECK_BUF(&b, "-42-x00007   end");
    buf_destroy(&b);

    /* One printf over the cap from empty, and one that grows past the first allocation. */
    buf_init(&b, 1000);
    CHECK_EQ(buf_printf(&b, "%1001s", "x"), ERR_TOO_LARGE);
    CHECK_EQ(b.len, 0);
    CHECK_EQ(buf_printf(&b, "%1000s", "x"), ERR_OK);
    CHECK_EQ(b.len, 1000);
    CHECK_EQ(b.ptr[0], ' ');
    CHECK_EQ(b.ptr[999], 'x');
    CHECK_EQ(b.ptr[1000], '\0');
    buf_destroy(&b);
}

/* Input (with its length, so it may hold NULs) and the exact JSON literal expected. */
struct json_case {
    const char *in;
    size_t len;
    const char *want;
};

#define JC(in, want)                                                                               \
    {                                                                                              \
        in, sizeof(in) - 1, want                                                                   \
    }

static const struct json_case json_cases[] = {
    JC("", "\"\""),
    JC("plain text", "\"plain text\""),
    JC("a\"b", "\"a\\\"b\""),
    JC("a\\b", "\"a\\\\b\""),
    JC("\"\\\"", "\"\\\"\\\\\\\"\""),
    /* Every control character is written as \u00XX with lowercase hex, none in short form. */
    JC("\n", "\"\\u000a\""),
    JC("\r\t\b\f", "\"\\u000d\\u0009\\u0008\\u000c\""),
    JC("\x01\x1f", "\"\\u0001\\u001f\""),
    JC("a\x00z", "\"a\\u0000z\""),
    JC("\x00", "\"\\u0000\""),
    /* What JSON allows unescaped stays as it is: '/', DEL, space. */
    JC("/ \x7f", "\"/ \x7f\""),
    /* UTF-8 passes through byte for byte (2, 3 and 4-byte sequences). */
    JC("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
       "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""),
    JC("x\xc3\xa9\n\xc3\xa9", "\"x\xc3\xa9\\u000a\xc3\xa9\""),
    JC("gpu-extender: 2 of 8 free", "\"gpu-extender: 2 of 8 free\""),
};

static void test_json_str(void)
{
    for (size_t i = 0; i < GX_ARRAY_LEN(json_cases); i++) {
        const struct json_case *c = &json_cases[i];
        struct buf b;

        buf_init(&b, 1024);
        CHECK_EQ(buf_append_json_str(&b, c->in, c->len), ERR_OK);
        CHECK_BUF(&b, c->want);
        buf_destroy(&b);
    }
}

/* The length argument rules, not a NUL: text after it is not read. */
static void test_json_str_length(void)
{
    struct buf b;

    buf_init(&b, 64);
    CHECK_EQ(buf_append_json_str(&b, "abc\"def", 3), ERR_OK);
    CHECK_EQ(buf_append(&b, ",", 1), ERR_OK);
    CHECK_EQ(buf_append_json_str(&b, "a\0b", 3), ERR_OK);
    CHECK_BUF(&b, "\"abc\",\"a\\u0000b\"");
    buf_destroy(&b);
}

/* An empty view may have a NULL pointer (STR_NULL, a node with no product label in a bind),
 * as buf_append() allows; UBSan used to stop on "applying zero offset to null pointer". */
static void test_json_str_null(void)
{
    struct buf b;

    buf_init(&b, 16);
    CHECK_EQ(buf_append_json_str(&b, NULL, 0), ERR_OK);
    CHECK_BUF(&b, "\"\"");
    buf_destroy(&b);
}

/* For each case: with a cap of exactly the escaped length (after some text already in the
 * buffer) it fits; one byte less fails with ERR_TOO_LARGE and never writes past the cap. */
static void test_json_str_cap(void)
{
    for (size_t i = 0; i < GX_ARRAY_LEN(json_cases); i++) {
        const struct json_case *c = &json_cases[i];
        size_t need = 2 + strlen(c->want);
        struct buf b;

        buf_init(&b, need);
        CHECK_EQ(buf_append(&b, "[ ", 2), ERR_OK);
        CHECK_EQ(buf_append_json_str(&b, c->in, c->len), ERR_OK);
        CHECK_EQ(b.len, need);
        CHECK_EQ(memcmp(b.ptr + 2, c->want, strlen(c->want)), 0);
        buf_destroy(&b);

        buf_init(&b, need - 1);
        CHECK_EQ(buf_append(&b, "[ ", 2), ERR_OK);
        CHECK_EQ(buf_append_json_str(&b, c->in, c->len), ERR_TOO_LARGE);
        CHECK(b.len <= need - 1);
        CHECK(b.alloc <= need);
        CHECK_EQ(b.ptr[b.len], '\0');
        CHECK_EQ(memcmp(b.ptr, "[ ", 2), 0);
        buf_destroy(&b);
    }
}

/* When not even the unescaped text and its quotes fit, nothing is written at all. */
static void test_json_str_cap_untouched(void)
{
    struct buf b;

    buf_init(&b, 6);
    CHECK_EQ(buf_append(&b, "x", 1), ERR_OK);
    CHECK_EQ(buf_append_json_str(&b, "abcd", 4), ERR_TOO_LARGE);
    CHECK_BUF(&b, "x");
    CHECK_EQ(buf_append_json_str(&b, "abc", 3), ERR_OK);
    CHECK_BUF(&b, "x\"abc\"");
    buf_destroy(&b);
}

static void test_take(void)
{
    struct buf b;
    size_t len = 99;
    char *p;

    /* Nothing was ever written: NULL and a length of 0. */
    buf_init(&b, 32);
    CHECK(buf_take(&b, &len) == NULL);
    CHECK_EQ(len, 0);

    CHECK_EQ(buf_append_str(&b, "hello"), ERR_OK);
    p = buf_take(&b, &len);
    CHECK_EQ(len, 5);
    CHECK_STR_EQ(p, "hello");
    /* The buffer is left empty, owns nothing, and keeps its cap. */
    CHECK(b.ptr == NULL);
    CHECK_EQ(b.len, 0);
    CHECK_EQ(b.alloc, 0);
    CHECK_EQ(b.cap_bytes, 32);
    CHECK_EQ(buf_append_str(&b, "again"), ERR_OK);
    CHECK_BUF(&b, "again");
    CHECK(b.ptr != p);
    free(p);
    /* len_out may be NULL. */
    p = buf_take(&b, NULL);
    CHECK_STR_EQ(p, "again");
    free(p);
    buf_destroy(&b);
}

int main(void)
{
    test_append_cap();
    test_cap_size_max();
    test_growth();
    test_reserve();
    test_printf();
    test_json_str();
    test_json_str_length();
    test_json_str_null();
    test_json_str_cap();
    test_json_str_cap_untouched();
    test_take();
    printf("test_buf: ok\n");
    return 0;
}
