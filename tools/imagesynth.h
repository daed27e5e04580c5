/* imagesynth: deterministic, photo-like JPEG images that stand in for an
 * ImageNet-style corpus, so that decode benchmarks and small training runs
 * can be reproduced without shipping or downloading real photographs. */
#ifndef TP_IMAGESYNTH_H
#define TP_IMAGESYNTH_H

#include <stddef.h>
#include <stdint.h>

/* Generates one photo-like image, deterministically from (seed, class_id, index),
 * and encodes it as a baseline JPEG (4:2:0) at `quality`.
 *
 * Dimensions vary around 500x375 (long side 400..560, aspect 4:3, 3:2, 1:1 or
 * 5:4, about a quarter portrait). The class decides the dominant hue family,
 * the preferred shape and the preferred surface texture; `nclasses` spreads
 * the class hues around the colour wheel, so it is part of the key. The
 * class-to-style mapping does not depend on `seed`.
 *
 * @return 0 on success, with *out a buffer owned by the caller, freed with
 *         tp__synth_free(), and *out_len its size in bytes;
 *         -EINVAL if quality is outside 1..100, nclasses is 0,
 *         class_id >= nclasses, or out/out_len is NULL;
 *         -ENOMEM if memory runs out; -EIO if the encoder fails.
 *         On error *out and *out_len are left untouched.
 *
 * Thread-safe: no global state; many threads may call it concurrently. The
 * same arguments give the same bytes in every run and thread, and across
 * compilers and optimisation levels provided floating-point contraction is
 * off (the default unless FMA is enabled, e.g. by -march=native; then add
 * -ffp-contract=off). The JPEG bytes also depend on the libjpeg-turbo build.
 * Each call allocates about 35 bytes per pixel (6-11 MB) while it runs. */
int tp__synth_jpeg(uint64_t seed, uint32_t class_id, uint32_t nclasses, uint64_t index,
                   int quality, unsigned char **out, size_t *out_len);

/* Frees a buffer returned by tp__synth_jpeg(); NULL is accepted. */
void tp__synth_free(unsigned char *buf);

#endif /* TP_IMAGESYNTH_H */
