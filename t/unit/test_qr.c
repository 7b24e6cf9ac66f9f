/* test_qr.c - the QR code of a device flow's URL: an SVG in a data URL
 * that a reader decodes back to the URL (zbarimg, Debian's zbar-tools,
 * reads the image drawn again from the SVG's path; skipped without it). */
#include "tap.h"
#include "qr.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SCALE 6

/* The SVG's runs ("M x y h n v1 H x z") drawn into a PGM file. */
static int svg_to_pgm(const char *svg, const char *path, int *size_out)
{
    const char *p = strstr(svg, "viewBox=\"0 0 ");
    int size, x, y, n, i, j, k;
    unsigned char *img;
    FILE *f;

    if (p == NULL || sscanf(p, "viewBox=\"0 0 %d", &size) != 1 || size < 21
        || size > 200)
        return -1;
    img = malloc((size_t)size * size);
    if (img == NULL)
        return -1;
    memset(img, 255, (size_t)size * size);
    p = strstr(svg, " d=\"");
    for (p = p ? p + 4 : ""; *p == 'M'; p = strchr(p, 'z') + 1) {
        if (sscanf(p, "M%d %dh%dv1H", &x, &y, &n) != 3 || x < 0 || y < 0
            || n < 1 || x + n > size || y >= size || strchr(p, 'z') == NULL)
            break;
        memset(img + y * size + x, 0, (size_t)n);
    }
    f = fopen(path, "wb");
    if (f == NULL) {
        free(img);
        return -1;
    }
    fprintf(f, "P5\n%d %d\n255\n", size * SCALE, size * SCALE);
    for (i = 0; i < size * SCALE; i++)
        for (j = 0; j < size; j++)
            for (k = 0; k < SCALE; k++)
                fputc(img[(i / SCALE) * size + j], f);
    fclose(f);
    free(img);
    *size_out = size;
    return *p == '"' ? 0 : -1;
}

static void test_svg(void)
{
    const char *url = "https://login.example.jp/jpki/sign?challenge="
        "AgEAAAAAaXJ0ZUcyNtrKZ3A4t0aQ2VyBsVmtXUGdkX1NPdzV0SlhXNVlkTERsR"
        "mZ3c2RPcHMyN0FJ&code=ZMFE-5P62";
    size_t len = 0, ulen = 0;
    int modules = 0, size = 0;
    char *svg = jpki_qr_svg(url, &len, &modules), *du;
    char path[] = "/tmp/jpki-qr-XXXXXX", cmd[256], got[1024];
    FILE *p;
    int fd;

    ok(svg != NULL && len == strlen(svg), "an SVG for a login URL");
    ok(modules >= 21 && (modules - 17) % 4 == 0,
       "a symbol of a QR version's width (%d modules)", modules);
    ok(svg && strstr(svg, "<svg ") == svg && strstr(svg, "</svg>") != NULL
       && strchr(svg, '<') && !strstr(svg, "script"),
       "only an svg with a rect and a path");
    du = jpki_qr_data_url(url, &ulen);
    ok(du && strncmp(du, "data:image/svg+xml;base64,", 26) == 0
       && ulen == strlen(du) && ulen == 26 + 4 * ((len + 2) / 3),
       "the data URL: the SVG in base64 (%zu bytes)", ulen);
    ok(jpki_qr_svg("", &len, NULL) == NULL && len == 0, "no text: none");
    {
        char *big = malloc(JPKI_QR_TEXT_MAX + 2);
        memset(big, 'a', JPKI_QR_TEXT_MAX + 1);
        big[JPKI_QR_TEXT_MAX + 1] = '\0';
        ok(jpki_qr_data_url(big, &len) == NULL, "a text over the bound: none");
        free(big);
    }

    fd = mkstemp(path);
    if (fd >= 0)
        close(fd);
    if (svg == NULL || fd < 0 || svg_to_pgm(svg, path, &size) != 0) {
        ok(0, "the path drawn again");
    } else {
        ok(size == modules + 8, "the quiet zone: 4 modules a side");
        if (system("command -v zbarimg >/dev/null 2>&1") != 0) {
            printf("ok %d # skip no zbarimg (zbar-tools)\n", ++tap_n);
        } else {
            snprintf(cmd, sizeof(cmd), "zbarimg -q --raw %s 2>/dev/null", path);
            p = popen(cmd, "r");
            got[0] = '\0';
            if (p != NULL && fgets(got, sizeof(got), p) != NULL)
                got[strcspn(got, "\n")] = '\0';
            if (p != NULL)
                pclose(p);
            is_str(got, url, "a QR reader reads the URL back");
        }
    }
    unlink(path);
    free(svg);
    free(du);
}

int main(void)
{
    test_svg();
    return done_testing();
}
