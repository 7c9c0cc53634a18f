/* log.c -- logfmt lines on stderr. One write(2) per line keeps lines whole when several
 * threads log at once. */
#include "gx/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

enum log_level log_current_level = LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level level)
{
    log_current_level = level;
}

bool log_level_parse(const char *text, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(text, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return true;
        }
    }
    if (strcasecmp(text, "warning") == 0) {
        *out = LOG_WARN;
        return true;
    }
    return false;
}

const char *log_level_name(enum log_level level)
{
    if ((unsigned)level >= sizeof(level_names) / sizeof(level_names[0]))
        return "unknown";
    return level_names[level];
}

/* Copies msg into out as the body of a logfmt quoted value. */
static size_t quote_into(char *out, size_t cap, const char *msg)
{
    size_t n = 0;

    for (; *msg && n + 2 < cap; msg++) {
        unsigned char c = (unsigned char)*msg;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            out[n++] = ' ';
        } else {
            out[n++] = (char)c;
        }
    }
    return n;
}

const char *log_quote(struct log_q *q, const char *s)
{
    size_t n = quote_into(q->text, sizeof(q->text), s ? s : "");

    q->text[n] = '\0';
    return q->text;
}

void log_write(enum log_level level, const char *mod, const char *msg, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int w;
    va_list ap;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    w = snprintf(line, sizeof(line),
                 "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s mod=%s msg=\"",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ts.tv_nsec / 1000000, log_level_name(level), mod);
    n = w > 0 ? (size_t)w : 0;
    n += quote_into(line + n, sizeof(line) - n - 4, msg);
    line[n++] = '"';
    if (fmt && fmt[0]) {
        line[n++] = ' ';
        va_start(ap, fmt);
        w = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
        va_end(ap);
        if (w > 0)
            n += (size_t)w < sizeof(line) - n - 1 ? (size_t)w : sizeof(line) - n - 2;
    }
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, n) < 0)
        return;
}
