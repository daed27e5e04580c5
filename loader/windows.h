/* Windows of token datasets, as a session delivers them. Window w of a dataset of T ids is
 * ids [w (L+1), (w+1)(L+1)): the non-overlapping spans of L+1 ids of the stream, so there
 * are floor(T / (L+1)) of them and the last T mod (L+1) ids are never read. A window gives
 * input_ids = its first L ids and labels = its last L (the same shifted by one), and on
 * request position_ids (0 at the window's start and at every document start inside it,
 * counting up in between) and cu_seqlens (int32 [L+1]: 0, each document start inside the
 * window, L, then L repeated: the boundaries flash-attention's variable-length kernels take,
 * per sample).
 *
 * A session's positions are windows of one dataset (the sampler shuffles them) or of a
 * mixture of several (mixture.h: the sampler leaves the interleaving in order, each source
 * shuffles its own). A batch's ids are window numbers; in a mixture, source i's windows are
 * numbered after those of sources 0..i-1.
 *
 * Each window is one task: the IO engine reads its first piece (the whole blocks holding
 * its ids in one shard) straight into the window's place in a raw area at the end of the
 * ring slot, and the decode thread checks those blocks and widens the ids into the slot's
 * arrays; the rare window that crosses into later shards reads the rest with pread on
 * the decode thread. Every block is checked against its checksum. */
#ifndef TP_WINDOWS_H
#define TP_WINDOWS_H

#include "mixture.h"
#include "outputs.h"
#include "server_internal.h"

typedef struct tp_windows tp_windows;

/* Sets up the windows of an OPEN (its dataset, already resolved, or its mixture sources,
 * resolved here) and their outputs, in `o`. *positions gets the positions of an epoch and
 * *shuffle whether the session's sampler should shuffle them. @return : 0, TP_EUSAGE
 *           (the message says why), or an open error. */
int tp__windows_open(tp_windows **out, tp_server *srv, tp_served *ds, const tp_msg_open *m,
                     tp_outputs *o, uint64_t *positions, bool *shuffle, tp_error *err);
void tp__windows_close(tp_windows *w); /* NULL allowed */

/* The window id at the sampler's output `p` of `epoch` (p itself for one dataset). */
uint64_t tp__windows_id(const tp_windows *w, uint64_t positions, uint64_t epoch, uint64_t p);

/* Bytes of a window's first piece at most: its place in the slot's raw area. */
uint64_t tp__windows_raw_bytes(const tp_windows *w);

/* Fills a task's read of window `id`: location and engine file, into `raw` (its place in
 * the raw area, tp__windows_raw_bytes long). */
void tp__windows_task(const tp_windows *w, uint64_t id, tp_task *t, unsigned char *raw);

/* Writes window `id`'s arrays for batch position `index` into `slot` from the task's
 * first piece (`data`, `len` bytes). @return : 0, or TP_ECORRUPT / -errno naming the
 * shard and block. */
int tp__windows_fill(const tp_windows *w, const tp_outputs *o, tp_worker *wk,
                     unsigned char *slot, uint32_t index, uint64_t id,
                     const unsigned char *data, uint64_t len, tp_error *err);

/* The dataset name window `id` comes from, for messages. */
const char *tp__windows_source(const tp_windows *w, uint64_t id);

#endif
