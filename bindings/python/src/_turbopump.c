/* turbopump._turbopump: the CPython extension under the turbopump package, over the public
 * C client API (include/turbopump/client.h) and, in writer.c, the dataset writer
 * (dataset.h).
 *
 * Client wraps a tp_client. Client.next() waits for a batch with the GIL released, in
 * slices, so Ctrl-C interrupts it promptly, and returns (epoch, index, ids, {name: array})
 * where every array is an Array: an object exporting one field of the batch through the
 * buffer protocol, zero-copy. Every Array of a batch holds the batch's Lease, and the
 * lease gives the ring slot back to the daemon only when the last of them is gone: a
 * view can never show another batch's bytes. Holding more batches than the session's
 * `hold` raises instead of waiting forever. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <turbopump/client.h>
#include <turbopump/pipeline.h>

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dlpack_abi.h" /* the DLPack structures (shm/) */
#include "writer.h"

static PyObject *TurbopumpError;

typedef struct {
    PyObject_HEAD
    tp_client *c;
    uint32_t hold;
    int timeout_ms;
    unsigned live;             /* leases not yet gone */
    int closing;               /* close() was called while leases lived */
    int busy;                  /* a next() is waiting (with the GIL released) */
    int device;                /* device batches on (device()) */
    int dl_type;               /* DLPack's name for their memory (2: CUDA) */
    int dl_id;
    uint32_t depth;
} Client;

typedef struct {
    PyObject_HEAD
    Client *client;            /* strong reference: releases need the client */
    int on_device;
    tp_batch batch;
    tp_device_batch dbatch;
} Lease;

/* One field of a device batch: exported through DLPack (__dlpack__), no copy. */
typedef struct {
    PyObject_HEAD
    Lease *lease;
    uint32_t field;
} DeviceArray;

typedef struct {
    PyObject_HEAD
    Lease *lease;
    void *data;
    Py_ssize_t len, itemsize;
    int ndim;
    Py_ssize_t shape[9], strides[9];
    const char *format;
    tp_dtype dtype;
} Array;

static PyObject *raise_tp(int code, const tp_error *err)
{
    const char *msg = err && err->msg[0] ? err->msg : tp_strerror(code);
    PyObject *args = Py_BuildValue("(is)", code, msg);
    if (args) {
        PyErr_SetObject(TurbopumpError, args);
        Py_DECREF(args);
    }
    return NULL;
}

static PyObject *closed_error(void)
{
    PyErr_SetString(PyExc_ValueError, "the turbopump client is closed");
    return NULL;
}

/* ---- Lease */

static void Lease_dealloc(Lease *l)
{
    Client *c = l->client;
    if (c && c->c) {
        if (l->on_device) /* its DLPack tensors hold their own references */
            tp_client_release_device(c->c, &l->dbatch, TP_STREAM_NONE);
        else
            tp_client_release(c->c, &l->batch);
        if (--c->live == 0 && c->closing) { /* close() was waiting for this */
            tp_client_close(c->c);
            c->c = NULL;
        }
    }
    Py_XDECREF(c);
    Py_TYPE(l)->tp_free((PyObject *)l);
}

static PyTypeObject LeaseType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "turbopump._turbopump.Lease",
    .tp_basicsize = sizeof(Lease),
    .tp_dealloc = (destructor)Lease_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The ring slot of one batch, held while any of its arrays lives.",
};

/* ---- Array: one field of a batch, through the buffer protocol */

static const char *format_of(tp_dtype t)
{
    switch (t) {
    case TP_DTYPE_UINT8: return "B";
    case TP_DTYPE_INT8: return "b";
    case TP_DTYPE_UINT16: return "H";
    case TP_DTYPE_INT16: return "h";
    case TP_DTYPE_INT32: return "i";
    case TP_DTYPE_UINT32: return "I";
    case TP_DTYPE_INT64: return "q";
    case TP_DTYPE_FLOAT16: return "e";
    case TP_DTYPE_BFLOAT16: return "H"; /* the buffer protocol has no bfloat16: its bits */
    case TP_DTYPE_FLOAT32: return "f";
    case TP_DTYPE_FLOAT64: return "d";
    default: return NULL;
    }
}

