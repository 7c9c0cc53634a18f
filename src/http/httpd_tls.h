/* httpd_tls.h -- private to src/http: the HTTPS side of a server (httpd_tls.c). With httpd.c,
 * the only files that include GnuTLS, which libmicrohttpd uses for TLS.
 *
 * The certificate, key and client CA files are loaded together into one immutable set (a
 * GnuTLS credentials object), refcounted. A connection takes a reference to the set that is
 * current when it opens, gives its TLS session those credentials before the handshake, and
 * drops the reference when it closes (libmicrohttpd has deinitialised the session by then).
 * A watcher thread loads the files again when one of them changes and makes a valid new set
 * current: connections opened from then on get it, open ones keep theirs. Nothing waits for
 * a reload but a pointer copy under a lock.
 *
 * libmicrohttpd insists on a certificate and key of its own at start: it is given the first
 * set's files, which it never serves, since every session's credentials are replaced first. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "gx/compiler.h"
#include "gx/err.h"
#include "gx/httpd.h"

struct MHD_Connection;
struct tls_set;
struct tls_server;

/* TLS 1.2 and 1.3 only; GnuTLS's defaults for everything else. */
#define HTTPD_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/* Loads cfg's TLS files (certificate and key required, client CA optional) and starts the
 * watcher (every cfg->tls_watch_ms, 0: 1000). Returns ERR_INVALID when a file cannot be read
 * or the files do not make a valid set; eb names the file and the reason. cfg->name is used
 * in logs. */
enum err tls_server_new(const struct httpd_config *cfg, struct tls_server **out,
                        struct errbuf *eb) GX_MUST_CHECK;
/* Stops the watcher and drops the current set. Every connection must have closed. NULL is a
 * no-op. */
void tls_server_free(struct tls_server *t);
/* The first set's certificate and key as PEM text, for libmicrohttpd's start-up options.
 * Valid until tls_server_free(). */
const char *tls_server_start_cert(const struct tls_server *t);
const char *tls_server_start_key(const struct tls_server *t);
/* Whether client certificates are asked for and checked (a client CA file was given). */
bool tls_server_verifies_clients(const struct tls_server *t);
/* Loads the files again now (why is logged: "file changed"). Returns ERR_OK when a new set is
 * current or the files hold what is already serving (*swapped, may be NULL, says which);
 * else the load's error, with the reason in eb, logged and counted, the current set kept.
 * Thread-safe; reloads are serialized. */
enum err tls_server_reload(struct tls_server *t, const char *why, bool *swapped,
                           struct errbuf *eb) GX_MUST_CHECK;
/* The serial number of the current set's certificate, in hex ("" if unreadable). */
void tls_server_serial(struct tls_server *t, char *out, size_t cap);

/* A connection opened, before its handshake: gives its TLS session the current set's
 * credentials, and asks for a client certificate when clients are verified. Returns the
 * reference the connection now holds; NULL when the session could not be set up (then
 * tls_conn_verify() refuses it). Call on the connection's thread. */
struct tls_set *tls_conn_open(struct tls_server *t, struct MHD_Connection *mc);
/* Drops a connection's reference once its session is gone. NULL is a no-op. */
void tls_set_release(struct tls_set *set);
/* Whether the client certificate of mc verifies against the client CA of set (the set its
 * session was given), for client authentication: a chain to that CA, in its validity period,
 * with no extended key usage or one that includes clientAuth. True when clients are not
 * verified. Otherwise false, with a one-line reason in why. Call after the handshake, on the
 * connection's thread. */
bool tls_conn_verify(const struct tls_server *t, const struct tls_set *set,
                     struct MHD_Connection *mc, char *why, size_t cap);
