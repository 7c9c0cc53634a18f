/* clock.h -- the one monotonic clock. Deadlines, ages, backoffs and request durations are all
 * measured with it, so they never jump with the wall clock (NTP steps, a changed time zone).
 * Thread-safe; never fails on Linux. Wall-clock time is not here: the few places that print a
 * date call clock_gettime(CLOCK_REALTIME) themselves. */
#pragma once

#include <stdint.h>

/* Nanoseconds since an arbitrary fixed point (boot, on Linux). */
uint64_t clock_mono_ns(void);
/* Milliseconds on the same clock. */
uint64_t clock_mono_ms(void);
