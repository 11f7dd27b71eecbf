/*
 * params_list.c - `ferry migrate --list-parameters`: every parameter of
 * migrate-set-parameters and every capability of migrate-set-capabilities,
 * with its unit, range and default.  Ranges and defaults are read from the
 * library (qmp_params, ferry_mig_params_default), so they cannot drift from
 * what the control socket accepts; tests/e2e/test_qmp.py checks the names
 * and defaults against a running guest's query-migrate-parameters.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "codec.h"
#include "ferry/migration.h"
#include "qmp_internal.h"
#include "size.h"

struct doc {
	const char *name;
	const char *unit; /* NULL: not a number */
	const char *what;
};

static const struct doc params[] = {
	{ "downtime-limit", "ms",
	  "the longest the guest may stay stopped at the switch-over" },
	{ "max-bandwidth", "bytes/s",
	  "the link's budget, 0 = unlimited (--set takes sizes: 200M)" },
	{ "cpu-throttle-initial", "%",
	  "auto-converge: the first throttle step" },
	{ "cpu-throttle-increment", "%", "auto-converge: each further step" },
	{ "max-cpu-throttle", "%", "auto-converge: the most it throttles" },
	{ "multifd-channels", "channels",
	  "with capability multifd: page connections beside the main one" },
	{ "multifd-compression", NULL,
	  "none | zlib | zstd | lz4: every page's codec (none: codec-auto "
	  "decides)" },
	{ "multifd-zlib-level", "level", "zlib's level (0: pages go raw)" },
	{ "multifd-zstd-level", "level", "zstd's level (0: zstd's default)" },
	{ "xbzrle-cache-size", "bytes",
	  "with capability xbzrle: the pages kept to encode deltas against" },
	{ "precopy-time-limit", "ms",
	  "ferry's: with postcopy-ram, pre-copy runs at most this long" },
	{ "net-timeout", "ms",
	  "ferry's: no byte moved for this long fails (or pauses) it; 0 = "
	  "never" },
	{ "codec-auto", NULL,
	  "ferry's: on|off: choose raw, lz4 or zstd per page from measured "
	  "costs" },
	{ "defer-hot-pages", NULL,
	  "ferry's: on|off: hold pages dirtied every pass back to the last" },
	{ "direct-io", NULL,
	  "on|off: with mapped-ram, pages bypass the page cache (O_DIRECT)" },
	{ "rdma-provider", NULL,
	  "ferry's: the libfabric provider for rdma: URIs (\"\": let it pick)" },
	{ "tls-creds", NULL,
	  "a directory of x509 certificates or keys.psk (\"\": no TLS)" },
	{ "tls-hostname", NULL,
	  "source: the name the destination's certificate must carry" },
	{ "tls-authz", NULL,
	  "destination: a file of the client subjects let in" },
};

static const struct qmp_param *range_of(const char *name)
{
	for (size_t i = 0; i < qmp_nparams; i++)
		if (!strcmp(qmp_params[i].name, name))
			return &qmp_params[i];
	return NULL;
}

/* The default of a parameter that is not a number, as --set takes it. */
static const char *default_of(const struct ferry_mig_params *p,
			      const char *name)
{
	if (!strcmp(name, "multifd-compression"))
		return p->compression ? codec_by_encoding(p->compression)->name
				      : "none";
	if (!strcmp(name, "codec-auto"))
		return p->codec_auto ? "on" : "off";
	if (!strcmp(name, "defer-hot-pages"))
		return p->defer_hot_pages ? "on" : "off";
	if (!strcmp(name, "direct-io"))
		return p->direct_io ? "on" : "off";
	if (!strcmp(name, "rdma-provider"))
		return p->rdma_provider;
	if (!strcmp(name, "tls-creds"))
		return p->tls_creds;
	if (!strcmp(name, "tls-hostname"))
		return p->tls_hostname;
	return p->tls_authz;
}

/* A number of the parameter's unit: sizes in binary units. */
static const char *num(const char *unit, uint64_t v, char *buf, size_t len)
{
	if ((!strcmp(unit, "bytes") || !strcmp(unit, "bytes/s")) && v) {
		if (v >= (1ull << 50))
			return "unlimited";
		return ferry_format_size(v, buf, len);
	}
	snprintf(buf, len, "%llu", (unsigned long long)v);
	return buf;
}

void cli_list_parameters(FILE *f)
{
#define CAP(n, field, w)                                       \
	{                                                      \
		n, offsetof(struct ferry_mig_params, field), w \
	}
	static const struct {
		const char *name;
		size_t offset; /* of its bool in ferry_mig_params */
		const char *what;
	} caps[] = {
		CAP("verify", verify,
		    "ferry's: the destination checks the digest of RAM and "
		    "devices"),
		CAP("auto-converge", auto_converge,
		    "throttle vCPUs that dirty faster than the link"),
		CAP("multifd", multifd,
		    "pages on multifd-channels connections"),
		CAP("xbzrle", xbzrle, "re-sent pages as deltas"),
		CAP("postcopy-ram", postcopy_ram,
		    "allow the switch to post-copy"),
		CAP("rdma-pin-all", rdma_pin_all,
		    "rdma: register all RAM up front"),
		CAP("mapped-ram", mapped_ram,
		    "file: each page at a fixed place; multifd writes and "
		    "reads at once"),
		CAP("lazy-restore", lazy_restore,
		    "ferry's: a mapped-ram restore runs the guest at once, "
		    "pages on demand"),
	};
#undef CAP
	struct ferry_mig_params p;
	char lo[32], hi[32], def[32];

	ferry_mig_params_default(&p);
	fprintf(f, "parameters (--set NAME=VALUE; QMP "
		   "migrate-set-parameters):\n");
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
		const struct qmp_param *r = range_of(params[i].name);

		if (r) {
			const char *fld = (const char *)&p + r->offset;
			uint64_t v =
				r->is_u64
					? *(const uint64_t *)(const void *)fld
					: *(const unsigned *)(const void *)fld;

			fprintf(f, "  %-24s %s, %s to %s, default %s\n",
				params[i].name, params[i].unit,
				num(params[i].unit, r->min, lo, sizeof(lo)),
				num(params[i].unit, r->max, hi, sizeof(hi)),
				num(params[i].unit, v, def, sizeof(def)));
		} else {
			const char *d = default_of(&p, params[i].name);

			fprintf(f, "  %-24s default %s%s%s\n", params[i].name,
				*d ? "" : "\"", d, *d ? "" : "\"");
		}
		fprintf(f, "  %-24s %s\n", "", params[i].what);
	}
	fprintf(f, "capabilities (--cap NAME=on|off; QMP "
		   "migrate-set-capabilities):\n");
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		fprintf(f, "  %-24s default %s: %s\n", caps[i].name,
			*(const bool *)(const void *)((const char *)&p +
						      caps[i].offset)
				? "on"
				: "off",
			caps[i].what);
	fprintf(f, "  %-24s always on: MIGRATION events are sent\n", "events");
	fprintf(f, "  %-24s always on: the destination answers on it\n",
		"return-path");
	fprintf(f, "  %-24s always on: post-copy's blocktime per vCPU\n",
		"postcopy-blocktime");
}
