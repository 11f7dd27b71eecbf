/*
 * tls.h - TLS 1.3 on a migration's TCP (and unix) connections
 * (docs/usage.md, "TLS"; docs/stream.md, "TLS").
 *
 * Credentials are a directory laid out as QEMU's tls-creds-x509 or
 * tls-creds-psk objects expect.  A connection is handshaken, the peer
 * judged (certificate chain, host name, tls-authz), and then handed to
 * the engine as a plain file descriptor: the end of a socket pair whose
 * other end a relay thread serves, encrypting what the engine writes and
 * decrypting what the peer sends.  So everything the engine does with a
 * connection (blocking reads and writes from several threads, poll,
 * shutdown to unblock or half-close) keeps its meaning, and one thread
 * owns each SSL object.  Where the kernel offers kTLS, OpenSSL hands it
 * the session keys and the relay's writes are the kernel's to encrypt.
 */
#ifndef FERRY_TLS_H
#define FERRY_TLS_H

#include <stdbool.h>
#include <stddef.h>

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

/*
 * Source: handshake on the connected socket *fd with the destination
 * `host` (checked against its certificate; an IP address as such), and
 * wait for the destination to accept this source (its acceptance byte,
 * docs/stream.md).  On success *fd is the plain end the engine uses
 * (the socket belongs to the relay) and info says what was agreed; on
 * failure *fd is closed and -1, and err says who refused and why.
 */
int tls_client(struct tls_creds *c, const char *host, int *fd, int timeout_ms,
	       struct tls_info *info, struct ferry_error *err);

/* Destination: one accepted connection's handshake, stepped by the
 * listener's poll loop (transport.c's screen) so that a slow stranger
 * holds up no one. */
struct tls_accept;

struct tls_accept *tls_accept_new(struct tls_creds *c, int fd);
/*
 * Go on with the handshake: 0 not done yet (*events says what to poll
 * fd for), 1 accepted (*plain is the engine's end, the relay owns fd
 * from now on, info filled), -1 refused (why says so; fd is still the
 * caller's to close).
 */
int tls_accept_step(struct tls_accept *a, short *events, int *plain,
		    struct tls_info *info, char *why, size_t len);
void tls_accept_free(struct tls_accept *a);

/*
 * For net-timeout (watch.c): the TCP socket behind a plain end that a
 * relay serves, asked under the relay's lock (it may be closing).
 * getsockopt(TCP_INFO) into ti, and the bytes queued unsent (SIOCOUTQ);
 * -1 when fd is no relay's.
 */
int tls_wire_tcp_info(int fd, void *ti, unsigned *len, int *queued);
/* Why the relay behind fd broke the connection (a record that failed to
 * decrypt, the peer's alert), "" when it did not, or fd is no relay's. */
void tls_wire_fault(int fd, char *buf, size_t len);

#endif
