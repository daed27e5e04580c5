/* `turbopump pack --tokens INPUT... OUTPUT`: pre-tokenized documents (ingest/
 * tokens_source.h: JSON Lines, .npy, raw .bin streams, Megatron indexed datasets) -> a
 * token dataset (include/turbopump/tokens.h). Documents are written in input order by
 * one thread (JSON Lines are parsed on --jobs threads by their reader), so the output is
 * byte-identical for equal inputs and options, whatever --jobs says. The stored dtype
 * comes from --vocab-size, else from the inputs (their dtypes, or for JSON Lines a first
 * pass for the largest id). Bad JSON lines are skipped with a warning each (or fail the
 * run with --strict); an error or an interrupt leaves nothing at OUTPUT. */
#include "cli.h"
#include "tokens_source.h"

#include <turbopump/tokens.h>

#include <getopt.h>
#include <signal.h>
#include <stdlib.h>

#define CMD "pack"

typedef struct tokens_options {
    char **inputs;
    size_t ninputs;
    const char *dst, *field;
    bool has_sep, has_eos;
    uint64_t sep, eos, vocab;     /* vocab 0: not given */
    tp_dtype bin_dtype;
    uint64_t shard_bytes, block_tokens, jobs;
    bool force, strict, quiet;
} tokens_options;

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) { interrupted = sig; }

void tp_usage_pack_tokens(FILE *out)
{
    fprintf(out,
            "Token datasets: turbopump pack --tokens INPUT... DST [OPTIONS]\n\n"
            "Pack pre-tokenized documents into a token dataset for language-model\n"
            "training (documents concatenated into one stream of uint16 or uint32 ids).\n"
            "Each INPUT is a file, a directory, a glob or a brace list; documents come in\n"
            "sorted path order. Inputs, by name:\n"
            "  .jsonl, .ndjson      one document per line: a list of integer ids in the\n"
            "                       member --field; a bad line (malformed JSON, no such\n"
            "                       member, an id that is not an integer in range) is\n"
            "                       skipped with a warning naming file and line\n"
            "  .npy                 a 1-D array of uint16, uint32, int32 or int64 ids\n"
            "  .bin                 a raw little-endian stream of --dtype ids\n"
            "  PREFIX (.bin + .idx) a Megatron-LM indexed dataset (MMIDIDX), given as\n"
            "                       PREFIX, PREFIX.idx or PREFIX.bin; documents as its\n"
            "                       index groups them\n"
            ".npy and .bin streams are cut into documents after each --separator id (kept\n"
            "in its document, as GPT-2's <|endoftext|> is); without one, each file is one\n"
            "document. In those binary inputs an id that does not fit fails the run.\n\n"
            "Token options:\n"
            "  --tokens              pack a token dataset (these options apply)\n"
            "  --field NAME          the JSON Lines member holding the ids (default\n"
            "                        input_ids)\n"
            "  --separator ID        the id that ends a document in .npy/.bin streams\n"
            "  --append-eos ID       end every document that does not end with ID with ID\n"
            "  --dtype uint16|uint32 the dtype of raw .bin streams (required for them)\n"
            "  --vocab-size N        ids run from 0 to N-1 (larger ones are errors); the\n"
            "                        dataset stores uint16 when N <= 65536, else uint32.\n"
            "                        Without it: uint16 when every input is 16-bit, or for\n"
            "                        JSON Lines when a first pass finds every id < 65536\n"
            "  --shard-size SIZE     start a new shard at the first document past SIZE\n"
            "                        bytes of ids (default 256M)\n"
            "  --block-tokens N      ids per checksummed block, %u to %u (default %u)\n"
            "  --jobs N              threads parsing JSON Lines (default: number of CPUs);\n"
            "                        the output is the same for any N\n"
            "  --strict              fail on the first bad line instead of skipping it\n"
            "  --force               replace an existing dataset at DST\n"
            "  --quiet               no progress display, notes or summary\n\n"
            "Empty documents are left out and counted. The dataset appears at DST only when\n"
            "complete, with the same bytes for the same inputs and options.\n",
            TP_TOKENS_BLOCK_MIN, TP_TOKENS_BLOCK_MAX, TP_TOKENS_BLOCK_DEFAULT);
}

bool tp_pack_wants_tokens(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "--tokens"))
            return true;
    return false;
}

static int parse_dtype(tokens_options *o, const char *arg)
{
    if (!strcmp(arg, "uint16") || !strcmp(arg, "uint32")) {
        o->bin_dtype = arg[4] == '1' ? TP_DTYPE_UINT16 : TP_DTYPE_UINT32;
        return 0;
    }
    tp_cli_usage_error(CMD, "--dtype must be uint16 or uint32, not '%s'", arg);
    return -1;
}

