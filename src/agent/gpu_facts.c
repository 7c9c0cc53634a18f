/* gpu_facts.c -- the topology annotation, GFD-style labels and health rules over struct
 * gpu_facts (see gpu_facts.h). Pure functions. */
#include "gx/gpu_facts.h"

#include <stdio.h>
#include <string.h>

#include "gx/nvml.h"

/* Kubernetes label values: at most 63 characters. */
#define LABEL_VALUE_MAX 63
/* GFD's memory label is in MiB, rounded down. */
#define MIB (1024ULL * 1024ULL)
/* Room for GFD's product value before it is cut to a label value. */
#define PRODUCT_MAX 96

static bool topology_is_valid(const struct gpu_facts *f)
{
    if (f->n < 1 || f->n > GPU_FACTS_MAX)
        return false;
    for (unsigned a = 0; a < f->n; a++) {
        if (f->gpu[a].index != a)
            return false;
        for (unsigned b = a + 1; b < f->n; b++) {
            if (f->nvlinks[a][b] != f->nvlinks[b][a] || f->pcie[a][b] != f->pcie[b][a])
                return false;
            if (f->nvlinks[a][b] > 18 || f->pcie[a][b] >= TOPO_NVLINK)
                return false;
        }
    }
    return true;
}

static enum err write_gpu(const struct gpu_fact *g, bool first, struct buf *out)
{
    enum err e = buf_printf(out, "%s{\"index\":%u", first ? "" : ",", g->index);

    if (e == ERR_OK && g->uuid[0]) {
        e = buf_append_str(out, ",\"uuid\":");
        if (e == ERR_OK)
            e = buf_append_json_str(out, g->uuid, strnlen(g->uuid, sizeof(g->uuid)));
    }
    if (e == ERR_OK && g->numa >= 0)
        e = buf_printf(out, ",\"numa\":%d", g->numa);
    if (e == ERR_OK && !g->healthy)
        e = buf_append_str(out, ",\"healthy\":false");
    if (e == ERR_OK && g->mig_enabled)
        e = buf_append_str(out, ",\"mig\":true");
    return e == ERR_OK ? buf_append_str(out, "}") : e;
}

static enum err write_links(const struct gpu_facts *f, struct buf *out)
{
    const char *sep = "";
    enum err e = ERR_OK;

    for (unsigned a = 0; a < f->n && e == ERR_OK; a++) {
        for (unsigned b = a + 1; b < f->n && e == ERR_OK; b++) {
            if (f->nvlinks[a][b]) {
                e = buf_printf(out, "%s[%u,%u,\"NV%u\"]", sep, a, b, f->nvlinks[a][b]);
            } else if (f->pcie[a][b] != TOPO_SYS) {
                e = buf_printf(out, "%s[%u,%u,\"%s\"]", sep, a, b,
                               topo_class_name((enum topo_class)f->pcie[a][b]));
            } else {
                continue;
            }
            sep = ",";
        }
    }
    return e;
}

/* Cuts out back to len after a failed write, so callers see it unchanged. */
static enum err restore_on_error(struct buf *out, size_t len, enum err e)
{
    if (e != ERR_OK && out->ptr) {
        out->len = len;
        out->ptr[len] = '\0';
    }
    return e;
}

enum err gpu_facts_topology(const struct gpu_facts *f, struct buf *out)
{
    size_t start = out->len;
    enum err e;

    if (!topology_is_valid(f))
        return ERR_INVALID;
    e = buf_append_str(out, "{\"gpus\":[");
    for (unsigned i = 0; i < f->n && e == ERR_OK; i++)
        e = write_gpu(&f->gpu[i], i == 0, out);
    if (e == ERR_OK)
        e = buf_append_str(out, "],\"links\":[");
    if (e == ERR_OK)
        e = write_links(f, out);
    if (e == ERR_OK)
        e = buf_append_str(out, "]}");
    return restore_on_error(out, start, e);
}

