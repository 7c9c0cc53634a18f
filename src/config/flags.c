/* flags.c -- table-driven flags and environment variables (see flags.h). */
#include "gx/flags.h"

#include <stdint.h>
#include <string.h>

#include "gx/str.h"

static enum err apply(const struct flag_def *s, const char *value, const char *origin, void *cfg,
                      struct errbuf *eb)
{
    char *base = (char *)cfg + s->offset;
    int64_t v;

    switch (s->kind) {
    case FLAG_STRING:
        if (strlen(value) >= s->size) {
            errbuf_set(eb, "%s: value is too long", origin);
            return ERR_INVALID;
        }
        memcpy(base, value, strlen(value) + 1);
        return ERR_OK;
    case FLAG_INT:
        if (str_to_i64_cstr(value, s->min, s->max, &v) != ERR_OK) {
            errbuf_set(eb, "%s: expected an integer in %lld..%lld, got \"%s\"", origin, s->min,
                       s->max, value);
            return ERR_INVALID;
        }
        *(long long *)(void *)base = v;
        return ERR_OK;
    default:
        if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0) {
            errbuf_set(eb, "%s: expected true or false, got \"%s\"", origin, value);
            return ERR_INVALID;
        }
        *(bool *)(void *)base = strcmp(value, "true") == 0;
        return ERR_OK;
    }
}

const char *flags_env(char **env, const char *name)
{
    size_t n = strlen(name);

    for (; env && *env; env++) {
        if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
            return *env + n + 1;
    }
    return NULL;
}

static const struct flag_def *find_flag(const struct flag_def *defs, size_t n, const char *arg,
                                        const char **inline_value)
{
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);

    *inline_value = eq ? eq + 1 : NULL;
    for (size_t i = 0; i < n; i++) {
        if (strlen(defs[i].flag) == len && strncmp(defs[i].flag, name, len) == 0)
            return &defs[i];
    }
    return NULL;
}

static enum err parse_args(const struct flag_def *defs, size_t n, int argc, char **argv, void *cfg,
                           struct errbuf *eb)
{
    for (int i = 1; i < argc; i++) {
        const char *value;
        const struct flag_def *s;
        char origin[64];
        enum err e;

        if (strncmp(argv[i], "--", 2) != 0 || !(s = find_flag(defs, n, argv[i], &value))) {
            errbuf_set(eb, "unknown argument \"%s\" (see --help)", argv[i]);
            return ERR_INVALID;
        }
        if (s->kind != FLAG_BOOL && !value) {
            if (i + 1 >= argc) {
                errbuf_set(eb, "--%s needs a value", s->flag);
                return ERR_INVALID;
            }
            value = argv[++i];
        }
        /* Errors name the flag alone: argv[i] may be the value by now, or a long --flag=value
         * that would push the reason out of the errbuf. */
        snprintf(origin, sizeof(origin), "--%s", s->flag);
        e = apply(s, value ? value : "true", origin, cfg, eb);
        if (e != ERR_OK)
            return e;
    }
    return ERR_OK;
}

enum err flags_parse(const struct flag_def *defs, size_t n, void *out, size_t size, int argc,
                     char **argv, char **env, struct errbuf *eb)
{
    enum err e;

    memset(out, 0, size);
    for (size_t i = 0; i < n; i++) {
        const struct flag_def *s = &defs[i];
        const char *v = s->env ? flags_env(env, s->env) : NULL;

        e = apply(s, s->def, s->flag, out, eb);
        if (e == ERR_OK && v)
            e = apply(s, v, s->env, out, eb);
        if (e != ERR_OK)
            return e;
    }
    return parse_args(defs, n, argc, argv, out, eb);
}

void flags_usage(const struct flag_def *defs, size_t n, FILE *out)
{
    for (size_t i = 0; i < n; i++) {
        const struct flag_def *s = &defs[i];

        fprintf(out, "  --%s%s\n      %s", s->flag, s->kind == FLAG_BOOL ? "" : " VALUE", s->help);
        if (s->kind != FLAG_BOOL && s->def[0])
            fprintf(out, " (default %s)", s->def);
        if (s->env)
            fprintf(out, "\n      env: %s", s->env);
        fputc('\n', out);
    }
}
