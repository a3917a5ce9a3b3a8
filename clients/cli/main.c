/* clients/cli/main.c — the corral CLI: talks to corrald's local API (HTTP/1.1 with JSON over its unix socket) to start,
 * list, follow, review and steer sessions, and lets an agent ask its human a question (`corral ask`). */
#define _GNU_SOURCE
#include "corral/buf.h"
#include "corral/fs.h"
#include "corral/error.h"
#include "corral/json.h"
#include "corral/mp.h"
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CORRAL_VERSION
#error "CORRAL_VERSION must be defined by the build (the top CMakeLists.txt does)"
#endif

/* Exit statuses a script can rely on (also in --help). */
#define EXIT_OK 0
#define EXIT_ERROR 1     /* anything not listed below */
#define EXIT_USAGE 2     /* a bad command line */
#define EXIT_NOTFOUND 3  /* no such session, base branch, agent program or request */
#define EXIT_CONFLICT 4  /* it does not apply now: the name is taken, nothing waits, the session has finished, a merge
                            conflict */
#define EXIT_NOHOST 5    /* corrald is not running (nothing listens on its socket) */
#define EXIT_DENIED 6    /* the token does not reach that (a session token used for another session) */
#define EXIT_TIMEOUT 7   /* inbox / otp: nothing matching came within --wait */

#define RESPONSE_MAX (64u << 20)

enum { MP_NIL = 0, MP_BOOL = 1, MP_UINT = 2, MP_INT = 3, MP_STR = 5, MP_ARRAY = 6, MP_MAP = 7 };

static int json_out;
static char sock_path[4096];
static const char *token;

static const struct {
    const char *name;
    const char *args;
    const char *help;
} commands[] = {
    {"new", "TASK --name NAME [--agent claude|codex|shell] [--cmd CMD] [--identity IDN] [--base BRANCH]",
     "start a session: branch corral/NAME, its worktree and the agent on TASK"},
    {"ls", "", "list sessions, their state and what each one needs"},
    {"log", "NAME [-f] [--after N]", "show a session's events (-f: follow until it ends)"},
    {"diff", "NAME", "show a session's changes against its base branch"},
    {"rm", "NAME [--keep-branch]", "stop a session's agent and remove its worktree, branch and record"},
    {"approve", "NAME [--rid RID]", "approve the pending request, or commit and merge the pending diff"},
    {"reject", "NAME [--reason TEXT] [--discard] [--rid RID]", "deny the pending request, or reject the diff"},
    {"reply", "NAME TEXT", "answer the agent's question, or send it your next message"},
    {"task", "NAME TEXT", "queue a follow-up task (tasks.md); it starts when the agent is idle"},
    {"interrupt", "NAME", "interrupt the agent's running turn"},
    {"suspend", "NAME", "end the agent cleanly, keeping its worktree and conversation"},
    {"resume", "NAME [TEXT]", "restart a suspended session's agent in the same conversation"},
    {"ask", "QUESTION [--option TEXT]...", "from inside a session: ask the human (offering up to 9 answers) and print the answer"},
    {"up", "[--relay URL --token TOKEN] [--repo DIR]",
     "keep the relay and host token in <home>/corrald.ini (mode 0600) and start corrald for the repository in the\n"
     "            background (log: <home>/corrald.log) unless it runs already; waits until it answers"},
    {"identity", "create NAME [--email ADDR] | ls | show [NAME]",
     "make an identity for agents (its own email address, a phone number when the relay has one free, an\n"
     "            encrypted vault), list them, or show one"},
    {"secret", "set KEY [VALUE|-] [--inject] | get KEY [--version N] | ls | rm KEY   [--identity NAME]",
     "the identity's end-to-end encrypted secrets (VALUE omitted or '-': read from stdin; --inject: the value\n"
     "            becomes the environment variable KEY of `corral run` and the identity's sessions)"},
    {"inbox", "[--wait S] [--subject TEXT] [--from TEXT] [--since ID|MS] [--list] [--identity NAME]",
     "wait for the identity's next mail or SMS not seen yet by this session and print it (--list: the newest)"},
    {"otp", "[--wait S] [--subject TEXT] [--from TEXT] [--identity NAME]",
     "wait for a one-time code in the identity's mail or SMS and print just the code"},
    {"whoami", "", "the session and identity this shell works as (CORRAL_TOKEN, CORRAL_IDENTITY)"},
    {"run", "--identity NAME -- COMMAND [ARGS...]",
     "run COMMAND with the identity's injected secrets in its environment; their values are masked in its output"},
    {"pair", "[--json]", "ask the relay for a one-time pairing code (10 minutes) and show the QR code a phone scans:\n"
     "            <relay>/#pair=CODE&k=TEAMKEY (the team key K from <home>/team.key, base64url)"},
};

