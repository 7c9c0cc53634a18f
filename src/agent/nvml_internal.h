/* nvml_internal.h -- the part of NVML's C ABI that src/agent/nvml.c uses, written down from
 * NVIDIA's public API reference (nvml.h of CUDA 12.x/13.x, "NVML API Reference"), so that
 * nothing of NVIDIA's is needed to build. Only nvml.c and the test double
 * tests/fakes/fake_nvml.c include it: the fake defines these very functions, so the compiler
 * checks that both sides agree on every signature.
 *
 * Names: our types are snake_case structs and enums; the comment on each names NVML's type.
 * The versioned entry points are the ones nvml.h maps the plain names to (nvmlInit ->
 * nvmlInit_v2, nvmlDeviceGetPciInfo -> nvmlDeviceGetPciInfo_v3, ...). Layouts are pinned by
 * the static_asserts at the end (LP64). */
#pragma once

#include <assert.h>
#include <stddef.h>

/* nvmlReturn_t (the codes we test for; NVML has more, all non-zero). */
enum nvml_ret {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_NO_PERMISSION = 4,
    NVML_ERROR_NOT_FOUND = 6,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_TIMEOUT = 10,
    NVML_ERROR_FUNCTION_NOT_FOUND = 13,
    NVML_ERROR_GPU_IS_LOST = 15,
    NVML_ERROR_UNKNOWN = 999,
};

/* nvmlEnableState_t */
enum nvml_enable_state {
    NVML_FEATURE_DISABLED = 0,
    NVML_FEATURE_ENABLED = 1,
};

/* nvmlGpuTopologyLevel_t: the closest common PCIe ancestor of two devices. */
enum nvml_topo_level {
    NVML_TOPOLOGY_INTERNAL = 0,    /* same board (e.g. Tesla K80) */
    NVML_TOPOLOGY_SINGLE = 10,     /* one PCIe switch */
    NVML_TOPOLOGY_MULTIPLE = 20,   /* several PCIe switches, no host bridge */
    NVML_TOPOLOGY_HOSTBRIDGE = 30, /* the same host bridge */
    NVML_TOPOLOGY_NODE = 40,       /* the same NUMA node, several host bridges */
    NVML_TOPOLOGY_SYSTEM = 50,     /* across NUMA nodes */
};

/* nvmlIntNvLinkDeviceType_t: what the far end of an NVLink link is. */
enum nvml_nvlink_remote {
    NVML_NVLINK_DEVICE_TYPE_GPU = 0x00,
    NVML_NVLINK_DEVICE_TYPE_IBMNPU = 0x01,
    NVML_NVLINK_DEVICE_TYPE_SWITCH = 0x02,
    NVML_NVLINK_DEVICE_TYPE_UNKNOWN = 0xFF,
};

/* nvmlAffinityScope_t values (the type is unsigned int). */
#define NVML_AFFINITY_SCOPE_NODE 0u
#define NVML_AFFINITY_SCOPE_SOCKET 1u

/* nvmlEventType bits (unsigned long long). */
#define NVML_EVENT_DOUBLE_BIT_ECC 0x0000000000000002ULL /* nvmlEventTypeDoubleBitEccError */
#define NVML_EVENT_XID_CRITICAL 0x0000000000000008ULL   /* nvmlEventTypeXidCriticalError */

/* nvmlDeviceGetMigMode's modes. */
#define NVML_DEVICE_MIG_DISABLE 0u
#define NVML_DEVICE_MIG_ENABLE 1u

/* Buffer sizes NVML guarantees to be enough, NUL included. */
#define NVML_NVLINK_MAX_LINKS 18u
#define NVML_DEVICE_UUID_V2_BUFFER_SIZE 96u
#define NVML_DEVICE_NAME_V2_BUFFER_SIZE 96u
#define NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE 80u
#define NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE 32u
#define NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE 16u

/* nvmlDevice_t and nvmlEventSet_t are pointers to these (opaque to callers). */
struct nvml_device;
struct nvml_event_set;

/* nvmlPciInfo_t */
struct nvml_pci_info {
    char bus_id_legacy[NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE]; /* "0000:07:00.0" */
    unsigned int domain;
    unsigned int bus;
    unsigned int device;
    unsigned int pci_device_id;                      /* device id << 16 | vendor id */
    unsigned int pci_subsystem_id;                   /* not filled by the NVLink remote query */
    char bus_id[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE]; /* "00000000:07:00.0" */
};

