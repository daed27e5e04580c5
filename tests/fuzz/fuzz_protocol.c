/* libFuzzer target: control messages as the daemon receives them. Every input goes
 * through the header and length check; one that passes as an OPEN also goes through the
 * check of its fields, after which its strings (views' and mixture sources' included) must
 * be terminated within their arrays and its numbers within their documented bounds. */
#include "protocol.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Received messages land in a buffer of TP_MSG_MAX bytes, aligned as the structs. */
    static _Alignas(16) unsigned char buf[TP_MSG_MAX];
    if (size > sizeof(buf))
        size = sizeof(buf);
    memcpy(buf, data, size);
    tp_error err;
    int type = tp__msg_check(buf, size, &err);
    if (type < 0)
        return 0;
    if (((const tp_msg_header *)buf)->length != size)
        abort(); /* a message that passed says its own length */
    if (type != TP_MSG_OPEN)
        return 0;
    const tp_msg_open *m = (const tp_msg_open *)buf;
    if (tp__msg_check_open(m, &err) < 0)
        return 0;
    if (!memchr(m->dataset, 0, sizeof(m->dataset)) || !memchr(m->transform, 0,
                                                               sizeof(m->transform)))
        abort();
    if (m->batch_size < 1 || m->batch_size > TP_MAX_BATCH || m->rank >= m->world ||
        m->world > TP_MAX_WORLD || m->prefetch < 1 || m->prefetch > TP_MAX_PREFETCH ||
        m->nfields > TP_OPEN_MAX_FIELDS || (m->flags & ~TP_OPEN_FLAGS) ||
        m->output > TP_OUTPUT_FLOAT16 || m->nviews > TP_OPEN_MAX_VIEWS)
        abort();
    if (m->nsources > TP_OPEN_MAX_SOURCES || m->align > TP_ALIGN_PACK ||
        (m->tokens & ~TP_TOKENS_FLAGS) || m->seq_len > TP_MAX_SEQ_LEN ||
        ((m->nsources || m->tokens || m->align || m->pad_id) && !m->seq_len))
        abort();
    for (uint32_t i = 0; i < m->nsources; i++)
        if (!memchr(m->sources[i].dataset, 0, sizeof(m->sources[i].dataset)) ||
            !(m->sources[i].weight > 0))
            abort();
    for (uint32_t i = 0; i < m->nviews; i++) {
        const tp_msg_view *v = &m->views[i];
        if (!memchr(v->name, 0, sizeof(v->name)) || !memchr(v->field, 0, sizeof(v->field)) ||
            !memchr(v->transform, 0, sizeof(v->transform)))
            abort();
    }
    return 0;
}
