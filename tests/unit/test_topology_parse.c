/* test_topology_parse.c -- the text side of the topology module: the two annotation parsers
 * (gpu-extender.io/topology and hami.io/node-nvidia-score) on valid documents, on every kind
 * of malformed one and with the messages they give, and the link class names and GPU index
 * masks that round-trip through text. Set choice is in test_topology.c; the fixtures both use
 * are in ../topology_fixtures.h. */
#include "gx/buf.h"
#include "gx/topology.h"

#include "check.h"
#include "topo_doc.h"
#include "topology_fixtures.h"

/* ---- parser ---- */

static void test_parse_valid(void)
{
    struct topo *t = parse_ok(DGX1, sizeof(DGX1) - 1);

    CHECK_EQ(topo_gpu_count(t), 8);
    CHECK_EQ(topo_healthy_mask(t), ALL8);
    CHECK_STR_EQ(topo_gpu_uuid(t, 3), "GPU-d3");
    CHECK_STR_EQ(topo_gpu_uuid(t, 8), "");
    CHECK_EQ(topo_gpu_numa(t, 4), 1);
    CHECK_EQ(topo_gpu_numa(t, 9), -1);
    CHECK_EQ(topo_pair_score(t, 0, 3), 200);
    CHECK_EQ(topo_pair_score(t, 3, 0), 200);
    CHECK_EQ(topo_pair_score(t, 0, 1), 100);
    CHECK_EQ(topo_pair_score(t, 1, 4), 10); /* not listed: SYS */
    CHECK_EQ(topo_pair_score(t, 2, 2), 0);
    CHECK_EQ(topo_pair_score(t, 2, 16), 0);
    CHECK_EQ(topo_pair_class(t, 0, 5), TOPO_SYS);
    CHECK_EQ(topo_pair_class(t, 6, 2), TOPO_NVLINK);
    CHECK_EQ(topo_pair_class(t, 2, 2), TOPO_NVLINK);
    CHECK_EQ(topo_pair_class(t, 0, 99), TOPO_SYS);
    /* Quad {0,1,2,3}: 100 + 100 + 200 + 200 + 100 + 200. Bits past n are ignored. */
    CHECK_EQ(topo_set_score(t, 0x0F), 900);
    CHECK_EQ(topo_set_score(t, 0xF0F), 900);
    CHECK_EQ(topo_set_score(t, BIT(1) | BIT(4)), 10);
    /* Tables and the memos of guaranteed answers; the node's own part is small. */
    CHECK(topo_memory_bytes(t) > 0 && topo_memory_bytes(t) < 512 * 1024);
    CHECK(topo_own_bytes(t) < 1024);
    topo_release(t);

    /* Unknown keys anywhere, any order, links before gpus, lower case, legacy SOC. */
    static const char loose[] =
        " {\"version\":2,\"links\":[[1,0,\"nv4\"],[2,0,\"soc\"],[1,2,\"Node\"]],\"extra\":{\"a\":"
        "[1,{\"b\":null}]},\"gpus\":[{\"numa\":3,\"index\":2,\"vendor\":\"x\"},{\"index\":0},"
        "{\"healthy\":false,\"index\":1,\"uuid\":\"GPU-\\u0041\"}]} ";
    t = parse_ok(loose, sizeof(loose) - 1);
    CHECK_EQ(topo_gpu_count(t), 3);
    CHECK_EQ(topo_healthy_mask(t), 0x5);
    CHECK_STR_EQ(topo_gpu_uuid(t, 1), "GPU-A");
    CHECK_STR_EQ(topo_gpu_uuid(t, 0), "");
    CHECK_EQ(topo_gpu_numa(t, 2), 3);
    CHECK_EQ(topo_gpu_numa(t, 0), -1);
    CHECK_EQ(topo_pair_score(t, 0, 1), 400);
    CHECK_EQ(topo_pair_class(t, 0, 2), TOPO_SYS);
    CHECK_EQ(topo_pair_class(t, 1, 2), TOPO_NODE);
    CHECK_EQ(topo_pair_score(t, 1, 2), 20);
    /* The unhealthy GPU 1 is never chosen, though it is the best connected. */
    CHECK_EQ(topo_choose(t, 0x7, 2, TOPO_SYS).set, 0x5);
    CHECK(!topo_choose(t, 0x7, 3, TOPO_SYS).ok);
    topo_release(t);

    /* Every PCIe name and the NV range ends. */
    t = parse_cstr("{\"gpus\":[{\"index\":0},{\"index\":1},{\"index\":2},{\"index\":3}],"
                   "\"links\":[[0,1,\"PIX\"],[0,2,\"PXB\"],[0,3,\"PHB\"],[1,2,\"NV1\"],"
                   "[1,3,\"NV18\"],[2,3,\"SYS\"]]}");
    CHECK_EQ(topo_pair_score(t, 0, 1), 50);
    CHECK_EQ(topo_pair_score(t, 0, 2), 40);
    CHECK_EQ(topo_pair_score(t, 0, 3), 30);
    CHECK_EQ(topo_pair_score(t, 1, 2), 100);
    CHECK_EQ(topo_pair_score(t, 1, 3), 1800);
    CHECK_EQ(topo_pair_class(t, 0, 2), TOPO_PXB);
    CHECK_EQ(topo_pair_class(t, 0, 3), TOPO_PHB);
    topo_release(t);

    /* One GPU, no links; references. */
    t = parse_cstr("{\"gpus\":[{\"index\":0,\"uuid\":\"GPU-solo\"}]}");
    CHECK_EQ(topo_gpu_count(t), 1);
    CHECK(topo_acquire(t) == t);
    topo_release(t);
    CHECK_EQ(topo_choose(t, 1, 1, TOPO_NVLINK).set, 1);
    CHECK(!topo_choose(t, 1, 2, TOPO_SYS).ok);
    topo_release(t);
    topo_release(NULL);
}

