/* Checks the generated firmware headers against the Python host (driven by test_firmware.py).
 *
 * Prints the header struct layout, CRCs of the check string, of the example frames and of the frames in
 * the file argv[1] (each preceded by its uint32 length), the device-info macros, and runs a plain-C
 * transcription of CMSIS-DSP's generic arm_biquad_cascade_df1_q31 and arm_biquad_cas_df1_32x64_q31 over
 * the filter test vectors, counting samples that differ from the expected Q31 output.
 * Build: cc -std=c99 -fwrapv (sums wrap modulo 2^64, as on the Cortex-M).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "myoedge_test_vectors.h"

typedef int32_t q31_t;
typedef int64_t q63_t;

/* arm_biquad_cascade_df1_q31, generic C path: stage after stage, the later ones in place in dst. */
static void df1_q31(const q31_t *pCoeffs, unsigned numStages, int postShift, q31_t *pState,
                    const q31_t *pSrc, q31_t *pDst, unsigned blockSize)
{
    const q31_t *pIn = pSrc;
    q31_t *pOut = pDst;
    uint32_t lShift = 32u - ((uint32_t)postShift + 1u);
    unsigned stage, sample;
    for (stage = 0; stage < numStages; stage++) {
        q31_t b0 = *pCoeffs++, b1 = *pCoeffs++, b2 = *pCoeffs++, a1 = *pCoeffs++, a2 = *pCoeffs++;
        q31_t Xn1 = pState[0], Xn2 = pState[1], Yn1 = pState[2], Yn2 = pState[3];
        for (sample = 0; sample < blockSize; sample++) {
            q31_t Xn = *pIn++, out;
            q63_t acc = (q63_t)b0 * Xn;
            acc += (q63_t)b1 * Xn1;
            acc += (q63_t)b2 * Xn2;
            acc += (q63_t)a1 * Yn1;
            acc += (q63_t)a2 * Yn2;
            out = (q31_t)(acc >> lShift);
            Xn2 = Xn1; Xn1 = Xn; Yn2 = Yn1; Yn1 = out;
            *pOut++ = out;
        }
        pState[0] = Xn1; pState[1] = Xn2; pState[2] = Yn1; pState[3] = Yn2;
        pState += 4;
        pIn = pDst;
        pOut = pDst;
    }
}

static q63_t mult32x64(q63_t x, q31_t y)
{
    return ((((q63_t)(x & 0x00000000FFFFFFFF) * y) >> 32) + ((x >> 32) * y));
}

/* arm_biquad_cas_df1_32x64_q31, generic C path (shifts written on unsigned words, same bits). */
static void df1_32x64_q31(const q31_t *pCoeffs, unsigned numStages, int postShift, q63_t *pState,
                          const q31_t *pSrc, q31_t *pDst, unsigned blockSize)
{
    const q31_t *pIn = pSrc;
    q31_t *pOut = pDst;
    int shift = postShift + 1;
    unsigned stage, sample;
    for (stage = 0; stage < numStages; stage++) {
        q31_t b0 = *pCoeffs++, b1 = *pCoeffs++, b2 = *pCoeffs++, a1 = *pCoeffs++, a2 = *pCoeffs++;
        q31_t Xn1 = (q31_t)pState[0], Xn2 = (q31_t)pState[1];
        q63_t Yn1 = pState[2], Yn2 = pState[3];
        for (sample = 0; sample < blockSize; sample++) {
            q31_t Xn = *pIn++;
            q63_t acc = (q63_t)Xn * b0;
            uint32_t acc_l, acc_h;
            acc += (q63_t)Xn1 * b1;
            acc += (q63_t)Xn2 * b2;
            acc += mult32x64(Yn1, a1);
            acc += mult32x64(Yn2, a2);
            Xn2 = Xn1; Xn1 = Xn; Yn2 = Yn1;
            Yn1 = (q63_t)((uint64_t)acc << shift);
            acc_l = (uint32_t)(acc & 0xffffffff);
            acc_h = (uint32_t)((acc >> 32) & 0xffffffff);
            acc_h = acc_l >> (32 - shift) | acc_h << shift;
            *pOut++ = (q31_t)acc_h;
        }
        pState[0] = Xn1; pState[1] = Xn2; pState[2] = Yn1; pState[3] = Yn2;
        pState += 4;
        pIn = pDst;
        pOut = pDst;
    }
}

