/*
 * tls.c - TLS 1.3 on a migration's connections (tls.h): credentials,
 * the source's and the destination's handshakes, and the relay that
 * serves each connection afterwards.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <linux/sockios.h> /* SIOCOUTQ */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls.h"

/* The destination's word, in TLS, that it accepted this source (its
 * certificate, its place on tls-authz): before it, a TLS 1.3 client
 * cannot tell, since the server judges the client's certificate after
 * the client's handshake is done. */
#define TLS_ACCEPTED 0x06

#define RELAY_BUF  (256 * 1024) /* bytes moved at once, each way */
#define TLS_RECORD 16384	/* the most plaintext one record holds */
#define WRITE_BUF  (256 * 1024) /* records written at once, in place */
#define PSK_MAX	   64		/* bytes of a pre-shared key */
#define IDENT_MAX  128

/* AES-GCM first where the CPU has AES instructions (OpenSSL uses them
 * when they are there), ChaCha20 first where it has not. */
#define SUITES_AES                                       \
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:" \
	"TLS_CHACHA20_POLY1305_SHA256"
#define SUITES_CHACHA                                          \
	"TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:" \
	"TLS_AES_256_GCM_SHA384"

struct psk {
	char ident[IDENT_MAX];
	unsigned char key[PSK_MAX];
	size_t len;
	struct psk *next;
};

struct tls_creds {
	SSL_CTX *ctx;
	bool server;
	bool x509;
	bool verify_peer; /* destination: a CA, so client certificates */
	struct psk *psk;  /* keys.psk, in file order */
	char **authz;	  /* patterns, NULL-terminated; NULL: anyone the
			       CA signed */
	char authz_path[256];
	char dir[256];
};

/* SSL ex_data: the creds, for the callbacks; the key a PSK client
 * used (destination) */
static int ssl_index = -1, psk_index = -1;
static pthread_once_t ssl_once = PTHREAD_ONCE_INIT;

static void ssl_init(void)
{
	ssl_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	psk_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* The oldest OpenSSL error as text, the queue emptied. */
static const char *ssl_reason(char *buf, size_t len)
{
	unsigned long first = ERR_get_error(); /* the cause */
	const char *r = first ? ERR_reason_error_string(first) : NULL;

	ERR_clear_error();
	if (!first)
		snprintf(buf, len, "no reason given");
	else if (r) /* "certificate verify failed", not "error:0A00..." */
		snprintf(buf, len, "%s", r);
	else
		ERR_error_string_n(first, buf, len);
	return buf;
}

static bool cpu_has_aes(void)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[4096];
	bool aes = false;

	if (!f)
		return true; /* not Linux as we know it: AES-GCM first */
	while (!aes && fgets(line, sizeof(line), f))
		if (!strncmp(line, "flags", 5) &&
		    (strstr(line, " aes ") || strstr(line, " aes\n")))
			aes = true;
	fclose(f);
	return aes;
}

bool tls_kernel_has_ktls(void)
{
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r");
	char line[256] = "";
	char *t, *save = NULL;
	bool tls = false;

	if (!f)
		return false;
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0';
	fclose(f);
	for (t = strtok_r(line, " \n", &save); t;
	     t = strtok_r(NULL, " \n", &save))
		if (!strcmp(t, "tls"))
			tls = true;
	return tls;
}

static bool readable(const char *dir, const char *name, char *path, size_t len)
{
	snprintf(path, len, "%s/%s", dir, name);
	return access(path, R_OK) == 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* keys.psk: "IDENTITY:HEXKEY" per line, as QEMU's tls-creds-psk. */
static int load_psk(struct tls_creds *c, const char *path,
		    struct ferry_error *err)
{
	FILE *f = fopen(path, "r");
	struct psk **tail = &c->psk;
	char line[512];
	unsigned n = 0;

	if (!f)
		return ferry_error_set(err, -errno, "tls-creds: %s: %s", path,
				       strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':'), *hex;
		struct psk *k;
		size_t i, hl;

		n++;
		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		if (!colon || colon == line ||
		    (size_t)(colon - line) >= IDENT_MAX) {
			fclose(f);
			return ferry_error_set(
				err, -EINVAL,
				"tls-creds: %s line %u: expected "
				"IDENTITY:HEXKEY",
				path, n);
		}
		hex = colon + 1;
		hl = strlen(hex);
		if (hl < 2 || hl % 2 || hl / 2 > PSK_MAX) {
			fclose(f);
			return ferry_error_set(err, -EINVAL,
					       "tls-creds: %s line %u: the key "
					       "must be 1 to %d bytes in hex",
					       path, n, PSK_MAX);
		}
		k = calloc(1, sizeof(*k));
		if (!k) {
			fclose(f);
			return ferry_error_set(err, -ENOMEM, "out of memory");
		}
		memcpy(k->ident, line, (size_t)(colon - line));
		for (i = 0; i < hl / 2; i++) {
			int hi = hexval(hex[2 * i]),
			    lo = hexval(hex[2 * i + 1]);

			if (hi < 0 || lo < 0) {
				free(k);
				fclose(f);
				return ferry_error_set(err, -EINVAL,
						       "tls-creds: %s line %u: "
						       "the key is not hex",
						       path, n);
			}
			k->key[i] = (unsigned char)(hi << 4 | lo);
		}
		k->len = hl / 2;
		*tail = k;
		tail = &k->next;
	}
	fclose(f);
	if (!c->psk)
		return ferry_error_set(err, -EINVAL,
				       "tls-creds: %s holds no key", path);
	return 0;
}

static int load_authz(struct tls_creds *c, const char *path,
		      struct ferry_error *err)
{
	FILE *f = fopen(path, "r");
	char line[512];
	size_t n = 0;

