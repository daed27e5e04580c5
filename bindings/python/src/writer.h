/* The DatasetWriter type of turbopump._turbopump (writer.c). */
#ifndef TP_PY_WRITER_H
#define TP_PY_WRITER_H

#include <Python.h>

/* Adds DatasetWriter to `module`; its errors are raised as `error`. @return : 0 or -1. */
int tp_py_writer_add(PyObject *module, PyObject *error);

#endif
