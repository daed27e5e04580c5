/* A session's outputs (outputs.h): which arrays a batch holds and what fills them. The
 * rules, for OPEN's fields and views:
 *
 * - A view named like an image field sets that field's pipeline; any other view is one
 *   more array, made from its field (or the dataset's only image field).
 * - With no fields named, every field that batches is delivered: int64 and tensor
 *   fields, and image fields whose pipeline fixes their size, except those that other
 *   views are made from (they arrive through their views).
 * - The outputs of one image field share one decode; view k of a field (in output order)
 *   draws its randomness from (seed, epoch, id, k), so the field alone is view 0. */
#include "outputs.h"

#include <stdio.h>

/* Image fields the decode pool reads: JPEG and PNG, named as WebDataset names them (jpg,
 * jpeg, png, also with a prefix such as seg.png) or "image" (an ImageFolder of both).
 * Each value is decoded by its content, so a PNG under a .jpg name still decodes. */
static bool is_image(const tp_field_info *fi)
{
    if (fi->kind != TP_FIELD_IMAGE)
        return false;
    const char *dot = strrchr(fi->name, '.'), *ext = dot ? dot + 1 : fi->name;
    return !strcmp(ext, "jpg") || !strcmp(ext, "jpeg") || !strcmp(ext, "png") ||
           !strcmp(ext, "image");
}

/* The pipeline of an image output: compiled, with the legacy output conversion added. */
static int compile(tp_transform *t, const char *text, uint32_t output, const char *what,
                   tp_error *err)
{
    tp_pipeline p;
    if (tp_pipeline_parse(text, &p, err) < 0)
        return tp__error_set(err, TP_EUSAGE, "%s: pipeline '%.200s': %s", what, text,
                             err ? err->msg : "invalid");
    bool has_out = false;
    for (uint32_t i = 0; i < p.nops; i++)
        has_out |= p.ops[i].kind == TP_OP_NORMALIZE || p.ops[i].kind == TP_OP_TO;
    if (output != TP_OUTPUT_UINT8 && p.nops > 0) {
        if (has_out)
            return tp__error_set(err, TP_EUSAGE, "%s: the pipeline sets its own output; "
                                 "leave output at uint8", what);
        if (p.nops + 2 > TP_PIPELINE_MAX_OPS)
            return tp__error_set(err, TP_EUSAGE, "%s: too many ops", what);
        tp_op *n = &p.ops[p.nops++], *to = &p.ops[p.nops++];
        *n = (tp_op){.kind = TP_OP_NORMALIZE};
        memcpy(n->mean, tp_imagenet_mean, sizeof(n->mean));
        memcpy(n->std, tp_imagenet_std, sizeof(n->std));
        *to = (tp_op){.kind = TP_OP_TO, .layout = TP_LAYOUT_CHW,
                      .dtype = output == TP_OUTPUT_FLOAT16 ? TP_DTYPE_FLOAT16 : TP_DTYPE_FLOAT32};
    }
    if (tp_transform_compile(&p, t, err) < 0)
        return tp__error_set(err, TP_EUSAGE, "%s: %s", what, err ? err->msg : "invalid");
    return 0;
}

