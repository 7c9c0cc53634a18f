/* test_err.c -- error names and the error-detail buffer (base/err.c). */
#include "gx/err.h"

#include "check.h"

/* How many codes GX_ERR_MAP declares: a new code must be added to the table below too. */
#define COUNT_ONE(name, text) +1
enum { NCODES = 0 GX_ERR_MAP(COUNT_ONE) };

static void test_err_str(void)
{
    static const struct {
        enum err code;
        int value;
        const char *text;
    } codes[] = {
        {ERR_OK, 0, "ok"},
        {ERR_NOMEM, 1, "out of memory"},
        {ERR_INVALID, 2, "invalid argument"},
        {ERR_PARSE, 3, "malformed input"},
        {ERR_TOO_LARGE, 4, "too large"},
        {ERR_NOT_FOUND, 5, "not found"},
        {ERR_IO, 6, "i/o error"},
        {ERR_TIMEOUT, 7, "timed out"},
        {ERR_UPSTREAM, 8, "upstream error"},
        {ERR_UNAVAILABLE, 9, "unavailable"},
    };

    CHECK_EQ(NCODES, GX_ARRAY_LEN(codes));
    for (size_t i = 0; i < GX_ARRAY_LEN(codes); i++) {
        CHECK_EQ(codes[i].code, codes[i].value);
        CHECK_STR_EQ(err_str(codes[i].code), codes[i].text);
    }
    /* Past the table: a fixed text, never NULL or a neighbour's. */
    CHECK_STR_EQ(err_str((enum err)NCODES), "unknown error");
    CHECK_STR_EQ(err_str((enum err)1000), "unknown error");
    CHECK_STR_EQ(err_str((enum err) - 1), "unknown error");
}

static void test_errbuf_first_wins(void)
{
    struct errbuf eb = ERRBUF_INIT;

    CHECK(!errbuf_is_set(&eb));
    errbuf_set(&eb, "%s:%d:%d: %s", "p.yaml", 7, 12, "inner");
    CHECK(errbuf_is_set(&eb));
    CHECK_STR_EQ(eb.msg, "p.yaml:7:12: inner");
    /* The innermost cause is written first and kept; outer layers cannot overwrite it. */
    errbuf_set(&eb, "outer %d", 2);
    CHECK_STR_EQ(eb.msg, "p.yaml:7:12: inner");
    errbuf_clear(&eb);
    CHECK(!errbuf_is_set(&eb));
    CHECK_STR_EQ(eb.msg, "");
    errbuf_set(&eb, "after clear");
    CHECK_STR_EQ(eb.msg, "after clear");
}

/* An empty message leaves the buffer unset, so the next message still gets in. */
static void test_errbuf_empty_message(void)
{
    struct errbuf eb = ERRBUF_INIT;

    errbuf_set(&eb, "%s", "");
    CHECK(!errbuf_is_set(&eb));
    errbuf_set(&eb, "real");
    CHECK_STR_EQ(eb.msg, "real");
}

static void test_errbuf_null(void)
{
    errbuf_set(NULL, "dropped %d", 1);
    errbuf_clear(NULL);
    CHECK_EQ(errbuf_is_set(NULL), 0);
}

/* A long message is cut to ERRBUF_LEN - 1 bytes and stays NUL-terminated. */
static void test_errbuf_truncates(void)
{
    struct errbuf eb = ERRBUF_INIT;
    char long_text[ERRBUF_LEN + 100];

    memset(long_text, 'x', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    errbuf_set(&eb, "head %s", long_text);
    CHECK_EQ(strlen(eb.msg), ERRBUF_LEN - 1);
    CHECK_EQ(memcmp(eb.msg, "head xxx", 8), 0);
    CHECK_EQ(eb.msg[ERRBUF_LEN - 2], 'x');
    CHECK_EQ(eb.msg[ERRBUF_LEN - 1], '\0');
}

int main(void)
{
    test_err_str();
    test_errbuf_first_wins();
    test_errbuf_empty_message();
    test_errbuf_null();
    test_errbuf_truncates();
    printf("test_err: ok\n");
    return 0;
}
