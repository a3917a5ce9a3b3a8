/* pair.h — pairing a phone (DESIGN.md §4): the team key K in <home>/team.key, and a one-time pairing code from the
 * relay (POST /v1/host/pair) turned into the link a phone opens: <relay>/#pair=<code>&k=<K in base64url>. */
#ifndef HOST_PAIR_H
#define HOST_PAIR_H

#include <stdint.h>
#include <uv.h>

#define HOST_PAIR_KEY_LEN 32      /* bytes of the team key K (XChaCha20-Poly1305, DESIGN.md §2.1) */
#define HOST_PAIR_CODE_MAX 32     /* characters of a pairing code we accept from the relay */
#define HOST_PAIR_URL_MAX 1024    /* the pairing link, K included */
#define HOST_PAIR_ANSWER_MAX 8192 /* bytes of the relay's answer we read */

typedef struct st_host_pair_t host_pair_t;

typedef struct st_host_pair_config_t {
    const char *relay_url; /* relay.url: "https://relay.example.org" (a trailing '/' is dropped) */
    const char *token;     /* relay.token: the host token; copied into locked memory, wiped on free, never logged */
    const char *ca_file;   /* relay.ca_file; NULL or "": the system's CAs */
    const char *home;      /* corrald's home: team.key lives there */
} host_pair_config_t;

/* What became of a request for a pairing code; valid only during the callback. */
typedef struct st_host_pair_result_t {
    int ok;                  /* 1: code, expires and url are set */
    long status;             /* the relay's HTTP status, 0 when it did not answer */
    const char *message;     /* when !ok: what went wrong (the relay's own message when it gave one) */
    char code[HOST_PAIR_CODE_MAX + 1];
    uint64_t expires;        /* ms since the epoch */
    char url[HOST_PAIR_URL_MAX]; /* the pairing link, holding K: a secret */
} host_pair_result_t;

typedef void (*host_pair_cb)(const host_pair_result_t *r, void *data);

/* Reads the team key from <home>/team.key (32 raw bytes), or makes one with libsodium and writes it there with mode
 * 0600 when the file does not exist. Returns 0, CR_ECONFIG (the file is not 32 bytes) or CR_EIO; cr_error_last says
 * which file and why. The caller wipes out after use. */
int host_pair_team_key(unsigned char out[HOST_PAIR_KEY_LEN], const char *home);

/* The team this host belongs to, as the relay named it (in its pairing answer, or to the identity service), kept
 * in <home>/team.name (mode 0600): with K it makes the associated data of sealed bodies. save returns 0 or CR_EIO;
 * load returns 0 with out set, or CR_ENOTFOUND when the host has not learned its team yet. */
int host_team_name_save(const char *home, const char *team);
int host_team_name_load(const char *home, char *out, size_t cap);

/* What sealing needs, when the host has it: K from <home>/team.key (never made here) and the team name. Returns 1
 * with both set (the caller wipes key), 0 when either is missing, or CR_ECONFIG / CR_EIO for a damaged key file. */
int host_team_seal_keys(const char *home, unsigned char key[HOST_PAIR_KEY_LEN], char *team, size_t cap);

/* Makes a pairer whose HTTP client runs on loop. conf is copied. Returns 0 with *out owned by the caller
 * (host_pair_free), CR_ECONFIG (relay.url or relay.token empty, or the URL not http(s)://) or -1. */
int host_pair_new(host_pair_t **out, uv_loop_t *loop, const host_pair_config_t *conf);

/* Asks the relay for a pairing code, makes (or reads) the team key and builds the link. cb runs exactly once, later,
 * from the loop (or inside host_pair_cancel / host_pair_free). *out_id (may be NULL) is for host_pair_cancel.
 * Returns 0, or CR_ECONFIG / CR_EIO (the team key) or -1, and then cb never runs. */
int host_pair_request(host_pair_t *p, host_pair_cb cb, void *data, uint64_t *out_id);

/* Cancels a request whose cb has not run: it runs now with ok 0 and "cancelled". */
void host_pair_cancel(host_pair_t *p, uint64_t id);

/* Frees the pairer: requests in flight end (their cb runs with ok 0), the token is wiped. NULL is fine. Run the loop
 * afterwards so libuv can close the client's handles. */
void host_pair_free(host_pair_t *p);

#endif