static int Array_getbuffer(Array *a, Py_buffer *view, int flags)
{
    if (flags & PyBUF_WRITABLE) {
        PyErr_SetString(PyExc_BufferError, "turbopump batch arrays are read-only views of "
                        "the ring (use copy=True for writable arrays)");
        return -1;
    }
    view->obj = (PyObject *)a;
    Py_INCREF(a);
    view->buf = a->data;
    view->len = a->len;
    view->readonly = 1;
    view->itemsize = a->itemsize;
    view->format = (flags & PyBUF_FORMAT) ? (char *)a->format : NULL;
    view->ndim = a->ndim;
    view->shape = (flags & PyBUF_ND) ? a->shape : NULL;
    view->strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? a->strides : NULL;
    view->suboffsets = NULL;
    view->internal = NULL;
    return 0;
}

static PyBufferProcs Array_as_buffer = {.bf_getbuffer = (getbufferproc)Array_getbuffer};

static void Array_dealloc(Array *a)
{
    Py_XDECREF(a->lease);
    Py_TYPE(a)->tp_free((PyObject *)a);
}

static PyObject *Array_dtype(Array *a, void *unused)
{
    return PyUnicode_FromString(tp_dtype_name(a->dtype));
}

static PyGetSetDef Array_getset[] = {
    {"dtype", (getter)Array_dtype, NULL,
     "the element type's name (bfloat16 is exported as its uint16 bits)", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject ArrayType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "turbopump._turbopump.Array",
    .tp_basicsize = sizeof(Array),
    .tp_dealloc = (destructor)Array_dealloc,
    .tp_as_buffer = &Array_as_buffer,
    .tp_getset = Array_getset,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One field of a batch in the shared-memory ring (buffer protocol).",
};

static PyObject *make_array(Lease *lease, const void *data, tp_dtype dtype, uint32_t ndim,
                            const int64_t *shape, uint64_t bytes)
{
    const char *fmt = format_of(dtype);
    if (!fmt || ndim < 1 || ndim > 9) {
        PyErr_Format(TurbopumpError, "unsupported array (dtype %d, %u dims)", (int)dtype, ndim);
        return NULL;
    }
    Array *a = PyObject_New(Array, &ArrayType);
    if (!a)
        return NULL;
    Py_INCREF(lease);
    a->lease = lease;
    a->data = (void *)data;
    a->len = (Py_ssize_t)bytes;
    a->format = fmt;
    a->dtype = dtype;
    a->itemsize = (Py_ssize_t)tp_dtype_size(dtype);
    a->ndim = (int)ndim;
    Py_ssize_t stride = a->itemsize;
    for (int d = (int)ndim - 1; d >= 0; d--) {
        a->shape[d] = (Py_ssize_t)shape[d];
        a->strides[d] = stride;
        stride *= a->shape[d];
    }
    return (PyObject *)a;
}

/* ---- DeviceArray: one field of a device batch, through DLPack */

static void capsule_destructor(PyObject *cap)
{
    /* a consumer renames the capsule "used_dltensor" and owns the tensor from then on */
    if (PyCapsule_IsValid(cap, "dltensor")) {
        struct DLManagedTensor *m = PyCapsule_GetPointer(cap, "dltensor");
        if (m && m->deleter)
            m->deleter(m);
    }
}

static PyObject *DeviceArray_dlpack(DeviceArray *a, PyObject *args, PyObject *kw)
{
    static char *names[] = {"stream", "max_version", "dl_device", "copy", NULL};
    PyObject *stream = Py_None, *max_version = Py_None, *dl_device = Py_None, *copy = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|$OOOO", names, &stream, &max_version,
                                     &dl_device, &copy))
        return NULL;
    Client *c = a->lease->client;
    if (!c || !c->c)
        return closed_error();
    if (copy == Py_True) {
        PyErr_SetString(PyExc_BufferError, "turbopump device arrays are exported without a copy");
        return NULL;
    }
    void *s = TP_STREAM_NONE;
    int host_wait = 0;
    if (c->dl_type == 1) { /* host memory: the consumer reads it at once */
        host_wait = 1;
    } else if (stream == Py_None) {
        s = NULL; /* CUDA's legacy default stream */
    } else {
        long long v = PyLong_AsLongLong(stream);
        if (v == -1 && PyErr_Occurred())
            return NULL;
        if (v == -1)
            host_wait = 1; /* the consumer asks for no ordering: make it safe on the host */
        else
            s = v == 0 || v == 1 ? NULL : (void *)(intptr_t)v;
    }
    tp_error err = {0};
    int rc = 0;
    if (host_wait) {
        Py_BEGIN_ALLOW_THREADS
        rc = tp_device_batch_sync(c->c, &a->lease->dbatch);
        Py_END_ALLOW_THREADS
        if (rc < 0)
            return raise_tp(rc, NULL);
    }
    struct DLManagedTensor *m = tp_device_batch_dlpack(c->c, &a->lease->dbatch, a->field, s,
                                                       &err);
    if (!m)
        return raise_tp(TP_ENODEVICE, &err);
    PyObject *cap = PyCapsule_New(m, "dltensor", capsule_destructor);
    if (!cap)
        m->deleter(m);
    return cap;
}

