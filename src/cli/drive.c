/* drive.c - set parameters and capabilities, migrate, watch progress. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "drive.h"
#include "size.h"

int drive_add_set(struct drive_opts *o, const char *arg)
{
	const char *eq = strchr(arg, '=');

	if (!eq || eq == arg || !eq[1])
		return cli_fail("--set %s: expected PARAM=VALUE, like "
				"downtime-limit=100",
				arg);
	if (o->nsets == DRIVE_MAX_OPTS)
		return cli_fail("--set: at most %d", DRIVE_MAX_OPTS);
	o->sets[o->nsets++] = arg;
	return 0;
}

int drive_add_cap(struct drive_opts *o, const char *arg)
{
	const char *eq = strchr(arg, '=');

	if (!eq || eq == arg || (strcmp(eq + 1, "on") && strcmp(eq + 1, "off")))
		return cli_fail("--cap %s: expected NAME=on or NAME=off, like "
				"auto-converge=on",
				arg);
	if (o->ncaps == DRIVE_MAX_OPTS)
		return cli_fail("--cap: at most %d", DRIVE_MAX_OPTS);
	o->caps[o->ncaps++] = arg;
	return 0;
}

int drive_set_mode(struct drive_opts *o, const char *arg)
{
	if (!strcmp(arg, "precopy"))
		o->mode = DRIVE_PRECOPY;
	else if (!strcmp(arg, "postcopy"))
		o->mode = DRIVE_POSTCOPY;
	else if (!strcmp(arg, "hybrid"))
		o->mode = DRIVE_HYBRID;
	else
		return cli_fail("--mode %s: expected precopy, postcopy or "
				"hybrid",
				arg);
	if (o->mode != DRIVE_PRECOPY && drive_add_cap(o, "postcopy-ram=on"))
		return 1;
	if (o->mode == DRIVE_HYBRID) {
		int i;

		for (i = 0; i < o->nsets; i++)
			if (!strncmp(o->sets[i], "precopy-time-limit=", 19))
				return 0;
		return drive_add_set(o, "precopy-time-limit=2000");
	}
	return 0;
}

int drive_option(struct drive_opts *o, int opt, const char *arg)
{
	if (opt == 's')
		return drive_add_set(o, arg);
	if (opt == 'c')
		return drive_add_cap(o, arg);
	return drive_set_mode(o, arg);
}

/* A --set value as QMP wants it: the string parameters as given, on and
 * off as booleans, sizes ("200M") and numbers as integers, and anything
 * else as a string (the guest's QMP says if the type is wrong). */
json_t *drive_set_value(const char *name, const char *v)
{
	static const char *const strings[] = {
		"tls-creds",	       "tls-hostname",	"tls-authz",
		"multifd-compression", "rdma-provider", NULL
	};
	uint64_t n;
	char *end;
	int i;

	for (i = 0; strings[i]; i++)
		if (!strcmp(name, strings[i]))
			return json_string(v);
	if (!strcmp(v, "on") || !strcmp(v, "true"))
		return json_true();
	if (!strcmp(v, "off") || !strcmp(v, "false"))
		return json_false();
	n = strtoull(v, &end, 10);
	if (*v && (!*end || !ferry_parse_size(v, &n)))
		return json_integer((json_int_t)n);
	return json_string(v);
}

int drive_apply(struct qmpc *c, const struct drive_opts *o, bool params,
		char *err, size_t errlen)
{
	json_t *args, *caps, *r;
	int i;

	if (params && o->nsets) {
		args = json_object();
		for (i = 0; i < o->nsets; i++) {
			const char *eq = strchr(o->sets[i], '=');
			char name[128];

			snprintf(name, sizeof(name), "%.*s",
				 (int)(eq - o->sets[i]), o->sets[i]);
			json_object_set_new(args, name,
					    drive_set_value(name, eq + 1));
			if (!json_object_get(args, name)) {
				json_decref(args);
				snprintf(err, errlen, "--set %s: out of memory",
					 o->sets[i]);
				return -ENOMEM;
			}
		}
		r = qmpc_call(c, "migrate-set-parameters", args, err, errlen);
		if (!r)
			return -EINVAL;
		json_decref(r);
	}
	if (o->ncaps) {
		caps = json_array();
		for (i = 0; i < o->ncaps; i++) {
			const char *eq = strchr(o->caps[i], '=');

			json_array_append_new(
				caps,
				json_pack("{s:s%,s:b}", "capability",
					  o->caps[i], (size_t)(eq - o->caps[i]),
					  "state", !strcmp(eq + 1, "on")));
		}
		r = qmpc_call(c, "migrate-set-capabilities",
			      json_pack("{s:o}", "capabilities", caps), err,
			      errlen);
		if (!r)
			return -EINVAL;
		json_decref(r);
	}
	return 0;
}

