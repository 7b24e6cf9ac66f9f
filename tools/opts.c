/* opts.c - the long options of the command-line tools (opts.h). */
#include "opts.h"

#include <string.h>

int tool_uint(const char *s, size_t n, unsigned long long min,
              unsigned long long max, unsigned long long *out)
{
    unsigned long long x = 0;
    size_t i;

    if (n == 0 || n > 19)               /* 19 digits never overflow */
        return -1;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        x = x * 10 + (unsigned long long)(s[i] - '0');
    }
    if (x < min || x > max)
        return -1;
    *out = x;
    return 0;
}

int tool_opt_next(int argc, char **argv, int *i, const tool_opt *defs,
                  int n, unsigned long long allowed, const char **val)
{
    const char *arg = strcmp(argv[*i], "-h") == 0 ? "--help" : argv[*i];
    const char *eq;
    size_t nl;
    int o;

    *val = NULL;
    if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
        say("unexpected argument \"%.64s\"", arg);
        return -1;
    }
    eq = strchr(arg + 2, '=');
    nl = eq != NULL ? (size_t)(eq - arg - 2) : strlen(arg + 2);
    for (o = 0; o < n; o++)
        if (strlen(defs[o].name) == nl && memcmp(defs[o].name, arg + 2, nl) == 0)
            break;
    if (o == n || !(allowed >> o & 1)) {
        say("unknown option \"--%.*s\"", (int)(nl > 64 ? 64 : nl), arg + 2);
        return -1;
    }
    if (defs[o].has_arg && eq != NULL) {
        *val = eq + 1;
    } else if (defs[o].has_arg) {
        if (*i + 1 >= argc || strncmp(argv[*i + 1], "--", 2) == 0) {
            say("--%s needs a value", defs[o].name);
            return -1;
        }
        *val = argv[++*i];
    } else if (eq != NULL) {
        say("--%s takes no value", defs[o].name);
        return -1;
    }
    if (*val != NULL && (**val == '\0' || strlen(*val) > defs[o].max)) {
        say("--%s: the value must have 1 to %zu characters", defs[o].name,
            defs[o].max);
        return -1;
    }
    return o;
}
