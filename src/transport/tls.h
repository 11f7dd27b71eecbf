/*
 * tls.h - TLS 1.3 on a migration's TCP (and unix) connections
 * (docs/usage.md, "TLS"; docs/stream.md, "TLS").
 *
 * Credentials are a directory laid out as QEMU's tls-creds-x509 or
 * tls-creds-psk objects expect.  A connection is handshaken, the peer
 * judged (certificate chain, host name, tls-authz), and then handed to
 * the engine as a plain file descriptor: the end of a socket pair whose
 * other end a relay thread serves, encrypting what the engine writes and
 * decrypting what the peer sends, for the main connection, which several
 * threads read and write; everything the engine does with it (blocking
 * reads and writes, poll, shutdown to unblock or half-close) keeps its
 * meaning, and one thread owns each SSL object.  The other connections
 * carry one direction each, used by one thread: it reads or writes the
 * session in place, without the relay's copies.  Where the kernel offers kTLS, OpenSSL hands it
 * the session keys and the relay's writes are the kernel's to encrypt.
 */
#ifndef FERRY_TLS_H
#define FERRY_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "ferry/error.h"

/* What a connection's TLS session is, for query-migrate. */
struct tls_info {
	bool on;
	bool ktls_send, ktls_recv; /* the kernel encrypts / decrypts */
	char version[16];	   /* "TLSv1.3" */
	char cipher[64];	   /* "TLS_AES_128_GCM_SHA256" */
	char peer[256]; /* the peer's certificate subject (RFC 2253), or
			   "psk:IDENTITY" */
};

/* A loaded tls-creds directory, for one role. */
struct tls_creds;

/* Load `dir` for the source (server false) or the destination; `authz`
 * ("" for none) is a tls-authz file (destination only): the client
 * subjects let in, one pattern per line (docs/usage.md).  0, or a
 * negative errno with err naming the file and why. */
int tls_creds_load(const char *dir, const char *authz, bool server,
		   struct tls_creds **out, struct ferry_error *err);
void tls_creds_free(struct tls_creds *c);

/* Does this kernel offer kTLS (the "tls" upper layer protocol)? */
bool tls_kernel_has_ktls(void);

/* One connection's TLS session: handshaken (and judged), then either
 * handed to a relay (tls_conn_relay) for a connection several threads
 * read and write (the main one), or read or written in place by the
 * one thread that uses it (a page channel, post-copy's urgent one). */
struct tls_conn;

/*
 * Source: handshake on the connected socket fd with the destination
 * `host` (checked against its certificate; an IP address as such), and
 * wait for the destination to accept this source (its acceptance byte,
 * docs/stream.md), within timeout_ms.  0 and *out, info filled; or
 * err says who refused and why.  fd stays the caller's either way.
 */
int tls_client(struct tls_creds *c, const char *host, int fd, int timeout_ms,
	       struct tls_info *info, struct tls_conn **out,
	       struct ferry_error *err);

/* Destination: an accepted connection's handshake, stepped by the
 * listener's poll loop (transport.c's screen) so that a slow stranger
 * holds up no one.  NULL: out of memory. */
struct tls_conn *tls_accept_new(struct tls_creds *c, int fd);
/* Go on with it: 0 not done (*events says what to poll fd for), 1 the
 * client is judged and accepted (info filled), -1 refused (why). */
int tls_accept_step(struct tls_conn *t, short *events, struct tls_info *info,
		    char *why, size_t len);
/* The screen's read of a head: bytes, -EAGAIN (*events to poll for), 0
 * at the end, or -EPROTO (why). */
ssize_t tls_conn_read_nb(struct tls_conn *t, void *buf, size_t len,
			 short *events, char *why, size_t wlen);
/* Decrypted bytes wait in the session: a poll of fd would not show. */
bool tls_conn_pending(const struct tls_conn *t);

/* Blocking, on the one thread that uses the connection: read what is
 * there (bytes, 0 at the end, or a negative errno: -EBADMSG for a record
 * that does not decrypt), or write all of iov in whole records (0 or a
 * negative errno).  A failure is the connection's fault
 * (tls_wire_fault). */
ssize_t tls_conn_read(struct tls_conn *t, void *buf, size_t len);
int tls_conn_writev(struct tls_conn *t, const struct iovec *iov, int n);

/* Hand the session to a relay thread: *fd becomes the plain end the
 * engine uses (the socket is the relay's); on failure *fd is still the
 * socket, the caller's to close.  t is gone either way. */
int tls_conn_relay(struct tls_conn *t, int *fd, struct ferry_error *err);
/* A close_notify if it can go at once, and the session freed; the
 * socket stays the caller's. */
void tls_conn_free(struct tls_conn *t);

/*
 * For net-timeout (watch.c): the TCP socket behind a plain end that a
 * relay serves, asked under the relay's lock (it may be closing).
 * getsockopt(TCP_INFO) into ti, and the bytes queued unsent (SIOCOUTQ);
 * -1 when fd is no relay's.
 */
int tls_wire_tcp_info(int fd, void *ti, unsigned *len, int *queued);
/* Why the TLS session of fd (a relay's plain end, or a socket read or
 * written in place) broke (a record that failed to decrypt, the peer's
 * alert), "" when it did not or fd has no session. */
void tls_wire_fault(int fd, char *buf, size_t len);

#endif
