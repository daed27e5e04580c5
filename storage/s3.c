/* S3 requests through libcurl (s3.h): configuration from the AWS variables and files
 * (the files parsed with inih), path- or host-style URLs, SigV4 by curl, retries with
 * backoff, S3's XML answers read with expat. */
#include "s3.h"

#include <curl/curl.h>
#include <turbopump/dataset.h>
#include <expat.h>
#include <ini.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define MAX_ERROR_BODY 4096
#define CONNECT_TIMEOUT_S 10L
/* A transfer that moves fewer than this many bytes a second for LOW_SPEED_S is cut off
 * and retried: a stalled gateway must not hang a read for ever. */
#define LOW_SPEED_BYTES 1024L
#define LOW_SPEED_S 20L

typedef struct s3_config {
    char *endpoint;  /* scheme://host[:port], no trailing slash; NULL: AWS's own */
    char *region;
    char *key, *secret, *token;
    char *sigv4;     /* "aws:amz:REGION:s3" */
    char *userpwd;   /* key:secret, handed to curl only */
    char *token_header; /* "x-amz-security-token: ..." with a session token */
    unsigned attempts;
    CURLSH *share;
    pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
    int rc;
    char msg[256];
} s3_config;

static s3_config cfg;
static pthread_once_t cfg_once = PTHREAD_ONCE_INIT;

struct tp_s3_object {
    char *bucket, *key;
    char *name;      /* s3://bucket/key */
    char *url;       /* the HTTP URL of the object */
};

bool tp_s3_is_url(const char *path) { return path && !strncmp(path, "s3://", 5); }

/* ---- configuration */

typedef struct profile_read {
    const char *section;  /* "default" or "profile NAME" (config) / "NAME" (credentials) */
    const char *alt;
    char *region, *endpoint, *key, *secret, *token;
} profile_read;

static void keep(char **slot, const char *value)
{
    if (!*slot && value && *value)
        *slot = strdup(value);
}

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
    profile_read *p = user;
    if (strcmp(section, p->section) && (!p->alt || strcmp(section, p->alt)))
        return 1;
    if (!strcmp(name, "region"))
        keep(&p->region, value);
    else if (!strcmp(name, "endpoint_url"))
        keep(&p->endpoint, value);
    else if (!strcmp(name, "aws_access_key_id"))
        keep(&p->key, value);
    else if (!strcmp(name, "aws_secret_access_key"))
        keep(&p->secret, value);
    else if (!strcmp(name, "aws_session_token"))
        keep(&p->token, value);
    return 1;
}

static char *home_file(const char *env, const char *rel)
{
    const char *set = getenv(env);
    if (set && *set)
        return strdup(set);
    const char *home = getenv("HOME");
    return home && *home ? tp__path_join(home, rel) : NULL;
}

/* A profile's values from one file; a missing file is no error, a malformed one is. */
static int read_profile(const char *env, const char *rel, const char *section, const char *alt,
                        profile_read *p)
{
    char *file = home_file(env, rel);
    if (!file)
        return 0;
    p->section = section;
    p->alt = alt;
    FILE *f = fopen(file, "re");
    int line = f ? ini_parse_file(f, on_ini, p) : 0;
    if (f)
        fclose(f);
    if (line != 0) {
        snprintf(cfg.msg, sizeof(cfg.msg), "%s: cannot parse line %d", file, line);
        free(file);
        return TP_EUSAGE;
    }
    free(file);
    return 0;
}

