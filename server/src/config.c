/* server/src/config.c — corrald's configuration table: every key the host reads, with its default and help. */
#include "config.h"

const cr_config_entry_t host_config_table[] = {
    {"relay.url", CR_CONF_STR, "", "URL of the relay this host reports to (https://relay.example.com); empty for none.", 0, 0},
    {"relay.token", CR_CONF_STR, "",
     "Host token (crt_...) the relay issued; a secret: keep this file mode 0600 (corral up --relay URL --token TOKEN "
     "writes both keys into <home>/corrald.ini so) or use the environment variable.", 0, 0},
    {"relay.seal", CR_CONF_STR, "auto",
     "auto: once paired (team.key and team.name in home), event bodies go to the relay sealed with the team key and "
     "sealed actions are opened (DESIGN.md 2.1); off: bodies go plain, so the relay can write richer push text.", 0, 0},
    {"relay.ca_file", CR_CONF_STR, "", "PEM file of CA certificates to trust for the relay; empty for the system's.", 0, 0},
    {"home", CR_CONF_STR, "~/.local/state/corral",
     "Directory for corrald's own state: socket, config, keys and tokens; a leading ~ is your home directory.", 0, 0},
    {"agent.claude_cmd", CR_CONF_STR, "claude", "Program that runs Claude Code, looked up on PATH unless it has a '/'.", 0, 0},
    {"agent.codex_cmd", CR_CONF_STR, "codex", "Program that runs Codex, looked up on PATH unless it has a '/'.", 0, 0},
    {"worktree.spare", CR_CONF_BOOL, "on",
     "Keep one spare worktree of the base branch written ahead of time (<repo>.worktrees/.spare-*, made in the "
     "background), so that a new session takes it in milliseconds instead of writing every file; off: each session's "
     "files are written when it is made.", 0, 0},
    {"merge.policy", CR_CONF_STR, "ff",
     "How an approved diff reaches the base branch: none, ff (fast-forward), squash or merge.", 0, 0},
    {"transcribe.command", CR_CONF_STR, "",
     "Program that turns a voice reply's recording into text (e.g. a local whisper.cpp): run by /bin/sh with the "
     "audio file's path (WAV or Ogg Opus) as its last argument; what it prints is the transcript. Empty: offline "
     "PocketSphinx, which understands only the commands a request accepts (approve, reject, yes, no, option N).", 0, 0},
    {"voice.model", CR_CONF_STR, "",
     "PocketSphinx model directory (en-us/ and cmudict-en-us.dict); empty: Debian's pocketsphinx-en-us.", 0, 0},
    {"loop.coalesce_ms", CR_CONF_MS, "10ms",
     "Under load corrald wakes at most once per this long and handles what came meanwhile in one pass (fewer system "
     "calls per event; an event after a quiet spell is handled at once, one in a busy spell waits at most this); 0: "
     "wake for every event.", 0, 100},
    {"log.level", CR_CONF_STR, "info", "Least severe level logged: debug, info, warn or error.", 0, 0},
    {.name = NULL},
};