static uint32_t le32(const uint8_t *p)
{
    return p[0] | p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int samples_match(const myoedge_tv_frame_t *f)
{
    const uint8_t *p = f->bytes + MYOEDGE_HEADER_SIZE;
    unsigned i, n = (unsigned)f->n_samples * f->n_channels, width = f->sample_bits / 8u;
    for (i = 0; i < n; i++, p += width) {
        int32_t v = width == 2 ? (int16_t)(p[0] | p[1] << 8)
                               : (int32_t)((uint32_t)(p[0] | p[1] << 8 | p[2] << 16) << 8) >> 8;
        if (v != f->samples[i]) return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    static q31_t x[MYOEDGE_TV_ENV_LENGTH], band[MYOEDGE_TV_ENV_LENGTH], env[MYOEDGE_TV_ENV_LENGTH];
    q31_t band_state[4 * MYOEDGE_ENV_BAND_NUM_STAGES] = {0};
    q63_t low_state[4 * MYOEDGE_ENV_LOWPASS_NUM_STAGES] = {0};
    unsigned i, c, split, band_bad = 0, env_bad = 0;
    uint8_t buf[MYOEDGE_MAX_FRAME_SIZE];
    uint32_t len;
    FILE *frames;

    printf("sizeof %u\n", (unsigned)sizeof(myoedge_frame_header_t));
#include "field_offsets.inc"  /* printf lines written by the test from HEADER_FIELDS */
    printf("check %08lx %d\n", (unsigned long)myoedge_crc32(myoedge_tv_crc_input, 9),
           myoedge_crc32(myoedge_tv_crc_input, 9) == MYOEDGE_CRC32_CHECK);
    for (c = 1; c <= 64; c += 21)
        printf("info %u %lu %lu %lu %lu\n", c, (unsigned long)MYOEDGE_INFO_PAYLOAD_LENGTH(c),
               (unsigned long)MYOEDGE_INFO_SCALE_V_OFFSET(c), (unsigned long)MYOEDGE_INFO_LABELS_OFFSET(c),
               (unsigned long)MYOEDGE_INFO_DEVICE_NAME_OFFSET(c));

    for (i = 0; i < MYOEDGE_TV_N_FRAMES; i++) {
        const myoedge_tv_frame_t *f = &myoedge_tv_frames[i];
        myoedge_frame_header_t h;
        uint32_t sync;
        int fields_ok;
        memcpy(&h, f->bytes, sizeof h);
        memcpy(&sync, h.sync, 4);
        fields_ok = sync == MYOEDGE_SYNC_WORD_LE && h.version == MYOEDGE_PROTOCOL_VERSION
            && h.frame_type == f->frame_type && h.n_channels == f->n_channels && h.n_samples == f->n_samples
            && h.sample_bits == f->sample_bits && h.seq == f->seq && h.timestamp_us == f->timestamp_us
            && MYOEDGE_FRAME_SIZE(h.payload_length) == f->length
            && h.payload_length == (f->frame_type == MYOEDGE_FRAME_TYPE_DATA
                ? MYOEDGE_DATA_PAYLOAD_LENGTH(h.n_channels, h.n_samples, h.sample_bits)
                : MYOEDGE_INFO_PAYLOAD_LENGTH(h.n_channels));
        printf("tvframe %u crc %d fields %d samples %d\n", i,
               myoedge_crc32(f->bytes, f->length - MYOEDGE_CRC_SIZE) == le32(f->bytes + f->length - 4),
               fields_ok, f->samples == NULL || samples_match(f));
    }

    if (argc < 2 || (frames = fopen(argv[1], "rb")) == NULL) return 3;
    while (fread(&len, 4, 1, frames) == 1 && len <= sizeof buf && fread(buf, 1, len, frames) == len) {
        myoedge_frame_header_t h;
        memcpy(&h, buf, sizeof h);
        printf("frame %08lx %08lx %lu %u %u %u %u %llu\n", (unsigned long)myoedge_crc32(buf, len - 4),
               (unsigned long)le32(buf + len - 4), (unsigned long)h.seq, h.frame_type, h.n_channels,
               h.n_samples, h.payload_length, (unsigned long long)h.timestamp_us);
    }
    fclose(frames);

    for (i = 0; i < MYOEDGE_TV_ENV_LENGTH; i++)
        x[i] = (q31_t)((uint32_t)myoedge_tv_env_counts[i] << MYOEDGE_ENV_INPUT_SHIFT);
    split = 37;  /* two blocks: the state must carry over */
    df1_q31(myoedge_env_band_coeffs, MYOEDGE_ENV_BAND_NUM_STAGES, MYOEDGE_ENV_BAND_POST_SHIFT, band_state,
            x, band, split);
    df1_q31(myoedge_env_band_coeffs, MYOEDGE_ENV_BAND_NUM_STAGES, MYOEDGE_ENV_BAND_POST_SHIFT, band_state,
            x + split, band + split, MYOEDGE_TV_ENV_LENGTH - split);
    for (i = 0; i < MYOEDGE_TV_ENV_LENGTH; i++) {
        q31_t v = band[i];
        band_bad += v != myoedge_tv_env_band[i];
        v = v == INT32_MIN ? INT32_MAX : (v < 0 ? -v : v);
        env[i] = v >> MYOEDGE_ENV_RECTIFIER_SHIFT;
    }
    split = 101;
    df1_32x64_q31(myoedge_env_lowpass_coeffs, MYOEDGE_ENV_LOWPASS_NUM_STAGES, MYOEDGE_ENV_LOWPASS_POST_SHIFT,
                  low_state, env, env, split);
    df1_32x64_q31(myoedge_env_lowpass_coeffs, MYOEDGE_ENV_LOWPASS_NUM_STAGES, MYOEDGE_ENV_LOWPASS_POST_SHIFT,
                  low_state, env + split, env + split, MYOEDGE_TV_ENV_LENGTH - split);
    for (i = 0; i < MYOEDGE_TV_ENV_LENGTH; i++)
        env_bad += env[i] != myoedge_tv_env_output[i];
    printf("filter %u %u %u %d\n", (unsigned)MYOEDGE_TV_ENV_LENGTH, band_bad, env_bad,
           strcmp(MYOEDGE_TV_ENVELOPE_HASH, MYOEDGE_ENVELOPE_HASH) == 0);
    return 0;
}
