/*
 * qmp_parse.c - what the control socket does with a client's bytes before
 * anything acts on them: the framing into JSON objects, each request's
 * shape, the capabilities negotiation, and the arguments of the commands
 * that take some, parsed into structs.  Nothing here touches a socket, the
 * guest or a migration, so the QMP fuzz target (tests/fuzz/fuzz_qmp.c)
 * runs all of it; qmp.c reads the socket and sends, qmp_commands.c acts.
 *
 * Input is a stream of JSON objects, not necessarily one per line, cut
 * anywhere by the socket; each complete object is a request.  Malformed
 * JSON gets an error reply and the client's buffer is dropped, as QEMU's
 * parser resets.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "ferry/stream.h"
#include "qmp_internal.h"
#include "size.h"

static int bad(struct qmp_error *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int bad(struct qmp_error *e, const char *fmt, ...)
{
	va_list ap;

	e->cls = NULL; /* GenericError */
	va_start(ap, fmt);
	vsnprintf(e->desc, sizeof(e->desc), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* The length of s without a UTF-8 sequence cut short at its end:
 * snprintf cuts a description at a byte, not at a character. */
static size_t utf8_whole(const char *s)
{
	size_t n = strlen(s), i = n, k = 0, need;
	unsigned char lead;

	while (i && k < 3 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
		i--, k++;
	if (!i)
		return n;
	lead = (unsigned char)s[i - 1];
	need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
	return k + 1 < need ? i - 1 : n;
}

json_t *qmp_error_reply(const char *cls, const char *desc, json_t *id)
{
	json_t *d = json_stringn(desc, utf8_whole(desc)), *r;

	if (!d) /* JSON cannot carry it, and the request needs a reply */
		d = json_string("(the error's description is not UTF-8)");
	r = json_pack("{s:{s:s,s:o}}", "error", "class", cls, "desc", d);
	if (r && id)
		json_object_set(r, "id", id);
	return r;
}

json_t *qmp_reply(json_t *ret, const struct qmp_error *e, json_t *id)
{
	json_t *r;

	if (!ret)
		return qmp_error_reply(e->cls ? e->cls : "GenericError",
				       e->desc, id);
	r = json_pack("{s:o}", "return", ret);
	if (r && id)
		json_object_set(r, "id", id);
	return r;
}

int qmp_input_push(struct qmp_input *in, const char *data, size_t n)
{
	char *b;

	if (in->len + n > QMP_MAX_INPUT)
		return -E2BIG; /* a client that never ends */
	b = realloc(in->buf, in->len + n + 1);
	if (!b)
		return -ENOMEM;
	in->buf = b;
	memcpy(in->buf + in->len, data, n);
	in->len += n;
	return 0;
}

void qmp_input_free(struct qmp_input *in)
{
	free(in->buf);
	in->buf = NULL;
	in->len = in->off = 0;
	in->negotiated = false;
}

/*
 * The length of the JSON value at p[0] ('{' or '['), or 0 when the input
 * ends before it does.  Brackets are counted outside strings, as QEMU's
 * JSON streamer does, so that a value cut anywhere (inside a string, an
 * escape, a number, true, a UTF-8 sequence) waits for its rest; whether
 * the whole is JSON is jansson's to say.
 */
static size_t value_len(const char *p, size_t n)
{
	bool str = false, esc = false;
	size_t i, depth = 0;

	for (i = 0; i < n; i++) {
		if (esc)
			esc = false;
		else if (str && p[i] == '\\')
			esc = true;
		else if (p[i] == '"')
			str = !str;
		else if (!str && (p[i] == '{' || p[i] == '['))
			depth++;
		else if (!str && (p[i] == '}' || p[i] == ']') && !--depth)
			return i + 1;
	}
	return 0;
}

static json_t *parse_error(struct qmp_input *in, const char *why)
{
	char desc[300];

	snprintf(desc, sizeof(desc), "JSON parse error, %s", why);
	in->off = in->len; /* drop the rest, like QEMU's parser */
	return qmp_error_reply("GenericError", desc, NULL);
}

/*
 * The next JSON value after in->off: returns it, or NULL with *reply set on
 * malformed JSON, or NULL alone when the input holds no whole value yet.
 */
static json_t *next_value(struct qmp_input *in, json_t **reply)
{
	json_error_t jerr;
	size_t n;
	json_t *v;

	while (in->off < in->len && strchr(" \t\r\n", in->buf[in->off]))
		in->off++;
	if (in->off == in->len)
		return NULL;
	if (in->buf[in->off] != '{' && in->buf[in->off] != '[') {
		*reply = parse_error(in, "'[' or '{' expected");
		return NULL;
	}
	n = value_len(in->buf + in->off, in->len - in->off);
	if (!n)
		return NULL; /* wait for the rest */
	v = json_loadb(in->buf + in->off, n, 0, &jerr);
	if (!v && json_error_code(&jerr) == json_error_numeric_overflow) {
		/* valid JSON with an integer past 64 bits: this request is
		 * refused, by its id, and the ones after it go on */
		json_t *req = json_loadb(in->buf + in->off, n,
					 JSON_DECODE_INT_AS_REAL, &jerr);

		if (req) {
			in->off += n;
			*reply = qmp_error_reply(
				"GenericError",
				"an integer in the request does not fit in "
				"64 bits",
				json_is_object(req) ? json_object_get(req, "id")
						    : NULL);
			json_decref(req);
			return NULL;
		}
	}
	if (!v) {
		*reply = parse_error(in, jerr.text);
		return NULL;
	}
	in->off += n;
	return v;
}

/* A request's shape and the negotiation: NULL when it is a command for
 * qmp_dispatch, else the reply. */
static json_t *check_request(struct qmp_input *in, struct qmp_request *r)
{
	json_t *req = r->req;
	json_t *cmd = json_is_object(req) ? json_object_get(req, "execute")
					  : NULL;

	r->id = json_is_object(req) ? json_object_get(req, "id") : NULL;
	r->args = json_is_object(req) ? json_object_get(req, "arguments")
				      : NULL;
	if (!json_is_object(req))
		return qmp_error_reply("GenericError",
				       "QMP input must be a JSON object", NULL);
	if (!json_is_string(cmd))
		return qmp_error_reply("GenericError",
				       "QMP input lacks member 'execute'",
				       r->id);
	if (r->args && !json_is_object(r->args))
		return qmp_error_reply("GenericError",
				       "QMP input member 'arguments' must be "
				       "an object",
				       r->id);
	r->cmd = json_string_value(cmd);
	if (!in->negotiated && strcmp(r->cmd, "qmp_capabilities"))
		return qmp_error_reply("CommandNotFound",
				       "Expecting capabilities negotiation "
				       "with 'qmp_capabilities'",
				       r->id);
	if (!strcmp(r->cmd, "qmp_capabilities")) {
		struct qmp_error e = { 0 };

		if (in->negotiated)
			return qmp_error_reply("CommandNotFound",
					       "Capabilities negotiation is "
					       "already complete, command "
					       "ignored",
					       r->id);
		in->negotiated = true;
		return qmp_reply(json_object(), &e, r->id);
	}
	return NULL;
}

int qmp_input_next(struct qmp_input *in, struct qmp_request *r)
{
	memset(r, 0, sizeof(*r));
	r->req = next_value(in, &r->reply);
	if (r->req) {
		r->reply = check_request(in, r);
		if (r->reply)
			r->cmd = NULL;
		return 1;
	}
	if (r->reply)
		return 1;
	/* keep what is left for the next bytes */
	memmove(in->buf, in->buf + in->off, in->len - in->off);
	in->len -= in->off;
	in->off = 0;
	return 0;
}

void qmp_request_done(struct qmp_request *r)
{
	json_decref(r->reply);
	json_decref(r->req);
	memset(r, 0, sizeof(*r));
}

/* Every argument must be one the command knows. */
static int only_args(json_t *args, const char *const *known,
		     struct qmp_error *e)
{
	const char *key;
	json_t *v;
	size_t i;

	json_object_foreach(args, key, v)
	{
		for (i = 0; known[i]; i++)
			if (!strcmp(key, known[i]))
				break;
		if (!known[i])
			return bad(e, "Parameter '%s' is unexpected", key);
	}
	return 0;
}

/* The "uri" argument of migrate, migrate-incoming and migrate-recover. */
static int uri_arg(json_t *args, const char *const *known, const char **uri,
		   struct qmp_error *e)
{
	json_t *v = args ? json_object_get(args, "uri") : NULL;

	if (args && only_args(args, known, e))
		return -EINVAL;
	if (!v)
		return bad(e, "Parameter 'uri' is missing");
	if (!json_is_string(v))
		return bad(e, "Invalid parameter type for 'uri', expected: "
			      "string");
	*uri = json_string_value(v);
	return 0;
}

int qmp_parse_migrate(json_t *args, struct qmp_migrate_args *out,
		      struct qmp_error *e)
{
	static const char *const known[] = { "uri", "detach", "blk",
					     "inc", "resume", NULL };
	json_t *resume, *blk;

	if (uri_arg(args, known, &out->uri, e))
		return -EINVAL;
	resume = json_object_get(args, "resume");
	blk = json_object_get(args, "blk");
	if (resume && !json_is_boolean(resume))
		return bad(e, "Invalid parameter type for 'resume', expected: "
			      "bool");
	out->resume = json_is_true(resume);
	out->blk = json_is_true(blk);
	return 0;
}

int qmp_parse_migrate_incoming(json_t *args, const char **uri,
			       struct qmp_error *e)
{
	static const char *const known[] = { "uri", NULL };

	return uri_arg(args, known, uri, e);
}

int qmp_parse_fdname(json_t *args, const char **name, struct qmp_error *e)
{
	static const char *const known[] = { "fdname", NULL };
	json_t *v = args ? json_object_get(args, "fdname") : NULL;

	if (args && only_args(args, known, e))
		return -EINVAL;
	if (!v)
		return bad(e, "Parameter 'fdname' is missing");
	if (!json_is_string(v))
		return bad(e, "Invalid parameter type for 'fdname', expected: "
			      "string");
	*name = json_string_value(v);
	return 0;
}

int qmp_parse_cont(json_t *args, bool *force, struct qmp_error *e)
{
	static const char *const known[] = { "x-force", NULL };
	json_t *v = args ? json_object_get(args, "x-force") : NULL;

	if (args && only_args(args, known, e))
		return -EINVAL;
	if (v && !json_is_boolean(v))
		return bad(e, "Invalid parameter type for 'x-force', "
			      "expected: bool");
	*force = json_is_true(v);
	return 0;
}

#define P(n, lo, hi, field, u64)                                         \
	{                                                                \
		n, lo, hi, offsetof(struct ferry_mig_params, field), u64 \
	}
const struct qmp_param qmp_params[] = {
	P("downtime-limit", 0, 2000000, downtime_limit_ms, true),
	P("max-bandwidth", 0, INT64_MAX, max_bandwidth, true),
	P("cpu-throttle-initial", 1, 99, cpu_throttle_initial, false),
	P("cpu-throttle-increment", 1, 99, cpu_throttle_increment, false),
	P("max-cpu-throttle", 1, 99, max_cpu_throttle, false),
	P("multifd-channels", 1, FERRY_STREAM_MAX_CHANNELS, multifd_channels,
	  false),
	P("multifd-zstd-level", 0, 20, zstd_level, false),
	P("multifd-zlib-level", 0, 9, zlib_level, false),
	P("xbzrle-cache-size", 4096, 1ull << 40, xbzrle_cache_size, true),
	P("precopy-time-limit", 0, 86400000, precopy_time_limit_ms, true),
	P("net-timeout", 0, 3600000, net_timeout_ms, true),
};
#undef P
const size_t qmp_nparams = sizeof(qmp_params) / sizeof(qmp_params[0]);

/* One migrate-set-parameters argument onto p. */
static int set_param(struct ferry_mig_params *p, const char *key, json_t *v,
		     struct qmp_error *e)
{
	const struct page_codec *c;
	const char *name;
	json_int_t x;
	size_t i;

	if (!strcmp(key, "codec-auto") || !strcmp(key, "defer-hot-pages") ||
	    !strcmp(key, "direct-io")) {
		if (!json_is_boolean(v))
			return bad(e,
				   "Invalid parameter type for '%s', "
				   "expected: bool",
				   key);
		if (!strcmp(key, "codec-auto"))
			p->codec_auto = json_is_true(v);
		else if (!strcmp(key, "direct-io"))
			p->direct_io = json_is_true(v);
		else
			p->defer_hot_pages = json_is_true(v);
		return 0;
	}
	if (!strcmp(key, "rdma-provider")) {
		name = json_string_value(v);
		if (!name || strlen(name) >= sizeof(p->rdma_provider) ||
		    strspn(name, "abcdefghijklmnopqrstuvwxyz"
				 "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				 "0123456789_;") != strlen(name))
			return bad(e, "Parameter 'rdma-provider' expects a "
				      "libfabric provider name such as verbs "
				      "or tcp (\"\" lets libfabric pick)");
		snprintf(p->rdma_provider, sizeof(p->rdma_provider), "%s",
			 name);
		return 0;
	}
	if (!strcmp(key, "tls-creds") || !strcmp(key, "tls-hostname") ||
	    !strcmp(key, "tls-authz")) {
		char *field = !strcmp(key, "tls-creds")	     ? p->tls_creds
			      : !strcmp(key, "tls-hostname") ? p->tls_hostname
							     : p->tls_authz;

		name = json_is_null(v) ? "" : json_string_value(v);
		if (!name)
			return bad(e,
				   "Invalid parameter type for '%s', "
				   "expected: string",
				   key);
		if (strlen(name) >= sizeof(p->tls_creds))
			return bad(e, "Parameter '%s' is longer than %zu bytes",
				   key, sizeof(p->tls_creds) - 1);
		snprintf(field, sizeof(p->tls_creds), "%s", name);
		return 0;
	}
	if (!strcmp(key, "multifd-compression")) {
		name = json_string_value(v);
		if (!name)
			return bad(e,
				   "Invalid parameter type for '%s', "
				   "expected: string",
				   key);
		c = strcmp(name, "none") ? codec_by_name(name) : NULL;
		if (strcmp(name, "none") && !c)
			return bad(e, "Parameter 'multifd-compression' "
				      "expects none, zlib, zstd or lz4");
		p->compression = c ? c->encoding : 0;
		return 0;
	}
	for (i = 0; i < qmp_nparams; i++)
		if (!strcmp(key, qmp_params[i].name))
			break;
	if (i == qmp_nparams)
		return bad(e, "Parameter '%s' is unexpected", key);
	if (!json_is_integer(v))
		return bad(e,
			   "Invalid parameter type for '%s', expected: integer",
			   key);
	x = json_integer_value(v);
	if (x < 0 || (uint64_t)x < qmp_params[i].min ||
	    (uint64_t)x > qmp_params[i].max)
		return bad(e,
			   "Parameter '%s' expects a value from %llu to %llu",
			   key, (unsigned long long)qmp_params[i].min,
			   (unsigned long long)qmp_params[i].max);
	if (qmp_params[i].is_u64)
		*(uint64_t *)((char *)p + qmp_params[i].offset) = (uint64_t)x;
	else
		*(unsigned *)((char *)p + qmp_params[i].offset) = (unsigned)x;
	return 0;
}

int qmp_parse_params(json_t *args, struct ferry_mig_params *p,
		     struct qmp_error *e)
{
	struct ferry_mig_params n = *p;
	const char *key;
	json_t *v;

	json_object_foreach(args, key, v)
	{
		if (set_param(&n, key, v, e))
			return -EINVAL;
	}
	*p = n;
	return 0;
}

int qmp_parse_caps(json_t *args, struct ferry_mig_params *p,
		   struct qmp_error *e)
{
	static const char *const known[] = { "capabilities", NULL };
	json_t *list = args ? json_object_get(args, "capabilities") : NULL;
	struct ferry_mig_params n = *p;
	json_t *item;
	size_t i;

	if (args && only_args(args, known, e))
		return -EINVAL;
	if (!json_is_array(list))
		return bad(e, "Parameter 'capabilities' is missing or not a "
			      "list");
	json_array_foreach(list, i, item)
	{
		json_t *name = json_object_get(item, "capability");
		json_t *state = json_object_get(item, "state");
		const char *s;
		bool on;

		if (!json_is_string(name) || !json_is_boolean(state))
			return bad(e, "Each capability is {\"capability\": "
				      "string, \"state\": bool}");
		s = json_string_value(name);
		on = json_is_true(state);
		if (!strcmp(s, "verify"))
			n.verify = on;
		else if (!strcmp(s, "auto-converge"))
			n.auto_converge = on;
		else if (!strcmp(s, "multifd"))
			n.multifd = on;
		else if (!strcmp(s, "xbzrle"))
			n.xbzrle = on;
		else if (!strcmp(s, "postcopy-ram"))
			n.postcopy_ram = on;
		else if (!strcmp(s, "rdma-pin-all"))
			n.rdma_pin_all = on;
		else if (!strcmp(s, "mapped-ram"))
			n.mapped_ram = on;
		else if (!strcmp(s, "lazy-restore"))
			n.lazy_restore = on;
		else if (!strcmp(s, "events") || !strcmp(s, "return-path") ||
			 !strcmp(s, "postcopy-blocktime")) {
			/* always on in ferry: accepted as such */
			if (!on)
				return bad(
					e,
					"Capability '%s' is always on in "
					"ferry: %s",
					s,
					s[0] == 'e' ? "it always sends the "
						      "MIGRATION event"
					: s[0] == 'r'
						? "the destination's verdict "
						  "and post-copy's page "
						  "requests travel on the "
						  "return path"
						: "post-copy's blocktime is "
						  "always measured");
		} else if (on)
			return bad(e,
				   "Capability '%s' is not supported by "
				   "ferry yet",
				   s);
	}
	*p = n;
	return 0;
}

/* The next word of *p (at most len - 1 bytes), *p past it. */
static bool hmp_word(const char **p, char *w, size_t len)
{
	size_t n = 0;

	while (**p == ' ' || **p == '\t')
		(*p)++;
	while (**p && **p != ' ' && **p != '\t' && **p != '\n' && **p != '\r') {
		if (n + 1 < len)
			w[n++] = **p;
		(*p)++;
	}
	w[n] = '\0';
	return n > 0;
}

/* HMP's on/off (and yes/no, true/false). */
static int hmp_bool(const char *v, bool *on)
{
	if (!strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "yes"))
		*on = true;
	else if (!strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "no"))
		*on = false;
	else
		return -EINVAL;
	return 0;
}

/* A parameter's value as migrate-set-parameters takes it: a bool, a
 * string, or a number (with a size suffix for the sizes, as HMP has). */
static json_t *hmp_value(const char *name, const char *v, struct qmp_error *e)
{
	static const char *const strings[] = {
		"multifd-compression", "rdma-provider", "tls-creds",
		"tls-hostname",	       "tls-authz",	NULL
	};
	unsigned long long x;
	uint64_t size;
	char *end;
	bool on;
	size_t i;

	if (!strcmp(name, "codec-auto") || !strcmp(name, "defer-hot-pages") ||
	    !strcmp(name, "direct-io")) {
		if (hmp_bool(v, &on)) {
			bad(e, "Parameter '%s' expects on or off", name);
			return NULL;
		}
		return json_boolean(on);
	}
	for (i = 0; strings[i]; i++)
		if (!strcmp(name, strings[i]))
			return json_string(v);
	if (!strcmp(name, "max-bandwidth") ||
	    !strcmp(name, "xbzrle-cache-size")) {
		if (ferry_parse_size(v, &size) || size > INT64_MAX) {
			bad(e, "Parameter '%s' expects a size (like 100M)",
			    name);
			return NULL;
		}
		return json_integer((json_int_t)size);
	}
	errno = 0;
	x = strtoull(v, &end, 10);
	if (!*v || *end || errno || x > INT64_MAX) {
		bad(e, "Parameter '%s' expects a number", name);
		return NULL;
	}
	return json_integer((json_int_t)x);
}

int qmp_parse_hmp(const char *line, struct hmp_cmd *out, struct qmp_error *e)
{
	char cmd[64], name[64], value[256], extra[8];
	const char *p = line;
	json_t *v;
	bool on;

	memset(out, 0, sizeof(*out));
	if (!hmp_word(&p, cmd, sizeof(cmd)))
		return bad(e, "no command");
	if (!strcmp(cmd, "info")) {
		if (!hmp_word(&p, name, sizeof(name)))
			return bad(e, "info: which (status, migrate)?");
		if (hmp_word(&p, extra, sizeof(extra)))
			return bad(e, "info %s: too many arguments", name);
		if (!strcmp(name, "status"))
			out->kind = HMP_INFO_STATUS;
		else if (!strcmp(name, "migrate"))
			out->kind = HMP_INFO_MIGRATE;
		else
			return bad(e,
				   "info %s: ferry has info status and info "
				   "migrate",
				   name);
		return 0;
	}
	if (strcmp(cmd, "migrate_set_parameter") &&
	    strcmp(cmd, "migrate_set_capability"))
		return bad(e, "unknown command: '%s'", cmd);
	if (!hmp_word(&p, name, sizeof(name)) ||
	    !hmp_word(&p, value, sizeof(value)))
		return bad(e, "%s: NAME VALUE expected", cmd);
	if (hmp_word(&p, extra, sizeof(extra)))
		return bad(e, "%s: too many arguments", cmd);
	if (!strcmp(cmd, "migrate_set_capability")) {
		if (hmp_bool(value, &on))
			return bad(e, "Capability '%s' expects on or off",
				   name);
		out->kind = HMP_SET_CAPABILITY;
		out->args = json_pack("{s:[{s:s,s:b}]}", "capabilities",
				      "capability", name, "state", on);
		return out->args ? 0 : bad(e, "out of memory");
	}
	v = hmp_value(name, value, e);
	if (!v)
		return -EINVAL;
	out->kind = HMP_SET_PARAMETER;
	out->args = json_object();
	if (!out->args || json_object_set_new(out->args, name, v)) {
		json_decref(out->args);
		out->args = NULL;
		return bad(e, "out of memory");
	}
	return 0;
}
