/* nvml.c -- NVML through dlopen(): GPUs, links, NUMA nodes and health events (see nvml.h).
 * The ABI we rely on is written down in nvml_internal.h. */
#include "gx/nvml.h"

#include <assert.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "gx/alloc.h"

#include "agent/nvml_internal.h"

/* Entry points: NVML's symbol, our field, its type. Required ones exist in every driver we
 * support; without an optional one, what it reads is unknown (nvml.h). */
#define NVML_REQUIRED(X)                                                                           \
    X(nvmlInit_v2, init, nvml_init_v2_fn)                                                          \
    X(nvmlShutdown, shutdown, nvml_shutdown_fn)                                                    \
    X(nvmlErrorString, error_string, nvml_error_string_fn)                                         \
    X(nvmlDeviceGetCount_v2, get_count, nvml_device_get_count_v2_fn)                               \
    X(nvmlDeviceGetHandleByIndex_v2, get_handle, nvml_device_get_handle_by_index_v2_fn)            \
    X(nvmlDeviceGetUUID, get_uuid, nvml_device_get_uuid_fn)                                        \
    X(nvmlDeviceGetName, get_name, nvml_device_get_name_fn)                                        \
    X(nvmlDeviceGetMemoryInfo, get_memory, nvml_device_get_memory_info_fn)                         \
    X(nvmlDeviceGetPciInfo_v3, get_pci, nvml_device_get_pci_info_v3_fn)

#define NVML_OPTIONAL(X)                                                                           \
    X(nvmlSystemGetDriverVersion, driver_version, nvml_system_get_driver_version_fn)               \
    X(nvmlDeviceGetCudaComputeCapability, get_cc, nvml_device_get_cuda_compute_capability_fn)      \
    X(nvmlDeviceGetMigMode, get_mig_mode, nvml_device_get_mig_mode_fn)                             \
    X(nvmlDeviceGetMemoryAffinity, get_memory_affinity, nvml_device_get_memory_affinity_fn)        \
    X(nvmlDeviceGetTopologyCommonAncestor, get_ancestor,                                           \
      nvml_device_get_topology_common_ancestor_fn)                                                 \
    X(nvmlDeviceGetNvLinkState, nvlink_state, nvml_device_get_nvlink_state_fn)                     \
    X(nvmlDeviceGetNvLinkRemotePciInfo_v2, nvlink_remote_pci,                                      \
      nvml_device_get_nvlink_remote_pci_info_v2_fn)                                                \
    X(nvmlDeviceGetNvLinkRemoteDeviceType, nvlink_remote_type,                                     \
      nvml_device_get_nvlink_remote_device_type_fn)                                                \
    X(nvmlEventSetCreate, event_set_create, nvml_event_set_create_fn)                              \
    X(nvmlEventSetFree, event_set_free, nvml_event_set_free_fn)                                    \
    X(nvmlDeviceGetSupportedEventTypes, supported_events,                                          \
      nvml_device_get_supported_event_types_fn)                                                    \
    X(nvmlDeviceRegisterEvents, register_events, nvml_device_register_events_fn)                   \
    X(nvmlEventSetWait_v2, event_wait, nvml_event_set_wait_v2_fn)

struct nvml_api {
#define NVML_API_FIELD(sym, field, type) type *field;
    NVML_REQUIRED(NVML_API_FIELD)
    NVML_OPTIONAL(NVML_API_FIELD)
#undef NVML_API_FIELD
};

/* NUMA nodes a memory-affinity answer may name: 4 words of 64 bits. */
#define NUMA_WORDS 4u
#define BITS_PER_WORD (8u * (unsigned)sizeof(unsigned long))

struct nvml {
    void *lib;
    struct nvml_api api;
    unsigned n;
    struct nvml_device *dev[GPU_FACTS_MAX];
    struct nvml_event_set *events; /* NULL until armed */
    uint32_t watched;              /* GPUs registered for events */
};

/* Where one active NVLink link leads. */
enum link_end { LINK_NONE, LINK_GPU, LINK_SWITCH };

/* dlsym() answers an object pointer; POSIX guarantees it converts to a function pointer, ISO
 * C does not, so it is copied bytewise (no cast for -Wpedantic to refuse). */
static_assert(sizeof(void *) == sizeof(nvml_init_v2_fn *), "function and object pointers");

