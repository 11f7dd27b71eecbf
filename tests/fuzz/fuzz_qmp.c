/*
 * fuzz_qmp.c - libFuzzer target for the control socket's JSON command
 * parser: the real framing, request checks, negotiation and argument
 * parsers of src/control/qmp_parse.c, without a socket or a guest.
 *
 * Byte 0: bit 7 set starts the client negotiated; bits 0-6 are the largest
 * piece (1 to 128 bytes) the rest arrives in.  The rest is what a client
 * sends.  It goes through the server's input twice, whole and in pieces of
 * pseudo-random sizes, as recv() may cut it.  Each request the input gives
 * is answered as the server would, but a command that passed the checks
 * only has its arguments parsed (migrate, migrate-incoming,
 * migrate-set-parameters, migrate-set-capabilities); the rest answer
 * {"return": {}}, standing in for the migration.
 *
 * Besides memory errors and leaks, the target aborts when: a request gets
 * no reply, or one that is not valid JSON with exactly one of "return" or
 * "error" {"class", "desc"} and the request's id; a command other than
 * qmp_capabilities passes before negotiation; the input in pieces is
 * answered otherwise than whole (up to the first malformed JSON, which
 * drops what was received); a parser accepts an argument it does not
 * know, does not store a value it accepted, or changes anything when it
 * fails.
 */
#include <errno.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "qmp_internal.h"

struct transcript {
	char *text; /* the replies, one a line */
	size_t len;
	bool broken; /* malformed JSON was answered: the input was dropped */
};

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_qmp: %s\n", what);
		abort();
	}
}

static void record(struct transcript *t, const char *s)
{
	size_t n = strlen(s);

	if (t->broken)
		return;
	t->text = realloc(t->text, t->len + n + 2);
	check(t->text != NULL, "out of memory");
	memcpy(t->text + t->len, s, n);
	t->len += n;
	t->text[t->len++] = '\n';
	t->text[t->len] = '\0';
}

/* {"return": ...} or {"error": {"class", "desc"}}, the id, valid JSON */
static void check_reply(json_t *reply, json_t *id, struct transcript *t)
{
	json_t *ret = json_object_get(reply, "return");
	json_t *err = json_object_get(reply, "error");
	json_t *cls = json_object_get(err, "class");
	json_t *desc = json_object_get(err, "desc");
	json_t *again;
	char *text;

	check(reply != NULL, "a request without a reply");
	check(json_is_object(reply), "a reply that is not an object");
	check(json_object_size(reply) == !!ret + !!err + !!id && !ret != !err,
	      "a reply without exactly one of return and error");
	if (err) {
		check(json_is_object(err) && json_object_size(err) == 2,
		      "an error that is not {class, desc}");
		check(json_is_string(cls) && (!strcmp(json_string_value(cls),
						      "GenericError") ||
					      !strcmp(json_string_value(cls),
						      "CommandNotFound")),
		      "an error of no QMP class");
		check(json_is_string(desc) && json_string_length(desc),
		      "an error without a description");
	}
	if (id)
		check(json_equal(json_object_get(reply, "id"), id),
		      "a reply that lost the request's id");
	text = json_dumps(reply, JSON_COMPACT);
	check(text != NULL, "a reply that does not print");
	again = json_loads(text, 0, NULL);
	check(again && json_equal(again, reply), "a reply that is not JSON");
	json_decref(again);
	record(t, text);
	free(text);
}