static int add(tp_outputs *o, const tp_dataset *ds, uint32_t idx, const char *name,
               const char *text, uint32_t output, tp_error *err)
{
    const tp_field_info *fi = tp_dataset_field(ds, idx);
    if (o->nf == TP_RING_MAX_FIELDS)
        return tp__error_set(err, TP_EUSAGE, "more than %u outputs", TP_RING_MAX_FIELDS);
    for (uint32_t i = 0; i < o->nf; i++)
        if (!strcmp(o->f[i].name, name))
            return tp__error_set(err, TP_EUSAGE, "output '%s' asked for twice", name);
    tp_out_field *f = &o->f[o->nf];
    *f = (tp_out_field){.index = idx, .kind = fi->kind, .lead = -1};
    snprintf(f->name, sizeof(f->name), "%s", name);
    if (fi->kind == TP_FIELD_BYTES)
        return tp__error_set(err, TP_EUSAGE, "field '%s' holds bytes of any size, which do "
                             "not batch", fi->name);
    if (fi->kind == TP_FIELD_IMAGE) {
        if (!is_image(fi))
            return tp__error_set(err, TP_EUSAGE, "field '%s': only JPEG and PNG images are "
                                 "decoded in batches", fi->name);
        char what[80];
        snprintf(what, sizeof(what), "output '%s'", name);
        tp_transform *t = &o->tf[o->nf];
        TP_TRY(compile(t, text, output, what, err));
        if (t->kind == TP_TRANSFORM_NONE)
            return tp__error_set(err, TP_EUSAGE, "%s: images need a pipeline that fixes "
                                 "their size (rrc224, center224, ... | center_crop(S))", what);
        f->tf = t;
        f->dtype = t->shape.dtype;
        f->ndim = t->shape.ndim;
        memcpy(f->shape, t->shape.shape, sizeof(t->shape.shape));
        for (uint32_t i = 0; i < o->nf; i++) /* the group of its field */
            if (o->f[i].tf && o->f[i].index == idx) {
                f->lead = o->f[i].lead;
                break;
            }
        if (f->lead < 0)
            f->lead = (int)o->nf;
        tp_out_field *lead = &o->f[f->lead];
        f->view = lead->ngroup;
        lead->group[lead->ngroup++] = o->nf;
    } else if (fi->kind == TP_FIELD_INT64) {
        f->dtype = TP_DTYPE_INT64;
    } else {
        f->dtype = fi->dtype;
        f->ndim = fi->ndim;
        memcpy(f->shape, fi->shape, sizeof(f->shape));
    }
    f->sample_bytes = tp_dtype_size(f->dtype);
    for (uint32_t d = 0; d < f->ndim; d++)
        if (__builtin_mul_overflow(f->sample_bytes, (uint64_t)f->shape[d], &f->sample_bytes))
            return tp__error_set(err, TP_ETOOBIG, "field '%s' is too large", fi->name);
    o->nf++;
    return 0;
}

/* A view's source: its field, or the dataset's only image field. */
static int view_source(const tp_dataset *ds, const char *dataset, const tp_msg_view *v,
                       uint32_t *idx, tp_error *err)
{
    if (v->field[0]) {
        int i = tp_dataset_field_index(ds, v->field);
        if (i < 0)
            return tp__error_set(err, TP_ENOFIELD, "view '%s': dataset %s has no field '%s'",
                                 v->name, dataset, v->field);
        if (!is_image(tp_dataset_field(ds, (uint32_t)i)))
            return tp__error_set(err, TP_EUSAGE, "view '%s': field '%s' is not a JPEG or PNG "
                                 "image field", v->name, v->field);
        *idx = (uint32_t)i;
        return 0;
    }
    int found = -1;
    for (uint32_t i = 0; i < tp_dataset_field_count(ds); i++)
        if (is_image(tp_dataset_field(ds, i))) {
            if (found >= 0)
                return tp__error_set(err, TP_EUSAGE, "view '%s': dataset %s has several image "
                                     "fields; name the view's field", v->name, dataset);
            found = (int)i;
        }
    if (found < 0)
        return tp__error_set(err, TP_EUSAGE, "view '%s': dataset %s has no image field",
                             v->name, dataset);
    *idx = (uint32_t)found;
    return 0;
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > TP_MAX_FIELD_NAME)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '.' || s[i] == '-'))
            return false;
    return true;
}

