/* topology_internal.h -- private to src/state: what the topology model (topology.c) and its
 * annotation parsers (topology_parse.c) share. A parser fills a struct desc, plain data with no
 * tables, and topo_build() turns it into a node's topology, sharing the tables of its shape.
 * Nothing outside src/state includes this. */
#pragma once

#include <stdint.h>

#include "gx/topology.h"

/* Every pair of TOPO_MAX_GPUS GPUs. */
#define MAX_LINKS (TOPO_MAX_GPUS * (TOPO_MAX_GPUS - 1) / 2)

/* What the parsers produce: plain data, copied into the topology when it is built. */
struct desc {
    unsigned n;
    uint32_t healthy;
    uint16_t score[TOPO_MAX_GPUS][TOPO_MAX_GPUS];
    uint8_t cls[TOPO_MAX_GPUS][TOPO_MAX_GPUS];
    int numa[TOPO_MAX_GPUS];
    char uuid[TOPO_MAX_GPUS][TOPO_UUID_MAX + 1];
};

/* Resets d: no GPUs, none healthy, no UUIDs, NUMA node -1 everywhere, and every pair SYS with
 * score 10 (what a pair the annotation does not list is). */
void topo_desc_init(struct desc *d);

/* Sets the link between GPUs a and b (both < TOPO_MAX_GPUS, a != b), both ways. */
void topo_desc_link(struct desc *d, unsigned a, unsigned b, enum topo_class c, unsigned score);

/* A new topology for d (d->n >= 1, d->healthy within n bits), with one reference held: its own
 * UUIDs and NUMA nodes, and the tables of its shape, built now or shared with every topology of
 * the same links and health. Never NULL (allocation failure aborts). Thread-safe. */
struct topo *topo_build(const struct desc *d);
