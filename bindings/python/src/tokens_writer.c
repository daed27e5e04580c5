/* turbopump._turbopump.TokensWriter: the C token dataset writer (include/turbopump/
 * tokens.h) for Python, under turbopump.pack_tokens (tokens.py), which turns whatever a
 * tokenizer returns into arrays. Documents are read through the buffer protocol (uint16,
 * uint32, int32 or int64 arrays) without a copy, and written with the GIL released. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <turbopump/tokens.h>

#include <string.h>

#include "writer.h"

typedef struct {
    PyObject_HEAD
    tp_tokens_writer *w;
} TokensWriter;

static PyObject *Error;

static PyObject *fail(const tp_error *err)
{
    PyErr_SetObject(Error, Py_BuildValue("(is)", err->code, err->msg));
    return NULL;
}

static int TokensWriter_init(TokensWriter *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"path", "dtype", "shard_bytes", "block_tokens", "source", "id",
                             "replace", NULL};
    const char *path, *dtype = "uint32", *source = "";
    unsigned long long shard_bytes = 0;
    unsigned int block_tokens = 0;
    Py_buffer id = {0};
    int replace = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|sKIsy*p", kwlist, &path, &dtype,
                                     &shard_bytes, &block_tokens, &source, &id, &replace))
        return -1;
    int rc = -1;
    if (strcmp(dtype, "uint16") && strcmp(dtype, "uint32"))
        PyErr_Format(PyExc_ValueError, "dtype must be 'uint16' or 'uint32', not '%s'", dtype);
    else if (id.buf && id.len != TP_DATASET_ID_BYTES)
        PyErr_Format(PyExc_ValueError, "id: %d bytes", TP_DATASET_ID_BYTES);
    else
        rc = 0;
    tp_tokens_writer_options o = {
        .dtype = !strcmp(dtype, "uint16") ? TP_DTYPE_UINT16 : TP_DTYPE_UINT32,
        .shard_bytes = shard_bytes, .block_tokens = block_tokens, .source = source,
        .id = id.buf, .replace = replace};
    tp_error err = {0};
    tp_tokens_writer_destroy(self->w);
    self->w = NULL;
    if (rc == 0 && tp_tokens_writer_create(&self->w, path, &o, &err) < 0) {
        fail(&err);
        rc = -1;
    }
    if (id.buf)
        PyBuffer_Release(&id);
    return rc;
}

static tp_tokens_writer *open_writer(TokensWriter *self)
{
    if (!self->w)
        PyErr_SetString(PyExc_ValueError, "the writer is finished or closed");
    return self->w;
}

/* The dtype of a 1-D buffer of ids, from its struct format and item size. */
static int dtype_of(const Py_buffer *b, tp_dtype *t)
{
    const char *f = b->format ? b->format : "B";
    if (*f == '<' || *f == '=' || *f == '@')
        f++;
    char c = f[0] && !f[1] ? f[0] : '?';
    bool uns = c == 'H' || c == 'I' || c == 'L' || c == 'Q';
    bool sig = c == 'h' || c == 'i' || c == 'l' || c == 'q';
    *t = TP_DTYPE_NONE;
    if (uns && b->itemsize == 2)
        *t = TP_DTYPE_UINT16;
    else if (uns && b->itemsize == 4)
        *t = TP_DTYPE_UINT32;
    else if (sig && b->itemsize == 4)
        *t = TP_DTYPE_INT32;
    else if (sig && b->itemsize == 8)
        *t = TP_DTYPE_INT64;
    if (*t != TP_DTYPE_NONE && b->ndim == 1)
        return 0;
    PyErr_Format(PyExc_TypeError, "a document must be a 1-D array of uint16, uint32, int32 "
                 "or int64 ids, not format '%s' of %zd bytes in %d dimensions",
                 b->format ? b->format : "B", b->itemsize, b->ndim);
    return -1;
}

/* append(ids, extend=False): one document (or, with extend, more ids of the last one). */
static PyObject *TokensWriter_append(TokensWriter *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"ids", "extend", NULL};
    PyObject *obj;
    int extend = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|p", kwlist, &obj, &extend) ||
        !open_writer(self))
        return NULL;
    Py_buffer b;
    if (PyObject_GetBuffer(obj, &b, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return NULL;
    tp_dtype t;
    PyObject *ret = NULL;
    if (dtype_of(&b, &t) == 0) {
        tp_error err = {0};
        int rc;
        uint64_t n = (uint64_t)b.shape[0];
        Py_BEGIN_ALLOW_THREADS
        rc = extend ? tp_tokens_writer_extend(self->w, b.buf, t, n, &err)
                    : tp_tokens_writer_append(self->w, b.buf, t, n, &err);
        Py_END_ALLOW_THREADS
        if (rc < 0)
            fail(&err);
        else
            ret = Py_BuildValue("(KK)", (unsigned long long)tp_tokens_writer_documents(self->w),
                                (unsigned long long)tp_tokens_writer_tokens(self->w));
    }
    PyBuffer_Release(&b);
    return ret;
}

/* finish(): publishes the dataset; the writer is done either way. */
static PyObject *TokensWriter_finish(TokensWriter *self, PyObject *unused)
{
    (void)unused;
    if (!open_writer(self))
        return NULL;
    tp_error err = {0};
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = tp_tokens_writer_finish(self->w, &err);
    Py_END_ALLOW_THREADS
    tp_tokens_writer_destroy(self->w);
    self->w = NULL;
    if (rc < 0)
        return fail(&err);
    Py_RETURN_NONE;
}

/* close(): discards an unfinished dataset (nothing appears at its path). */
static PyObject *TokensWriter_close(TokensWriter *self, PyObject *unused)
{
    (void)unused;
    tp_tokens_writer_destroy(self->w);
    self->w = NULL;
    Py_RETURN_NONE;
}

static void TokensWriter_dealloc(TokensWriter *self)
{
    tp_tokens_writer_destroy(self->w);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef TokensWriter_methods[] = {
    {"append", (PyCFunction)(void (*)(void))TokensWriter_append, METH_VARARGS | METH_KEYWORDS,
     "append(ids, extend=False) -> (documents, tokens) so far; ids: a 1-D uint16, uint32, "
     "int32 or int64 buffer, a new document or, with extend, more of the last one."},
    {"finish", (PyCFunction)TokensWriter_finish, METH_NOARGS,
     "finish(): write the manifest and publish the dataset atomically."},
    {"close", (PyCFunction)TokensWriter_close, METH_NOARGS,
     "close(): discard the dataset unless finished."},
    {NULL, NULL, 0, NULL}};

static PyTypeObject TokensWriterType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "turbopump._turbopump.TokensWriter",
    .tp_basicsize = sizeof(TokensWriter),
    .tp_dealloc = (destructor)TokensWriter_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "TokensWriter(path, dtype='uint32', shard_bytes=0, block_tokens=0, source='', "
              "id=None, replace=False): the C token dataset writer (use "
              "turbopump.pack_tokens).",
    .tp_methods = TokensWriter_methods,
    .tp_init = (initproc)TokensWriter_init,
    .tp_new = PyType_GenericNew,
};

int tp_py_tokens_writer_add(PyObject *module, PyObject *error)
{
    Error = error;
    if (PyType_Ready(&TokensWriterType) < 0)
        return -1;
    Py_INCREF(&TokensWriterType);
    return PyModule_AddObject(module, "TokensWriter", (PyObject *)&TokensWriterType);
}