static const char *env_of(const char *a, const char *b)
{
    const char *v = getenv(a);
    if ((!v || !*v) && b)
        v = getenv(b);
    return v && *v ? v : NULL;
}

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *u)
{
    (void)h, (void)a, (void)u;
    pthread_mutex_lock(&cfg.locks[d]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *u)
{
    (void)h, (void)u;
    pthread_mutex_unlock(&cfg.locks[d]);
}

static void load_config(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        cfg.rc = -ENOMEM;
        snprintf(cfg.msg, sizeof(cfg.msg), "cannot initialise libcurl");
        return;
    }
    const char *profile = env_of("AWS_PROFILE", NULL);
    profile = profile ? profile : "default";
    char section[160];
    snprintf(section, sizeof(section), "profile %s", profile);
    profile_read creds = {0}, conf = {0};
    cfg.rc = read_profile("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials", profile, NULL,
                          &creds);
    if (cfg.rc == 0)
        cfg.rc = read_profile("AWS_CONFIG_FILE", ".aws/config", section,
                              strcmp(profile, "default") ? NULL : "default", &conf);
    const char *v;
    if ((v = env_of("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")))
        cfg.endpoint = strdup(v);
    else
        keep(&cfg.endpoint, conf.endpoint);
    if (cfg.endpoint)
        for (size_t n = strlen(cfg.endpoint); n > 0 && cfg.endpoint[n - 1] == '/'; n--)
            cfg.endpoint[n - 1] = 0;
    keep(&cfg.region, env_of("AWS_REGION", "AWS_DEFAULT_REGION"));
    keep(&cfg.region, conf.region);
    keep(&cfg.region, "us-east-1");
    const char *k = env_of("AWS_ACCESS_KEY_ID", NULL), *s = env_of("AWS_SECRET_ACCESS_KEY", NULL);
    if (k && s) {
        keep(&cfg.key, k);
        keep(&cfg.secret, s);
        keep(&cfg.token, env_of("AWS_SESSION_TOKEN", NULL));
    } else if (creds.key && creds.secret) {
        keep(&cfg.key, creds.key), keep(&cfg.secret, creds.secret), keep(&cfg.token, creds.token);
    } else if (conf.key && conf.secret) {
        keep(&cfg.key, conf.key), keep(&cfg.secret, conf.secret), keep(&cfg.token, conf.token);
    }
    profile_read *all[] = {&creds, &conf};
    for (int i = 0; i < 2; i++) {
        free(all[i]->region), free(all[i]->endpoint), free(all[i]->key);
        free(all[i]->secret), free(all[i]->token);
    }
    uint64_t attempts = 5;
    if ((v = env_of("AWS_MAX_ATTEMPTS", NULL)) && tp__parse_u64(v, 1, 100, &attempts) < 0 &&
        cfg.rc == 0) {
        cfg.rc = TP_EUSAGE;
        snprintf(cfg.msg, sizeof(cfg.msg), "AWS_MAX_ATTEMPTS must be 1-100, not '%s'", v);
    }
    cfg.attempts = (unsigned)attempts;
    size_t n = strlen(cfg.region) + 16;
    cfg.sigv4 = malloc(n);
    if (cfg.sigv4)
        snprintf(cfg.sigv4, n, "aws:amz:%s:s3", cfg.region);
    if (cfg.token) {
        n = strlen(cfg.token) + 32;
        if ((cfg.token_header = malloc(n)))
            snprintf(cfg.token_header, n, "x-amz-security-token: %s", cfg.token);
    }
    if (cfg.key) {
        n = strlen(cfg.key) + strlen(cfg.secret) + 2;
        if ((cfg.userpwd = malloc(n)))
            snprintf(cfg.userpwd, n, "%s:%s", cfg.key, cfg.secret);
    }
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&cfg.locks[i], NULL);
    if ((cfg.share = curl_share_init())) {
        curl_share_setopt(cfg.share, CURLSHOPT_LOCKFUNC, share_lock);
        curl_share_setopt(cfg.share, CURLSHOPT_UNLOCKFUNC, share_unlock);
        curl_share_setopt(cfg.share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
        curl_share_setopt(cfg.share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    }
    if (cfg.rc == 0 && (!cfg.region || !cfg.sigv4 || (cfg.key && !cfg.userpwd) ||
                        (cfg.token && !cfg.token_header) || !cfg.share)) {
        cfg.rc = -ENOMEM;
        snprintf(cfg.msg, sizeof(cfg.msg), "out of memory");
    }
}

static int config(tp_error *err)
{
    pthread_once(&cfg_once, load_config);
    return cfg.rc ? tp__error_set(err, cfg.rc, "S3 configuration: %s", cfg.msg) : 0;
}

unsigned tp_s3_max_attempts(void)
{
    pthread_once(&cfg_once, load_config);
    return cfg.attempts ? cfg.attempts : 5;
}

unsigned tp_s3_backoff_ms(unsigned attempt)
{
    unsigned cap = 100u << TP_MIN(attempt, 6u);
    cap = TP_MIN(cap, 5000u);
    static _Thread_local uint64_t state;
    if (!state)
        state = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)&state;
    return cap / 2 + (unsigned)(tp__splitmix64(&state) % (cap / 2 + 1));
}

