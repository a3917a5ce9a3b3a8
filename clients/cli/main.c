/* clients/cli/main.c — the corral CLI: lists the planned commands of DESIGN.md section 9; none is implemented yet. */
#include <stdio.h>
#include <string.h>

#ifndef CORRAL_VERSION
#error "CORRAL_VERSION must be defined by the build (the top CMakeLists.txt does)"
#endif

/* Exit status for a command line the CLI cannot act on: a usage error, an unknown or unimplemented command. */
#define CLI_EXIT_USAGE 2

static const struct {
    const char *name;
    const char *help;
} commands[] = {
    {"up", "start corrald for this repository and connect it to the relay"},
    {"new", "start a session: worktree, branch and agent on a task"},
    {"ls", "list sessions and what each one needs"},
    {"log", "show a session's events"},
    {"diff", "show a session's changes against its base branch"},
    {"approve", "approve a session's pending request or diff"},
    {"reject", "reject a session's pending request or diff, with a reason"},
    {"reply", "answer an agent's question"},
    {"task", "queue a follow-up task for a session"},
    {"suspend", "stop a session's agent, keeping its worktree"},
    {"resume", "restart a suspended session"},
    {"pair", "pair a phone with this host through a QR code"},
    {"identity", "create and list agent identities"},
    {"secret", "set, list, read and delete an identity's secrets"},
    {"inbox", "read the mail and SMS an identity received"},
    {"otp", "wait for a one-time code sent to an identity"},
    {"ask", "from inside a session: ask the human and wait for the answer"},
    {"whoami", "show the host, team and relay this CLI talks to"},
};

static void usage(FILE *fp)
{
    fprintf(fp, "Usage: corral COMMAND [ARGS] [--json]\n"
                "       corral --help | --version\n"
                "\n"
                "Runs AI coding agents in parallel, each in its own git worktree, and lets you supervise them\n"
                "from your phone.\n"
                "\n"
                "Commands (planned; this version implements none of them yet):\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); ++i)
        fprintf(fp, "  %-9s %s (not yet implemented)\n", commands[i].name, commands[i].help);
    fprintf(fp, "\n"
                "Options:\n"
                "  --json     print a command's result as JSON (with every command)\n"
                "  --help     print this help\n"
                "  --version  print the version\n");
}

int main(int argc, char **argv)
{
    const char *cmd;

    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("corral %s\n", CORRAL_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); ++i) {
        if (strcmp(cmd, commands[i].name) == 0) {
            fprintf(stderr, "corral: '%s' is not implemented yet\n", cmd);
            return CLI_EXIT_USAGE;
        }
    }
    if (cmd[0] == '-')
        fprintf(stderr, "corral: unknown option '%s' (see corral --help)\n", cmd);
    else
        fprintf(stderr, "corral: unknown command '%s' (see corral --help)\n", cmd);
    return CLI_EXIT_USAGE;
}