	if (!f)
		return ferry_error_set(err, -errno, "tls-authz: %s: %s", path,
				       strerror(errno));
	snprintf(c->authz_path, sizeof(c->authz_path), "%s", path);
	c->authz = calloc(1, sizeof(char *));
	if (!c->authz) {
		fclose(f);
		return ferry_error_set(err, -ENOMEM, "out of memory");
	}
	while (fgets(line, sizeof(line), f)) {
		char *s = line, **grown;
		size_t l;

		line[strcspn(line, "\r\n")] = '\0';
		s += strspn(s, " \t");
		l = strlen(s);
		while (l && (s[l - 1] == ' ' || s[l - 1] == '\t'))
			s[--l] = '\0';
		if (!l || s[0] == '#')
			continue;
		grown = realloc(c->authz, (n + 2) * sizeof(char *));
		if (!grown || !(grown[n] = strdup(s))) {
			if (grown)
				c->authz = grown;
			fclose(f);
			return ferry_error_set(err, -ENOMEM, "out of memory");
		}
		c->authz = grown;
		c->authz[++n] = NULL;
	}
	fclose(f);
	return 0;
}

static unsigned int psk_client_cb(SSL *ssl, const char *hint, char *ident,
				  unsigned int max_ident, unsigned char *key,
				  unsigned int max_key)
{
	const struct tls_creds *c = SSL_get_ex_data(ssl, ssl_index);
	const struct psk *k = c ? c->psk : NULL;

	(void)hint;
	if (!k || strlen(k->ident) >= max_ident || k->len > max_key)
		return 0;
	snprintf(ident, max_ident, "%s", k->ident);
	memcpy(key, k->key, k->len);
	return (unsigned int)k->len;
}

static unsigned int psk_server_cb(SSL *ssl, const char *ident,
				  unsigned char *key, unsigned int max_key)
{
	const struct tls_creds *c = SSL_get_ex_data(ssl, ssl_index);
	const struct psk *k;

	for (k = c ? c->psk : NULL; k; k = k->next)
		if (!strcmp(k->ident, ident) && k->len <= max_key) {
			SSL_set_ex_data(ssl, psk_index, (void *)k);
			memcpy(key, k->key, k->len);
			return (unsigned int)k->len;
		}
	return 0;
}

static int load_x509(struct tls_creds *c, const char *dir,
		     struct ferry_error *err)
{
	const char *cert = c->server ? "server-cert.pem" : "client-cert.pem";
	const char *key = c->server ? "server-key.pem" : "client-key.pem";
	char path[512], kpath[512], why[256];
	bool have_ca = readable(dir, "ca-cert.pem", path, sizeof(path));

	if (have_ca && !SSL_CTX_load_verify_locations(c->ctx, path, NULL))
		return ferry_error_set(err, -EINVAL, "tls-creds: %s: %s", path,
				       ssl_reason(why, sizeof(why)));
	if (!have_ca && !c->server)
		return ferry_error_set(err, -ENOENT,
				       "tls-creds: %s/ca-cert.pem is missing "
				       "(the source checks the destination's "
				       "certificate against it)",
				       dir);
	if (readable(dir, cert, path, sizeof(path))) {
		if (!readable(dir, key, kpath, sizeof(kpath)))
			return ferry_error_set(err, -ENOENT,
					       "tls-creds: %s/%s is missing "
					       "(the key of %s)",
					       dir, key, cert);
		if (!SSL_CTX_use_certificate_chain_file(c->ctx, path))
			return ferry_error_set(err, -EINVAL,
					       "tls-creds: %s: %s", path,
					       ssl_reason(why, sizeof(why)));
		if (!SSL_CTX_use_PrivateKey_file(c->ctx, kpath,
						 SSL_FILETYPE_PEM))
			return ferry_error_set(err, -EINVAL,
					       "tls-creds: %s: %s", kpath,
					       ssl_reason(why, sizeof(why)));
		if (!SSL_CTX_check_private_key(c->ctx))
			return ferry_error_set(err, -EINVAL,
					       "tls-creds: %s is not the key "
					       "of %s",
					       kpath, path);
	} else if (c->server) {
		return ferry_error_set(err, -ENOENT,
				       "tls-creds: %s/server-cert.pem is "
				       "missing (the destination shows it to "
				       "the source)",
				       dir);
	}
	if (c->server && have_ca) {
		c->verify_peer = true;
		SSL_CTX_set_verify(c->ctx,
				   SSL_VERIFY_PEER |
					   SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
				   NULL);
	} else if (!c->server) {
		SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	}
	return 0;
}

int tls_creds_load(const char *dir, const char *authz, bool server,
		   struct tls_creds **out, struct ferry_error *err)
{
	struct tls_creds *c;
	char path[512];
	struct stat st;
	int rc;