/* ---- names */

/* Writes `s` percent-encoded: all but unreserved characters, and '/' too unless it is a
 * path (an S3 key in a path keeps its slashes; a query value does not). */
static void encode(char *out, const char *s, bool path)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~' || (c == '/' && path)) {
            *out++ = (char)c;
        } else {
            *out++ = '%';
            *out++ = hex[c >> 4];
            *out++ = hex[c & 15];
        }
    }
    *out = 0;
}

int tp_s3_object_open_at(tp_s3_object **out, const char *url, const char *name, tp_error *err)
{
    TP_TRY(config(err));
    if (!tp_s3_is_url(url))
        return tp__error_set(err, TP_EUSAGE, "%s: not an s3:// URL", url);
    const char *b = url + 5, *slash = strchr(b, '/');
    size_t blen = slash ? (size_t)(slash - b) : strlen(b);
    if (blen < 3 || blen > 63 || strspn(b, "abcdefghijklmnopqrstuvwxyz0123456789.-") < blen)
        return tp__error_set(err, TP_EUSAGE, "%s: the bucket name must be 3-63 lower-case "
                             "letters, digits, '.' or '-'", url);
    const char *prefix = slash ? slash + 1 : "";
    size_t plen = strlen(prefix);
    while (plen && prefix[plen - 1] == '/')
        plen--;
    tp_s3_object *o = calloc(1, sizeof(*o));
    size_t klen = plen + (name ? strlen(name) + 1 : 0);
    if (!o || !(o->bucket = strndup(b, blen)) || !(o->key = malloc(klen + 1)))
        goto oom;
    memcpy(o->key, prefix, plen);
    o->key[plen] = 0;
    if (name && *name) {
        if (plen)
            strcat(o->key, "/");
        strcat(o->key, name);
    }
    if (!*o->key) {
        tp_s3_object_close(o);
        return tp__error_set(err, TP_EUSAGE, "%s: no object key after the bucket", url);
    }
    size_t n = strlen(o->bucket) + strlen(o->key) + 8;
    if (!(o->name = malloc(n)))
        goto oom;
    snprintf(o->name, n, "s3://%s/%s", o->bucket, o->key);
    char *ek = malloc(3 * strlen(o->key) + 1);
    if (!ek)
        goto oom;
    encode(ek, o->key, true);
    n = (cfg.endpoint ? strlen(cfg.endpoint) : strlen(cfg.region) + 32) + strlen(o->bucket) +
        strlen(ek) + 8;
    if (!(o->url = malloc(n))) {
        free(ek);
        goto oom;
    }
    if (cfg.endpoint)
        snprintf(o->url, n, "%s/%s/%s", cfg.endpoint, o->bucket, ek);
    else
        snprintf(o->url, n, "https://%s.s3.%s.amazonaws.com/%s", o->bucket, cfg.region, ek);
    free(ek);
    *out = o;
    return 0;
oom:
    tp_s3_object_close(o);
    return tp__error_set(err, -ENOMEM, "out of memory");
}

int tp_s3_object_open(tp_s3_object **out, const char *url, tp_error *err)
{
    return tp_s3_object_open_at(out, url, NULL, err);
}

void tp_s3_object_close(tp_s3_object *o)
{
    if (!o)
        return;
    free(o->bucket);
    free(o->key);
    free(o->name);
    free(o->url);
    free(o);
}

const char *tp_s3_object_name(const tp_s3_object *o) { return o->name; }

/* ---- S3's XML: the text of the first element of a name */

typedef struct xml_pick {
    const char *want;
    bool inside, done;
    char text[256];
    size_t len;
} xml_pick;

static void XMLCALL xml_start(void *u, const XML_Char *name, const XML_Char **attrs)
{
    (void)attrs;
    xml_pick *x = u;
    const char *local = strrchr(name, ':'); /* with namespaces, "uri:Local" */
    if (!x->done && !strcmp(local ? local + 1 : name, x->want))
        x->inside = true;
}

static void XMLCALL xml_end(void *u, const XML_Char *name)
{
    (void)name;
    xml_pick *x = u;
    if (x->inside)
        x->inside = false, x->done = true;
}

