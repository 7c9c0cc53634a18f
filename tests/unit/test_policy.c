/* test_policy.c -- policy_parse()/policy_load() against the schema table: defaults, the shipped
 * policy/default.yaml, every class of error with its exact file:line:col, error collection,
 * boundaries, the README-vs-table key check, and hostile YAML (which must fail cleanly under
 * ASan/UBSan rather than crash or exhaust memory). */
#include "gx/policy.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config/policy_schema.h"

#define HEAD "apiVersion: gpu-extender.io/v1alpha1\nkind: GPUPolicy\n"

static enum err parse(const char *text, struct policy *p, struct policy_diag *diag)
{
    return policy_parse("p.yaml", text, strlen(text), p, diag);
}

static void dump(const struct policy_diag *diag)
{
    for (size_t i = 0; i < diag->count; i++)
        fprintf(stderr, "  diag[%zu] = %s\n", i, diag->msgs[i]);
}

/* text must fail with want, producing exactly the messages in msgs, in order, and leaving the
 * output struct untouched. */
static void expect_errors(const char *text, enum err want, const char *const *msgs, size_t n)
{
    struct policy p, before;
    struct policy_diag diag;
    enum err e;

    memset(&p, 0xab, sizeof(p));
    before = p;
    e = parse(text, &p, &diag);
    if (e != want || diag.count != n)
        dump(&diag);
    CHECK_EQ(e, want);
    CHECK_EQ(diag.count, n);
    for (size_t i = 0; i < n; i++)
        CHECK_STR_EQ(diag.msgs[i], msgs[i]);
    CHECK(memcmp(&p, &before, sizeof(p)) == 0);
}

static void expect_error(const char *text, const char *msg)
{
    expect_errors(text, ERR_INVALID, &msg, 1);
}

static void expect_ok(const char *text, struct policy *p)
{
    struct policy_diag diag;
    enum err e = parse(text, p, &diag);

    if (e != ERR_OK)
        dump(&diag);
    CHECK_EQ(e, ERR_OK);
    CHECK_EQ(diag.count, 0);
}

static void check_same_settings(const struct policy *a, const struct policy *b)
{
    CHECK_EQ(a->strategy, b->strategy);
    CHECK_EQ(a->weight_free_gpus, b->weight_free_gpus);
    CHECK_EQ(a->weight_model, b->weight_model);
    CHECK_EQ(a->pod_may_set_strategy, b->pod_may_set_strategy);
}

static void fnv1a_hex(const char *text, size_t len, char out[17])
{
    uint64_t h = 0xcbf29ce484222325u;

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)text[i];
        h *= 0x100000001b3u;
    }
    snprintf(out, 17, "%016" PRIx64, h);
}

static char *source_path(const char *rel)
{
    const char *root = getenv("GX_SOURCE_DIR");
    size_t n;
    char *p;

    CHECK(root != NULL);
    n = strlen(root) + strlen(rel) + 2;
    p = malloc(n);
    CHECK(p != NULL);
    snprintf(p, n, "%s/%s", root, rel);
    return p;
}

static void test_defaults(void)
{
    struct policy p;

    policy_default(&p);
    CHECK_EQ(p.strategy, POLICY_BINPACK);
    CHECK_EQ(p.weight_free_gpus, 1);
    CHECK_EQ(p.weight_model, 4);
    CHECK(p.pod_may_set_strategy);
    CHECK_STR_EQ(p.source, "embedded default");
    CHECK_STR_EQ(p.hash, "0000000000000000");
    CHECK_STR_EQ(policy_strategy_name(POLICY_BINPACK), "binpack");
    CHECK_STR_EQ(policy_strategy_name(POLICY_SPREAD), "spread");
    CHECK_STR_EQ(policy_strategy_name((enum policy_strategy)7), "unknown");
}