static bool same_params(const struct ferry_mig_params *a,
			const struct ferry_mig_params *b)
{
	return a->downtime_limit_ms == b->downtime_limit_ms &&
	       a->max_bandwidth == b->max_bandwidth &&
	       a->cpu_throttle_initial == b->cpu_throttle_initial &&
	       a->cpu_throttle_increment == b->cpu_throttle_increment &&
	       a->max_cpu_throttle == b->max_cpu_throttle &&
	       a->verify == b->verify && a->auto_converge == b->auto_converge &&
	       a->multifd == b->multifd &&
	       a->multifd_channels == b->multifd_channels &&
	       a->compression == b->compression &&
	       a->zstd_level == b->zstd_level &&
	       a->codec_auto == b->codec_auto &&
	       a->defer_hot_pages == b->defer_hot_pages &&
	       a->xbzrle == b->xbzrle &&
	       a->xbzrle_cache_size == b->xbzrle_cache_size &&
	       a->postcopy_ram == b->postcopy_ram &&
	       a->precopy_time_limit_ms == b->precopy_time_limit_ms &&
	       a->rdma_pin_all == b->rdma_pin_all &&
	       a->zlib_level == b->zlib_level &&
	       a->net_timeout_ms == b->net_timeout_ms &&
	       a->mapped_ram == b->mapped_ram && a->direct_io == b->direct_io &&
	       a->lazy_restore == b->lazy_restore &&
	       !strcmp(a->rdma_provider, b->rdma_provider) &&
	       !strcmp(a->tls_creds, b->tls_creds) &&
	       !strcmp(a->tls_hostname, b->tls_hostname) &&
	       !strcmp(a->tls_authz, b->tls_authz);
}

static void base_params(struct ferry_mig_params *p)
{
	memset(p, 0, sizeof(*p));
	p->downtime_limit_ms = 300;
	p->cpu_throttle_initial = 20;
	p->multifd_channels = 2;
	p->zstd_level = 1;
	p->codec_auto = true;
	p->xbzrle_cache_size = 64u << 20;
	strcpy(p->rdma_provider, "base");
	strcpy(p->tls_creds, "base-creds");
	strcpy(p->tls_hostname, "base-host");
	strcpy(p->tls_authz, "base-authz");
}

/* Where in the params the string a tls-* parameter sets is, or 0. */
static size_t tls_field(const char *key)
{
	if (!strcmp(key, "tls-creds"))
		return offsetof(struct ferry_mig_params, tls_creds);
	if (!strcmp(key, "tls-hostname"))
		return offsetof(struct ferry_mig_params, tls_hostname);
	if (!strcmp(key, "tls-authz"))
		return offsetof(struct ferry_mig_params, tls_authz);
	return 0;
}

static uint64_t get_param(const struct ferry_mig_params *p, size_t i)
{
	const char *f = (const char *)p + qmp_params[i].offset;

	return qmp_params[i].is_u64 ? *(const uint64_t *)(const void *)f
				    : *(const unsigned *)(const void *)f;
}

static void put_param(struct ferry_mig_params *p, size_t i, uint64_t v)
{
	char *f = (char *)p + qmp_params[i].offset;

	if (qmp_params[i].is_u64)
		*(uint64_t *)(void *)f = v;
	else
		*(unsigned *)(void *)f = (unsigned)v;
}

