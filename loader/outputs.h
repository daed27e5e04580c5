/* What a session delivers: the arrays of each batch, chosen from the dataset's fields and
 * the client's views, and how an image becomes them. Each image output has its own
 * compiled pipeline; the outputs made from one image field form a group, decoded once
 * per sample (tp_transform_jpeg_views). */
#ifndef TP_OUTPUTS_H
#define TP_OUTPUTS_H

#include "pipeline.h"
#include "protocol.h"
#include "ring.h"
#include "storage.h"

typedef struct tp_out_field {
    uint32_t index;            /* the dataset field it comes from */
    tp_field_kind kind;
    tp_dtype dtype;            /* of the batch array */
    uint32_t ndim;             /* per sample */
    int64_t shape[TP_MAX_DIMS];
    uint64_t sample_bytes;
    uint64_t offset;           /* of the array in the slot */
    char name[TP_MAX_FIELD_NAME + 1];
    /* images */
    const tp_transform *tf;
    uint32_t view;             /* its randomness: (seed, epoch, id, view) */
    int lead;                  /* the group's first output (which decodes for all) */
    uint32_t ngroup;           /* lead only: the outputs of the group, in order */
    uint32_t group[TP_RING_MAX_FIELDS];
} tp_out_field;

typedef struct tp_outputs {
    tp_out_field f[TP_RING_MAX_FIELDS];
    uint32_t nf;
    tp_transform tf[TP_RING_MAX_FIELDS]; /* one per image output */
} tp_outputs;

/* Picks the outputs of an OPEN: its fields (or every one that batches), each image field
 * with its pipeline (its view, else `transform`), then the other views. `output` (enum
 * tp_output) adds ImageNet's normalize and to(float, chw) to pipelines that have neither.
 * Offsets are left to the caller. @return : 0, TP_EUSAGE or TP_ENOFIELD with the cause,
 *           or TP_EPROTOCOL. */
int tp__outputs_pick(tp_outputs *o, const tp_dataset *ds, const char *dataset,
                     const tp_msg_open *m, tp_error *err);

/* Decodes one sample's image once and writes every output of the group led by `lead`
 * into its place for batch position `index` in `slot`. @return : 0 or an error. */
int tp__outputs_fill_image(const tp_outputs *o, uint32_t lead, tp_worker *w,
                           unsigned char *slot, uint32_t index, const unsigned char *data,
                           uint64_t len, uint64_t seed, uint64_t epoch, uint64_t id,
                           tp_error *err);

/* Slot layout: descriptor (desc_bytes), ids, then one array per output, each 4 KiB
 * aligned; sets each output's offset. @return : 0 or TP_ETOOBIG. */
int tp__outputs_layout(tp_outputs *o, uint64_t batch, uint64_t desc_bytes, uint64_t *ids_offset,
                       uint64_t *slot_bytes, tp_error *err);

#define TP_DIRECT_EDGE 512 /* the most record bytes before or after a direct payload */

/* Predicts the record layout when every field of the schema has a fixed size (int64,
 * tensors; stored uncompressed, as pack stores data that does not compress) and picks the
 * largest selected tensor to read straight into the slot: its record offset and the
 * record's length. Records that turn out otherwise are read again whole.
 * @return : the output index, or -1 when none qualifies. */
int tp__outputs_plan_direct(const tp_outputs *o, const tp_dataset *ds, uint64_t *at,
                            uint64_t *total);

#endif