static void test_default_yaml(void)
{
    char *path = source_path("policy/default.yaml");
    struct policy def, p;
    struct policy_diag diag;
    char want_hash[17];
    size_t len;
    char *text = check_read_file(path, &len);
    enum err e = policy_load(path, &p, &diag);

    if (e != ERR_OK)
        dump(&diag);
    CHECK_EQ(e, ERR_OK);
    policy_default(&def);
    check_same_settings(&p, &def);
    CHECK_STR_EQ(p.source, path);
    fnv1a_hex(text, len, want_hash);
    CHECK_STR_EQ(p.hash, want_hash);
    free(text);
    free(path);
}

static void test_valid(void)
{
    struct policy p;

    expect_ok(HEAD, &p);
    CHECK_EQ(p.weight_model, 4);
    CHECK_STR_EQ(p.source, "p.yaml");
    CHECK_EQ(strlen(p.hash), 16);
    CHECK_EQ(strspn(p.hash, "0123456789abcdef"), 16);

    expect_ok(HEAD "scoring:\n"
                   "  strategy: \"spread\"\n"
                   "  weights: {freeGPUs: 0, model: 100}\n"
                   "podOverrides:\n"
                   "  strategy: false\n",
              &p);
    CHECK_EQ(p.strategy, POLICY_SPREAD);
    CHECK_EQ(p.weight_free_gpus, 0);
    CHECK_EQ(p.weight_model, 100);
    CHECK(!p.pod_may_set_strategy);

    expect_ok("# comment first\n" HEAD "scoring: {weights: {freeGPUs: 100, model: 0}}\n", &p);
    CHECK_EQ(p.weight_free_gpus, 100);
    CHECK_EQ(p.weight_model, 0);
    CHECK_EQ(p.strategy, POLICY_BINPACK);
}

static void test_boundaries(void)
{
    expect_error(HEAD "scoring:\n  weights:\n    model: -1\n",
                 "p.yaml:5:12: scoring.weights.model: must be 0..100, got -1");
    expect_error(HEAD "scoring:\n  weights:\n    model: 101\n",
                 "p.yaml:5:12: scoring.weights.model: must be 0..100, got 101");
    expect_error(HEAD "scoring:\n  weights:\n    freeGPUs: 250\n",
                 "p.yaml:5:15: scoring.weights.freeGPUs: must be 0..100, got 250");
    expect_error(HEAD "scoring: {weights: {model: 99999999999999999999}}\n",
                 "p.yaml:3:28: scoring.weights.model: must be 0..100, got 99999999999999999999");
}

static void test_type_errors(void)
{
    expect_error(HEAD "scoring:\n  weights:\n    model: abc\n",
                 "p.yaml:5:12: scoring.weights.model: expected an integer 0..100, got \"abc\"");
    expect_error(HEAD "scoring:\n  weights:\n    model: \"4\"\n",
                 "p.yaml:5:12: scoring.weights.model: expected an integer 0..100, "
                 "got quoted \"4\"");
    expect_error(HEAD "scoring:\n  weights:\n    model: 1.5\n",
                 "p.yaml:5:12: scoring.weights.model: expected an integer 0..100, got \"1.5\"");
    expect_error(HEAD "scoring:\n  weights:\n    model:\n",
                 "p.yaml:5:11: scoring.weights.model: expected an integer 0..100, got null");
    expect_error(HEAD "scoring:\n  strategy: {a: b}\n",
                 "p.yaml:4:13: scoring.strategy: expected binpack or spread, got a mapping");
    expect_error(HEAD "scoring:\n  strategy: [binpack]\n",
                 "p.yaml:4:13: scoring.strategy: expected binpack or spread, got a sequence");
    expect_error(HEAD "podOverrides:\n  strategy: yes\n",
                 "p.yaml:4:13: podOverrides.strategy: expected true or false, got \"yes\"");
    expect_error(HEAD "podOverrides:\n  strategy: True\n",
                 "p.yaml:4:13: podOverrides.strategy: expected true or false, got \"True\"");
    expect_error(HEAD "podOverrides:\n  strategy: 'true'\n",
                 "p.yaml:4:13: podOverrides.strategy: expected true or false, got quoted \"true\"");
    expect_error(HEAD "scoring: 5\n", "p.yaml:3:10: scoring: expected a mapping, got a scalar");
    expect_error(HEAD "scoring:\n", "p.yaml:3:9: scoring: expected a mapping, got null");
}

