/* The DLPack tensor structures (the unversioned ABI, DLPack 0.5 and later), declared here
 * so the client needs no DLPack headers at build time. Layouts and constants follow the
 * DLPack specification; the names match it, so code that includes DLPack's own header can
 * use what tp_device_batch_dlpack returns directly. */
#ifndef TP_DLPACK_ABI_H
#define TP_DLPACK_ABI_H

#include <stdint.h>

enum { TP_DL_CPU = 1, TP_DL_CUDA = 2 };                  /* DLDeviceType */
enum { TP_DL_INT = 0, TP_DL_UINT = 1, TP_DL_FLOAT = 2, TP_DL_BFLOAT = 4 }; /* DLDataTypeCode */

typedef struct tp_dl_device {
    int32_t device_type;
    int32_t device_id;
} tp_dl_device;

typedef struct tp_dl_dtype {
    uint8_t code, bits;
    uint16_t lanes;
} tp_dl_dtype;

typedef struct tp_dl_tensor {
    void *data;
    tp_dl_device device;
    int32_t ndim;
    tp_dl_dtype dtype;
    int64_t *shape;
    int64_t *strides;           /* NULL: compact row-major */
    uint64_t byte_offset;
} tp_dl_tensor;

struct DLManagedTensor {
    tp_dl_tensor dl_tensor;
    void *manager_ctx;
    void (*deleter)(struct DLManagedTensor *self);
};

#endif
