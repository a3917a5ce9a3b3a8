/* server/src/main.c — corrald's entry point: flags, config and logging; the host itself is not implemented yet. */
#include "config.h"
#include "corral/error.h"
#include "corral/log.h"
#include <stdio.h>
#include <string.h>

#ifndef CORRAL_VERSION
#error "CORRAL_VERSION must be defined by the build (the top CMakeLists.txt does)"
#endif

#define PROGRAM "corrald"

static void usage(FILE *fp)
{
    fprintf(fp, "Usage: " PROGRAM " [--config FILE]\n"
                "       " PROGRAM " --help | --version | --print-config-example\n"
                "\n"
                "The Corral host: runs AI coding agents in git worktrees, one session each, turns what they do\n"
                "into events for the relay and applies the actions that come back.\n"
                "\n"
                "Options:\n"
                "  --config FILE             read settings from this INI file (the environment still wins)\n"
                "  --print-config-example    print a commented config file with every key at its default\n"
                "  --help                    print this help\n"
                "  --version                 print the version\n"
                "\n");
}

int main(int argc, char **argv)
{
    cr_config_t conf;
    int rest, rc;
    if ((rc = cr_config_main(&conf, host_config_table, PROGRAM, "corrald", argc, argv, usage, &rest)) >= 0)
        return rc;
    if (rest < argc) {
        fprintf(stderr, PROGRAM ": unknown argument '%s' (see " PROGRAM " --help)\n", argv[rest]);
        cr_config_free(&conf);
        return 2;
    }
    cr_log(CR_LOG_INFO, PROGRAM " %s: the host is not implemented yet in this version; exiting", CORRAL_VERSION);
    cr_config_free(&conf);
    return 1;
}