static void test_enum_errors(void)
{
    expect_error(HEAD "scoring:\n  strategy: fill\n",
                 "p.yaml:4:13: scoring.strategy: expected binpack or spread, got \"fill\"");
    expect_error(HEAD "scoring:\n  strategy: BinPack\n",
                 "p.yaml:4:13: scoring.strategy: expected binpack or spread, got \"BinPack\"");
    expect_error("apiVersion: v1\nkind: GPUPolicy\n",
                 "p.yaml:1:13: apiVersion: expected gpu-extender.io/v1alpha1, got \"v1\"");
    expect_error("apiVersion: gpu-extender.io/v1alpha1\nkind: Deployment\n",
                 "p.yaml:2:7: kind: expected GPUPolicy, got \"Deployment\"");
}

static void test_key_errors(void)
{
    expect_error(HEAD "foo: 1\n", "p.yaml:3:1: foo: unknown key (known keys here: apiVersion, "
                                  "kind, scoring, podOverrides)");
    expect_error(HEAD "scoring:\n  weights:\n    gpus: 1\n",
                 "p.yaml:5:5: scoring.weights.gpus: unknown key (known keys here: freeGPUs, "
                 "model)");
    expect_error(HEAD "scoring.strategy: spread\n",
                 "p.yaml:3:1: scoring.strategy: unknown key (known keys here: apiVersion, kind, "
                 "scoring, podOverrides)");
    expect_error(HEAD "kind: GPUPolicy\n", "p.yaml:3:1: kind: duplicate key");
    expect_error(HEAD "scoring: {strategy: spread}\nscoring: {strategy: binpack}\n",
                 "p.yaml:4:1: scoring: duplicate key");
    expect_error(HEAD "scoring:\n  weights: {model: 1, model: 2}\n",
                 "p.yaml:4:23: scoring.weights.model: duplicate key");
    expect_error("kind: GPUPolicy\n", "p.yaml:1:1: apiVersion: required key is missing");
    expect_error("# a policy\n\napiVersion: gpu-extender.io/v1alpha1\n",
                 "p.yaml:3:1: kind: required key is missing");
}

static void test_document_errors(void)
{
    static const char *const missing[] = {
        "p.yaml:1:1: apiVersion: required key is missing",
        "p.yaml:1:1: kind: required key is missing",
    };
    const char *msg;
    struct policy p;
    struct policy_diag diag;

    expect_error("", "p.yaml:1:1: the policy is empty; it needs at least apiVersion and kind");
    expect_error("# only a comment\n",
                 "p.yaml:1:1: the policy is empty; it needs at least apiVersion and kind");
    expect_error("---\n", "p.yaml:2:1: the policy is empty; it needs at least apiVersion and kind");
    expect_error("- a\n- b\n", "p.yaml:1:1: expected a mapping at the top level, got a sequence");
    expect_errors("{}\n", ERR_INVALID, missing, 2);
    expect_error(HEAD "scoring:\n  weights:\n    freeGPUs: 0\n    model: 0\n",
                 "p.yaml:5:5: scoring.weights: every weight is 0, so all nodes would score the "
                 "same; set at least one above 0");

    msg = "p.yaml:4:1: invalid YAML: could not find expected ':' (while scanning a simple key at "
          "3:1)";
    expect_errors(HEAD "scoring\nfoo: 1\n", ERR_PARSE, &msg, 1);
    msg = "p.yaml:3:1: only one YAML document is allowed";
    expect_errors(HEAD "---\n" HEAD, ERR_PARSE, &msg, 1);

    /* policy_parse() takes a length, not a C string. */
    CHECK_EQ(policy_parse("p.yaml", HEAD "scoring: {strategy: spread}", strlen(HEAD), &p, &diag),
             ERR_OK);
    CHECK_EQ(p.strategy, POLICY_BINPACK);
    CHECK_EQ(policy_parse("p.yaml", HEAD, strlen(HEAD), &p, NULL), ERR_OK);
    CHECK_EQ(policy_parse("p.yaml", "kind: x", 7, &p, NULL), ERR_INVALID);
}