	pthread_once(&ssl_once, ssl_init);
	*out = NULL;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return ferry_error_set(err, -ENOENT,
				       "tls-creds: %s is not a directory "
				       "(it names one laid out as QEMU's "
				       "tls-creds-x509 or tls-creds-psk)",
				       dir);
	c = calloc(1, sizeof(*c));
	if (!c)
		return ferry_error_set(err, -ENOMEM, "out of memory");
	c->server = server;
	snprintf(c->dir, sizeof(c->dir), "%s", dir);
	c->ctx =
		SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!c->ctx) {
		free(c);
		return ferry_error_set(err, -ENOMEM, "TLS: out of memory");
	}
	SSL_CTX_set_min_proto_version(c->ctx, TLS1_3_VERSION);
	SSL_CTX_set_ciphersuites(c->ctx,
				 cpu_has_aes() ? SUITES_AES : SUITES_CHACHA);
	/* one session per connection: no tickets to resume (and none to
	 * arrive as a post-handshake record in the data) */
	SSL_CTX_set_num_tickets(c->ctx, 0);
	SSL_CTX_set_session_cache_mode(c->ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(c->ctx, SSL_OP_NO_TICKET |
					    SSL_OP_CIPHER_SERVER_PREFERENCE |
					    SSL_OP_NO_RENEGOTIATION);
	if (tls_kernel_has_ktls())
		SSL_CTX_set_options(c->ctx, SSL_OP_ENABLE_KTLS);
	/* a record with one system call, not two (header, body); the read
	 * buffer stays one record long: OpenSSL moves what is left in it to
	 * its front for each record, which costs more than it saves once
	 * the buffer holds many */
	SSL_CTX_set_read_ahead(c->ctx, 1);

	if (readable(dir, "ca-cert.pem", path, sizeof(path)) ||
	    readable(dir, "server-cert.pem", path, sizeof(path))) {
		c->x509 = true;
		rc = load_x509(c, dir, err);
	} else if (readable(dir, "keys.psk", path, sizeof(path))) {
		rc = load_psk(c, path, err);
		if (server)
			SSL_CTX_set_psk_server_callback(c->ctx, psk_server_cb);
		else
			SSL_CTX_set_psk_client_callback(c->ctx, psk_client_cb);
	} else {
		rc = ferry_error_set(err, -ENOENT,
				     "tls-creds: %s holds neither x509 "
				     "credentials (ca-cert.pem, "
				     "server-cert.pem, ...) nor a pre-shared "
				     "key (keys.psk)",
				     dir);
	}
	if (!rc && server && authz && authz[0]) {
		if (c->x509 && !c->verify_peer)
			rc = ferry_error_set(err, -EINVAL,
					     "tls-authz needs client "
					     "certificates, and %s has no "
					     "ca-cert.pem to check them with",
					     dir);
		else
			rc = load_authz(c, authz, err);
	}
	if (rc) {
		tls_creds_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void tls_creds_free(struct tls_creds *c)
{
	struct psk *k, *next;
	size_t i;

	if (!c)
		return;
	for (k = c->psk; k; k = next) {
		next = k->next;
		OPENSSL_cleanse(k->key, sizeof(k->key));
		free(k);
	}
	for (i = 0; c->authz && c->authz[i]; i++)
		free(c->authz[i]);
	free(c->authz);
	SSL_CTX_free(c->ctx);
	free(c);
}

/* ---- what a session is ------------------------------------------------ */

static void fill_info(SSL *ssl, const struct tls_creds *c,
		      struct tls_info *info)
{
	X509 *peer = SSL_get1_peer_certificate(ssl);

	memset(info, 0, sizeof(*info));
	info->on = true;
	snprintf(info->version, sizeof(info->version), "%s",
		 SSL_get_version(ssl));
	snprintf(info->cipher, sizeof(info->cipher), "%s",
		 SSL_get_cipher_name(ssl));
	if (peer) {
		BIO *b = BIO_new(BIO_s_mem());
		char *p = NULL;
		long n;

		if (b && X509_NAME_print_ex(b, X509_get_subject_name(peer), 0,
					    XN_FLAG_RFC2253) >= 0) {
			n = BIO_get_mem_data(b, &p);
			snprintf(info->peer, sizeof(info->peer), "%.*s",
				 (int)(n < 0 ? 0 : n), p ? p : "");
		}
		BIO_free(b);
		X509_free(peer);
	} else if (!c->x509) {
		const struct psk *k =
			c->server ? SSL_get_ex_data(ssl, psk_index) : c->psk;
		const char *id = k ? k->ident : NULL;

		snprintf(info->peer, sizeof(info->peer), "psk:%s",
			 id ? id : "?");
	}
	info->ktls_send = BIO_get_ktls_send(SSL_get_wbio(ssl)) > 0;
	info->ktls_recv = BIO_get_ktls_recv(SSL_get_rbio(ssl)) > 0;
}

/* Why a peer's certificate failed, in an operator's words. */
static void verify_words(long v, char *buf, size_t len)
{
	const char *what;

	switch (v) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
		what = "has expired";
		break;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		what = "is not valid yet";
		break;
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
		what = "is not signed by the CA in tls-creds";
		break;
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		what = "is for another host";
		break;
	default:
		what = "is not trusted";
	}
	snprintf(buf, len, "%s (%s)", what, X509_verify_cert_error_string(v));
}

/* ---- SIGPIPE ---------------------------------------------------------- */

/*
 * OpenSSL writes to its socket with write(2), so a peer that went away
 * would raise SIGPIPE, whose default kills the process; a library must
 * not change the process's handlers.  Around each call that may write on
 * a thread not ours to keep, SIGPIPE is blocked and, if the call raised
 * one, taken back before the mask is restored (as libpq does); a relay
 * thread blocks it for good.
 */
struct sigpipe_guard {
	sigset_t old;
	bool pending; /* one was already pending: not ours to take */
};

static void sigpipe_block(struct sigpipe_guard *g)
{
	sigset_t pipe, now;

	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, &g->old);
	g->pending = false;
	if (sigismember(&g->old, SIGPIPE) && !sigpending(&now))
		g->pending = sigismember(&now, SIGPIPE);
}

static void sigpipe_restore(struct sigpipe_guard *g)
{
	struct timespec zero = { 0, 0 };
	sigset_t pipe, now;
	int saved = errno;

	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	if (!g->pending && !sigpending(&now) && sigismember(&now, SIGPIPE))
		while (sigtimedwait(&pipe, NULL, &zero) < 0 && errno == EINTR)
			;
	pthread_sigmask(SIG_SETMASK, &g->old, NULL);
	errno = saved;
}

/* ---- the relay -------------------------------------------------------- */

