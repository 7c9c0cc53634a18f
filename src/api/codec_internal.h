/* codec_internal.h -- private to src/api: what the codec's decoders share (codec.c holds
 * ExtenderArgs and bind, codec_preempt.c the preemption verb). */
#pragma once

#include <stddef.h>

#include "gx/arena.h"
#include "gx/err.h"
#include "gx/jscan.h"

/* Turns a failed scan into the codec's error: ERR_TOO_LARGE when the arena ran out (the
 * scanner's budget kind), else ERR_PARSE with "malformed request at byte N: what". */
enum err codec_scan_error(struct jscan *js, struct errbuf *eb);

/* Makes room for one more element in an arena array of count elements of elem bytes,
 * doubling *cap as it grows (first is the first capacity). Returns the array, moved when it
 * grew (the old copy stays in the arena until it is freed), or NULL when the arena is full. */
void *codec_grow(struct arena *arena, void *items, size_t count, size_t *cap, size_t elem,
                 size_t first);
