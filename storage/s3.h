/* S3-compatible object storage (AWS S3, Ceph RADOS Gateway, MinIO, GCS's XML API) through
 * libcurl, signed with curl's built-in AWS Signature Version 4.
 *
 * Configuration follows the AWS tools: the endpoint from AWS_ENDPOINT_URL_S3 or
 * AWS_ENDPOINT_URL (else the profile's endpoint_url, else AWS's regional endpoint), the
 * region from AWS_REGION or AWS_DEFAULT_REGION (else the profile's, else us-east-1),
 * credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, else the
 * profile (AWS_PROFILE, default "default") in AWS_SHARED_CREDENTIALS_FILE
 * (~/.aws/credentials) or AWS_CONFIG_FILE (~/.aws/config); without any, requests go
 * unsigned (public buckets). AWS_MAX_ATTEMPTS bounds the tries of one request (default 5).
 * With an endpoint set, buckets are addressed by path (endpoint/bucket/key); on AWS's own
 * endpoint, by host (bucket.s3.region.amazonaws.com).
 *
 * Failed requests are retried with exponential backoff and jitter on 5xx and 429
 * answers, connection resets, timeouts and bodies cut short; 404 gives -ENOENT and 403
 * -EACCES at once. Error messages name the object (s3://bucket/key), the HTTP status and
 * S3's error code; no credential ever appears in a message.
 *
 * Thread-safety: every call may be made from any thread; connections are shared. */
#ifndef TP_S3_H
#define TP_S3_H

#include "tp_common.h"

#include <sys/uio.h>

typedef struct tp_s3_object tp_s3_object;

/* @return : whether `path` names object storage (starts with "s3://"). */
bool tp_s3_is_url(const char *path);

/* Names the object at `url` (s3://bucket/key), loading the configuration on first use.
 * No request is made. @return : 0, TP_EUSAGE (not an s3:// URL with a bucket and key, a
 *           configuration that does not parse) or -ENOMEM. */
int tp_s3_object_open(tp_s3_object **out, const char *url, tp_error *err);
/* The object `name` under the prefix `url` (joined with one '/'). */
int tp_s3_object_open_at(tp_s3_object **out, const char *url, const char *name, tp_error *err);
void tp_s3_object_close(tp_s3_object *o);

/* "s3://bucket/key", for messages. */
const char *tp_s3_object_name(const tp_s3_object *o);

/* The object's size. @return : 0, -ENOENT, -EACCES, -EIO (after retries). */
int tp_s3_head(const tp_s3_object *o, uint64_t *size, tp_error *err);

/* Reads exactly `len` bytes at `off` into the iovecs (lengths summing to len).
 * @return : 0, -ENOENT, -EACCES, TP_ETRUNCATED (the object ends first), -EIO. */
int tp_s3_read(const tp_s3_object *o, const struct iovec *iov, unsigned iovcnt, uint64_t off,
               uint64_t len, tp_error *err);

/* Reads a whole object of at most `max` bytes into a NUL-terminated malloc'd buffer.
 * @return : 0, -ENOENT, TP_ETOOBIG, ... as tp_s3_read. */
int tp_s3_get(const tp_s3_object *o, size_t max, char **out, size_t *len, tp_error *err);

/* tp_s3_get of the object `name` under the prefix `url`. */
int tp_s3_get_named(const char *url, const char *name, size_t max, char **out, size_t *len,
                    tp_error *err);

/* Writes a whole object in one request (up to 5 GiB). */
int tp_s3_put(const tp_s3_object *o, const void *data, size_t len, tp_error *err);
int tp_s3_delete(const tp_s3_object *o, tp_error *err); /* a missing object is no error */
/* Copies `src` to `dst` inside the store (CopyObject, up to 5 GiB). */
int tp_s3_copy(const tp_s3_object *src, const tp_s3_object *dst, tp_error *err);

/* Multipart uploads: parts of at least 5 MiB but the last, numbered from 1, at most
 * 10,000. Nothing appears under the key until tp_s3_upload_finish succeeds; abort (or a
 * failed finish, which aborts) removes the parts. */
