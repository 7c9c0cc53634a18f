/* k8s.h -- the syntax and length limits Kubernetes sets for names, label keys and label values,
 * as pure predicates over string views. They follow the API server's own checks (apimachinery's
 * validation package): a string they refuse is one the API server would refuse too, so it can
 * be rejected here, before it reaches a policy, a cache key or a URL.
 *
 * Syntax only: nothing here knows which objects exist, which kind of object takes which rule,
 * or about reserved prefixes such as kubernetes.io/. Strings are views and need not be
 * NUL-terminated; a NUL byte is just a character no rule allows. Pure; thread-safe. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "gx/str.h"

/* The longest DNS-1123 subdomain, and so the longest name of a node, pod or priority class. */
#define K8S_NAME_MAX 253
/* The longest DNS-1123 label (a namespace name, one part of a subdomain). */
#define K8S_DNS_LABEL_MAX 63
/* The longest name part of a label key (after any "prefix/"), and the longest label value. */
#define K8S_LABEL_NAME_MAX 63
#define K8S_LABEL_VALUE_MAX 63

/* A DNS-1123 label: 1..63 characters a-z, 0-9 or '-', starting and ending with a letter or
 * digit. No dots, no upper case. */
bool k8s_is_dns_label(struct str s);

/* A DNS-1123 subdomain: 1..253 characters, one or more dot-separated parts, each made as a
 * label is (a-z, 0-9, '-' inside, a letter or digit at both ends). So "", ".", "a.", ".a",
 * "a..b" and "a.-b" are refused. As in Kubernetes, a part is not held to 63 characters; only
 * the whole name is held to K8S_NAME_MAX. */
bool k8s_is_dns_subdomain(struct str s);

/* One of the characters a label name or value may hold: A-Z, a-z, 0-9, '-', '_' or '.'. */
bool k8s_is_label_char(char c);

/* The name part of a label key: 1..63 label characters, starting and ending with a letter or
 * digit (either case). */
bool k8s_is_label_name(struct str s);

/* A label key, which Kubernetes calls a qualified name: "name" or "prefix/name", where the
 * prefix is a DNS subdomain (so not empty) and the name is k8s_is_label_name(). A second '/'
 * makes it invalid. */
bool k8s_is_label_key(struct str s);

/* A label value: empty, or what k8s_is_label_name() accepts (at most K8S_LABEL_VALUE_MAX). */
bool k8s_is_label_value(struct str s);
