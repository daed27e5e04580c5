/* The writer types of turbopump._turbopump: DatasetWriter (writer.c) and TokensWriter
 * (tokens_writer.c). */
#ifndef TP_PY_WRITER_H
#define TP_PY_WRITER_H

#include <Python.h>

/* Adds DatasetWriter and TokensWriter to `module`; their errors are raised as `error`.
 * @return : 0 or -1. */
int tp_py_writer_add(PyObject *module, PyObject *error);
/* Adds TokensWriter alone (tp_py_writer_add calls it). @return : 0 or -1. */
int tp_py_tokens_writer_add(PyObject *module, PyObject *error);

#endif
