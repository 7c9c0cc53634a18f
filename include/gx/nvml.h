/* nvml.h -- reading the node's GPUs through NVML, loaded with dlopen() at run time: no
 * build-time dependency on NVIDIA's headers or libraries. Every use of NVML lives in
 * src/agent/nvml.c. It reads; it never changes a GPU's settings, and it does not log.
 *
 * Older drivers: only the entry points every driver of the last years has are required
 * (nvmlInit_v2, nvmlDeviceGetCount_v2, nvmlDeviceGetHandleByIndex_v2, nvmlDeviceGetUUID,
 * nvmlDeviceGetName, nvmlDeviceGetMemoryInfo, nvmlDeviceGetPciInfo_v3). Without the others
 * what they read is unknown: no NVLink entry points, no NVLink links; no
 * nvmlDeviceGetNvLinkRemoteDeviceType, NVSwitch links are told from GPU links by the remote
 * PCI address alone; no nvmlDeviceGetMigMode, MIG off; no nvmlDeviceGetMemoryAffinity, NUMA
 * node -1; no event entry points, nvml_events_arm() says ERR_UNAVAILABLE.
 *
 * Thread safety: one struct nvml per thread at a time, except that once nvml_events_arm() has
 * returned, one thread may call nvml_events_wait() while another calls nvml_collect() (both
 * only read the struct, and NVML itself is thread-safe). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "gx/compiler.h"
#include "gx/err.h"
#include "gx/gpu_facts.h"

/* The library nvml_open(NULL, ...) loads: the driver's, found on the loader's path. */
#define NVML_DEFAULT_LIB "libnvidia-ml.so.1"

struct nvml;

/* dlopen()s lib_path (NULL: "libnvidia-ml.so.1"), resolves the entry points, calls
 * nvmlInit_v2 and lists the GPUs (their handles are kept: NVML's GPU list does not change
 * while it is initialized). A missing library, a missing required symbol or a failed
 * nvmlInit_v2 (no driver loaded, no permission) is ERR_UNAVAILABLE with a clear reason in eb
 * (the path and dlerror(), or NVML's message); missing optional symbols (older drivers) only
 * disable what they read. ERR_UPSTREAM when listing the GPUs fails, ERR_TOO_LARGE when NVML
 * lists more than GPU_FACTS_MAX. On success *out is the caller's; nvml_close() it. */
enum err nvml_open(const char *lib_path, struct nvml **out, struct errbuf *eb) GX_MUST_CHECK;
/* Frees the event set, calls nvmlShutdown and dlclose()s. NULL is a no-op. */
void nvml_close(struct nvml *n);

/* Reads every GPU and every pair into *out (health: every GPU healthy; the caller overlays
 * what events said, see gpu_facts_keep_health()). *out is written only on success.
 * Per GPU: UUID, name, total memory, PCI bus id (required); compute capability, MIG mode,
 * NUMA node (from nvmlDeviceGetMemoryAffinity at NUMA-node scope when it names exactly one
 * node, else -1); driver version. Per pair: NVLink links (each active link 0..17 leads to a
 * GPU of this node, counted for that pair when both ends see it, or to an NVSwitch; a pair
 * gets its direct links plus min(switch links of a, switch links of b), at most 18), and the
 * PCIe relation from nvmlDeviceGetTopologyCommonAncestor (SYS when unknown).
 * ERR_UPSTREAM with NVML's message when a required call fails. */
enum err nvml_collect(struct nvml *n, struct gpu_facts *out, struct errbuf *eb) GX_MUST_CHECK;

struct nvml_event {
    unsigned index;         /* the GPU it concerns */
    bool dbe;               /* a double-bit ECC error */
    unsigned long long xid; /* for a critical XID event: the XID (999: one NVML does not
                               know); 0 otherwise */
};

/* Registers for critical XID and double-bit ECC events on every GPU, each for those of the two
 * that nvmlDeviceGetSupportedEventTypes says it supports. ERR_UNAVAILABLE when the driver
 * has no event API or no GPU supports either (the agent then publishes health as "unknown,
 * assumed healthy"); ERR_UPSTREAM when NVML fails otherwise. Calling it again once armed does
 * nothing. */
enum err nvml_events_arm(struct nvml *n, struct errbuf *eb) GX_MUST_CHECK;
/* The GPUs (bit i = index i) that nvml_events_arm() registered events for; 0 before. */
uint32_t nvml_events_watched(const struct nvml *n);
/* Waits up to timeout_ms for one event. 1: *out filled; 0: timed out; -1: error (eb): not
 * armed, NVML failed (for example NVML_ERROR_GPU_IS_LOST), or an event for a device NVML did
 * not list. */
int nvml_events_wait(struct nvml *n, unsigned timeout_ms, struct nvml_event *out,
                     struct errbuf *eb);