/* Each argument accepted is in its field; put the base's value back. */
static void undo_param(struct ferry_mig_params *p,
		       const struct ferry_mig_params *base, const char *key,
		       json_t *v)
{
	const struct page_codec *c;
	size_t i, at = tls_field(key);

	if (at) {
		char *tls = (char *)p + at;

		/* a string, or null for "" */
		check((json_is_null(v) && !tls[0]) ||
			      (json_is_string(v) &&
			       !strcmp(tls, json_string_value(v))),
		      "a tls parameter not set");
		strcpy(tls, (const char *)base + at);
	} else if (!strcmp(key, "direct-io")) {
		check(p->direct_io == json_is_true(v), "direct-io not set");
		p->direct_io = base->direct_io;
	} else if (!strcmp(key, "codec-auto")) {
		check(p->codec_auto == json_is_true(v), "codec-auto not set");
		p->codec_auto = base->codec_auto;
	} else if (!strcmp(key, "defer-hot-pages")) {
		check(p->defer_hot_pages == json_is_true(v),
		      "defer-hot-pages not set");
		p->defer_hot_pages = base->defer_hot_pages;
	} else if (!strcmp(key, "rdma-provider")) {
		check(json_is_string(v) &&
			      !strcmp(p->rdma_provider, json_string_value(v)),
		      "rdma-provider not set");
		strcpy(p->rdma_provider, base->rdma_provider);
	} else if (!strcmp(key, "multifd-compression")) {
		c = codec_by_name(json_string_value(v));
		check(json_is_string(v) &&
			      (c ? p->compression == c->encoding
				 : !strcmp(json_string_value(v), "none") &&
					       !p->compression),
		      "multifd-compression not set");
		p->compression = base->compression;
	} else {
		for (i = 0; i < qmp_nparams; i++)
			if (!strcmp(key, qmp_params[i].name))
				break;
		check(i < qmp_nparams, "an unknown parameter accepted");
		check(json_is_integer(v) && json_integer_value(v) >= 0 &&
			      (uint64_t)json_integer_value(v) >=
				      qmp_params[i].min &&
			      (uint64_t)json_integer_value(v) <=
				      qmp_params[i].max,
		      "a parameter out of range accepted");
		check(get_param(p, i) == (uint64_t)json_integer_value(v),
		      "a parameter not set");
		put_param(p, i, get_param(base, i));
	}
}

static json_t *set_params(json_t *args, struct qmp_error *e)
{
	struct ferry_mig_params base, p;
	const char *key;
	json_t *v;

	base_params(&base);
	base_params(&p);
	if (qmp_parse_params(args, &p, e)) {
		check(same_params(&p, &base), "a failed parse changed params");
		return NULL;
	}
	json_object_foreach(args, key, v)
	{
		undo_param(&p, &base, key, v);
	}
	check(same_params(&p, &base), "a parameter not asked for changed");
	return json_object();
}

static bool *cap(struct ferry_mig_params *p, const char *name)
{
	if (!strcmp(name, "verify"))
		return &p->verify;
	if (!strcmp(name, "auto-converge"))
		return &p->auto_converge;
	if (!strcmp(name, "multifd"))
		return &p->multifd;
	if (!strcmp(name, "xbzrle"))
		return &p->xbzrle;
	if (!strcmp(name, "postcopy-ram"))
		return &p->postcopy_ram;
	if (!strcmp(name, "rdma-pin-all"))
		return &p->rdma_pin_all;
	if (!strcmp(name, "mapped-ram"))
		return &p->mapped_ram;
	if (!strcmp(name, "lazy-restore"))
		return &p->lazy_restore;
	return NULL;
}

/* A capability ferry always has on: accepted on, refused off. */
static bool always_on(const char *name)
{
	return !strcmp(name, "events") || !strcmp(name, "return-path") ||
	       !strcmp(name, "postcopy-blocktime");
}

static json_t *set_caps(json_t *args, struct qmp_error *e)
{
	struct ferry_mig_params base, p, want;
	json_t *item;
	size_t i;

	base_params(&base);
	base_params(&p);
	if (qmp_parse_caps(args, &p, e)) {
		check(same_params(&p, &base), "a failed parse changed caps");
		return NULL;
	}
	check(json_object_size(args) == 1, "an unknown argument accepted");
	/* the last state given for each capability */
	base_params(&want);
	json_array_foreach(json_object_get(args, "capabilities"), i, item)
	{
		const char *n =
			json_string_value(json_object_get(item, "capability"));
		json_t *state = json_object_get(item, "state");
		bool *f;

		check(n && json_is_boolean(state), "a malformed item accepted");
		f = cap(&want, n);
		check(f || !json_is_true(state) || always_on(n),
		      "an unknown capability turned on");
		check(!always_on(n) || json_is_true(state),
		      "an always-on capability turned off");
		if (f)
			*f = json_is_true(state);
	}
	check(same_params(&p, &want), "capabilities other than asked");
	return json_object();
}

