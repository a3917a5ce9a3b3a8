/* config.c — the table-driven configuration: defaults, INI file, CORRAL_* environment, --help and example text. */
#include "corral/config.h"
#include "corral/error.h"
#include "corral/log.h"
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A line longer than this in a config file is an error, not a reason to allocate without bound. */
#define CR_CONFIG_MAX_LINE (64 * 1024)
/* Longest "section.key" accepted from a file. */
#define CR_CONFIG_MAX_NAME 128
/* Where --help and the example wrap their text. */
#define CR_CONFIG_WIDTH 100

static size_t cr_config__count(const cr_config_entry_t *table)
{
    size_t n = 0;
    while (table[n].name != NULL)
        ++n;
    return n;
}

static long cr_config__find(const cr_config_entry_t *table, size_t count, const char *name)
{
    for (size_t i = 0; i < count; ++i)
        if (strcmp(table[i].name, name) == 0)
            return (long)i;
    return -1;
}

static const char *cr_config__type_name(cr_config_type_t type)
{
    switch (type) {
    case CR_CONF_STR: return "string";
    case CR_CONF_INT: return "int";
    case CR_CONF_BOOL: return "bool";
    case CR_CONF_SIZE: return "size";
    case CR_CONF_MS: return "duration";
    }
    return "?";
}