static PyObject *DeviceArray_dlpack_device(DeviceArray *a, PyObject *unused)
{
    Client *c = a->lease->client;
    return Py_BuildValue("(ii)", c ? c->dl_type : 2, c ? c->dl_id : 0);
}

static PyObject *DeviceArray_shape(DeviceArray *a, void *unused)
{
    const tp_batch_field *f = &a->lease->dbatch.fields[a->field];
    PyObject *t = PyTuple_New(f->ndim);
    for (uint32_t d = 0; t && d < f->ndim; d++) {
        PyObject *v = PyLong_FromLongLong(f->shape[d]);
        if (!v)
            Py_CLEAR(t);
        else
            PyTuple_SET_ITEM(t, d, v);
    }
    return t;
}

static PyObject *DeviceArray_dtype(DeviceArray *a, void *unused)
{
    return PyUnicode_FromString(tp_dtype_name(a->lease->dbatch.fields[a->field].dtype));
}

static PyObject *DeviceArray_ptr(DeviceArray *a, void *unused)
{
    return PyLong_FromVoidPtr((void *)a->lease->dbatch.fields[a->field].data);
}

static void DeviceArray_dealloc(DeviceArray *a)
{
    Py_XDECREF(a->lease);
    Py_TYPE(a)->tp_free((PyObject *)a);
}

static PyMethodDef DeviceArray_methods[] = {
    {"__dlpack__", (PyCFunction)(void (*)(void))DeviceArray_dlpack,
     METH_VARARGS | METH_KEYWORDS,
     "__dlpack__(*, stream=None, ...) -> a DLPack capsule; work on `stream` (a CUDA stream "
     "handle, 1 the legacy default) is ordered after the copy."},
    {"__dlpack_device__", (PyCFunction)DeviceArray_dlpack_device, METH_NOARGS,
     "__dlpack_device__() -> (device type, device id); 2 is CUDA."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef DeviceArray_getset[] = {
    {"shape", (getter)DeviceArray_shape, NULL, "the field's shape", NULL},
    {"dtype", (getter)DeviceArray_dtype, NULL, "the element type's name", NULL},
    {"ptr", (getter)DeviceArray_ptr, NULL, "the device address (while the batch lives)", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject DeviceArrayType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "turbopump._turbopump.DeviceArray",
    .tp_basicsize = sizeof(DeviceArray),
    .tp_dealloc = (destructor)DeviceArray_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_methods = DeviceArray_methods,
    .tp_getset = DeviceArray_getset,
    .tp_doc = "One field of a batch in GPU memory, exported through DLPack.",
};

/* ---- Client */

#define TP_MAX_CLIENT_VIEWS 16

/* views: a sequence of (name, field or None, transform or None). The C strings point into
 * the tuples, which *keep holds until the session is open. @return : 0 or -1 (raised). */
static int parse_views(PyObject *views, tp_client_view *out, PyObject **keep, size_t *n)
{
    PyObject *seq = PySequence_Fast(views, "views must be a sequence of (name, field, "
                                    "transform) tuples");
    if (!seq)
        return -1;
    Py_ssize_t k = PySequence_Fast_GET_SIZE(seq);
    if (k > TP_MAX_CLIENT_VIEWS) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "at most %d views and per-field pipelines, not %zd",
                     TP_MAX_CLIENT_VIEWS, k);
        return -1;
    }
    for (Py_ssize_t i = 0; i < k; i++) {
        PyObject *t = PySequence_Fast_GET_ITEM(seq, i);
        const char *s[3] = {NULL, NULL, NULL};
        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 3) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_TypeError, "each view is a (name, field, transform) tuple");
            return -1;
        }
        for (int j = 0; j < 3; j++) {
            PyObject *v = PyTuple_GET_ITEM(t, j);
            if (v == Py_None && j > 0)
                continue;
            if (!PyUnicode_Check(v)) {
                Py_DECREF(seq);
                PyErr_Format(PyExc_TypeError, "view %zd: the %s must be a str", i,
                             j == 0 ? "name" : j == 1 ? "field" : "transform");
                return -1;
            }
            if (!(s[j] = PyUnicode_AsUTF8(v))) {
                Py_DECREF(seq);
                return -1;
            }
        }
        out[i] = (tp_client_view){.name = s[0], .field = s[1], .transform = s[2]};
    }
    *keep = seq;
    *n = (size_t)k;
    return 0;
}