/*
 * Each relay is listed by the engine's end (its fd number and socket
 * inode, so that a number closed and reused is not taken for it), for
 * the watcher and for the reason a connection broke; an entry outlives
 * its relay until the engine closes its end.
 */
struct wire {
	int fd;	   /* the engine's end */
	ino_t ino; /* of that socket */
	int tcp;   /* the relay's socket, -1 once it is closed */
	char fault[192];
	struct wire *next;
};

static pthread_mutex_t wires_lock = PTHREAD_MUTEX_INITIALIZER;
static struct wire *wires;

static ino_t fd_ino(int fd)
{
	struct stat st;

	return fstat(fd, &st) < 0 ? 0 : st.st_ino;
}

/* Under wires_lock: the entry of fd, or NULL. */
static struct wire *wire_of(int fd)
{
	ino_t ino = fd_ino(fd);
	struct wire *w;

	if (!ino)
		return NULL;
	for (w = wires; w; w = w->next)
		if (w->fd == fd && w->ino == ino)
			return w;
	return NULL;
}

/* Under wires_lock: forget entries whose engine end was closed. */
static void wires_sweep(void)
{
	struct wire **pp = &wires, *w;

	while ((w = *pp)) {
		if (w->tcp < 0 && fd_ino(w->fd) != w->ino) {
			*pp = w->next;
			free(w);
		} else {
			pp = &w->next;
		}
	}
}

int tls_wire_tcp_info(int fd, void *ti, unsigned *len, int *queued)
{
	struct wire *w;
	int rc = -1;

	pthread_mutex_lock(&wires_lock);
	w = wire_of(fd);
	if (w && w->tcp >= 0) {
		socklen_t l = *len;

		rc = getsockopt(w->tcp, IPPROTO_TCP, TCP_INFO, ti, &l);
		*len = l;
		if (queued && ioctl(w->tcp, SIOCOUTQ, queued) < 0)
			*queued = 0;
	}
	pthread_mutex_unlock(&wires_lock);
	return rc;
}

void tls_wire_fault(int fd, char *buf, size_t len)
{
	struct wire *w;

	pthread_mutex_lock(&wires_lock);
	w = wire_of(fd);
	snprintf(buf, len, "%s", w ? w->fault : "");
	pthread_mutex_unlock(&wires_lock);
}

struct relay {
	SSL *ssl;
	int tcp, pl; /* the socket; the relay's end of the pair */
	struct wire *w;
	uint8_t *up, *down; /* engine -> peer; peer -> engine */
	size_t up_len, down_len, down_off;
};

static void conn_fault(struct wire *w, int e, const char *dir);

/* Where a relay stands: what each side has said and can take now. */
struct relay_state {
	bool pl_eof;	  /* the engine shut its sending side */
	bool notify_sent; /* close_notify went (or cannot) */
	bool tls_eof;	  /* the peer's close_notify, or an end */
	bool down_closed; /* the engine reads no more */
	bool wire_dead;	  /* sending to the peer failed */
	bool tcp_rd, tcp_wr, pl_rd, pl_wr; /* may be tried without waiting */
	bool want_w;			   /* SSL wants the socket writable */
	bool want_r_w;			   /* SSL_write wants it readable */
};

/* The engine's bytes, to the peer, and close_notify after its last; true
 * if anything moved. */
static bool relay_up(struct relay *r, struct relay_state *st)
{
	bool progress = false;
	int e, n;

	/* the engine's bytes, to the peer */
	if (!st->pl_eof && !r->up_len && st->pl_rd) {
		n = (int)read(r->pl, r->up, RELAY_BUF);
		if (n > 0) {
			r->up_len = (size_t)n;
			progress = true;
		} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			st->pl_eof = true;
			progress = true;
		} else {
			st->pl_rd = false;
		}
	}
	if (r->up_len && st->wire_dead)
		r->up_len = 0;
	if (r->up_len && (st->tcp_wr || (st->want_r_w && st->tcp_rd))) {
		ERR_clear_error();
		n = SSL_write(r->ssl, r->up, (int)r->up_len);
		if (n > 0) {
			r->up_len = 0;
			st->want_w = st->want_r_w = false;
			progress = true;
		} else {
			e = SSL_get_error(r->ssl, n);
			if (e == SSL_ERROR_WANT_WRITE) {
				st->tcp_wr = false;
				st->want_w = true;
			} else if (e == SSL_ERROR_WANT_READ) {
				st->tcp_rd = false;
				st->want_r_w = true;
			} else {
				conn_fault(r->w, e, "sending");
				st->wire_dead = true;
				r->up_len = 0;
				progress = true;
			}
		}
	}
	if (st->pl_eof && !r->up_len && !st->notify_sent) {
		ERR_clear_error();
		n = st->wire_dead ? 0 : SSL_shutdown(r->ssl);
		if (n < 0 && SSL_get_error(r->ssl, n) == SSL_ERROR_WANT_WRITE) {
			st->tcp_wr = false;
			st->want_w = true;
		} else {
			st->notify_sent = true;
			shutdown(r->tcp, SHUT_WR);
			progress = true;
		}
	}
	return progress;
}