typedef struct tp_s3_upload tp_s3_upload;
int tp_s3_upload_begin(const tp_s3_object *o, tp_s3_upload **out, tp_error *err);
int tp_s3_upload_part(tp_s3_upload *u, const void *data, size_t len, tp_error *err);
int tp_s3_upload_finish(tp_s3_upload *u, tp_error *err); /* frees u */
void tp_s3_upload_abort(tp_s3_upload *u);                /* frees u */

/* Reads `len` bytes at `off` of a sample location's file or object (loc->fd or
 * loc->object) into the iovecs. @return : as tp__pread_all or tp_s3_read; err is set
 * for objects. */
struct tp_sample_location;
int tp__location_read(const struct tp_sample_location *loc, const struct iovec *iov,
                      unsigned iovcnt, uint64_t off, uint64_t len, tp_error *err);

/* The text of the first `element` (local name, any namespace) of an XML answer of S3's,
 * truncated to cap - 1 bytes. @return : false when there is none or the XML is malformed.
 * For the fuzz target and tests. */
bool tp__s3_xml_text(const char *body, size_t len, const char *element, char *out, size_t cap);

/* ---- the local cache of object reads (s3_cache.c), used by the IO engine's thread */

typedef struct tp__s3_cache tp__s3_cache;
typedef struct tp__s3_cache_stats {
    uint64_t hits, misses, inserts, evictions, corrupt, bytes;
} tp__s3_cache_stats;
/* Opens (creating it if missing) the cache directory, locked against a second engine; the
 * cache's own files there are removed. @return : 0, TP_EUSAGE, -EBUSY, -errno. */
int tp__s3_cache_open(tp__s3_cache **out, const char *dir, uint64_t bound, tp_error *err);
void tp__s3_cache_close(tp__s3_cache *c);
/* @return : 1 with the range's bytes in the iovecs (checked against its hash), or 0. */
int tp__s3_cache_get(tp__s3_cache *c, unsigned file, uint64_t off, uint64_t len,
                     const struct iovec *iov, unsigned n);
/* Keeps a range just read (evicting the least recently used past the bound). */
void tp__s3_cache_put(tp__s3_cache *c, unsigned file, uint64_t off, uint64_t len,
                      const struct iovec *iov, unsigned n);
void tp__s3_cache_stats_get(const tp__s3_cache *c, tp__s3_cache_stats *out);

/* Reads the small file `name` of a dataset location (a directory, or an s3:// prefix) into
 * a NUL-terminated malloc'd buffer of at most `max` bytes. @return : 0, -ENOENT (no message
 * set: the caller says what a missing file means), or another code with err set. */
int tp__location_get(const char *dir, const char *name, size_t max, char **out, size_t *len,
                     tp_error *err);

/* ---- for the IO engine's backend (io_s3.c): one ranged GET at a time per handle */

typedef void tp_s3_handle; /* a CURL easy handle */

/* Sets up `h` (reset first) for a GET of [off, off + len) written into `iov`; progress is
 * kept in *got. The caller adds it to its multi handle. */
typedef struct tp_s3_range {
    struct iovec iov[4];
    unsigned iovcnt;
    uint64_t got;    /* bytes written so far */
    uint64_t want;
    void *h;         /* the handle, set by tp_s3_range_setup */
    char errbuf[256];
} tp_s3_range;
int tp_s3_range_setup(const tp_s3_object *o, tp_s3_handle *h, uint64_t off, tp_s3_range *r);

/* What a finished transfer means: 0 (the range is complete), 1 to retry (a 5xx or 429,
 * a reset, a timeout, a short body: r->got bytes arrived and count), or a final
 * negative code with the message in err. */
int tp_s3_range_result(const tp_s3_object *o, tp_s3_handle *h, int curl_code, tp_s3_range *r,
                       tp_error *err);

/* The delay before try number `attempt` (1 for the first retry), in milliseconds:
 * exponential from 100 ms, capped at 5 s, with full jitter. */
unsigned tp_s3_backoff_ms(unsigned attempt);
/* AWS_MAX_ATTEMPTS, or 5. */
unsigned tp_s3_max_attempts(void);

#endif