static int Client_init(Client *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"dataset", "socket", "fields", "transform", "output",
                            "batch_size", "shuffle", "drop_last", "seed", "rank",
                            "world_size", "epoch", "batch", "prefetch", "hold",
                            "timeout_ms", "autostart", "daemon_path", "max_batches", "views",
                            "consumed", "seq_len", "token_outputs", "sources", "mixture_epoch",
                            "align_documents", "pad_id", NULL};
    const char *dataset, *socket = NULL, *transform = NULL, *output = "uint8",
               *daemon_path = NULL;
    PyObject *fields = Py_None, *views = Py_None, *sources = Py_None;
    unsigned long long batch_size = 256, seed = 0, epoch = 0, batch = 0, max_batches = 0;
    unsigned long long consumed = 0, mixture_epoch = 0;
    unsigned int align = 0;
    long long pad_id = 0;
    int shuffle = 1, drop_last = 0, autostart = 1, timeout_ms = 60000;
    unsigned int rank = 0, world = 1, prefetch = 4, hold = 3, seq_len = 0, token_outputs = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "z|zOzsKppKIIKKIIipzKOKIIOKIL", names, &dataset,
                                     &socket, &fields, &transform, &output, &batch_size,
                                     &shuffle, &drop_last, &seed, &rank, &world, &epoch, &batch,
                                     &prefetch, &hold, &timeout_ms, &autostart, &daemon_path,
                                     &max_batches, &views, &consumed, &seq_len, &token_outputs,
                                     &sources, &mixture_epoch, &align, &pad_id))
        return -1;
    tp_client_source src_c[16];
    size_t nsources = 0;
    if (sources != Py_None) { /* [(name, weight), ...]: the tuples outlive the open */
        Py_ssize_t n = PySequence_Size(sources);
        if (n < 1 || n > 16) {
            PyErr_SetString(PyExc_ValueError, "a mixture has 1..16 sources");
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *item = PySequence_GetItem(sources, i);
            const char *name = NULL;
            double weight = 0;
            int ok = item && PyArg_ParseTuple(item, "sd", &name, &weight);
            Py_XDECREF(item); /* the strings live in `sources`, which the caller holds */
            if (!ok)
                return -1;
            src_c[i] = (tp_client_source){.dataset = name, .weight = weight};
        }
        nsources = (size_t)n;
    }
    if (self->live || self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "this client has batches in use; make a new one");
        return -1;
    }
    const char *names_c[TP_CLIENT_MAX_FIELDS];
    PyObject *seq = NULL;
    size_t nfields = 0;
    if (fields != Py_None) {
        seq = PySequence_Fast(fields, "fields must be a sequence of names");
        if (!seq)
            return -1;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        if (n > TP_CLIENT_MAX_FIELDS) {
            Py_DECREF(seq);
            PyErr_Format(PyExc_ValueError, "at most %d fields", TP_CLIENT_MAX_FIELDS);
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            names_c[i] = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, i));
            if (!names_c[i]) {
                Py_DECREF(seq);
                return -1;
            }
        }
        nfields = (size_t)n;
    }
    tp_client_view views_c[TP_MAX_CLIENT_VIEWS];
    PyObject *vseq = NULL;
    size_t nviews = 0;
    if (views != Py_None && parse_views(views, views_c, &vseq, &nviews) < 0) {
        Py_XDECREF(seq);
        return -1;
    }
    tp_client_output out = !strcmp(output, "uint8")     ? TP_CLIENT_UINT8
                           : !strcmp(output, "float32") ? TP_CLIENT_FLOAT32
                           : !strcmp(output, "float16") ? TP_CLIENT_FLOAT16 : (tp_client_output)-1;
    if ((int)out < 0) {
        Py_XDECREF(seq);
        Py_XDECREF(vseq);
        PyErr_Format(PyExc_ValueError, "output must be uint8, float32 or float16, not '%s'",
                     output);
        return -1;
    }
    tp_client_options o = {.socket = socket, .dataset = dataset,
                           .fields = nfields ? names_c : NULL, .nfields = nfields,
                           .transform = transform, .views = nviews ? views_c : NULL,
                           .nviews = nviews, .output = out, .batch_size = batch_size,
                           .shuffle = shuffle, .drop_last = drop_last, .seed = seed,
                           .rank = rank, .world_size = world, .epoch = epoch, .batch = batch,
                           .prefetch = prefetch, .hold = hold, .timeout_ms = timeout_ms,
                           .no_autostart = !autostart, .daemon_path = daemon_path,
                           .max_batches = max_batches, .consumed = consumed,
                           .seq_len = seq_len, .token_outputs = token_outputs,
                           .sources = nsources ? src_c : NULL, .nsources = nsources,
                           .mixture_epoch = mixture_epoch, .align_documents = align,
                           .pad_id = pad_id};
    tp_error err = {0};
    int rc;
    tp_client *c = NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = tp_client_open(&c, &o, &err);
    Py_END_ALLOW_THREADS
    Py_XDECREF(seq);
    Py_XDECREF(vseq); /* the tuples and the strings in views_c are theirs */
    if (rc < 0) {
        raise_tp(rc, &err);
        return -1;
    }
    tp_client_close(self->c);
    self->c = c;
    self->device = 0;
    self->dl_type = 0;
    self->depth = 0;
    self->hold = hold;
    self->timeout_ms = timeout_ms > 0 ? timeout_ms : 60000;
    return 0;
}

