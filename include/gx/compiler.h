/* compiler.h -- attribute wrappers used across the project. Nothing else lives here. */
#pragma once

#define GX_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define GX_MUST_CHECK __attribute__((warn_unused_result))
#define GX_NORETURN __attribute__((noreturn))
#define GX_UNUSED __attribute__((unused))
#define GX_ALWAYS_INLINE inline __attribute__((always_inline))
#define GX_NOINLINE __attribute__((noinline))
#define GX_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