static void *lookup(void *lib, const char *name)
{
    (void)dlerror();
    return dlsym(lib, name);
}

static const char *dl_reason(void)
{
    const char *why = dlerror();

    return why ? why : "no reason given";
}

static enum err resolve_api(struct nvml *n, const char *path, struct errbuf *eb)
{
    void *p;

#define NVML_RESOLVE_REQUIRED(sym, field, type)                                                    \
    p = lookup(n->lib, #sym);                                                                      \
    if (!p) {                                                                                      \
        errbuf_set(eb, "%s: no symbol %s (NVIDIA driver too old?): %s", path, #sym, dl_reason());  \
        return ERR_UNAVAILABLE;                                                                    \
    }                                                                                              \
    memcpy(&n->api.field, &p, sizeof(p));
#define NVML_RESOLVE_OPTIONAL(sym, field, type)                                                    \
    p = lookup(n->lib, #sym);                                                                      \
    memcpy(&n->api.field, &p, sizeof(p));
    NVML_REQUIRED(NVML_RESOLVE_REQUIRED)
    NVML_OPTIONAL(NVML_RESOLVE_OPTIONAL)
#undef NVML_RESOLVE_REQUIRED
#undef NVML_RESOLVE_OPTIONAL
    return ERR_OK;
}

static const char *nvml_reason(const struct nvml *n, enum nvml_ret ret)
{
    const char *why = n->api.error_string(ret);

    return why ? why : "unknown NVML error";
}

static enum err list_gpus(struct nvml *n, struct errbuf *eb)
{
    unsigned count = 0;
    enum nvml_ret ret = n->api.get_count(&count);

    if (ret != NVML_SUCCESS) {
        errbuf_set(eb, "nvmlDeviceGetCount_v2: %s (%d)", nvml_reason(n, ret), (int)ret);
        return ERR_UPSTREAM;
    }
    if (count > GPU_FACTS_MAX) {
        errbuf_set(eb, "NVML lists %u GPUs; at most %d are supported", count, GPU_FACTS_MAX);
        return ERR_TOO_LARGE;
    }
    for (unsigned i = 0; i < count; i++) {
        ret = n->api.get_handle(i, &n->dev[i]);
        if (ret != NVML_SUCCESS) {
            errbuf_set(eb, "nvmlDeviceGetHandleByIndex_v2(%u): %s (%d)", i, nvml_reason(n, ret),
                       (int)ret);
            return ERR_UPSTREAM;
        }
    }
    n->n = count;
    return ERR_OK;
}

enum err nvml_open(const char *lib_path, struct nvml **out, struct errbuf *eb)
{
    const char *path = lib_path ? lib_path : NVML_DEFAULT_LIB;
    struct nvml *n = xcalloc(1, sizeof(*n));
    enum nvml_ret ret;
    enum err e;

    n->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!n->lib) {
        errbuf_set(eb, "cannot load NVML from %s: %s", path, dl_reason());
        e = ERR_UNAVAILABLE;
        goto out_free;
    }
    e = resolve_api(n, path, eb);
    if (e != ERR_OK)
        goto out_close;
    ret = n->api.init();
    if (ret != NVML_SUCCESS) {
        errbuf_set(eb, "%s: nvmlInit_v2: %s (%d)", path, nvml_reason(n, ret), (int)ret);
        e = ERR_UNAVAILABLE;
        goto out_close;
    }
    e = list_gpus(n, eb);
    if (e != ERR_OK)
        goto out_shutdown;
    *out = n;
    return ERR_OK;

out_shutdown:
    n->api.shutdown();
out_close:
    dlclose(n->lib);
out_free:
    free(n);
    return e;
}

void nvml_close(struct nvml *n)
{
    if (!n)
        return;
    if (n->events)
        n->api.event_set_free(n->events);
    n->api.shutdown();
    dlclose(n->lib);
    free(n);
}

/* A single node in the NUMA-node-scope memory affinity is the GPU's node; no answer, or
 * several nodes, leave it unknown. (nvmlDeviceGetNumaNodeId is not asked: it names the GPU's
 * own memory node on platforms where GPU memory is a NUMA node, which is not what pods are
 * aligned to. CPU affinity names CPUs, not nodes.) */
static int read_numa(const struct nvml *n, struct nvml_device *dev)
{
    unsigned long set[NUMA_WORDS] = {0};
    int node = -1;

    if (!n->api.get_memory_affinity ||
        n->api.get_memory_affinity(dev, NUMA_WORDS, set, NVML_AFFINITY_SCOPE_NODE) != NVML_SUCCESS)
        return -1;
    for (unsigned w = 0; w < NUMA_WORDS; w++) {
        for (unsigned bit = 0; bit < BITS_PER_WORD; bit++) {
            if (!(set[w] & (1UL << bit)))
                continue;
            if (node >= 0)
                return -1;
            node = (int)(w * BITS_PER_WORD + bit);
        }
    }
    return node;
}

static void read_optional(const struct nvml *n, struct nvml_device *dev, struct gpu_fact *g)
{
    unsigned current = 0, pending = 0;

    g->cc_major = g->cc_minor = -1;
    if (n->api.get_cc && n->api.get_cc(dev, &g->cc_major, &g->cc_minor) != NVML_SUCCESS)
        g->cc_major = g->cc_minor = -1;
    g->mig_enabled = n->api.get_mig_mode &&
                     n->api.get_mig_mode(dev, &current, &pending) == NVML_SUCCESS &&
                     current == NVML_DEVICE_MIG_ENABLE;
    g->numa = read_numa(n, dev);
}

/* Fills g from GPU i; pci gets its PCI address, to match NVLink remote ends against. */
static enum err read_gpu(const struct nvml *n, unsigned i, struct gpu_fact *g,
                         struct nvml_pci_info *pci, struct errbuf *eb)
{
    struct nvml_device *dev = n->dev[i];
    struct nvml_memory mem = {0};
    const char *call = "nvmlDeviceGetUUID";
    enum nvml_ret ret;

    g->index = i;
    g->healthy = true;
    ret = n->api.get_uuid(dev, g->uuid, (unsigned)sizeof(g->uuid));
    if (ret == NVML_SUCCESS) {
        call = "nvmlDeviceGetName";
        ret = n->api.get_name(dev, g->name, (unsigned)sizeof(g->name));
    }
    if (ret == NVML_SUCCESS) {
        call = "nvmlDeviceGetMemoryInfo";
        ret = n->api.get_memory(dev, &mem);
    }
    if (ret == NVML_SUCCESS) {
        call = "nvmlDeviceGetPciInfo_v3";
        ret = n->api.get_pci(dev, pci);
    }
    if (ret != NVML_SUCCESS) {
        errbuf_set(eb, "%s(GPU %u): %s (%d)", call, i, nvml_reason(n, ret), (int)ret);
        return ERR_UPSTREAM;
    }
    /* NVML NUL-terminates within the length given; make sure of it regardless. */
    g->uuid[sizeof(g->uuid) - 1] = '\0';
    g->name[sizeof(g->name) - 1] = '\0';
    pci->bus_id[sizeof(pci->bus_id) - 1] = '\0';
    memcpy(g->pci_bus_id, pci->bus_id, sizeof(g->pci_bus_id));
    g->memory_bytes = mem.total;
    read_optional(n, dev, g);
    return ERR_OK;
}

static int gpu_at(const struct nvml *n, const struct nvml_pci_info *pci,
                  const struct nvml_pci_info *remote)
{
    for (unsigned i = 0; i < n->n; i++) {
        if (pci[i].domain == remote->domain && pci[i].bus == remote->bus &&
            pci[i].device == remote->device)
            return (int)i;
    }
    return -1;
}

/* Where GPU a's link leads, by the remote device type when the driver tells it, else by the
 * remote PCI address: one of our GPUs, or (on drivers without the type) an NVSwitch. Links to
 * an IBM NPU (POWER9's NVLink to the CPU) and to GPUs NVML does not list count for no pair. */
static enum link_end link_end(const struct nvml *n, const struct nvml_pci_info *pci, unsigned a,
                              unsigned link, unsigned *peer)
{
    enum nvml_nvlink_remote type = NVML_NVLINK_DEVICE_TYPE_UNKNOWN;
    enum nvml_enable_state active = NVML_FEATURE_DISABLED;
    struct nvml_pci_info remote;
    int at;

    if (n->api.nvlink_state(n->dev[a], link, &active) != NVML_SUCCESS ||
        active != NVML_FEATURE_ENABLED)
        return LINK_NONE;
    if (n->api.nvlink_remote_type &&
        n->api.nvlink_remote_type(n->dev[a], link, &type) != NVML_SUCCESS)
        type = NVML_NVLINK_DEVICE_TYPE_UNKNOWN;
    if (type == NVML_NVLINK_DEVICE_TYPE_SWITCH)
        return LINK_SWITCH;
    if (type == NVML_NVLINK_DEVICE_TYPE_IBMNPU)
        return LINK_NONE;
    memset(&remote, 0, sizeof(remote));
    if (n->api.nvlink_remote_pci(n->dev[a], link, &remote) != NVML_SUCCESS)
        return LINK_NONE;
    at = gpu_at(n, pci, &remote);
    if (at < 0)
        return type == NVML_NVLINK_DEVICE_TYPE_UNKNOWN ? LINK_SWITCH : LINK_NONE;
    if ((unsigned)at == a)
        return LINK_NONE;
    *peer = (unsigned)at;
    return LINK_GPU;
}

static unsigned min_u(unsigned a, unsigned b)
{
    return a < b ? a : b;
}

static void read_nvlinks(const struct nvml *n, const struct nvml_pci_info *pci, struct gpu_facts *f)
{
    unsigned direct[GPU_FACTS_MAX][GPU_FACTS_MAX] = {{0}};
    unsigned to_switch[GPU_FACTS_MAX] = {0};

    if (!n->api.nvlink_state || !n->api.nvlink_remote_pci)
        return;
    for (unsigned a = 0; a < n->n; a++) {
        for (unsigned link = 0; link < NVML_NVLINK_MAX_LINKS; link++) {
            unsigned peer = 0;

            switch (link_end(n, pci, a, link, &peer)) {
            case LINK_GPU:
                direct[a][peer]++;
                break;
            case LINK_SWITCH:
                to_switch[a]++;
                break;
            case LINK_NONE:
                break;
            }
        }
    }
    /* Each direct link is seen from both of its ends: it counts when both see it. */
    for (unsigned a = 0; a < n->n; a++) {
        for (unsigned b = a + 1; b < n->n; b++) {
            unsigned links = min_u(direct[a][b], direct[b][a]) + min_u(to_switch[a], to_switch[b]);

            links = min_u(links, NVML_NVLINK_MAX_LINKS);
            f->nvlinks[a][b] = f->nvlinks[b][a] = (uint8_t)links;
        }
    }
}

static enum topo_class pcie_class(enum nvml_topo_level level)
{
    switch (level) {
    case NVML_TOPOLOGY_INTERNAL:
    case NVML_TOPOLOGY_SINGLE:
        return TOPO_PIX;
    case NVML_TOPOLOGY_MULTIPLE:
        return TOPO_PXB;
    case NVML_TOPOLOGY_HOSTBRIDGE:
        return TOPO_PHB;
    case NVML_TOPOLOGY_NODE:
        return TOPO_NODE;
    case NVML_TOPOLOGY_SYSTEM:
    default:
        return TOPO_SYS;
    }
}

static void read_pcie(const struct nvml *n, struct gpu_facts *f)
{
    /* nvml_open() refuses more than GPU_FACTS_MAX GPUs; saying so here lets the compiler see
     * that the pairs stay inside f->pcie. */
    unsigned count = n->n < GPU_FACTS_MAX ? n->n : GPU_FACTS_MAX;

    for (unsigned a = 0; a < count; a++) {
        for (unsigned b = a + 1; b < count; b++) {
            enum nvml_topo_level level = NVML_TOPOLOGY_SYSTEM;

            if (!n->api.get_ancestor ||
                n->api.get_ancestor(n->dev[a], n->dev[b], &level) != NVML_SUCCESS)
                level = NVML_TOPOLOGY_SYSTEM;
            f->pcie[a][b] = f->pcie[b][a] = (uint8_t)pcie_class(level);
        }
    }
}

static void read_driver_version(const struct nvml *n, struct gpu_facts *f)
{
    char version[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE] = {0};

    if (!n->api.driver_version ||
        n->api.driver_version(version, (unsigned)sizeof(version)) != NVML_SUCCESS)
        return;
    version[sizeof(version) - 1] = '\0';
    /* A version that does not fit stays unknown rather than cut. */
    if (strlen(version) < sizeof(f->driver_version))
        memcpy(f->driver_version, version, strlen(version) + 1);
}

enum err nvml_collect(struct nvml *n, struct gpu_facts *out, struct errbuf *eb)
{
    struct nvml_pci_info pci[GPU_FACTS_MAX];
    struct gpu_facts *f = xcalloc(1, sizeof(*f));
    enum err e = ERR_OK;

    memset(pci, 0, sizeof(pci));
    f->n = n->n;
    for (unsigned i = 0; i < n->n && e == ERR_OK; i++)
        e = read_gpu(n, i, &f->gpu[i], &pci[i], eb);
    if (e == ERR_OK) {
        read_nvlinks(n, pci, f);
        read_pcie(n, f);
        read_driver_version(n, f);
        *out = *f;
    }
    free(f);
    return e;
}

enum err nvml_events_arm(struct nvml *n, struct errbuf *eb)
{
    const unsigned long long wanted = NVML_EVENT_XID_CRITICAL | NVML_EVENT_DOUBLE_BIT_ECC;
    struct nvml_event_set *set = NULL;
    uint32_t watched = 0;
    enum nvml_ret ret;

    if (n->events)
        return ERR_OK;
    if (!n->api.event_set_create || !n->api.event_set_free || !n->api.supported_events ||
        !n->api.register_events || !n->api.event_wait) {
        errbuf_set(eb, "this NVML has no event API (nvmlEventSetWait_v2 and others missing)");
        return ERR_UNAVAILABLE;
    }
    ret = n->api.event_set_create(&set);
    if (ret != NVML_SUCCESS) {
        errbuf_set(eb, "nvmlEventSetCreate: %s (%d)", nvml_reason(n, ret), (int)ret);
        return ERR_UPSTREAM;
    }
    for (unsigned i = 0; i < n->n; i++) {
        unsigned long long supported = 0;

        /* A GPU that cannot say (or register) which events it has is simply not watched, as
         * the device plugin does. */
        if (n->api.supported_events(n->dev[i], &supported) != NVML_SUCCESS ||
            (supported & wanted) == 0)
            continue;
        ret = n->api.register_events(n->dev[i], supported & wanted, set);
        if (ret == NVML_ERROR_NOT_SUPPORTED)
            continue;
        if (ret != NVML_SUCCESS) {
            errbuf_set(eb, "nvmlDeviceRegisterEvents(GPU %u): %s (%d)", i, nvml_reason(n, ret),
                       (int)ret);
            n->api.event_set_free(set);
            return ERR_UPSTREAM;
        }
        watched |= UINT32_C(1) << i;
    }
    if (!watched) {
        n->api.event_set_free(set);
        errbuf_set(eb, "no GPU supports critical XID or double-bit ECC events");
        return ERR_UNAVAILABLE;
    }
    n->events = set;
    n->watched = watched;
    return ERR_OK;
}

uint32_t nvml_events_watched(const struct nvml *n)
{
    return n->watched;
}

int nvml_events_wait(struct nvml *n, unsigned timeout_ms, struct nvml_event *out, struct errbuf *eb)
{
    struct nvml_event_data data;
    enum nvml_ret ret;

    if (!n->events) {
        errbuf_set(eb, "NVML events are not armed");
        return -1;
    }
    memset(&data, 0, sizeof(data));
    ret = n->api.event_wait(n->events, &data, timeout_ms);
    if (ret == NVML_ERROR_TIMEOUT)
        return 0;
    if (ret != NVML_SUCCESS) {
        errbuf_set(eb, "nvmlEventSetWait_v2: %s (%d)", nvml_reason(n, ret), (int)ret);
        return -1;
    }
    for (unsigned i = 0; i < n->n; i++) {
        if (n->dev[i] == data.device) {
            out->index = i;
            out->dbe = (data.event_type & NVML_EVENT_DOUBLE_BIT_ECC) != 0;
            out->xid = (data.event_type & NVML_EVENT_XID_CRITICAL) ? data.event_data : 0;
            return 1;
        }
    }
    errbuf_set(eb, "nvmlEventSetWait_v2: an event for a device NVML did not list");
    return -1;
}
