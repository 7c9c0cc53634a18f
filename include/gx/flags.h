/* flags.h -- command-line flags with environment twins, declared once in a table (redis's
 * static_configs[]): each entry names its flag, its variable, default, range and help. A flag
 * beats its variable, which beats the default. The daemon (config.c) and the node agent
 * (agent_config.c) each declare their own table over their own settings struct. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "gx/compiler.h"
#include "gx/err.h"

enum flag_kind { FLAG_STRING, FLAG_INT, FLAG_BOOL };

struct flag_def {
    const char *flag; /* without the leading "--" */
    const char *env;  /* NULL: no environment twin */
    enum flag_kind kind;
    const char *def; /* default, as text */
    long long min, max;
    size_t offset; /* of the field in the settings struct */
    size_t size;   /* strings: the field's size */
    const char *help;
};

#define FLAG_STR(type, flag, env, field, def, help)                                                \
    {                                                                                              \
        flag, env, FLAG_STRING, def, 0, 0, offsetof(type, field), sizeof(((type *)0)->field), help \
    }
#define FLAG_INT(type, flag, env, field, def, min, max, help)                                      \
    {                                                                                              \
        flag, env, FLAG_INT, def, min, max, offsetof(type, field), 0, help                         \
    }
/* Booleans: "--name" or "--name=true|false"; the variable, when there is one, takes the same. */
#define FLAG_BOOL(type, flag, env, field, help)                                                    \
    {                                                                                              \
        flag, env, FLAG_BOOL, "false", 0, 1, offsetof(type, field), 0, help                        \
    }

/* Zeroes out (size bytes), applies every default, then the environment (env is a
 * NULL-terminated "K=V" array), then argv. ERR_INVALID with the detail in eb for an unknown
 * flag, a missing value, a number out of range, a bool that is neither true nor false, or a
 * string too long for its field. */
enum err flags_parse(const struct flag_def *defs, size_t n, void *out, size_t size, int argc,
                     char **argv, char **env, struct errbuf *eb) GX_MUST_CHECK;
/* The value of name in env (NULL-terminated "K=V" strings), or NULL. */
const char *flags_env(char **env, const char *name);
/* Prints every flag, its variable, default and help. */
void flags_usage(const struct flag_def *defs, size_t n, FILE *out);
