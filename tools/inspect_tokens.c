/* `turbopump inspect` and `turbopump verify` for token datasets (include/turbopump/
 * tokens.h): what one holds (dtype, tokens, documents, largest id, shards, block size)
 * as text or JSON, a run of its ids with the documents they belong to, and a check of
 * every block's checksum. cmd_inspect.c and cmd_verify.c hand token datasets here. */
#include "cli.h"

#include <turbopump/tokens.h>

#include <jansson.h>
#include <stdlib.h>

#define MAX_PRINTED (16u << 20) /* ids one --tokens may print */

static uint64_t total_bytes(const tp_tokens *t)
{
    uint64_t sum = 0;
    tp_tokens_shard si;
    for (size_t i = 0; tp_tokens_shard_info(t, i, &si) == 0; i++)
        sum += si.bytes;
    return sum;
}

static void print_text(const char *path, const tp_tokens *t)
{
    uint64_t n = tp_tokens_count(t), docs = tp_tokens_document_count(t), bytes = total_bytes(t);
    printf("dataset:   %s\nformat:    tokens, %s, blocks of %u ids\n", path,
           tp_dtype_name(tp_tokens_dtype(t)), tp_tokens_block(t));
    printf("tokens:    %llu\ndocuments: %llu (%.1f tokens each)\nmax id:    %llu\n",
           (unsigned long long)n, (unsigned long long)docs, docs ? (double)n / (double)docs : 0,
           (unsigned long long)tp_tokens_max_id(t));
    printf("shards:    %zu\nbytes:     %llu (%.1f MB)\nsource:    %s\n",
           tp_tokens_shard_count(t), (unsigned long long)bytes, (double)bytes / 1e6,
           tp_tokens_source(t));
}

static void print_json(const char *path, const tp_tokens *t)
{
    json_t *shards = json_array();
    tp_tokens_shard si;
    for (size_t i = 0; tp_tokens_shard_info(t, i, &si) == 0; i++)
        json_array_append_new(shards, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "path",
                                                si.path, "first_token",
                                                (json_int_t)si.first_token, "tokens",
                                                (json_int_t)si.tokens, "first_document",
                                                (json_int_t)si.first_document, "documents",
                                                (json_int_t)si.documents, "bytes",
                                                (json_int_t)si.bytes));
    char id[2 * TP_DATASET_ID_BYTES + 1];
    for (int i = 0; i < TP_DATASET_ID_BYTES; i++)
        snprintf(id + 2 * i, 3, "%02x", tp_tokens_id(t)[i]);
    json_t *root = json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:o, s:s}",
                             "path", path, "id", id, "format", "tokens", "dtype",
                             tp_dtype_name(tp_tokens_dtype(t)), "block_tokens",
                             (int)tp_tokens_block(t), "tokens", (json_int_t)tp_tokens_count(t),
                             "documents", (json_int_t)tp_tokens_document_count(t), "max_id",
                             (json_int_t)tp_tokens_max_id(t), "shard_count",
                             (json_int_t)tp_tokens_shard_count(t), "bytes",
                             (json_int_t)total_bytes(t), "shards", shards, "source",
                             tp_tokens_source(t));
    char *text = json_dumps(root, JSON_INDENT(2));
    puts(text ? text : "{}");
    free(text);
    json_decref(root);
}

/* Parses FIRST:COUNT. @return : 0 or -1 after a usage error. */
static int parse_range(const char *s, uint64_t *first, uint64_t *count)
{
    const char *colon = strchr(s, ':');
    char head[32];
    size_t n = colon ? (size_t)(colon - s) : 0;
    if (colon && n < sizeof(head)) {
        memcpy(head, s, n);
        head[n] = '\0';
        if (tp__parse_u64(head, 0, UINT64_MAX, first) == 0 &&
            tp__parse_u64(colon + 1, 1, MAX_PRINTED, count) == 0)
            return 0;
    }
    tp_cli_usage_error("inspect", "--tokens needs FIRST:COUNT (COUNT from 1 to %u), not "
                       "'%s'", MAX_PRINTED, s);
    return -1;
}

/* Ids [first, first + n), one line per document they touch ("DOC START: ids"), or as
 * JSON: the ids and the extent of each of those documents. */