/* The peer's bytes, to the engine, and its end; true if anything moved. */
static bool relay_down(struct relay *r, struct relay_state *st)
{
	bool progress = false;
	int e, n;

	/* the peer's bytes, to the engine: as many records as fit,
	 * then one write */
	while (!st->tls_eof && r->down_len < RELAY_BUF - 16384 &&
	       (st->tcp_rd || SSL_has_pending(r->ssl))) {
		ERR_clear_error();
		n = SSL_read(r->ssl, r->down + r->down_len,
			     (int)(RELAY_BUF - r->down_len));
		if (n > 0) {
			if (st->down_closed)
				r->down_len = 0; /* nobody reads */
			else
				r->down_len += (size_t)n;
			progress = true;
			continue;
		}
		e = SSL_get_error(r->ssl, n);
		if (e == SSL_ERROR_WANT_READ) {
			st->tcp_rd = false;
		} else if (e == SSL_ERROR_WANT_WRITE) {
			st->tcp_wr = false;
			st->want_w = true;
		} else {
			if (e != SSL_ERROR_ZERO_RETURN)
				conn_fault(r->w, e, "receiving");
			st->tls_eof = true;
			progress = true;
		}
		break;
	}
	if (r->down_len > r->down_off && st->pl_wr) {
		n = (int)send(r->pl, r->down + r->down_off,
			      r->down_len - r->down_off,
			      MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			r->down_off += (size_t)n;
			if (r->down_off == r->down_len)
				r->down_len = r->down_off = 0;
			progress = true;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			st->pl_wr = false;
		} else {
			st->down_closed = true; /* the engine shut it */
			r->down_len = r->down_off = 0;
			progress = true;
		}
	}
	if (st->tls_eof && r->down_len == 0) {
		shutdown(r->pl, SHUT_WR); /* the engine reads the end */
		if (!st->down_closed)
			progress = true;
		st->down_closed = true;
	}
	return progress;
}

/* Nothing moved: wait until a side can take or give; false if poll
 * failed. */
static bool relay_wait(struct relay *r, struct relay_state *st)
{
	struct pollfd p[2];

	p[0] = (struct pollfd){ .fd = r->tcp };
	p[1] = (struct pollfd){ .fd = r->pl };
	if (!st->tcp_rd && !st->tls_eof)
		p[0].events |= POLLIN;
	if (!st->tcp_wr && (st->want_w || st->want_r_w))
		p[0].events |= POLLOUT;
	if (!st->pl_rd && !st->pl_eof)
		p[1].events |= POLLIN;
	if (!st->pl_wr && r->down_len)
		p[1].events |= POLLOUT;
	if (poll(p, 2, -1) < 0 && errno != EINTR)
		return false;
	if (p[0].revents & (POLLIN | POLLHUP | POLLERR))
		st->tcp_rd = true;
	if (p[0].revents & (POLLOUT | POLLHUP | POLLERR))
		st->tcp_wr = true;
	if (p[1].revents & (POLLIN | POLLHUP | POLLERR))
		st->pl_rd = true;
	if (p[1].revents & (POLLOUT | POLLHUP | POLLERR))
		st->pl_wr = true;
	if (p[1].revents & POLLHUP) { /* the engine shut both ways */
		st->down_closed = true;
		r->down_len = r->down_off = 0;
	}
	return true;
}

static void *relay_main(void *arg)
{
	struct relay *r = arg;
	struct relay_state st = {
		.tcp_rd = true, .tcp_wr = true, .pl_rd = true, .pl_wr = true
	};
	sigset_t pipe;

	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, NULL); /* EPIPE instead */
	for (;;) {
		bool progress = relay_up(r, &st);

		progress |= relay_down(r, &st);
		/* done: nothing more can go either way */
		if (st.notify_sent && (st.tls_eof || st.down_closed) &&
		    !r->down_len)
			break;
		if (!progress && !relay_wait(r, &st))
			break;
	}
	pthread_mutex_lock(&wires_lock);
	r->w->tcp = -1;
	close(r->tcp);
	wires_sweep();
	pthread_mutex_unlock(&wires_lock);
	close(r->pl);
	SSL_free(r->ssl);
	free(r->up);
	free(r->down);
	free(r);
	return NULL;
}

/* ---- a connection's session ------------------------------------------ */

struct tls_conn {
	struct tls_creds *c;
	SSL *ssl;
	int fd;
	bool up;	/* the handshake is done (and, destination: judged) */
	struct wire *w; /* listed under fd: its fault */
	uint8_t *wbuf;	/* direct writes, gathered into whole records */
};

static struct tls_conn *conn_new(struct tls_creds *c, int fd)
{
	struct tls_conn *t = calloc(1, sizeof(*t));
	struct wire *w = calloc(1, sizeof(*w));

	pthread_once(&ssl_once, ssl_init);
	if (t)
		t->ssl = SSL_new(c->ctx);
	if (!t || !w || !t->ssl || !SSL_set_fd(t->ssl, fd)) {
		if (t)
			SSL_free(t->ssl);
		free(t);
		free(w);
		return NULL;
	}
	SSL_set_ex_data(t->ssl, ssl_index, c);
	t->c = c;
	t->fd = fd;
	t->w = w;
	*w = (struct wire){ .fd = fd, .ino = fd_ino(fd), .tcp = -1 };
	pthread_mutex_lock(&wires_lock);
	wires_sweep();
	w->next = wires;
	wires = w;
	pthread_mutex_unlock(&wires_lock);
	return t;
}

void tls_conn_free(struct tls_conn *t)
{
	struct sigpipe_guard g;

	if (!t)
		return;
	if (t->ssl && t->up) { /* a close_notify, if it goes at once */
		int fl = fcntl(t->fd, F_GETFL);

		fcntl(t->fd, F_SETFL, fl | O_NONBLOCK);
		sigpipe_block(&g);
		SSL_shutdown(t->ssl);
		sigpipe_restore(&g);
		ERR_clear_error();
		fcntl(t->fd, F_SETFL, fl);
	}
	SSL_free(t->ssl);
	free(t->wbuf);
	free(t); /* its wire entry goes once fd is closed */
}

/* Note why the session broke (the first reason). */
static void conn_fault(struct wire *w, int e, const char *dir)
{
	char why[160];

	if (e == SSL_ERROR_SYSCALL && !ERR_peek_error())
		snprintf(why, sizeof(why), "%s",
			 errno ? strerror(errno)
			       : "the peer closed the connection without "
				 "TLS close_notify");
	else
		ssl_reason(why, sizeof(why));
	pthread_mutex_lock(&wires_lock);
	if (!w->fault[0])
		snprintf(w->fault, sizeof(w->fault), "TLS %s: %.160s", dir,
			 why);
	pthread_mutex_unlock(&wires_lock);
}

