/* test_routes_golden.c -- runs every case file in tests/data/routes through routes_handle(),
 * with no socket, and compares the status, content type and body byte for byte (curl's
 * tests/data idea, STYLE.md 2.9). The file format is in tests/data/routes/README.md: adding a
 * case means adding a file. A mismatch names the file and shows where the bytes part; every
 * case runs, and the test fails if any failed or if it found no cases at all. */
#include <ctype.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "gx/routes.h"

#include "check.h"
#include "exchange_helpers.h"

#define CASE_SUFFIX ".case"
#define MAX_CASES 1000

/* One case file, split into its sections. Text views point into the file's bytes. */
struct golden {
    const char *name;
    char *file;
    struct str config, request, body, body_file, too_large, status, content_type, response;
};

static bool failed; /* this case has failed; the message is out */

static void fail(const struct golden *g, const char *fmt, ...) GX_PRINTF(2, 3);

static void fail(const struct golden *g, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "FAIL tests/data/routes/%s: ", g->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    failed = true;
}

/* Prints bytes so that every one is visible: \n, \t, \\ and \xNN for the rest. */
static void print_escaped(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\n')
            fputs("\\n", stderr);
        else if (c == '\t')
            fputs("\\t", stderr);
        else if (c == '\\')
            fputs("\\\\", stderr);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(stderr, "\\x%02x", c);
        else
            fputc(c, stderr);
    }
}

/* Strips all ASCII white space, newlines included, from both ends. */
static struct str trimmed(struct str s)
{
    while (s.len && isspace((unsigned char)s.ptr[0])) {
        s.ptr++;
        s.len--;
    }
    while (s.len && isspace((unsigned char)s.ptr[s.len - 1]))
        s.len--;
    return s;
}

/* Where the text of section "--- name" goes, or NULL for a name the format does not have. */
static struct str *section(struct golden *g, struct str name)
{
    static const char *const names[] = {"config",         "request", "body",         "body-file",
                                        "body-too-large", "status",  "content-type", "response"};
    struct str *slots[] = {&g->config,    &g->request, &g->body,         &g->body_file,
                           &g->too_large, &g->status,  &g->content_type, &g->response};

    for (size_t i = 0; i < GX_ARRAY_LEN(names); i++) {
        if (str_eq_cstr(name, names[i]))
            return slots[i];
    }
    return NULL;
}

/* Records the text of one section. A section that is present has a non-NULL ptr. */
static bool set_section(struct golden *g, struct str name, struct str text)
{
    struct str *slot = section(g, name);

    if (!slot) {
        fail(g, "unknown section --- %.*s", (int)name.len, name.ptr);
        return false;
    }
    if (slot->ptr) {
        fail(g, "section --- %.*s appears twice", (int)name.len, name.ptr);
        return false;
    }
    *slot = text;
    return true;
}

/* Splits the file at lines that start with "--- ". A section's text is everything between
 * its header line and the next one, less the newline that ends its last line. Lines before
 * the first header are comments. */
static bool split_sections(struct golden *g, size_t len)
{
    const char *p = g->file, *end = g->file + len;
    const char *name = NULL, *text = NULL;
    size_t name_len = 0;

    for (;;) {
        const char *line_end = memchr(p, '\n', (size_t)(end - p));
        bool header = (size_t)(end - p) >= 4 && memcmp(p, "--- ", 4) == 0;

        if (header || p == end) {
            if (name) {
                const char *stop = p;
                if (stop > text && stop[-1] == '\n')
                    stop--;
                if (!set_section(g, (struct str){name, name_len},
                                 (struct str){text, stop > text ? (size_t)(stop - text) : 0}))
                    return false;
            }
            if (p == end)
                return true;
            name = p + 4;
            name_len = (size_t)((line_end ? line_end : end) - name);
            text = line_end ? line_end + 1 : end;
        }
        if (!line_end)
            p = end;
        else
            p = line_end + 1;
    }
}

static bool parse_int(const struct golden *g, const char *what, struct str s, int64_t max,
                      int64_t *out)
{
    if (str_to_i64(trimmed(s), 0, max, out) != ERR_OK) {
        fail(g, "--- %s: not a number: %.*s", what, (int)s.len, s.ptr);
        return false;
    }
    return true;
}

