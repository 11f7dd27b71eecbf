/*
 * qmp_schema.c - query-qmp-schema: ferry's commands, their arguments and
 * returns, its event and the types they use, as QEMU's SchemaInfo list
 * (qapi/introspect.json): builtins, enums, arrays, objects, commands and
 * events, each type named once and referred to by name.
 *
 * QEMU masks the names of its own types ("0", "1", ...); ferry gives them
 * QEMU's unmasked names (MigrationCapabilityStatus, q_obj_migrate-arg),
 * which a client must not depend on either way.  Arguments are exact: a
 * member is what the parser in qmp_parse.c takes, optional where it may be
 * left out.  Returns are exact to the top level; nested objects of
 * query-migrate (ram, xbzrle-cache, ...) are "any", described in
 * docs/usage.md.  tests/e2e/test_qmp.py checks the schema against
 * query-commands, query-migrate-parameters, query-migrate-capabilities
 * and what a migration's query-migrate returns.
 */
#include <stdbool.h>
#include <string.h>

#include "codec.h"
#include "ferry/migration.h"
#include "qmp_internal.h"

struct member {
	const char *name, *type;
	bool optional;
};

#define END                       \
	{                         \
		NULL, NULL, false \
	}

static void add_builtin(json_t *l, const char *name, const char *json_type)
{
	json_array_append_new(l, json_pack("{s:s,s:s,s:s}", "name", name,
					   "meta-type", "builtin", "json-type",
					   json_type));
}

static void add_enum(json_t *l, const char *name, const char *const *v,
		     size_t n)
{
	json_t *members = json_array(), *values = json_array();

	for (size_t i = 0; i < n; i++) {
		json_array_append_new(members,
				      json_pack("{s:s}", "name", v[i]));
		json_array_append_new(values, json_string(v[i]));
	}
	/* "values" is what QEMU 7.2 still sends beside "members" */
	json_array_append_new(l, json_pack("{s:s,s:s,s:o,s:o}", "name", name,
					   "meta-type", "enum", "members",
					   members, "values", values));
}

static void add_array(json_t *l, const char *element)
{
	json_array_append_new(l, json_pack("{s:s++,s:s,s:s}", "name", "[",
					   element, "]", "meta-type", "array",
					   "element-type", element));
}

static json_t *member(const char *name, const char *type, bool optional)
{
	json_t *m = json_pack("{s:s,s:s}", "name", name, "type", type);

	if (optional) /* QEMU: "default": null marks an optional member */
		json_object_set_new(m, "default", json_null());
	return m;
}

static void add_object(json_t *l, const char *name, const struct member *m)
{
	json_t *members = json_array();

	for (; m->name; m++)
		json_array_append_new(members,
				      member(m->name, m->type, m->optional));
	json_array_append_new(l, json_pack("{s:s,s:s,s:o}", "name", name,
					   "meta-type", "object", "members",
					   members));
}

static void add_command(json_t *l, const char *name, const char *arg,
			const char *ret)
{
	json_array_append_new(l,
			      json_pack("{s:s,s:s,s:s,s:s,s:b}", "name", name,
					"meta-type", "command", "arg-type", arg,
					"ret-type", ret, "allow-oob", 0));
}

/* migrate-set-parameters' arguments, query-migrate-parameters' return:
 * every parameter, optional. */
static void add_parameters(json_t *l, const char *name)
{
	static const struct member other[] = {
		{ "multifd-compression", "MultiFDCompression", true },
		{ "codec-auto", "bool", true },
		{ "defer-hot-pages", "bool", true },
		{ "direct-io", "bool", true },
		{ "rdma-provider", "str", true },
		{ "tls-creds", "str", true },
		{ "tls-hostname", "str", true },
		{ "tls-authz", "str", true },
		END,
	};
	json_t *members = json_array();

	for (size_t i = 0; i < qmp_nparams; i++)
		json_array_append_new(members,
				      member(qmp_params[i].name, "int", true));
	for (const struct member *m = other; m->name; m++)
		json_array_append_new(members, member(m->name, m->type, true));
	json_array_append_new(l, json_pack("{s:s,s:s,s:o}", "name", name,
					   "meta-type", "object", "members",
					   members));
}