static json_int_t num(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

/* Seconds as "12.3 s" or "4 min 05 s". */
static void fmt_time(double s, char *buf, size_t len)
{
	if (s < 100)
		snprintf(buf, len, "%.1f s", s);
	else
		snprintf(buf, len, "%d min %02d s", (int)(s / 60), (int)s % 60);
}

/*
 * One progress line over the last (its length was `shown`): status,
 * percent of RAM sent from what remains, bytes sent, rate, elapsed, an
 * estimate of what is left at that rate, the iteration, and the expected
 * downtime once an iteration has measured it.  Returns its length.
 */
static int progress_line(json_t *r, json_t *ram, int shown)
{
	double total = (double)num(ram, "total");
	double left = (double)num(ram, "remaining");
	double mbps = json_number_value(json_object_get(ram, "mbps"));
	double elapsed = (double)num(r, "total-time") / 1e3;
	json_int_t iter = num(ram, "iterations");
	char sent[32], el[32], eta[32], dt[32], line[256];
	int n;

	ferry_format_size((uint64_t)num(ram, "transferred"), sent,
			  sizeof(sent));
	fmt_time(elapsed, el, sizeof(el));
	if (mbps > 0 && left > 0)
		fmt_time(left * 8 / (mbps * 1e6), eta, sizeof(eta));
	else
		snprintf(eta, sizeof(eta), "-");
	if (iter > 0 && json_object_get(r, "expected-downtime"))
		snprintf(dt, sizeof(dt), "%lld ms",
			 (long long)num(r, "expected-downtime"));
	else
		snprintf(dt, sizeof(dt), "-");
	n = snprintf(
		line, sizeof(line),
		"%s %.1f%%, %s sent, %.0f Mbit/s, %s, left ~%s, "
		"iteration %lld, expected downtime %s",
		json_string_value(json_object_get(r, "status")),
		total && strcmp(json_string_value(json_object_get(r, "status")),
				"setup")
			? 100.0 * (1 - left / total)
			: 0,
		sent, mbps, el, eta, (long long)iter, dt);
	if (n >= (int)sizeof(line))
		n = (int)sizeof(line) - 1;
	fprintf(stderr, "\r%s%*s", line, shown > n ? shown - n : 0, "");
	return n;
}

static int signals(const struct drive_opts *o)
{
	return o->interrupted ? (int)*o->interrupted : 0;
}

json_t *drive_migrate(struct qmpc *c, const struct drive_opts *o,
		      const char *uri, bool progress, char *err, size_t errlen)
{
	bool cancelled = false;
	int shown = 0; /* the progress line's length on the terminal */
	json_t *r;

	if (signals(o)) {
		snprintf(err, errlen, "interrupted before the migration began");
		return NULL;
	}
	r = qmpc_call(c, "migrate", json_pack("{s:s}", "uri", uri), err,
		      errlen);
	if (!r)
		return NULL;
	json_decref(r);
	if (o->mode == DRIVE_POSTCOPY) {
		/* taken at once, during the bulk pass */
		r = qmpc_call(c, "migrate-start-postcopy", NULL, err, errlen);
		if (!r)
			return NULL;
		json_decref(r);
	}
	for (bool told = false;;) {
		const char *status;
		json_t *ram;

		if (signals(o) > 1) {
			snprintf(err, errlen,
				 "interrupted again: not waiting for the "
				 "migration to be cancelled");
			return NULL;
		}
		if (signals(o) && !cancelled) {
			if (progress)
				fprintf(stderr, "\n");
			fprintf(stderr, "ferry: migrate: interrupted: "
					"cancelling the migration\n");
			r = qmpc_call(c, "migrate_cancel", NULL, err, errlen);
			if (!r)
				return NULL;
			json_decref(r);
			cancelled = true;
		}
		r = qmpc_call(c, "query-migrate", NULL, err, errlen);
		if (!r)
			return NULL;
		status = json_string_value(json_object_get(r, "status"));
		if (!status || !strcmp(status, "completed") ||
		    !strcmp(status, "failed") || !strcmp(status, "cancelled"))
			break;
		if (!strcmp(status, "postcopy-paused") && !told)
			/* the operator's turn, over QMP */
			fprintf(stderr,
				"\npost-copy paused (%s): waiting for "
				"migrate-recover on the destination and "
				"migrate with resume on the source\n",
				json_string_value(json_object_get(
					r, "postcopy-pause-reason")));
		told = !strcmp(status, "postcopy-paused");
		ram = json_object_get(r, "ram");
		if (progress && ram)
			shown = progress_line(r, ram, shown);
		json_decref(r);
		usleep(100000); /* a signal cuts it short */
	}
	if (progress && shown) /* the line cleared, nothing left of it */
		fprintf(stderr, "\r%*s\r", shown, "");
	return r;
}
