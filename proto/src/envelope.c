/* envelope.c — event and action envelopes: zero-copy decode with strict validation, canonical encode. */
#include "corral/envelope.h"
#include "corral/error.h"
#include "corral/seal.h"
#include "corral/ulid.h"
#include <msgpack.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static const char *const kind_names[] = {
    [CR_EV_SESSION_STARTED] = "session.started",
    [CR_EV_SESSION_STATE] = "session.state",
    [CR_EV_AGENT_MESSAGE] = "agent.message",
    [CR_EV_AGENT_TOOL] = "agent.tool",
    [CR_EV_APPROVAL_REQUEST] = "approval.request",
    [CR_EV_QUESTION] = "question",
    [CR_EV_DIFF_READY] = "diff.ready",
    [CR_EV_ACTION_APPLIED] = "action.applied",
    [CR_EV_INBOX_MESSAGE] = "inbox.message",
    [CR_EV_SESSION_DONE] = "session.done",
    [CR_EV_DIFF_FULL] = "diff.full",
    [CR_ACT_APPROVE] = "approve",
    [CR_ACT_REJECT] = "reject",
    [CR_ACT_REPLY] = "reply",
    [CR_ACT_TASK] = "task",
    [CR_ACT_INTERRUPT] = "interrupt",
    [CR_ACT_SUSPEND] = "suspend",
    [CR_ACT_RESUME] = "resume",
    [CR_ACT_DIFF] = "diff",
};
#define NUM_KINDS (sizeof(kind_names) / sizeof(kind_names[0]))

const char *cr_kind_name(cr_kind_t kind)
{
    return (unsigned)kind < NUM_KINDS ? kind_names[kind] : NULL;
}

cr_kind_t cr_kind_parse(const char *s, size_t len)
{
    if (len == 0)
        return CR_KIND_UNKNOWN;
    for (size_t i = 1; i < NUM_KINDS; ++i)
        if (kind_names[i] != NULL && kind_names[i][0] == s[0] && strlen(kind_names[i]) == len && memcmp(kind_names[i], s, len) == 0)
            return (cr_kind_t)i;
    return CR_KIND_UNKNOWN;
}