static void add_types(json_t *l)
{
	static const char *const caps[] = {
		"verify",      "auto-converge",	     "multifd",
		"xbzrle",      "postcopy-ram",	     "rdma-pin-all",
		"mapped-ram",  "lazy-restore",	     "events",
		"return-path", "postcopy-blocktime",
	};
	static const char *const runstates[] = { "running", "paused",
						 "inmigrate", "postmigrate" };
	const char *states[FERRY_MIG_POSTCOPY_RECOVER + 1];
	const char *codecs[8] = { "none" };
	size_t ncodecs = 1;

	for (int s = 0; s <= FERRY_MIG_POSTCOPY_RECOVER; s++)
		states[s] = ferry_mig_state_name((enum ferry_mig_state)s);
	for (unsigned enc = 0; enc < 256 && ncodecs < 8; enc++)
		if (codec_by_encoding(enc))
			codecs[ncodecs++] = codec_by_encoding(enc)->name;
	add_builtin(l, "str", "string");
	add_builtin(l, "int", "int");
	add_builtin(l, "bool", "boolean");
	add_builtin(l, "number", "number");
	add_builtin(l, "any", "value");
	add_enum(l, "MigrationStatus", states,
		 sizeof(states) / sizeof(states[0]));
	add_enum(l, "MigrationCapability", caps,
		 sizeof(caps) / sizeof(caps[0]));
	add_enum(l, "MultiFDCompression", codecs, ncodecs);
	add_enum(l, "RunState", runstates,
		 sizeof(runstates) / sizeof(runstates[0]));
	add_array(l, "int");
	add_array(l, "MigrationCapabilityStatus");
	add_array(l, "CommandInfo");
	add_array(l, "EventInfo");
	add_object(l, "q_empty", (const struct member[]){ END });
	add_object(l, "MigrationCapabilityStatus",
		   (const struct member[]){
			   { "capability", "MigrationCapability", false },
			   { "state", "bool", false },
			   END,
		   });
	add_parameters(l, "MigrateSetParameters");
	add_parameters(l, "MigrationParameters");
	add_object(l, "StatusInfo",
		   (const struct member[]){
			   { "running", "bool", false },
			   { "singlestep", "bool", false },
			   { "status", "RunState", false },
			   END,
		   });
	add_object(l, "VersionTriple",
		   (const struct member[]){
			   { "major", "int", false },
			   { "minor", "int", false },
			   { "micro", "int", false },
			   END,
		   });
	add_object(l, "VersionInfo",
		   (const struct member[]){
			   { "qemu", "VersionTriple", false },
			   { "package", "str", false },
			   END,
		   });
	add_object(l, "NameInfo",
		   (const struct member[]){ { "name", "str", true }, END });
	add_object(l, "CommandInfo",
		   (const struct member[]){ { "name", "str", false }, END });
	add_object(l, "EventInfo",
		   (const struct member[]){ { "name", "str", false }, END });
	/* query-migrate: QEMU's members, then ferry's (docs/usage.md) */
	add_object(l, "MigrationInfo",
		   (const struct member[]){
			   { "status", "MigrationStatus", true },
			   { "total-time", "int", true },
			   { "setup-time", "int", true },
			   { "downtime", "int", true },
			   { "expected-downtime", "int", true },
			   { "ram", "any", true },
			   { "xbzrle-cache", "any", true },
			   { "compression", "any", true },
			   { "cpu-throttle-percentage", "int", true },
			   { "error-desc", "str", true },
			   { "socket-address", "any", true },
			   { "postcopy-blocktime", "int", true },
			   { "postcopy-vcpu-blocktime", "[int]", true },
			   { "uri", "str", true },
			   { "verified", "bool", true },
			   { "downtime-overrun", "any", true },
			   { "codec-auto", "any", true },
			   { "tls", "any", true },
			   { "rdma", "any", true },
			   { "refused-connections", "int", true },
			   { "refused-reason", "str", true },
			   { "guest", "any", true },
			   { "postcopy-reason", "str", true },
			   { "postcopy-time", "int", true },
			   { "resume-time", "int", true },
			   { "postcopy-recoveries", "int", true },
			   { "postcopy-pause-reason", "str", true },
			   { "postcopy-fault-latency-us", "any", true },
			   END,
		   });
	add_object(l, "q_obj_migrate-arg",
		   (const struct member[]){
			   { "uri", "str", false },
			   { "blk", "bool", true },
			   { "inc", "bool", true },
			   { "detach", "bool", true },
			   { "resume", "bool", true },
			   END,
		   });
	add_object(l, "q_obj_migrate-incoming-arg",
		   (const struct member[]){ { "uri", "str", false }, END });
	add_object(l, "q_obj_migrate-recover-arg",
		   (const struct member[]){ { "uri", "str", false }, END });
	add_object(l, "q_obj_getfd-arg",
		   (const struct member[]){ { "fdname", "str", false }, END });
	add_object(l, "q_obj_closefd-arg",
		   (const struct member[]){ { "fdname", "str", false }, END });
	add_object(l, "q_obj_cont-arg",
		   (const struct member[]){ { "x-force", "bool", true }, END });
	add_object(l, "q_obj_migrate-set-capabilities-arg",
		   (const struct member[]){
			   { "capabilities", "[MigrationCapabilityStatus]",
			     false },
			   END,
		   });
	add_object(l, "q_obj_human-monitor-command-arg",
		   (const struct member[]){
			   { "command-line", "str", false },
			   { "cpu-index", "int", true },
			   END,
		   });
	add_object(l, "q_obj_MIGRATION-arg",
		   (const struct member[]){
			   { "status", "MigrationStatus", false },
			   END,
		   });
}

