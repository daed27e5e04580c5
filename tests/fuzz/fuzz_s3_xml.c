/* libFuzzer target: the reading of S3's XML answers (error codes, multipart upload ids)
 * on arbitrary bytes, as a gateway or anything between could send them. The element's
 * text must come back NUL-terminated within its buffer. */
#include "s3.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const elements[] = {"Code", "UploadId", "Message"};
    char out[64];
    for (size_t i = 0; i < sizeof(elements) / sizeof(elements[0]); i++)
        if (tp__s3_xml_text((const char *)data, size, elements[i], out, sizeof(out)) &&
            strlen(out) >= sizeof(out))
            abort();
    return 0;
}
