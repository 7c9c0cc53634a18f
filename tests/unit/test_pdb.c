/* test_pdb.c -- what preemption reads from the cache: PodDisruptionBudgets (decoding,
 * label selectors as kube-scheduler reads them, the budget store) and the preemption view of
 * a node (its GPU pods, their priorities and labels, reservations). */
#include <string.h>

#include "gx/arena.h"
#include "gx/cache.h"
#include "gx/jscan.h"
#include "gx/objects.h"

#include "check.h"

static bool sel(const char *selector, const char *labels)
{
    return obj_selector_matches(str_from_cstr(selector), str_from_cstr(labels));
}

static void test_selectors(void)
{
    const char *l = "{\"app\":\"train\",\"team\":\"ml\",\"tier\":\"low\"}";

    CHECK(sel("{\"matchLabels\":{\"app\":\"train\"}}", l));
    CHECK(sel("{\"matchLabels\":{\"app\":\"train\",\"team\":\"ml\"}}", l));
    CHECK(!sel("{\"matchLabels\":{\"app\":\"serve\"}}", l));
    CHECK(!sel("{\"matchLabels\":{\"gone\":\"x\"}}", l));
    CHECK(sel("{\"matchExpressions\":[{\"key\":\"app\",\"operator\":\"In\",\"values\":"
              "[\"a\",\"train\"]}]}",
              l));
    CHECK(!sel("{\"matchExpressions\":[{\"key\":\"app\",\"operator\":\"NotIn\",\"values\":"
               "[\"train\"]}]}",
               l));
    CHECK(sel("{\"matchExpressions\":[{\"key\":\"x\",\"operator\":\"NotIn\",\"values\":[\"y\"]}]}",
              l));
    CHECK(sel("{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"Exists\"}]}", l));
    CHECK(!sel("{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"DoesNotExist\"}]}", l));
    CHECK(sel("{\"matchExpressions\":[{\"key\":\"gpu\",\"operator\":\"DoesNotExist\"}]}", l));
    /* Both parts must hold. */
    CHECK(!sel("{\"matchLabels\":{\"app\":\"train\"},\"matchExpressions\":[{\"key\":\"tier\","
               "\"operator\":\"In\",\"values\":[\"high\"]}]}",
               l));
    /* Escaped keys and values are decoded before comparing. */
    CHECK(sel("{\"matchLabels\":{\"a\\u0070p\":\"tr\\u0061in\"}}", l));
    /* As for kube-scheduler's preemption: empty, null and invalid selectors match nothing. */
    CHECK(!sel("{}", l));
    CHECK(!sel("", l));
    CHECK(!sel("{\"matchLabels\":null,\"matchExpressions\":[]}", l));
    CHECK(!sel("{\"matchExpressions\":[{\"key\":\"app\",\"operator\":\"In\"}]}", l));
    CHECK(!sel("{\"matchExpressions\":[{\"key\":\"app\",\"operator\":\"Exists\",\"values\":"
               "[\"x\"]}]}",
               l));
    CHECK(!sel("{\"matchExpressions\":[{\"key\":\"app\",\"operator\":\"Like\",\"values\":"
               "[\"train\"]}]}",
               l));
    CHECK(!sel("{\"matchLabels\":{\"app\":7}}", l));
    CHECK(!sel("{\"matchLabels\":", l));
    /* A pod without labels matches a DoesNotExist selector, but no budget covers it. */
    CHECK(sel("{\"matchExpressions\":[{\"key\":\"app\",\"operator\":\"DoesNotExist\"}]}", "{}"));
}

static bool decode(const char *json, struct arena *a, struct pdb_info *out)
{
    struct jscan js;

    jscan_init(&js, json, strlen(json), 64);
    return obj_pdb_decode(&js, a, out) && jscan_finish(&js);
}