/* A bind function that refuses at once, as a full queue does. */
static enum err refuse_bind(void *ctx, const struct ext_bind_args *args, routes_bind_done_fn *done,
                            void *done_ctx, struct errbuf *eb)
{
    (void)args;
    (void)done;
    (void)done_ctx;
    errbuf_set(eb, "%s", (const char *)ctx);
    return ERR_UNAVAILABLE;
}

/* Reads "--- config" lines: "prefix P", "mode M", "bind none" or "bind refuse MESSAGE". */
static bool read_config(struct golden *g, struct routes_config *rc, char *buf, size_t cap)
{
    struct str rest = g->config, line;
    char *out = buf;

    rc->url_prefix = "/";
    rc->mode = "standalone";
    while (str_split(&rest, '\n', &line)) {
        struct str key, value = trimmed(line);
        char *copy;
        if (value.len == 0)
            continue;
        if (!str_split(&value, ' ', &key) || value.len == 0 ||
            (size_t)(out - buf) + value.len >= cap) {
            fail(g, "--- config: want \"key value\", got: %.*s", (int)line.len, line.ptr);
            return false;
        }
        copy = out;
        memcpy(copy, value.ptr, value.len);
        copy[value.len] = '\0';
        out += value.len + 1;
        if (str_eq_cstr(key, "prefix")) {
            rc->url_prefix = copy;
        } else if (str_eq_cstr(key, "mode")) {
            rc->mode = copy;
        } else if (str_eq_cstr(key, "bind") && strcmp(copy, "none") == 0) {
            rc->bind = NULL;
        } else if (str_eq_cstr(key, "bind") && strncmp(copy, "refuse ", 7) == 0) {
            rc->bind = refuse_bind;
            rc->bind_ctx = copy + 7;
        } else {
            fail(g, "--- config: unknown setting: %.*s", (int)line.len, line.ptr);
            return false;
        }
    }
    return true;
}

/* Loads the request body: inline, or a fixture file under $GX_FIXTURES. */
static char *load_body(struct golden *g, size_t *len)
{
    char path[1024];
    struct str rel = trimmed(g->body_file);

    if (g->body.ptr && g->body_file.ptr) {
        fail(g, "give --- body or --- body-file, not both");
        return NULL;
    }
    if (!g->body_file.ptr) {
        char *copy = malloc(g->body.len + 1);
        CHECK(copy != NULL);
        memcpy(copy, g->body.ptr ? g->body.ptr : "", g->body.len);
        copy[g->body.len] = '\0';
        *len = g->body.len;
        return copy;
    }
    CHECK(getenv("GX_FIXTURES") != NULL);
    snprintf(path, sizeof(path), "%s/%.*s", getenv("GX_FIXTURES"), (int)rel.len, rel.ptr);
    return check_read_file(path, len);
}

static int completions;

static void on_complete(struct exchange *ex)
{
    (void)ex;
    completions++;
}

/* Shows where got and want part: both lengths, the offset, and the bytes around it. */
static void report_body(const struct golden *g, const char *got, size_t got_len)
{
    const char *want = g->response.ptr ? g->response.ptr : "";
    size_t want_len = g->response.len, at = 0, from, n;

    while (at < got_len && at < want_len && got[at] == want[at])
        at++;
    fail(g, "body differs at byte %zu (want %zu bytes, got %zu)", at, want_len, got_len);
    from = at > 60 ? at - 60 : 0;
    n = 120;
    fputs("  - want: ...", stderr);
    print_escaped(want + from, want_len - from < n ? want_len - from : n);
    fputs("...\n  + got:  ...", stderr);
    print_escaped(got + from, got_len - from < n ? got_len - from : n);
    fputs("...\n", stderr);
}

/* Writes the reply to $GX_GOLDEN_DUMP/<case>.got, for a person to read before writing a case. */
static void dump(const struct golden *g, int status, const char *ctype, const char *body,
                 size_t len)
{
    const char *dir = getenv("GX_GOLDEN_DUMP");
    char path[1024];
    FILE *f;

    if (!dir || !dir[0])
        return;
    snprintf(path, sizeof(path), "%s/%s.got", dir, g->name);
    f = fopen(path, "wb");
    CHECK(f != NULL);
    fprintf(f, "--- status\n%d\n--- content-type\n%s\n--- response\n", status, ctype);
    CHECK_EQ(fwrite(body, 1, len, f), len);
    fputc('\n', f);
    CHECK_EQ(fclose(f), 0);
}