/* nvmlMemory_t (v1) */
struct nvml_memory {
    unsigned long long total; /* bytes */
    unsigned long long free;
    unsigned long long used;
};

/* nvmlEventData_t */
struct nvml_event_data {
    struct nvml_device *device;
    unsigned long long event_type;
    unsigned long long event_data; /* the XID for a critical XID event, else 0 */
    unsigned int gpu_instance_id;
    unsigned int compute_instance_id;
};

static_assert(sizeof(enum nvml_ret) == 4 && sizeof(enum nvml_enable_state) == 4 &&
                  sizeof(enum nvml_topo_level) == 4 && sizeof(enum nvml_nvlink_remote) == 4,
              "NVML's enums are int-sized");
static_assert(offsetof(struct nvml_pci_info, domain) == 16 &&
                  offsetof(struct nvml_pci_info, bus_id) == 36 &&
                  sizeof(struct nvml_pci_info) == 68,
              "nvmlPciInfo_t layout");
static_assert(sizeof(struct nvml_memory) == 24, "nvmlMemory_t layout");
static_assert(sizeof(void *) != 8 || (offsetof(struct nvml_event_data, event_data) == 16 &&
                                      offsetof(struct nvml_event_data, gpu_instance_id) == 24 &&
                                      sizeof(struct nvml_event_data) == 32),
              "nvmlEventData_t layout (LP64)");

/* The entry points, as function types: nvml.c resolves pointers of these types with
 * dlsym(); the fake declares its definitions with them. */
typedef enum nvml_ret nvml_init_v2_fn(void);
typedef enum nvml_ret nvml_shutdown_fn(void);
typedef const char *nvml_error_string_fn(enum nvml_ret result);
typedef enum nvml_ret nvml_system_get_driver_version_fn(char *version, unsigned int length);
typedef enum nvml_ret nvml_device_get_count_v2_fn(unsigned int *count);
typedef enum nvml_ret nvml_device_get_handle_by_index_v2_fn(unsigned int index,
                                                            struct nvml_device **device);
typedef enum nvml_ret nvml_device_get_uuid_fn(struct nvml_device *device, char *uuid,
                                              unsigned int length);
typedef enum nvml_ret nvml_device_get_name_fn(struct nvml_device *device, char *name,
                                              unsigned int length);
typedef enum nvml_ret nvml_device_get_memory_info_fn(struct nvml_device *device,
                                                     struct nvml_memory *memory);
typedef enum nvml_ret nvml_device_get_pci_info_v3_fn(struct nvml_device *device,
                                                     struct nvml_pci_info *pci);
typedef enum nvml_ret nvml_device_get_cuda_compute_capability_fn(struct nvml_device *device,
                                                                 int *major, int *minor);
typedef enum nvml_ret nvml_device_get_mig_mode_fn(struct nvml_device *device,
                                                  unsigned int *current_mode,
                                                  unsigned int *pending_mode);
typedef enum nvml_ret nvml_device_get_memory_affinity_fn(struct nvml_device *device,
                                                         unsigned int node_set_size,
                                                         unsigned long *node_set,
                                                         unsigned int scope);
typedef enum nvml_ret nvml_device_get_topology_common_ancestor_fn(struct nvml_device *device1,
                                                                  struct nvml_device *device2,
                                                                  enum nvml_topo_level *path);
typedef enum nvml_ret nvml_device_get_nvlink_state_fn(struct nvml_device *device, unsigned int link,
                                                      enum nvml_enable_state *is_active);
typedef enum nvml_ret nvml_device_get_nvlink_remote_pci_info_v2_fn(struct nvml_device *device,
                                                                   unsigned int link,
                                                                   struct nvml_pci_info *pci);
typedef enum nvml_ret nvml_device_get_nvlink_remote_device_type_fn(struct nvml_device *device,
                                                                   unsigned int link,
                                                                   enum nvml_nvlink_remote *type);
typedef enum nvml_ret nvml_event_set_create_fn(struct nvml_event_set **set);
typedef enum nvml_ret nvml_event_set_free_fn(struct nvml_event_set *set);
typedef enum nvml_ret nvml_device_get_supported_event_types_fn(struct nvml_device *device,
                                                               unsigned long long *event_types);
typedef enum nvml_ret nvml_device_register_events_fn(struct nvml_device *device,
                                                     unsigned long long event_types,
                                                     struct nvml_event_set *set);
typedef enum nvml_ret nvml_event_set_wait_v2_fn(struct nvml_event_set *set,
                                                struct nvml_event_data *data,
                                                unsigned int timeout_ms);