static void test_decode_and_cover(void)
{
    const char *doc = "{\"apiVersion\":\"policy/v1\",\"kind\":\"PodDisruptionBudget\","
                      "\"metadata\":{\"name\":\"keep\",\"namespace\":\"ml\"},\"spec\":"
                      "{\"minAvailable\":2,\"selector\":{\"matchLabels\":{\"app\":\"train\"}}},"
                      "\"status\":{\"disruptionsAllowed\":1,\"disruptedPods\":{\"t-1\":"
                      "\"2026-12-05T10:00:00Z\"},\"currentHealthy\":3}}";
    struct arena a;
    struct pdb_info p;
    struct str labels = STR_LIT("{\"app\":\"train\"}");

    arena_init(&a, 1 << 20);
    CHECK(decode(doc, &a, &p));
    CHECK(str_eq_cstr(p.ns, "ml") && str_eq_cstr(p.name, "keep"));
    CHECK_EQ(p.allowed, 1);
    CHECK(obj_pdb_covers(&p, STR_LIT("ml"), STR_LIT("t-0"), labels));
    /* Already disrupted: the API server counted it, kube-scheduler does not again. */
    CHECK(!obj_pdb_covers(&p, STR_LIT("ml"), STR_LIT("t-1"), labels));
    CHECK(!obj_pdb_covers(&p, STR_LIT("other"), STR_LIT("t-0"), labels));
    CHECK(!obj_pdb_covers(&p, STR_LIT("ml"), STR_LIT("t-0"), STR_NULL));
    /* Wrong types are refused, not guessed. */
    CHECK(!decode("{\"status\":{\"disruptionsAllowed\":\"1\"}}", &a, &p));
    CHECK(!decode("{\"status\":{\"disruptionsAllowed\":1.5}}", &a, &p));
    CHECK(!decode("{\"spec\":{\"selector\":[]}}", &a, &p));
    CHECK(!decode("[]", &a, &p));
    CHECK(decode("{\"metadata\":null,\"spec\":{\"selector\":null},\"status\":null}", &a, &p));
    CHECK_EQ(p.selector.len, 0);
    arena_destroy(&a);
}

static void apply_pod(struct cache *c, const char *json)
{
    struct errbuf eb = ERRBUF_INIT;

    CHECK_EQ(cache_apply_json(c, true, false, json, strlen(json), &eb), ERR_OK);
}

