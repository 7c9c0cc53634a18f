/* test_str.c -- string views and range-checked number parsing (base/str.c). */
#include "gx/str.h"

#include "check.h"

/* One row per input: the text, the range, what str_to_i64 must return and, on success, the
 * value. A rejected input must leave *out alone. */
struct number_case {
    const char *text;
    int64_t min, max;
    enum err want;
    int64_t value;
};

#define ANY INT64_MIN, INT64_MAX

static const struct number_case number_cases[] = {
    {"0", ANY, ERR_OK, 0},
    {"-0", ANY, ERR_OK, 0},
    {"+0", ANY, ERR_OK, 0},
    {"7", ANY, ERR_OK, 7},
    {"+7", ANY, ERR_OK, 7},
    {"-7", ANY, ERR_OK, -7},
    {"007", ANY, ERR_OK, 7},
    {"1234567890", ANY, ERR_OK, 1234567890},
    /* The ends of int64_t, and one past each. */
    {"9223372036854775807", ANY, ERR_OK, INT64_MAX},
    {"+9223372036854775807", ANY, ERR_OK, INT64_MAX},
    {"9223372036854775808", ANY, ERR_INVALID, 0},
    {"-9223372036854775808", ANY, ERR_OK, INT64_MIN},
    {"-9223372036854775809", ANY, ERR_INVALID, 0},
    {"-9223372036854775807", ANY, ERR_OK, INT64_MIN + 1},
    /* Past uint64_t, where the accumulator itself would wrap. */
    {"18446744073709551615", ANY, ERR_INVALID, 0},
    {"18446744073709551616", ANY, ERR_INVALID, 0},
    {"-18446744073709551616", ANY, ERR_INVALID, 0},
    {"99999999999999999999999999999", ANY, ERR_INVALID, 0},
    /* Not a number at all. */
    {"", ANY, ERR_PARSE, 0},
    {"-", ANY, ERR_PARSE, 0},
    {"+", ANY, ERR_PARSE, 0},
    {"--1", ANY, ERR_PARSE, 0},
    {"+-1", ANY, ERR_PARSE, 0},
    {"-+1", ANY, ERR_PARSE, 0},
    {" 1", ANY, ERR_PARSE, 0},
    {"1 ", ANY, ERR_PARSE, 0},
    {"\t1", ANY, ERR_PARSE, 0},
    {"1\n", ANY, ERR_PARSE, 0},
    {"- 1", ANY, ERR_PARSE, 0},
    {"1a", ANY, ERR_PARSE, 0},
    {"a1", ANY, ERR_PARSE, 0},
    {"12x34", ANY, ERR_PARSE, 0},
    {"0x10", ANY, ERR_PARSE, 0},
    {"1.5", ANY, ERR_PARSE, 0},
    {"1e3", ANY, ERR_PARSE, 0},
    {"1,000", ANY, ERR_PARSE, 0},
    {"/", ANY, ERR_PARSE, 0}, /* the bytes either side of '0'..'9' */
    {":", ANY, ERR_PARSE, 0},
    {"\xd9\xa3", ANY, ERR_PARSE, 0}, /* ARABIC-INDIC DIGIT THREE is not a digit here */
    /* The range, inclusive at both ends. */
    {"5", 5, 5, ERR_OK, 5},
    {"4", 5, 10, ERR_INVALID, 0},
    {"5", 5, 10, ERR_OK, 5},
    {"10", 5, 10, ERR_OK, 10},
    {"11", 5, 10, ERR_INVALID, 0},
    {"-1", 0, 100, ERR_INVALID, 0},
    {"-0", 0, 100, ERR_OK, 0},
    {"-10", -10, -1, ERR_OK, -10},
    {"-11", -10, -1, ERR_INVALID, 0},
    {"0", -10, -1, ERR_INVALID, 0},
    {"1023", 1024, 4LL << 30, ERR_INVALID, 0},
    {"1024", 1024, 4LL << 30, ERR_OK, 1024},
    {"4294967296", 1024, 4LL << 30, ERR_OK, 4LL << 30},
    {"4294967297", 1024, 4LL << 30, ERR_INVALID, 0},
    /* Junk is a parse error even when the digits would be out of range. */
    {"11x", 5, 10, ERR_PARSE, 0},
};

static void test_to_i64_table(void)
{
    for (size_t i = 0; i < GX_ARRAY_LEN(number_cases); i++) {
        const struct number_case *c = &number_cases[i];
        int64_t v = 4242;
        enum err e = str_to_i64_cstr(c->text, c->min, c->max, &v);
        int64_t want = c->want == ERR_OK ? c->value : 4242;

        if (e != c->want || v != want) {
            fprintf(stderr,
                    "str_to_i64(\"%s\", %" PRId64 ", %" PRId64 "): got %s %" PRId64
                    ", want %s %" PRId64 "\n",
                    c->text, c->min, c->max, err_str(e), v, err_str(c->want), want);
            abort();
        }
    }
}