/* GFD's getArchFamily() (k8s-device-plugin internal/lm/resource.go, 2026-08). */
const char *gpu_facts_family(int cc_major, int cc_minor)
{
    switch (cc_major) {
    case 1:
        return "tesla";
    case 2:
        return "fermi";
    case 3:
        return "kepler";
    case 5:
        return "maxwell";
    case 6:
        return "pascal";
    case 7:
        return cc_minor < 5 ? "volta" : "turing";
    case 8:
        return cc_minor < 9 ? "ampere" : "ada-lovelace";
    case 9:
        return "hopper";
    case 10:
    case 12:
        return "blackwell";
    case 13:
        return "rubin";
    default:
        return "undefined";
    }
}

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* GFD's sanitise(): drop what is not [A-Za-z0-9-_. ], then join the space-separated fields
 * with '-'. Then what GFD does not do but the API server requires of a label value: at most
 * 63 characters, alphanumeric first and last. */
static void product_value(const char *name, char out[PRODUCT_MAX])
{
    size_t len = 0, start = 0;
    bool gap = false;

    for (size_t i = 0; name[i] && len < PRODUCT_MAX - 1; i++) {
        char c = name[i];

        if (c == ' ') {
            gap = len > 0;
            continue;
        }
        if (!is_alnum(c) && c != '-' && c != '_' && c != '.')
            continue;
        if (gap && len < PRODUCT_MAX - 2)
            out[len++] = '-';
        gap = false;
        out[len++] = c;
    }
    while (start < len && !is_alnum(out[start]))
        start++;
    if (len - start > LABEL_VALUE_MAX)
        len = start + LABEL_VALUE_MAX;
    while (len > start && !is_alnum(out[len - 1]))
        len--;
    memmove(out, out + start, len - start);
    out[len - start] = '\0';
}

static enum err write_label(struct buf *out, const char **sep, const char *key, const char *value)
{
    enum err e = buf_printf(out, "%s\"nvidia.com/gpu.%s\":", *sep, key);

    *sep = ",";
    return e == ERR_OK ? buf_append_json_str(out, value, strlen(value)) : e;
}

enum err gpu_facts_gfd(const struct gpu_facts *f, struct gpu_gfd_labels *out)
{
    const struct gpu_fact *g = &f->gpu[0];
    unsigned long long mib = g->memory_bytes / MIB;
    unsigned count = 0;

    memset(out, 0, sizeof(*out));
    if (f->n > GPU_FACTS_MAX)
        return ERR_INVALID;
    if (f->n == 0)
        return ERR_OK;
    for (unsigned i = 0; i < f->n; i++)
        count += strcmp(f->gpu[i].name, g->name) == 0;
    product_value(g->name, out->product);
    if (mib > 0)
        snprintf(out->memory, sizeof(out->memory), "%llu", mib);
    snprintf(out->count, sizeof(out->count), "%u", count);
    /* GFD writes no architecture labels when the compute capability's major is 0. */
    if (g->cc_major > 0) {
        snprintf(out->family, sizeof(out->family), "%s",
                 gpu_facts_family(g->cc_major, g->cc_minor));
        snprintf(out->compute_major, sizeof(out->compute_major), "%d", g->cc_major);
        snprintf(out->compute_minor, sizeof(out->compute_minor), "%d",
                 g->cc_minor < 0 ? 0 : g->cc_minor);
    }
    return ERR_OK;
}

enum err gpu_facts_gfd_labels(const struct gpu_facts *f, struct buf *out)
{
    struct gpu_gfd_labels l;
    const struct {
        const char *key, *value;
    } labels[] = {{"product", l.product},
                  {"memory", l.memory},
                  {"family", l.family},
                  {"count", l.count},
                  {"compute.major", l.compute_major},
                  {"compute.minor", l.compute_minor}};
    size_t start = out->len;
    const char *sep = "";
    enum err e = gpu_facts_gfd(f, &l);

