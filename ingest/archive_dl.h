/* libarchive, loaded when tar shards are first read rather than linked: it brings
 * libxml2 and ICU along (tens of megabytes), which a Python wheel would otherwise have
 * to carry for every user. Without it, reading shards fails with a message saying what to
 * install; everything else works. */
#ifndef TP_INGEST_ARCHIVE_DL_H
#define TP_INGEST_ARCHIVE_DL_H

#include "tp_common.h"

#include <archive.h>
#include <archive_entry.h>

typedef struct tp__archive_api {
    struct archive *(*read_new)(void);
    int (*read_support_filter_all)(struct archive *);
    int (*read_support_format_tar)(struct archive *);
    int (*read_open_filename)(struct archive *, const char *, size_t);
    int (*read_open_memory)(struct archive *, const void *, size_t);
    const char *(*error_string)(struct archive *);
    int (*read_free)(struct archive *);
    int (*read_next_header)(struct archive *, struct archive_entry **);
    la_ssize_t (*read_data)(struct archive *, void *, size_t);
    int (*read_data_skip)(struct archive *);
    const char *(*entry_pathname)(struct archive_entry *);
    __LA_MODE_T (*entry_filetype)(struct archive_entry *);
    la_int64_t (*entry_size)(struct archive_entry *);
} tp__archive_api;

/* @return : the loaded API (loaded once, thread-safe), or NULL with the reason in `err`. */
const tp__archive_api *tp__archive(tp_error *err);

#endif