/* Reads "--- request": one line "METHOD /path". */
static bool read_request(struct golden *g, char *method, size_t mcap, char *path, size_t pcap)
{
    struct str rest = trimmed(g->request), m;

    if (!str_split(&rest, ' ', &m) || m.len >= mcap || rest.len == 0 || rest.len >= pcap ||
        memchr(rest.ptr, '\n', rest.len)) {
        fail(g, "--- request: want one line \"METHOD /path\"");
        return false;
    }
    snprintf(method, mcap, "%.*s", (int)m.len, m.ptr);
    snprintf(path, pcap, "%.*s", (int)rest.len, rest.ptr);
    return true;
}

/* Compares what routes_handle() left in ex with the case. */
static void compare(struct golden *g, const struct exchange *ex, int64_t status)
{
    struct str ctype = trimmed(g->content_type);
    size_t got_len;
    char *got = exchange_reply_join(ex, &got_len);

    dump(g, ex->status, ex->content_type ? ex->content_type : "", got, got_len);
    if (ex->deferred || completions != 0)
        fail(g, "the reply was deferred; golden cases must answer at once");
    if (ex->status != status)
        fail(g, "status: want %" PRId64 ", got %d", status, ex->status);
    if (!ex->content_type || !str_eq_cstr(ctype, ex->content_type))
        fail(g, "content-type: want \"%.*s\", got \"%s\"", (int)ctype.len, ctype.ptr,
             ex->content_type ? ex->content_type : "(none)");
    if (got_len != g->response.len || memcmp(got, g->response.ptr, got_len) != 0)
        report_body(g, got, got_len);
    free(got);
}

static void run_case(struct golden *g, struct policy_store *pol)
{
    struct routes_config rc = {.policies = pol};
    char config_buf[1024], method[32], path[2048];
    int64_t status = 0, limit = 0;
    struct routes *r;
    struct exchange ex;
    char *body;
    size_t body_len = 0;

    if (!g->request.ptr || !g->status.ptr || !g->content_type.ptr || !g->response.ptr) {
        fail(g, "needs --- request, --- status, --- content-type and --- response");
        return;
    }
    if (!read_request(g, method, sizeof(method), path, sizeof(path)) ||
        !read_config(g, &rc, config_buf, sizeof(config_buf)) ||
        !parse_int(g, "status", g->status, 999, &status) ||
        (g->too_large.ptr && !parse_int(g, "body-too-large", g->too_large, INT64_MAX, &limit)) ||
        !(body = load_body(g, &body_len)))
        return;

    r = routes_new(&rc);
    memset(&ex, 0, sizeof(ex));
    arena_init(&ex.arena, 64u << 20);
    ex.method = method;
    ex.path = path;
    ex.body = body;
    ex.body_len = body_len;
    ex.body_too_large = g->too_large.ptr != NULL;
    ex.body_limit = (size_t)limit;
    ex.on_complete = on_complete;
    completions = 0;
    routes_handle(r, &ex);
    compare(g, &ex, status);
    arena_destroy(&ex.arena);
    routes_free(r);
    free(body);
}

static int is_case(const struct dirent *d)
{
    size_t n = strlen(d->d_name), s = strlen(CASE_SUFFIX);

    return d->d_name[0] != '.' && n > s && strcmp(d->d_name + n - s, CASE_SUFFIX) == 0;
}

int main(void)
{
    struct policy_store *pol = policy_store_new(policy_new_default(), "");
    const char *src = getenv("GX_SOURCE_DIR");
    char dir[1024];
    struct dirent **names;
    int n, bad = 0;

    CHECK(src != NULL);
    snprintf(dir, sizeof(dir), "%s/tests/data/routes", src);
    n = scandir(dir, &names, is_case, alphasort);
    if (n <= 0) {
        fprintf(stderr, "test_routes_golden: no *%s files in %s\n", CASE_SUFFIX, dir);
        abort();
    }
    CHECK(n <= MAX_CASES);
    for (int i = 0; i < n; i++) {
        struct golden g = {.name = names[i]->d_name};
        char path[2048];
        size_t len;

        snprintf(path, sizeof(path), "%s/%s", dir, g.name);
        g.file = check_read_file(path, &len);
        failed = false;
        if (split_sections(&g, len))
            run_case(&g, pol);
        bad += failed;
        free(g.file);
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    policy_store_free(pol);
    if (bad) {
        fprintf(stderr, "test_routes_golden: %d of %d cases failed\n", bad, n);
        abort();
    }
    printf("test_routes_golden: %d cases ok\n", n);
    return 0;
}