/* Parses an unsigned decimal number at *s, advancing *s past it. Returns 0, or -1 (no digits or over INT64_MAX). */
static int cr_config__digits(const char **s, int64_t *out)
{
    const char *p = *s;
    int64_t v = 0;
    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); ++p) {
        int d = *p - '0';
        if (v > (INT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *s = p;
    *out = v;
    return 0;
}

/* The suffixes a SIZE or MS value may carry (matched case-insensitively), and what each multiplies by. */
typedef struct st_cr_config__unit_t {
    const char *suffix;
    int64_t mult;
} cr_config__unit_t;

static const cr_config__unit_t size_units[] = {
    {"", 1},         {"b", 1},         {"k", 1 << 10}, {"kb", 1 << 10}, {"kib", 1 << 10}, {"m", 1 << 20},
    {"mb", 1 << 20}, {"mib", 1 << 20}, {"g", 1 << 30}, {"gb", 1 << 30}, {"gib", 1 << 30}, {NULL, 0},
};
static const cr_config__unit_t ms_units[] = {
    {"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 60 * 60 * 1000}, {NULL, 0},
};

/* Parses `text` as a value of `e`'s type into *num. On failure writes why into why[0..whylen) and returns -1. */
static int cr_config__parse_value(const cr_config_entry_t *e, const char *text, int64_t *num, char *why, size_t whylen)
{
    const char *p = text;
    int64_t v = 0, mult = 1;

    switch (e->type) {
    case CR_CONF_STR: *num = 0; return 0;

    case CR_CONF_BOOL: {
        static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
        for (size_t i = 0; i < 4; ++i) {
            if (strcasecmp(text, yes[i]) == 0 || strcasecmp(text, no[i]) == 0) {
                *num = strcasecmp(text, yes[i]) == 0;
                return 0;
            }
        }
        snprintf(why, whylen, "'%s' is not a boolean (true, false, yes, no, on, off, 1 or 0)", text);
        return -1;
    }

    case CR_CONF_INT: {
        int neg = 0;
        if (*p == '-' || *p == '+')
            neg = *p++ == '-';
        if (cr_config__digits(&p, &v) != 0 || *p != '\0') {
            snprintf(why, whylen, "'%s' is not a decimal integer", text);
            return -1;
        }
        if (neg)
            v = -v;
        break;
    }

    case CR_CONF_SIZE:
    case CR_CONF_MS: {
        const char *unit;
        if (cr_config__digits(&p, &v) != 0)
            goto bad_unit;
        while (*p == ' ' || *p == '\t')
            ++p;
        unit = p;
        {
            const cr_config__unit_t *units = e->type == CR_CONF_SIZE ? size_units : ms_units;
            size_t i;
            for (i = 0; units[i].suffix != NULL && strcasecmp(unit, units[i].suffix) != 0; ++i)
                ;
            if (units[i].suffix == NULL)
                goto bad_unit;
            mult = units[i].mult;
        }
        if (v > INT64_MAX / mult) {
            snprintf(why, whylen, "'%s' is too large", text);
            return -1;
        }
        v *= mult;
        break;
    bad_unit:
        snprintf(why, whylen,
                 e->type == CR_CONF_SIZE ? "'%s' is not a size (bytes, or a number with k, m or g: \"256k\", \"1MiB\")"
                                         : "'%s' is not a duration (milliseconds, or a number with ms, s, m or h: \"20s\")",
                 text);
        return -1;
    }
    }

    if ((e->min != 0 || e->max != 0) && (v < e->min || v > e->max)) {
        snprintf(why, whylen, "%s is out of range (%lld to %lld%s)", text, (long long)e->min, (long long)e->max,
                 e->type == CR_CONF_SIZE ? " bytes"
                 : e->type == CR_CONF_MS ? " ms"
                                         : "");
        return -1;
    }
    *num = v;
    return 0;
}

/* Sets value i from text, recording where it came from. `where` prefixes error messages ("relay.ini:12: "). */
static int cr_config__assign(cr_config_t *conf, size_t i, const char *text, const char *from, const char *where)
{
    const cr_config_entry_t *e = &conf->table[i];
    char why[200];
    int64_t num;
    char *copy;

    if (cr_config__parse_value(e, text, &num, why, sizeof(why)) != 0)
        return cr_error_set(CR_ECONFIG, e->name, "%sbad value for '%s': %s", where, e->name, why);
    if ((copy = strdup(text)) == NULL)
        return cr_error_set(CR_ENOMEM, e->name, "out of memory");
    free(conf->values[i].str);
    conf->values[i].str = copy;
    conf->values[i].num = num;
    conf->values[i].from = from;
    return 0;
}

void cr_config_free(cr_config_t *conf)
{
    if (conf->values != NULL) {
        for (size_t i = 0; i < conf->count; ++i)
            free(conf->values[i].str);
        free(conf->values);
    }
    conf->values = NULL;
    conf->count = 0;
    conf->table = NULL;
}

static char *cr_config__trim(char *s)
{
    char *end;
    while (*s == ' ' || *s == '\t')
        ++s;
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        *--end = '\0';
    return s;
}

/* Whether the rest of a line (after a value or a section header) is nothing or a '#' / ';' comment. */
static int cr_config__rest_is_empty(const char *s)
{
    while (*s == ' ' || *s == '\t')
        ++s;
    return *s == '\0' || *s == '#' || *s == ';';
}

static int cr_config__name_char(unsigned char c)
{
    return isalnum(c) || c == '_' || c == '-' || c == '.';
}

/* Turns the value part of a `key = value` line (trimmed on the left) into its text, in place. An unquoted value
 * ends at a '#' that starts it or follows whitespace (a comment), trailing whitespace trimmed; a quoted value keeps
 * everything between the quotes, with \" and \\ as its only escapes. Returns the text, or NULL with *why set. */
static char *cr_config__value(char *v, const char **why)
{
    if (*v == '"') {
        char *r = v + 1, *w = v;
        for (;; ++r) {
            if (*r == '\0') {
                *why = "unterminated quoted value";
                return NULL;
            }
            if (*r == '"')
                break;
            if (*r == '\\') {
                if (r[1] != '"' && r[1] != '\\') {
                    *why = "bad escape in quoted value (only \\\" and \\\\)";
                    return NULL;
                }
                ++r;
            }
            *w++ = *r;
        }
        if (!cr_config__rest_is_empty(r + 1)) {
            *why = "text after the closing quote";
            return NULL;
        }
        *w = '\0';
        return v;
    }
    for (char *p = v; *p != '\0'; ++p) {
        if (*p == '#' && (p == v || p[-1] == ' ' || p[-1] == '\t')) {
            *p = '\0';
            break;
        }
    }
    return cr_config__trim(v);
}

/* Reads the INI file at path into conf. */
static int cr_config__load_file(cr_config_t *conf, const char *path)
{
    char section[CR_CONFIG_MAX_NAME] = "", name[CR_CONFIG_MAX_NAME + 8], where[CR_CONFIG_MAX_NAME + 300];
    char *line = NULL;
    size_t linecap = 0, lineno = 0;
    ssize_t len;
    int *set_on, rc = 0;
    FILE *fp;

    if ((fp = fopen(path, "r")) == NULL)
        return cr_error_set(CR_EIO, NULL, "cannot open config file %s: %s", path, strerror(errno));
    if ((set_on = calloc(conf->count + 1, sizeof(*set_on))) == NULL) {
        fclose(fp);
        return cr_error_set(CR_ENOMEM, NULL, "out of memory");
    }

    while ((len = getline(&line, &linecap, fp)) >= 0) {
        char *s, *eq, *key, *value;
        const char *why = NULL;
        long i;

        ++lineno;
        snprintf(where, sizeof(where), "%s:%zu: ", path, lineno);
        if ((size_t)len > CR_CONFIG_MAX_LINE) {
            rc = cr_error_set(CR_ECONFIG, NULL, "%sline longer than %d bytes", where, CR_CONFIG_MAX_LINE);
            goto done;
        }
        if (strlen(line) != (size_t)len) {
            rc = cr_error_set(CR_ECONFIG, NULL, "%sNUL byte in line", where);
            goto done;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (lineno == 1 && (unsigned char)line[0] == 0xef && (unsigned char)line[1] == 0xbb && (unsigned char)line[2] == 0xbf)
            memmove(line, line + 3, (size_t)len - 2); /* a UTF-8 byte order mark */
        s = cr_config__trim(line);
        if (*s == '\0' || *s == '#' || *s == ';')
            continue;

        if (*s == '[') {
            char *close = strchr(s, ']'), *sec;
            if (close == NULL || !cr_config__rest_is_empty(close + 1)) {
                rc = cr_error_set(CR_ECONFIG, NULL, "%smalformed section header (expected '[section]')", where);
                goto done;
            }
            *close = '\0';
            sec = cr_config__trim(s + 1);
            for (char *p = sec; *p != '\0'; ++p)
                if (!cr_config__name_char((unsigned char)*p))
                    sec = NULL;
            if (sec == NULL || *sec == '\0' || strlen(sec) >= sizeof(section)) {
                rc = cr_error_set(CR_ECONFIG, NULL, "%sbad section name '%s'", where, s + 1);
                goto done;
            }
            memcpy(section, sec, strlen(sec) + 1);
            continue;
        }

        if ((eq = strchr(s, '=')) == NULL) {
            rc = cr_error_set(CR_ECONFIG, NULL, "%smalformed line (expected 'key = value')", where);
            goto done;
        }
        *eq = '\0';
        key = cr_config__trim(s);
        for (char *p = key; *p != '\0'; ++p)
            if (!cr_config__name_char((unsigned char)*p))
                why = "bad key name";
        if (*key == '\0')
            why = "missing key before '='";
        if (why == NULL && strlen(section) + strlen(key) + 2 > sizeof(name))
            why = "key name too long";
        if (why != NULL) {
            rc = cr_error_set(CR_ECONFIG, NULL, "%s%s", where, why);
            goto done;
        }
        {
            size_t slen = strlen(section), klen = strlen(key), at = 0;
            if (slen != 0) {
                memcpy(name, section, slen);
                name[slen] = '.';
                at = slen + 1;
            }
            memcpy(name + at, key, klen + 1); /* fits: checked above */
        }

        if ((i = cr_config__find(conf->table, conf->count, name)) < 0) {
            rc = cr_error_set(CR_ECONFIG, name, "%sunknown key '%s'", where, name);
            goto done;
        }
        if (set_on[i] != 0) {
            rc = cr_error_set(CR_ECONFIG, name, "%sduplicate key '%s' (first set on line %d)", where, name, set_on[i]);
            goto done;
        }
        if ((value = cr_config__value(cr_config__trim(eq + 1), &why)) == NULL) {
            rc = cr_error_set(CR_ECONFIG, name, "%s%s for '%s'", where, why, name);
            goto done;
        }
        if ((rc = cr_config__assign(conf, (size_t)i, value, "file", where)) != 0)
            goto done;
        set_on[i] = lineno > (size_t)INT32_MAX ? INT32_MAX : (int)lineno;
    }
    if (ferror(fp))
        rc = cr_error_set(CR_EIO, NULL, "cannot read config file %s: %s", path, strerror(errno));

done:
    free(line);
    free(set_on);
    fclose(fp);
    return rc;
}

int cr_config_load(cr_config_t *conf, const cr_config_entry_t *table, const char *path)
{
    char env[128], where[160];
    int rc = 0;

    conf->table = table;
    conf->count = cr_config__count(table);
    if ((conf->values = calloc(conf->count + 1, sizeof(*conf->values))) == NULL) {
        conf->count = 0;
        conf->table = NULL;
        return cr_error_set(CR_ENOMEM, NULL, "out of memory");
    }
    for (size_t i = 0; i < conf->count; ++i) {
        const char *def = table[i].defval != NULL ? table[i].defval : "";
        if ((rc = cr_config__assign(conf, i, def, "default", "default of ")) != 0)
            goto done;
    }
    if (path != NULL && (rc = cr_config__load_file(conf, path)) != 0)
        goto done;
    for (size_t i = 0; i < conf->count; ++i) {
        const char *v;
        cr_config_env_name(env, sizeof(env), table[i].name);
        if ((v = getenv(env)) == NULL)
            continue;
        snprintf(where, sizeof(where), "environment %s: ", env);
        if ((rc = cr_config__assign(conf, i, v, "env", where)) != 0)
            goto done;
    }

done:
    if (rc != 0)
        cr_config_free(conf);
    return rc;
}

int cr_config_set(cr_config_t *conf, const char *name, const char *value, const char *from)
{
    long i = cr_config__find(conf->table, conf->count, name);
    if (i < 0)
        return cr_error_set(CR_ENOTFOUND, name, "unknown key '%s'", name);
    return cr_config__assign(conf, (size_t)i, value != NULL ? value : "", from, "");
}

/* The index of name, aborting when it is not in the table or not of an accepted type (programming errors). */
static size_t cr_config__must_find(const cr_config_t *conf, const char *name, int types, const char *getter)
{
    char expr[200];
    long i = cr_config__find(conf->table, conf->count, name);
    if (i < 0) {
        snprintf(expr, sizeof(expr), "%s(\"%s\"): key in the config table", getter, name);
        cr_log_assert_fail(expr, __FILE__, __LINE__);
    }
    if ((types & (1 << conf->table[i].type)) == 0) {
        snprintf(expr, sizeof(expr), "%s(\"%s\"): key of type %s", getter, name, cr_config__type_name(conf->table[i].type));
        cr_log_assert_fail(expr, __FILE__, __LINE__);
    }
    return (size_t)i;
}

const char *cr_config_str(const cr_config_t *conf, const char *name)
{
    return conf->values[cr_config__must_find(conf, name, ~0, "cr_config_str")].str;
}

int64_t cr_config_int(const cr_config_t *conf, const char *name)
{
    int types = (1 << CR_CONF_INT) | (1 << CR_CONF_SIZE) | (1 << CR_CONF_MS) | (1 << CR_CONF_BOOL);
    return conf->values[cr_config__must_find(conf, name, types, "cr_config_int")].num;
}

int cr_config_bool(const cr_config_t *conf, const char *name)
{
    return conf->values[cr_config__must_find(conf, name, 1 << CR_CONF_BOOL, "cr_config_bool")].num != 0;
}

void cr_config_env_name(char *out, size_t outlen, const char *name)
{
    size_t pos;
    if (outlen == 0)
        return;
    pos = (size_t)snprintf(out, outlen, "CORRAL_");
    if (pos >= outlen)
        pos = outlen - 1;
    for (; *name != '\0' && pos + 1 < outlen; ++name)
        out[pos++] = *name == '.' || *name == '-' ? '_' : (char)toupper((unsigned char)*name);
    out[pos] = '\0';
}

/* Prints text word-wrapped to CR_CONFIG_WIDTH columns, each line starting with prefix. */
static void cr_config__wrap(FILE *fp, const char *prefix, const char *text)
{
    size_t width = CR_CONFIG_WIDTH - strlen(prefix), len;
    while (*text != '\0') {
        while (*text == ' ')
            ++text;
        len = strlen(text);
        if (len > width) {
            size_t cut = width;
            while (cut > 0 && text[cut] != ' ')
                --cut;
            len = cut != 0 ? cut : width; /* a word longer than a line is cut */
        }
        while (len > 0 && text[len - 1] == ' ')
            --len;
        if (len > 0)
            fprintf(fp, "%s%.*s\n", prefix, (int)len, text);
        text += len;
    }
}

/* A number of bytes or milliseconds in the largest unit that divides it evenly ("64m", "20s"). */
static void cr_config__human(char *out, size_t outlen, cr_config_type_t type, int64_t v)
{
    static const struct {
        int64_t mult;
        const char *suffix;
    } sizes[] = {{(int64_t)1 << 30, "g"}, {(int64_t)1 << 20, "m"}, {(int64_t)1 << 10, "k"}},
      times[] = {{3600000, "h"}, {60000, "m"}, {1000, "s"}};
    for (size_t i = 0; v != 0 && (type == CR_CONF_SIZE || type == CR_CONF_MS) && i < 3; ++i) {
        int64_t m = type == CR_CONF_SIZE ? sizes[i].mult : times[i].mult;
        if (v % m == 0) {
            snprintf(out, outlen, "%lld%s", (long long)(v / m), type == CR_CONF_SIZE ? sizes[i].suffix : times[i].suffix);
            return;
        }
    }
    snprintf(out, outlen, "%lld%s", (long long)v, type == CR_CONF_MS && v != 0 ? "ms" : "");
}

/* The help sentence of e plus what the reader needs to know of its type and range. */
static void cr_config__describe(char *out, size_t outlen, const cr_config_entry_t *e)
{
    static const char *const type_help[] = {
        [CR_CONF_STR] = "",
        [CR_CONF_INT] = "",
        [CR_CONF_BOOL] = " True or false.",
        [CR_CONF_SIZE] = " Bytes, or a number with k, m or g (1024-based): 256k, 1MiB.",
        [CR_CONF_MS] = " Milliseconds, or a number with ms, s, m or h: 500ms, 20s.",
    };
    char lo[32], hi[32];
    size_t pos = (size_t)snprintf(out, outlen, "%s%s", e->help != NULL ? e->help : "", type_help[e->type]);
    if (pos < outlen && (e->min != 0 || e->max != 0)) {
        cr_config__human(lo, sizeof(lo), e->type, e->min);
        cr_config__human(hi, sizeof(hi), e->type, e->max);
        snprintf(out + pos, outlen - pos, " From %s to %s.", lo, hi);
    }
}

/* Writes v as it should appear after "key = " in an INI file: quoted when spaces at its ends, a '#', a quote or
 * a backslash would otherwise change or lose it. */
static void cr_config__print_ini_value(FILE *fp, const char *v)
{
    size_t n = strlen(v);
    int quote =
        n == 0 || v[0] == ' ' || v[0] == '\t' || v[n - 1] == ' ' || v[n - 1] == '\t' || strchr(v, '#') != NULL || v[0] == '"';
    if (!quote) {
        fputs(v, fp);
        return;
    }
    fputc('"', fp);
    for (; *v != '\0'; ++v) {
        if (*v == '"' || *v == '\\')
            fputc('\\', fp);
        fputc(*v, fp);
    }
    fputc('"', fp);
}

void cr_config_print_help(FILE *fp, const cr_config_entry_t *table)
{
    size_t count = cr_config__count(table), wkey = 3, wenv = 3, wtype = 4;
    char env[128], desc[1024];

    for (size_t i = 0; i < count; ++i) {
        cr_config_env_name(env, sizeof(env), table[i].name);
        if (strlen(table[i].name) > wkey)
            wkey = strlen(table[i].name);
        if (strlen(env) > wenv)
            wenv = strlen(env);
        if (strlen(cr_config__type_name(table[i].type)) > wtype)
            wtype = strlen(cr_config__type_name(table[i].type));
    }
    fprintf(fp, "Configuration: each key can be set in the INI file given with --config ([section], then key = value)\n"
                "or by its environment variable, which wins over the file.\n\n");
    fprintf(fp, "  %-*s  %-*s  %-*s  %s\n", (int)wkey, "KEY", (int)wenv, "ENVIRONMENT", (int)wtype, "TYPE", "DEFAULT");
    for (size_t i = 0; i < count; ++i) {
        const char *def = table[i].defval != NULL ? table[i].defval : "";
        cr_config_env_name(env, sizeof(env), table[i].name);
        fprintf(fp, "  %-*s  %-*s  %-*s  %s\n", (int)wkey, table[i].name, (int)wenv, env, (int)wtype,
                cr_config__type_name(table[i].type), def[0] != '\0' ? def : "(empty)");
        cr_config__describe(desc, sizeof(desc), &table[i]);
        cr_config__wrap(fp, "      ", desc);
    }
}

/* The section of a name ("http" of "http.listen"; "" for a top-level key), into out. */
static void cr_config__section_of(char *out, size_t outlen, const char *name)
{
    const char *dot = strrchr(name, '.');
    size_t n = dot != NULL ? (size_t)(dot - name) : 0;
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, name, n);
    out[n] = '\0';
}

/* Prints every key of section sec ("" for the top level) at its default, commented out, under its header. */
static void cr_config__print_section(FILE *fp, const cr_config_entry_t *table, size_t count, const char *sec)
{
    char other[CR_CONFIG_MAX_NAME], env[128], desc[1024];
    int header = 0;

    for (size_t j = 0; j < count; ++j) {
        const char *def = table[j].defval != NULL ? table[j].defval : "";
        cr_config__section_of(other, sizeof(other), table[j].name);
        if (strcmp(other, sec) != 0)
            continue;
        fputc('\n', fp);
        if (!header && sec[0] != '\0')
            fprintf(fp, "[%s]\n", sec);
        header = 1;
        cr_config_env_name(env, sizeof(env), table[j].name);
        cr_config__describe(desc, sizeof(desc), &table[j]);
        cr_config__wrap(fp, "# ", desc);
        fprintf(fp, "# Environment: %s\n#%s = ", env, table[j].name + (sec[0] != '\0' ? strlen(sec) + 1 : 0));
        cr_config__print_ini_value(fp, def);
        fputc('\n', fp);
    }
}

void cr_config_print_example(FILE *fp, const cr_config_entry_t *table, const char *title)
{
    size_t count = cr_config__count(table);
    char sec[CR_CONFIG_MAX_NAME], other[CR_CONFIG_MAX_NAME];

    fprintf(fp, "# %s\n#\n", title != NULL ? title : "Example configuration");
    cr_config__wrap(fp, "# ",
                    "Every key is shown commented out at its default: remove the leading '#' to change it. The "
                    "environment variable named with each key overrides this file. Values may be double-quoted "
                    "(with \\\" and \\\\ as escapes) to keep spaces at their ends or a '#'.");

    /* Top-level keys first (they must come before any [section]), then each section in order of first appearance,
     * with all of its keys even when the table does not list them together. */
    cr_config__print_section(fp, table, count, "");
    for (size_t i = 0; i < count; ++i) {
        size_t j;
        cr_config__section_of(sec, sizeof(sec), table[i].name);
        if (sec[0] == '\0')
            continue;
        for (j = 0; j < i; ++j) {
            cr_config__section_of(other, sizeof(other), table[j].name);
            if (strcmp(other, sec) == 0)
                break;
        }
        if (j == i)
            cr_config__print_section(fp, table, count, sec);
    }
}

int cr_config_main(cr_config_t *conf, const cr_config_entry_t *table, const char *program, const char *component, int argc,
                   char **argv, void (*usage)(FILE *fp), int *rest)
{
    const char *path = NULL;
    cr_log_level_t level;
    int i;
    for (i = 1; i < argc; ++i) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            cr_config_print_help(stdout, table);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
#ifdef CORRAL_VERSION
            printf("%s %s\n", program, CORRAL_VERSION);
#else
            printf("%s\n", program);
#endif
            return 0;
        } else if (strcmp(a, "--print-config-example") == 0) {
            char title[256];
            snprintf(title, sizeof(title), "%s example configuration (printed by %s --print-config-example)", program, program);
            cr_config_print_example(stdout, table, title);
            return 0;
        } else if (strcmp(a, "--config") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: --config needs a file name\n", program);
                return 2;
            }
            path = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            path = a + 9;
        } else if (a[0] == '-') {
            fprintf(stderr, "%s: unknown option '%s' (see %s --help)\n", program, a, program);
            return 2;
        } else {
            break;
        }
    }
    *rest = i;
    if (cr_config_load(conf, table, path) != 0) {
        fprintf(stderr, "%s: %s\n", program, cr_error_last()->message);
        return 2;
    }
    if (cr_log_level_parse(cr_config_str(conf, "log.level"), &level) != 0) {
        fprintf(stderr, "%s: log.level: %s\n", program, cr_error_last()->message);
        cr_config_free(conf);
        return 2;
    }
    cr_log_init(component, level);
    return -1;
}
