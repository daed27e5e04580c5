/* turbopump error codes.
 * Every function returns 0 (or a count) on success and a negative code on failure: either
 * a negated errno value (-ENOENT, -ENOMEM, ...) or one of the project codes below, which
 * live under -4095 so they never collide with errno. tp_strerror() explains both. Calls
 * that can fail on a particular file or sample also fill an optional tp_error with a
 * message naming what and where; there is no global error state. */
#ifndef TURBOPUMP_ERROR_H
#define TURBOPUMP_ERROR_H

#include <turbopump/version.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    TP_ECORRUPT = -4096,  /* checksum mismatch or malformed structure */
    TP_EVERSION = -4097,  /* format version newer than this build understands */
    TP_ENODATASET = -4098, /* directory has no manifest.json: not a dataset */
    TP_ETRUNCATED = -4099, /* file shorter than its structure says */
    TP_EBADIMAGE = -4100, /* image data invalid, truncated or unsupported */
    TP_ETOOBIG = -4101,   /* a size exceeds a configured limit */
    TP_ELMDB = -4102,     /* LMDB reported an error (see the tp_error message) */
    TP_ENOFIELD = -4103,  /* the dataset has no field of that name */
    TP_EUSAGE = -4104,    /* invalid argument combination or option value */
    TP_EPROTOCOL = -4105, /* a malformed or out-of-range message or ring counter */
    TP_ESESSION = -4106,  /* the daemon ended the session (the message says why) */
    TP_ENODAEMON = -4107, /* no daemon answers at the socket (and none could be started) */
    TP_ENODEVICE = -4108, /* no GPU plugin, driver or device, or a CUDA call failed */
    TP_EUNAVAILABLE = -4109, /* object storage kept failing until AWS_MAX_ATTEMPTS ran out */
    TP_ELAST = -4110
};

/* Detail of a failure, filled by calls that take one (a NULL pointer is allowed and
 * means "no detail wanted"). `code` repeats the return value; `msg` names the file,
 * shard or sample and the cause, NUL-terminated. Owned by the caller. */
typedef struct tp_error {
    int code;
    char msg[512];
} tp_error;

/* @return : a static, NUL-terminated description of `code` (errno or TP_E*).
 *           Unknown codes give a generic string. Thread-safe. */
TP_API const char *tp_strerror(int code);

#ifdef __cplusplus
}
#endif
#endif