/* Whether every argument is one of known. */
static bool only(json_t *args, const char *const *known)
{
	const char *key;
	json_t *v;
	size_t i;

	json_object_foreach(args, key, v)
	{
		for (i = 0; known[i] && strcmp(key, known[i]); i++)
			;
		if (!known[i])
			return false;
	}
	return true;
}

/* The command's arguments through the real parser; its reply stands in
 * for the command's. */
static json_t *dry_dispatch(const char *cmd, json_t *args, struct qmp_error *e)
{
	static const char *const migrate[] = { "uri", "detach", "blk",
					       "inc", "resume", NULL };
	struct qmp_migrate_args m;
	const char *uri;

	if (!strcmp(cmd, "migrate")) {
		if (qmp_parse_migrate(args, &m, e))
			return NULL;
		check(m.uri && m.uri == json_string_value(
						json_object_get(args, "uri")),
		      "migrate: uri lost");
		check(only(args, migrate), "migrate: an unknown argument");
		check(m.resume == json_is_true(json_object_get(args, "resume")),
		      "migrate: resume lost");
		check(!json_object_get(args, "resume") ||
			      json_is_boolean(json_object_get(args, "resume")),
		      "migrate: a resume that is not a bool accepted");
		return json_object();
	}
	if (!strcmp(cmd, "migrate-incoming")) {
		if (qmp_parse_migrate_incoming(args, &uri, e))
			return NULL;
		check(json_object_size(args) == 1 &&
			      uri == json_string_value(
					     json_object_get(args, "uri")),
		      "migrate-incoming: other arguments accepted");
		return json_object();
	}
	if (!strcmp(cmd, "getfd") || !strcmp(cmd, "closefd")) {
		const char *name;

		if (qmp_parse_fdname(args, &name, e))
			return NULL;
		check(json_object_size(args) == 1 &&
			      name == json_string_value(
					      json_object_get(args, "fdname")),
		      "getfd: other arguments accepted");
		return json_object();
	}
	if (!strcmp(cmd, "cont")) {
		static const char *const cont[] = { "x-force", NULL };
		bool force;

		if (qmp_parse_cont(args, &force, e))
			return NULL;
		check(!args || only(args, cont), "cont: an unknown argument");
		check(force == json_is_true(json_object_get(args, "x-force")),
		      "cont: x-force lost");
		return json_object();
	}
	if (!strcmp(cmd, "human-monitor-command")) {
		json_t *line = json_object_get(args, "command-line");
		struct qmp_error he = { 0 };
		struct hmp_cmd h;
		json_t *r = NULL;

		if (!json_is_string(line))
			return json_string("");
		if (qmp_parse_hmp(json_string_value(line), &h, &he)) {
			check(he.desc[0] && !h.args,
			      "hmp: a failure without its text, or with "
			      "arguments");
			return json_string("");
		}
		check((h.kind == HMP_INFO_STATUS ||
		       h.kind == HMP_INFO_MIGRATE) == !h.args,
		      "hmp: arguments for an info command, or none for a set");
		/* what a set command gives goes through the real parsers */
		if (h.kind == HMP_SET_PARAMETER)
			r = set_params(h.args, &he);
		else if (h.kind == HMP_SET_CAPABILITY)
			r = set_caps(h.args, &he);
		json_decref(r);
		json_decref(h.args);
		return json_string("");
	}
	if (!strcmp(cmd, "migrate-set-parameters"))
		return set_params(args, e);
	if (!strcmp(cmd, "migrate-set-capabilities"))
		return set_caps(args, e);
	return json_object();
}

/* Whether a reply without a request refuses an integer past 64 bits (the
 * other such replies answer malformed JSON). */
static bool is_big_integer(json_t *reply)
{
	const char *desc = json_string_value(
		json_object_get(json_object_get(reply, "error"), "desc"));

	check(desc != NULL, "a request that failed without an error");
	return !strcmp(desc, "an integer in the request does not fit in 64 "
			     "bits");
}