static void Client_dealloc(Client *self)
{
    tp_client_close(self->c);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Waits for the next batch in 100 ms slices with the GIL released, checking for signals
 * (Ctrl-C) in between. @return : 0, or -1 with an exception set. */
static int wait_ready(Client *self)
{
    tp_error err = {0};
    int waited = 0, rc;
    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        rc = tp_client_wait(self->c, 100, &err);
        Py_END_ALLOW_THREADS
        if (rc != -ETIMEDOUT)
            break;
        if (PyErr_CheckSignals() < 0)
            return -1;
        if ((waited += 100) >= self->timeout_ms) {
            raise_tp(rc, &err);
            return -1;
        }
    }
    if (rc < 0)
        raise_tp(rc, &err);
    return rc < 0 ? -1 : 0;
}

static PyObject *device_dict(Lease *lease)
{
    const tp_device_batch *b = &lease->dbatch;
    PyObject *d = PyDict_New();
    for (uint32_t i = 0; d && i < b->nfields; i++) {
        DeviceArray *a = PyObject_New(DeviceArray, &DeviceArrayType);
        if (a) {
            Py_INCREF(lease);
            a->lease = lease;
            a->field = i;
        }
        if (!a || PyDict_SetItemString(d, b->fields[i].name, (PyObject *)a) < 0)
            Py_CLEAR(d);
        Py_XDECREF(a);
    }
    return d;
}