static void XMLCALL xml_text(void *u, const XML_Char *s, int len)
{
    xml_pick *x = u;
    if (!x->inside)
        return;
    size_t n = TP_MIN((size_t)len, sizeof(x->text) - 1 - x->len);
    memcpy(x->text + x->len, s, n);
    x->len += n;
    x->text[x->len] = 0;
}

/* @return : the element's text (in x->text), or false when there is none. */
static bool xml_find(const char *body, size_t len, const char *element, xml_pick *x);

bool tp__s3_xml_text(const char *body, size_t len, const char *element, char *out, size_t cap)
{
    xml_pick x;
    if (!xml_find(body, len, element, &x))
        return false;
    snprintf(out, cap, "%s", x.text);
    return true;
}

static bool xml_find(const char *body, size_t len, const char *element, xml_pick *x)
{
    *x = (xml_pick){.want = element};
    XML_Parser p = XML_ParserCreateNS(NULL, ':');
    if (!p)
        return false;
    XML_SetUserData(p, x);
    XML_SetElementHandler(p, xml_start, xml_end);
    XML_SetCharacterDataHandler(p, xml_text);
    bool ok = XML_Parse(p, body, (int)TP_MIN(len, (size_t)INT32_MAX), 1) != XML_STATUS_ERROR;
    XML_ParserFree(p);
    return ok && x->done;
}

/* ---- one request, with retries */

typedef struct request {
    const char *method;   /* GET, HEAD, PUT, POST, DELETE */
    const char *query;    /* "" or "?..." */
    const void *body;     /* PUT/POST */
    size_t body_len, body_at;
    uint64_t range_off, range_len; /* range_len 0: no Range header */
    /* where a body goes: iovecs (exact), or a growing buffer (up to max) */
    const struct iovec *iov;
    unsigned iovcnt;
    uint64_t got;
    char *buf;
    size_t buf_len, buf_cap, max;
    bool too_big;
    char *etag;           /* the ETag header of the answer, when asked for */
    bool want_etag;
    const char *extra_header;
    uint64_t length;      /* Content-Length of a HEAD */
    CURL *h;
    char errbuf[CURL_ERROR_SIZE];
} request;

/* Whether the answer being received is a success (its body is the data asked for). */
static bool answer_ok(CURL *h)
{
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    return status >= 200 && status < 300;
}

/* Writes `len` body bytes at byte `at` of the iovecs. @return : false when they do not
 * fit (more than the range asked for). */
static bool iov_put(const struct iovec *iov, unsigned n, uint64_t at, const char *p, size_t len)
{
    for (unsigned i = 0; i < n && len; i++) {
        if (at >= iov[i].iov_len) {
            at -= iov[i].iov_len;
            continue;
        }
        size_t k = TP_MIN(len, (size_t)(iov[i].iov_len - at));
        memcpy((char *)iov[i].iov_base + at, p, k);
        p += k, len -= k, at = 0;
    }
    return len == 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *u)
{
    request *r = u;
    size_t len = size * n;
    if (r->iov && answer_ok(r->h)) { /* an error's body goes to buf */
        if (!iov_put(r->iov, r->iovcnt, r->got, p, len))
            return 0;
        r->got += len;
        return len;
    }
    if (r->buf_len + len > r->max) {
        r->too_big = true;
        return 0;
    }
    if (tp__grow((void **)&r->buf, &r->buf_cap, r->buf_len + len + 1) < 0)
        return 0;
    memcpy(r->buf + r->buf_len, p, len);
    r->buf_len += len;
    r->buf[r->buf_len] = 0;
    return len;
}

static size_t on_upload(char *p, size_t size, size_t n, void *u)
{
    request *r = u;
    size_t k = TP_MIN(size * n, r->body_len - r->body_at);
    memcpy(p, (const char *)r->body + r->body_at, k);
    r->body_at += k;
    return k;
}

static size_t on_header(char *p, size_t size, size_t n, void *u)
{
    request *r = u;
    size_t len = size * n;
    if (r->want_etag && len > 5 && !strncasecmp(p, "etag:", 5)) {
        const char *v = p + 5;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t k = (size_t)(p + len - v);
        while (k && (v[k - 1] == '\r' || v[k - 1] == '\n' || v[k - 1] == ' '))
            k--;
        free(r->etag);
        r->etag = strndup(v, k);
    }
    return len;
}

