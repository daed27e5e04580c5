/* manifest.json of a token dataset ("format": "turbopump-tokens"): dtype, block size,
 * totals and the shard list, with the same self-checksum as a sample dataset's manifest.
 * Every value is bounded and cross-checked before the reader trusts it. */
#include "tokens_internal.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

char *tp__tokens_manifest_dump(const tp__tokens_manifest *m)
{
    char id[2 * TP_DATASET_ID_BYTES + 1];
    for (int i = 0; i < TP_DATASET_ID_BYTES; i++)
        sprintf(id + 2 * i, "%02x", m->id[i]);
    json_t *shards = json_array();
    for (size_t i = 0; shards && i < m->nshards; i++) {
        const tp__tokens_manifest_shard *s = &m->shards[i];
        json_array_append_new(shards, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "file",
                                                s->file, "first_token",
                                                (json_int_t)s->first_token, "tokens",
                                                (json_int_t)s->tokens, "first_document",
                                                (json_int_t)s->first_document, "documents",
                                                (json_int_t)s->documents, "bytes",
                                                (json_int_t)s->bytes));
    }
    json_t *root = json_pack("{s:s, s:i, s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:s, s:o}", "format",
                             TP_TOKENS_FORMAT, "version", TP_TOKENS_VERSION, "id", id, "dtype",
                             tp_dtype_name(m->dtype), "block_tokens", (int)m->block_tokens,
                             "tokens", (json_int_t)m->tokens, "documents",
                             (json_int_t)m->documents, "max_id", (json_int_t)m->max_id,
                             "bytes", (json_int_t)m->bytes, "source", m->source, "shards",
                             shards);
    if (root) { /* the checksum must stay the last member */
        json_object_set_new(root, "created_by", json_string("turbopump " TP_VERSION_STRING));
        json_object_set_new(root, "checksum", json_string("xxh3:0000000000000000"));
    }
    char *text = tp__manifest_seal(root);
    json_decref(root);
    return text;
}

static int bad(tp_error *err, const char *what)
{
    return tp__error_set(err, TP_ECORRUPT, "manifest.json: %s", what);
}

static bool get_u64(json_t *o, const char *key, uint64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static int parse_shards(json_t *root, tp__tokens_manifest *m, tp_error *err)
{
    json_t *arr = json_object_get(root, "shards");
    if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > 1000000)
        return bad(err, "\"shards\" must be a non-empty array");
    m->nshards = json_array_size(arr);
    if (!(m->shards = calloc(m->nshards, sizeof(*m->shards))))
        return tp__error_set(err, -ENOMEM, "out of memory");
    uint64_t tokens = 0, documents = 0, bytes = 0;
    for (size_t i = 0; i < m->nshards; i++) {
        json_t *o = json_array_get(arr, i);
        tp__tokens_manifest_shard *s = &m->shards[i];
        const char *file = json_string_value(json_object_get(o, "file"));
        if (!tp__shard_file_ok(file) || !get_u64(o, "first_token", &s->first_token) ||
            !get_u64(o, "tokens", &s->tokens) || !get_u64(o, "first_document",
                                                            &s->first_document) ||
            !get_u64(o, "documents", &s->documents) || !get_u64(o, "bytes", &s->bytes))
            return tp__error_set(err, TP_ECORRUPT, "manifest.json: shard %zu is malformed", i);
        if (!(s->file = strdup(file)))
            return tp__error_set(err, -ENOMEM, "out of memory");
        /* Every shard holds at least one document of at least one id, and no more
         * documents than ids; totals add up without wrapping. */
        if (s->first_token != tokens || s->first_document != documents || s->tokens == 0 ||
            s->documents == 0 || s->documents > s->tokens || s->tokens > (UINT64_C(1) << 48) ||
            s->bytes > (UINT64_C(1) << 52))
            return tp__error_set(err, TP_ECORRUPT, "manifest.json: shard %zu (%s) does not "
                                 "follow the one before it", i, s->file);
        tokens += s->tokens;
        documents += s->documents;
        bytes += s->bytes;
    }
    if (tokens != m->tokens || documents != m->documents || bytes != m->bytes)
        return bad(err, "shard totals differ from \"tokens\", \"documents\" or \"bytes\"");
    return 0;
}

int tp__tokens_manifest_parse(const char *text, size_t len, tp__tokens_manifest *m,
                              tp_error *err)
{
    memset(m, 0, sizeof(*m));
    TP_TRY(tp__manifest_verify(text, len, err));
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(root)) {
        json_decref(root);
        return tp__error_set(err, TP_ECORRUPT, "manifest.json: line %d: %s", je.line, je.text);
    }
    int rc = 0;
    const char *fmt = json_string_value(json_object_get(root, "format"));
    const char *dtype = json_string_value(json_object_get(root, "dtype"));
    const char *source = json_string_value(json_object_get(root, "source"));
    uint64_t version = 0, block = 0;
    if (fmt && !strcmp(fmt, "turbopump-dataset"))
        rc = tp__error_set(err, TP_EUSAGE, "manifest.json: a sample dataset, not a token one");
    else if (!fmt || strcmp(fmt, TP_TOKENS_FORMAT))
        rc = bad(err, "not a turbopump token dataset manifest");
    else if (!get_u64(root, "version", &version))
        rc = bad(err, "no \"version\"");
    else if (version != TP_TOKENS_VERSION)
        rc = tp__error_set(err, TP_EVERSION, "manifest.json: token format version %" PRIu64
                           " (this build reads %d)", version, TP_TOKENS_VERSION);
    else if (tp__manifest_id(json_object_get(root, "id"), m->id) < 0)
        rc = bad(err, "bad \"id\"");
    else if (!dtype || (strcmp(dtype, "uint16") && strcmp(dtype, "uint32")))
        rc = bad(err, "\"dtype\" must be \"uint16\" or \"uint32\"");
    else if (!get_u64(root, "block_tokens", &block) || block < TP_TOKENS_BLOCK_MIN ||
             block > TP_TOKENS_BLOCK_MAX)
        rc = bad(err, "bad \"block_tokens\"");
    else if (!get_u64(root, "tokens", &m->tokens) || !get_u64(root, "documents", &m->documents)
             || !get_u64(root, "bytes", &m->bytes) || !get_u64(root, "max_id", &m->max_id))
        rc = bad(err, "no \"tokens\", \"documents\", \"bytes\" or \"max_id\"");
    else if (!source)
        rc = bad(err, "no \"source\"");
    if (rc == 0) {
        m->dtype = !strcmp(dtype, "uint16") ? TP_DTYPE_UINT16 : TP_DTYPE_UINT32;
        m->block_tokens = (uint32_t)block;
        if (m->max_id > (m->dtype == TP_DTYPE_UINT16 ? UINT16_MAX : UINT32_MAX))
            rc = bad(err, "\"max_id\" does not fit the dtype");
        else if (!(m->source = strdup(source)))
            rc = tp__error_set(err, -ENOMEM, "out of memory");
    }
    if (rc == 0)
        rc = parse_shards(root, m, err);
    json_decref(root);
    if (rc < 0)
        tp__tokens_manifest_free(m);
    return rc;
}

void tp__tokens_manifest_free(tp__tokens_manifest *m)
{
    for (size_t i = 0; m->shards && i < m->nshards; i++)
        free(m->shards[i].file);
    free(m->shards);
    free(m->source);
    memset(m, 0, sizeof(*m));
}