static PyObject *batch_dict(Lease *lease)
{
    if (lease->on_device)
        return device_dict(lease);
    const tp_batch *b = &lease->batch;
    PyObject *d = PyDict_New();
    for (uint32_t i = 0; d && i < b->nfields; i++) {
        const tp_batch_field *f = &b->fields[i];
        PyObject *a = make_array(lease, f->data, f->dtype, f->ndim, f->shape, f->bytes);
        if (!a || PyDict_SetItemString(d, f->name, a) < 0)
            Py_CLEAR(d);
        Py_XDECREF(a);
    }
    return d;
}

static PyObject *Client_next(Client *self, PyObject *unused)
{
    if (!self->c || self->closing)
        return closed_error();
    if (self->busy) { /* the C client serves one thread at a time */
        PyErr_SetString(PyExc_RuntimeError, "a turbopump loader is being read by two threads "
                        "at once");
        return NULL;
    }
    self->busy = 1;
    int waited = wait_ready(self);
    self->busy = 0;
    if (self->closing) { /* close() from another thread while we waited */
        if (!self->live) {
            tp_client_close(self->c);
            self->c = NULL;
        }
        return closed_error();
    }
    if (waited < 0)
        return NULL;
    Lease *lease = PyObject_New(Lease, &LeaseType);
    if (!lease)
        return NULL;
    lease->client = NULL;
    lease->on_device = self->device;
    tp_error err = {0};
    int rc = self->device ? tp_client_next_device(self->c, &lease->dbatch, &err)
                          : tp_client_next(self->c, &lease->batch, &err);
    if (rc < 0) {
        Py_DECREF(lease);
        if (rc == TP_EUSAGE && self->device && (strstr(err.msg, "already holding") ||
                                                strstr(err.msg, "in use")))
            PyErr_Format(TurbopumpError, "tensors of earlier device batches are still alive: "
                         "with depth %u, at most %u device batches can be held at once; drop "
                         "older batches, clone() what you keep, or raise the depth (%s)",
                         self->depth, self->depth, err.msg);
        else if (rc == TP_EUSAGE && self->hold && !self->device)
            PyErr_Format(TurbopumpError, "arrays of an earlier batch are still alive: the "
                         "ring gives slots back in order, so at most %u batches (prefetch - 1) "
                         "can be held at once; drop older batches, or use copy=True",
                         self->hold);
        else
            raise_tp(rc, &err);
        return NULL;
    }
    Py_INCREF(self);
    lease->client = self;
    self->live++;
    int64_t n = self->device ? lease->dbatch.samples : lease->batch.samples;
    PyObject *ids = make_array(lease, self->device ? lease->dbatch.ids : lease->batch.ids,
                               TP_DTYPE_INT64, 1, &n, (uint64_t)n * 8);
    PyObject *fields = ids ? batch_dict(lease) : NULL;
    unsigned long long epoch = self->device ? lease->dbatch.epoch : lease->batch.epoch,
                       index = self->device ? lease->dbatch.index : lease->batch.index,
                       skipped = self->device ? lease->dbatch.skipped : lease->batch.skipped,
                       r_epoch = self->device ? lease->dbatch.resume_epoch
                                              : lease->batch.resume_epoch,
                       r_consumed = self->device ? lease->dbatch.resume_consumed
                                                 : lease->batch.resume_consumed;
    PyObject *r = fields ? Py_BuildValue("(KKKOOKK)", epoch, index, skipped, ids, fields,
                                         r_epoch, r_consumed) : NULL;
    Py_XDECREF(ids);
    Py_XDECREF(fields);
    Py_DECREF(lease);
    return r;
}