/* The options every request shares: URL, signing, timeouts, connection sharing. */
static struct curl_slist *common_setup(CURL *h, const tp_s3_object *o, const char *query,
                                       char *errbuf)
{
    if (*query) {
        char *url = malloc(strlen(o->url) + strlen(query) + 1);
        if (!url)
            return NULL;
        strcpy(url, o->url);
        strcat(url, query);
        curl_easy_setopt(h, CURLOPT_URL, url);
        free(url); /* curl keeps its own copy */
    } else {
        curl_easy_setopt(h, CURLOPT_URL, o->url);
    }
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_SHARE, cfg.share);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, LOW_SPEED_BYTES);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, LOW_SPEED_S);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    errbuf[0] = 0;
    /* RGW, like AWS, wants the payload hash header in the signature; curl 7.88 does not
     * add it by itself. */
    struct curl_slist *hd = curl_slist_append(NULL, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    if (hd && cfg.token_header) {
        struct curl_slist *more = curl_slist_append(hd, cfg.token_header);
        hd = more ? more : hd;
    }
    if (cfg.userpwd) {
        curl_easy_setopt(h, CURLOPT_AWS_SIGV4, cfg.sigv4);
        curl_easy_setopt(h, CURLOPT_USERPWD, cfg.userpwd);
    }
    return hd;
}

static bool transient_curl(CURLcode c)
{
    switch (c) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        return true;
    default:
        return false;
    }
}

/* Names a final HTTP failure. */
static int http_error(const tp_s3_object *o, long status, const char *body, size_t len,
                      const char *method, tp_error *err)
{
    xml_pick x;
    const char *code = body && xml_find(body, len, "Code", &x) ? x.text : "";
    int rc = status == 404 ? -ENOENT : status == 403 ? -EACCES : status == 416 ? TP_ETRUNCATED
           : status == 400 || status == 405 || status == 411 ? TP_EUSAGE : -EIO;
    return tp__error_set(err, rc, "%s: %s: HTTP %ld%s%s", o->name, method, status,
                         *code ? " " : "", code);
}

static void sleep_ms(unsigned ms)
{
    struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&t, &t) < 0 && errno == EINTR)
        ;
}

static int perform(const tp_s3_object *o, request *r, tp_error *err)
{
    TP_TRY(config(err));
    CURL *h = curl_easy_init();
    if (!h)
        return tp__error_set(err, -ENOMEM, "out of memory for an HTTP request");
    int rc = -EIO;
    unsigned attempts = tp_s3_max_attempts();
    for (unsigned attempt = 0; attempt < attempts; attempt++) {
        if (attempt)
            sleep_ms(tp_s3_backoff_ms(attempt));
        curl_easy_reset(h);
        struct curl_slist *hd = common_setup(h, o, r->query, r->errbuf);
        if (!hd) {
            rc = tp__error_set(err, -ENOMEM, "out of memory for an HTTP request");
            break;
        }
        char range[64];
        if (r->range_len) {
            /* a retry after part of the body asks only for the rest */
            snprintf(range, sizeof(range), "%llu-%llu",
                     (unsigned long long)(r->range_off + r->got),
                     (unsigned long long)(r->range_off + r->range_len - 1));
            curl_easy_setopt(h, CURLOPT_RANGE, range);
        }
        r->buf_len = 0, r->too_big = false, r->body_at = 0, r->h = h;
        if (!strcmp(r->method, "HEAD")) {
            curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        } else if (!strcmp(r->method, "PUT")) {
            curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(h, CURLOPT_READFUNCTION, on_upload);
            curl_easy_setopt(h, CURLOPT_READDATA, r);
            curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
        } else if (!strcmp(r->method, "POST")) {
            curl_easy_setopt(h, CURLOPT_POST, 1L);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body ? r->body : "");
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
            struct curl_slist *more = curl_slist_append(hd, "Content-Type: application/xml");
            hd = more ? more : hd;
        } else if (strcmp(r->method, "GET")) {
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
        }
        if (r->extra_header) {
            struct curl_slist *more = curl_slist_append(hd, r->extra_header);
            hd = more ? more : hd;
        }
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
        long status = 0;
        CURLcode c = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_slist_free_all(hd);
        if (c == CURLE_WRITE_ERROR && r->too_big) {
            rc = tp__error_set(err, TP_ETOOBIG, "%s: larger than %zu bytes", o->name, r->max);
            break;
        }
        bool ok = c == CURLE_OK && status >= 200 && status < 300;
        if (ok && r->range_len && r->got < r->range_len) {
            /* a body cut short without an error from curl: ask again for the rest */
            c = CURLE_PARTIAL_FILE;
            ok = false;
        }
        if (ok) {
            if (!strcmp(r->method, "HEAD")) {
                curl_off_t n = -1;
                curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &n);
                r->length = n < 0 ? 0 : (uint64_t)n;
            }
            rc = 0;
            break;
        }
        if (c != CURLE_OK && !(c == CURLE_WRITE_ERROR && status >= 300)) {
            if (!transient_curl(c) || attempt + 1 == attempts) {
                rc = tp__error_set(err, -EIO, "%s: %s: %s (%s)%s", o->name, r->method,
                                   curl_easy_strerror(c), r->errbuf[0] ? r->errbuf : "no detail",
                                   attempt ? " after retries" : "");
                break;
            }
            continue;
        }
        if (status >= 500 || status == 429) {
            if (attempt + 1 == attempts) {
                rc = http_error(o, status, r->buf, r->buf_len, r->method, err);
                break;
            }
            continue;
        }
        rc = http_error(o, status, r->buf, r->buf_len, r->method, err);
        break;
    }
    curl_easy_cleanup(h);
    return rc;
}

