/* ImageFolder discovery for `turbopump pack`: class directories, their JPEG files in a
 * deterministic order, and one warning for each input that cannot be used. */
#ifndef TP_SCAN_H
#define TP_SCAN_H

#include "tp_common.h"

typedef struct tp_scan_item {
    char *path;      /* full path of the file */
    uint32_t label;  /* index into classes */
} tp_scan_item;

typedef struct tp_scan {
    char **classes;
    size_t nclasses;
    tp_scan_item *items;
    size_t nitems;
    size_t skipped;  /* inputs warned about and left out */
    uint64_t listing_hash; /* hash of class, relative path and size of each file, in order */
} tp_scan;

/* Scans `root`. Each unusable input is reported through `warn` (which may stop the scan
 * by returning non-zero, as --strict does) and counted in `skipped`.
 * @return : 0, the non-zero value `warn` returned, or -errno when `root` itself fails. */
int tp_scan_imagefolder(const char *root, tp_scan *out,
                        int (*warn)(void *ctx, const char *path, const char *why), void *ctx);
void tp_scan_free(tp_scan *s);

#endif
