/* test_page_assets.c - the login page's assets compiled into the core
 * (common/page_assets.h, made from common/assets/ at build time): names,
 * content types, the very bytes of the files, strong ETags of their
 * SHA-256, nothing for any other name. */
#include "page_assets.h"
#include "tap.h"

#include <ctype.h>
#include <openssl/evp.h>

/* common/assets/NAME, next to this file's source (the tests run from the
 * top of the tree) */
static char *read_asset(const char *name, size_t *len)
{
    char path[1024];
    FILE *f;
    char *buf;
    long n;

    snprintf(path, sizeof(path), "%.*scommon/assets/%s",
             (int)(strlen(__FILE__) - strlen("t/unit/test_page_assets.c")),
             __FILE__, name);
    f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* "\"<first 16 hex of SHA-256>\"" of the bytes */
static void etag_of(const char *p, size_t n, char out[19])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    int i;

    EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL);
    out[0] = '"';
    for (i = 0; i < 8; i++)
        snprintf(out + 1 + 2 * i, 3, "%02x", md[i]);
    out[17] = '"';
    out[18] = '\0';
}

static void check_asset(const char *name, const char *type)
{
    size_t len = 0, flen = 0;
    const char *ct = NULL, *body, *etag;
    char *file, want[19];
    int i, hex = 1;

    body = jpki_page_asset(name, strlen(name), &len, &ct);
    ok(body != NULL, "%s: found", name);
    is_str(ct, type, "%s: its content type", name);
    file = read_asset(name, &flen);
    ok(file != NULL, "%s: the source file is read", name);
    if (body == NULL || file == NULL) {
        free(file);
        return;
    }
    is_int(len, flen, "%s: as long as common/assets/%s", name, name);
    ok(len == flen && memcmp(body, file, len) == 0, "%s: the file's very bytes", name);
    ok(memchr(body, '\0', len) == NULL, "%s: no NUL byte inside", name);

    etag = jpki_page_asset_etag(name, strlen(name));
    ok(etag != NULL && strlen(etag) == 18 && etag[0] == '"' && etag[17] == '"',
       "%s: a strong ETag, quoted, 16 characters", name);
    for (i = 1; etag != NULL && i < 17 && etag[i]; i++)
        hex &= isxdigit((unsigned char)etag[i]) && !isupper((unsigned char)etag[i]);
    ok(etag != NULL && hex, "%s: ... of lower-case hex digits", name);
    etag_of(file, flen, want);
    is_str(etag, want, "%s: ... the first 16 hex of the file's SHA-256", name);
    free(file);
}

int main(void)
{
    size_t len = 7;
    const char *ct = "unset";

    check_asset("page.css", "text/css; charset=utf-8");
    check_asset("page.js", "text/javascript; charset=utf-8");
    ok(strcmp(jpki_page_asset_etag("page.css", 8), jpki_page_asset_etag("page.js", 7)) != 0,
       "the two assets have two ETags");

    /* the name is len bytes, not a C string: "page.css" inside a longer
     * buffer is found by its length only */
    ok(jpki_page_asset("page.cssX", 8, NULL, NULL) != NULL,
       "the name is its nlen bytes (page.css of \"page.cssX\", 8)");
    ok(jpki_page_asset("page.css", 7, &len, &ct) == NULL, "page.cs (a prefix): none");
    is_int(len, 7, "... len untouched");
    is_str(ct, "unset", "... type untouched");
    ok(jpki_page_asset("page.cs", 7, NULL, NULL) == NULL, "page.cs: none");
    ok(jpki_page_asset("page.jss", 8, NULL, NULL) == NULL, "page.jss: none");
    ok(jpki_page_asset("PAGE.CSS", 8, NULL, NULL) == NULL, "names are case-sensitive");
    ok(jpki_page_asset("../page.css", 11, NULL, NULL) == NULL, "../page.css: none");
    ok(jpki_page_asset("", 0, NULL, NULL) == NULL, "the empty name: none");
    ok(jpki_page_asset(NULL, 0, NULL, NULL) == NULL, "NULL: none");
    ok(jpki_page_asset("login", 5, NULL, NULL) == NULL, "login: none");
    ok(jpki_page_asset_etag("page.html", 9) == NULL, "no ETag for an unknown name");
    ok(jpki_page_asset_etag("page.j", 6) == NULL, "no ETag for a prefix");
    ok(jpki_page_asset_etag(NULL, 0) == NULL, "no ETag for NULL");
    return done_testing();
}
