/* Loading libarchive (archive_dl.h): dlopen of the soname Debian and the manylinux
 * images ship, every function looked up once. */
#include "archive_dl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#define SONAME "libarchive.so.13"

static tp__archive_api api;
static char why[256];
static bool loaded;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
    void *h = dlopen(SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(why, sizeof(why), "reading tar shards needs libarchive (%s); install it "
                 "(Debian/Ubuntu: apt-get install libarchive13)", dlerror());
        return;
    }
    struct {
        void **slot;
        const char *name;
    } fns[] = {
        {(void **)&api.read_new, "archive_read_new"},
        {(void **)&api.read_support_filter_all, "archive_read_support_filter_all"},
        {(void **)&api.read_support_format_tar, "archive_read_support_format_tar"},
        {(void **)&api.read_open_filename, "archive_read_open_filename"},
        {(void **)&api.read_open_memory, "archive_read_open_memory"},
        {(void **)&api.error_string, "archive_error_string"},
        {(void **)&api.read_free, "archive_read_free"},
        {(void **)&api.read_next_header, "archive_read_next_header"},
        {(void **)&api.read_data, "archive_read_data"},
        {(void **)&api.read_data_skip, "archive_read_data_skip"},
        {(void **)&api.entry_pathname, "archive_entry_pathname"},
        {(void **)&api.entry_filetype, "archive_entry_filetype"},
        {(void **)&api.entry_size, "archive_entry_size"},
    };
    for (size_t i = 0; i < TP_ARRAY_LEN(fns); i++)
        if (!(*fns[i].slot = dlsym(h, fns[i].name))) {
            snprintf(why, sizeof(why), "%s lacks %s", SONAME, fns[i].name);
            return;
        }
    loaded = true;
}

const tp__archive_api *tp__archive(tp_error *err)
{
    pthread_once(&once, load);
    if (!loaded) {
        tp__error_set(err, TP_EUSAGE, "%s", why);
        return NULL;
    }
    return &api;
}
