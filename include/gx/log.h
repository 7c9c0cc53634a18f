/* log.h -- one logfmt line per event on stderr:
 *   ts=2026-11-23T10:00:00.123Z level=warn mod=kube msg="watch restarted" rv=123
 * The level is checked before anything is formatted. Thread-safe. */
#pragma once

#include <stdbool.h>

#include "gx/compiler.h"

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

extern enum log_level log_current_level;

/* Sets the minimum level that is written. Not thread-safe against concurrent logging of
 * the level itself, but a torn read only changes whether one line is written. */
void log_set_level(enum log_level level);
/* Parses "error", "warn", "info" or "debug" (case-insensitive). Returns false on anything else. */
bool log_level_parse(const char *text, enum log_level *out);
const char *log_level_name(enum log_level level);

/* Writes one line. mod is a short module name; msg is quoted for you; kv is zero or more
 * pre-formatted logfmt pairs ("key=value key2=\"x y\""), produced from fmt. */
void log_write(enum log_level level, const char *mod, const char *msg, const char *fmt, ...)
    GX_PRINTF(4, 5);

/* Escapes s for use inside a quoted logfmt value (key=\"%s\"): quotes and backslashes get a
 * backslash, control characters become spaces, and long text is cut. Returns q->text. */
struct log_q {
    char text[1024];
};
const char *log_quote(struct log_q *q, const char *s);

#define log_at(level, mod, msg, ...)                                                               \
    do {                                                                                           \
        if ((level) <= log_current_level)                                                          \
            log_write((level), (mod), (msg), __VA_ARGS__);                                         \
    } while (0)

#define log_error(mod, msg, ...) log_at(LOG_ERROR, mod, msg, __VA_ARGS__)
#define log_warn(mod, msg, ...) log_at(LOG_WARN, mod, msg, __VA_ARGS__)
#define log_info(mod, msg, ...) log_at(LOG_INFO, mod, msg, __VA_ARGS__)
#define log_debug(mod, msg, ...) log_at(LOG_DEBUG, mod, msg, __VA_ARGS__)
