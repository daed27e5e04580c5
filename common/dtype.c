/* Element types by name and size (include/turbopump/dataset.h): shared by the formats, the
 * ring's descriptor checks and the client library, so each has the one table. */
#include "tp_common.h"

#include <turbopump/dataset.h>

static const char *const dtype_names[] = {"none", "uint8", "int8", "uint16", "int16", "int32",
                                          "int64", "float16", "float32", "float64",
                                          "bfloat16", "uint32"};
static const size_t dtype_sizes[] = {0, 1, 1, 2, 2, 4, 8, 2, 4, 8, 2, 4};

TP_API const char *tp_dtype_name(tp_dtype t)
{
    return (unsigned)t < TP_ARRAY_LEN(dtype_names) ? dtype_names[t] : "?";
}

TP_API size_t tp_dtype_size(tp_dtype t)
{
    return (unsigned)t < TP_ARRAY_LEN(dtype_sizes) ? dtype_sizes[t] : 0;
}
