/* k8s.c -- Kubernetes name and label syntax (see k8s.h). Plain loops over bytes: the rules are
 * small enough that a regular expression would only hide them. */
#include "gx/k8s.h"

#include <string.h>

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
    return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* One dot-separated part of a DNS name: [a-z0-9] at both ends, [-a-z0-9] inside. */
static bool is_dns_part(const char *p, size_t len)
{
    if (len == 0 || !is_lower_alnum(p[0]) || !is_lower_alnum(p[len - 1]))
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!is_lower_alnum(p[i]) && p[i] != '-')
            return false;
    }
    return true;
}

/* Label characters, [A-Za-z0-9] at both ends, 1..max long. */
static bool is_label_text(struct str s, size_t max)
{
    if (s.len == 0 || s.len > max || !is_alnum(s.ptr[0]) || !is_alnum(s.ptr[s.len - 1]))
        return false;
    for (size_t i = 0; i < s.len; i++) {
        if (!k8s_is_label_char(s.ptr[i]))
            return false;
    }
    return true;
}

bool k8s_is_dns_label(struct str s)
{
    return s.len <= K8S_DNS_LABEL_MAX && is_dns_part(s.ptr, s.len);
}

bool k8s_is_dns_subdomain(struct str s)
{
    size_t start = 0;

    if (s.len == 0 || s.len > K8S_NAME_MAX)
        return false;
    /* Every part, the one after the last dot included, so a trailing dot leaves an empty part. */
    for (size_t i = 0; i <= s.len; i++) {
        if (i < s.len && s.ptr[i] != '.')
            continue;
        if (!is_dns_part(s.ptr + start, i - start))
            return false;
        start = i + 1;
    }
    return true;
}

bool k8s_is_label_char(char c)
{
    return is_alnum(c) || c == '-' || c == '_' || c == '.';
}

bool k8s_is_label_name(struct str s)
{
    return is_label_text(s, K8S_LABEL_NAME_MAX);
}

bool k8s_is_label_key(struct str s)
{
    const char *slash = s.len > 0 ? memchr(s.ptr, '/', s.len) : NULL;
    size_t plen;

    if (!slash)
        return k8s_is_label_name(s);
    plen = (size_t)(slash - s.ptr);
    return k8s_is_dns_subdomain((struct str){s.ptr, plen}) &&
           k8s_is_label_name((struct str){slash + 1, s.len - plen - 1});
}

bool k8s_is_label_value(struct str s)
{
    return s.len == 0 || is_label_text(s, K8S_LABEL_VALUE_MAX);
}