/* A kind's wire name: [a-z][a-z0-9._]{0,63}. */
static int kind_syntax_valid(cr_span_t k)
{
    if (k.len == 0 || k.len > 64 || !(k.base[0] >= 'a' && k.base[0] <= 'z'))
        return 0;
    for (size_t i = 1; i < k.len; ++i) {
        char c = k.base[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_'))
            return 0;
    }
    return 1;
}

/* ---- body schemas ---------------------------------------------------------------------------------------------- */

typedef enum field_type_t {
    F_STR,      /* any string within max (0: lim->max_string) */
    F_ID,       /* a protocol id */
    F_ENUM,     /* a string among `values` (NULL-terminated) */
    F_UINT,
    F_BOOL,
    F_NUM,      /* int or float */
    F_BIN,      /* bin within max */
    F_ANY,
    F_STRS,     /* array of strings */
    F_FILES,    /* diff.ready's files: array of {path, status, add, del} */
} field_type_t;

typedef struct st_field_t {
    const char *name;
    field_type_t type;
    int required;
    size_t max_field;  /* offset into cr_limits_t of the size limit, or 0 for max_string */
    const char *const *values;
} field_t;

#define LIMIT(member) offsetof(cr_limits_t, member)
#define END_FIELDS {NULL, F_ANY, 0, 0, NULL}

static const char *const states[] = {"running", "waiting", "idle", "suspended", "done", "failed", NULL};
static const char *const channels[] = {"email", "sms", NULL};
static const char *const file_statuses[] = {"added", "modified", "deleted", "renamed", "typechange", NULL};

static const field_t f_session_started[] = {{"name", F_STR, 1, 0, NULL}, {"agent", F_STR, 1, 0, NULL},
                                            {"branch", F_STR, 1, 0, NULL}, {"base", F_STR, 1, 0, NULL},
                                            {"prompt", F_STR, 0, 0, NULL}, END_FIELDS};
static const char *const needs_kinds[] = {"", "approval.request", "question", "diff.ready", NULL};
static const field_t f_session_state[] = {{"state", F_ENUM, 1, 0, states},
                                          {"reason", F_STR, 0, 0, NULL},
                                          {"needs", F_ENUM, 0, 0, needs_kinds},
                                          {"rid", F_ID, 0, 0, NULL},
                                          END_FIELDS};
static const field_t f_agent_message[] = {{"text", F_STR, 1, LIMIT(max_message_text), NULL}, END_FIELDS};
static const field_t f_agent_tool[] = {{"tool", F_STR, 1, 0, NULL}, {"summary", F_STR, 1, 0, NULL}, END_FIELDS};
static const field_t f_approval_request[] = {{"rid", F_ID, 1, 0, NULL}, {"tool", F_STR, 1, 0, NULL},
                                             {"summary", F_STR, 1, 0, NULL}, {"input", F_ANY, 0, 0, NULL}, END_FIELDS};
static const field_t f_question[] = {{"rid", F_ID, 1, 0, NULL}, {"text", F_STR, 1, 0, NULL},
                                     {"options", F_STRS, 0, 0, NULL}, END_FIELDS};
static const field_t f_diff_ready[] = {{"base", F_STR, 1, 0, NULL},       {"head", F_STR, 1, 0, NULL},
                                       {"files", F_FILES, 1, 0, NULL},    {"add", F_UINT, 1, 0, NULL},
                                       {"del", F_UINT, 1, 0, NULL},       {"patch", F_STR, 1, LIMIT(max_patch), NULL},
                                       {"truncated", F_BOOL, 1, 0, NULL}, END_FIELDS};
static const field_t f_action_applied[] = {{"aid", F_ID, 1, 0, NULL},
                                           {"ok", F_BOOL, 1, 0, NULL},
                                           {"detail", F_STR, 0, 0, NULL},
                                           {"commit", F_STR, 0, 0, NULL},
                                           {"code", F_STR, 0, 0, NULL},
                                           {"heard", F_STR, 0, 0, NULL},
                                           END_FIELDS};
static const field_t f_diff_full[] = {{"head", F_STR, 1, 0, NULL},  {"part", F_UINT, 1, 0, NULL},
                                      {"parts", F_UINT, 1, 0, NULL}, {"patch", F_STR, 1, LIMIT(max_patch), NULL},
                                      {"truncated", F_BOOL, 0, 0, NULL}, END_FIELDS};
static const field_t f_inbox_message[] = {{"channel", F_ENUM, 1, 0, channels},
                                          {"from", F_STR, 1, 0, NULL},
                                          {"subject", F_STR, 0, 0, NULL},
                                          {"otp", F_STR, 0, 0, NULL},
                                          END_FIELDS};
static const field_t f_session_done[] = {{"summary", F_STR, 1, 0, NULL}, {"turns", F_UINT, 0, 0, NULL},
                                         {"cost_usd", F_NUM, 0, 0, NULL}, END_FIELDS};
static const field_t f_approve[] = {{"rid", F_ID, 0, 0, NULL}, END_FIELDS};
static const field_t f_reject[] = {{"rid", F_ID, 0, 0, NULL}, {"reason", F_STR, 0, 0, NULL}, {"discard", F_BOOL, 0, 0, NULL},
                                   END_FIELDS};
static const field_t f_reply[] = {{"rid", F_ID, 0, 0, NULL},           {"text", F_STR, 0, 0, NULL},
                                  {"transcript", F_STR, 0, 0, NULL},   {"audio", F_BIN, 0, LIMIT(max_audio), NULL},
                                  {"mime", F_STR, 0, 0, NULL},         END_FIELDS};
static const field_t f_task[] = {{"text", F_STR, 1, 0, NULL}, END_FIELDS};
static const field_t f_none[] = {END_FIELDS};

static const field_t *const schemas[] = {
    [CR_EV_SESSION_STARTED] = f_session_started,
    [CR_EV_SESSION_STATE] = f_session_state,
    [CR_EV_AGENT_MESSAGE] = f_agent_message,
    [CR_EV_AGENT_TOOL] = f_agent_tool,
    [CR_EV_APPROVAL_REQUEST] = f_approval_request,
    [CR_EV_QUESTION] = f_question,
    [CR_EV_DIFF_READY] = f_diff_ready,
    [CR_EV_ACTION_APPLIED] = f_action_applied,
    [CR_EV_INBOX_MESSAGE] = f_inbox_message,
    [CR_EV_SESSION_DONE] = f_session_done,
    [CR_EV_DIFF_FULL] = f_diff_full,
    [CR_ACT_APPROVE] = f_approve,
    [CR_ACT_REJECT] = f_reject,
    [CR_ACT_REPLY] = f_reply,
    [CR_ACT_TASK] = f_task,
    [CR_ACT_INTERRUPT] = f_none,
    [CR_ACT_SUSPEND] = f_none,
    [CR_ACT_RESUME] = f_none,
    [CR_ACT_DIFF] = f_none,
};

static const char *type_name(int type)
{
    switch (type) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "a boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return "an integer";
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "a negative integer";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "a float";
    case MSGPACK_OBJECT_STR: return "a string";
    case MSGPACK_OBJECT_BIN: return "bin";
    case MSGPACK_OBJECT_ARRAY: return "an array";
    case MSGPACK_OBJECT_MAP: return "a map";
    default: return "an unknown type";
    }
}

