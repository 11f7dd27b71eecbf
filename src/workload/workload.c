/* workload.c - workload lookup and the "NAME:key=value,..." spec parser. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "size.h"
#include "workload.h"

static const struct workload_ops *const workloads[] = {
	&workload_idle,
	&workload_stress,
	&workload_zipf,
};

#define NWORKLOADS (sizeof(workloads) / sizeof(workloads[0]))

const struct workload_ops *workload_by_id(uint32_t id)
{
	size_t i;

	for (i = 0; i < NWORKLOADS; i++)
		if (workloads[i]->id == id)
			return workloads[i];
	return NULL;
}

static int common_param(struct workload *w, const char *key, const char *val,
			unsigned vcpus, struct ferry_error *err)
{
	char *end;

	if (!strcmp(key, "threads")) {
		unsigned long n = strtoul(val, &end, 10);

		if (*end || !*val || n == 0 || n > vcpus)
			return ferry_error_set(err, -EINVAL,
					       "workload %s: threads=%s: "
					       "expected 1 to %u (the number "
					       "of vCPUs)",
					       w->ops->name, val, vcpus);
		w->threads = (unsigned)n;
		return 1;
	}
	if (!strcmp(key, "rate")) {
		double r = strtod(val, &end);

		if (*end || !*val || !(r >= 0) || r > 1e12)
			return ferry_error_set(err, -EINVAL,
					       "workload %s: rate=%s: expected "
					       "page writes per second (0 for "
					       "unpaced)",
					       w->ops->name, val);
		w->rate = r;
		return 1;
	}
	if (!strcmp(key, "bytes")) {
		if (ferry_parse_size(val, &w->bytes) || w->bytes == 0)
			return ferry_error_set(err, -EINVAL,
					       "workload %s: bytes=%s is not a "
					       "size (like 512M or 1.5G)",
					       w->ops->name, val);
		return 1;
	}
	return 0;
}

int workload_parse(const char *spec, unsigned vcpus, struct workload *w,
		   struct ferry_error *err)
{
	char buf[512], *args, *tok, *save = NULL;
	size_t i, nl;
	int rc;

	memset(w, 0, sizeof(*w));
	if (!spec || !*spec)
		spec = "idle";
	if (strlen(spec) >= sizeof(buf))
		return ferry_error_set(err, -EINVAL, "workload spec too long");
	strcpy(buf, spec);
	args = strchr(buf, ':');
	if (args)
		*args++ = '\0';
	nl = strlen(buf);
	for (i = 0; i < NWORKLOADS; i++)
		if (strlen(workloads[i]->name) == nl &&
		    !strcmp(workloads[i]->name, buf))
			w->ops = workloads[i];
	if (!w->ops)
		return ferry_error_set(err, -EINVAL,
				       "unknown workload '%s' (known: idle, "
				       "stress, zipf)",
				       buf);
	w->threads = vcpus;
	w->rate = w->ops->default_rate;
	w->theta = 0.99;
	for (tok = args ? strtok_r(args, ",", &save) : NULL; tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');

		if (!eq)
			return ferry_error_set(err, -EINVAL,
					       "workload %s: '%s' is not "
					       "key=value",
					       w->ops->name, tok);
		*eq = '\0';
		rc = common_param(w, tok, eq + 1, vcpus, err);
		if (rc == 0 && w->ops->param)
			rc = w->ops->param(w, tok, eq + 1, err);
		if (rc < 0)
			return rc;
		if (rc == 0)
			return ferry_error_set(err, -EINVAL,
					       "workload %s: unknown parameter "
					       "'%s'",
					       w->ops->name, tok);
	}
	return 0;
}

int workload_prepare(struct workload *w, const struct guest_mem *m,
		     struct ferry_error *err)
{
	uint64_t ram = m->npages << m->page_shift;

	if (!w->bytes)
		w->bytes = ram;
	if (w->bytes > ram)
		return ferry_error_set(err, -EINVAL,
				       "workload %s: bytes=%llu is more than "
				       "the guest's RAM (%llu bytes)",
				       w->ops->name,
				       (unsigned long long)w->bytes,
				       (unsigned long long)ram);
	w->region_pages = w->bytes >> m->page_shift;
	if (!w->region_pages)
		return ferry_error_set(err, -EINVAL,
				       "workload %s: bytes=%llu is less than "
				       "one page",
				       w->ops->name,
				       (unsigned long long)w->bytes);
	if (!w->ops->idle && w->region_pages < w->threads)
		return ferry_error_set(err, -EINVAL,
				       "workload %s: %llu pages cannot be "
				       "shared by %u threads",
				       w->ops->name,
				       (unsigned long long)w->region_pages,
				       w->threads);
	return w->ops->prepare ? w->ops->prepare(w, m, err) : 0;
}

void workload_release(struct workload *w)
{
	if (w->ops && w->ops->release)
		w->ops->release(w);
	w->priv = NULL;
}

static uint64_t idle_step(const struct workload *w, const struct guest_mem *m,
			  unsigned thread, struct wl_regs *r)
{
	(void)w, (void)m, (void)thread, (void)r;
	return 0;
}

static void idle_init(const struct workload *w, unsigned thread, uint64_t seed,
		      struct wl_regs *r)
{
	(void)w, (void)thread, (void)seed;
	memset(r, 0, sizeof(*r));
}

const struct workload_ops workload_idle = {
	.name = "idle",
	.id = 0,
	.idle = true,
	.init_regs = idle_init,
	.step = idle_step,
};