/* Take and answer every complete request in the input. */
static void answer(struct qmp_input *in, struct transcript *t)
{
	struct qmp_request r;

	for (;;) {
		bool negotiated = in->negotiated;
		json_t *exec;

		if (!qmp_input_next(in, &r))
			break;
		exec = json_object_get(r.req, "execute");
		if (!r.req && is_big_integer(r.reply)) {
			/* valid JSON with an integer past 64 bits: refused by
			 * its id, the input goes on */
			check_reply(r.reply, json_object_get(r.reply, "id"), t);
			check(json_object_get(r.reply, "error") != NULL,
			      "an integer past 64 bits without an error");
			check(in->negotiated == negotiated,
			      "negotiated by a refused request");
		} else if (!r.req) {
			/* malformed JSON: answered, the input dropped */
			check(in->off == in->len, "malformed JSON kept");
			check_reply(r.reply, NULL, t);
			t->broken = true;
		} else if (r.reply) {
			check(!r.cmd, "a command answered and dispatched");
			check_reply(r.reply, json_object_get(r.req, "id"), t);
			check(!json_object_get(r.reply, "return") ||
				      (!negotiated && in->negotiated &&
				       json_is_string(exec) &&
				       !strcmp(json_string_value(exec),
					       "qmp_capabilities")),
			      "a return without a command");
			check(in->negotiated == negotiated ||
				      json_object_get(r.reply, "return"),
			      "negotiated without a return");
		} else {
			struct qmp_error e = { 0 };

			check(negotiated, "a command before negotiation");
			check(r.cmd && json_is_string(exec) &&
				      r.cmd == json_string_value(exec) &&
				      strcmp(r.cmd, "qmp_capabilities"),
			      "dispatched what is not a command");
			check(r.args == json_object_get(r.req, "arguments") &&
				      (!r.args || json_is_object(r.args)),
			      "arguments that are not an object");
			check(r.id == json_object_get(r.req, "id"),
			      "the request's id lost");
			r.reply = qmp_reply(dry_dispatch(r.cmd, r.args, &e), &e,
					    r.id);
			check_reply(r.reply, r.id, t);
		}
		qmp_request_done(&r);
	}
}

static void run(const uint8_t *data, size_t size, bool negotiated, size_t piece,
		struct transcript *t, struct qmp_input *in)
{
	uint32_t x = (uint32_t)piece * 2654435761u + 1;
	size_t at = 0;

	memset(in, 0, sizeof(*in));
	in->negotiated = negotiated;
	while (at < size) {
		size_t n = size - at;

		if (piece) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			n = 1 + x % piece < n ? 1 + x % piece : n;
		}
		check(!qmp_input_push(in, (const char *)data + at, n),
		      "input refused");
		at += n;
		answer(in, t);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct transcript whole = { 0 }, pieces = { 0 };
	struct qmp_input a, b;
	bool negotiated;

	if (size < 1 || size > QMP_MAX_INPUT)
		return 0;
	negotiated = data[0] & 0x80;
	run(data + 1, size - 1, negotiated, 0, &whole, &a);
	run(data + 1, size - 1, negotiated, 1 + (data[0] & 0x7f), &pieces, &b);
	if (whole.len != pieces.len ||
	    (whole.len && memcmp(whole.text, pieces.text, whole.len))) {
		fprintf(stderr, "whole:\n%s\nin pieces:\n%s\n",
			whole.text ? whole.text : "",
			pieces.text ? pieces.text : "");
		check(false,
		      "the input in pieces answered otherwise than whole");
	}
	if (!whole.broken)
		check(a.len == b.len &&
			      (!a.len || !memcmp(a.buf, b.buf, a.len)),
		      "the input in pieces left other bytes waiting");
	qmp_input_free(&a);
	qmp_input_free(&b);
	free(whole.text);
	free(pieces.text);
	return 0;
}
