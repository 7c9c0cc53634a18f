/* gpu_facts.h -- what the node agent knows about one node's GPUs (read from NVML), and the
 * annotations and labels it publishes from them. Pure: no I/O, no NVML; the agent fills a
 * struct gpu_facts with nvml_collect() (nvml.h) and overlays health from NVML events.
 *
 * Health follows the NVIDIA device plugin's rule: a GPU turns unhealthy on a critical XID
 * that applications cannot cause, or on a double-bit ECC error, and it stays unhealthy until
 * the agent restarts (a GPU that needs a reset is not trusted again by itself). Nothing here
 * ever marks a GPU healthy again.
 *
 * Thread safety: plain data; functions here touch only their arguments. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "gx/buf.h"
#include "gx/compiler.h"
#include "gx/err.h"
#include "gx/str.h"
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

struct nvml_event; /* nvml.h */

/* Appends the gpu-extender.io/topology annotation (README "GPU topology") to out, compact:
 *   {"gpus":[{"index":0,"uuid":"GPU-...","numa":0},...],"links":[[0,1,"NV18"],[0,2,"PIX"],...]}
 * GPUs in index order; "uuid" left out when empty, "numa" when -1; "healthy":false only for
 * unhealthy GPUs and "mig":true only for GPUs in MIG mode (topo_parse() ignores that key).
 * Pairs (a < b) in ascending order: NV<links> when nvlinks > 0, else the PCIe class; SYS
 * pairs are left out (a pair not listed is SYS). topo_parse() reads the text back.
 * Errors (out left as it was): ERR_INVALID when f is not a valid topology (n outside 1..16,
 * gpu[i].index != i, an asymmetric pair, more than 18 links, a pcie value >= TOPO_NVLINK);
 * ERR_TOO_LARGE past out's cap. */
enum err gpu_facts_topology(const struct gpu_facts *f, struct buf *out) GX_MUST_CHECK;

/* Appends the labels GPU Feature Discovery would put on the node, as the members of a JSON
 * object (no braces), for the extender to read where GFD does not run:
 *   "nvidia.com/gpu.product":"NVIDIA-A100-SXM4-80GB","nvidia.com/gpu.memory":"81920",
 *   "nvidia.com/gpu.family":"ampere","nvidia.com/gpu.count":"8",
 *   "nvidia.com/gpu.compute.major":"8","nvidia.com/gpu.compute.minor":"0"
 * Values as GFD writes them: the product name with characters other than [A-Za-z0-9-_. ]
 * dropped and runs of spaces turned into one '-' (then cut to a valid label value: at most 63
 * characters, alphanumeric at both ends); memory in MiB (left out when 0); the family from the
 * compute capability (family and compute.* left out when it is unknown). On a node with
 * several models, the first GPU's model, memory and family, and the count of GPUs of that
 * model (GFD then labels one of the models, whichever its map iteration meets last). Nothing
 * is appended for n = 0. Errors: ERR_INVALID for n > 16; ERR_TOO_LARGE past out's cap (out
 * left as it was). */
enum err gpu_facts_gfd_labels(const struct gpu_facts *f, struct buf *out) GX_MUST_CHECK;

/* The same labels as values, for callers that want them one by one: each is "" where
 * gpu_facts_gfd_labels() leaves the label out. */
struct gpu_gfd_labels {
    char product[96];
    char memory[24];
    char family[32];
    char count[12];
    char compute_major[12];
    char compute_minor[12];
};

/* Fills *out (every value "" for n = 0). ERR_INVALID for n > 16. */
enum err gpu_facts_gfd(const struct gpu_facts *f, struct gpu_gfd_labels *out) GX_MUST_CHECK;

/* GFD's nvidia.com/gpu.family for a compute capability: "volta", "ampere", "hopper", ...;
 * "undefined" for majors GFD does not know. Static string. */
const char *gpu_facts_family(int cc_major, int cc_minor);

/* The XIDs that applications cause (graphics engine exception, GPU memory page fault, GPU
 * stopped processing, preemptive cleanup, video processor exception, context switch
 * timeout): the NVIDIA device plugin ignores exactly these by default
 * (k8s-device-plugin internal/rm/health.go). */
#define GPU_XID_IGNORED_DEFAULT "13,31,43,45,68,109"
/* Bounds of an ignored-XID list: items, and bytes of text. */
#define GPU_XID_LIST_MAX 64
#define GPU_XID_LIST_TEXT_MAX 1024
/* Largest XID a list may name (NVML reports 999 for an XID it does not know). */
#define GPU_XID_MAX 65535

struct gpu_xid_list {
    unsigned n;
    unsigned xid[GPU_XID_LIST_MAX]; /* distinct, in the order given */
};

/* Parses a comma-separated list of XIDs such as GPU_XID_IGNORED_DEFAULT. Spaces around items
 * are allowed, a repeated XID counts once, and the empty string is the empty list (no XID is
 * ignored). Errors, with the item's position in eb (may be NULL); *out written only on
 * success: ERR_TOO_LARGE past GPU_XID_LIST_TEXT_MAX bytes or GPU_XID_LIST_MAX distinct XIDs;
 * ERR_PARSE for an empty item or one that is not a decimal number in 1..GPU_XID_MAX. */
enum err gpu_xid_list_parse(struct str text, struct gpu_xid_list *out,
                            struct errbuf *eb) GX_MUST_CHECK;
/* Whether xid is in the list (NULL: the empty list). */
bool gpu_xid_list_has(const struct gpu_xid_list *l, unsigned long long xid);

/* Applies one NVML event: the GPU ev->index turns unhealthy on a double-bit ECC error
 * (last_xid 0) or on a critical XID that is not in ignored (NULL: none ignored; last_xid =
 * the XID). Returns true when that changed f: false for an ignored XID, an event with
 * neither, an index outside f, or a GPU already unhealthy (its first cause is kept). */
bool gpu_facts_apply_event(struct gpu_facts *f, const struct nvml_event *ev,
                           const struct gpu_xid_list *ignored);

/* Carries health from an earlier reading into a fresh one (nvml_collect() reports every GPU
 * healthy): each GPU of now whose UUID is non-empty and unhealthy in before becomes
 * unhealthy with the same last_xid. Returns how many GPUs that marked. */
unsigned gpu_facts_keep_health(struct gpu_facts *now, const struct gpu_facts *before);
