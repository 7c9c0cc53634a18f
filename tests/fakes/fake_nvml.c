/* fake_nvml.c -- a test double of NVML (libnvidia-ml.so.1): exactly the entry points
 * src/agent/nvml.c uses, under NVML's names and ABI (agent/nvml_internal.h, so the compiler
 * checks every signature), answering from a node described in a text file. Built twice:
 * libfake_nvml.so, a current driver, and libfake_nvml_old.so (FAKE_NVML_OLD_DRIVER), a driver
 * without nvmlDeviceGetNvLinkRemoteDeviceType, nvmlDeviceGetMigMode and
 * nvmlDeviceGetMemoryAffinity.
 *
 * The node: the file named by FAKE_NVML_CONFIG, read by nvmlInit_v2 (missing variable or
 * file: NVML_ERROR_DRIVER_NOT_LOADED; a malformed file: NVML_ERROR_UNKNOWN, the reason on
 * stderr). One statement a line, '#' starts a comment, values may be "quoted":
 *   driver 550.54.15               nvmlSystemGetDriverVersion
 *   init_error 9                   nvmlInit_v2 answers this code instead (9: driver not loaded)
 *   gpu 0 uuid=GPU-1 name="NVIDIA H100 80GB HBM3" bus=00000000:18:00.0 memory_mib=81559
 *         numa=0 cc=9.0 mig=off links=18 events=xid,dbe
 *                                  GPU 0 (lines in index order 0..31). Required: uuid, name,
 *                                  bus. numa: nodes of its memory affinity ("0", or "0,1" for
 *                                  two), unset: affinity NOT_SUPPORTED (nvmlDeviceGetNumaNodeId
 *                                  is not provided: the agent never asks it); cc unset:
 *                                  NOT_SUPPORTED; mig=on|off, unset: NOT_SUPPORTED; links: its
 *                                  NVLink links (default: as many as the lines below give it;
 *                                  0: NVLink NOT_SUPPORTED); events: supported events, xid, dbe
 *                                  or none (default xid,dbe).
 *   nvlink 0 1 2                   two direct links between GPUs 0 and 1
 *   nvswitch 0 18                  18 links from GPU 0 to NVSwitches
 *   pcie 0 1 single                nvmlDeviceGetTopologyCommonAncestor of GPUs 0 and 1: internal,
 *                                  single, multiple, hostbridge, node or system (the default)
 * Link numbers are given out per GPU in the order of the nvlink/nvswitch lines; links past
 * those (up to links=) are inactive. NVSwitch ends have PCI addresses 00000000:E0:00.0 to
 * 00000000:E3:00.0 (link number mod 4), which GPUs may not use.
 *
 * Events: nvmlEventSetWait_v2 reads the file named by FAKE_NVML_EVENTS from where the last
 * read stopped (at first: its size when the event set was created, since NVML records no
 * event from before), delivering one complete line per call among
 *   xid <gpu> <xid>                a critical XID
 *   dbe <gpu>                      a double-bit ECC error
 *   lost                           the wait answers NVML_ERROR_GPU_IS_LOST
 * (lines for events a GPU is not registered for are skipped), else it polls every 10 ms until
 * the timeout and answers NVML_ERROR_TIMEOUT. A test appends lines; so can an end-to-end test
 * of a running agent.
 *
 * State is process-global, as NVML's is; nvmlInit_v2/nvmlShutdown count references. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "agent/nvml_internal.h"

/* More than nvml.c takes (16), to see it refuse the rest. */
#define FAKE_MAX_GPUS 32
#define FAKE_MAX_TOKENS 16
#define FAKE_TOKEN_MAX 128
#define FAKE_SWITCH_BUS 0xE0u
#define FAKE_POLL_MS 10u

enum link_kind { LINK_UNUSED, LINK_TO_GPU, LINK_TO_SWITCH };

struct fake_link {
    enum link_kind kind;
    unsigned peer;
};

