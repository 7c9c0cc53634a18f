/* topology.h -- the GPU interconnect of one node, and topology-aware choice of GPU sets.
 *
 * A node describes its GPUs and the links between them in the annotation
 * gpu-extender.io/topology (or HAMi's hami.io/node-nvidia-score). topo_parse() turns that text
 * into an immutable, refcounted struct topo; the caller interns one per distinct annotation
 * text. Underneath, every topology with the same links and health shares one set of
 * precomputed tables (its "shape"), whatever its UUIDs: a cluster of 15,000 identical
 * servers holds one copy of the tables, not 15,000. Queries then answer "which k of these free GPUs
 * should a pod get" in O(1) per node once the answer for that free mask has been computed.
 *
 * Model: each pair of GPUs has a link of a class (the vocabulary of `nvidia-smi topo -m`) and
 * a score (go-gpuallocator's weights): SYS 10, NODE 20, PHB 30, PXB 40, PIX 50, NV<n> 100*n.
 * A pair the annotation does not list is SYS. A set's score is the sum of its pair scores;
 * its min class is the lowest class among its pairs (TOPO_NVLINK for sets of 0 or 1 GPU).
 *
 * Choice: among the k-subsets S of the free GPUs F whose min class is at least the required
 * class, the one that maximizes, in this order, score(S), then score(F \ S) (the GPUs left
 * free stay as well connected as possible, which keeps NVLink groups whole), then the lowest
 * mask value (determinism). For k = 1 that is the free GPU least connected to the others.
 *
 * What it does not do: it never logs or counts (parse errors come back in an errbuf), it knows
 * nothing about pods or nodes, and it does not track which GPUs are in use (callers pass
 * masks). Masks: bit i is the GPU with index i.
 *
 * Thread safety: a struct topo may be queried from any number of threads at once once it has
 * been published to them (for example through a refcounted snapshot). Queries fill an internal
 * memo with C11 atomics; there are no locks. Reference counting is atomic. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gx/buf.h"
#include "gx/compiler.h"
#include "gx/err.h"
#include "gx/str.h"

#define TOPO_MAX_GPUS 16
/* Parsers refuse longer annotation text (the caller caps it too). */
#define TOPO_MAX_TEXT_BYTES 65536u
/* Longest GPU UUID kept, in bytes, without the NUL. */
#define TOPO_UUID_MAX 96
/* Highest score a pair can have: NV18. HAMi scores are clamped to 0..this. */
#define TOPO_MAX_PAIR_SCORE 1800
/* topo_choose_guaranteed() enumerates at most this many "which GPUs are taken" cases. */
#define TOPO_GUARANTEE_MAX_CASES 4096
/* Room topo_mask_format() needs for any 32-bit mask ("0,1,...,31" and the NUL). */
#define TOPO_MASK_STR_MAX 86

/* Link classes, weakest first, so requirements compare with >=. */
enum topo_class {
    TOPO_SYS = 0, /* across NUMA nodes (SMP interconnect); also any pair not listed */
    TOPO_NODE,    /* same NUMA node, across PCIe host bridges */
    TOPO_PHB,     /* through a PCIe host bridge */
    TOPO_PXB,     /* through several PCIe bridges, not a host bridge */
    TOPO_PIX,     /* through at most one PCIe bridge */
    TOPO_NVLINK,  /* NV<n>: n NVLink links, direct or through NVSwitch */
};
#define TOPO_CLASS_COUNT 6

struct topo; /* opaque, immutable after parse, refcounted */

