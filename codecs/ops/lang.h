/* The pipeline description language's shared pieces (include/turbopump/pipeline.h): the
 * op table that check.c keeps and parse.c and format.c read, and the check whose
 * refusals the parser maps back to positions in the text. */
#ifndef TP_OPS_LANG_H
#define TP_OPS_LANG_H

#include "tp_common.h"

#include <turbopump/pipeline.h>

#define TP__OP_ARGS_MAX 4

typedef struct tp__op_def {
    const char *name;  /* canonical, what tp_pipeline_format writes */
    const char *alias; /* torchvision's class name */
    const char *alias2;
    tp_op_kind kind;
    const char *args[TP__OP_ARGS_MAX]; /* torchvision's order; keywords by the same names */
    int npos;                   /* how many may be given by position */
    unsigned required;          /* bit k: args[k] must be given */
} tp__op_def;

typedef struct tp__dtype_name {
    const char *name;
    tp_dtype dtype;
} tp__dtype_name;

extern const tp__dtype_name tp__dtype_names[]; /* the first name of a dtype is canonical */
extern const size_t tp__ndtype_names;

const tp__op_def *tp__op_def_of(tp_op_kind k);
const tp__op_def *tp__op_def_named(const char *name); /* the name or an alias; NULL */
const char *tp__dtype_text(tp_dtype t);               /* the canonical name; NULL */

/* What a check refused: the op (-1: the pipeline), its argument (-1: the op itself) and
 * which number of that argument, so the parser can point at the token. */
typedef struct tp__problem {
    int op, arg, item;
    char why[200];
} tp__problem;

/* Every op's arguments, then the rules between ops; `fill` first fills the defaults of
 * zeroed fields (C-built pipelines). @return : true, or false with `pr` set. */
bool tp__pipeline_ok(tp_pipeline *p, bool fill, tp__problem *pr);

/* Sets argument k of `op` to the value it takes when not given. */
void tp__op_default(tp_op *op, int k);

bool tp__size_ok(int v); /* TP_PIPELINE_MIN_SIZE..TP_PIPELINE_MAX_SIZE */

#endif