static void test_parse_fixtures(void)
{
    struct topo *t = hgx_h100();

    CHECK_EQ(topo_pair_score(t, 2, 7), 1800);
    CHECK_EQ(topo_set_score(t, ALL8), 28 * 1800);
    topo_release(t);
    t = pcie4(0);
    CHECK_EQ(topo_gpu_numa(t, 3), 1);
    CHECK_EQ(topo_pair_class(t, 2, 3), TOPO_PIX);
    topo_release(t);
    t = hgx2();
    CHECK_EQ(topo_gpu_count(t), 16);
    CHECK_EQ(topo_set_score(t, ALL16), 120 * 600);
    CHECK_STR_EQ(topo_gpu_uuid(t, 15), "GPU-15");
    /* The memo budget: at most 8 MiB of tables per 16-GPU topology. */
    CHECK(topo_memory_bytes(t) <= (8u << 20) + 4096);
    topo_release(t);
    t = two_islands();
    CHECK_EQ(topo_pair_class(t, 7, 8), TOPO_SYS);
    CHECK_EQ(topo_pair_score(t, 8, 15), 1200);
    topo_release(t);
}

static void expect_error(enum err (*parse)(const char *, size_t, struct topo **, struct errbuf *),
                         const char *text, size_t len, enum err want)
{
    struct topo *t = (struct topo *)(uintptr_t)1; /* must stay untouched */
    struct errbuf eb = ERRBUF_INIT;

    errbuf_clear(&eb);
    if (parse(text, len, &t, &eb) != want || !errbuf_is_set(&eb) ||
        t != (struct topo *)(uintptr_t)1) {
        fprintf(stderr, "expected an error for: %.*s\n", (int)(len > 200 ? 200 : len),
                text ? text : "(null)");
        abort();
    }
}

static void expect_message(const char *text, const char *msg)
{
    struct topo *t;
    struct errbuf eb = ERRBUF_INIT;

    errbuf_clear(&eb);
    CHECK_EQ(topo_parse(text, strlen(text), &t, &eb), ERR_PARSE);
    CHECK_STR_EQ(eb.msg, msg);
}

#define G2 "\"gpus\":[{\"index\":0},{\"index\":1}]"