/* For an error answer's body when the body was meant for iovecs. */
static int perform_read(const tp_s3_object *o, request *r, tp_error *err)
{
    r->max = MAX_ERROR_BODY;
    int rc = perform(o, r, err);
    free(r->buf);
    r->buf = NULL;
    return rc;
}

int tp_s3_head(const tp_s3_object *o, uint64_t *size, tp_error *err)
{
    request r = {.method = "HEAD", .query = ""};
    int rc = perform_read(o, &r, err);
    if (rc == 0)
        *size = r.length;
    return rc;
}

int tp_s3_read(const tp_s3_object *o, const struct iovec *iov, unsigned iovcnt, uint64_t off,
               uint64_t len, tp_error *err)
{
    if (!len)
        return 0;
    request r = {.method = "GET", .query = "", .range_off = off, .range_len = len, .iov = iov,
                 .iovcnt = iovcnt};
    return perform_read(o, &r, err);
}

int tp_s3_get(const tp_s3_object *o, size_t max, char **out, size_t *len, tp_error *err)
{
    request r = {.method = "GET", .query = "", .max = max};
    int rc = perform(o, &r, err);
    if (rc == 0 && !r.buf && !(r.buf = calloc(1, 1)))
        rc = tp__error_set(err, -ENOMEM, "out of memory");
    if (rc < 0) {
        free(r.buf);
        return rc;
    }
    *out = r.buf;
    *len = r.buf_len;
    return 0;
}

int tp_s3_get_named(const char *url, const char *name, size_t max, char **out, size_t *len,
                    tp_error *err)
{
    tp_s3_object *o;
    TP_TRY(tp_s3_object_open_at(&o, url, name, err));
    int rc = tp_s3_get(o, max, out, len, err);
    tp_s3_object_close(o);
    return rc;
}

int tp_s3_put(const tp_s3_object *o, const void *data, size_t len, tp_error *err)
{
    request r = {.method = "PUT", .query = "", .body = data, .body_len = len};
    return perform_read(o, &r, err);
}

int tp_s3_delete(const tp_s3_object *o, tp_error *err)
{
    request r = {.method = "DELETE", .query = ""};
    int rc = perform_read(o, &r, err);
    return rc == -ENOENT ? 0 : rc;
}

int tp__location_read(const struct tp_sample_location *loc, const struct iovec *iov,
                      unsigned iovcnt, uint64_t off, uint64_t len, tp_error *err)
{
    if (loc->object)
        return tp_s3_read(loc->object, iov, iovcnt, off, len, err);
    uint64_t got = 0;
    while (got < len) {
        struct iovec rest[4];
        unsigned k = tp__iov_skip(iov, TP_MIN(iovcnt, 4u), got, rest);
        ssize_t n = preadv(loc->fd, rest, (int)k, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int rc = n < 0 ? -errno : TP_ETRUNCATED;
            return tp__error_set(err, rc, "%s", tp_strerror(rc));
        }
        got += (uint64_t)n;
    }
    return 0;
}