static void usage(FILE *fp)
{
    fprintf(fp, "Usage: corral COMMAND [ARGS] [--json]\n"
                "       corral --help | --version\n"
                "\n"
                "Runs AI coding agents in parallel, each in its own git worktree, and lets you supervise them.\n"
                "It talks to corrald over $CORRAL_HOME/corrald.sock (default ~/.local/state/corral/corrald.sock;\n"
                "inside a session CORRAL_URL and CORRAL_TOKEN say where and who).\n"
                "\nCommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); ++i)
        fprintf(fp, "  %-9s %s\n            %s\n", commands[i].name, commands[i].args, commands[i].help);
    fprintf(fp, "\n"
                "Options:\n"
                "  --json     print the result as JSON (log: one event a line) — errors too, on stdout\n"
                "  --aid ID   (actions) the idempotency key: the same ID is applied only once\n"
                "  --relay URL, --token TOKEN, --repo DIR   (up) the relay, its host token (a secret: never printed) and\n"
                "             the repository corrald runs for (default: the one containing the current directory)\n"
                "  --help     print this help\n"
                "  --version  print the version\n"
                "\n"
                "Exit status:\n"
                "  0 ok · 1 error · 2 usage · 3 not found (session, base branch, agent program) ·\n"
                "  4 conflict (name taken, nothing pending, session finished, merge conflict) ·\n"
                "  5 corrald not running · 6 not allowed with this session token · 7 (inbox, otp) nothing came in time\n");
}

/* ---- HTTP over the unix socket ------------------------------------------------------------------------------- */

static size_t on_data(char *p, size_t size, size_t n, void *data)
{
    cr_buf_t *b = data;
    return cr_buf_append(b, p, size * n) == 0 ? size * n : 0;
}

/* Sends a request; *status gets the HTTP status and resp the body. Returns 0, or EXIT_NOHOST / EXIT_ERROR after
 * printing why. */
static int request(long *status, cr_buf_t *resp, const char *method, const char *path, const char *body, long timeout_s)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hdr = NULL;
    char url[4096 + 32], auth[256];
    CURLcode rc;
    if (c == NULL) {
        fprintf(stderr, "corral: cannot initialise libcurl\n");
        return EXIT_ERROR;
    }
    snprintf(url, sizeof(url), "http://corrald%s", path);
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock_path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    hdr = curl_slist_append(hdr, "Accept: application/json");
    if (body != NULL) {
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    if (token != NULL && token[0] != '\0') {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        hdr = curl_slist_append(hdr, auth);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    if (rc == CURLE_COULDNT_CONNECT) {
        fprintf(stderr, "corral: corrald is not running (nothing listens on %s); start it with `corrald --repo DIR`\n",
                sock_path);
        return EXIT_NOHOST;
    }
    if (rc != CURLE_OK) {
        fprintf(stderr, "corral: talking to corrald on %s: %s\n", sock_path, curl_easy_strerror(rc));
        return EXIT_ERROR;
    }
    return 0;
}

/* ---- JSON in and out ----------------------------------------------------------------------------------------- */

static void json_str(cr_buf_t *b, const char *s)
{
    cr_buf_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; ++p) {
        if (*p == '"' || *p == '\\')
            cr_buf_appendf(b, "\\%c", *p);
        else if (*p < 0x20)
            cr_buf_appendf(b, "\\u%04x", *p);
        else
            cr_buf_append(b, p, 1);
    }
    cr_buf_append(b, "\"", 1);
}

/* Appends ,"key":"value" (or the first pair without the comma when b ends with '{'). */
static void json_kv(cr_buf_t *b, const char *key, const char *value)
{
    if (value == NULL)
        return;
    if (b->len > 0 && b->base[b->len - 1] != '{')
        cr_buf_append(b, ",", 1);
    json_str(b, key);
    cr_buf_append(b, ":", 1);
    json_str(b, value);
}

/* The value at key of the map at v, as a span; {NULL, 0} when absent. */
static cr_span_t get(cr_span_t v, const char *key)
{
    cr_span_t out = {NULL, 0};
    if (v.base == NULL || cr_mp_map_get(v.base, v.len, key, &out) != 0)
        out = (cr_span_t){NULL, 0};
    return out;
}

static int item(cr_span_t v, cr_mp_item_t *it)
{
    memset(it, 0, sizeof(*it));
    if (v.base == NULL || cr_mp_read(v.base, v.base + v.len, it) == 0) {
        it->type = -1;
        return -1;
    }
    return 0;
}

/* A str at key as "%.*s" arguments. */
#define STR(v, key) (int)str_of(v, key).len, str_of(v, key).base
static cr_span_t str_of(cr_span_t v, const char *key)
{
    cr_mp_item_t it;
    if (item(get(v, key), &it) != 0 || it.type != MP_STR)
        return (cr_span_t){"", 0};
    return it.bytes;
}

static uint64_t uint_of(cr_span_t v, const char *key)
{
    cr_mp_item_t it;
    if (item(get(v, key), &it) != 0 || it.type != MP_UINT)
        return 0;
    return it.u;
}

static int bool_of(cr_span_t v, const char *key)
{
    cr_mp_item_t it;
    return item(get(v, key), &it) == 0 && it.type == MP_BOOL && it.u != 0;
}

/* The elements of the array at v: calls fn for each. */
static void each(cr_span_t v, void (*fn)(cr_span_t e, void *data), void *data)
{
    cr_mp_item_t it;
    const char *p, *end;
    size_t hdr;
    if (v.base == NULL)
        return;
    end = v.base + v.len;
    if ((hdr = cr_mp_read(v.base, end, &it)) == 0 || it.type != MP_ARRAY)
        return;
    p = v.base + hdr;
    for (uint32_t i = 0; i < it.count && p < end; ++i) {
        const char *next = cr_mp_skip(p, end);
        fn((cr_span_t){p, (size_t)(next - p)}, data);
        p = next;
    }
}

/* Converts a response body to msgpack in mp; returns its span, {NULL,0} when it is not JSON. */
static cr_span_t parse(cr_buf_t *mp, const cr_buf_t *resp)
{
    cr_limits_t lim = cr_limits_default;
    lim.max_depth += 4;
    lim.max_envelope = RESPONSE_MAX;
    if (resp->len == 0 || cr_json_to_msgpack(mp, resp->base, resp->len, &lim) != 0)
        return (cr_span_t){NULL, 0};
    return (cr_span_t){mp->base, mp->len};
}

/* Reports an error answer; returns the exit status for it. */
static int fail(long status, const cr_buf_t *resp)
{
    cr_buf_t mp;
    cr_span_t v, e;
    int code = status == 404 ? EXIT_NOTFOUND : status == 409 ? EXIT_CONFLICT : status == 401 || status == 403 ? EXIT_DENIED
             : status == 400 || status == 405 ? EXIT_ERROR : EXIT_ERROR;
    cr_buf_init(&mp, RESPONSE_MAX);
    v = parse(&mp, resp);
    e = get(v, "error");
    if (json_out) {
        fwrite(resp->base, 1, resp->len, stdout);
        putchar('\n');
    }
    if (e.base != NULL)
        fprintf(stderr, "corral: %.*s\n", STR(e, "message"));
    else if (v.base != NULL && get(v, "detail").base != NULL)
        fprintf(stderr, "corral: %.*s\n", STR(v, "detail"));
    else
        fprintf(stderr, "corral: corrald answered %ld\n", status);
    cr_buf_free(&mp);
    return code;
}

/* Runs one request and, for a 2xx answer, gives the parsed body in mp / *v. Returns 0 or an exit status. */
static int call(cr_buf_t *resp, cr_buf_t *mp, cr_span_t *v, const char *method, const char *path, const char *body,
                long timeout_s, long *status_out)
{
    long status = 0;
    int rc;
    cr_buf_init(resp, RESPONSE_MAX);
    cr_buf_init(mp, RESPONSE_MAX);
    if ((rc = request(&status, resp, method, path, body, timeout_s)) != 0)
        return rc;
    if (status_out != NULL)
        *status_out = status;
    if (status < 200 || status > 299)
        return fail(status, resp);
    *v = parse(mp, resp);
    return 0;
}

static void print_raw(const cr_buf_t *resp)
{
    fwrite(resp->base, 1, resp->len, stdout);
    putchar('\n');
}

/* ---- commands ------------------------------------------------------------------------------------------------ */

typedef struct st_args_t {
    const char *pos[4];
    int npos;
    const char *name, *agent, *cmd, *identity, *base, *rid, *reason, *aid, *after, *relay, *relay_token, *repo;
    const char *email, *wait, *subject, *from, *since, *version, *limit;
    int follow, discard, keep_branch, inject, list;
    const char *options[9]; /* ask --option, in order */
    int noptions;
} args_t;

/* Escapes a path segment (session names are [A-Za-z0-9._-], but the user may type anything). */
static void path_seg(char *out, size_t outlen, const char *s)
{
    size_t o = 0;
    for (; *s != '\0' && o + 4 < outlen; ++s) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, outlen - o, "%%%02X", c);
    }
    out[o] = '\0';
}

static int cmd_new(const args_t *a)
{
    cr_buf_t body, resp, mp;
    cr_span_t v = {0};
    int rc;
    if (a->npos != 1 || a->name == NULL) {
        fprintf(stderr, "corral: usage: corral new \"TASK\" --name NAME [--agent A] [--cmd C] [--identity I] [--base B]\n");
        return EXIT_USAGE;
    }
    cr_buf_init(&body, 1u << 20);
    cr_buf_append(&body, "{", 1);
    json_kv(&body, "task", a->pos[0]);
    json_kv(&body, "name", a->name);
    json_kv(&body, "agent", a->agent);
    json_kv(&body, "cmd", a->cmd);
    json_kv(&body, "identity", a->identity);
    json_kv(&body, "base", a->base);
    cr_buf_append(&body, "}", 2);
    rc = call(&resp, &mp, &v, "POST", "/v1/sessions", body.base, 60, NULL);
    if (rc == 0) {
        if (json_out)
            print_raw(&resp);
        else
            printf("%.*s: started %.*s on %.*s (from %.*s) in %.*s\n", STR(v, "name"), STR(v, "agent"), STR(v, "branch"),
                   STR(v, "base"), STR(v, "worktree"));
    }
    cr_buf_free(&body);
    cr_buf_free(&resp);
    cr_buf_free(&mp);
    return rc;
}

