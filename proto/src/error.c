/* error.c — error code names and the thread-local last error. */
#include "corral/error.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local cr_error_t last_error;

const char *cr_err_code(int err)
{
    switch (err) {
    case CR_OK: return "ok";
    case CR_ENOMEM: return "no_memory";
    case CR_EAGAIN: return "incomplete";
    case CR_ETRUNCATED: return "truncated";
    case CR_EMSGPACK: return "bad_msgpack";
    case CR_ETOOLARGE: return "too_large";
    case CR_ETOODEEP: return "too_deep";
    case CR_EENVELOPE: return "bad_envelope";
    case CR_EBODY: return "bad_body";
    case CR_EVERSION: return "unsupported_version";
    case CR_EKIND: return "unknown_kind";
    case CR_ESEAL: return "bad_seal";
    case CR_EJSON: return "bad_json";
    case CR_EENCODING: return "bad_encoding";
    case CR_ECONFIG: return "bad_config";
    case CR_ETRAILING: return "trailing_bytes";
    case CR_ENOTFOUND: return "not_found";
    case CR_EIO: return "io";
    case CR_EEXISTS: return "exists";
    case CR_ECONFLICT: return "conflict";
    case CR_ENOTFF: return "not_fast_forward";
    case CR_EDIRTY: return "dirty_worktree";
    case CR_EBADNAME: return "bad_name";
    default: return "internal";
    }
}

const cr_error_t *cr_error_last(void)
{
    return &last_error;
}

int cr_error_set(int code, const char *field, const char *fmt, ...)
{
    va_list ap;
    last_error.code = code;
    if (field != last_error.field) /* a caller may pass the current field back: leave it as it is */
        snprintf(last_error.field, sizeof(last_error.field), "%s", field != NULL ? field : "");
    va_start(ap, fmt);
    vsnprintf(last_error.message, sizeof(last_error.message), fmt, ap);
    va_end(ap);
    return code;
}

void cr_error_clear(void)
{
    memset(&last_error, 0, sizeof(last_error));
}

/* Appends s to out as the inside of a JSON string. */
static size_t json_escape(char *out, size_t outlen, size_t pos, const char *s)
{
    for (; *s != '\0'; ++s) {
        unsigned char c = (unsigned char)*s;
        size_t need = c == '"' || c == '\\' ? 2 : c < 0x20 ? 6 : 1;
        if (pos + need + 4 > outlen) /* keep room for the closing "}} and the NUL; never split an escape */
            break;
        if (c == '"' || c == '\\') {
            out[pos++] = '\\';
            out[pos++] = (char)c;
        } else if (c < 0x20) {
            pos += (size_t)snprintf(out + pos, outlen - pos, "\\u%04x", c);
        } else {
            out[pos++] = (char)c;
        }
    }
    return pos;
}

size_t cr_error_json(char *out, size_t outlen)
{
    size_t pos;
    if (outlen < 64)
        return 0;
    pos = (size_t)snprintf(out, outlen, "{\"error\":{\"code\":\"%s\",\"message\":\"", cr_err_code(last_error.code));
    pos = json_escape(out, outlen, pos, last_error.message);
    if (last_error.field[0] != '\0' && pos + 12 < outlen) {
        memcpy(out + pos, "\",\"field\":\"", 11);
        pos = json_escape(out, outlen, pos + 11, last_error.field);
    }
    if (pos + 4 > outlen)
        pos = outlen - 4;
    memcpy(out + pos, "\"}}", 4);
    return pos + 3;
}