static void test_parse_malformed(void)
{
    static const char *const bad[] = {
        /* not JSON, or not the right JSON */
        "",
        "{\"gpus\":[",
        "{\"gpus\":[{\"index\":0}]} x",
        "[]",
        "null",
        "{\"gpus\":[{\"index\":0,\"uuid\":\"\xff\"}]}",
        /* gpus */
        "{}",
        "{\"links\":[]}",
        "{\"gpus\":[]}",
        "{\"gpus\":{}}",
        "{\"gpus\":[1]}",
        "{\"gpus\":[{\"index\":0}],\"gpus\":[{\"index\":0}]}",
        "{\"gpus\":[{\"uuid\":\"x\"}]}",
        "{\"gpus\":[{\"index\":\"0\"}]}",
        "{\"gpus\":[{\"index\":0.0}]}",
        "{\"gpus\":[{\"index\":1e0}]}",
        "{\"gpus\":[{\"index\":-1}]}",
        "{\"gpus\":[{\"index\":16}]}",
        "{\"gpus\":[{\"index\":0},{\"index\":0}]}",
        "{\"gpus\":[{\"index\":0},{\"index\":2}]}",
        "{\"gpus\":[{\"index\":1}]}",
        "{\"gpus\":[{\"index\":0,\"index\":0}]}",
        "{\"gpus\":[{\"index\":0,\"uuid\":7}]}",
        "{\"gpus\":[{\"index\":0,\"uuid\":\"a\\u0000b\"}]}",
        "{\"gpus\":[{\"index\":0,\"numa\":\"0\"}]}",
        "{\"gpus\":[{\"index\":0,\"numa\":-2}]}",
        "{\"gpus\":[{\"index\":0,\"healthy\":\"no\"}]}",
        "{\"gpus\":[{\"index\":0,\"healthy\":null}]}",
        /* links */
        "{" G2 ",\"links\":{}}",
        "{" G2 ",\"links\":[0,1,\"NV1\"]}",
        "{" G2 ",\"links\":[[0,1]]}",
        "{" G2 ",\"links\":[[0,1,\"NV1\",2]]}",
        "{" G2 ",\"links\":[[\"0\",1,\"NV1\"]]}",
        "{" G2 ",\"links\":[[0,1,2]]}",
        "{" G2 ",\"links\":[[0,0,\"NV1\"]]}",
        "{" G2 ",\"links\":[[0,2,\"NV1\"]]}",
        "{" G2 ",\"links\":[[0,16,\"NV1\"]]}",
        "{" G2 ",\"links\":[[0,-1,\"NV1\"]]}",
        "{" G2 ",\"links\":[[0,1,\"NV1\"],[1,0,\"NV2\"]]}",
        "{" G2 ",\"links\":[[0,1,\"NV1\"]],\"links\":[]}",
        "{" G2 ",\"links\":[[0,1,\"NV0\"]]}",
        "{" G2 ",\"links\":[[0,1,\"NV19\"]]}",
        "{" G2 ",\"links\":[[0,1,\"NV01\"]]}",
        "{" G2 ",\"links\":[[0,1,\"NV\"]]}",
        "{" G2 ",\"links\":[[0,1,\"NVLINK\"]]}",
        "{" G2 ",\"links\":[[0,1,\"X\"]]}",
        "{" G2 ",\"links\":[[0,1,\"\"]]}",
        "{" G2 ",\"links\":[[0,1,\"PIXX\"]]}",
    };
    char big[2048];
    struct doc d;
    size_t n;

    for (size_t i = 0; i < GX_ARRAY_LEN(bad); i++)
        expect_error(topo_parse, bad[i], strlen(bad[i]), ERR_PARSE);
    expect_error(topo_parse, NULL, 0, ERR_PARSE);
    /* 17 GPUs. */
    d.len = 0;
    doc_add(&d, "{\"gpus\":[");
    for (unsigned i = 0; i < 17; i++)
        doc_add(&d, "%s{\"index\":%u}", i ? "," : "", i);
    doc_add(&d, "]}");
    expect_error(topo_parse, d.buf, d.len, ERR_PARSE);
    /* A 97-byte uuid. */
    n = (size_t)snprintf(big, sizeof(big), "{\"gpus\":[{\"index\":0,\"uuid\":\"%097d\"}]}", 0);
    expect_error(topo_parse, big, n, ERR_PARSE);
    n = (size_t)snprintf(big, sizeof(big), "{\"gpus\":[{\"index\":0,\"uuid\":\"%096d\"}]}", 0);
    topo_release(parse_ok(big, n));
    /* Nesting past the scanner's limit, even under an ignored key. */
    d.len = 0;
    doc_add(&d, "{\"x\":");
    for (int i = 0; i < 40; i++)
        doc_add(&d, "[");
    for (int i = 0; i < 40; i++)
        doc_add(&d, "]");
    doc_add(&d, ",\"gpus\":[{\"index\":0}]}");
    expect_error(topo_parse, d.buf, d.len, ERR_PARSE);
    /* Over the size cap, and a length that stops mid-document. */
    expect_error(topo_parse, DGX1, TOPO_MAX_TEXT_BYTES + 1, ERR_TOO_LARGE);
    expect_error(topo_parse, DGX1, sizeof(DGX1) - 2, ERR_PARSE);
    /* The message says what is wrong. */
    expect_message("{\"gpus\":[{\"index\":0},{\"index\":0}]}",
                   "topology: gpus[1]: index 0 given twice");
    expect_message("{" G2 ",\"links\":[[0,1,\"NV19\"]]}",
                   "topology: links[0]: unknown link type \"NV19\"");
    expect_message("{" G2 ",\"links\":[[0,2,\"NV1\"]]}",
                   "topology: links[0]: GPU 2 does not exist");
    expect_message("{\"gpus\":[", "topology: unexpected end of input at byte 9");
    expect_message("{\"gpus\":[{\"index\":\"0\"}]}",
                   "topology: gpus[0].index: expected an integer");
}