static void ls_row(cr_span_t s, void *data)
{
    cr_span_t needs = get(s, "needs");
    cr_mp_item_t it;
    (void)data;
    if (item(needs, &it) == 0 && it.type == MP_MAP)
        printf("%-24.*s %-10.*s %-7.*s %.*s\n", STR(s, "name"), STR(s, "state"), STR(s, "agent"), STR(needs, "k"));
    else
        printf("%-24.*s %-10.*s %-7.*s -\n", STR(s, "name"), STR(s, "state"), STR(s, "agent"));
}

static int cmd_ls(const args_t *a)
{
    cr_buf_t resp, mp;
    cr_span_t v = {0};
    int rc;
    if (a->npos != 0) {
        fprintf(stderr, "corral: usage: corral ls [--json]\n");
        return EXIT_USAGE;
    }
    if ((rc = call(&resp, &mp, &v, "GET", "/v1/sessions", NULL, 30, NULL)) == 0) {
        if (json_out) {
            print_raw(&resp);
        } else {
            printf("%-24s %-10s %-7s %s\n", "NAME", "STATE", "AGENT", "NEEDS");
            each(get(v, "sessions"), ls_row, NULL);
        }
    }
    cr_buf_free(&resp);
    cr_buf_free(&mp);
    return rc;
}

static void print_lines(const char *prefix, cr_span_t t)
{
    const char *p = t.base, *end = t.base + t.len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl != NULL ? nl : end;
        printf("%s%.*s\n", prefix, (int)(stop - p), p);
        p = stop + 1;
    }
}

static void log_event(cr_span_t e, void *data)
{
    cr_span_t b = get(e, "b");
    cr_span_t k = str_of(e, "k");
    uint64_t seq = uint_of(e, "seq");
    cr_mp_item_t it;
    (void)data;
    if (json_out) {
        cr_buf_t j;
        cr_buf_init(&j, RESPONSE_MAX);
        if (cr_json_from_msgpack(&j, e.base, e.len, NULL) == 0)
            printf("%.*s\n", (int)j.len, j.base);
        cr_buf_free(&j);
        return;
    }
    if (item(b, &it) != 0 || it.type != MP_MAP) {
        printf("#%llu %.*s (sealed)\n", (unsigned long long)seq, (int)k.len, k.base);
        return;
    }
#define IS(lit) cr_span_eq(k, lit, sizeof(lit) - 1)
    printf("#%llu %.*s: ", (unsigned long long)seq, (int)k.len, k.base);
    if (IS("session.started"))
        printf("%.*s (%.*s) on %.*s from %.*s\n", STR(b, "name"), STR(b, "agent"), STR(b, "branch"), STR(b, "base"));
    else if (IS("session.state"))
        printf("%.*s%s%.*s\n", STR(b, "state"), str_of(b, "reason").len > 0 ? " — " : "", STR(b, "reason"));
    else if (IS("agent.message") || IS("question")) {
        printf("\n");
        print_lines("  ", str_of(b, "text"));
    } else if (IS("agent.tool")) {
        printf("%.*s %.*s%s\n", STR(b, "tool"), STR(b, "summary"), bool_of(b, "is_error") ? " (error)" : "");
        if (get(b, "output").base != NULL)
            print_lines("  | ", str_of(b, "output"));
    } else if (IS("approval.request"))
        printf("%.*s %.*s — corral approve|reject (rid %.*s)\n", STR(b, "tool"), STR(b, "summary"), STR(b, "rid"));
    else if (IS("diff.ready"))
        printf("+%llu -%llu in %zu files — corral diff / approve / reject\n", (unsigned long long)uint_of(b, "add"),
               (unsigned long long)uint_of(b, "del"),
               (size_t)(item(get(b, "files"), &it) == 0 && it.type == MP_ARRAY ? it.count : 0));
    else if (IS("action.applied"))
        printf("%s %.*s%s%.*s\n", bool_of(b, "ok") ? "ok" : "FAILED", STR(b, "detail"),
               str_of(b, "commit").len > 0 ? " commit " : "", STR(b, "commit"));
    else if (IS("session.done"))
        printf("%.*s\n", STR(b, "summary"));
    else {
        cr_buf_t j;
        cr_buf_init(&j, RESPONSE_MAX);
        if (cr_json_from_msgpack(&j, b.base, b.len, NULL) == 0)
            printf("%.*s\n", (int)j.len, j.base);
        cr_buf_free(&j);
    }
#undef IS
    fflush(stdout);
}

static int cmd_log(const args_t *a)
{
    char seg[512], path[1024];
    unsigned long long after = a->after != NULL ? strtoull(a->after, NULL, 10) : 0;
    int rc;
    if (a->npos != 1) {
        fprintf(stderr, "corral: usage: corral log NAME [-f] [--after N]\n");
        return EXIT_USAGE;
    }
    path_seg(seg, sizeof(seg), a->pos[0]);
    for (;;) {
        cr_buf_t resp, mp;
        cr_span_t v = {0}, st;
        uint64_t next;
        int more, ended;
        snprintf(path, sizeof(path), "/v1/sessions/%s/transcript?after=%llu%s", seg, after, a->follow ? "&wait=25" : "");
        if ((rc = call(&resp, &mp, &v, "GET", path, NULL, 60, NULL)) != 0) {
            cr_buf_free(&resp);
            cr_buf_free(&mp);
            return rc;
        }
        each(get(v, "events"), log_event, NULL);
        next = uint_of(v, "next");
        more = next > after;
        after = next;
        st = str_of(v, "state");
        ended = cr_span_eq(st, "done", 4) || cr_span_eq(st, "failed", 6);
        cr_buf_free(&resp);
        cr_buf_free(&mp);
        if (!a->follow || (!more && ended))
            break;
    }
    return 0;
}

static int cmd_diff(const args_t *a)
{
    char seg[512], path[1024];
    cr_buf_t resp, mp;
    cr_span_t v = {0};
    int rc;
    if (a->npos != 1) {
        fprintf(stderr, "corral: usage: corral diff NAME\n");
        return EXIT_USAGE;
    }
    path_seg(seg, sizeof(seg), a->pos[0]);
    snprintf(path, sizeof(path), "/v1/sessions/%s/diff", seg);
    if ((rc = call(&resp, &mp, &v, "GET", path, NULL, 60, NULL)) == 0) {
        if (json_out) {
            print_raw(&resp);
        } else {
            cr_span_t p = str_of(v, "patch");
            fwrite(p.base, 1, p.len, stdout);
            if (bool_of(v, "truncated"))
                printf("... (cut: the diff is larger)\n");
        }
    }
    cr_buf_free(&resp);
    cr_buf_free(&mp);
    return rc;
}

