/* relay/src/config.c — the relay's configuration table: every key corral-relay reads, with its default and help. */
#include "config.h"

const cr_config_entry_t relay_config_table[] = {
    {"http.listen", CR_CONF_STR, "127.0.0.1:8080",
     "Address and port of the plain HTTP listener (HTTP/1.1 and h2c); keep it on loopback unless TLS is in front.", 0, 0},
    {"http.tls_listen", CR_CONF_STR, "", "Address and port of the TLS listener (HTTP/1.1 and HTTP/2); empty for none.", 0, 0},
    {"http.tls_cert", CR_CONF_STR, "", "PEM file with the certificate chain served on http.tls_listen.", 0, 0},
    {"http.tls_key", CR_CONF_STR, "", "PEM file with the private key of http.tls_cert.", 0, 0},
    {"http.public_url", CR_CONF_STR, "",
     "URL at which phones and hosts reach this relay, put in pairing codes; empty means made from the listen address.", 0, 0},
    {"redis.url", CR_CONF_STR, "",
     "Redis to use (redis://host:port/db or unix:///path); empty starts an embedded redis-server in data_dir.", 0, 0},
    {"data_dir", CR_CONF_STR, "./var/relay", "Directory for the relay's own state, such as the embedded Redis.", 0, 0},
    {"log.level", CR_CONF_STR, "info", "Least severe level logged: debug, info, warn or error.", 0, 0},
    {"ratelimit.per_second", CR_CONF_INT, "100", "Requests per second each token may make on average (0: no limit).", 0, 1000000},
    {"ratelimit.burst", CR_CONF_INT, "400", "Requests a token may make at once before the per-second rate applies.", 1, 10000000},
    {"redis.server", CR_CONF_STR, "redis-server", "The redis-server program started when redis.url is empty.", 0, 0},
    {"downlink.ping_ms", CR_CONF_MS, "20s", "How often an idle host downlink gets a ping frame.", 10, 3600000},
    {"events.maxlen", CR_CONF_INT, "100000", "Events kept per team in its stream (approximate trimming).", 1000, 100000000},
    {.name = NULL},
};