static void test_parse_hami(void)
{
    static const char doc[] =
        "[{\"uuid\":\"GPU-a\",\"score\":{\"GPU-b\":1200,\"GPU-c\":10}},"
        "{\"uuid\":\"GPU-b\",\"model\":\"A100\",\"score\":{\"GPU-a\":600,\"GPU-d\":50}},"
        "{\"uuid\":\"GPU-c\",\"score\":{\"GPU-d\":100000000000000000000000}},"
        "{\"uuid\":\"GPU-d\",\"score\":{\"GPU-x\":300,\"GPU-d\":900}},"
        "{\"score\":{\"GPU-a\":-5,\"GPU-b\":20,\"GPU-c\":30,\"GPU-d\":40},\"uuid\":\"GPU-e\"},"
        "{\"uuid\":\"GPU-f\",\"score\":{\"GPU-a\":99,\"GPU-b\":100,\"GPU-e\":-99999999999999999999}"
        "},"
        "{\"uuid\":\"GPU-g\",\"score\":null}]";
    struct topo *t = NULL;
    struct errbuf eb = ERRBUF_INIT;

    errbuf_clear(&eb);
    CHECK_EQ(topo_parse_hami(doc, sizeof(doc) - 1, &t, &eb), ERR_OK);
    CHECK_EQ(topo_gpu_count(t), 7);
    CHECK_EQ(topo_healthy_mask(t), 0x7F);
    CHECK_STR_EQ(topo_gpu_uuid(t, 4), "GPU-e");
    CHECK_EQ(topo_gpu_numa(t, 0), -1);
    CHECK_EQ(topo_pair_score(t, 0, 1), 600); /* min of 1200 and 600 */
    CHECK_EQ(topo_pair_class(t, 0, 1), TOPO_NVLINK);
    CHECK_EQ(topo_pair_score(t, 0, 2), 10);
    CHECK_EQ(topo_pair_score(t, 0, 3), 10); /* neither direction: SYS */
    CHECK_EQ(topo_pair_score(t, 1, 3), 50);
    CHECK_EQ(topo_pair_class(t, 1, 3), TOPO_PIX);
    CHECK_EQ(topo_pair_score(t, 2, 3), 1800); /* clamped */
    CHECK_EQ(topo_pair_score(t, 0, 4), 0);    /* clamped */
    CHECK_EQ(topo_pair_class(t, 0, 4), TOPO_SYS);
    CHECK_EQ(topo_pair_class(t, 1, 4), TOPO_NODE);
    CHECK_EQ(topo_pair_class(t, 2, 4), TOPO_PHB);
    CHECK_EQ(topo_pair_class(t, 3, 4), TOPO_PXB);
    CHECK_EQ(topo_pair_class(t, 0, 5), TOPO_PIX);
    CHECK_EQ(topo_pair_score(t, 0, 5), 99);
    CHECK_EQ(topo_pair_class(t, 1, 5), TOPO_NVLINK);
    CHECK_EQ(topo_pair_score(t, 4, 5), 0);
    CHECK_EQ(topo_pair_score(t, 6, 0), 10);
    /* The best pair is the clamped one. */
    CHECK_EQ(topo_choose(t, 0x7F, 2, TOPO_NVLINK).set, BIT(2) | BIT(3));
    topo_release(t);
}

