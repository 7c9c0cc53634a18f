/* gpu_facts.h -- what the node agent knows about one node's GPUs (read from NVML), and the
 * annotations and labels it publishes from them. Pure: no I/O, no NVML; the agent fills a
 * struct gpu_facts with nvml_collect() (nvml.h) and overlays health from NVML events.
 *
 * Thread safety: plain data; functions here touch only their arguments. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "gx/buf.h"
#include "gx/compiler.h"
#include "gx/err.h"
#include "gx/topology.h"

#define GPU_FACTS_MAX TOPO_MAX_GPUS

struct gpu_fact {
    unsigned index;               /* NVML index, 0..n-1 */
    char uuid[TOPO_UUID_MAX + 1]; /* "GPU-8c1..." */
    char name[96];                /* nvmlDeviceGetName: "NVIDIA A100-SXM4-80GB" */
    uint64_t memory_bytes;        /* total framebuffer memory */
    char pci_bus_id[32];          /* "00000000:07:00.0" */
    int numa;                     /* NUMA node; -1 unknown */
    int cc_major, cc_minor;       /* CUDA compute capability; -1 unknown */
    bool mig_enabled;             /* current MIG mode */
    bool healthy;                 /* false after a critical XID or a double-bit ECC error */
    unsigned long long last_xid;  /* the event that made it unhealthy (0: none, or ECC) */
};

struct gpu_facts {
    unsigned n; /* 0..GPU_FACTS_MAX */
    struct gpu_fact gpu[GPU_FACTS_MAX];
    /* Per pair, symmetric, diagonal 0: NVLink links joining the two GPUs, directly or through
     * NVSwitch; when 0, pcie holds the PCIe relation (an enum topo_class below TOPO_NVLINK). */
    uint8_t nvlinks[GPU_FACTS_MAX][GPU_FACTS_MAX];
    uint8_t pcie[GPU_FACTS_MAX][GPU_FACTS_MAX];
    char driver_version[32]; /* "550.54.15"; "" unknown */
};