json_t *qmp_schema(void)
{
	static const struct {
		const char *name, *arg, *ret;
	} cmds[] = {
		{ "qmp_capabilities", "q_empty", "q_empty" },
		{ "query-status", "q_empty", "StatusInfo" },
		{ "getfd", "q_obj_getfd-arg", "q_empty" },
		{ "closefd", "q_obj_closefd-arg", "q_empty" },
		{ "stop", "q_empty", "q_empty" },
		{ "cont", "q_obj_cont-arg", "q_empty" },
		{ "quit", "q_empty", "q_empty" },
		{ "migrate", "q_obj_migrate-arg", "q_empty" },
		{ "migrate-incoming", "q_obj_migrate-incoming-arg", "q_empty" },
		{ "migrate_cancel", "q_empty", "q_empty" },
		{ "migrate-start-postcopy", "q_empty", "q_empty" },
		{ "migrate-recover", "q_obj_migrate-recover-arg", "q_empty" },
		{ "migrate-pause", "q_empty", "q_empty" },
		{ "query-migrate", "q_empty", "MigrationInfo" },
		{ "migrate-set-parameters", "MigrateSetParameters", "q_empty" },
		{ "query-migrate-parameters", "q_empty",
		  "MigrationParameters" },
		{ "migrate-set-capabilities",
		  "q_obj_migrate-set-capabilities-arg", "q_empty" },
		{ "query-migrate-capabilities", "q_empty",
		  "[MigrationCapabilityStatus]" },
		{ "query-commands", "q_empty", "[CommandInfo]" },
		{ "query-version", "q_empty", "VersionInfo" },
		{ "query-name", "q_empty", "NameInfo" },
		{ "query-events", "q_empty", "[EventInfo]" },
		{ "query-qmp-schema", "q_empty", "any" },
		{ "human-monitor-command", "q_obj_human-monitor-command-arg",
		  "str" },
		{ "x-query-guest", "q_empty", "any" },
	};
	json_t *l = json_array();

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		add_command(l, cmds[i].name, cmds[i].arg, cmds[i].ret);
	json_array_append_new(l, json_pack("{s:s,s:s,s:s}", "name", "MIGRATION",
					   "meta-type", "event", "arg-type",
					   "q_obj_MIGRATION-arg"));
	add_types(l);
	return l;
}
