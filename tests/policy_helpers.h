/* policy_helpers.h -- what the policy tests (test_policy.c, test_policy_errors.c,
 * test_policy_limits.c) share: the start of a policy file and the classes most cases use, the
 * texts of the messages that name a rule, and helpers that parse a policy and check that it
 * loads or fails with exactly the given file:line:col messages. Header-only (static inline),
 * so each test file stays one executable. */
#pragma once

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx/compiler.h"
#include "gx/policy.h"

#include "check.h"

#define HEAD "apiVersion: gpu-extender.io/v1alpha1\nkind: GPUPolicy\n"
/* Lines 3-6. */
#define CLASSES                                                                                    \
    "classes:\n"                                                                                   \
    "  - {name: h100, products: [NVIDIA-H100*]}\n"                                                 \
    "  - {name: a100, families: [ampere]}\n"                                                       \
    "  - {name: t4, products: [Tesla-T4]}\n"
#define KNOWN_TOP "apiVersion, kind, scoring, podOverrides, classes, rules, default"
#define KNOWN_RULE "name, match, allow, forbid, prefer, strategy, topology, podOverrides"
#define KNOWN_DEFAULT "allow, forbid, prefer, strategy, topology, podOverrides"

/* The rules that messages about an invalid name, label or label key quote. */
#define NAME_RULE "use 1-63 characters a-z, 0-9 or '-', starting and ending with a letter or digit"
#define LABEL_RULE                                                                                 \
    "1-63 characters A-Z, a-z, 0-9, '-', '_' or '.', starting and ending with a letter or digit"
#define LABEL_KEY_RULE                                                                             \
    "invalid label key: use name or prefix/name, the prefix a DNS subdomain and the "              \
    "name " LABEL_RULE

/* ---- helpers ---- */

static inline enum err parse(const char *text, struct policy **p, struct policy_diag *diag)
{
    return policy_parse("p.yaml", text, strlen(text), p, diag);
}

static inline void dump(const struct policy_diag *diag)
{
    for (size_t i = 0; i < diag->count; i++)
        fprintf(stderr, "  diag[%zu] = %s\n", i, diag->msgs[i]);
}

/* text must fail with want, producing exactly the messages in msgs, in order, and leaving *out
 * untouched. */
static inline void expect_errors(const char *text, enum err want, const char *const *msgs, size_t n)
{
    static struct policy sentinel;
    struct policy *p = &sentinel;
    struct policy_diag diag;
    enum err e;

    e = parse(text, &p, &diag);
    if (e != want || diag.count != n) {
        fprintf(stderr, "for:\n%s\n", text);
        dump(&diag);
    }
    CHECK_EQ(e, want);
    CHECK_EQ(diag.count, n);
    for (size_t i = 0; i < n; i++)
        CHECK_STR_EQ(diag.msgs[i], msgs[i]);
    CHECK(p == &sentinel);
}

static inline void expect_error(const char *text, const char *msg)
{
    expect_errors(text, ERR_INVALID, &msg, 1);
}

static inline struct policy *expect_ok(const char *text)
{
    struct policy *p = NULL;
    struct policy_diag diag;
    enum err e = parse(text, &p, &diag);

    if (e != ERR_OK) {
        fprintf(stderr, "for:\n%s\n", text);
        dump(&diag);
    }
    CHECK_EQ(e, ERR_OK);
    CHECK_EQ(diag.count, 0);
    CHECK(p != NULL);
    CHECK_EQ(atomic_load(&p->refs), 1);
    return p;
}

/* A malloc'd string from a format, for generated policies. */
static inline char *fmt(const char *f, ...) GX_PRINTF(1, 2);

static inline char *fmt(const char *f, ...)
{
    va_list ap;
    char *s;
    int n;

    va_start(ap, f);
    n = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    CHECK(n >= 0);
    s = malloc((size_t)n + 1);
    CHECK(s != NULL);
    va_start(ap, f);
    vsnprintf(s, (size_t)n + 1, f, ap);
    va_end(ap);
    return s;
}

/* Appends to a fixed buffer. */
static inline void cat(char *out, size_t size, const char *f, ...) GX_PRINTF(3, 4);

static inline void cat(char *out, size_t size, const char *f, ...)
{
    size_t used = strlen(out);
    va_list ap;

    va_start(ap, f);
    vsnprintf(out + used, size - used, f, ap);
    va_end(ap);
}
