/* topology_fixtures.h -- the topologies that test_topology.c (set choice) and
 * test_topology_parse.c (the parsers) both use: a DGX-1 V100 as its annotation text, and an
 * HGX H100, a 4-GPU PCIe box, an HGX-2, two 8-GPU NVLink islands and seeded random topologies,
 * each built from a matrix of link names and parsed, as a node's annotation would be. The
 * parse helpers abort when a document does not parse. Header-only (static inline). */
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx/topology.h"

#include "topo_doc.h"

#define ALL8 0xFFu
#define ALL16 0xFFFFu
#define BIT(i) (UINT32_C(1) << (i))

/* nvidia-smi topo -m on a DGX-1 with V100s:
 *         GPU0 GPU1 GPU2 GPU3 GPU4 GPU5 GPU6 GPU7
 *   GPU0   X   NV1  NV1  NV2  NV2  SYS  SYS  SYS
 *   GPU1  NV1   X   NV2  NV1  SYS  NV2  SYS  SYS
 *   GPU2  NV1  NV2   X   NV2  SYS  SYS  NV1  SYS
 *   GPU3  NV2  NV1  NV2   X   SYS  SYS  SYS  NV1
 *   GPU4  NV2  SYS  SYS  SYS   X   NV1  NV1  NV2
 *   GPU5  SYS  NV2  SYS  SYS  NV1   X   NV2  NV1
 *   GPU6  SYS  SYS  NV1  SYS  NV1  NV2   X   NV2
 *   GPU7  SYS  SYS  SYS  NV1  NV2  NV1  NV2   X
 * Some SYS pairs are listed, most are left out (same meaning). */
static const char DGX1[] =
    "{\"gpus\":[{\"index\":0,\"uuid\":\"GPU-d0\",\"numa\":0},{\"index\":1,\"uuid\":\"GPU-d1\","
    "\"numa\":0},{\"index\":2,\"uuid\":\"GPU-d2\",\"numa\":0},{\"index\":3,\"uuid\":\"GPU-d3\","
    "\"numa\":0},{\"index\":4,\"uuid\":\"GPU-d4\",\"numa\":1},{\"index\":5,\"uuid\":\"GPU-d5\","
    "\"numa\":1},{\"index\":6,\"uuid\":\"GPU-d6\",\"numa\":1},{\"index\":7,\"uuid\":\"GPU-d7\","
    "\"numa\":1}],"
    "\"links\":[[0,1,\"NV1\"],[0,2,\"NV1\"],[0,3,\"NV2\"],[0,4,\"NV2\"],[1,2,\"NV2\"],"
    "[1,3,\"NV1\"],[1,5,\"NV2\"],[2,3,\"NV2\"],[2,6,\"NV1\"],[3,7,\"NV1\"],[4,5,\"NV1\"],"
    "[4,6,\"NV1\"],[4,7,\"NV2\"],[5,6,\"NV2\"],[5,7,\"NV1\"],[6,7,\"NV2\"],"
    "[0,5,\"SYS\"],[0,6,\"SYS\"],[0,7,\"SYS\"]]}";

/* A topology described as a matrix of link names (NULL: not listed). */
struct spec {
    unsigned n;
    uint32_t unhealthy;
    const char *link[TOPO_MAX_GPUS][TOPO_MAX_GPUS];
    int numa[TOPO_MAX_GPUS];
};

static inline void spec_json(const struct spec *s, struct doc *d)
{
    const char *sep = "";

    d->len = 0;
    doc_add(d, "{\"gpus\":[");
    for (unsigned i = 0; i < s->n; i++) {
        doc_add(d, "%s{\"index\":%u,\"uuid\":\"GPU-%02u\",\"numa\":%d%s}", i ? "," : "", i, i,
                s->numa[i], s->unhealthy & BIT(i) ? ",\"healthy\":false" : "");
    }
    doc_add(d, "],\"links\":[");
    for (unsigned a = 0; a < s->n; a++) {
        for (unsigned b = a + 1; b < s->n; b++) {
            if (s->link[a][b]) {
                doc_add(d, "%s[%u,%u,\"%s\"]", sep, a, b, s->link[a][b]);
                sep = ",";
            }
        }
    }
    doc_add(d, "]}");
}

static inline struct topo *parse_ok(const char *text, size_t len)
{
    struct topo *t = NULL;
    struct errbuf eb;

    errbuf_clear(&eb);
    if (topo_parse(text, len, &t, &eb) != ERR_OK) {
        fprintf(stderr, "parse failed: %s\n", eb.msg);
        abort();
    }
    return t;
}

static inline struct topo *parse_cstr(const char *text)
{
    return parse_ok(text, strlen(text));
}

static inline struct topo *parse_spec(const struct spec *s)
{
    static struct doc d;

    spec_json(s, &d);
    return parse_ok(d.buf, d.len);
}

static inline void spec_init(struct spec *s, unsigned n)
{
    memset(s, 0, sizeof(*s));
    s->n = n;
    for (unsigned i = 0; i < n; i++)
        s->numa[i] = -1;
}

/* Every pair of [lo, hi) gets link name. */
static inline void spec_clique(struct spec *s, unsigned lo, unsigned hi, const char *name)
{
    for (unsigned a = lo; a < hi; a++) {
        for (unsigned b = a + 1; b < hi; b++)
            s->link[a][b] = name;
    }
}

static inline struct topo *hgx_h100(void)
{
    struct spec s;

    spec_init(&s, 8);
    spec_clique(&s, 0, 8, "NV18");
    return parse_spec(&s);
}

static inline struct topo *pcie4(uint32_t unhealthy)
{
    struct spec s;

    spec_init(&s, 4);
    s.unhealthy = unhealthy;
    s.numa[0] = s.numa[1] = 0;
    s.numa[2] = s.numa[3] = 1;
    s.link[0][1] = s.link[2][3] = "PIX";
    s.link[0][2] = s.link[0][3] = s.link[1][2] = s.link[1][3] = "SYS";
    return parse_spec(&s);
}

static inline struct topo *hgx2(void)
{
    struct spec s;

    spec_init(&s, 16);
    spec_clique(&s, 0, 16, "NV6");
    return parse_spec(&s);
}

static inline struct topo *two_islands(void)
{
    struct spec s;

    spec_init(&s, 16);
    spec_clique(&s, 0, 8, "NV12");
    spec_clique(&s, 8, 16, "NV12");
    return parse_spec(&s);
}

/* Every link class, some pairs left out, GPU 5 unhealthy. */
static inline struct topo *random_topo(unsigned n, uint32_t seed)
{
    static const char *const names[] = {NULL,  "NV1", "NV2",  "NV4", "NV12", "PIX",
                                        "PXB", "PHB", "NODE", "SYS", "SYS"};
    struct spec s;

    spec_init(&s, n);
    s.unhealthy = BIT(5);
    for (unsigned a = 0; a < n; a++) {
        for (unsigned b = a + 1; b < n; b++)
            s.link[a][b] = names[rng_next(&seed) % GX_ARRAY_LEN(names)];
    }
    return parse_spec(&s);
}