struct nvml_device {
    bool present;
    char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE];
    char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE];
    unsigned long long memory_bytes;
    struct nvml_pci_info pci;
    unsigned long numa_set; /* memory affinity: bit n = node n; 0 = not supported */
    int cc_major, cc_minor; /* -1: not supported */
    int mig;                /* -1 not supported, 0 off, 1 on */
    unsigned capacity;      /* NVLink links it has (links=, or as many as assigned) */
    bool capacity_given;
    unsigned assigned; /* links given out by nvlink/nvswitch lines */
    struct fake_link link[NVML_NVLINK_MAX_LINKS];
    unsigned long long events; /* supported event types */
};

struct nvml_event_set {
    long offset; /* bytes of FAKE_NVML_EVENTS consumed */
    unsigned long long registered[FAKE_MAX_GPUS];
};

static struct {
    int refs;
    unsigned n;
    struct nvml_device gpu[FAKE_MAX_GPUS];
    enum nvml_topo_level ancestor[FAKE_MAX_GPUS][FAKE_MAX_GPUS];
    char driver[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE];
    int init_error;
} fake;

/* ---- the configuration file ---- */

struct line {
    const char *path;
    unsigned lineno;
    unsigned ntok;
    char tok[FAKE_MAX_TOKENS][FAKE_TOKEN_MAX];
};

static bool bad(const struct line *l, const char *what)
{
    fprintf(stderr, "fake_nvml: %s:%u: %s\n", l->path, l->lineno, what);
    return false;
}