#define BODY_FAIL(name, ...)                                                                                            \
    do {                                                                                                                \
        char f_[96];                                                                                                    \
        snprintf(f_, sizeof(f_), "b.%s", (name));                                                                       \
        return cr_error_set(CR_EBODY, f_, __VA_ARGS__);                                                                 \
    } while (0)

static int too_large(const char *name, size_t len, size_t max)
{
    char field[96];
    snprintf(field, sizeof(field), "b.%s", name);
    return cr_error_set(CR_ETOOLARGE, field, "%s of %zu bytes is over the limit of %zu", field, len, max);
}

/* Checks diff.ready's files array at p (already framing-checked). */
static int check_files(const char *p, const char *end, const cr_limits_t *lim)
{
    cr_mp_item_t arr, m, k, v;
    size_t n = cr_mp_read(p, end, &arr);
    p += n;
    for (uint32_t i = 0; i < arr.count; ++i) {
        unsigned seen = 0;
        char field[64];
        n = cr_mp_read(p, end, &m);
        if (m.type != MSGPACK_OBJECT_MAP) {
            snprintf(field, sizeof(field), "files.%u", i);
            BODY_FAIL(field, "b.%s must be a map of path, status, add and del, got %s", field, type_name(m.type));
        }
        p += n;
        for (uint32_t j = 0; j < m.count; ++j) {
            static const char *const names[] = {"path", "status", "add", "del"};
            int which = -1;
            p += cr_mp_read(p, end, &k);
            for (int w = 0; w < 4; ++w)
                if (cr_span_eq(k.bytes, names[w], strlen(names[w])))
                    which = w;
            n = cr_mp_read(p, end, &v);
            if (which >= 0) {
                snprintf(field, sizeof(field), "files.%u.%s", i, names[which]);
                if (seen & (1u << which))
                    BODY_FAIL(field, "b.%s appears twice", field);
                seen |= 1u << which;
                if (which <= 1 && v.type != MSGPACK_OBJECT_STR)
                    BODY_FAIL(field, "b.%s must be a string, got %s", field, type_name(v.type));
                if (which >= 2 && v.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                    BODY_FAIL(field, "b.%s must be a non-negative integer, got %s", field, type_name(v.type));
                if (which == 0 && v.bytes.len == 0)
                    BODY_FAIL(field, "b.%s must not be empty", field);
                if (which == 1) {
                    int found = 0;
                    for (const char *const *s = file_statuses; *s != NULL; ++s)
                        if (cr_span_eq(v.bytes, *s, strlen(*s)))
                            found = 1;
                    if (!found)
                        BODY_FAIL(field, "b.%s must be one of added, modified, deleted, renamed, typechange", field);
                }
            }
            p = cr_mp_skip(p, end);
        }
        if (seen != 0xf) {
            static const char *const names[] = {"path", "status", "add", "del"};
            for (int w = 0; w < 4; ++w)
                if (!(seen & (1u << w))) {
                    snprintf(field, sizeof(field), "files.%u.%s", i, names[w]);
                    BODY_FAIL(field, "missing required field b.%s", field);
                }
        }
    }
    (void)lim;
    return 0;
}

static int validate_fields(const field_t *schema, const char *mp, size_t len, const cr_limits_t *lim, cr_kind_t kind)
{
    const char *p = mp, *end = mp + len;
    cr_mp_item_t m, k, v;
    uint32_t seen = 0;
    size_t n;

    n = cr_mp_read(p, end, &m);
    if (n == 0 || m.type != MSGPACK_OBJECT_MAP)
        return cr_error_set(CR_EBODY, "b", "b must be a map (or a sealed bin), got %s", n == 0 ? "nothing" : type_name(m.type));
    p += n;
    for (uint32_t i = 0; i < m.count; ++i) {
        const field_t *f = NULL;
        int fi = 0;
        p += cr_mp_read(p, end, &k);
        if (schema != NULL)
            for (fi = 0; schema[fi].name != NULL; ++fi)
                if (k.bytes.len != 0 && k.bytes.base[0] == schema[fi].name[0] &&
                    cr_span_eq(k.bytes, schema[fi].name, strlen(schema[fi].name))) {
                    f = &schema[fi];
                    break;
                }
        if (f == NULL) {
            p = cr_mp_skip(p, end);
            continue;
        }
        if (seen & (1u << fi))
            BODY_FAIL(f->name, "b.%s appears twice", f->name);
        seen |= 1u << fi;
        n = cr_mp_read(p, end, &v);
        size_t max = f->max_field != 0 ? *(const size_t *)((const char *)lim + f->max_field)
                                       : (f->type == F_BIN ? lim->max_bin : lim->max_string);
        switch (f->type) {
        case F_STR:
        case F_ID:
        case F_ENUM:
            if (v.type != MSGPACK_OBJECT_STR)
                BODY_FAIL(f->name, "b.%s must be a string, got %s", f->name, type_name(v.type));
            if (v.bytes.len > max)
                return too_large(f->name, v.bytes.len, max);
            if (f->type == F_ID && !cr_id_valid(v.bytes.base, v.bytes.len))
                BODY_FAIL(f->name, "b.%s must be an id of 1 to 64 characters among A-Z a-z 0-9 . _ -", f->name);
            if (f->type == F_ENUM) {
                int found = 0;
                for (const char *const *s = f->values; *s != NULL; ++s)
                    if (cr_span_eq(v.bytes, *s, strlen(*s)))
                        found = 1;
                if (!found) {
                    char list[160] = "";
                    size_t ln = 0;
                    for (const char *const *s = f->values; *s != NULL && ln < sizeof(list); ++s)
                        ln += (size_t)snprintf(list + ln, sizeof(list) - ln, "%s%s", s == f->values ? "" : ", ", *s);
                    BODY_FAIL(f->name, "b.%s must be one of %s", f->name, list);
                }
            }
            break;
        case F_UINT:
            if (v.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                BODY_FAIL(f->name, "b.%s must be a non-negative integer, got %s", f->name, type_name(v.type));
            break;
        case F_BOOL:
            if (v.type != MSGPACK_OBJECT_BOOLEAN)
                BODY_FAIL(f->name, "b.%s must be a boolean, got %s", f->name, type_name(v.type));
            break;
        case F_NUM:
            if (v.type != MSGPACK_OBJECT_POSITIVE_INTEGER && v.type != MSGPACK_OBJECT_NEGATIVE_INTEGER &&
                v.type != MSGPACK_OBJECT_FLOAT32 && v.type != MSGPACK_OBJECT_FLOAT64)
                BODY_FAIL(f->name, "b.%s must be a number, got %s", f->name, type_name(v.type));
            break;
        case F_BIN:
            if (v.type != MSGPACK_OBJECT_BIN)
                BODY_FAIL(f->name, "b.%s must be bin, got %s", f->name, type_name(v.type));
            if (v.bytes.len > max)
                return too_large(f->name, v.bytes.len, max);
            break;
        case F_ANY:
            break;
        case F_STRS: {
            const char *q = p + n;
            cr_mp_item_t s;
            if (v.type != MSGPACK_OBJECT_ARRAY)
                BODY_FAIL(f->name, "b.%s must be an array of strings, got %s", f->name, type_name(v.type));
            for (uint32_t j = 0; j < v.count; ++j) {
                q += cr_mp_read(q, end, &s);
                if (s.type != MSGPACK_OBJECT_STR) {
                    char field[64];
                    snprintf(field, sizeof(field), "%s.%u", f->name, j);
                    BODY_FAIL(field, "b.%s must be a string, got %s", field, type_name(s.type));
                }
            }
            break;
        }
        case F_FILES: {
            int rc;
            if (v.type != MSGPACK_OBJECT_ARRAY)
                BODY_FAIL(f->name, "b.%s must be an array of files, got %s", f->name, type_name(v.type));
            if ((rc = check_files(p, end, lim)) != 0)
                return rc;
            break;
        }
        }
        p = cr_mp_skip(p, end);
    }
    if (schema != NULL)
        for (int fi = 0; schema[fi].name != NULL; ++fi)
            if (schema[fi].required && !(seen & (1u << fi)))
                BODY_FAIL(schema[fi].name, "missing required field b.%s", schema[fi].name);
    if (kind == CR_ACT_REPLY) {
        /* a reply must carry something to reply with */
        int has = 0;
        for (int fi = 1; fi <= 3; ++fi)
            if (seen & (1u << fi))
                has = 1;
        if (!has)
            return cr_error_set(CR_EBODY, "b", "a reply needs b.text, b.transcript or b.audio");
    }
    return 0;
}

int cr_body_validate(cr_kind_t kind, const char *mp, size_t len, const cr_limits_t *lim)
{
    size_t used;
    int rc;
    if (lim == NULL)
        lim = &cr_limits_default;
    if ((rc = cr_mp_check(mp, len, lim, cr_limits_max_action(lim), "b", &used)) != 0)
        return rc == CR_EAGAIN ? cr_error_set(CR_ETRUNCATED, "b", "the body ends inside a value") : rc;
    if (used != len)
        return cr_error_set(CR_ETRAILING, "b", "%zu bytes follow the body", len - used);
    return validate_fields((unsigned)kind < NUM_KINDS ? schemas[kind] : NULL, mp, len, lim, kind);
}

/* ---- envelopes ------------------------------------------------------------------------------------------------- */

enum {
    K_V = 1 << 0,
    K_K = 1 << 1,
    K_SID = 1 << 2,
    K_SEQ = 1 << 3,
    K_TS = 1 << 4,
    K_IDN = 1 << 5,
    K_PRI = 1 << 6,
    K_B = 1 << 7,
    K_AID = 1 << 8,
    K_REF = 1 << 9,
    K_BY = 1 << 10,
};

typedef struct st_envelope_fields_t {
    uint32_t seen;
    uint64_t v, seq, ts, pri, ref;
    cr_span_t k, sid, idn, aid, by;
    cr_body_t b;
} envelope_fields_t;

#define ENV_FAIL(field, ...) return cr_error_set(CR_EENVELOPE, (field), __VA_ARGS__)

/* Reads the keys both envelopes share and those of `allowed`, checking types. */
static int read_envelope(envelope_fields_t *e, const char *mp, size_t len, const cr_limits_t *lim, size_t max, uint32_t allowed)
{
    const char *p = mp, *end = mp + len;
    cr_mp_item_t m, k, v;
    size_t used, n;
    int rc;

    if ((rc = cr_mp_check(mp, len, lim, max, NULL, &used)) != 0) {
        if (rc == CR_EAGAIN) {
            char field[sizeof(cr_error_last()->field)];
            memcpy(field, cr_error_last()->field, sizeof(field));
            return cr_error_set(CR_ETRUNCATED, field, "the envelope ends inside a value (%zu bytes)", len);
        }
        return rc;
    }
    if (used != len)
        return cr_error_set(CR_ETRAILING, NULL, "%zu bytes follow the envelope", len - used);
    n = cr_mp_read(p, end, &m);
    if (m.type != MSGPACK_OBJECT_MAP)
        ENV_FAIL(NULL, "an envelope must be a map, got %s", type_name(m.type));
    p += n;
    memset(e, 0, sizeof(*e));
    for (uint32_t i = 0; i < m.count; ++i) {
        uint32_t bit = 0;
        const char *name = NULL;
        const char *vstart;
        p += cr_mp_read(p, end, &k);
        vstart = p;
        n = cr_mp_read(p, end, &v);
        /* dispatch on the short key */
        switch (k.bytes.len) {
        case 1:
            if (k.bytes.base[0] == 'v') bit = K_V, name = "v";
            else if (k.bytes.base[0] == 'k') bit = K_K, name = "k";
            else if (k.bytes.base[0] == 'b') bit = K_B, name = "b";
            break;
        case 2:
            if (memcmp(k.bytes.base, "ts", 2) == 0) bit = K_TS, name = "ts";
            else if (memcmp(k.bytes.base, "by", 2) == 0) bit = K_BY, name = "by";
            break;
        case 3:
            if (memcmp(k.bytes.base, "sid", 3) == 0) bit = K_SID, name = "sid";
            else if (memcmp(k.bytes.base, "seq", 3) == 0) bit = K_SEQ, name = "seq";
            else if (memcmp(k.bytes.base, "idn", 3) == 0) bit = K_IDN, name = "idn";
            else if (memcmp(k.bytes.base, "pri", 3) == 0) bit = K_PRI, name = "pri";
            else if (memcmp(k.bytes.base, "aid", 3) == 0) bit = K_AID, name = "aid";
            else if (memcmp(k.bytes.base, "ref", 3) == 0) bit = K_REF, name = "ref";
            break;
        }
        if ((bit & allowed) == 0) { /* unknown keys are ignored: forward compatibility */
            p = cr_mp_skip(p, end);
            continue;
        }
        if (e->seen & bit)
            ENV_FAIL(name, "%s appears twice", name);
        e->seen |= bit;
        switch (bit) {
        case K_V: case K_SEQ: case K_TS: case K_PRI: case K_REF:
            if (v.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                ENV_FAIL(name, "%s must be a %s integer, got %s", name, bit == K_SEQ || bit == K_REF ? "positive" : "non-negative",
                         type_name(v.type));
            if (bit == K_V) e->v = v.u;
            else if (bit == K_SEQ) e->seq = v.u;
            else if (bit == K_TS) e->ts = v.u;
            else if (bit == K_PRI) e->pri = v.u;
            else e->ref = v.u;
            break;
        case K_K: case K_SID: case K_IDN: case K_AID: case K_BY:
            if (v.type != MSGPACK_OBJECT_STR)
                ENV_FAIL(name, "%s must be a string, got %s", name, type_name(v.type));
            if (bit == K_K) {
                e->k = v.bytes;
            } else {
                if (!cr_id_valid(v.bytes.base, v.bytes.len))
                    ENV_FAIL(name, "%s must be an id of 1 to 64 characters among A-Z a-z 0-9 . _ -", name);
                if (bit == K_SID) e->sid = v.bytes;
                else if (bit == K_IDN) e->idn = v.bytes;
                else if (bit == K_AID) e->aid = v.bytes;
                else e->by = v.bytes;
            }
            break;
        case K_B:
            if (v.type == MSGPACK_OBJECT_BIN) {
                e->b.sealed = 1;
                e->b.box = v.bytes;
                if (v.bytes.len < CR_SEAL_OVERHEAD)
                    ENV_FAIL("b", "a sealed body must be at least %d bytes, got %zu", CR_SEAL_OVERHEAD, v.bytes.len);
                if ((unsigned char)v.bytes.base[0] != CR_SEAL_VERSION)
                    ENV_FAIL("b", "a sealed body must start with version byte 0x01, got 0x%02x", (unsigned char)v.bytes.base[0]);
            } else if (v.type != MSGPACK_OBJECT_MAP) {
                ENV_FAIL("b", "b must be a map or a sealed bin, got %s", type_name(v.type));
            }
            p = cr_mp_skip(p, end);
            e->b.raw.base = vstart;
            e->b.raw.len = (size_t)(p - vstart);
            continue;
        }
        p += n;
    }
    /* required in both */
    if (!(e->seen & K_V))
        ENV_FAIL("v", "missing required field v");
    if (e->v != CR_PROTOCOL_VERSION)
        return cr_error_set(CR_EVERSION, "v", "protocol version %llu is not supported (this side speaks 1)", (unsigned long long)e->v);
    if (!(e->seen & K_K))
        ENV_FAIL("k", "missing required field k");
    if (!kind_syntax_valid(e->k))
        ENV_FAIL("k", "k must be a kind name like approval.request ([a-z][a-z0-9._]{0,63})");
    if (!(e->seen & K_SID))
        ENV_FAIL("sid", "missing required field sid");
    if (!(e->seen & K_TS))
        ENV_FAIL("ts", "missing required field ts");
    if (!(e->seen & K_B)) {
        static const char empty_map = (char)0x80;
        e->b.raw.base = &empty_map;
        e->b.raw.len = 1;
    }
    return 0;
}

int cr_event_decode(cr_event_t *out, const char *mp, size_t len, const cr_limits_t *lim)
{
    envelope_fields_t e;
    int rc;
    if (lim == NULL)
        lim = &cr_limits_default;
    if ((rc = read_envelope(&e, mp, len, lim, lim->max_envelope, K_V | K_K | K_SID | K_SEQ | K_TS | K_IDN | K_PRI | K_B)) != 0)
        return rc;
    if (!(e.seen & K_SEQ))
        ENV_FAIL("seq", "missing required field seq");
    if (e.seq == 0)
        ENV_FAIL("seq", "seq must be a positive integer, got 0");
    if (!(e.seen & K_PRI))
        ENV_FAIL("pri", "missing required field pri");
    if (e.pri > 2)
        ENV_FAIL("pri", "pri must be 0, 1 or 2, got %llu", (unsigned long long)e.pri);
    out->v = (uint32_t)e.v;
    out->k = e.k;
    out->kind = cr_kind_parse(e.k.base, e.k.len);
    if (cr_kind_is_action(out->kind))
        ENV_FAIL("k", "%.*s is an action kind, not an event kind", (int)e.k.len, e.k.base);
    out->sid = e.sid;
    out->seq = e.seq;
    out->ts = e.ts;
    out->idn = e.idn;
    out->pri = (uint8_t)e.pri;
    out->b = e.b;
    if (!e.b.sealed)
        return validate_fields(schemas[out->kind], e.b.raw.base, e.b.raw.len, lim, out->kind);
    return 0;
}

int cr_action_decode(cr_action_t *out, const char *mp, size_t len, const cr_limits_t *lim)
{
    envelope_fields_t e;
    int rc;
    if (lim == NULL)
        lim = &cr_limits_default;
    if ((rc = read_envelope(&e, mp, len, lim, cr_limits_max_action(lim), K_V | K_K | K_SID | K_AID | K_REF | K_TS | K_BY | K_B)) != 0)
        return rc;
    if (!(e.seen & K_AID))
        ENV_FAIL("aid", "missing required field aid");
    if ((e.seen & K_REF) && e.ref == 0)
        ENV_FAIL("ref", "ref must be a positive integer, got 0");
    out->v = (uint32_t)e.v;
    out->k = e.k;
    out->kind = cr_kind_parse(e.k.base, e.k.len);
    if (!cr_kind_is_action(out->kind))
        return cr_error_set(CR_EKIND, "k", "%.*s is not an action kind this version can apply (approve, reject, reply, task, "
                            "interrupt, suspend, resume, diff)", (int)e.k.len, e.k.base);
    out->sid = e.sid;
    out->aid = e.aid;
    out->ref = e.ref;
    out->ts = e.ts;
    out->by = e.by;
    out->b = e.b;
    if (!e.b.sealed) {
        cr_span_t audio = {NULL, 0};
        if ((rc = validate_fields(schemas[out->kind], e.b.raw.base, e.b.raw.len, lim, out->kind)) != 0)
            return rc;
        /* only audio may make an action larger than an ordinary envelope */
        if (len > lim->max_envelope) {
            cr_mp_map_get(e.b.raw.base, e.b.raw.len, "audio", &audio);
            if (len - audio.len > lim->max_envelope)
                return cr_error_set(CR_ETOOLARGE, NULL, "an action of %zu bytes (%zu without audio) is over the limit of %zu",
                                    len, len - audio.len, lim->max_envelope);
        }
    }
    return 0;
}

/* ---- encoding -------------------------------------------------------------------------------------------------- */

typedef struct st_writer_t {
    cr_buf_t *buf;
    int err;
} writer_t;

static int buf_write(void *data, const char *p, size_t n)
{
    writer_t *w = data;
    int rc = w->err == 0 ? cr_buf_append(w->buf, p, n) : w->err;
    if (rc != 0)
        w->err = rc;
    return rc;
}

static void pack_str(msgpack_packer *pk, const char *key, cr_span_t s)
{
    msgpack_pack_str_with_body(pk, key, strlen(key));
    msgpack_pack_str_with_body(pk, s.base, s.len);
}

static void pack_uint(msgpack_packer *pk, const char *key, uint64_t u)
{
    msgpack_pack_str_with_body(pk, key, strlen(key));
    msgpack_pack_uint64(pk, u);
}

static int check_common(cr_span_t k, cr_span_t sid)
{
    if (!kind_syntax_valid(k))
        ENV_FAIL("k", "k must be a kind name like approval.request ([a-z][a-z0-9._]{0,63})");
    if (!cr_id_valid(sid.base, sid.len))
        ENV_FAIL("sid", "sid must be an id of 1 to 64 characters among A-Z a-z 0-9 . _ -");
    return 0;
}

static int finish(writer_t *w, size_t old_len, msgpack_packer *pk, cr_body_t b)
{
    msgpack_pack_str_with_body(pk, "b", 1);
    if (b.raw.len == 0)
        msgpack_pack_map(pk, 0);
    else
        buf_write(w, b.raw.base, b.raw.len);
    if (w->err != 0) { /* the buffer's limit or memory ran out: leave nothing half-written */
        w->buf->len = old_len;
        return w->err;
    }
    return 0;
}

int cr_event_encode(cr_buf_t *out, const cr_event_t *ev)
{
    msgpack_packer pk;
    writer_t w = {out, 0};
    size_t old_len = out->len;
    int rc;
    if ((rc = check_common(ev->k, ev->sid)) != 0)
        return rc;
    if (ev->seq == 0)
        ENV_FAIL("seq", "seq must be a positive integer, got 0");
    if (ev->pri > 2)
        ENV_FAIL("pri", "pri must be 0, 1 or 2, got %u", ev->pri);
    if (ev->idn.len != 0 && !cr_id_valid(ev->idn.base, ev->idn.len))
        ENV_FAIL("idn", "idn must be an id of 1 to 64 characters among A-Z a-z 0-9 . _ -");
    msgpack_packer_init(&pk, &w, buf_write);
    msgpack_pack_map(&pk, ev->idn.len != 0 ? 8 : 7);
    pack_uint(&pk, "v", ev->v != 0 ? ev->v : CR_PROTOCOL_VERSION);
    pack_str(&pk, "k", ev->k);
    pack_str(&pk, "sid", ev->sid);
    pack_uint(&pk, "seq", ev->seq);
    pack_uint(&pk, "ts", ev->ts);
    if (ev->idn.len != 0)
        pack_str(&pk, "idn", ev->idn);
    pack_uint(&pk, "pri", ev->pri);
    return finish(&w, old_len, &pk, ev->b);
}

int cr_action_encode(cr_buf_t *out, const cr_action_t *act)
{
    msgpack_packer pk;
    writer_t w = {out, 0};
    size_t old_len = out->len;
    int rc;
    if ((rc = check_common(act->k, act->sid)) != 0)
        return rc;
    if (!cr_id_valid(act->aid.base, act->aid.len))
        ENV_FAIL("aid", "aid must be an id of 1 to 64 characters among A-Z a-z 0-9 . _ -");
    if (act->by.len != 0 && !cr_id_valid(act->by.base, act->by.len))
        ENV_FAIL("by", "by must be an id of 1 to 64 characters among A-Z a-z 0-9 . _ -");
    msgpack_packer_init(&pk, &w, buf_write);
    msgpack_pack_map(&pk, 6 + (act->ref != 0) + (act->by.len != 0));
    pack_uint(&pk, "v", act->v != 0 ? act->v : CR_PROTOCOL_VERSION);
    pack_str(&pk, "k", act->k);
    pack_str(&pk, "sid", act->sid);
    pack_str(&pk, "aid", act->aid);
    if (act->ref != 0)
        pack_uint(&pk, "ref", act->ref);
    pack_uint(&pk, "ts", act->ts);
    if (act->by.len != 0)
        pack_str(&pk, "by", act->by);
    return finish(&w, old_len, &pk, act->b);
}

/* ---- batches --------------------------------------------------------------------------------------------------- */

int cr_batch_open(cr_batch_t *it, const char *mp, size_t len, const cr_limits_t *lim)
{
    const char *p = mp, *end = mp + len;
    cr_mp_item_t a;
    size_t n;
    if (lim == NULL)
        lim = &cr_limits_default;
    if (len > lim->max_batch_bytes)
        return cr_error_set(CR_ETOOLARGE, NULL, "a batch of %zu bytes is over the limit of %zu", len, lim->max_batch_bytes);
    if ((n = cr_mp_read(p, end, &a)) == 0)
        return cr_error_set(CR_ETRUNCATED, NULL, "the batch is empty or ends inside its header");
    if (a.type != MSGPACK_OBJECT_ARRAY)
        return cr_error_set(CR_EMSGPACK, NULL, "a batch must be an array of envelopes, got %s", type_name(a.type));
    if (a.count > lim->max_batch_events)
        return cr_error_set(CR_ETOOLARGE, NULL, "a batch of %u envelopes is over the limit of %zu", a.count,
                            lim->max_batch_events);
    p += n;
    it->pos = p;
    it->count = a.count;
    it->index = 0;
    /* check every envelope's framing now, so that a broken batch is refused whole and nothing of it is stored */
    for (uint32_t i = 0; i < a.count; ++i) {
        char prefix[16];
        size_t used;
        int rc;
        snprintf(prefix, sizeof(prefix), "%u", i);
        if ((rc = cr_mp_check(p, (size_t)(end - p), lim, lim->max_envelope, prefix, &used)) != 0)
            return rc == CR_EAGAIN ? cr_error_set(CR_ETRUNCATED, prefix, "the batch ends inside envelope %u", i) : rc;
        p += used;
    }
    if (p != end)
        return cr_error_set(CR_ETRAILING, NULL, "%zu bytes follow the batch", (size_t)(end - p));
    it->end = end;
    return 0;
}

int cr_batch_next(cr_batch_t *it, cr_span_t *out)
{
    const char *next;
    if (it->index >= it->count)
        return 0;
    next = cr_mp_skip(it->pos, it->end);
    out->base = it->pos;
    out->len = (size_t)(next - it->pos);
    it->pos = next;
    ++it->index;
    return 1;
}