static void test_parse_hami_malformed(void)
{
    static const char *const bad[] = {
        "{}",
        "[]",
        "[1]",
        "[{\"score\":{}}]",
        "[{\"uuid\":\"\"}]",
        "[{\"uuid\":5}]",
        "[{\"uuid\":\"a\"},{\"uuid\":\"a\"}]",
        "[{\"uuid\":\"a\",\"uuid\":\"b\"}]",
        "[{\"uuid\":\"a\",\"score\":[]}]",
        "[{\"uuid\":\"a\",\"score\":{},\"score\":{}}]",
        "[{\"uuid\":\"a\",\"score\":null,\"score\":{}}]",
        "[{\"uuid\":\"a\",\"score\":{\"b\":\"1\"}},{\"uuid\":\"b\"}]",
        "[{\"uuid\":\"a\",\"score\":{\"b\":1.5}},{\"uuid\":\"b\"}]",
        "[{\"uuid\":\"a\",\"score\":{\"b\":1e2}},{\"uuid\":\"b\"}]",
        "[{\"uuid\":\"a\",\"score\":{\"zz\":true}},{\"uuid\":\"b\"}]",
        "[{\"uuid\":\"a\",\"score\":{\"b\":1,\"b\":2}},{\"uuid\":\"b\"}]",
        "[{\"uuid\":\"a\",\"score\":{\"b\":1,\"\\u0062\":2}},{\"uuid\":\"b\"}]",
        "[{\"uuid\":\"a\"}",
        "[{\"uuid\":\"a\"}]]",
    };
    struct doc d;

    for (size_t i = 0; i < GX_ARRAY_LEN(bad); i++)
        expect_error(topo_parse_hami, bad[i], strlen(bad[i]), ERR_PARSE);
    d.len = 0;
    doc_add(&d, "[");
    for (unsigned i = 0; i < 17; i++)
        doc_add(&d, "%s{\"uuid\":\"GPU-%u\"}", i ? "," : "", i);
    doc_add(&d, "]");
    expect_error(topo_parse_hami, d.buf, d.len, ERR_PARSE);
    expect_error(topo_parse_hami, d.buf, TOPO_MAX_TEXT_BYTES + 1, ERR_TOO_LARGE);
}

/* ---- names and masks ---- */

static void test_classes(void)
{
    enum topo_class c = TOPO_SYS;

    for (unsigned i = 0; i < TOPO_CLASS_COUNT; i++) {
        CHECK(topo_class_parse(str_from_cstr(topo_class_name((enum topo_class)i)), &c));
        CHECK_EQ(c, i);
    }
    CHECK(topo_class_parse(STR_LIT("nvlink"), &c));
    CHECK_EQ(c, TOPO_NVLINK);
    CHECK(topo_class_parse(STR_LIT("pix"), &c));
    CHECK_EQ(c, TOPO_PIX);
    CHECK(!topo_class_parse(STR_LIT("NV2"), &c));
    CHECK(!topo_class_parse(STR_LIT(""), &c));
    CHECK(!topo_class_parse(STR_LIT("SYSTEM"), &c));
    CHECK_EQ(c, TOPO_PIX);
    CHECK_STR_EQ(topo_class_name(TOPO_NVLINK), "NVLink");
    CHECK_STR_EQ(topo_class_name((enum topo_class)9), "?");
}