/* A view is parsed to its length, never to a NUL. */
static void test_to_i64_views(void)
{
    int64_t v = 0;

    CHECK_EQ(str_to_i64((struct str){"12345", 2}, ANY, &v), ERR_OK);
    CHECK_EQ(v, 12);
    CHECK_EQ(str_to_i64((struct str){"-9", 1}, ANY, &v), ERR_PARSE);
    CHECK_EQ(str_to_i64((struct str){"1\0002", 3}, ANY, &v), ERR_PARSE);
    CHECK_EQ(str_to_i64((struct str){"9x", 1}, ANY, &v), ERR_OK);
    CHECK_EQ(v, 9);
    CHECK_EQ(str_to_i64(STR_NULL, ANY, &v), ERR_PARSE);
    CHECK_EQ(str_to_i64_cstr(NULL, ANY, &v), ERR_PARSE);
    CHECK_EQ(v, 9);
}

static void test_compare(void)
{
    CHECK(str_eq(STR_LIT("abc"), STR_LIT("abc")));
    CHECK(!str_eq(STR_LIT("abc"), STR_LIT("abd")));
    CHECK(!str_eq(STR_LIT("abc"), STR_LIT("ab")));
    CHECK(str_eq(STR_NULL, STR_LIT("")));
    CHECK(str_eq((struct str){"abX", 2}, STR_LIT("ab")));
    CHECK(str_eq_cstr(STR_LIT("x"), "x"));
    CHECK(str_eq_cstr(STR_NULL, NULL));
    CHECK(!str_eq_cstr(STR_LIT("x"), NULL));
    CHECK(str_ieq(STR_LIT("Content-Type"), STR_LIT("content-TYPE")));
    CHECK(!str_ieq(STR_LIT("a"), STR_LIT("ab")));
    /* Only ASCII letters fold: '@' and '`' sit next to 'A' and 'a', and are not equal. */
    CHECK(!str_ieq(STR_LIT("@"), STR_LIT("`")));
    CHECK(!str_ieq(STR_LIT("\xc3\xa9"), STR_LIT("\xc3\x89")));
    CHECK(str_ieq_cstr(STR_LIT("NodeNames"), "nodenames"));
    CHECK(str_icontains(STR_LIT("Hello World"), STR_LIT("o w")));
    CHECK(str_icontains(STR_LIT("abc"), STR_LIT("ABC")));
    CHECK(str_icontains(STR_LIT("abc"), STR_NULL));
    CHECK(str_icontains(STR_NULL, STR_NULL));
    CHECK(!str_icontains(STR_LIT("ab"), STR_LIT("abc")));
    CHECK(!str_icontains(STR_LIT("abcab"), STR_LIT("ac")));
    CHECK(str_has_prefix(STR_LIT("/gpu/filter"), "/gpu/"));
    CHECK(str_has_prefix(STR_LIT("abc"), ""));
    CHECK(str_has_prefix(STR_LIT("abc"), "abc"));
    CHECK(!str_has_prefix(STR_LIT("ab"), "abc"));
    CHECK(!str_has_prefix((struct str){"abc", 2}, "abc"));
    CHECK_EQ(str_from_cstr(NULL).len, 0);
    CHECK(str_from_cstr(NULL).ptr == NULL);
    CHECK_EQ(str_from_cstr("four").len, 4);
}

static void test_trim(void)
{
    struct str t = str_trim(STR_LIT(" \t a b \t "));

    CHECK_STRN_EQ(t.ptr, t.len, "a b");
    t = str_trim(STR_LIT(" \t "));
    CHECK_EQ(t.len, 0);
    t = str_trim(STR_NULL);
    CHECK_EQ(t.len, 0);
    /* Only spaces and tabs: a newline stays. */
    t = str_trim(STR_LIT("\nx\n"));
    CHECK_STRN_EQ(t.ptr, t.len, "\nx\n");
}

static void test_split(void)
{
    struct str s = STR_LIT("a,,bc,");
    struct str item;

    CHECK(str_split(&s, ',', &item));
    CHECK_STRN_EQ(item.ptr, item.len, "a");
    CHECK(str_split(&s, ',', &item));
    CHECK_STRN_EQ(item.ptr, item.len, "");
    CHECK(str_split(&s, ',', &item));
    CHECK_STRN_EQ(item.ptr, item.len, "bc");
    /* A trailing separator ends the list: no empty item after it. */
    CHECK(!str_split(&s, ',', &item));
    CHECK_EQ(s.len, 0);

    s = STR_LIT("only");
    CHECK(str_split(&s, ',', &item));
    CHECK_STRN_EQ(item.ptr, item.len, "only");
    CHECK(!str_split(&s, ',', &item));

    s = STR_NULL;
    CHECK(!str_split(&s, ',', &item));
    s = STR_LIT("");
    CHECK(!str_split(&s, ',', &item));
}

int main(void)
{
    test_to_i64_table();
    test_to_i64_views();
    test_compare();
    test_trim();
    test_split();
    printf("test_str: ok\n");
    return 0;
}