int tp__outputs_pick(tp_outputs *o, const tp_dataset *ds, const char *dataset,
                     const tp_msg_open *m, tp_error *err)
{
    o->nf = 0;
    tp_pipeline check;
    if (tp_pipeline_parse(m->transform, &check, err) < 0) /* even if no field uses it */
        return tp__error_set(err, TP_EUSAGE, "pipeline '%.200s': %s", m->transform,
                             err ? err->msg : "invalid");
    uint32_t nfields = (uint32_t)tp_dataset_field_count(ds), src[TP_OPEN_MAX_VIEWS];
    const char *own[TP_MAX_FIELDS] = {0}; /* per-field pipelines */
    bool viewed[TP_MAX_FIELDS] = {0};     /* fields other views are made from */
    for (uint32_t i = 0; i < m->nviews; i++) {
        const tp_msg_view *v = &m->views[i];
        if (!name_ok(v->name))
            return tp__error_set(err, TP_EUSAGE, "view %u: name '%.40s' is not 1..%d "
                                 "characters of [A-Za-z0-9_.-]", i, v->name, TP_MAX_FIELD_NAME);
        for (uint32_t j = 0; j < i; j++)
            if (!strcmp(m->views[j].name, v->name))
                return tp__error_set(err, TP_EUSAGE, "view '%s' given twice", v->name);
        int same = tp_dataset_field_index(ds, v->name);
        if (same >= 0) { /* a field's own pipeline */
            if (v->field[0] && strcmp(v->field, v->name))
                return tp__error_set(err, TP_EUSAGE, "view '%s' is named like a field but "
                                     "made from '%s'", v->name, v->field);
            if (!is_image(tp_dataset_field(ds, (uint32_t)same)))
                return tp__error_set(err, TP_EUSAGE, "view '%s': field '%s' is not a JPEG "
                                     "image field", v->name, v->name);
            own[same] = v->transform;
            src[i] = UINT32_MAX;
            continue;
        }
        TP_TRY(view_source(ds, dataset, v, &src[i], err));
        viewed[src[i]] = true;
    }
    if (m->nfields == 0) {
        for (uint32_t i = 0; i < nfields; i++) {
            const tp_field_info *fi = tp_dataset_field(ds, i);
            if (fi->kind == TP_FIELD_BYTES ||
                (fi->kind == TP_FIELD_IMAGE && (!is_image(fi) || (viewed[i] && !own[i]))))
                continue;
            const char *text = own[i] ? own[i] : m->transform;
            if (fi->kind == TP_FIELD_IMAGE) {
                tp_pipeline p;
                if (tp_pipeline_parse(text, &p, NULL) == 0 && p.nops == 0)
                    continue; /* "none": images do not batch */
            }
            TP_TRY(add(o, ds, i, fi->name, text, m->output, err));
        }
    }
    for (uint32_t i = 0; i < m->nfields; i++) {
        if (!tp__msg_str_ok(m->fields[i], sizeof(m->fields[i])))
            return tp__error_set(err, TP_EPROTOCOL, "field name %u is not terminated", i);
        int idx = tp_dataset_field_index(ds, m->fields[i]);
        if (idx < 0)
            return tp__error_set(err, TP_ENOFIELD, "dataset %s has no field '%s'", dataset,
                                 m->fields[i]);
        TP_TRY(add(o, ds, (uint32_t)idx, m->fields[i], own[idx] ? own[idx] : m->transform,
                   m->output, err));
    }
    for (uint32_t i = 0; i < m->nviews; i++)
        if (src[i] != UINT32_MAX)
            TP_TRY(add(o, ds, src[i], m->views[i].name, m->views[i].transform, m->output, err));
    if (o->nf == 0)
        return tp__error_set(err, TP_EUSAGE, "dataset %s has no field that batches with "
                             "pipeline '%.200s'", dataset, m->transform);
    return 0;
}

int tp__outputs_fill_image(const tp_outputs *o, uint32_t lead, tp_worker *w,
                           unsigned char *slot, uint32_t index, const unsigned char *data,
                           uint64_t len, uint64_t seed, uint64_t epoch, uint64_t id,
                           tp_error *err)
{
    const tp_out_field *l = &o->f[lead];
    const tp_transform *ts[TP_RING_MAX_FIELDS];
    uint32_t views[TP_RING_MAX_FIELDS];
    unsigned char *outs[TP_RING_MAX_FIELDS];
    for (uint32_t k = 0; k < l->ngroup; k++) {
        const tp_out_field *f = &o->f[l->group[k]];
        ts[k] = f->tf;
        views[k] = f->view;
        outs[k] = slot + f->offset + (uint64_t)index * f->sample_bytes;
    }
    return tp_transform_image_views(w->tr, data, len, ts, views, l->ngroup, seed, epoch, id,
                                    outs, err);
}