/* An end of input, not a broken record: the peer's TCP end without its
 * close_notify (also what a shutdown of our own socket reads as). */
static bool just_eof(int e)
{
	return (e == SSL_ERROR_SYSCALL && !ERR_peek_error() && !errno) ||
	       (e == SSL_ERROR_SSL &&
		ERR_GET_REASON(ERR_peek_error()) ==
			SSL_R_UNEXPECTED_EOF_WHILE_READING);
}

ssize_t tls_conn_read(struct tls_conn *t, void *buf, size_t len)
{
	struct sigpipe_guard g;
	int n, e = 0;

	size_t got = 0;

	sigpipe_block(&g); /* an alert may go out */
	/* what one read brought in: as many records as are there and fit
	 * (a sender writes whole records, so the rest of one comes) */
	ERR_clear_error();
	do {
		errno = 0;
		n = SSL_read(t->ssl, (uint8_t *)buf + got,
			     len - got > INT32_MAX ? INT32_MAX
						   : (int)(len - got));
		if (n > 0)
			got += (size_t)n;
	} while (n > 0 && len - got >= TLS_RECORD && SSL_has_pending(t->ssl));
	if (n <= 0)
		e = SSL_get_error(t->ssl, n);
	sigpipe_restore(&g);
	if (got)
		return (ssize_t)got; /* an error comes again on the next */
	if (e == SSL_ERROR_ZERO_RETURN)
		return 0;
	conn_fault(t->w, e, "receiving");
	if (just_eof(e)) {
		ERR_clear_error();
		return 0;
	}
	ERR_clear_error();
	return e == SSL_ERROR_SYSCALL && errno ? -errno : -EBADMSG;
}

/* SSL_write all of p, blocking (SIGPIPE blocked by the caller). */
static int conn_put(struct tls_conn *t, const void *p, size_t len)
{
	size_t done = 0;
	int e;

	while (done < len) {
		size_t w = 0;

		errno = 0;
		if (SSL_write_ex(t->ssl, (const uint8_t *)p + done, len - done,
				 &w)) {
			done += w;
			continue;
		}
		e = SSL_get_error(t->ssl, 0);
		conn_fault(t->w, e, "sending");
		ERR_clear_error();
		return e == SSL_ERROR_SYSCALL && errno ? -errno : -EPIPE;
	}
	return 0;
}

/* The first direct write: records go out through a buffer, many in one
 * system call, not one call per 16 KiB record. */
static int conn_buffer_writes(struct tls_conn *t)
{
	BIO *buf, *sock;

	t->wbuf = malloc(TLS_RECORD);
	if (t->wbuf && BIO_get_ktls_send(SSL_get_wbio(t->ssl)) > 0)
		return 0; /* the kernel encrypts: records go to it as they are */
	buf = BIO_new(BIO_f_buffer());
	sock = BIO_new_socket(t->fd, BIO_NOCLOSE);
	if (!buf || !sock || !t->wbuf ||
	    BIO_set_write_buffer_size(buf, WRITE_BUF) <= 0) {
		BIO_free(buf);
		BIO_free(sock);
		free(t->wbuf);
		t->wbuf = NULL;
		return -ENOMEM;
	}
	BIO_push(buf, sock);
	SSL_set0_wbio(t->ssl, buf);
	return 0;
}

/* What the buffer holds, to the socket (SIGPIPE blocked). */
static int conn_flush(struct tls_conn *t)
{
	errno = 0;
	if (BIO_flush(SSL_get_wbio(t->ssl)) > 0)
		return 0;
	pthread_mutex_lock(&wires_lock);
	if (!t->w->fault[0])
		snprintf(t->w->fault, sizeof(t->w->fault), "TLS sending: %s",
			 strerror(errno ? errno : EPIPE));
	pthread_mutex_unlock(&wires_lock);
	return errno ? -errno : -EPIPE;
}

/* Gather iov into whole records (SIGPIPE blocked). */
static int conn_writev(struct tls_conn *t, const struct iovec *iov, int n)
{
	size_t have = 0;
	int i, rc;

	for (i = 0; i < n; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t left = iov[i].iov_len;

		while (left) {
			size_t k;

			if (!have && left >= TLS_RECORD) {
				/* whole records straight from the caller */
				k = left - left % TLS_RECORD;
				rc = conn_put(t, p, k);
				if (rc)
					return rc;
			} else {
				k = TLS_RECORD - have < left ? TLS_RECORD - have
							     : left;
				memcpy(t->wbuf + have, p, k);
				have += k;
				if (have == TLS_RECORD) {
					rc = conn_put(t, t->wbuf, have);
					if (rc)
						return rc;
					have = 0;
				}
			}
			p += k;
			left -= k;
		}
	}
	rc = have ? conn_put(t, t->wbuf, have) : 0;
	return rc ? rc : conn_flush(t);
}

int tls_conn_writev(struct tls_conn *t, const struct iovec *iov, int n)
{
	struct sigpipe_guard g;
	int rc;

	if (!t->wbuf && conn_buffer_writes(t))
		return -ENOMEM;
	sigpipe_block(&g);
	ERR_clear_error();
	rc = conn_writev(t, iov, n);
	sigpipe_restore(&g);
	return rc;
}

static int relay_start(struct tls_conn *t, int *plain, struct ferry_error *err);

int tls_conn_relay(struct tls_conn *t, int *fd, struct ferry_error *err)
{
	int rc = relay_start(t, fd, err);

	t->ssl = NULL; /* the relay's now, or freed */
	tls_conn_free(t);
	return rc;
}