    for (size_t i = 0; i < GX_ARRAY_LEN(labels) && e == ERR_OK; i++) {
        if (labels[i].value[0])
            e = write_label(out, &sep, labels[i].key, labels[i].value);
    }
    return restore_on_error(out, start, e);
}

static bool list_add(struct gpu_xid_list *l, unsigned xid)
{
    if (gpu_xid_list_has(l, xid))
        return true;
    if (l->n == GPU_XID_LIST_MAX)
        return false;
    l->xid[l->n++] = xid;
    return true;
}

enum err gpu_xid_list_parse(struct str text, struct gpu_xid_list *out, struct errbuf *eb)
{
    struct gpu_xid_list l = {0};
    struct str rest, item;
    unsigned pos = 0;

    if (text.len > GPU_XID_LIST_TEXT_MAX) {
        errbuf_set(eb, "XID list: %zu bytes, at most %u", text.len, GPU_XID_LIST_TEXT_MAX);
        return ERR_TOO_LARGE;
    }
    /* Blank text is the empty list. str_split() yields no item for "" and none after a
     * trailing comma, which is caught below. */
    text = str_trim(text);
    rest = text;
    while (str_split(&rest, ',', &item)) {
        int64_t v;

        pos++;
        item = str_trim(item);
        if (item.len == 0) {
            errbuf_set(eb, "XID list: item %u is empty", pos);
            return ERR_PARSE;
        }
        if (str_to_i64(item, 1, GPU_XID_MAX, &v) != ERR_OK) {
            errbuf_set(eb, "XID list: item %u \"%.*s\" is not an XID (1..%d)", pos,
                       (int)(item.len > 32 ? 32 : item.len), item.ptr, GPU_XID_MAX);
            return ERR_PARSE;
        }
        if (!list_add(&l, (unsigned)v)) {
            errbuf_set(eb, "XID list: more than %d XIDs", GPU_XID_LIST_MAX);
            return ERR_TOO_LARGE;
        }
    }
    if (text.len > 0 && text.ptr[text.len - 1] == ',') {
        errbuf_set(eb, "XID list: item %u is empty", pos + 1);
        return ERR_PARSE;
    }
    *out = l;
    return ERR_OK;
}

bool gpu_xid_list_has(const struct gpu_xid_list *l, unsigned long long xid)
{
    if (!l)
        return false;
    for (unsigned i = 0; i < l->n; i++) {
        if (l->xid[i] == xid)
            return true;
    }
    return false;
}

bool gpu_facts_apply_event(struct gpu_facts *f, const struct nvml_event *ev,
                           const struct gpu_xid_list *ignored)
{
    struct gpu_fact *g;

    if (ev->index >= f->n || ev->index >= GPU_FACTS_MAX)
        return false;
    g = &f->gpu[ev->index];
    if (!g->healthy)
        return false;
    if (ev->dbe) {
        g->healthy = false;
        g->last_xid = 0;
        return true;
    }
    if (ev->xid == 0 || gpu_xid_list_has(ignored, ev->xid))
        return false;
    g->healthy = false;
    g->last_xid = ev->xid;
    return true;
}

unsigned gpu_facts_keep_health(struct gpu_facts *now, const struct gpu_facts *before)
{
    unsigned marked = 0;

    for (unsigned i = 0; i < now->n && i < GPU_FACTS_MAX; i++) {
        struct gpu_fact *g = &now->gpu[i];

        if (!g->uuid[0] || !g->healthy)
            continue;
        for (unsigned j = 0; j < before->n && j < GPU_FACTS_MAX; j++) {
            const struct gpu_fact *old = &before->gpu[j];

            if (!old->healthy && strcmp(old->uuid, g->uuid) == 0) {
                g->healthy = false;
                g->last_xid = old->last_xid;
                marked++;
                break;
            }
        }
    }
    return marked;
}
