/*
 * ISA-L's inflate (Intel's igzip) behind three plain functions, for the `isal` feature: Rust
 * then needs no copy of ISA-L's large state struct, whose layout the compiler takes from the
 * installed header. See `Isal` in parse.rs.
 */
#include <isa-l/igzip_lib.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* A decompressor's state (about 40 KB), or NULL when out of memory. */
void *keyproof_isal_new(void) { return malloc(sizeof(struct inflate_state)); }

void keyproof_isal_free(void *state) { free(state); }

/*
 * Inflates the raw deflate stream at the start of `in` (no gzip header, no CRC) into `out`.
 * Returns 0 when the stream ended: `*used` is the input it took (bytes ISA-L had read ahead
 * into its bit buffer are given back), `*written` the output. Returns 1 when `out` is too
 * small, 2 when the stream is corrupt or ends before its last block.
 */
int keyproof_isal_inflate(void *state, const uint8_t *in, size_t in_len, uint8_t *out,
                          size_t out_len, size_t *used, size_t *written) {
    struct inflate_state *s = state;
    /* ISA-L counts in 32 bits; log files are capped far below (MAX_FILE_BYTES). */
    if (in_len > UINT32_MAX || out_len > UINT32_MAX)
        return 2;
    isal_inflate_init(s);
    s->crc_flag = ISAL_DEFLATE;
    s->next_in = (uint8_t *)in;
    s->avail_in = (uint32_t)in_len;
    s->next_out = out;
    s->avail_out = (uint32_t)out_len;
    if (isal_inflate(s) != ISAL_DECOMP_OK)
        return 2;
    if (s->block_state == ISAL_BLOCK_FINISH) {
        *used = in_len - s->avail_in - (size_t)(s->read_in_length / 8);
        *written = s->total_out;
        return 0;
    }
    return s->avail_out == 0 ? 1 : 2;
}
