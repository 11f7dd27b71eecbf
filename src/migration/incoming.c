/*
 * incoming.c - the destination side, on the engine's thread.
 *
 * Accept one connection, decode the stream into the stopped guest (the
 * decoder places pages only after checking them against this guest's
 * RAM), load each device section, and at the end of stream compare the
 * digest of what was loaded with the source's.  Only a complete, verified
 * guest is resumed; the verdict goes back to the source either way.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migration_internal.h"
#include "transport.h"

static const struct ferry_section *find_section(const struct ferry_vm *vm,
						const char *name,
						uint32_t instance, size_t *idx)
{
	size_t i;

	for (i = 0; i < vm->nsections; i++)
		if (!strcmp(vm->sections[i].name, name) &&
		    vm->sections[i].instance == instance) {
			*idx = i;
			return &vm->sections[i];
		}
	return NULL;
}

static int receive(struct ferry_migration *m, int fd, struct ferry_error *err)
{
	const struct ferry_vm *vm = m->vm;
	struct ferry_stream_decoder *d = NULL;
	struct ferry_stream_record rec;
	struct ferry_mig_params p;
	struct page_hashes ph = { 0 };
	bool *loaded = calloc(vm->nsections + 1, sizeof(bool));
	uint64_t duplicate = 0, normal = 0, n = 0;
	uint8_t digest[16];
	char a[33], b[33];
	size_t i, idx;
	int rc;

	ferry_migration_get_params(m, &p);
	rc = loaded ? ferry_stream_decoder_new(ferry_stream_source_fd(&fd), &d)
		    : -ENOMEM;
	if (rc) {
		free(loaded);
		return ferry_error_set(err, rc, "out of memory");
	}
	/* page hashes, whether or not verify is on here: the source may
	 * send a digest, and then it is checked */
	rc = page_hashes_init(&ph, vm, err);
	if (rc) {
		free(loaded);
		ferry_stream_decoder_free(d);
		return rc;
	}
	ferry_stream_decoder_attach_ram(d, vm->page_size, vm->blocks,
					vm->nblocks);
	rc = ferry_stream_read_header(d, NULL, err);
	while (!rc) {
		rc = ferry_stream_decoder_next(d, &rec, err);
		if (rc)
			break;
		if (rec.type == FERRY_REC_PAGE) {
			uint32_t ri = rec.u.page.ram_index;
			uint64_t pg = rec.u.page.offset / vm->page_size;

			if (rec.u.page.encoding == FERRY_PAGE_ZERO) {
				duplicate++;
				if (ph.h)
					ph.h[ri][pg] = ph.zero;
			} else {
				normal++;
				/* hashed where it landed, read back */
				if (ph.h)
					ph.h[ri][pg] = ferry_page_hash(
						vm->blocks[ri].host +
							rec.u.page.offset,
						vm->page_size);
			}
			if ((++n & 4095) == 0) {
				pthread_mutex_lock(&m->lock);
				m->stats.duplicate = duplicate;
				m->stats.normal = normal;
				m->stats.normal_bytes = normal * vm->page_size;
				m->stats.transferred =
					ferry_stream_decoder_offset(d);
				pthread_mutex_unlock(&m->lock);
			}
		} else if (rec.type == FERRY_REC_DEVICE) {
			const struct ferry_section *s =
				find_section(vm, rec.u.device.name,
					     rec.u.device.instance, &idx);

			if (!s) {
				rc = ferry_error_set(
					err, -ENOENT,
					"stream offset %" PRIu64 ": device "
					"section %s.%u does not exist in this "
					"guest",
					rec.stream_offset, rec.u.device.name,
					rec.u.device.instance);
				break;
			}
			rc = s->load(s->opaque, rec.u.device.version,
				     rec.u.device.data, rec.u.device.len, err);
			loaded[idx] = true;
		} else if (rec.type == FERRY_REC_ITER_END) {
			pthread_mutex_lock(&m->lock);
			m->stats.iterations = rec.u.iter.iteration + 1;
			pthread_mutex_unlock(&m->lock);
		} else if (rec.type == FERRY_REC_END) {
			break;
		}
	}
	pthread_mutex_lock(&m->lock);
	m->stats.duplicate = duplicate;
	m->stats.normal = normal;
	m->stats.normal_bytes = normal * vm->page_size;
	m->stats.transferred = ferry_stream_decoder_offset(d);
	pthread_mutex_unlock(&m->lock);
	ferry_stream_decoder_free(d);
	for (i = 0; !rc && i < vm->nsections; i++)
		if (!loaded[i])
			rc = ferry_error_set(err, -ENODATA,
					     "the stream ended without device "
					     "section %s.%u",
					     vm->sections[i].name,
					     vm->sections[i].instance);
	free(loaded);
	if (!rc && !rec.u.end.has_digest && p.verify)
		rc = ferry_error_set(err, -EPROTO,
				     "the source sent no digest but 'verify' "
				     "is on here");
	if (!rc && rec.u.end.has_digest)
		rc = ferry_vm_digest_hashes(vm, ph.h, digest, err);
	page_hashes_free(&ph, vm);
	if (rc || !rec.u.end.has_digest)
		return rc;
	pthread_mutex_lock(&m->lock);
	m->stats.verified = memcmp(digest, rec.u.end.digest, 16) ? -1 : 1;
	pthread_mutex_unlock(&m->lock);
	if (memcmp(digest, rec.u.end.digest, 16)) {
		ferry_digest_hex(rec.u.end.digest, a);
		ferry_digest_hex(digest, b);
		return ferry_error_set(err, -EBADMSG,
				       "digest mismatch: the source's RAM and "
				       "device state hash to %s, what arrived "
				       "hashes to %s; the guest is not "
				       "resumed",
				       a, b);
	}
	return 0;
}

void *mig_incoming_main(void *arg)
{
	struct ferry_migration *m = arg;
	const struct ferry_vm *vm = m->vm;
	struct ferry_error err = { 0 };
	uint64_t t0;
	int fd = -1, rc;

	rc = transport_accept(m->listen_fd, &fd, -1, &m->cancel, &err);
	close(m->listen_fd);
	m->listen_fd = -1;
	if (rc)
		goto fail;
	atomic_store(&m->fd, fd);
	t0 = mig_now_ns();
	pthread_mutex_lock(&m->lock);
	m->t_start_ns = t0; /* total-time counts from the connection */
	pthread_mutex_unlock(&m->lock);
	if (!mig_set_state(m, FERRY_MIG_SETUP, FERRY_MIG_ACTIVE)) {
		rc = ferry_error_set(&err, -ECANCELED, "cancelled");
		goto fail;
	}
	rc = receive(m, fd, &err);
	if (rc)
		goto fail;
	if (vm->runctl.stall_us)
		vm->runctl.stall_us(vm->runctl.opaque, true);
	vm->runctl.resume(vm->runctl.opaque);
	mig_send_result(fd, 0, "resumed");
	mig_set_state(m, FERRY_MIG_ACTIVE, FERRY_MIG_COMPLETED);
	goto out;
fail:
	if (fd >= 0)
		mig_fail_peer(fd, -rc, ferry_error_msg(&err));
	mig_fail(m, &err);
out:
	atomic_store(&m->fd, -1);
	if (fd >= 0)
		close(fd);
	return NULL;
}