static PyObject *Client_device(Client *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"device", "depth", "output", "mean", "std", NULL};
    int device = 0;
    unsigned int depth = 3;
    const char *output = "uint8";
    PyObject *mean = Py_None, *std = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|iIsOO", names, &device, &depth, &output,
                                     &mean, &std))
        return NULL;
    if (!self->c || self->closing)
        return closed_error();
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "a turbopump loader is being read by two threads "
                        "at once");
        return NULL;
    }
    tp_device_options o = {.device = device, .depth = depth};
    o.output = !strcmp(output, "uint8")     ? TP_CLIENT_UINT8
               : !strcmp(output, "float32") ? TP_CLIENT_FLOAT32
               : !strcmp(output, "float16") ? TP_CLIENT_FLOAT16 : (tp_client_output)-1;
    if ((int)o.output < 0) {
        PyErr_Format(PyExc_ValueError, "output must be uint8, float32 or float16, not '%s'",
                     output);
        return NULL;
    }
    PyObject *given[2] = {mean, std};
    float *dst[2] = {o.mean, o.std};
    for (int k = 0; k < 2; k++) {
        if (given[k] == Py_None)
            continue;
        PyObject *seq = PySequence_Fast(given[k], "mean and std are 3 numbers");
        if (!seq)
            return NULL;
        if (PySequence_Fast_GET_SIZE(seq) != 3) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "mean and std are 3 numbers");
            return NULL;
        }
        for (int i = 0; i < 3; i++)
            dst[k][i] = (float)PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
        Py_DECREF(seq);
        if (PyErr_Occurred())
            return NULL;
    }
    if ((mean == Py_None) != (std == Py_None)) {
        PyErr_SetString(PyExc_ValueError, "give both mean and std, or neither");
        return NULL;
    }
    tp_error err = {0};
    int rc;
    self->busy = 1; /* close() from another thread now waits for us */
    Py_BEGIN_ALLOW_THREADS
    rc = tp_client_device(self->c, &o, &err);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (self->closing && !self->live) {
        tp_client_close(self->c);
        self->c = NULL;
        return closed_error();
    }
    if (rc < 0)
        return raise_tp(rc, &err);
    tp_device_info info;
    tp_client_device_info(self->c, &info);
    self->device = 1;
    self->dl_type = info.dlpack_device;
    self->dl_id = device;
    self->depth = depth ? depth : 3;
    return Py_BuildValue("{s:s,s:s,s:O}", "plugin", info.plugin, "runtime", info.runtime,
                         "pinned_ring", info.pinned_ring ? Py_True : Py_False);
}

static PyObject *Client_device_stats(Client *self, PyObject *unused)
{
    if (!self->c)
        return closed_error();
    tp_device_info info;
    tp_client_device_info(self->c, &info);
    return Py_BuildValue("{s:K,s:K,s:d}", "copies", (unsigned long long)info.copies,
                         "copy_bytes", (unsigned long long)info.copy_bytes, "copy_ms",
                         info.copy_ms);
}

static PyObject *Client_state(Client *self, PyObject *unused)
{
    if (!self->c)
        return closed_error();
    uint64_t e, b;
    tp_client_state(self->c, &e, &b);
    return Py_BuildValue("(KK)", (unsigned long long)e, (unsigned long long)b);
}

static PyObject *Client_position(Client *self, PyObject *unused)
{
    if (!self->c)
        return closed_error();
    uint64_t e, c;
    tp_client_position(self->c, &e, &c);
    return Py_BuildValue("(KK)", (unsigned long long)e, (unsigned long long)c);
}

static PyObject *Client_sizes(Client *self, PyObject *unused)
{
    if (!self->c)
        return closed_error();
    return Py_BuildValue("(KKK)", (unsigned long long)tp_client_batches_per_epoch(self->c),
                         (unsigned long long)tp_client_samples_per_epoch(self->c),
                         (unsigned long long)tp_client_dataset_samples(self->c));
}

/* Closing while arrays still live would unmap their memory: then the session ends when
 * the last of them goes. */
static PyObject *Client_close(Client *self, PyObject *unused)
{
    if (!self->c)
        Py_RETURN_TRUE;
    if (self->live || self->busy) {
        self->closing = 1;
        Py_RETURN_FALSE;
    }
    tp_client_close(self->c);
    self->c = NULL;
    Py_RETURN_TRUE;
}