static void test_view(void)
{
    struct cache *c = cache_new();
    struct errbuf eb = ERRBUF_INIT;
    struct cache_preempt_view v;
    struct str names[2] = {STR_LIT("n1"), STR_LIT("nope")};
    const char *node = "{\"metadata\":{\"name\":\"n1\"},\"status\":{\"allocatable\":"
                       "{\"nvidia.com/gpu\":\"8\"}}}";
    const char *pdb =
        "{\"metadata\":{\"name\":\"b\",\"namespace\":\"ml\"},\"spec\":{\"selector\":"
        "{\"matchLabels\":{\"app\":\"train\"}}},\"status\":{\"disruptionsAllowed\":0}}";
    const char *pdb_elsewhere = "{\"metadata\":{\"name\":\"b\",\"namespace\":\"web\"}}";
    struct arena a;
    uint32_t mask = 0;

    arena_init(&a, 1 << 20);
    CHECK_EQ(cache_preempt_view(c, names, 2, &a, &v), ERR_UNAVAILABLE);
    /* A budget in ml before any pod: ml's pods keep their labels. */
    CHECK_EQ(cache_pdb_apply_json(c, false, pdb, strlen(pdb), &eb), ERR_OK);
    cache_nodes_relist_begin(c);
    CHECK_EQ(cache_apply_json(c, false, false, node, strlen(node), &eb), ERR_OK);
    cache_nodes_relist_end(c);
    cache_pods_relist_begin(c);
    apply_pod(c, "{\"metadata\":{\"name\":\"t-0\",\"namespace\":\"ml\",\"uid\":\"u0\",\"labels\":"
                 "{\"app\":\"train\"},\"annotations\":{\"gpu-extender.io/gpus\":\"0,1\"}},"
                 "\"spec\":{\"nodeName\":\"n1\",\"priority\":10,\"containers\":[{\"resources\":"
                 "{\"limits\":{\"nvidia.com/gpu\":\"2\"}}}]},\"status\":{\"phase\":\"Running\"}}");
    apply_pod(c, "{\"metadata\":{\"name\":\"t-1\",\"namespace\":\"ml\",\"uid\":\"u1\","
                 "\"deletionTimestamp\":\"2026-12-05T10:00:00Z\"},\"spec\":{\"nodeName\":\"n1\","
                 "\"priority\":-5,\"containers\":[{\"resources\":{\"limits\":{\"nvidia.com/gpu\":"
                 "\"1\"}}}]},\"status\":{\"phase\":\"Running\"}}");
    /* A pending pod nominated to n1 by an earlier preemption is listed apart. */
    apply_pod(c, "{\"metadata\":{\"name\":\"nom\",\"namespace\":\"ml\",\"uid\":\"u5\"},\"spec\":"
                 "{\"priority\":500,\"containers\":[{\"resources\":{\"limits\":{\"nvidia.com/gpu\":"
                 "\"4\"}}}]},\"status\":{\"phase\":\"Pending\",\"nominatedNodeName\":\"n1\"}}");
    /* Pending, finished and GPU-less pods are not on the node's list. */
    apply_pod(c, "{\"metadata\":{\"name\":\"p\",\"namespace\":\"ml\",\"uid\":\"u2\"},\"spec\":"
                 "{\"containers\":[{\"resources\":{\"limits\":{\"nvidia.com/gpu\":\"1\"}}}]}}");
    apply_pod(c, "{\"metadata\":{\"name\":\"done\",\"namespace\":\"ml\",\"uid\":\"u3\"},\"spec\":"
                 "{\"nodeName\":\"n1\",\"containers\":[{\"resources\":{\"limits\":"
                 "{\"nvidia.com/gpu\":\"1\"}}}]},\"status\":{\"phase\":\"Succeeded\"}}");
    apply_pod(c, "{\"metadata\":{\"name\":\"cpu\",\"namespace\":\"ml\",\"uid\":\"u4\"},\"spec\":"
                 "{\"nodeName\":\"n1\",\"containers\":[{}]}}");
    /* In web, without a budget, a pod's labels are not kept. */
    apply_pod(c, "{\"metadata\":{\"name\":\"w\",\"namespace\":\"web\",\"uid\":\"u6\",\"labels\":"
                 "{\"app\":\"web\"}},\"spec\":{\"nodeName\":\"n1\",\"priority\":3,\"containers\":"
                 "[{\"resources\":{\"limits\":{\"nvidia.com/gpu\":\"1\"}}}]}}");
    cache_pods_relist_end(c);
    CHECK(!cache_pods_relist_wanted(c));
    CHECK_EQ(cache_pdb_apply_json(c, false, pdb, strlen(pdb), &eb), ERR_OK);
    CHECK(!cache_pods_relist_wanted(c)); /* ml had one already */
    /* web's first budget after the pods were listed: they must be listed again. */
    CHECK_EQ(cache_pdb_apply_json(c, false, pdb_elsewhere, strlen(pdb_elsewhere), &eb), ERR_OK);
    CHECK(cache_pods_relist_wanted(c));
    CHECK(!cache_pods_relist_wanted(c)); /* once */
    CHECK_EQ(cache_pdb_apply_json(c, false, "{\"metadata\":{}}", 15, &eb), ERR_PARSE);
    CHECK_EQ(cache_pdb_apply_json(c, false, "{", 1, &eb), ERR_PARSE);
    CHECK_EQ(cache_reserve(c, STR_LIT("r"), STR_LIT("n1"), 1, NULL, NULL, &mask, &eb), ERR_OK);

    CHECK_EQ(cache_preempt_view(c, names, 2, &a, &v), ERR_OK);
    CHECK_EQ(v.node_count, 2);
    CHECK(v.nodes[1].node == NULL);
    CHECK(v.nodes[0].node != NULL);
    CHECK_EQ(v.nodes[0].node->gpus_used, 4); /* t-0 2, t-1 1, w 1 */
    CHECK_EQ(v.nodes[0].node->gpus_reserved, 1);
    CHECK_EQ(v.nodes[0].pod_count, 3);
    CHECK_EQ(v.nodes[0].nominated_count, 1);
    CHECK(str_eq_cstr(v.nodes[0].nominated[0].uid, "u5"));
    CHECK_EQ(v.nodes[0].nominated[0].gpus, 4);
    CHECK_EQ(v.nodes[0].nominated[0].priority, 500);
    for (size_t i = 0; i < 3; i++) {
        const struct cache_bound_pod *p = &v.nodes[0].pods[i];
        if (str_eq_cstr(p->uid, "u6")) {
            CHECK(str_eq_cstr(p->name, "w") && str_eq_cstr(p->ns, "web"));
            CHECK(p->labels_unknown);
            CHECK_EQ(p->labels.len, 0);
        } else if (str_eq_cstr(p->uid, "u0")) {
            CHECK(str_eq_cstr(p->name, "t-0") && str_eq_cstr(p->ns, "ml"));
            CHECK_EQ(p->priority, 10);
            CHECK_EQ(p->mask, 0x3);
            CHECK_EQ(p->gpus, 2);
            CHECK(!p->deleting);
            CHECK(str_eq_cstr(p->labels, "{\"app\":\"train\"}"));
            CHECK(!p->labels_unknown);
        } else {
            CHECK(str_eq_cstr(p->uid, "u1"));
            CHECK_EQ(p->priority, -5);
            CHECK(p->deleting);
            CHECK_EQ(p->labels.len, 0);
        }
    }
    /* Only budgets in the pods' namespaces come along: ml's and web's. */
    CHECK_EQ(v.pdb_count, 2);
    CHECK(!v.pdbs_synced);
    cache_snapshot_release(v.snap);
    /* A relist drops budgets it does not see again; a delete drops one. */
    cache_pdbs_relist_begin(c);
    CHECK_EQ(cache_pdb_apply_json(c, false, pdb, strlen(pdb), &eb), ERR_OK);
    cache_pdbs_relist_end(c);
    CHECK_EQ(cache_pdb_apply_json(c, true, pdb, strlen(pdb), &eb), ERR_OK);
    /* A pod moving off the node, and one deleted, leave its list. */
    apply_pod(c, "{\"metadata\":{\"name\":\"t-0\",\"namespace\":\"ml\",\"uid\":\"u0\"},"
                 "\"spec\":{\"nodeName\":\"n1\",\"containers\":[{\"resources\":{\"limits\":"
                 "{\"nvidia.com/gpu\":\"2\"}}}]},\"status\":{\"phase\":\"Failed\"}}");
    {
        const char *gone = "{\"metadata\":{\"name\":\"t-1\",\"namespace\":\"ml\",\"uid\":\"u1\"}}";
        CHECK_EQ(cache_apply_json(c, true, true, gone, strlen(gone), &eb), ERR_OK);
    }
    CHECK_EQ(cache_preempt_view(c, names, 1, &a, &v), ERR_OK);
    CHECK_EQ(v.nodes[0].pod_count, 1); /* w */
    CHECK_EQ(v.nodes[0].nominated_count, 1);
    CHECK_EQ(v.pdb_count, 0); /* the relist did not see web's, and ml's was deleted */
    CHECK(v.pdbs_synced);
    cache_snapshot_release(v.snap);
    /* Bound at last: no longer nominated. */
    apply_pod(c, "{\"metadata\":{\"name\":\"nom\",\"namespace\":\"ml\",\"uid\":\"u5\"},\"spec\":"
                 "{\"nodeName\":\"n1\",\"priority\":500,\"containers\":[{\"resources\":"
                 "{\"limits\":{\"nvidia.com/gpu\":\"4\"}}}]},\"status\":{\"phase\":\"Pending\","
                 "\"nominatedNodeName\":\"n1\"}}");
    CHECK_EQ(cache_preempt_view(c, names, 1, &a, &v), ERR_OK);
    CHECK_EQ(v.nodes[0].nominated_count, 0);
    CHECK_EQ(v.nodes[0].pod_count, 2);
    cache_snapshot_release(v.snap);
    arena_destroy(&a);
    cache_free(c);
}

int main(void)
{
    test_selectors();
    test_decode_and_cover();
    test_view();
    printf("test_pdb: ok\n");
    return 0;
}
