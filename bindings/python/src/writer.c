/* turbopump._turbopump.DatasetWriter: the C dataset writer (include/turbopump/dataset.h)
 * for Python, under turbopump.Writer (writer.py), which turns samples into field values.
 * Appending copies nothing beyond what the writer itself does: values are read through
 * the buffer protocol. Writing runs with the GIL released. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <turbopump/dataset.h>

#include <stdint.h>
#include <string.h>

#include "writer.h"

typedef struct {
    PyObject_HEAD
    tp_dataset_writer *w;
    size_t nfields;
} Writer;

static PyObject *Error;

static PyObject *fail(const tp_error *err)
{
    PyErr_SetObject(Error, Py_BuildValue("(is)", err->code, err->msg));
    return NULL;
}

static int kind_of(const char *s, tp_field_kind *k)
{
    static const char *const names[] = {"bytes", "image", "int64", "tensor"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i])) {
            *k = (tp_field_kind)i;
            return 0;
        }
    PyErr_Format(PyExc_ValueError, "unknown field kind '%s'", s);
    return -1;
}

static int dtype_of(const char *s, tp_dtype *t)
{
    for (int i = TP_DTYPE_UINT8; i <= TP_DTYPE_UINT32; i++)
        if (!strcmp(s, tp_dtype_name((tp_dtype)i))) {
            *t = (tp_dtype)i;
            return 0;
        }
    PyErr_Format(PyExc_ValueError, "unknown dtype '%s'", s);
    return -1;
}

/* One (name, kind, dtype or None, shape or None) tuple. */
static int field_of(PyObject *item, tp_field_info *f)
{
    const char *name, *kind;
    PyObject *dtype, *shape;
    if (!PyArg_ParseTuple(item, "ssOO", &name, &kind, &dtype, &shape))
        return -1;
    *f = (tp_field_info){.name = name};
    if (kind_of(kind, &f->kind) < 0)
        return -1;
    if (dtype != Py_None && (!PyUnicode_Check(dtype) ||
                             dtype_of(PyUnicode_AsUTF8(dtype), &f->dtype) < 0))
        return -1;
    if (shape == Py_None)
        return 0;
    Py_ssize_t n = PySequence_Length(shape);
    if (n < 1 || n > TP_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "field '%s': a shape of 1 to %d dimensions", name,
                     TP_MAX_DIMS);
        return -1;
    }
    f->ndim = (uint32_t)n;
    for (Py_ssize_t d = 0; d < n; d++) {
        PyObject *v = PySequence_GetItem(shape, d);
        f->shape[d] = v ? PyLong_AsLongLong(v) : -1;
        Py_XDECREF(v);
        if (PyErr_Occurred())
            return -1;
    }
    return 0;
}

static int Writer_init(Writer *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"path", "fields", "classes", "format", "align", "shard_bytes",
                             "source", "id", "replace", NULL};
    const char *path, *format = "record", *source = "";
    PyObject *fields, *classes = Py_None;
    unsigned int align = 0;
    unsigned long long shard_bytes = 0;
    Py_buffer id = {0};
    int replace = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "sO|OsIKsy*p", kwlist, &path, &fields,
                                     &classes, &format, &align, &shard_bytes, &source, &id,
                                     &replace))
        return -1;
    int rc = -1;
    tp_field_info info[TP_MAX_FIELDS];
    const char *names[4096];
    PyObject *fseq = PySequence_Fast(fields, "fields must be a sequence");
    PyObject *cseq = classes == Py_None ? NULL : PySequence_Fast(classes, "classes: a list");
    Py_ssize_t nf = fseq ? PySequence_Fast_GET_SIZE(fseq) : 0;
    Py_ssize_t nc = cseq ? PySequence_Fast_GET_SIZE(cseq) : 0;
    if (!fseq || (classes != Py_None && !cseq))
        goto out;
    if (nf < 1 || nf > TP_MAX_FIELDS || nc > (Py_ssize_t)(sizeof(names) / sizeof(*names))) {
        PyErr_Format(PyExc_ValueError, "1 to %d fields and at most 4096 classes",
                     TP_MAX_FIELDS);
        goto out;
    }
    for (Py_ssize_t i = 0; i < nf; i++)
        if (field_of(PySequence_Fast_GET_ITEM(fseq, i), &info[i]) < 0)
            goto out;
    for (Py_ssize_t i = 0; i < nc; i++)
        if (!(names[i] = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(cseq, i))))
            goto out;
    if (id.buf && id.len != TP_DATASET_ID_BYTES) {
        PyErr_Format(PyExc_ValueError, "id: %d bytes", TP_DATASET_ID_BYTES);
        goto out;
    }
    tp_dataset_writer_options o = {
        .format = !strcmp(format, "lmdb") ? TP_SHARD_LMDB : TP_SHARD_RECORD, .align = align,
        .shard_bytes = shard_bytes, .fields = info, .nfields = (size_t)nf,
        .classes = names, .nclasses = (size_t)nc, .id = id.buf, .source = source,
        .replace = replace};
    if (strcmp(format, "lmdb") && strcmp(format, "record")) {
        PyErr_Format(PyExc_ValueError, "format must be 'record' or 'lmdb', not '%s'", format);
        goto out;
    }
    tp_error err = {0};
    if (self->w)
        tp_dataset_writer_destroy(self->w);
    self->w = NULL;
    if (tp_dataset_writer_create(&self->w, path, &o, &err) < 0) {
        fail(&err);
        goto out;
    }
    self->nfields = (size_t)nf;
    rc = 0;
