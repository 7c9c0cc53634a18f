/* bits.h -- small bit operations on GPU masks (one bit per GPU index), shared by the state
 * and sched modules so that each is written once. Pure functions; no state, no errors. */
#pragma once

#include <stdint.h>

/* The number of bits set in m: how many GPUs a mask names. */
static inline unsigned bits_popcount32(uint32_t m)
{
#if defined(__POPCNT__) || !defined(__x86_64__)
    return (unsigned)__builtin_popcount(m);
#else
    /* x86-64 without -mpopcnt makes __builtin_popcount a library call: count in registers. */
    m = m - ((m >> 1) & 0x55555555u);
    m = (m & 0x33333333u) + ((m >> 2) & 0x33333333u);
    m = (m + (m >> 4)) & 0x0f0f0f0fu;
    return (m * 0x01010101u) >> 24;
#endif
}