static int cmd_rm(const args_t *a)
{
    char seg[512], path[1024];
    cr_buf_t resp, mp;
    cr_span_t v = {0};
    int rc;
    if (a->npos != 1) {
        fprintf(stderr, "corral: usage: corral rm NAME [--keep-branch]\n");
        return EXIT_USAGE;
    }
    path_seg(seg, sizeof(seg), a->pos[0]);
    snprintf(path, sizeof(path), "/v1/sessions/%s%s", seg, a->keep_branch ? "?keep_branch=1" : "");
    if ((rc = call(&resp, &mp, &v, "DELETE", path, NULL, 60, NULL)) == 0) {
        if (json_out)
            print_raw(&resp);
        else
            printf("%.*s: removed%s\n", STR(v, "removed"), a->keep_branch ? " (branch kept)" : "");
    }
    cr_buf_free(&resp);
    cr_buf_free(&mp);
    return rc;
}

static int cmd_action(const char *kind, const args_t *a)
{
    char seg[512], path[1024];
    cr_buf_t body, resp, mp;
    cr_span_t v = {0};
    const char *text = NULL;
    int rc, wants_text = strcmp(kind, "reply") == 0 || strcmp(kind, "task") == 0;
    if (a->npos < 1 || a->npos > 2 || (wants_text && a->npos != 2) ||
        (a->npos == 2 && !wants_text && strcmp(kind, "resume") != 0)) {
        fprintf(stderr, "corral: usage: corral %s NAME%s\n", kind, wants_text ? " TEXT" : "");
        return EXIT_USAGE;
    }
    if (a->npos == 2)
        text = a->pos[1];
    path_seg(seg, sizeof(seg), a->pos[0]);
    snprintf(path, sizeof(path), "/v1/sessions/%s/actions", seg);
    cr_buf_init(&body, 1u << 20);
    cr_buf_append(&body, "{", 1);
    json_kv(&body, "k", kind);
    json_kv(&body, "aid", a->aid);
    cr_buf_append(&body, ",\"b\":{", 6);
    json_kv(&body, "rid", a->rid);
    json_kv(&body, "text", text);
    json_kv(&body, "reason", a->reason);
    if (a->discard)
        cr_buf_appendf(&body, "%s\"discard\":true", body.base[body.len - 1] == '{' ? "" : ",");
    cr_buf_append(&body, "}}", 3);
    if ((rc = call(&resp, &mp, &v, "POST", path, body.base, 120, NULL)) == 0) {
        if (json_out)
            print_raw(&resp);
        else
            printf("%s: %.*s%s\n", a->pos[0], STR(v, "detail"), bool_of(v, "duplicate") ? " (same aid: not applied again)" : "");
    }
    cr_buf_free(&body);
    cr_buf_free(&resp);
    cr_buf_free(&mp);
    return rc;
}

static int cmd_ask(const args_t *a)
{
    cr_buf_t body, resp, mp;
    cr_span_t v = {0};
    char rid[64], path[256];
    long status = 0;
    int rc;
    if (a->npos != 1) {
        fprintf(stderr, "corral: usage: corral ask \"QUESTION\" [--option TEXT]...\n");
        return EXIT_USAGE;
    }
    if (token == NULL || token[0] == '\0') {
        fprintf(stderr, "corral: ask works from inside a Corral session (CORRAL_TOKEN is not set)\n");
        return EXIT_USAGE;
    }
    cr_buf_init(&body, 1u << 20);
    cr_buf_append(&body, "{", 1);
    json_kv(&body, "text", a->pos[0]);
    if (a->noptions > 0) {
        cr_buf_append(&body, ",\"options\":[", 12);
        for (int i = 0; i < a->noptions; ++i) {
            if (i > 0)
                cr_buf_append(&body, ",", 1);
            json_str(&body, a->options[i]);
        }
        cr_buf_append(&body, "]", 1);
    }
    cr_buf_append(&body, "}", 2);
    rc = call(&resp, &mp, &v, "POST", "/v1/ask?wait=50", body.base, 120, &status);
    cr_buf_free(&body);
    while (rc == 0 && status == 202) {
        cr_span_t r = str_of(v, "rid");
        snprintf(rid, sizeof(rid), "%.*s", (int)r.len, r.base);
        cr_buf_free(&resp);
        cr_buf_free(&mp);
        snprintf(path, sizeof(path), "/v1/ask/%s?wait=50", rid);
        rc = call(&resp, &mp, &v, "GET", path, NULL, 120, &status);
    }
    if (rc == 0) {
        if (json_out)
            print_raw(&resp);
        else
            printf("%.*s\n", STR(v, "answer"));
    }
    cr_buf_free(&resp);
    cr_buf_free(&mp);
    return rc;
}

/* ---- identities ----------------------------------------------------------------------------------------------- */

static void print_identity(cr_span_t i)
{
    cr_mp_item_t it;
    printf("%.*s  %.*s  %.*s", STR(i, "name"), STR(i, "email"), STR(i, "id"));
    if (item(get(i, "phone"), &it) == 0 && it.type == MP_STR)
        printf("  %.*s", (int)it.bytes.len, it.bytes.base);
    putchar('\n');
}

static void identity_row(cr_span_t i, void *data)
{
    (void)data;
    print_identity(i);
}

/* The identity a command is about: --identity, else $CORRAL_IDENTITY. Prints why and returns NULL when neither. */
static const char *which_identity(const args_t *a)
{
    const char *n = a->identity != NULL ? a->identity : getenv("CORRAL_IDENTITY");
    if (n == NULL || n[0] == '\0') {
        fprintf(stderr, "corral: which identity? give --identity NAME (inside a session CORRAL_IDENTITY says)\n");
        return NULL;
    }
    return n;
}

static int cmd_identity(const args_t *a)
{
    cr_buf_t body, resp, mp;
    cr_span_t v = {0};
    char path[512], seg[256];
    const char *sub = a->npos > 0 ? a->pos[0] : "ls";
    int rc;
    if (strcmp(sub, "create") == 0) {
        if (a->npos != 2) {
            fprintf(stderr, "corral: usage: corral identity create NAME [--email ADDR]\n");
            return EXIT_USAGE;
        }
        cr_buf_init(&body, 8192);
        cr_buf_append(&body, "{", 1);
        json_kv(&body, "name", a->pos[1]);
        json_kv(&body, "email", a->email);
        cr_buf_append(&body, "}", 2);
        rc = call(&resp, &mp, &v, "POST", "/v1/identities", body.base, 60, NULL);
        cr_buf_free(&body);
        if (rc == 0)
            json_out ? print_raw(&resp) : print_identity(v);
    } else if (strcmp(sub, "ls") == 0 && a->npos == 1) {
        rc = call(&resp, &mp, &v, "GET", "/v1/identities", NULL, 30, NULL);
        if (rc == 0)
            json_out ? print_raw(&resp) : each(get(v, "identities"), identity_row, NULL);
    } else if (strcmp(sub, "show") == 0 && a->npos <= 2) {
        const char *n = a->npos == 2 ? a->pos[1] : which_identity(a);
        if (n == NULL)
            return EXIT_USAGE;
        path_seg(seg, sizeof(seg), n);
        snprintf(path, sizeof(path), "/v1/identities/%s", seg);
        rc = call(&resp, &mp, &v, "GET", path, NULL, 30, NULL);
        if (rc == 0)
            json_out ? print_raw(&resp) : print_identity(v);
    } else {
        fprintf(stderr, "corral: usage: corral identity create NAME [--email ADDR] | ls | show [NAME]\n");
        return EXIT_USAGE;
    }
    cr_buf_free(&resp);
    cr_buf_free(&mp);
    return rc;
}

