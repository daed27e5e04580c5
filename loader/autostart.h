/* How the client reaches a daemon (autostart.c). */
#ifndef TP_AUTOSTART_H
#define TP_AUTOSTART_H

#include <turbopump/client.h>

#include "protocol.h"
#include "tp_common.h"

#include <sys/types.h>

/* Connects to the daemon at o->socket (or the default socket); when none answers and
 * autostart is allowed, starts a private daemon (its pid in *daemon, its socket path in
 * private_socket) serving the dataset's parent directory, or for s3://bucket/.../name the
 * prefix above the name, and connects to it. Writes the names to open into dataset (and
 * sources, for a mixture). @return : 0 with *sock connected, or TP_ENODAEMON,
 *           TP_ENODATASET, TP_EUSAGE. */
int tp__client_connect(const tp_client_options *o, char *dataset, size_t cap,
                       char (*sources)[TP_NAME_MAX], int *sock, pid_t *daemon,
                       char *private_socket, size_t psize, tp_error *err);

#endif
