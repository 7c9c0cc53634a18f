/* groups.h -- private to src/sim: nodes grouped by their decision state.
 *
 * Filter and score are pure functions of a node's facts (its class: model, GPU count,
 * topology) and its state (GPUs used, indices taken), never of its name. Nodes that share all
 * of these get the same answers, so a pod is decided once per group instead of once per
 * node: on a 15,000-node cluster a few hundred groups. Each group keeps its nodes in an array
 * (a uniform random member in O(1)) and a bitmap (its lowest node index, for first fit). */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct groups;

struct group_view {
    size_t id; /* stable while the group lives */
    uint32_t cls;
    int64_t used;
    uint32_t taken;
    size_t size; /* nodes in it, > 0 */
};

struct groups *groups_new(size_t nodes);
void groups_free(struct groups *g);
/* Puts node in the group of (cls, used, taken), leaving its old one. */
void groups_set(struct groups *g, size_t node, uint32_t cls, int64_t used, uint32_t taken);
/* The non-empty groups, as 0..groups_count()-1 (the order changes when groups empty). */
size_t groups_count(const struct groups *g);
struct group_view groups_at(const struct groups *g, size_t i);
/* The lowest node index in group id, and its k-th node (0 <= k < size; in no order). */
size_t groups_min_node(struct groups *g, size_t id);
size_t groups_node_at(const struct groups *g, size_t id, size_t k);
