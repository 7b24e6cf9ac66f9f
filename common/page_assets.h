/* page_assets.h - the login page's assets (common/assets/page.css and
 * page.js), compiled into the core at build time (tools/embed_assets.pl
 * writes build/gen/page_assets.c).  The adapters serve them at
 * <endpoints>/page.css and <endpoints>/page.js with these bytes, type and
 * ETag. */
#ifndef JPKI_PAGE_ASSETS_H
#define JPKI_PAGE_ASSETS_H

#include <stddef.h>

/* The asset of that name (nlen bytes, "page.css" or "page.js"): its bytes
 * (len of them; not NUL-terminated for the caller's purposes, though the
 * array ends with a NUL) and content type ("text/css; charset=utf-8",
 * "text/javascript; charset=utf-8"); NULL for any other name. */
const char *jpki_page_asset(const char *name, size_t nlen, size_t *len,
                            const char **content_type);

/* The asset's strong ETag, quotes included: the first 16 hex digits of
 * the SHA-256 of its bytes, computed when the core was built
 * ("\"0123456789abcdef\""); NULL for any other name. */
const char *jpki_page_asset_etag(const char *name, size_t nlen);

#endif
