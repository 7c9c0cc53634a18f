/* base64.h -- private to src/config: standard base64 (RFC 4648 section 4 alphabet, '='
 * padding) decoding, for the *-data fields of a kubeconfig. There is no encoder: nothing of
 * ours writes base64. Pure function; thread-safe. */
#pragma once

#include <stddef.h>

#include "gx/compiler.h"
#include "gx/err.h"

/* Decodes in[0..len). ASCII whitespace (space, tab, CR, LF, VT, FF) is skipped anywhere, since
 * PEM blobs are often wrapped. Padding is required, as Go's StdEncoding (which kubectl uses)
 * requires it: after whitespace is removed the length must be a multiple of 4, with at most two
 * '=' and only at the end. Any other character is an error. On success *out is a malloc'd buffer
 * the caller frees, NUL-terminated for convenience, and *out_len excludes that NUL. Returns
 * ERR_PARSE for bad input, with *out and *out_len untouched. */
enum err base64_decode(const char *in, size_t len, char **out, size_t *out_len) GX_MUST_CHECK;