static void test_masks(void)
{
    static const char *const bad[] = {"1,,2", ",1",  "1,", "a",   "-1",  "32",   "1,1",
                                      "100",  "1 2", "+1", " , ", "0x1", "3,2,3"};
    uint32_t m = 0, seed = 1;
    char buf[TOPO_MASK_STR_MAX];

    CHECK(topo_mask_parse(STR_LIT("0,3,5"), &m));
    CHECK_EQ(m, 0x29);
    CHECK(topo_mask_parse(STR_LIT(" 1 , 2 "), &m));
    CHECK_EQ(m, 0x6);
    CHECK(topo_mask_parse(STR_LIT("31,0"), &m));
    CHECK_EQ(m, 0x80000001u);
    CHECK(topo_mask_parse(STR_LIT("07"), &m));
    CHECK_EQ(m, 0x80);
    CHECK(topo_mask_parse(STR_LIT(""), &m));
    CHECK_EQ(m, 0);
    CHECK(topo_mask_parse(STR_NULL, &m));
    for (size_t i = 0; i < GX_ARRAY_LEN(bad); i++) {
        m = 12345;
        CHECK(!topo_mask_parse(str_from_cstr(bad[i]), &m));
        CHECK_EQ(m, 12345);
    }
    CHECK_EQ(topo_mask_format(0, buf, sizeof(buf)), 0);
    CHECK_STR_EQ(buf, "");
    CHECK_EQ(topo_mask_format(0x29, buf, sizeof(buf)), 5);
    CHECK_STR_EQ(buf, "0,3,5");
    CHECK_EQ(topo_mask_format(0x29, buf, 4), 5); /* truncated like snprintf */
    CHECK_STR_EQ(buf, "0,3");
    CHECK_EQ(topo_mask_format(0x29, NULL, 0), 5);
    CHECK_EQ(topo_mask_format(UINT32_MAX, buf, sizeof(buf)), TOPO_MASK_STR_MAX - 1);
    for (int i = 0; i < 2000; i++) {
        uint32_t want = i == 0 ? UINT32_MAX : rng_next(&seed), got = 0;
        size_t n = topo_mask_format(want, buf, sizeof(buf));
        CHECK(n < sizeof(buf));
        CHECK(topo_mask_parse((struct str){buf, n}, &got));
        CHECK_EQ(got, want);
    }
}

/* topo_format() writes what topo_parse() reads back: the same GPUs, UUIDs, NUMA nodes,
 * health and pair classes and scores. */
static void test_format_round_trip(void)
{
    static const char unhealthy[] =
        "{\"gpus\":[{\"index\":0,\"uuid\":\"GPU-\\\"q\\\"\"},{\"index\":1,\"healthy\":false,"
        "\"numa\":1}],\"links\":[[0,1,\"PXB\"]]}";
    struct topo *in[] = {parse_ok(DGX1, sizeof(DGX1) - 1), hgx_h100(),
                         parse_ok(unhealthy, sizeof(unhealthy) - 1)};

    for (size_t k = 0; k < GX_ARRAY_LEN(in); k++) {
        struct buf b;
        struct topo *out;
        unsigned n = topo_gpu_count(in[k]);
        buf_init(&b, 1 << 20);
        CHECK_EQ(topo_format(in[k], &b), ERR_OK);
        out = parse_ok(b.ptr, b.len);
        CHECK_EQ(topo_gpu_count(out), n);
        CHECK_EQ(topo_healthy_mask(out), topo_healthy_mask(in[k]));
        for (unsigned a = 0; a < n; a++) {
            CHECK_STR_EQ(topo_gpu_uuid(out, a), topo_gpu_uuid(in[k], a));
            CHECK_EQ(topo_gpu_numa(out, a), topo_gpu_numa(in[k], a));
            for (unsigned c = 0; c < n; c++) {
                CHECK_EQ(topo_pair_class(out, a, c), topo_pair_class(in[k], a, c));
                CHECK_EQ(topo_pair_score(out, a, c), topo_pair_score(in[k], a, c));
            }
        }
        buf_destroy(&b);
        topo_release(out);
        topo_release(in[k]);
    }
}

int main(void)
{
    test_format_round_trip();
    test_parse_valid();
    test_parse_fixtures();
    test_parse_malformed();
    test_parse_hami();
    test_parse_hami_malformed();
    test_classes();
    test_masks();
    printf("test_topology_parse: ok\n");
    return 0;
}