/* Splits text into whitespace-separated tokens; "..." keeps spaces, '#' ends the line. */
static bool tokenize(const char *text, struct line *l)
{
    const char *p = text;

    l->ntok = 0;
    for (;;) {
        size_t len = 0;
        bool quoted = false;

        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        if (*p == '\0' || *p == '#')
            return true;
        if (l->ntok == FAKE_MAX_TOKENS)
            return bad(l, "too many words");
        while (*p && (quoted || (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n'))) {
            if (*p == '"') {
                quoted = !quoted;
            } else if (len + 1 < FAKE_TOKEN_MAX) {
                l->tok[l->ntok][len++] = *p;
            } else {
                return bad(l, "word too long");
            }
            p++;
        }
        if (quoted)
            return bad(l, "unterminated quote");
        l->tok[l->ntok++][len] = '\0';
    }
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    unsigned long v;

    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    v = strtoul(s, &end, 0);
    if (errno || *end || v > max)
        return false;
    *out = v;
    return true;
}

static bool parse_gpu_index(const struct line *l, const char *s, unsigned *out)
{
    unsigned long v;

    if (!parse_uint(s, FAKE_MAX_GPUS - 1, &v) || v >= fake.n)
        return bad(l, "no such GPU");
    *out = (unsigned)v;
    return true;
}

static bool parse_bus(const char *s, struct nvml_pci_info *pci)
{
    unsigned domain, bus, device, function;
    char extra;

    if (sscanf(s, "%8x:%2x:%2x.%1x%c", &domain, &bus, &device, &function, &extra) != 4)
        return false;
    memset(pci, 0, sizeof(*pci));
    pci->domain = domain;
    pci->bus = bus;
    pci->device = device;
    pci->pci_device_id = 0x000010DEu; /* vendor NVIDIA; nothing reads the device id */
    snprintf(pci->bus_id, sizeof(pci->bus_id), "%08X:%02X:%02X.0", domain, bus, device);
    snprintf(pci->bus_id_legacy, sizeof(pci->bus_id_legacy), "%04X:%02X:%02X.0", domain & 0xFFFFu,
             bus, device);
    return true;
}

static bool parse_numa(const char *s, unsigned long *set)
{
    const char *p = s;

    *set = 0;
    for (;;) {
        char *end;
        unsigned long node;

        errno = 0;
        node = strtoul(p, &end, 10);
        if (errno || end == p || node >= 8 * sizeof(*set))
            return false;
        *set |= 1UL << node;
        if (*end == '\0')
            return true;
        if (*end != ',')
            return false;
        p = end + 1;
    }
}

static bool parse_events(const char *s, unsigned long long *mask)
{
    if (strcmp(s, "none") == 0)
        *mask = 0;
    else if (strcmp(s, "xid") == 0)
        *mask = NVML_EVENT_XID_CRITICAL;
    else if (strcmp(s, "dbe") == 0)
        *mask = NVML_EVENT_DOUBLE_BIT_ECC;
    else if (strcmp(s, "xid,dbe") == 0 || strcmp(s, "dbe,xid") == 0)
        *mask = NVML_EVENT_XID_CRITICAL | NVML_EVENT_DOUBLE_BIT_ECC;
    else
        return false;
    return true;
}

static bool set_string(char *dst, size_t cap, const char *value)
{
    size_t len = strlen(value);

    if (len + 1 > cap)
        return false;
    memcpy(dst, value, len + 1);
    return true;
}

static bool gpu_key(const struct line *l, struct nvml_device *g, const char *key, const char *v)
{
    unsigned long num = 0;
    bool ok = true;

    if (strcmp(key, "uuid") == 0) {
        ok = set_string(g->uuid, sizeof(g->uuid), v);
    } else if (strcmp(key, "name") == 0) {
        ok = set_string(g->name, sizeof(g->name), v);
    } else if (strcmp(key, "bus") == 0) {
        ok = parse_bus(v, &g->pci);
    } else if (strcmp(key, "memory_mib") == 0) {
        ok = parse_uint(v, 1UL << 30, &num);
        g->memory_bytes = (unsigned long long)num << 20;
    } else if (strcmp(key, "numa") == 0) {
        ok = parse_numa(v, &g->numa_set);
    } else if (strcmp(key, "cc") == 0) {
        ok = sscanf(v, "%d.%d", &g->cc_major, &g->cc_minor) == 2;
    } else if (strcmp(key, "mig") == 0) {
        ok = strcmp(v, "on") == 0 || strcmp(v, "off") == 0;
        g->mig = strcmp(v, "on") == 0;
    } else if (strcmp(key, "links") == 0) {
        ok = parse_uint(v, NVML_NVLINK_MAX_LINKS, &num);
        g->capacity = (unsigned)num;
        g->capacity_given = true;
    } else if (strcmp(key, "events") == 0) {
        ok = parse_events(v, &g->events);
    } else {
        return bad(l, "unknown gpu key");
    }
    return ok ? true : bad(l, "bad gpu value");
}

static bool parse_gpu(const struct line *l)
{
    struct nvml_device *g;
    unsigned long index;

    if (l->ntok < 2 || !parse_uint(l->tok[1], FAKE_MAX_GPUS - 1, &index) || index != fake.n)
        return bad(l, "gpu lines must number 0, 1, 2, ... (at most 32)");
    g = &fake.gpu[fake.n];
    memset(g, 0, sizeof(*g));
    g->cc_major = g->cc_minor = -1;
    g->mig = -1;
    g->events = NVML_EVENT_XID_CRITICAL | NVML_EVENT_DOUBLE_BIT_ECC;
    for (unsigned i = 2; i < l->ntok; i++) {
        char *eq = strchr(l->tok[i], '=');

        if (!eq)
            return bad(l, "expected key=value");
        *eq = '\0';
        if (!gpu_key(l, g, l->tok[i], eq + 1))
            return false;
    }
    if (!g->uuid[0] || !g->name[0] || !g->pci.bus_id[0])
        return bad(l, "a gpu needs uuid, name and bus");
    if (g->pci.domain == 0 && (g->pci.bus & ~3u) == FAKE_SWITCH_BUS)
        return bad(l, "buses E0-E3 of domain 0 are the fake NVSwitches'");
    g->present = true;
    fake.n++;
    return true;
}

static bool add_link(const struct line *l, unsigned gpu, enum link_kind kind, unsigned peer)
{
    struct nvml_device *g = &fake.gpu[gpu];

    if (g->assigned == NVML_NVLINK_MAX_LINKS)
        return bad(l, "more than 18 NVLink links on one GPU");
    g->link[g->assigned].kind = kind;
    g->link[g->assigned].peer = peer;
    g->assigned++;
    return true;
}

static bool parse_nvlink(const struct line *l)
{
    unsigned a, b;
    unsigned long count;

    if (l->ntok != 4 || !parse_gpu_index(l, l->tok[1], &a) || !parse_gpu_index(l, l->tok[2], &b) ||
        a == b || !parse_uint(l->tok[3], NVML_NVLINK_MAX_LINKS, &count))
        return bad(l, "expected: nvlink <gpu> <gpu> <links>");
    for (unsigned long i = 0; i < count; i++) {
        if (!add_link(l, a, LINK_TO_GPU, b) || !add_link(l, b, LINK_TO_GPU, a))
            return false;
    }
    return true;
}

static bool parse_nvswitch(const struct line *l)
{
    unsigned a;
    unsigned long count;

    if (l->ntok != 3 || !parse_gpu_index(l, l->tok[1], &a) ||
        !parse_uint(l->tok[2], NVML_NVLINK_MAX_LINKS, &count))
        return bad(l, "expected: nvswitch <gpu> <links>");
    for (unsigned long i = 0; i < count; i++) {
        if (!add_link(l, a, LINK_TO_SWITCH, 0))
            return false;
    }
    return true;
}

static bool parse_pcie(const struct line *l)
{
    static const struct {
        const char *name;
        enum nvml_topo_level level;
    } levels[] = {{"internal", NVML_TOPOLOGY_INTERNAL}, {"single", NVML_TOPOLOGY_SINGLE},
                  {"multiple", NVML_TOPOLOGY_MULTIPLE}, {"hostbridge", NVML_TOPOLOGY_HOSTBRIDGE},
                  {"node", NVML_TOPOLOGY_NODE},         {"system", NVML_TOPOLOGY_SYSTEM}};
    unsigned a, b;

    if (l->ntok != 4 || !parse_gpu_index(l, l->tok[1], &a) || !parse_gpu_index(l, l->tok[2], &b) ||
        a == b)
        return bad(l, "expected: pcie <gpu> <gpu> <level>");
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        if (strcmp(l->tok[3], levels[i].name) == 0) {
            fake.ancestor[a][b] = fake.ancestor[b][a] = levels[i].level;
            return true;
        }
    }
    return bad(l, "unknown pcie level");
}

static bool parse_line(struct line *l)
{
    const char *verb = l->tok[0];
    unsigned long code;

    if (l->ntok == 0)
        return true;
    if (strcmp(verb, "driver") == 0 && l->ntok == 2)
        return set_string(fake.driver, sizeof(fake.driver), l->tok[1]) || bad(l, "too long");
    if (strcmp(verb, "init_error") == 0 && l->ntok == 2) {
        if (!parse_uint(l->tok[1], 999, &code) || code == 0)
            return bad(l, "expected an NVML error code");
        fake.init_error = (int)code;
        return true;
    }
    if (strcmp(verb, "gpu") == 0)
        return parse_gpu(l);
    if (strcmp(verb, "nvlink") == 0)
        return parse_nvlink(l);
    if (strcmp(verb, "nvswitch") == 0)
        return parse_nvswitch(l);
    if (strcmp(verb, "pcie") == 0)
        return parse_pcie(l);
    return bad(l, "unknown statement");
}

static void finish_links(void)
{
    for (unsigned i = 0; i < fake.n; i++) {
        struct nvml_device *g = &fake.gpu[i];

        if (!g->capacity_given || g->capacity < g->assigned)
            g->capacity = g->assigned;
    }
}

static enum nvml_ret load_config(void)
{
    const char *path = getenv("FAKE_NVML_CONFIG");
    struct line l;
    char text[1024];
    FILE *f;
    bool ok = true;

    memset(&fake, 0, sizeof(fake));
    for (unsigned a = 0; a < FAKE_MAX_GPUS; a++) {
        for (unsigned b = 0; b < FAKE_MAX_GPUS; b++)
            fake.ancestor[a][b] = NVML_TOPOLOGY_SYSTEM;
    }
    if (!path || !(f = fopen(path, "r")))
        return NVML_ERROR_DRIVER_NOT_LOADED;
    l.path = path;
    l.lineno = 0;
    while (ok && fgets(text, sizeof(text), f)) {
        l.lineno++;
        ok = tokenize(text, &l) && parse_line(&l);
    }
    fclose(f);
    if (!ok)
        return NVML_ERROR_UNKNOWN;
    finish_links();
    return fake.init_error ? (enum nvml_ret)fake.init_error : NVML_SUCCESS;
}

/* ---- lifecycle and system ---- */

nvml_init_v2_fn nvmlInit_v2;
enum nvml_ret nvmlInit_v2(void)
{
    enum nvml_ret ret;

    if (fake.refs > 0) {
        fake.refs++;
        return NVML_SUCCESS;
    }
    ret = load_config();
    if (ret == NVML_SUCCESS)
        fake.refs = 1;
    return ret;
}

nvml_shutdown_fn nvmlShutdown;
enum nvml_ret nvmlShutdown(void)
{
    if (fake.refs == 0)
        return NVML_ERROR_UNINITIALIZED;
    fake.refs--;
    return NVML_SUCCESS;
}

nvml_error_string_fn nvmlErrorString;
const char *nvmlErrorString(enum nvml_ret result)
{
    switch (result) {
    case NVML_SUCCESS:
        return "Success";
    case NVML_ERROR_UNINITIALIZED:
        return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT:
        return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED:
        return "Not Supported";
    case NVML_ERROR_NO_PERMISSION:
        return "Insufficient Permissions";
    case NVML_ERROR_NOT_FOUND:
        return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE:
        return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED:
        return "Driver Not Loaded";
    case NVML_ERROR_TIMEOUT:
        return "Timeout";
    case NVML_ERROR_GPU_IS_LOST:
        return "GPU is lost";
    default:
        return "Unknown Error";
    }
}

static enum nvml_ret copy_string(char *dst, unsigned int length, const char *src)
{
    size_t len = strlen(src);

    if (!dst)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (len + 1 > length)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(dst, src, len + 1);
    return NVML_SUCCESS;
}

nvml_system_get_driver_version_fn nvmlSystemGetDriverVersion;
enum nvml_ret nvmlSystemGetDriverVersion(char *version, unsigned int length)
{
    if (fake.refs == 0)
        return NVML_ERROR_UNINITIALIZED;
    if (!fake.driver[0])
        return NVML_ERROR_NOT_SUPPORTED;
    return copy_string(version, length, fake.driver);
}

/* ---- devices ---- */

/* The handle's GPU index, or -1 for a pointer that is not one of ours. */
static int index_of(const struct nvml_device *device)
{
    for (unsigned i = 0; i < fake.n; i++) {
        if (device == &fake.gpu[i])
            return (int)i;
    }
    return -1;
}

static enum nvml_ret check(const struct nvml_device *device)
{
    if (fake.refs == 0)
        return NVML_ERROR_UNINITIALIZED;
    return index_of(device) < 0 ? NVML_ERROR_INVALID_ARGUMENT : NVML_SUCCESS;
}

nvml_device_get_count_v2_fn nvmlDeviceGetCount_v2;
enum nvml_ret nvmlDeviceGetCount_v2(unsigned int *count)
{
    if (fake.refs == 0)
        return NVML_ERROR_UNINITIALIZED;
    if (!count)
        return NVML_ERROR_INVALID_ARGUMENT;
    *count = fake.n;
    return NVML_SUCCESS;
}

nvml_device_get_handle_by_index_v2_fn nvmlDeviceGetHandleByIndex_v2;
enum nvml_ret nvmlDeviceGetHandleByIndex_v2(unsigned int index, struct nvml_device **device)
{
    if (fake.refs == 0)
        return NVML_ERROR_UNINITIALIZED;
    if (index >= fake.n || !device)
        return NVML_ERROR_INVALID_ARGUMENT;
    *device = &fake.gpu[index];
    return NVML_SUCCESS;
}

nvml_device_get_uuid_fn nvmlDeviceGetUUID;
enum nvml_ret nvmlDeviceGetUUID(struct nvml_device *device, char *uuid, unsigned int length)
{
    enum nvml_ret ret = check(device);

    return ret == NVML_SUCCESS ? copy_string(uuid, length, device->uuid) : ret;
}

nvml_device_get_name_fn nvmlDeviceGetName;
enum nvml_ret nvmlDeviceGetName(struct nvml_device *device, char *name, unsigned int length)
{
    enum nvml_ret ret = check(device);

    return ret == NVML_SUCCESS ? copy_string(name, length, device->name) : ret;
}

nvml_device_get_memory_info_fn nvmlDeviceGetMemoryInfo;
enum nvml_ret nvmlDeviceGetMemoryInfo(struct nvml_device *device, struct nvml_memory *memory)
{
    enum nvml_ret ret = check(device);

    if (ret != NVML_SUCCESS)
        return ret;
    if (!memory)
        return NVML_ERROR_INVALID_ARGUMENT;
    memory->total = device->memory_bytes;
    memory->used = device->memory_bytes / 100; /* what the driver keeps for itself */
    memory->free = memory->total - memory->used;
    return NVML_SUCCESS;
}

nvml_device_get_pci_info_v3_fn nvmlDeviceGetPciInfo_v3;
enum nvml_ret nvmlDeviceGetPciInfo_v3(struct nvml_device *device, struct nvml_pci_info *pci)
{
    enum nvml_ret ret = check(device);

    if (ret != NVML_SUCCESS)
        return ret;
    if (!pci)
        return NVML_ERROR_INVALID_ARGUMENT;
    *pci = device->pci;
    pci->pci_subsystem_id = 0x16C110DEu;
    return NVML_SUCCESS;
}

nvml_device_get_cuda_compute_capability_fn nvmlDeviceGetCudaComputeCapability;
enum nvml_ret nvmlDeviceGetCudaComputeCapability(struct nvml_device *device, int *major, int *minor)
{
    enum nvml_ret ret = check(device);

    if (ret != NVML_SUCCESS)
        return ret;
    if (!major || !minor)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (device->cc_major < 0)
        return NVML_ERROR_NOT_SUPPORTED;
    *major = device->cc_major;
    *minor = device->cc_minor;
    return NVML_SUCCESS;
}

nvml_device_get_topology_common_ancestor_fn nvmlDeviceGetTopologyCommonAncestor;
enum nvml_ret nvmlDeviceGetTopologyCommonAncestor(struct nvml_device *device1,
                                                  struct nvml_device *device2,
                                                  enum nvml_topo_level *path)
{
    enum nvml_ret ret = check(device1);

    if (ret == NVML_SUCCESS)
        ret = check(device2);
    if (ret != NVML_SUCCESS)
        return ret;
    if (!path || device1 == device2)
        return NVML_ERROR_INVALID_ARGUMENT;
    *path = fake.ancestor[index_of(device1)][index_of(device2)];
    return NVML_SUCCESS;
}

/* NVLink state of a link: NOT_SUPPORTED on a GPU without NVLink, INVALID_ARGUMENT past its
 * links. */
static enum nvml_ret link_check(const struct nvml_device *device, unsigned int link)
{
    enum nvml_ret ret = check(device);

    if (ret != NVML_SUCCESS)
        return ret;
    if (device->capacity == 0)
        return NVML_ERROR_NOT_SUPPORTED;
    return link < device->capacity ? NVML_SUCCESS : NVML_ERROR_INVALID_ARGUMENT;
}

nvml_device_get_nvlink_state_fn nvmlDeviceGetNvLinkState;
enum nvml_ret nvmlDeviceGetNvLinkState(struct nvml_device *device, unsigned int link,
                                       enum nvml_enable_state *is_active)
{
    enum nvml_ret ret = link_check(device, link);

    if (ret != NVML_SUCCESS)
        return ret;
    if (!is_active)
        return NVML_ERROR_INVALID_ARGUMENT;
    *is_active =
        device->link[link].kind == LINK_UNUSED ? NVML_FEATURE_DISABLED : NVML_FEATURE_ENABLED;
    return NVML_SUCCESS;
}

nvml_device_get_nvlink_remote_pci_info_v2_fn nvmlDeviceGetNvLinkRemotePciInfo_v2;
enum nvml_ret nvmlDeviceGetNvLinkRemotePciInfo_v2(struct nvml_device *device, unsigned int link,
                                                  struct nvml_pci_info *pci)
{
    enum nvml_ret ret = link_check(device, link);
    const struct fake_link *l;

    if (ret != NVML_SUCCESS)
        return ret;
    if (!pci)
        return NVML_ERROR_INVALID_ARGUMENT;
    l = &device->link[link];
    if (l->kind == LINK_UNUSED)
        return NVML_ERROR_NOT_SUPPORTED;
    if (l->kind == LINK_TO_GPU) {
        *pci = fake.gpu[l->peer].pci;
    } else {
        memset(pci, 0, sizeof(*pci));
        pci->bus = FAKE_SWITCH_BUS + link % 4;
        pci->pci_device_id = 0x22A310DEu; /* an NVSwitch */
        snprintf(pci->bus_id, sizeof(pci->bus_id), "%08X:%02X:%02X.0", 0u, pci->bus, 0u);
        snprintf(pci->bus_id_legacy, sizeof(pci->bus_id_legacy), "%04X:%02X:%02X.0", 0u, pci->bus,
                 0u);
    }
    /* NVML leaves pciSubSystemId unfilled here. */
    pci->pci_subsystem_id = 0xDEADBEEFu;
    return NVML_SUCCESS;
}

#ifndef FAKE_NVML_OLD_DRIVER
nvml_device_get_nvlink_remote_device_type_fn nvmlDeviceGetNvLinkRemoteDeviceType;
enum nvml_ret nvmlDeviceGetNvLinkRemoteDeviceType(struct nvml_device *device, unsigned int link,
                                                  enum nvml_nvlink_remote *type)
{
    enum nvml_ret ret = link_check(device, link);

    if (ret != NVML_SUCCESS)
        return ret;
    if (!type)
        return NVML_ERROR_INVALID_ARGUMENT;
    switch (device->link[link].kind) {
    case LINK_TO_GPU:
        *type = NVML_NVLINK_DEVICE_TYPE_GPU;
        break;
    case LINK_TO_SWITCH:
        *type = NVML_NVLINK_DEVICE_TYPE_SWITCH;
        break;
    case LINK_UNUSED:
        *type = NVML_NVLINK_DEVICE_TYPE_UNKNOWN;
        break;
    }
    return NVML_SUCCESS;
}

nvml_device_get_mig_mode_fn nvmlDeviceGetMigMode;
enum nvml_ret nvmlDeviceGetMigMode(struct nvml_device *device, unsigned int *current_mode,
                                   unsigned int *pending_mode)
{
    enum nvml_ret ret = check(device);

    if (ret != NVML_SUCCESS)
        return ret;
    if (!current_mode || !pending_mode)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (device->mig < 0)
        return NVML_ERROR_NOT_SUPPORTED;
    *current_mode = *pending_mode = device->mig ? NVML_DEVICE_MIG_ENABLE : NVML_DEVICE_MIG_DISABLE;
    return NVML_SUCCESS;
}

nvml_device_get_memory_affinity_fn nvmlDeviceGetMemoryAffinity;
enum nvml_ret nvmlDeviceGetMemoryAffinity(struct nvml_device *device, unsigned int node_set_size,
                                          unsigned long *node_set, unsigned int scope)
{
    enum nvml_ret ret = check(device);

    if (ret != NVML_SUCCESS)
        return ret;
    if (node_set_size == 0 || !node_set || scope > NVML_AFFINITY_SCOPE_SOCKET)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (device->numa_set == 0)
        return NVML_ERROR_NOT_SUPPORTED;
    memset(node_set, 0, node_set_size * sizeof(*node_set));
    node_set[0] = device->numa_set;
    return NVML_SUCCESS;
}
#endif

/* ---- events ---- */

nvml_event_set_create_fn nvmlEventSetCreate;
enum nvml_ret nvmlEventSetCreate(struct nvml_event_set **set)
{
    const char *path = getenv("FAKE_NVML_EVENTS");
    struct stat st;

    if (fake.refs == 0)
        return NVML_ERROR_UNINITIALIZED;
    if (!set)
        return NVML_ERROR_INVALID_ARGUMENT;
    *set = calloc(1, sizeof(**set));
    if (!*set)
        return NVML_ERROR_UNKNOWN;
    /* NVML records no event from before: start at the file's end. */
    if (path && stat(path, &st) == 0)
        (*set)->offset = (long)st.st_size;
    return NVML_SUCCESS;
}

nvml_event_set_free_fn nvmlEventSetFree;
enum nvml_ret nvmlEventSetFree(struct nvml_event_set *set)
{
    if (!set)
        return NVML_ERROR_INVALID_ARGUMENT;
    free(set);
    return NVML_SUCCESS;
}

nvml_device_get_supported_event_types_fn nvmlDeviceGetSupportedEventTypes;
enum nvml_ret nvmlDeviceGetSupportedEventTypes(struct nvml_device *device,
                                               unsigned long long *event_types)
{
    enum nvml_ret ret = check(device);

    if (ret != NVML_SUCCESS)
        return ret;
    if (!event_types)
        return NVML_ERROR_INVALID_ARGUMENT;
    *event_types = device->events;
    return NVML_SUCCESS;
}

nvml_device_register_events_fn nvmlDeviceRegisterEvents;
enum nvml_ret nvmlDeviceRegisterEvents(struct nvml_device *device, unsigned long long event_types,
                                       struct nvml_event_set *set)
{
    enum nvml_ret ret = check(device);

    if (ret != NVML_SUCCESS)
        return ret;
    if (!set || event_types == 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (event_types & ~device->events)
        return NVML_ERROR_NOT_SUPPORTED;
    set->registered[index_of(device)] |= event_types;
    return NVML_SUCCESS;
}

/* One line of the events file: SUCCESS with data filled, GPU_IS_LOST, or NOT_FOUND for a
 * line that delivers nothing (malformed, or not registered). */
static enum nvml_ret event_from_line(const struct nvml_event_set *set, const char *line,
                                     struct nvml_event_data *data)
{
    unsigned gpu = 0, xid = 0;
    char extra;

    if (strcmp(line, "lost\n") == 0)
        return NVML_ERROR_GPU_IS_LOST;
    memset(data, 0, sizeof(*data));
    if (sscanf(line, "xid %u %u %c", &gpu, &xid, &extra) == 2 && gpu < fake.n) {
        data->event_type = NVML_EVENT_XID_CRITICAL;
        data->event_data = xid;
    } else if (sscanf(line, "dbe %u %c", &gpu, &extra) == 1 && gpu < fake.n) {
        data->event_type = NVML_EVENT_DOUBLE_BIT_ECC;
    } else {
        fprintf(stderr, "fake_nvml: events: skipping line: %s", line);
        return NVML_ERROR_NOT_FOUND;
    }
    if (!(set->registered[gpu] & data->event_type))
        return NVML_ERROR_NOT_FOUND;
    data->device = &fake.gpu[gpu];
    data->gpu_instance_id = data->compute_instance_id = 0xFFFFFFFFu;
    return NVML_SUCCESS;
}

/* Reads complete lines past set->offset until one delivers: SUCCESS or GPU_IS_LOST; TIMEOUT
 * when none is there yet. */
static enum nvml_ret next_event(struct nvml_event_set *set, struct nvml_event_data *data)
{
    const char *path = getenv("FAKE_NVML_EVENTS");
    enum nvml_ret ret = NVML_ERROR_TIMEOUT;
    char line[256];
    FILE *f;

    if (!path || !(f = fopen(path, "r")))
        return NVML_ERROR_TIMEOUT;
    if (fseek(f, 0, SEEK_END) == 0 && ftell(f) < set->offset)
        set->offset = 0; /* truncated: start over */
    if (fseek(f, set->offset, SEEK_SET) != 0) {
        fclose(f);
        return NVML_ERROR_TIMEOUT;
    }
    while (ret == NVML_ERROR_TIMEOUT && fgets(line, sizeof(line), f)) {
        size_t len = strlen(line);

        if (len == 0 || line[len - 1] != '\n')
            break; /* a line still being written */
        set->offset += (long)len;
        ret = event_from_line(set, line, data);
        if (ret == NVML_ERROR_NOT_FOUND)
            ret = NVML_ERROR_TIMEOUT;
    }
    fclose(f);
    return ret;
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

nvml_event_set_wait_v2_fn nvmlEventSetWait_v2;
enum nvml_ret nvmlEventSetWait_v2(struct nvml_event_set *set, struct nvml_event_data *data,
                                  unsigned int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;

    if (fake.refs == 0)
        return NVML_ERROR_UNINITIALIZED;
    if (!set || !data)
        return NVML_ERROR_INVALID_ARGUMENT;
    for (;;) {
        enum nvml_ret ret = next_event(set, data);
        long long left = deadline - now_ms();
        struct timespec nap = {0, 0};

        if (ret != NVML_ERROR_TIMEOUT || left <= 0)
            return ret;
        nap.tv_nsec = (long)(left < FAKE_POLL_MS ? left : FAKE_POLL_MS) * 1000000L;
        nanosleep(&nap, NULL);
    }
}