/* The session is up on t->fd: a socket pair, the engine's end in
 * *plain, a relay thread on the other, which owns the SSL object and the
 * socket from now on.  On failure the SSL object is freed and the socket
 * is still the caller's to close. */
static int relay_start(struct tls_conn *t, int *plain, struct ferry_error *err)
{
	struct relay *r = calloc(1, sizeof(*r));
	struct wire *w = t->w;
	pthread_attr_t attr;
	pthread_t th;
	int sv[2] = { -1, -1 }, one = 1, rc, tcp = t->fd;

	if (r) {
		r->up = malloc(RELAY_BUF);
		r->down = malloc(RELAY_BUF);
	}
	if (!r || !r->up || !r->down ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		rc = ferry_error_set(err, -ENOMEM,
				     "TLS: no memory or socket for the relay");
		goto fail;
	}
	setsockopt(tcp, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(tcp, F_SETFL, fcntl(tcp, F_GETFL) | O_NONBLOCK);
	fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
	r->ssl = t->ssl;
	r->tcp = tcp;
	r->pl = sv[1];
	r->w = w;
	/* listed from now on under the engine's end */
	pthread_mutex_lock(&wires_lock);
	w->fd = sv[0];
	w->ino = fd_ino(sv[0]);
	w->tcp = tcp;
	pthread_mutex_unlock(&wires_lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&th, &attr, relay_main, r);
	pthread_attr_destroy(&attr);
	if (rc) {
		pthread_mutex_lock(&wires_lock);
		w->fd = tcp; /* back under the socket, as the caller has it */
		w->ino = fd_ino(tcp);
		w->tcp = -1;
		pthread_mutex_unlock(&wires_lock);
		rc = ferry_error_set(err, -rc, "TLS: relay thread: %s",
				     strerror(rc));
		goto fail;
	}
	*plain = sv[0];
	return 0;
fail:
	if (sv[0] >= 0) {
		close(sv[0]);
		close(sv[1]);
	}
	if (r) {
		free(r->up);
		free(r->down);
	}
	free(r);
	SSL_free(t->ssl);
	return rc;
}

/* ---- the source's side ------------------------------------------------ */

static int ms_left(const struct timespec *until)
{
	struct timespec now;
	long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (until->tv_sec - now.tv_sec) * 1000 +
	     (until->tv_nsec - now.tv_nsec) / 1000000;
	return ms < 0 ? 0 : ms > INT32_MAX ? INT32_MAX : (int)ms;
}

/* Wait for what SSL asked (e), until `until`: 0, or -ETIMEDOUT. */
static int wait_for(int fd, int e, const struct timespec *until)
{
	struct pollfd p = {
		.fd = fd,
		.events = e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN,
	};
	int n;

	do
		n = poll(&p, 1, ms_left(until));
	while (n < 0 && errno == EINTR);
	return n > 0 ? 0 : -ETIMEDOUT;
}

static int client_fail(const char *host, SSL *ssl, int e, bool accepted_wait,
		       int timeout_ms, struct ferry_error *err)
{
	char why[256], words[320];
	long v = SSL_get_verify_result(ssl);

	if (e == -ETIMEDOUT)
		return ferry_error_set(err, -ETIMEDOUT,
				       "TLS with %s: %s within %d ms "
				       "(net-timeout)",
				       host,
				       accepted_wait
					       ? "the destination did not "
						 "accept this source"
					       : "no TLS handshake",
				       timeout_ms);
	if (!accepted_wait && v != X509_V_OK) {
		verify_words(v, words, sizeof(words));
		ERR_clear_error();
		return ferry_error_set(err, -EACCES,
				       "TLS with %s: the destination's "
				       "certificate %s",
				       host, words);
	}
	if (e == SSL_ERROR_ZERO_RETURN ||
	    (e == SSL_ERROR_SYSCALL && !ERR_peek_error()) ||
	    (e == SSL_ERROR_SSL &&
	     ERR_GET_REASON(ERR_peek_error()) ==
		     SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
		ERR_clear_error();
		return ferry_error_set(
			err, -ECONNREFUSED,
			"TLS with %s: the destination closed the connection "
			"%s",
			host,
			accepted_wait ? "after the handshake (this source's "
					"certificate is not on its tls-authz "
					"list, or it is not listening for a "
					"migration)"
				      : "during the handshake (it does not "
					"speak TLS, or refused this source)");
	}
	ssl_reason(why, sizeof(why));
	return ferry_error_set(err, -EACCES, "TLS with %s: %s (%s)", host,
			       accepted_wait ? "the destination refused this "
					       "source's credentials"
					     : "the handshake failed",
			       why);
}

int tls_client(struct tls_creds *c, const char *host, int fd, int timeout_ms,
	       struct tls_info *info, struct tls_conn **out,
	       struct ferry_error *err)
{
	struct tls_conn *t = conn_new(c, fd);
	struct sigpipe_guard g;
	struct timespec until;
	unsigned char ok = 0;
	struct in6_addr a6;
	struct in_addr a4;
	int n, e, rc = 0, fl = fcntl(fd, F_GETFL);

	*out = NULL;
	if (!t)
		return ferry_error_set(err, -ENOMEM, "TLS: out of memory");
	if (c->x509 && !host[0]) {
		tls_conn_free(t);
		return ferry_error_set(err, -EINVAL,
				       "TLS: no host name to check the "
				       "destination's certificate against "
				       "(a unix: URI names none): set "
				       "tls-hostname");
	}
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	if (c->x509) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);

		if (inet_pton(AF_INET, host, &a4) == 1 ||
		    inet_pton(AF_INET6, host, &a6) == 1) {
			X509_VERIFY_PARAM_set1_ip_asc(vp, host);
		} else {
			SSL_set_tlsext_host_name(t->ssl, host);
			SSL_set1_host(t->ssl, host);
		}
	}
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	sigpipe_block(&g);
	for (;;) {
		ERR_clear_error();
		n = SSL_connect(t->ssl);
		if (n == 1)
			break;
		e = SSL_get_error(t->ssl, n);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			rc = client_fail(host, t->ssl, e, false, timeout_ms,
					 err);
			break;
		}
		if (wait_for(fd, e, &until)) {
			rc = client_fail(host, t->ssl, -ETIMEDOUT, false,
					 timeout_ms, err);
			break;
		}
	}
	/* the destination's word that it took this source */
	while (!rc) {
		ERR_clear_error();
		n = SSL_read(t->ssl, &ok, 1);
		if (n == 1)
			break;
		e = SSL_get_error(t->ssl, n);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			rc = client_fail(host, t->ssl, e, true, timeout_ms,
					 err);
			break;
		}
		if (wait_for(fd, e, &until))
			rc = client_fail(host, t->ssl, -ETIMEDOUT, true,
					 timeout_ms, err);
	}
	sigpipe_restore(&g);
	fcntl(fd, F_SETFL, fl);
	if (!rc && ok != TLS_ACCEPTED)
		rc = ferry_error_set(err, -EPROTO,
				     "TLS with %s: the destination sent 0x%02x "
				     "where it accepts a source (0x%02x): not "
				     "a ferry destination",
				     host, ok, TLS_ACCEPTED);
	if (rc) {
		tls_conn_free(t);
		return rc;
	}
	t->up = true;
	fill_info(t->ssl, c, info);
	*out = t;
	return 0;
}