int tp_s3_copy(const tp_s3_object *src, const tp_s3_object *dst, tp_error *err)
{
    char *source = malloc(3 * (strlen(src->bucket) + strlen(src->key)) + 32);
    if (!source)
        return tp__error_set(err, -ENOMEM, "out of memory");
    strcpy(source, "x-amz-copy-source: /");
    encode(source + strlen(source), src->bucket, true);
    strcat(source, "/");
    encode(source + strlen(source), src->key, true);
    request r = {.method = "PUT", .query = "", .extra_header = source, .max = 1 << 16};
    int rc = perform(dst, &r, err);
    xml_pick x; /* S3 may answer 200 with an error in the body */
    if (rc == 0 && r.buf && xml_find(r.buf, r.buf_len, "Code", &x))
        rc = tp__error_set(err, -EIO, "%s: copying from %s: %s", dst->name, src->name, x.text);
    free(r.buf);
    free(source);
    return rc;
}

int tp__location_get(const char *dir, const char *name, size_t max, char **out, size_t *len,
                     tp_error *err)
{
    if (tp_s3_is_url(dir))
        return tp_s3_get_named(dir, name, max, out, len, err);
    char *file = tp__path_join(dir, name);
    int rc = file ? tp__read_file(file, max, out, len) : -ENOMEM;
    if (rc < 0 && rc != -ENOENT)
        tp__error_set(err, rc, "%s: %s", file ? file : name, tp_strerror(rc));
    free(file);
    return rc;
}

/* ---- multipart uploads */

struct tp_s3_upload {
    const tp_s3_object *o;
    char *id;
    char **etags;
    unsigned parts, cap;
};

#define MAX_PARTS 10000u

int tp_s3_upload_begin(const tp_s3_object *o, tp_s3_upload **out, tp_error *err)
{
    /* "?uploads=": curl 7.88 signs a bare "?uploads" differently from S3 */
    request r = {.method = "POST", .query = "?uploads=", .max = 1 << 16};
    TP_TRY(perform(o, &r, err));
    xml_pick x;
    tp_s3_upload *u = NULL;
    if (!xml_find(r.buf ? r.buf : "", r.buf_len, "UploadId", &x) || !x.len) {
        free(r.buf);
        return tp__error_set(err, -EIO, "%s: no UploadId in the answer to a multipart "
                             "upload", o->name);
    }
    free(r.buf);
    if (!(u = calloc(1, sizeof(*u))) || !(u->id = strdup(x.text))) {
        free(u);
        return tp__error_set(err, -ENOMEM, "out of memory");
    }
    u->o = o;
    *out = u;
    return 0;
}

/* A query naming the upload (and a part): "?uploadId=ID" or "?partNumber=N&uploadId=ID",
 * the id percent-encoded. */
static void id_query(char *q, size_t cap, unsigned part, const char *id)
{
    char enc[3 * 256 + 1], tmp[256];
    snprintf(tmp, sizeof(tmp), "%s", id);
    encode(enc, tmp, false);
    if (part)
        snprintf(q, cap, "?partNumber=%u&uploadId=%s", part, enc);
    else
        snprintf(q, cap, "?uploadId=%s", enc);
}

int tp_s3_upload_part(tp_s3_upload *u, const void *data, size_t len, tp_error *err)
{
    if (u->parts == MAX_PARTS)
        return tp__error_set(err, TP_ETOOBIG, "%s: more than %u parts", u->o->name, MAX_PARTS);
    if (u->parts == u->cap) {
        unsigned cap = u->cap ? 2 * u->cap : 64;
        char **grown = realloc(u->etags, cap * sizeof(char *));
        if (!grown)
            return tp__error_set(err, -ENOMEM, "out of memory");
        u->etags = grown, u->cap = cap;
    }
    char q[1024];
    id_query(q, sizeof(q), u->parts + 1, u->id);
    request r = {.method = "PUT", .query = q, .body = data, .body_len = len, .want_etag = true};
    int rc = perform_read(u->o, &r, err);
    if (rc == 0 && !r.etag)
        rc = tp__error_set(err, -EIO, "%s: no ETag for part %u", u->o->name, u->parts + 1);
    if (rc < 0) {
        free(r.etag);
        return rc;
    }
    u->etags[u->parts++] = r.etag;
    return 0;
}

static void upload_free(tp_s3_upload *u)
{
    for (unsigned i = 0; i < u->parts; i++)
        free(u->etags[i]);
    free(u->etags);
    free(u->id);
    free(u);
}