static void secret_row(cr_span_t e, void *data)
{
    (void)data;
    printf("%.*s  v%llu%s\n", STR(e, "key"), (unsigned long long)uint_of(e, "version"), bool_of(e, "inject") ? "  inject" : "");
}

/* Reads a secret's value from stdin (up to 64 KiB; one trailing newline dropped) into b. */
static int read_stdin_value(cr_buf_t *b)
{
    char chunk[4096];
    size_t n;
    if (isatty(0))
        fprintf(stderr, "corral: value (end with Ctrl-D): ");
    while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
        if (cr_buf_append(b, chunk, n) != 0)
            return -1;
    if (b->len > 0 && b->base[b->len - 1] == '\n')
        --b->len;
    if (b->len > 0 && b->base[b->len - 1] == '\r')
        --b->len;
    explicit_bzero(chunk, sizeof(chunk));
    return 0;
}

static int cmd_secret(const args_t *a)
{
    cr_buf_t body, resp, mp, val;
    cr_span_t v = {0};
    char path[1024], seg[256], kseg[512];
    const char *sub = a->npos > 0 ? a->pos[0] : "", *n = which_identity(a);
    int rc;
    if (n == NULL)
        return EXIT_USAGE;
    path_seg(seg, sizeof(seg), n);
    if (a->npos >= 2)
        path_seg(kseg, sizeof(kseg), a->pos[1]);
    if (strcmp(sub, "set") == 0 && (a->npos == 2 || a->npos == 3)) {
        cr_buf_init(&val, 64u << 10);
        if (a->npos == 3 && strcmp(a->pos[2], "-") != 0)
            cr_buf_append(&val, a->pos[2], strlen(a->pos[2]));
        else if (read_stdin_value(&val) != 0) {
            fprintf(stderr, "corral: the value is larger than 64 KiB\n");
            cr_buf_free(&val);
            return EXIT_USAGE;
        }
        cr_buf_append(&val, "", 1);
        cr_buf_init(&body, 256u << 10);
        cr_buf_append(&body, "{", 1);
        json_kv(&body, "key", a->pos[1]);
        json_kv(&body, "value", val.base);
        cr_buf_appendf(&body, ",\"inject\":%s}", a->inject ? "true" : "false");
        cr_buf_append(&body, "", 1);
        explicit_bzero(val.base, val.len);
        cr_buf_free(&val);
        snprintf(path, sizeof(path), "/v1/identities/%s/secrets", seg);
        rc = call(&resp, &mp, &v, "POST", path, body.base, 60, NULL);
        explicit_bzero(body.base, body.len);
        cr_buf_free(&body);
        if (rc == 0)
            json_out ? print_raw(&resp) : (void)printf("%.*s v%llu\n", STR(v, "key"), (unsigned long long)uint_of(v, "version"));
    } else if (strcmp(sub, "get") == 0 && a->npos == 2) {
        snprintf(path, sizeof(path), "/v1/identities/%s/secrets/%s%s%s", seg, kseg, a->version != NULL ? "?version=" : "",
                 a->version != NULL ? a->version : "");
        rc = call(&resp, &mp, &v, "GET", path, NULL, 60, NULL);
        if (rc == 0)
            json_out ? print_raw(&resp) : (void)printf("%.*s\n", STR(v, "value"));
        if (resp.base != NULL)
            explicit_bzero(resp.base, resp.len);
        if (mp.base != NULL)
            explicit_bzero(mp.base, mp.len);
    } else if (strcmp(sub, "ls") == 0 && a->npos == 1) {
        snprintf(path, sizeof(path), "/v1/identities/%s/secrets", seg);
        rc = call(&resp, &mp, &v, "GET", path, NULL, 30, NULL);
        if (rc == 0)
            json_out ? print_raw(&resp) : each(get(v, "secrets"), secret_row, NULL);
    } else if (strcmp(sub, "rm") == 0 && a->npos == 2) {
        snprintf(path, sizeof(path), "/v1/identities/%s/secrets/%s", seg, kseg);
        rc = call(&resp, &mp, &v, "DELETE", path, NULL, 30, NULL);
        if (rc == 0 && json_out)
            print_raw(&resp);
    } else {
        fprintf(stderr, "corral: usage: corral secret set KEY [VALUE|-] [--inject] | get KEY [--version N] | ls | rm KEY\n");
        return EXIT_USAGE;
    }
    cr_buf_free(&resp);
    cr_buf_free(&mp);
    return rc;
}

static void print_link(cr_span_t l, void *data)
{
    cr_mp_item_t it;
    (void)data;
    if (item(l, &it) == 0 && it.type == MP_STR)
        printf("Link: %.*s\n", (int)it.bytes.len, it.bytes.base);
}

static void print_message(cr_span_t m, void *data)
{
    cr_mp_item_t it;
    (void)data;
    printf("From: %.*s\nTo: %.*s\n", STR(m, "from"), STR(m, "to"));
    if (str_of(m, "subject").len != 0)
        printf("Subject: %.*s\n", STR(m, "subject"));
    printf("Id: %.*s (%.*s)\n", STR(m, "id"), STR(m, "kind"));
    if (item(get(m, "otp"), &it) == 0 && it.type == MP_STR)
        printf("Code: %.*s\n", (int)it.bytes.len, it.bytes.base);
    each(get(m, "links"), print_link, NULL);
    printf("\n%.*s\n", STR(m, "text"));
}

static void query_add(cr_buf_t *q, const char *name, const char *value)
{
    char enc[1024];
    if (value == NULL)
        return;
    path_seg(enc, sizeof(enc), value);
    cr_buf_appendf(q, "%c%s=%s", q->len == 0 ? '?' : '&', name, enc);
}

static int cmd_inbox(const args_t *a, int otp)
{
    cr_buf_t resp, mp, q;
    cr_span_t v = {0};
    char path[2048], seg[256];
    const char *n = which_identity(a);
    long wait = a->wait != NULL ? atol(a->wait) : 0, status = 0;
    int rc;
    if (n == NULL)
        return EXIT_USAGE;
    if (a->npos != 0 || wait < 0) {
        fprintf(stderr, "corral: usage: corral %s [--wait S] [--subject TEXT] [--from TEXT]\n", otp ? "otp" : "inbox");
        return EXIT_USAGE;
    }
    path_seg(seg, sizeof(seg), n);
    if (a->list) {
        snprintf(path, sizeof(path), "/v1/identities/%s/inbox/list?limit=%s", seg, a->limit != NULL ? a->limit : "20");
        rc = call(&resp, &mp, &v, "GET", path, NULL, 30, NULL);
        if (rc == 0)
            json_out ? print_raw(&resp) : each(get(v, "messages"), print_message, NULL);
        cr_buf_free(&resp);
        cr_buf_free(&mp);
        return rc;
    }
    cr_buf_init(&q, 4096);
    query_add(&q, "subject_contains", a->subject);
    query_add(&q, "from_contains", a->from);
    query_add(&q, "since", a->since);
    cr_buf_appendf(&q, "%cwait=", q.len == 0 ? '?' : '&');
    cr_buf_append(&q, "", 1);
    /* the server holds a poll at most 300 s: ask again until --wait is used up */
    for (;;) {
        long chunk = wait > 300 ? 300 : wait;
        snprintf(path, sizeof(path), "/v1/identities/%s/%s%s%ld", seg, otp ? "otp" : "inbox", q.base, chunk);
        cr_buf_t r2;
        cr_buf_init(&r2, RESPONSE_MAX);
        rc = request(&status, &r2, "GET", path, NULL, chunk + 30);
        if (rc != 0) {
            cr_buf_free(&r2);
            cr_buf_free(&q);
            return rc;
        }
        wait -= chunk;
        if (status == 408 && wait > 0) {
            cr_buf_free(&r2);
            continue;
        }
        resp = r2;
        break;
    }
    cr_buf_free(&q);
    if (status == 408) {
        if (json_out)
            print_raw(&resp);
        fprintf(stderr, "corral: nothing matching came%s\n", a->wait != NULL ? " in time" : " (try --wait SECONDS)");
        cr_buf_free(&resp);
        return EXIT_TIMEOUT;
    }
    if (status < 200 || status > 299) {
        rc = fail(status, &resp);
        cr_buf_free(&resp);
        return rc;
    }
    cr_buf_init(&mp, RESPONSE_MAX);
    v = parse(&mp, &resp);
    if (json_out)
        print_raw(&resp);
    else if (otp)
        printf("%.*s\n", STR(v, "otp"));
    else
        print_message(get(v, "message"), NULL);
    cr_buf_free(&resp);
    cr_buf_free(&mp);
    return 0;
}