/* ---- the destination's side ------------------------------------------- */

struct tls_conn *tls_accept_new(struct tls_creds *c, int fd)
{
	return conn_new(c, fd);
}

/* Is the client's certificate (or PSK identity) on tls-authz? */
static bool authorized(const struct tls_creds *c, const char *subject)
{
	size_t i;

	if (!c->authz)
		return true;
	for (i = 0; c->authz[i]; i++)
		if (!fnmatch(c->authz[i], subject, 0))
			return true;
	return false;
}

static int refuse_why(char *why, size_t len, const char *fmt, const char *a)
{
	snprintf(why, len, fmt, a);
	return -1;
}

int tls_accept_step(struct tls_conn *a, short *events, struct tls_info *info,
		    char *why, size_t len)
{
	char reason[160], words[320];
	unsigned char ok = TLS_ACCEPTED;
	struct sigpipe_guard g;
	int n, e;

	sigpipe_block(&g);
	ERR_clear_error();
	n = SSL_accept(a->ssl);
	e = n == 1 ? 0 : SSL_get_error(a->ssl, n);
	if (n == 1) {
		fill_info(a->ssl, a->c, info);
		if (!authorized(a->c, info->peer)) {
			/* a close_notify: the client reads a refusal, not a
			 * broken link */
			SSL_shutdown(a->ssl);
			sigpipe_restore(&g);
			snprintf(why, len,
				 "TLS: the client '%s' is not on tls-authz "
				 "(%s)",
				 info->peer, a->c->authz_path);
			return -1;
		}
		ERR_clear_error();
		n = SSL_write(a->ssl, &ok, 1);
		e = n == 1 ? 0 : SSL_get_error(a->ssl, n);
	}
	sigpipe_restore(&g);
	if (n == 1) {
		a->up = true;
		return 1;
	}
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		*events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
		return 0;
	}
	if (SSL_get_verify_result(a->ssl) != X509_V_OK) {
		verify_words(SSL_get_verify_result(a->ssl), words,
			     sizeof(words));
		ERR_clear_error();
		return refuse_why(why, len, "TLS: the client's certificate %s",
				  words);
	}
	if (e == SSL_ERROR_SYSCALL && !ERR_peek_error())
		return refuse_why(why, len, "%s",
				  "TLS: the client closed during the "
				  "handshake");
	ssl_reason(reason, sizeof(reason));
	if (strstr(reason, "binder does not verify"))
		return refuse_why(why, len,
				  "TLS: the client's pre-shared key is not the "
				  "one in keys.psk (%s)",
				  reason);
	if (strstr(reason, "peer did not return a certificate"))
		return refuse_why(why, len, "%s",
				  "TLS: the client sent no certificate "
				  "(tls-creds holds a CA, so one is "
				  "required)");
	if (strstr(reason, "wrong version number") ||
	    strstr(reason, "http request") ||
	    strstr(reason, "packet length too long") ||
	    strstr(reason, "record layer failure"))
		return refuse_why(why, len,
				  "TLS: the client does not speak TLS (%s)",
				  reason);
	return refuse_why(why, len, "TLS: the handshake failed (%s)", reason);
}

ssize_t tls_conn_read_nb(struct tls_conn *t, void *buf, size_t len,
			 short *events, char *why, size_t wlen)
{
	struct sigpipe_guard g;
	char reason[160];
	int n, e = 0;

	sigpipe_block(&g);
	ERR_clear_error();
	errno = 0;
	n = SSL_read(t->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
	if (n <= 0)
		e = SSL_get_error(t->ssl, n);
	sigpipe_restore(&g);
	if (n > 0)
		return n;
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		*events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
		return -EAGAIN;
	}
	if (e == SSL_ERROR_ZERO_RETURN || just_eof(e)) {
		ERR_clear_error();
		return 0;
	}
	snprintf(why, wlen, "TLS receiving its stream head: %s",
		 ssl_reason(reason, sizeof(reason)));
	return -EPROTO;
}

bool tls_conn_pending(const struct tls_conn *t)
{
	return SSL_has_pending(t->ssl) == 1;
}
