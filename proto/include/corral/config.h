/* config.h — one table of config entries (name, type, default, help) from which parsing of an INI file,
 * CORRAL_<SECTION>_<KEY> environment overrides, --help text and the commented example config all come. */
#ifndef CORRAL_CONFIG_H
#define CORRAL_CONFIG_H

#include <stdint.h>
#include <stdio.h>

typedef enum cr_config_type_t {
    CR_CONF_STR,   /* any text */
    CR_CONF_INT,   /* decimal integer within [min, max] */
    CR_CONF_BOOL,  /* true|false|yes|no|on|off|1|0 */
    CR_CONF_SIZE,  /* bytes, with optional k/m/g suffix (1024-based): "256k" */
    CR_CONF_MS,    /* a duration in milliseconds, with optional ms/s/m/h suffix: "20s" */
} cr_config_type_t;

/* One entry of a component's table; the table ends with an entry whose name is NULL. */
typedef struct st_cr_config_entry_t {
    const char *name;      /* "http.listen", or a top-level "data_dir" */
    cr_config_type_t type;
    const char *defval;    /* as text, parsed like a value from the file; "" for empty */
    const char *help;      /* one sentence */
    int64_t min, max;      /* bounds for INT/SIZE/MS; both 0 means unbounded */
} cr_config_entry_t;

/* A loaded configuration: the table plus one value per entry. */
typedef struct st_cr_config_t {
    const cr_config_entry_t *table;
    size_t count;
    struct st_cr_config_value_t {
        char *str;        /* the text (owned); for every type */
        int64_t num;      /* INT, SIZE (bytes), MS (milliseconds), BOOL (0/1) */
        const char *from; /* "default", "file", "env" */
    } *values;
} cr_config_t;

/* Loads defaults, then the INI file at `path` (NULL: none), then the environment (`environ`). Unknown keys,
 * bad values and syntax errors fail with CR_ECONFIG naming file:line and key (cr_error_last). Returns 0,
 * CR_ECONFIG, CR_EIO (file unreadable) or CR_ENOMEM. On failure *conf holds nothing to free. */
int cr_config_load(cr_config_t *conf, const cr_config_entry_t *table, const char *path);

/* Sets one key from text as if from `from` ("cli", ...). Returns 0, CR_ENOTFOUND or CR_ECONFIG. */
int cr_config_set(cr_config_t *conf, const char *name, const char *value, const char *from);

void cr_config_free(cr_config_t *conf);

/* Typed getters; the name must be in the table (abort otherwise: a programming error). */
const char *cr_config_str(const cr_config_t *conf, const char *name);
int64_t cr_config_int(const cr_config_t *conf, const char *name);
int cr_config_bool(const cr_config_t *conf, const char *name);

/* The environment variable of an entry: "http.listen" -> "CORRAL_HTTP_LISTEN". out needs 128 bytes. */
void cr_config_env_name(char *out, size_t outlen, const char *name);

/* Prints every key with its environment variable, type, default and help (the --help section). */
void cr_config_print_help(FILE *fp, const cr_config_entry_t *table);

/* Prints a commented example INI file with every key at its default, grouped by section. */
void cr_config_print_example(FILE *fp, const cr_config_entry_t *table, const char *title);

/* The start of every binary's main: handles the shared flags (--help, --version, --print-config-example, --config
 * FILE or --config=FILE), then loads the config and starts logging as `component` at log.level. Stops at the first
 * argument that is not one of these flags and stores its index in *rest (argc when none), so a program can take
 * subcommands. `usage` prints the program's own help text (the config keys are printed after it). Returns -1 when
 * the program should go on with *conf loaded (the caller frees it), else the exit status to return now: 0 after
 * --help, --version or --print-config-example, 2 for a bad flag or config (with a message on stderr). */
int cr_config_main(cr_config_t *conf, const cr_config_entry_t *table, const char *program, const char *component, int argc,
                   char **argv, void (*usage)(FILE *fp), int *rest);

#endif
