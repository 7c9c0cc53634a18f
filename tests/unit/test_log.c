/* test_log.c -- log levels, logfmt quoting and the line log_write puts on stderr (base/log.c). */
#include <ctype.h>
#include <unistd.h>

#include "gx/log.h"

#include "check.h"

static void test_level_parse(void)
{
    static const struct {
        const char *text;
        enum log_level level;
    } good[] = {
        {"error", LOG_ERROR}, {"warn", LOG_WARN},    {"info", LOG_INFO},
        {"debug", LOG_DEBUG}, {"DEBUG", LOG_DEBUG},  {"Warn", LOG_WARN},
        {"eRRoR", LOG_ERROR}, {"warning", LOG_WARN}, {"WARNING", LOG_WARN},
    };
    static const char *const bad[] = {"",      "inf",    "info ",    " info", "trace",
                                      "fatal", "errors", "warnings", "0",     "3"};

    for (size_t i = 0; i < GX_ARRAY_LEN(good); i++) {
        enum log_level l = LOG_ERROR;
        if (!log_level_parse(good[i].text, &l) || l != good[i].level) {
            fprintf(stderr, "log_level_parse(\"%s\"): want %d, got %d\n", good[i].text,
                    good[i].level, l);
            abort();
        }
    }
    for (size_t i = 0; i < GX_ARRAY_LEN(bad); i++) {
        enum log_level l = LOG_INFO;
        if (log_level_parse(bad[i], &l) || l != LOG_INFO) {
            fprintf(stderr, "log_level_parse(\"%s\") should fail and leave *out\n", bad[i]);
            abort();
        }
    }
}

static void test_level_name(void)
{
    CHECK_STR_EQ(log_level_name(LOG_ERROR), "error");
    CHECK_STR_EQ(log_level_name(LOG_WARN), "warn");
    CHECK_STR_EQ(log_level_name(LOG_INFO), "info");
    CHECK_STR_EQ(log_level_name(LOG_DEBUG), "debug");
    CHECK_STR_EQ(log_level_name((enum log_level)4), "unknown");
    CHECK_STR_EQ(log_level_name((enum log_level) - 1), "unknown");
    for (int l = LOG_ERROR; l <= LOG_DEBUG; l++) {
        enum log_level back;
        CHECK(log_level_parse(log_level_name((enum log_level)l), &back));
        CHECK_EQ(back, l);
    }
}

static void test_quote(void)
{
    struct log_q q;

    CHECK_STR_EQ(log_quote(&q, "plain text"), "plain text");
    CHECK(log_quote(&q, "x") == q.text);
    CHECK_STR_EQ(log_quote(&q, "a\"b\\c"), "a\\\"b\\\\c");
    /* Control characters become spaces, so a value never breaks the line. */
    CHECK_STR_EQ(log_quote(&q, "l1\nl2\r\tx\x01\x1f"), "l1 l2  x  ");
    CHECK_STR_EQ(log_quote(&q, "caf\xc3\xa9 \x7f"), "caf\xc3\xa9 \x7f");
    CHECK_STR_EQ(log_quote(&q, ""), "");
    CHECK_STR_EQ(log_quote(&q, NULL), "");
}

/* Long text is cut to fit q->text with its NUL, and never in the middle of an escape. */
static void test_quote_cut(void)
{
    struct log_q q;
    char in[2000];
    size_t max = sizeof(q.text) - 2; /* plain bytes that fit */

    memset(in, 'a', sizeof(in) - 1);
    in[sizeof(in) - 1] = '\0';
    CHECK_EQ(strlen(log_quote(&q, in)), max);

    /* An escape that fits whole is kept, one that would not fit is left out. */
    memset(in, 'a', max - 1);
    in[max - 1] = '"';
    in[max] = '\0';
    CHECK_EQ(strlen(log_quote(&q, in)), max + 1);
    CHECK_EQ(memcmp(q.text + max - 1, "\\\"", 2), 0);

    memset(in, 'a', max);
    in[max] = '"';
    in[max + 1] = '\0';
    CHECK_EQ(strlen(log_quote(&q, in)), max);
    CHECK_EQ(q.text[max - 1], 'a');
}