static int cmd_whoami(const args_t *a)
{
    cr_buf_t resp, mp;
    cr_span_t v = {0}, i;
    cr_mp_item_t it;
    int rc = call(&resp, &mp, &v, "GET", "/v1/whoami", NULL, 30, NULL);
    (void)a;
    if (rc == 0 && json_out) {
        print_raw(&resp);
    } else if (rc == 0) {
        if (item(get(v, "session"), &it) == 0 && it.type == MP_STR)
            printf("session: %.*s\n", (int)it.bytes.len, it.bytes.base);
        else
            printf("session: (none: the owner)\n");
        i = get(v, "identity");
        if (item(i, &it) == 0 && it.type == MP_MAP)
            printf("identity: %.*s <%.*s>\n", STR(i, "name"), STR(i, "email"));
        else
            printf("identity: (none)\n");
    }
    cr_buf_free(&resp);
    cr_buf_free(&mp);
    return rc;
}

/* corral run: the injected secrets as environment variables of COMMAND, whose stdout and stderr pass through a filter
 * that replaces each value with ****. */
typedef struct st_run_secret_t {
    char key[129];
    char *value;
    size_t len;
} run_secret_t;

typedef struct st_run_ctx_t {
    run_secret_t s[64];
    size_t n;
    const char *seg;
    int rc;
} run_ctx_t;

static void run_collect(cr_span_t e, void *data)
{
    run_ctx_t *r = data;
    if (!bool_of(e, "inject") || r->n == 64 || r->rc != 0)
        return;
    snprintf(r->s[r->n].key, sizeof(r->s[r->n].key), "%.*s", STR(e, "key"));
    ++r->n;
}

/* Copies fd in to fd out, masking every value (a value split across reads is caught by keeping a tail). */
static void run_mask(int in, int out, const run_ctx_t *r)
{
    char buf[65536 + 8192];
    size_t have = 0, keep = 0;
    for (size_t i = 0; i < r->n; ++i)
        if (r->s[i].len > keep)
            keep = r->s[i].len;
    for (;;) {
        ssize_t got = read(in, buf + have, sizeof(buf) - have - 1);
        int end = got <= 0;
        if (got > 0)
            have += (size_t)got;
        /* mask in place: a value becomes **** (shorter or longer, so rebuild into o) */
        char o[sizeof(buf) * 2];
        size_t on = 0, i = 0, safe = end ? have : (have > keep ? have - keep : 0);
        while (i < have) {
            size_t hit = 0;
            for (size_t k = 0; k < r->n && hit == 0; ++k)
                if (r->s[k].len >= 4 && i + r->s[k].len <= have && memcmp(buf + i, r->s[k].value, r->s[k].len) == 0)
                    hit = r->s[k].len;
            if (hit != 0) {
                memcpy(o + on, "****", 4), on += 4, i += hit;
            } else if (i < safe) {
                o[on++] = buf[i++];
            } else {
                break;
            }
        }
        if (on > 0 && write(out, o, on) < 0)
            end = 1;
        memmove(buf, buf + i, have - i);
        have -= i;
        explicit_bzero(o, sizeof(o));
        if (end)
            break;
    }
    explicit_bzero(buf, sizeof(buf));
}

static int cmd_run(const args_t *a, char **command)
{
    run_ctx_t *r = calloc(1, sizeof(*r));
    cr_buf_t resp, mp;
    cr_span_t v = {0};
    char path[1024], seg[256], kseg[512];
    const char *n = which_identity(a);
    int rc, po[2], pe[2], status = 0;
    pid_t pid;
    if (r == NULL)
        return EXIT_ERROR;
    if (n == NULL) {
        free(r);
        return EXIT_USAGE;
    }
    path_seg(seg, sizeof(seg), n);
    snprintf(path, sizeof(path), "/v1/identities/%s/secrets", seg);
    if ((rc = call(&resp, &mp, &v, "GET", path, NULL, 30, NULL)) == 0)
        each(get(v, "secrets"), run_collect, r);
    cr_buf_free(&resp);
    cr_buf_free(&mp);
    for (size_t i = 0; rc == 0 && i < r->n; ++i) {
        path_seg(kseg, sizeof(kseg), r->s[i].key);
        snprintf(path, sizeof(path), "/v1/identities/%s/secrets/%s", seg, kseg);
        if ((rc = call(&resp, &mp, &v, "GET", path, NULL, 30, NULL)) == 0) {
            cr_span_t val = str_of(v, "value");
            if ((r->s[i].value = malloc(val.len + 1)) != NULL) {
                memcpy(r->s[i].value, val.base, val.len);
                r->s[i].value[val.len] = '\0';
                r->s[i].len = val.len;
                setenv(r->s[i].key, r->s[i].value, 1);
            }
        }
        explicit_bzero(resp.base, resp.len);
        explicit_bzero(mp.base, mp.len);
        cr_buf_free(&resp);
        cr_buf_free(&mp);
    }
    if (rc != 0 || pipe(po) != 0 || pipe(pe) != 0) {
        free(r);
        return rc != 0 ? rc : EXIT_ERROR;
    }
    fflush(NULL);
    if ((pid = fork()) == 0) {
        dup2(po[1], 1), dup2(pe[1], 2);
        close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
        execvp(command[0], command);
        fprintf(stderr, "corral: cannot run %s: %s\n", command[0], strerror(errno));
        _exit(127);
    }
    close(po[1]), close(pe[1]);
    for (size_t i = 0; i < r->n; ++i)
        unsetenv(r->s[i].key);
    if (pid > 0 && fork() == 0) { /* stderr's filter */
        close(po[0]);
        run_mask(pe[0], 2, r);
        _exit(0);
    }
    close(pe[0]);
    run_mask(po[0], 1, r);
    close(po[0]);
    if (pid > 0)
        waitpid(pid, &status, 0);
    while (wait(NULL) > 0)
        ;
    for (size_t i = 0; i < r->n; ++i)
        if (r->s[i].value != NULL) {
            explicit_bzero(r->s[i].value, r->s[i].len);
            free(r->s[i].value);
        }
    free(r);
    if (pid < 0)
        return EXIT_ERROR;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- pairing and starting corrald ----------------------------------------------------------------------------- */

/* Whether the terminal shows UTF-8: the first of LC_ALL, LC_CTYPE, LANG that is set names it (as server/src/qr.c). */
static int utf8_locale(void)
{
    static const char *const vars[] = {"LC_ALL", "LC_CTYPE", "LANG"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); ++i) {
        const char *v = getenv(vars[i]);
        if (v != NULL && v[0] != '\0')
            return strcasestr(v, "utf-8") != NULL || strcasestr(v, "utf8") != NULL;
    }
    return 0;
}