static void test_many_errors(void)
{
    static const char text[] = HEAD "scoring:\n"
                                    "  strategy: sideways\n"
                                    "  weights:\n"
                                    "    freeGPUs: 101\n"
                                    "    model: many\n"
                                    "    extra: 1\n"
                                    "podOverrides:\n"
                                    "  strategy: maybe\n"
                                    "colour: blue\n";
    static const char *const msgs[] = {
        "p.yaml:4:13: scoring.strategy: expected binpack or spread, got \"sideways\"",
        "p.yaml:6:15: scoring.weights.freeGPUs: must be 0..100, got 101",
        "p.yaml:7:12: scoring.weights.model: expected an integer 0..100, got \"many\"",
        "p.yaml:8:5: scoring.weights.extra: unknown key (known keys here: freeGPUs, model)",
        "p.yaml:10:13: podOverrides.strategy: expected true or false, got \"maybe\"",
        ("p.yaml:11:1: colour: unknown key (known keys here: apiVersion, kind, scoring, "
         "podOverrides)"),
    };

    expect_errors(text, ERR_INVALID, msgs, sizeof(msgs) / sizeof(msgs[0]));
}

/* Past POLICY_MAX_ERRORS the rest is dropped, but the load still fails. */
static void test_error_cap(void)
{
    char text[4096];
    size_t used = (size_t)snprintf(text, sizeof(text), "%s", HEAD);
    struct policy p;
    struct policy_diag diag;

    for (int i = 0; i < 50; i++)
        used += (size_t)snprintf(text + used, sizeof(text) - used, "unknown%d: 1\n", i);
    CHECK_EQ(parse(text, &p, &diag), ERR_INVALID);
    CHECK_EQ(diag.count, POLICY_MAX_ERRORS);
    CHECK_STR_EQ(diag.msgs[POLICY_MAX_ERRORS - 1],
                 "p.yaml:22:1: unknown19: unknown key (known keys here: apiVersion, kind, "
                 "scoring, podOverrides)");
}

static void test_names(void)
{
    char name[1000];
    struct policy p;
    struct policy_diag diag;

    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    CHECK_EQ(policy_parse(name, HEAD, strlen(HEAD), &p, &diag), ERR_OK);
    CHECK_EQ(strlen(p.source), sizeof(p.source) - 1);
    CHECK_EQ(policy_parse(name, "x: 1", 4, &p, &diag), ERR_INVALID);
    CHECK(strlen(diag.msgs[0]) < sizeof(diag.msgs[0]));
    CHECK(strstr(diag.msgs[0], ":1:1: x: unknown key") != NULL);
    CHECK_EQ(policy_parse(NULL, HEAD, strlen(HEAD), &p, &diag), ERR_OK);
}

