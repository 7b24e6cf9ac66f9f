/* opts.h - the long options of the command-line tools: "--name value",
 * "--name=value", flags "--name", and "-h" for "--help".  Each tool keeps
 * its own table and what it does with the values. */
#ifndef JPKI_TOOLS_OPTS_H
#define JPKI_TOOLS_OPTS_H
#include <stddef.h>

typedef struct {
    const char *name;                   /* without "--" */
    int has_arg;
    size_t max;                         /* value length bound */
} tool_opt;

/* One option at argv[*i] against defs[0..n): its index and *val (NULL for
 * a flag); *i moves past a separate value.  Options whose bit is clear in
 * allowed are unknown to this command.  -1 after a message through the
 * tool's say(): not an option, unknown, value missing or empty or longer
 * than max (a value may not start with "--"), or a value given to a flag. */
int tool_opt_next(int argc, char **argv, int *i, const tool_opt *defs,
                  int n, unsigned long long allowed, const char **val);

/* s[0..n) as a decimal number within [min, max] into *out: 0, or -1 when
 * it is empty, holds anything but the digits 0-9 (no sign, space or
 * suffix: strtoull would take "6379abc" as 6379 and "x" as 0), has more
 * than 19 digits or is out of range.  No message: the caller names what
 * was wrong. */
int tool_uint(const char *s, size_t n, unsigned long long min,
              unsigned long long max, unsigned long long *out);

/* The tool's message function (prefixed with its name, on stderr). */
__attribute__((format(printf, 1, 2))) void say(const char *fmt, ...);
#endif
