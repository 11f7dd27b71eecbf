/* codec.c - the page compressors, found by name or stream encoding. */
#include <string.h>

#include "codec.h"

static const struct page_codec *const codecs[] = { &codec_zstd, &codec_lz4,
						   &codec_zlib };

const struct page_codec *codec_by_name(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(codecs) / sizeof(codecs[0]); i++)
		if (!strcmp(codecs[i]->name, name))
			return codecs[i];
	return NULL;
}

const struct page_codec *codec_by_encoding(unsigned encoding)
{
	size_t i;

	for (i = 0; i < sizeof(codecs) / sizeof(codecs[0]); i++)
		if (codecs[i]->encoding == encoding)
			return codecs[i];
	return NULL;
}