static void print_ids(const tp_tokens *t, uint64_t first, uint64_t n, const uint32_t *ids,
                      bool json)
{
    uint64_t d = tp_tokens_document_of(t, first), end = first + n;
    json_t *docs = json ? json_array() : NULL, *list = json ? json_array() : NULL;
    for (uint64_t at = first; at < end; d++) {
        uint64_t stop = TP_MIN(tp_tokens_document_start(t, d + 1), end);
        if (json) {
            json_int_t start = (json_int_t)tp_tokens_document_start(t, d);
            json_int_t finish = (json_int_t)tp_tokens_document_start(t, d + 1);
            json_array_append_new(docs, json_pack("{s:I, s:I, s:I}", "document",
                                                  (json_int_t)d, "start", start, "end", finish));
            for (uint64_t i = at; i < stop; i++)
                json_array_append_new(list, json_integer(ids[i - first]));
        } else {
            printf("%llu %llu:", (unsigned long long)d, (unsigned long long)at);
            for (uint64_t i = at; i < stop; i++)
                printf(" %u", ids[i - first]);
            putchar('\n');
        }
        at = stop;
    }
    if (json) {
        json_t *root = json_pack("{s:I, s:I, s:o, s:o}", "first", (json_int_t)first, "count",
                                 (json_int_t)n, "ids", list, "documents", docs);
        char *text = json_dumps(root, JSON_COMPACT);
        puts(text ? text : "{}");
        free(text);
        json_decref(root);
    }
}

static int show_ids(const tp_tokens *t, const char *range, bool json)
{
    uint64_t first, n;
    if (parse_range(range, &first, &n) < 0)
        return TP_EXIT_USAGE;
    uint32_t *ids = malloc(n * sizeof(uint32_t));
    tp_error err = {0};
    int rc = ids ? tp_tokens_read(t, first, n, ids, TP_DTYPE_UINT32, &err)
                 : tp__error_set(&err, -ENOMEM, "out of memory");
    if (rc == 0)
        print_ids(t, first, n, ids, json);
    else
        tp_cli_error("inspect", "%s", err.msg);
    free(ids);
    return rc == 0 ? TP_EXIT_OK : TP_EXIT_FAIL;
}

int tp_inspect_tokens(const char *path, bool json, const char *range)
{
    tp_tokens *t;
    tp_error err = {0};
    if (tp_tokens_open(&t, path, &err) < 0) {
        tp_cli_error("inspect", "%s", err.msg);
        return TP_EXIT_FAIL;
    }
    int rc = TP_EXIT_OK;
    if (range)
        rc = show_ids(t, range, json);
    else if (json)
        print_json(path, t);
    else
        print_text(path, t);
    tp_tokens_close(t);
    return rc;
}

int tp_verify_tokens(const char *path)
{
    double start = tp_cli_now();
    tp_tokens *t;
    tp_error err = {0};
    if (tp_tokens_open(&t, path, &err) < 0) {
        tp_cli_error("verify", "%s", err.msg);
        return TP_EXIT_FAIL;
    }
    uint64_t bad = 0;
    int rc = tp_tokens_verify(t, &bad, &err);
    if (rc < 0 && rc != TP_ECORRUPT)
        tp_cli_error("verify", "%s", err.msg);
    else if (rc < 0)
        tp_cli_error("verify", "%s%s", err.msg, bad > 1 ? " (the first bad block)" : "");
    double secs = TP_MAX(tp_cli_now() - start, 1e-9);
    uint64_t bytes = total_bytes(t);
    uint64_t blocks = 0, bt = tp_tokens_block(t);
    tp_tokens_shard si;
    for (size_t i = 0; tp_tokens_shard_info(t, i, &si) == 0; i++)
        blocks += (si.tokens + bt - 1) / bt;
    size_t shards = tp_tokens_shard_count(t);
    printf("%s: %llu tokens, %llu documents in %zu shard%s, %llu blocks (%.1f MB) verified "
           "in %.3f s (%.1f MB/s): %llu bad block%s\n", path,
           (unsigned long long)tp_tokens_count(t),
           (unsigned long long)tp_tokens_document_count(t), shards, shards == 1 ? "" : "s",
           (unsigned long long)blocks, (double)bytes / 1e6, secs, (double)bytes / secs / 1e6,
           (unsigned long long)bad, bad == 1 ? "" : "s");
    tp_tokens_close(t);
    return rc < 0 ? TP_EXIT_FAIL : TP_EXIT_OK;
}
