/* nvml.h -- reading the node's GPUs through NVML, loaded with dlopen() at run time: no
 * build-time dependency on NVIDIA's headers or libraries. Every use of NVML lives in
 * src/agent/nvml.c.
 *
 * Thread safety: one struct nvml per thread at a time. */
#pragma once

#include <stdbool.h>

#include "gx/compiler.h"
#include "gx/err.h"
#include "gx/gpu_facts.h"

struct nvml;

/* dlopen()s lib_path (NULL: "libnvidia-ml.so.1"), resolves the entry points and calls
 * nvmlInit_v2. A missing library or a missing required symbol is ERR_UNAVAILABLE with a
 * clear reason in eb; missing optional symbols (older drivers) only disable what they read. */
enum err nvml_open(const char *lib_path, struct nvml **out, struct errbuf *eb) GX_MUST_CHECK;
/* nvmlShutdown and dlclose. NULL is a no-op. */
void nvml_close(struct nvml *n);

/* Reads every GPU and every pair into *out (health: every GPU healthy; the caller overlays
 * what events said). ERR_UPSTREAM with NVML's message when a required call fails. */
enum err nvml_collect(struct nvml *n, struct gpu_facts *out, struct errbuf *eb) GX_MUST_CHECK;

struct nvml_event {
    unsigned index;         /* the GPU it concerns */
    bool dbe;               /* a double-bit ECC error */
    unsigned long long xid; /* for a critical XID event: the XID; 0 otherwise */
};

/* Registers for critical XID and double-bit ECC events on every GPU. ERR_UNAVAILABLE when the
 * driver supports neither (the agent then publishes health as "unknown, assumed healthy"). */
enum err nvml_events_arm(struct nvml *n, struct errbuf *eb) GX_MUST_CHECK;
/* Waits up to timeout_ms for one event. 1: *out filled; 0: timed out; -1: error (eb). */
int nvml_events_wait(struct nvml *n, unsigned timeout_ms, struct nvml_event *out,
                     struct errbuf *eb);