static void test_load_errors(void)
{
    char dir[] = "/tmp/gx-policy-XXXXXX";
    char path[64];
    struct policy p;
    struct policy_diag diag;
    FILE *f;

    CHECK_EQ(policy_load("/nonexistent/gx/policy.yaml", &p, &diag), ERR_IO);
    CHECK_EQ(diag.count, 1);
    CHECK(strstr(diag.msgs[0], "/nonexistent/gx/policy.yaml: cannot open") != NULL);

    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/big.yaml", dir);
    f = fopen(path, "wb");
    CHECK(f != NULL);
    fputs(HEAD, f);
    for (size_t i = 0; i < POLICY_MAX_FILE_BYTES / 16; i++)
        fputs("# padding line.\n", f); /* 16 bytes; with HEAD just past the cap */
    CHECK_EQ(fclose(f), 0);
    CHECK_EQ(policy_load(path, &p, &diag), ERR_TOO_LARGE);
    CHECK_EQ(diag.count, 1);
    CHECK(strstr(diag.msgs[0], "file is larger than 1048576 bytes") != NULL);
    CHECK_EQ(policy_load(dir, &p, &diag), ERR_IO); /* a directory cannot be read */
    CHECK_EQ(unlink(path), 0);
    CHECK_EQ(rmdir(dir), 0);
}

/* Every "### key" heading in policy/README.md must be a schema key and vice versa. */
static void test_readme_matches_schema(void)
{
    char *path = source_path("policy/README.md");
    char *text = check_read_file(path, NULL);
    size_t documented = 0;
    bool seen[64] = {false};

    CHECK(policy_schema_count() <= sizeof(seen) / sizeof(seen[0]));
    for (char *p = text; p && *p;) {
        char *eol = strchr(p, '\n');
        size_t i;

        if (eol)
            *eol = '\0';
        if (strncmp(p, "### ", 4) == 0) {
            for (i = 0; i < policy_schema_count(); i++) {
                if (strcmp(policy_schema_key(i), p + 4) == 0)
                    break;
            }
            if (i == policy_schema_count())
                fprintf(stderr, "README documents a key the schema lacks: %s\n", p + 4);
            CHECK(i < policy_schema_count());
            CHECK(!seen[i]);
            seen[i] = true;
            documented++;
        }
        p = eol ? eol + 1 : NULL;
    }
    for (size_t i = 0; i < policy_schema_count(); i++) {
        if (!seen[i])
            fprintf(stderr, "README does not document schema key %s\n", policy_schema_key(i));
        CHECK(seen[i]);
    }
    CHECK_EQ(documented, policy_schema_count());
    CHECK(policy_schema_key(policy_schema_count()) == NULL);
    free(text);
    free(path);
}

/* Builds count copies of unit between head and tail into a malloc'd string. */
static char *repeat(const char *head, const char *unit, size_t count, const char *tail)
{
    size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
    char *s = malloc(hl + ul * count + tl + 1);
    char *w = s;

    CHECK(s != NULL);
    memcpy(w, head, hl);
    w += hl;
    for (size_t i = 0; i < count; i++, w += ul)
        memcpy(w, unit, ul);
    memcpy(w, tail, tl + 1);
    return s;
}

static void expect_parse_error_containing(const char *text, size_t len, const char *needle)
{
    struct policy p;
    struct policy_diag diag;

    CHECK_EQ(policy_parse("h.yaml", text, len, &p, &diag), ERR_PARSE);
    CHECK_EQ(diag.count, 1);
    if (!strstr(diag.msgs[0], needle))
        dump(&diag);
    CHECK(strstr(diag.msgs[0], needle) != NULL);
}

static void test_hostile_structure(void)
{
    char *s;
    char *closers;

    closers = repeat("", "]", 200, "");
    s = repeat(HEAD "x: ", "[", 200, closers);
    expect_parse_error_containing(s, strlen(s), "h.yaml:3:67: nesting is deeper than 64 levels");
    free(s);
    free(closers);

    s = repeat("", "{a: ", 100000, "");
    expect_parse_error_containing(s, strlen(s), "nesting is deeper than 64 levels");
    free(s);

    {
        size_t size = 100 * 210, used = 0;
        char *lines = malloc(size);
        CHECK(lines != NULL);
        for (int d = 0; d < 100; d++)
            used += (size_t)snprintf(lines + used, size - used, "%*sk:\n", 2 * d, "");
        expect_parse_error_containing(lines, used, "h.yaml:65:129: nesting is deeper than 64");
        free(lines);
    }

    s = repeat(HEAD "x: [", "0,", 100000, "0]\n");
    expect_parse_error_containing(s, strlen(s), "document has more than 65536 nodes");
    free(s);
}

