/* Run-time version of the library, so a program can tell which build it has loaded. */
#include <turbopump/version.h>

TP_API unsigned tp_version(void) { return TP_VERSION_NUMBER; }

TP_API const char *tp_version_string(void) { return TP_VERSION_STRING; }
