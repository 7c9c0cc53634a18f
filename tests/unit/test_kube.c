/* test_kube.c -- name validation (what may reach a URL) and Status message extraction. */
#include "gx/kube.h"

#include "check.h"

static void test_names(void)
{
    static const char *const good[] = {"a", "gpu-node-1", "a.b", "x1.y-2.z", "0", "default"};
    static const char *const bad[] = {"",  ".",   "..",  "-x",  "x-",   "a..b", ".a",  "a.",
                                      "A", "a/b", "a b", "a_b", "a%2f", "a.-b", "a-.b"};
    char long_name[300];

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        CHECK(kube_name_is_valid(good[i]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (kube_name_is_valid(bad[i])) {
            fprintf(stderr, "accepted \"%s\"\n", bad[i]);
            abort();
        }
    }
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[253] = '\0';
    CHECK(kube_name_is_valid(long_name));
    long_name[253] = 'a';
    long_name[254] = '\0';
    CHECK(!kube_name_is_valid(long_name));
}

static void test_status_message(void)
{
    char path[1024], msg[256];
    size_t len;
    char *body;

    snprintf(path, sizeof(path), "%s/apiserver/raw/post-binding.409-already-assigned.json",
             getenv("GX_FIXTURES"));
    body = check_read_file(path, &len);
    kube_status_message(body, len, msg, sizeof(msg));
    CHECK_STR_EQ(msg, "Operation cannot be fulfilled on pods/binding \"gpu-pod-1\": pod gpu-pod-1 "
                      "is already assigned to node \"gpu-node-1\"");
    free(body);
    kube_status_message("not json", 8, msg, sizeof(msg));
    CHECK_STR_EQ(msg, "");
}

int main(void)
{
    test_names();
    test_status_message();
    printf("test_kube: ok\n");
    return 0;
}
