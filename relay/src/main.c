/* relay/src/main.c — corral-relay's entry point: flags, config and logging; the relay itself is not implemented yet. */
#include "config.h"
#include "corral/error.h"
#include "corral/log.h"
#include <stdio.h>
#include <string.h>

#ifndef CORRAL_VERSION
#error "CORRAL_VERSION must be defined by the build (the top CMakeLists.txt does)"
#endif

#define PROGRAM "corral-relay"

static void usage(FILE *fp)
{
    fprintf(fp, "Usage: " PROGRAM " [--config FILE]\n"
                "       " PROGRAM " --help | --version | --print-config-example\n"
                "\n"
                "The Corral relay: stores the events hosts send, fans them out live to phones, sends push\n"
                "notifications and queues the phones' actions for their hosts.\n"
                "\n"
                "Options:\n"
                "  --config FILE             read settings from this INI file (the environment still wins)\n"
                "  --print-config-example    print a commented config file with every key at its default\n"
                "  --help                    print this help\n"
                "  --version                 print the version\n"
                "\n");
    cr_config_print_help(fp, relay_config_table);
}

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    int help = 0, version = 0, example = 0;
    cr_log_level_t level;
    cr_config_t conf;

    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            help = 1;
        } else if (strcmp(a, "--version") == 0) {
            version = 1;
        } else if (strcmp(a, "--print-config-example") == 0) {
            example = 1;
        } else if (strcmp(a, "--config") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, PROGRAM ": --config needs a file name\n");
                return 2;
            }
            config_path = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            config_path = a + 9;
        } else {
            fprintf(stderr, PROGRAM ": unknown argument '%s' (see " PROGRAM " --help)\n", a);
            return 2;
        }
    }
    if (help) {
        usage(stdout);
        return 0;
    }
    if (version) {
        printf(PROGRAM " %s\n", CORRAL_VERSION);
        return 0;
    }
    if (example) {
        cr_config_print_example(stdout, relay_config_table,
                                PROGRAM " example configuration (printed by " PROGRAM " --print-config-example)");
        return 0;
    }

    if (cr_config_load(&conf, relay_config_table, config_path) != 0) {
        fprintf(stderr, PROGRAM ": %s\n", cr_error_last()->message);
        return 2;
    }
    if (cr_log_level_parse(cr_config_str(&conf, "log.level"), &level) != 0) {
        fprintf(stderr, PROGRAM ": log.level: %s\n", cr_error_last()->message);
        cr_config_free(&conf);
        return 2;
    }
    cr_log_init("relay", level);
    cr_log(CR_LOG_INFO, PROGRAM " %s: the relay is not implemented yet in this version; exiting", CORRAL_VERSION);
    cr_config_free(&conf);
    return 1;
}