/* Checks what the options say together. @return : 0 or TP_EXIT_USAGE. */
static int check_options(const tokens_options *o)
{
    uint64_t top = o->vocab ? o->vocab - 1 : UINT32_MAX;
    if (o->has_sep && o->sep > top)
        return tp_cli_usage_error(CMD, "--separator %llu is not below --vocab-size %llu",
                                  (unsigned long long)o->sep, (unsigned long long)o->vocab);
    if (o->has_eos && o->eos > top)
        return tp_cli_usage_error(CMD, "--append-eos %llu is not below --vocab-size %llu",
                                  (unsigned long long)o->eos, (unsigned long long)o->vocab);
    return 0;
}

static int parse_options(int argc, char **argv, tokens_options *o)
{
    static const struct option longopts[] = {
        {"tokens", no_argument, 0, 't'}, {"field", required_argument, 0, 'e'},
        {"separator", required_argument, 0, 'p'}, {"append-eos", required_argument, 0, 'E'},
        {"dtype", required_argument, 0, 'd'}, {"vocab-size", required_argument, 0, 'v'},
        {"shard-size", required_argument, 0, 's'}, {"block-tokens", required_argument, 0, 'b'},
        {"force", no_argument, 0, 'F'}, {"strict", no_argument, 0, 'S'},
        {"quiet", no_argument, 0, 'q'}, {"jobs", required_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    *o = (tokens_options){.field = "input_ids", .shard_bytes = 256ull << 20,
                          .block_tokens = TP_TOKENS_BLOCK_DEFAULT, .jobs = tp_cli_cpus()};
    int c;
    while ((c = getopt_long(argc, argv, "hj:", longopts, NULL)) != -1) {
        int rc = 0;
        if (c == 't')
            continue;
        else if (c == 'e' && !*optarg)
            return tp_cli_usage_error(CMD, "--field needs a member name");
        else if (c == 'e')
            o->field = optarg;
        else if (c == 'p' || c == 'E') {
            rc = tp_cli_u64(CMD, c == 'p' ? "--separator" : "--append-eos", optarg, 0,
                            UINT32_MAX, c == 'p' ? &o->sep : &o->eos);
            *(c == 'p' ? &o->has_sep : &o->has_eos) = true;
        } else if (c == 'd')
            rc = parse_dtype(o, optarg);
        else if (c == 'v')
            rc = tp_cli_u64(CMD, "--vocab-size", optarg, 1, (uint64_t)UINT32_MAX + 1, &o->vocab);
        else if (c == 's')
            rc = tp_cli_size(CMD, "--shard-size", optarg, 1, &o->shard_bytes);
        else if (c == 'b')
            rc = tp_cli_u64(CMD, "--block-tokens", optarg, TP_TOKENS_BLOCK_MIN,
                            TP_TOKENS_BLOCK_MAX, &o->block_tokens);
        else if (c == 'j')
            rc = tp_cli_u64(CMD, "--jobs", optarg, 1, 64, &o->jobs);
        else if (c == 'F' || c == 'S' || c == 'q')
            *(c == 'F' ? &o->force : c == 'S' ? &o->strict : &o->quiet) = true;
        else if (c == 'h') {
            tp_usage_pack(stdout);
            exit(TP_EXIT_OK);
        } else
            return tp_cli_usage_error(CMD, "unknown option for --tokens");
        if (rc < 0)
            return TP_EXIT_USAGE;
    }
    if (argc - optind < 2)
        return tp_cli_usage_error(CMD, "--tokens needs at least one INPUT and DST");
    o->inputs = argv + optind;
    o->ninputs = (size_t)(argc - optind - 1);
    o->dst = argv[argc - 1];
    return check_options(o);
}

static int warn_line(void *ctx, const char *where, const char *why)
{
    const tokens_options *o = ctx;
    if (o->strict) {
        tp_cli_error(CMD, "%s: %s (--strict)", where, why);
        return 1;
    }
    tp_cli_warn(CMD, "skipping %s: %s", where, why);
    return 0;
}

static int open_source(const tokens_options *o, uint64_t max_id, bool first_pass,
                       tp_token_source **src)
{
    tp_token_source_options so = {.field = o->field, .has_separator = o->has_sep,
                                  .separator = (uint32_t)o->sep, .bin_dtype = o->bin_dtype,
                                  .max_id = max_id, .jsonl_only = first_pass,
                                  .jobs = (unsigned)o->jobs,
                                  .warn = first_pass ? NULL : warn_line,
                                  .warn_ctx = (void *)o};
    tp_error err = {0};
    int rc = tp_token_source_open((const char *const *)o->inputs, o->ninputs, &so, src, &err);
    if (rc < 0)
        tp_cli_error(CMD, "%s", err.msg);
    return rc;
}

/* The largest id of the JSON Lines inputs (bad lines are left out here silently: the
 * packing pass reports them). */
static int largest_jsonl_id(const tokens_options *o, uint64_t *max)
{
    tp_token_source *src;
    TP_TRY(open_source(o, UINT32_MAX, true, &src));
    const tp_token_source_info *in = tp_token_source_info_of(src);
    tp_progress prog;
    if (!o->quiet)
        tp_progress_start(&prog, in->bytes_total, "bytes");
    tp_token_piece p;
    tp_error err = {0};
    int rc = 0;
    while (!interrupted && (rc = tp_token_source_next(src, &p, &err)) == 1) {
        for (uint64_t i = 0; i < p.n; i++)
            *max = TP_MAX(*max, p.ids[i]);
        if (!o->quiet)
            tp_progress_update(&prog, in->bytes_done, in->bytes_done);
    }
    if (!o->quiet)
        tp_progress_end(&prog);
    if (interrupted)
        tp_cli_error(CMD, "interrupted; nothing was written to %s", o->dst);
    else if (rc < 0)
        tp_cli_error(CMD, "%s", err.msg);
    tp_token_source_close(src);
    if (interrupted)
        return -EINTR;
    return rc;
}

/* The dtype the dataset stores (see tp_usage_pack_tokens). */
static int choose_dtype(const tokens_options *o, const tp_token_source_info *in,
                        tp_dtype *out)
{
    if (o->vocab) {
        *out = o->vocab <= 65536 ? TP_DTYPE_UINT16 : TP_DTYPE_UINT32;
        return 0;
    }
    uint64_t max = TP_MAX(o->has_eos ? o->eos : 0, o->has_sep ? o->sep : 0);
    bool scan = in->binary_dtype != TP_DTYPE_UINT32 && in->has_jsonl && max <= UINT16_MAX;
    if (scan && !o->quiet)
        tp_cli_warn(CMD, "no --vocab-size: a first pass over the JSON Lines input finds "
                    "the largest id (uint16 if below 65536)");
    if (scan)
        TP_TRY(largest_jsonl_id(o, &max));
    *out = in->binary_dtype != TP_DTYPE_UINT32 && max <= UINT16_MAX ? TP_DTYPE_UINT16
                                                                     : TP_DTYPE_UINT32;
    if (scan && !o->quiet)
        tp_cli_warn(CMD, "largest id %llu: storing %s", (unsigned long long)max,
                    tp_dtype_name(*out));
    return 0;
}

static int open_writer(const tokens_options *o, const tp_token_source_info *in,
                       tp_dtype dtype, tp_tokens_writer **w)
{
    /* The id derives from the inputs and the options, so equal inputs give equal bytes. */
    char opts[512];
    int k = snprintf(opts, sizeof(opts), "%s %d %llu %llu %d %llu %d %llu %llu %.256s",
                     tp_dtype_name(dtype), (int)o->has_sep, (unsigned long long)o->sep,
                     (unsigned long long)o->vocab, (int)o->has_eos,
                     (unsigned long long)o->eos, (int)o->bin_dtype,
                     (unsigned long long)o->shard_bytes, (unsigned long long)o->block_tokens,
                     o->field);
    unsigned char id[TP_DATASET_ID_BYTES];
    tp__put64(id, in->listing_hash);
    tp__put64(id + 8, tp__hash64(opts, (size_t)TP_MIN(k, (int)sizeof(opts) - 1)) ^
                          in->listing_hash);
    tp_tokens_writer_options wo = {.dtype = dtype, .shard_bytes = o->shard_bytes,
                                   .block_tokens = (uint32_t)o->block_tokens,
                                   .source = in->location, .id = id, .replace = o->force};
    tp_error err = {0};
    int rc = tp_tokens_writer_create(w, o->dst, &wo, &err);
    if (rc < 0)
        tp_cli_error(CMD, "%s", err.msg);
    return rc;
}

typedef struct pack_state {
    const tokens_options *o;
    tp_tokens_writer *w;
    bool in_doc;
    uint32_t last;
} pack_state;

/* Ends the open document, with --append-eos's id unless it ends with it already. */
static int end_document(pack_state *ps, tp_error *err)
{
    bool add = ps->in_doc && ps->o->has_eos && ps->last != ps->o->eos;
    ps->in_doc = false;
    uint32_t eos = (uint32_t)ps->o->eos;
    return add ? tp_tokens_writer_extend(ps->w, &eos, TP_DTYPE_UINT32, 1, err) : 0;
}

static int add_piece(pack_state *ps, const tp_token_piece *p, tp_error *err)
{
    if (p->first)
        TP_TRY(end_document(ps, err));
    int rc = p->first ? tp_tokens_writer_append(ps->w, p->ids, TP_DTYPE_UINT32, p->n, err)
                      : tp_tokens_writer_extend(ps->w, p->ids, TP_DTYPE_UINT32, p->n, err);
    if (rc < 0) {
        /* The message names the position in the piece; say where the piece came from. */
        char msg[sizeof(err->msg)];
        memcpy(msg, err->msg, sizeof(msg));
        snprintf(err->msg, sizeof(err->msg), "%.200s: %.300s", p->where, msg);
        return rc;
    }
    ps->in_doc = true;
    ps->last = p->ids[p->n - 1];
    return 0;
}

/* Appends every document in order. @return : 0, or -1 after printing why it stopped. */
static int write_all(const tokens_options *o, tp_token_source *src, tp_tokens_writer *w)
{
    const tp_token_source_info *in = tp_token_source_info_of(src);
    pack_state ps = {.o = o, .w = w};
    tp_progress prog;
    if (!o->quiet)
        tp_progress_start(&prog, in->bytes_total, "bytes");
    tp_token_piece p;
    tp_error err = {0};
    int rc = 0;
    while (!interrupted && (rc = tp_token_source_next(src, &p, &err)) == 1) {
        if ((rc = add_piece(&ps, &p, &err)) < 0)
            break;
        if (!o->quiet)
            tp_progress_update(&prog, in->bytes_done, in->bytes_done);
    }
    if (!interrupted && rc == 0)
        rc = end_document(&ps, &err);
    if (!o->quiet)
        tp_progress_end(&prog);
    if (interrupted)
        tp_cli_error(CMD, "interrupted; nothing was written to %s", o->dst);
    else if (rc < 0 && rc != TP_SOURCE_STOPPED) /* --strict: the warning said why */
        tp_cli_error(CMD, "%s", err.msg);
    return interrupted || rc < 0 ? -1 : 0;
}

static void summary(const tokens_options *o, const tp_token_source_info *in, double secs)
{
    tp_tokens *t;
    tp_error err;
    if (tp_tokens_open(&t, o->dst, &err) < 0) {
        tp_cli_warn(CMD, "reopening %s: %s", o->dst, err.msg);
        return;
    }
    uint64_t bytes = 0, n = tp_tokens_count(t);
    tp_tokens_shard si;
    for (size_t i = 0; tp_tokens_shard_info(t, i, &si) == 0; i++)
        bytes += si.bytes;
    printf("packed %llu documents, %llu tokens (%s, max id %llu) from %zu input%s (%.1f MB) "
           "into %s: %zu shard%s, %.1f MB, in %.2f s: %.0f tokens/s; skipped %llu empty "
           "document%s and %llu bad line%s\n",
           (unsigned long long)tp_tokens_document_count(t), (unsigned long long)n,
           tp_dtype_name(tp_tokens_dtype(t)), (unsigned long long)tp_tokens_max_id(t),
           in->nfiles, in->nfiles == 1 ? "" : "s", (double)in->bytes_total / 1e6, o->dst,
           tp_tokens_shard_count(t), tp_tokens_shard_count(t) == 1 ? "" : "s",
           (double)bytes / 1e6, secs, (double)n / secs, (unsigned long long)in->empty,
           in->empty == 1 ? "" : "s", (unsigned long long)in->skipped,
           in->skipped == 1 ? "" : "s");
    tp_tokens_close(t);
}

static int pack(const tokens_options *o, tp_token_source *src)
{
    const tp_token_source_info *in = tp_token_source_info_of(src);
    tp_dtype dtype;
    tp_tokens_writer *w = NULL;
    int rc = choose_dtype(o, in, &dtype);
    if (rc == 0)
        rc = open_writer(o, in, dtype, &w);
    if (rc == 0)
        rc = write_all(o, src, w);
    tp_error err = {0};
    if (rc == 0 && tp_tokens_writer_documents(w) == 0) {
        tp_cli_error(CMD, "no documents in the input (%llu empty, %llu bad lines)",
                     (unsigned long long)in->empty, (unsigned long long)in->skipped);
        rc = -1;
    } else if (rc == 0 && tp_tokens_writer_finish(w, &err) < 0) {
        tp_cli_error(CMD, "%s", err.msg);
        rc = -1;
    }
    tp_tokens_writer_destroy(w);
    return rc;
}

int tp_cmd_pack_tokens(int argc, char **argv)
{
    tokens_options o;
    int rc = parse_options(argc, argv, &o);
    if (rc)
        return rc;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    double start = tp_cli_now();
    tp_token_source *src = NULL;
    rc = open_source(&o, o.vocab ? o.vocab - 1 : UINT32_MAX, false, &src);
    if (rc == 0)
        rc = pack(&o, src);
    if (rc == 0 && !o.quiet)
        summary(&o, tp_token_source_info_of(src), TP_MAX(tp_cli_now() - start, 1e-9));
    tp_token_source_close(src);
    return rc == 0 ? TP_EXIT_OK : TP_EXIT_FAIL;
}
