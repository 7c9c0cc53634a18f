/* bits.h -- small bit operations on GPU masks (one bit per GPU index), shared by the state
 * and sched modules so that each is written once. Pure functions; no state, no errors. */
#pragma once

#include <stdint.h>

/* The number of bits set in m: how many GPUs a mask names. */
static inline unsigned bits_popcount32(uint32_t m)
{
    return (unsigned)__builtin_popcount(m);
}