static int cmd_pair(const args_t *a)
{
    cr_buf_t resp, mp;
    cr_span_t v = {0};
    int rc, tty = isatty(STDOUT_FILENO);
    char path[64];
    if (a->npos != 0) {
        fprintf(stderr, "corral: usage: corral pair [--json]\n");
        return EXIT_USAGE;
    }
    snprintf(path, sizeof(path), "/v1/pair?qr=%s", utf8_locale() ? "utf8" : "ascii");
    if ((rc = call(&resp, &mp, &v, "POST", path, "{}", 60, NULL)) == 0) {
        if (json_out) {
            print_raw(&resp);
        } else {
            time_t exp = (time_t)(uint_of(v, "expires") / 1000);
            struct tm tm;
            char when[32] = "?";
            if (exp > 0 && localtime_r(&exp, &tm) != NULL)
                strftime(when, sizeof(when), "%H:%M:%S", &tm);
            if (tty) {
                cr_span_t q = str_of(v, "qr_text");
                fwrite(q.base, 1, q.len, stdout);
            }
            printf("Scan this with the Corral app, or open the link on your phone:\n  %.*s\n"
                   "Pairing code %.*s: valid once, until %s. The link holds the team key: share it with your own devices "
                   "only.\n",
                   STR(v, "url"), STR(v, "code"), when);
        }
    }
    cr_buf_free(&resp);
    cr_buf_free(&mp);
    return rc;
}

/* Whether something answers on the unix socket at path. */
static int socket_alive(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd, alive;
    if (strlen(path) >= sizeof(sa.sun_path) || (fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return 0;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    alive = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return alive;
}

/* Appends `key = "value"` with the INI file's escapes. */
static void ini_kv(cr_buf_t *b, const char *key, const char *value)
{
    cr_buf_appendf(b, "%s = \"", key);
    for (const char *p = value; *p != '\0'; ++p) {
        if (*p == '"' || *p == '\\')
            cr_buf_append(b, "\\", 1);
        cr_buf_append(b, p, 1);
    }
    cr_buf_append(b, "\"\n", 2);
}

/* Rewrites home/corrald.ini (mode 0600, atomically) with relay.url and relay.token set, keeping every other line.
 * Returns 0 or -1 after printing why. The token is never printed. */
static int write_ini(const char *home, const char *url, const char *tok)
{
    char ini[PATH_MAX + 16], *line = NULL;
    size_t cap = 0;
    ssize_t n;
    cr_buf_t b;
    FILE *fp;
    int in_relay = 0, done = 0, rc = -1;
    snprintf(ini, sizeof(ini), "%s/corrald.ini", home);
    cr_buf_init(&b, 1u << 20);
    if ((fp = fopen(ini, "r")) != NULL) {
        while ((n = getline(&line, &cap, fp)) > 0) {
            const char *p = line;
            while (*p == ' ' || *p == '\t')
                ++p;
            if (*p == '[') {
                if (in_relay && !done) {
                    ini_kv(&b, "url", url);
                    ini_kv(&b, "token", tok);
                    done = 1;
                }
                in_relay = strncmp(p, "[relay]", 7) == 0;
            } else if (in_relay && (strncmp(p, "url", 3) == 0 || strncmp(p, "token", 5) == 0)) {
                const char *q = p + (p[0] == 'u' ? 3 : 5);
                while (*q == ' ' || *q == '\t')
                    ++q;
                if (*q == '=')
                    continue; /* replaced below */
            }
            cr_buf_append(&b, line, (size_t)n);
            if (line[n - 1] != '\n')
                cr_buf_append(&b, "\n", 1);
        }
        fclose(fp);
        free(line);
    }
    if (!done) {
        if (!in_relay)
            cr_buf_appendf(&b, "%s[relay]\n", b.len > 0 ? "\n" : "");
        ini_kv(&b, "url", url);
        ini_kv(&b, "token", tok);
    }
    if (cr_write_atomic(home, "corrald.ini", b.base != NULL ? b.base : "", b.len, 0600, 1) != 0) {
        fprintf(stderr, "corral: cannot write %s: %s\n", ini, cr_error_last()->message);
        goto done;
    }
    rc = 0;
done:
    if (b.base != NULL)
        memset(b.base, 0, b.len); /* it held the token */
    cr_buf_free(&b);
    return rc;
}

/* Finds corrald: next to this program, else on PATH (execvp). */
static void find_corrald(char *out, size_t outlen)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        char *slash;
        self[n] = '\0';
        if ((slash = strrchr(self, '/')) != NULL) {
            *slash = '\0';
            snprintf(out, outlen, "%s/corrald", self);
            if (access(out, X_OK) == 0)
                return;
        }
    }
    snprintf(out, outlen, "corrald");
}

static int cmd_up(const args_t *a)
{
    char home[PATH_MAX], ini[PATH_MAX + 16], logp[PATH_MAX + 16], exe[PATH_MAX];
    const char *argv[8];
    char *slash;
    int argc = 0, status;
    pid_t pid;
    if (a->npos != 0 || (a->relay == NULL) != (a->relay_token == NULL)) {
        fprintf(stderr, "corral: usage: corral up [--relay URL --token TOKEN] [--repo DIR]\n");
        return EXIT_USAGE;
    }
    snprintf(home, sizeof(home), "%s", sock_path);
    if ((slash = strrchr(home, '/')) != NULL)
        *slash = '\0';
    snprintf(ini, sizeof(ini), "%s/corrald.ini", home);
    snprintf(logp, sizeof(logp), "%s/corrald.log", home);
    if (cr_mkdir_p(home, 0700) != 0) {
        fprintf(stderr, "corral: cannot make the directory %s: %s\n", home, strerror(errno));
        return EXIT_ERROR;
    }
    if (a->relay != NULL) {
        for (const char *p = a->relay_token; *p != '\0'; ++p)
            if ((unsigned char)*p < 0x21 || *p == 0x7f) {
                fprintf(stderr, "corral: the token must not hold spaces or control characters\n");
                return EXIT_USAGE;
            }
        if ((strncmp(a->relay, "http://", 7) != 0 && strncmp(a->relay, "https://", 8) != 0) ||
            strpbrk(a->relay, " \t\r\n\"\\") != NULL) {
            fprintf(stderr, "corral: --relay needs an http:// or https:// URL\n");
            return EXIT_USAGE;
        }
        if (write_ini(home, a->relay, a->relay_token) != 0)
            return EXIT_ERROR;
        printf("relay %s and its host token kept in %s (mode 0600)\n", a->relay, ini);
    }
    if (socket_alive(sock_path)) {
        printf("corrald is already running (%s)%s\n", sock_path,
               a->relay != NULL ? "; stop it and run corral up again to use the new relay settings" : "");
        return EXIT_OK;
    }
    find_corrald(exe, sizeof(exe));
    argv[argc++] = exe;
    if (access(ini, R_OK) == 0) {
        argv[argc++] = "--config";
        argv[argc++] = ini;
    }
    if (a->repo != NULL) {
        argv[argc++] = "--repo";
        argv[argc++] = a->repo;
    }
    argv[argc] = NULL;
    fflush(stdout);
    fflush(stderr);
    if ((pid = fork()) < 0) {
        fprintf(stderr, "corral: fork: %s\n", strerror(errno));
        return EXIT_ERROR;
    }
    if (pid == 0) {
        int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0600), nul = open("/dev/null", O_RDONLY);
        setsid();
        if (fd < 0 || nul < 0)
            _exit(127);
        dup2(nul, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        signal(SIGPIPE, SIG_DFL);
        execvp(exe, (char *const *)argv);
        fprintf(stderr, "corral up: cannot run %s: %s\n", exe, strerror(errno));
        _exit(127);
    }
    for (int i = 0; i < 300; ++i) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "corral: corrald stopped at once (exit status %d); see %s\n",
                    WIFEXITED(status) ? WEXITSTATUS(status) : -1, logp);
            return EXIT_ERROR;
        }
        if (socket_alive(sock_path)) {
            printf("corrald started (pid %ld) for %s; log %s\n", (long)pid, a->repo != NULL ? a->repo : "the current repository",
                   logp);
            return EXIT_OK;
        }
        usleep(50 * 1000);
    }
    fprintf(stderr, "corral: corrald (pid %ld) did not answer on %s within 15 s; see %s\n", (long)pid, sock_path, logp);
    return EXIT_ERROR;
}