static PyMethodDef Client_methods[] = {
    {"next", (PyCFunction)Client_next, METH_NOARGS,
     "next() -> (epoch, index, skipped, ids, {field: Array}, resume_epoch, resume_consumed);"
     " waits for the next batch."},
    {"position", (PyCFunction)Client_position, METH_NOARGS,
     "position() -> (epoch, consumed): the elastic resume state before the next batch."},
    {"device", (PyCFunction)(void (*)(void))Client_device, METH_VARARGS | METH_KEYWORDS,
     "device(device=0, depth=3, output='uint8', mean=None, std=None) -> info; batches go to "
     "GPU memory from now on (fields become DeviceArrays)."},
    {"device_stats", (PyCFunction)Client_device_stats, METH_NOARGS,
     "device_stats() -> {copies, copy_bytes, copy_ms}."},
    {"state", (PyCFunction)Client_state, METH_NOARGS,
     "state() -> (epoch, batch) of the next batch next() returns."},
    {"sizes", (PyCFunction)Client_sizes, METH_NOARGS,
     "sizes() -> (batches per epoch, samples per epoch for this rank, dataset samples)."},
    {"close", (PyCFunction)Client_close, METH_NOARGS,
     "close() -> True if closed now, False if live arrays keep it open until they go."},
    {NULL, NULL, 0, NULL}};

static PyTypeObject ClientType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "turbopump._turbopump.Client",
    .tp_basicsize = sizeof(Client),
    .tp_dealloc = (destructor)Client_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "A session with the turbopump daemon (see turbopump.Loader).",
    .tp_methods = Client_methods,
    .tp_init = (initproc)Client_init,
    .tp_new = PyType_GenericNew,
};

/* pipeline(text) -> (canonical text, dtype, layout, shape or None): parses a description
 * as the daemon will, raising ValueError with the position. */
static PyObject *pipeline(PyObject *unused, PyObject *arg)
{
    const char *text = PyUnicode_AsUTF8(arg);
    if (!text)
        return NULL;
    tp_pipeline p;
    tp_error err = {0};
    if (tp_pipeline_parse(text, &p, &err) < 0) {
        PyErr_SetString(PyExc_ValueError, err.msg[0] ? err.msg : "bad pipeline");
        return NULL;
    }
    char canon[4 * TP_PIPELINE_TEXT_MAX];
    if (tp_pipeline_format(&p, canon, sizeof(canon)) < 0) {
        PyErr_SetString(PyExc_ValueError, "pipeline: the canonical text is too long");
        return NULL;
    }
    tp_pipeline_shape sh;
    tp_pipeline_shape_of(&p, &sh);
    PyObject *shape;
    if (sh.ndim == 0) {
        shape = Py_None;
        Py_INCREF(shape);
    } else {
        shape = PyTuple_New(sh.ndim);
        for (uint32_t d = 0; shape && d < sh.ndim; d++)
            PyTuple_SET_ITEM(shape, d, PyLong_FromLongLong(sh.shape[d]));
    }
    if (!shape)
        return NULL;
    return Py_BuildValue("(sssN)", canon, tp_dtype_name(sh.dtype),
                         sh.layout == TP_LAYOUT_CHW ? "chw" : "hwc", shape);
}

static PyMethodDef module_methods[] = {
    {"pipeline", pipeline, METH_O,
     "pipeline(text) -> (canonical text, dtype, layout, per-sample shape or None); raises "
     "ValueError with the position for a bad description."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "turbopump._turbopump", .m_methods = module_methods,
    .m_doc = "The turbopump client library for Python (use turbopump.Loader).", .m_size = -1};

PyMODINIT_FUNC PyInit__turbopump(void)
{
    if (PyType_Ready(&ClientType) < 0 || PyType_Ready(&LeaseType) < 0 ||
        PyType_Ready(&ArrayType) < 0 || PyType_Ready(&DeviceArrayType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    TurbopumpError = PyErr_NewExceptionWithDoc(
        "turbopump._turbopump.Error", "An error from turbopump: args are (code, message).",
        PyExc_RuntimeError, NULL);
    Py_INCREF(&ClientType);
    if (!TurbopumpError || PyModule_AddObject(m, "Error", TurbopumpError) < 0 ||
        PyModule_AddObject(m, "Client", (PyObject *)&ClientType) < 0 ||
        tp_py_writer_add(m, TurbopumpError) < 0 ||
        PyModule_AddStringConstant(m, "version", tp_version_string()) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(TurbopumpError);
    return m;
}
