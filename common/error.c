/* Error strings for errno values and for the project's own codes, plus the helper that
 * fills a caller's tp_error with a message naming what failed and where. */
#include "tp_common.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const project_messages[] = {
    [-(TP_ECORRUPT) - 4096] = "corrupt data (checksum mismatch or malformed structure)",
    [-(TP_EVERSION) - 4096] = "unsupported format version",
    [-(TP_ENODATASET) - 4096] = "not a turbopump dataset (no manifest.json)",
    [-(TP_ETRUNCATED) - 4096] = "file is truncated",
    [-(TP_EBADIMAGE) - 4096] = "invalid, truncated or unsupported image",
    [-(TP_ETOOBIG) - 4096] = "size exceeds a configured limit",
    [-(TP_ELMDB) - 4096] = "LMDB error",
    [-(TP_ENOFIELD) - 4096] = "no such field",
    [-(TP_EUSAGE) - 4096] = "invalid argument",
    [-(TP_EPROTOCOL) - 4096] = "protocol violation",
    [-(TP_ESESSION) - 4096] = "the daemon ended the session",
    [-(TP_ENODAEMON) - 4096] = "no turbopump daemon answers",
    [-(TP_ENODEVICE) - 4096] = "no usable GPU (plugin, driver or device), or a CUDA error",
    [-(TP_EUNAVAILABLE) - 4096] =
        "object storage failed every try (5xx, 429, reset or timeout; AWS_MAX_ATTEMPTS)",
};

TP_API const char *tp_strerror(int code)
{
    if (code >= 0)
        return "success";
    if (code <= TP_ECORRUPT && code > TP_ELAST)
        return project_messages[-code - 4096];
    if (code > -4096) {
        /* strerrordesc_np is thread-safe and static, unlike strerror. */
        const char *s = strerrordesc_np(-code);
        if (s)
            return s;
    }
    return "unknown error";
}

int tp__error_set(tp_error *err, int code, const char *fmt, ...)
{
    assert(code < 0);
    if (err) {
        /* Formatted apart first: callers prefix a message with context by passing
         * err->msg itself as an argument. */
        char msg[sizeof(err->msg)];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        memcpy(err->msg, msg, sizeof(msg));
        err->code = code;
    }
    return code;
}