static void test_hostile_yaml_features(void)
{
    static const char laughs[] = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
                                 "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                                 "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                                 "d: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n";
    static const char alias_only[] = HEAD "scoring: *s\n";
    static const char tagged[] = HEAD "scoring:\n  weights:\n    model: !!int 4\n";
    static const char key_map[] = HEAD "? [a, b]\n: 1\n";
    static const char nul[] = "apiVersion: gpu\0extender\n";
    static const char bad_utf8[] = HEAD "kind: \xff\xfe\n";

    expect_parse_error_containing(laughs, strlen(laughs),
                                  "h.yaml:1:4: YAML anchors (&a) are not supported");
    expect_parse_error_containing(alias_only, strlen(alias_only),
                                  "h.yaml:3:10: YAML aliases (*name) are not supported");
    expect_parse_error_containing(
        tagged, strlen(tagged), "h.yaml:5:12: YAML tags (tag:yaml.org,2002:int) are not supported");
    expect_parse_error_containing(key_map, strlen(key_map),
                                  "h.yaml:3:3: mapping keys must be plain strings");
    expect_parse_error_containing(nul, sizeof(nul) - 1, "h.yaml:1:16: invalid YAML");
    expect_parse_error_containing(bad_utf8, sizeof(bad_utf8) - 1, "h.yaml:3:7: invalid YAML");
}

static uint32_t xorshift(uint32_t *state)
{
    uint32_t x = *state;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

/* Success comes without messages; failure always says why. */
static void check_outcome(enum err e, const struct policy_diag *diag)
{
    if (e == ERR_OK)
        CHECK_EQ(diag->count, 0);
    else
        CHECK(diag->count >= 1 && diag->count <= POLICY_MAX_ERRORS);
}

/* Random bytes, YAML punctuation soup and single-byte mutations of a valid policy: none may
 * crash, leak or trip a sanitizer. Byte soup must never be accepted. */
static void test_garbage(void)
{
    static const char soup[] = "[]{}:,-?&*!|>'\"#%@`\n\n\n    \tab0~.";
    static const char valid[] = HEAD "scoring:\n  strategy: spread\n  weights: {freeGPUs: 2, "
                                     "model: 3}\npodOverrides:\n  strategy: false\n";
    uint32_t seed = 0x9e3779b9u;
    char buf[600];
    struct policy p;
    struct policy_diag diag;

    for (int round = 0; round < 3000; round++) {
        size_t len = xorshift(&seed) % sizeof(buf);
        for (size_t i = 0; i < len; i++)
            buf[i] = (char)(xorshift(&seed) & 0xff);
        CHECK(policy_parse("g.yaml", buf, len, &p, &diag) != ERR_OK);
        CHECK(diag.count >= 1 && diag.count <= POLICY_MAX_ERRORS);

        for (size_t i = 0; i < len; i++)
            buf[i] = soup[xorshift(&seed) % (sizeof(soup) - 1)];
        check_outcome(policy_parse("g.yaml", buf, len, &p, &diag), &diag);

        memcpy(buf, valid, sizeof(valid) - 1);
        buf[xorshift(&seed) % (sizeof(valid) - 1)] = (char)(xorshift(&seed) & 0xff);
        check_outcome(policy_parse("g.yaml", buf, sizeof(valid) - 1, &p, &diag), &diag);
    }
}

int main(void)
{
    test_defaults();
    test_default_yaml();
    test_valid();
    test_boundaries();
    test_type_errors();
    test_enum_errors();
    test_key_errors();
    test_document_errors();
    test_many_errors();
    test_error_cap();
    test_names();
    test_load_errors();
    test_readme_matches_schema();
    test_hostile_structure();
    test_hostile_yaml_features();
    test_garbage();
    printf("test_policy: ok\n");
    return 0;
}