out:
    Py_XDECREF(fseq);
    Py_XDECREF(cseq);
    if (id.buf)
        PyBuffer_Release(&id);
    return rc;
}

static tp_dataset_writer *open_writer(Writer *self)
{
    if (!self->w)
        PyErr_SetString(PyExc_ValueError, "the writer is finished or closed");
    return self->w;
}

/* append(values): values[i] is field i's bytes (any buffer), None for none. */
static PyObject *Writer_append(Writer *self, PyObject *values)
{
    if (!open_writer(self))
        return NULL;
    PyObject *seq = PySequence_Fast(values, "values must be a sequence");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    Py_buffer bufs[TP_MAX_FIELDS];
    tp_field_value v[TP_MAX_FIELDS];
    size_t nv = 0, held = 0;
    PyObject *ret = NULL;
    if ((size_t)n != self->nfields) {
        PyErr_Format(PyExc_ValueError, "%zd values for %zu fields", n, self->nfields);
        goto out;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (item == Py_None)
            continue;
        if (PyObject_GetBuffer(item, &bufs[held], PyBUF_CONTIG_RO) < 0)
            goto out;
        v[nv++] = (tp_field_value){.field = (uint32_t)i, .data = bufs[held].buf,
                                   .size = (uint64_t)bufs[held].len,
                                   .raw_size = (uint64_t)bufs[held].len};
        held++;
    }
    tp_error err = {0};
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = tp_dataset_writer_append(self->w, v, nv, &err);
    Py_END_ALLOW_THREADS
    if (rc < 0)
        fail(&err);
    else
        ret = PyLong_FromUnsignedLongLong(tp_dataset_writer_count(self->w));
out:
    for (size_t i = 0; i < held; i++)
        PyBuffer_Release(&bufs[i]);
    Py_DECREF(seq);
    return ret;
}

/* finish(): publishes the dataset; the writer is done either way. */
static PyObject *Writer_finish(Writer *self, PyObject *unused)
{
    (void)unused;
    if (!open_writer(self))
        return NULL;
    tp_error err = {0};
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = tp_dataset_writer_finish(self->w, &err);
    Py_END_ALLOW_THREADS
    tp_dataset_writer_destroy(self->w);
    self->w = NULL;
    if (rc < 0)
        return fail(&err);
    Py_RETURN_NONE;
}

/* close(): discards an unfinished dataset (nothing appears at its path). */
static PyObject *Writer_close(Writer *self, PyObject *unused)
{
    (void)unused;
    tp_dataset_writer_destroy(self->w);
    self->w = NULL;
    Py_RETURN_NONE;
}

static void Writer_dealloc(Writer *self)
{
    tp_dataset_writer_destroy(self->w);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Writer_methods[] = {
    {"append", (PyCFunction)Writer_append, METH_O,
     "append(values) -> samples so far; values[i] is field i's bytes or None."},
    {"finish", (PyCFunction)Writer_finish, METH_NOARGS,
     "finish(): write the manifest and publish the dataset atomically."},
    {"close", (PyCFunction)Writer_close, METH_NOARGS,
     "close(): discard the dataset unless finished."},
    {NULL, NULL, 0, NULL}};

static PyTypeObject WriterType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "turbopump._turbopump.DatasetWriter",
    .tp_basicsize = sizeof(Writer),
    .tp_dealloc = (destructor)Writer_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "DatasetWriter(path, fields, classes=None, format='record', align=0, "
              "shard_bytes=0, source='', id=None, replace=False): the C dataset writer "
              "(use turbopump.Writer).",
    .tp_methods = Writer_methods,
    .tp_init = (initproc)Writer_init,
    .tp_new = PyType_GenericNew,
};

int tp_py_writer_add(PyObject *module, PyObject *error)
{
    Error = error;
    if (PyType_Ready(&WriterType) < 0)
        return -1;
    Py_INCREF(&WriterType);
    if (PyModule_AddObject(module, "DatasetWriter", (PyObject *)&WriterType) < 0)
        return -1;
    return tp_py_tokens_writer_add(module, error);
}