/* Runs fn with stderr sent to a temporary file, and returns what was written (caller frees). */
static char *capture_stderr(void (*fn)(void))
{
    FILE *tmp = tmpfile();
    int saved = dup(STDERR_FILENO);
    char *out;
    long n;

    CHECK(tmp != NULL);
    CHECK(saved >= 0);
    fflush(stderr);
    CHECK(dup2(fileno(tmp), STDERR_FILENO) >= 0);
    fn();
    fflush(stderr);
    CHECK(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    CHECK_EQ(fseek(tmp, 0, SEEK_END), 0);
    n = ftell(tmp);
    out = calloc(1, (size_t)n + 1);
    CHECK(out != NULL);
    rewind(tmp);
    CHECK_EQ(fread(out, 1, (size_t)n, tmp), n);
    fclose(tmp);
    return out;
}

static void write_lines(void)
{
    log_set_level(LOG_INFO);
    log_warn("test", "watch \"restarted\"", "rv=%d reason=\"%s\"", 123, "gone");
    log_debug("test", "not written", "n=%d", 1);
    log_write(LOG_INFO, "test", "no pairs", NULL);
    log_info("test", "empty pairs", "%s", "");
}

/* Checks "ts=YYYY-MM-DDTHH:MM:SS.mmmZ " at the start of line and returns what follows. */
static const char *after_timestamp(const char *line)
{
    static const char shape[] = "ts=dddd-dd-ddTdd:dd:dd.dddZ ";

    for (size_t i = 0; i < sizeof(shape) - 1; i++) {
        if (shape[i] == 'd' ? !isdigit((unsigned char)line[i]) : line[i] != shape[i]) {
            fprintf(stderr, "bad timestamp at %zu in: %s\n", i, line);
            abort();
        }
    }
    return line + sizeof(shape) - 1;
}

static void test_write(void)
{
    enum log_level saved = log_current_level;
    char *out = capture_stderr(write_lines);
    char *second = strchr(out, '\n'), *third;

    CHECK(second != NULL);
    *second++ = '\0';
    CHECK_STR_EQ(after_timestamp(out),
                 "level=warn mod=test msg=\"watch \\\"restarted\\\"\" rv=123 reason=\"gone\"");
    /* The debug line was dropped before formatting. No fmt adds no pairs; callers that write
     * ("%s", "") get the separating space and nothing after it. */
    third = strchr(second, '\n');
    CHECK(third != NULL);
    *third++ = '\0';
    CHECK_STR_EQ(after_timestamp(second), "level=info mod=test msg=\"no pairs\"");
    CHECK_STR_EQ(after_timestamp(third), "level=info mod=test msg=\"empty pairs\" \n");
    free(out);
    log_set_level(saved);
}

static void write_long_line(void)
{
    char big[3000];

    memset(big, 'v', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    log_error("test", big, "k=%s", big);
}

/* A line longer than the 2048-byte line buffer is cut, and still ends in one newline. */
static void test_write_long(void)
{
    char *out = capture_stderr(write_long_line);
    size_t n = strlen(out);

    CHECK(n <= 2048);
    CHECK(n > 2000);
    CHECK_EQ(out[n - 1], '\n');
    CHECK(strchr(out, '\n') == out + n - 1);
    CHECK(strstr(after_timestamp(out), "level=error mod=test msg=\"vvv") != NULL);
    free(out);
}

static void test_set_level(void)
{
    enum log_level saved = log_current_level;

    log_set_level(LOG_DEBUG);
    CHECK_EQ(log_current_level, LOG_DEBUG);
    log_set_level(LOG_ERROR);
    CHECK_EQ(log_current_level, LOG_ERROR);
    log_set_level(saved);
}

int main(void)
{
    test_level_parse();
    test_level_name();
    test_quote();
    test_quote_cut();
    test_set_level();
    test_write();
    test_write_long();
    printf("test_log: ok\n");
    return 0;
}