/* ---- main ---------------------------------------------------------------------------------------------------- */

static void find_socket(void)
{
    const char *url = getenv("CORRAL_URL"), *home = getenv("CORRAL_HOME"), *h = getenv("HOME");
    if (url != NULL && strncmp(url, "unix:", 5) == 0)
        snprintf(sock_path, sizeof(sock_path), "%s", url + 5);
    else if (home != NULL && home[0] != '\0')
        snprintf(sock_path, sizeof(sock_path), "%s/corrald.sock", home);
    else
        snprintf(sock_path, sizeof(sock_path), "%s/.local/state/corral/corrald.sock", h != NULL ? h : "");
    token = getenv("CORRAL_TOKEN");
}

int main(int argc, char **argv)
{
    const char *cmd;
    args_t a;
    int rc, known = 0;

    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
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
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); ++i)
        known |= strcmp(cmd, commands[i].name) == 0;
    if (!known) {
        fprintf(stderr, "corral: unknown %s '%s' (see corral --help)\n", cmd[0] == '-' ? "option" : "command", cmd);
        return EXIT_USAGE;
    }
    memset(&a, 0, sizeof(a));
    if (strcmp(cmd, "run") == 0) { /* corral run --identity NAME -- COMMAND ARGS...: everything after -- is the command */
        int i = 2;
        for (; i < argc && strcmp(argv[i], "--") != 0; ++i) {
            if (strcmp(argv[i], "--identity") == 0 && i + 1 < argc)
                a.identity = argv[++i];
            else {
                fprintf(stderr, "corral: usage: corral run --identity NAME -- COMMAND [ARGS...]\n");
                return EXIT_USAGE;
            }
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "corral: usage: corral run --identity NAME -- COMMAND [ARGS...]\n");
            return EXIT_USAGE;
        }
        find_socket();
        curl_global_init(CURL_GLOBAL_DEFAULT);
        rc = cmd_run(&a, argv + i + 1);
        curl_global_cleanup();
        return rc;
    }
    for (int i = 2; i < argc; ++i) {
        const char *s = argv[i];
#define OPT(flag, field)                                                                                               \
    if (strcmp(s, flag) == 0) {                                                                                        \
        if (i + 1 >= argc) {                                                                                           \
            fprintf(stderr, "corral: %s needs a value\n", flag);                                                       \
            return EXIT_USAGE;                                                                                         \
        }                                                                                                              \
        a.field = argv[++i];                                                                                           \
        continue;                                                                                                      \
    }
        OPT("--name", name)
        OPT("--agent", agent)
        OPT("--cmd", cmd)
        OPT("--identity", identity)
        OPT("--base", base)
        OPT("--rid", rid)
        OPT("--reason", reason)
        OPT("--aid", aid)
        OPT("--after", after)
        OPT("--relay", relay)
        OPT("--token", relay_token)
        OPT("--repo", repo)
        OPT("--email", email)
        OPT("--wait", wait)
        OPT("--subject", subject)
        OPT("--from", from)
        OPT("--since", since)
        OPT("--version", version)
        OPT("--limit", limit)
#undef OPT
        if (strcmp(s, "--option") == 0 && i + 1 < argc) {
            if (a.noptions == 9) {
                fprintf(stderr, "corral: at most 9 --option\n");
                return EXIT_USAGE;
            }
            a.options[a.noptions++] = argv[++i];
            continue;
        }
        if (strcmp(s, "--json") == 0)
            json_out = 1;
        else if (strcmp(s, "-f") == 0 || strcmp(s, "--follow") == 0)
            a.follow = 1;
        else if (strcmp(s, "--discard") == 0)
            a.discard = 1;
        else if (strcmp(s, "--keep-branch") == 0)
            a.keep_branch = 1;
        else if (strcmp(s, "--inject") == 0)
            a.inject = 1;
        else if (strcmp(s, "--list") == 0)
            a.list = 1;
        else if (strcmp(s, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(s, "--") == 0) {
            while (++i < argc && a.npos < 4)
                a.pos[a.npos++] = argv[i];
        } else if (s[0] == '-' && s[1] != '\0') {
            fprintf(stderr, "corral: unknown option '%s' for %s (see corral --help)\n", s, cmd);
            return EXIT_USAGE;
        } else if (a.npos == 4) {
            fprintf(stderr, "corral: too many arguments for %s\n", cmd);
            return EXIT_USAGE;
        } else {
            a.pos[a.npos++] = s;
        }
    }
    find_socket();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (strcmp(cmd, "new") == 0)
        rc = cmd_new(&a);
    else if (strcmp(cmd, "ls") == 0)
        rc = cmd_ls(&a);
    else if (strcmp(cmd, "log") == 0)
        rc = cmd_log(&a);
    else if (strcmp(cmd, "diff") == 0)
        rc = cmd_diff(&a);
    else if (strcmp(cmd, "rm") == 0)
        rc = cmd_rm(&a);
    else if (strcmp(cmd, "ask") == 0)
        rc = cmd_ask(&a);
    else if (strcmp(cmd, "pair") == 0)
        rc = cmd_pair(&a);
    else if (strcmp(cmd, "up") == 0)
        rc = cmd_up(&a);
    else if (strcmp(cmd, "identity") == 0)
        rc = cmd_identity(&a);
    else if (strcmp(cmd, "secret") == 0)
        rc = cmd_secret(&a);
    else if (strcmp(cmd, "inbox") == 0 || strcmp(cmd, "otp") == 0)
        rc = cmd_inbox(&a, strcmp(cmd, "otp") == 0);
    else if (strcmp(cmd, "whoami") == 0)
        rc = cmd_whoami(&a);
    else
        rc = cmd_action(cmd, &a);
    curl_global_cleanup();
    return rc;
}
