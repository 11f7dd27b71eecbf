/* buf.c - the growable byte buffer that device sections save into. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/vm.h"
#include "le.h"

int ferry_buf_reserve(struct ferry_buf *b, size_t extra)
{
	size_t cap;
	uint8_t *p;

	if (extra > SIZE_MAX / 2 - b->len)
		return -ENOMEM;
	if (b->len + extra <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + extra)
		cap *= 2;
	p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int ferry_buf_put(struct ferry_buf *b, const void *p, size_t n)
{
	int rc = ferry_buf_reserve(b, n);

	if (rc)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int ferry_buf_put_le32(struct ferry_buf *b, uint32_t v)
{
	uint8_t w[4];

	le32_store(w, v);
	return ferry_buf_put(b, w, sizeof(w));
}

int ferry_buf_put_le64(struct ferry_buf *b, uint64_t v)
{
	uint8_t w[8];

	le64_store(w, v);
	return ferry_buf_put(b, w, sizeof(w));
}

void ferry_buf_reset(struct ferry_buf *b)
{
	b->len = 0;
}

void ferry_buf_free(struct ferry_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}