void tp_s3_upload_abort(tp_s3_upload *u)
{
    if (!u)
        return;
    char q[1024];
    id_query(q, sizeof(q), 0, u->id);
    request r = {.method = "DELETE", .query = q};
    perform_read(u->o, &r, NULL);
    upload_free(u);
}

int tp_s3_upload_finish(tp_s3_upload *u, tp_error *err)
{
    size_t cap = 64 + (size_t)u->parts * 96, n = 0;
    for (unsigned i = 0; i < u->parts; i++)
        cap += strlen(u->etags[i]);
    char *xml = malloc(cap);
    if (!xml) {
        tp_s3_upload_abort(u);
        return tp__error_set(err, -ENOMEM, "out of memory");
    }
    n += (size_t)snprintf(xml + n, cap - n, "<CompleteMultipartUpload>");
    for (unsigned i = 0; i < u->parts; i++)
        n += (size_t)snprintf(xml + n, cap - n,
                              "<Part><PartNumber>%u</PartNumber><ETag>%s</ETag></Part>", i + 1,
                              u->etags[i]);
    n += (size_t)snprintf(xml + n, cap - n, "</CompleteMultipartUpload>");
    char q[1024];
    id_query(q, sizeof(q), 0, u->id);
    request r = {.method = "POST", .query = q, .body = xml, .body_len = n, .max = 1 << 16};
    int rc = perform(u->o, &r, err);
    /* S3 may answer 200 with an error in the body */
    xml_pick x;
    if (rc == 0 && r.buf && xml_find(r.buf, r.buf_len, "Code", &x) &&
        !strstr(r.buf, "CompleteMultipartUploadResult"))
        rc = tp__error_set(err, -EIO, "%s: completing the upload: %s", u->o->name, x.text);
    free(r.buf);
    free(xml);
    if (rc < 0) {
        tp_s3_upload_abort(u);
        return rc;
    }
    upload_free(u);
    return 0;
}

/* ---- ranged GETs for the IO engine */

static size_t on_range(char *p, size_t size, size_t n, void *u)
{
    tp_s3_range *r = u;
    size_t len = size * n;
    if (!answer_ok(r->h)) /* an error's body: dropped, the status says it */
        return len;
    if (r->got + len > r->want || !iov_put(r->iov, r->iovcnt, r->got, p, len))
        return 0;
    r->got += len;
    return len;
}

int tp_s3_range_setup(const tp_s3_object *o, tp_s3_handle *handle, uint64_t off,
                      tp_s3_range *r)
{
    CURL *h = handle;
    curl_easy_reset(h);
    r->h = h;
    struct curl_slist *hd = common_setup(h, o, "", r->errbuf);
    if (!hd)
        return -ENOMEM;
    char range[64];
    snprintf(range, sizeof(range), "%llu-%llu", (unsigned long long)(off + r->got),
             (unsigned long long)(off + r->want - 1));
    curl_easy_setopt(h, CURLOPT_RANGE, range);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_range);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_PRIVATE, hd); /* freed by tp_s3_range_result */
    return 0;
}

int tp_s3_range_result(const tp_s3_object *o, tp_s3_handle *handle, int curl_code,
                       tp_s3_range *r, tp_error *err)
{
    CURL *h = handle;
    struct curl_slist *hd = NULL;
    curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&hd);
    curl_slist_free_all(hd);
    curl_easy_setopt(h, CURLOPT_PRIVATE, NULL);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    CURLcode c = (CURLcode)curl_code;
    if (c == CURLE_OK && status >= 200 && status < 300)
        return r->got == r->want ? 0 : 1; /* cut short: the rest again */
    if (c == CURLE_WRITE_ERROR && status >= 200 && status < 300)
        return tp__error_set(err, -EIO, "%s: GET: more bytes than the range asked for",
                             o->name);
    if (c != CURLE_OK && !(c == CURLE_WRITE_ERROR && status >= 300))
        return transient_curl(c) ? 1
                                 : tp__error_set(err, -EIO, "%s: GET: %s (%s)", o->name,
                                                 curl_easy_strerror(c),
                                                 r->errbuf[0] ? r->errbuf : "no detail");
    if (status >= 500 || status == 429)
        return 1;
    return http_error(o, status, NULL, 0, "GET", err);
}