/* Parses the gpu-extender.io/topology annotation:
 *   {"gpus":[{"index":0,"uuid":"GPU-...","numa":0,"healthy":true},...],
 *    "links":[[0,1,"NV12"],[0,4,"SYS"],...]}
 * Indices must be exactly 0..n-1 (any order), 1 <= n <= 16. "uuid" (string, at most 96
 * bytes), "numa" (integer, -1 = unknown, the default) and "healthy" (boolean, default true;
 * false keeps the GPU out of every choice) are optional; "links" is optional. Link names:
 * NV1..NV18, PIX, PXB, PHB, NODE, SYS (ASCII case-insensitive; the legacy name SOC means
 * SYS). Unknown keys are ignored at every level. On success *out holds one reference.
 * Errors: ERR_TOO_LARGE past TOPO_MAX_TEXT_BYTES, ERR_PARSE for anything malformed (bad
 * JSON, wrong types, duplicate or missing indices, self links, a pair listed twice, an index
 * out of range, unknown link names); eb (may be NULL) gets a one-line reason. Never reads
 * outside text[0..len); allocation is bounded by the GPU count. Thread-safe. */
enum err topo_parse(const char *text, size_t len, struct topo **out,
                    struct errbuf *eb) GX_MUST_CHECK;

/* Parses HAMi's hami.io/node-nvidia-score annotation:
 *   [{"uuid":"GPU-a","score":{"GPU-b":100,...}},...]
 * The GPU index is the position in the array (at most 16 devices, each with a unique,
 * non-empty uuid). A pair's score is the integer given, the smaller of the two directions
 * when both are given, 10 (SYS) when neither is, clamped to 0..TOPO_MAX_PAIR_SCORE. Its class
 * comes from the score: >= 100 NVLINK, >= 50 PIX, >= 40 PXB, >= 30 PHB, >= 20 NODE, else SYS.
 * Scores keyed by a UUID that is not in the list, or by the device's own UUID, are ignored;
 * the same peer twice in one "score" object is malformed. All devices count as healthy and
 * their NUMA node as unknown. Errors and ownership as for topo_parse(). */
enum err topo_parse_hami(const char *text, size_t len, struct topo **out,
                         struct errbuf *eb) GX_MUST_CHECK;

/* Adds a reference and returns t. Thread-safe. */
struct topo *topo_acquire(struct topo *t);
/* Drops a reference; the last one frees the topology. NULL is a no-op. Thread-safe. */
void topo_release(struct topo *t);

/* Accessors. Indices outside 0..n-1 give 0, "", -1, 0 and TOPO_SYS respectively. A GPU
 * paired with itself has score 0 and class TOPO_NVLINK. The uuid string lives as long as t. */
unsigned topo_gpu_count(const struct topo *t);
uint32_t topo_healthy_mask(const struct topo *t);
const char *topo_gpu_uuid(const struct topo *t, unsigned index);
int topo_gpu_numa(const struct topo *t, unsigned index);
unsigned topo_pair_score(const struct topo *t, unsigned a, unsigned b);
enum topo_class topo_pair_class(const struct topo *t, unsigned a, unsigned b);
/* Sum of the pair scores within mask (bits >= n ignored; health is not considered). O(1). */
uint32_t topo_set_score(const struct topo *t, uint32_t mask);
/* Bytes this topology uses: its own part plus its shape's tables and memo (which it shares
 * with every topology of the same links and health), for benchmarks. */
size_t topo_memory_bytes(const struct topo *t);
/* Bytes of the node's own part only: UUIDs, NUMA nodes, the reference to its shape. */
size_t topo_own_bytes(const struct topo *t);
/* The shapes alive in the process and the bytes their tables take. Thread-safe. */
void topo_shapes(size_t *count, size_t *bytes);

struct topo_pick {
    uint32_t set;              /* the chosen GPUs; 0 when !ok */
    uint32_t score;            /* topo_set_score(set) */
    enum topo_class min_class; /* lowest class among the set's pairs; TOPO_NVLINK if |set| < 2 */
    bool ok;                   /* false: fewer than k eligible GPUs, or no set meets required */
};

