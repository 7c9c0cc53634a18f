/* check.h -- test assertions (after libuv's task.h). Each prints both operands and
 * file:line, then aborts, so a failing test names what it saw. */
#pragma once

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #x);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                            \
        if (check_a_ != check_b_) {                                                                \
            fprintf(stderr, "%s:%d: CHECK_EQ(%s, %s) failed: %lld != %lld\n", __FILE__, __LINE__,  \
                    #a, #b, check_a_, check_b_);                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_STR_EQ(a, b)                                                                         \
    do {                                                                                           \
        const char *check_a_ = (a), *check_b_ = (b);                                               \
        if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_) != 0) {                           \
            fprintf(stderr, "%s:%d: CHECK_STR_EQ(%s, %s) failed:\n  \"%s\"\n  \"%s\"\n", __FILE__, \
                    __LINE__, #a, #b, check_a_ ? check_a_ : "(null)",                              \
                    check_b_ ? check_b_ : "(null)");                                               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Compares a length-counted view with a C string. */
#define CHECK_STRN_EQ(ptr, len, b)                                                                 \
    do {                                                                                           \
        const char *check_b_ = (b);                                                                \
        size_t check_len_ = (size_t)(len);                                                         \
        if (strlen(check_b_) != check_len_ || memcmp((ptr), check_b_, check_len_) != 0) {          \
            fprintf(stderr, "%s:%d: CHECK_STRN_EQ failed:\n  \"%.*s\"\n  \"%s\"\n", __FILE__,      \
                    __LINE__, (int)check_len_, (const char *)(ptr), check_b_);                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Reads a whole file into a malloc'd NUL-terminated buffer; aborts on failure. */
static inline char *check_read_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    char *data;
    long n;

    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        abort();
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = malloc((size_t)n + 1);
    if (!data || fread(data, 1, (size_t)n, f) != (size_t)n)
        abort();
    data[n] = '\0';
    fclose(f);
    if (len_out)
        *len_out = (size_t)n;
    return data;
}