/* Chooses k of the GPUs in free_mask (bits outside the healthy mask, or >= n, are ignored)
 * whose min class is >= required, by the order described at the top. k = 0 gives an empty
 * set with ok = true. Cost: O(1) when the answer is memoized: always for n <= 8 (filled at
 * parse time), and for larger n after the first query on (free_mask, k), which enumerates
 * the C(|free|, k) candidate sets at O(1) each (at most C(16,8) = 12,870, tens of
 * microseconds). See topology.c for which required classes are memoized on 16-GPU nodes.
 * Thread-safe. */
struct topo_pick topo_choose(const struct topo *t, uint32_t free_mask, unsigned k,
                             enum topo_class required);

/* The best min class any k-subset of the free GPUs reaches: a pod requiring class c fits iff
 * c <= this. TOPO_NVLINK when k < 2 and k GPUs are free (anything satisfies); TOPO_SYS when
 * fewer than k GPUs are free. Same cost as topo_choose(). Thread-safe. */
enum topo_class topo_best_min_class(const struct topo *t, uint32_t free_mask, unsigned k);

/* Like topo_choose() on a node where unknown_used of the free GPUs are in fact taken by pods
 * whose GPU indices we do not know: the worst case over every way of taking unknown_used
 * GPUs of free_mask. ok: every case has an eligible set (false outright when fewer than
 * unknown_used + k are free). score: the lowest chosen-set score over the cases. min_class:
 * the lowest topo_best_min_class() over the cases. set: the choice in the first case (in
 * increasing mask order of the taken GPUs) giving that lowest score -- informational only,
 * since the device plugin picks the real GPUs. unknown_used = 0 or k = 0 is topo_choose().
 *
 * Cost: C(|free|, unknown_used) cases, each one topo_choose() and one topo_best_min_class(),
 * O(1) each once warm; at most C(14,7) = 3,432 cases are enumerated. 16 free with 4 unknown
 * (1,820 cases) takes about 25 us warm and a few ms the first time (Release build). Past
 * TOPO_GUARANTEE_MAX_CASES cases (only 16 free with 5..11 unknown, or 15 free with 6..9) it answers
 * conservatively instead and sets *conservative (may be NULL): set 0, score 0, min_class the lowest
 * class present in the topology (which every set meets; TOPO_SYS on a node with any SYS pair,
 * TOPO_NVLINK when k < 2), ok when required <= that min_class. Thread-safe. */
struct topo_pick topo_choose_guaranteed(const struct topo *t, uint32_t free_mask,
                                        unsigned unknown_used, unsigned k, enum topo_class required,
                                        bool *conservative);

/* Writes t as a gpu-extender.io/topology annotation that topo_parse() reads back to the same
 * GPUs, health, NUMA nodes, UUIDs and pair classes (NVLink pairs as NV<score / 100>; HAMi
 * scores between the PCIe steps come back as their class's score). ERR_TOO_LARGE past out's
 * cap. */
enum err topo_format(const struct topo *t, struct buf *out) GX_MUST_CHECK;

/* "NVLink", "PIX", "PXB", "PHB", "NODE", "SYS"; "?" for values out of range. */
const char *topo_class_name(enum topo_class c);
/* Parses those names, ASCII case-insensitive. False (and *out untouched) otherwise. */
bool topo_class_parse(struct str s, enum topo_class *out);

/* Parses an index list such as "0,3,5" (the gpu-extender.io/gpus annotations) into a mask.
 * Spaces around items are allowed; the empty string is the empty mask. False (and *mask
 * untouched) on an empty item, a non-digit, a duplicate or an index >= 32. */
bool topo_mask_parse(struct str s, uint32_t *mask);
/* Writes mask as "0,3,5" (ascending, "" for 0) into out[0..cap), NUL-terminated when cap > 0,
 * truncating like snprintf. Returns the length the full text needs, without the NUL;
 * TOPO_MASK_STR_MAX bytes always suffice. */
size_t topo_mask_format(uint32_t mask, char *out, size_t cap);
