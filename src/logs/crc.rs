//! Gzip's CRC-32, checked inside the structural scan instead of in a pass of its own.
//!
//! libdeflate checks a gzip member's CRC-32 in a second pass over the decompressed data, after
//! inflating it: for CloudTrail files that pass costs about 7% of the decompression. The
//! structural scan ([`super::structure`]) already loads every 64-byte block of the `Records`
//! array into a vector register, so on CPUs with VPCLMULQDQ it folds the CRC there as well
//! ([`Fold`]), and the data is read once. What the fold leaves (the bytes before the array and
//! after the last block it took) is added with libdeflate's own CRC-32 ([`crc32`]), and the
//! sum is compared with the gzip trailer before any record of the file is used.
//!
//! The fold is the standard one for a reflected CRC (Intel's "Fast CRC Computation Using
//! PCLMULQDQ"): each 128-bit lane of the running state is multiplied forward by 1024 bits and
//! added (XOR) to the lane 128 bytes on, which keeps the CRC of "state, then the rest" equal to
//! the CRC of the whole. The state is finally handed to libdeflate as 128 bytes of message.
//! Tests hold it to libdeflate's CRC-32 for every length and alignment.

/// Gzip's CRC-32 of `data`, continuing from `crc` (0 to start), as libdeflate computes it.
pub fn crc32(crc: u32, data: &[u8]) -> u32 {
    // SAFETY: libdeflate reads exactly `data.len()` bytes from a live slice and keeps nothing.
    unsafe { libdeflate_sys::libdeflate_crc32(crc, data.as_ptr().cast(), data.len()) }
}

#[cfg(target_arch = "x86_64")]
pub use fold::Fold;

#[cfg(target_arch = "x86_64")]
mod fold {
    use std::arch::x86_64::{
        __m512i, _mm512_clmulepi64_epi128, _mm512_loadu_si512, _mm512_set_epi64,
        _mm512_setzero_si512, _mm512_storeu_si512, _mm512_ternarylogic_epi64, _mm512_xor_si512,
    };

    /// The multipliers that carry a 128-bit lane 1024 bits forward: x^1055 and x^991 modulo
    /// the CRC-32 polynomial, bit-reflected (for the lane's first and second 64 bits).
    const FIRST: i64 = 0x33ff_f533;
    const SECOND: i64 = 0x910e_eec1;

    /// The running state of a CRC-32 folded 128 bytes at a time.
    #[derive(Clone, Copy)]
    pub struct Fold {
        /// The state: 128 bytes of message with the CRC of everything taken so far (zeros
        /// before the first step, which a register of zero takes without change).
        state: [__m512i; 2],
        /// What the next step adds to its first block besides the data: the CRC before the
        /// fold, then zeros. Adding it to the data, instead of testing for the first step, keeps
        /// the step without a branch.
        pending: __m512i,
        /// The multipliers, in every lane.
        k: __m512i,
        /// 128-byte steps taken.
        steps: usize,
    }

    impl Fold {
        /// A fold that continues the CRC-32 `crc` of the bytes before the first step.
        ///
        /// # Safety
        /// The CPU must have AVX-512F and VPCLMULQDQ ([`super::can_fold`]).
        #[inline]
        #[target_feature(enable = "avx512f")]
        pub fn new(crc: u32) -> Fold {
            // The CRC so far enters the message as its first four bytes, XORed in (reflected CRC,
            // the register's complement): the first step adds it to the data.
            let start = i64::from(!crc);
            Fold {
                state: [_mm512_setzero_si512(), _mm512_setzero_si512()],
                pending: _mm512_set_epi64(0, 0, 0, 0, 0, 0, 0, start),
                k: _mm512_set_epi64(SECOND, FIRST, SECOND, FIRST, SECOND, FIRST, SECOND, FIRST),
                steps: 0,
            }
        }

        /// A fold that is never stepped: a placeholder where the CPU cannot fold.
        pub fn idle() -> Fold {
            // SAFETY: all zeros is a valid value of every field (vectors and a count); nothing
            // is computed with it.
            unsafe { std::mem::zeroed() }
        }

        /// Takes the next 128 bytes, as two 64-byte blocks.
        ///
        /// # Safety
        /// The CPU must have AVX-512F and VPCLMULQDQ ([`super::can_fold`]).
        #[inline]
        #[target_feature(enable = "avx512f,vpclmulqdq")]
        pub fn step(&mut self, a: &[u8; 64], b: &[u8; 64]) {
            // SAFETY: each block is 64 readable bytes; the loads have no alignment requirement.
            let (a, b) = unsafe {
                (
                    _mm512_loadu_si512(a.as_ptr().cast()),
                    _mm512_loadu_si512(b.as_ptr().cast()),
                )
            };
            // Carrying the zeros of the state before the first step forward leaves zeros.
            let a = _mm512_xor_si512(a, self.pending);
            self.pending = _mm512_setzero_si512();
            self.state = [self.carry(self.state[0], a), self.carry(self.state[1], b)];
            self.steps += 1;
        }

        /// `lanes` carried 1024 bits forward, plus `next`.
        #[inline]
        #[target_feature(enable = "avx512f,vpclmulqdq")]
        fn carry(&self, lanes: __m512i, next: __m512i) -> __m512i {
            let first = _mm512_clmulepi64_epi128(lanes, self.k, 0x00);
            let second = _mm512_clmulepi64_epi128(lanes, self.k, 0x11);
            // 0x96: a XOR b XOR c.
            _mm512_ternarylogic_epi64(first, second, next, 0x96)
        }

        /// How many bytes the steps took.
        #[inline]
        pub fn bytes(&self) -> usize {
            self.steps * 128
        }

        /// The CRC-32 of the bytes before the fold and of every byte it took.
        ///
        /// # Safety
        /// The CPU must have AVX-512F and VPCLMULQDQ ([`super::can_fold`]).
        #[inline]
        #[target_feature(enable = "avx512f")]
        pub fn finish(&self, before: u32) -> u32 {
            if self.steps == 0 {
                return before;
            }
            let mut message = [0u8; 128];
            let (first, second) = message.split_at_mut(64);
            // SAFETY: each half is 64 writable bytes; the stores have no alignment requirement.
            unsafe {
                _mm512_storeu_si512(first.as_mut_ptr().cast(), self.state[0]);
                _mm512_storeu_si512(second.as_mut_ptr().cast(), self.state[1]);
            }
            // The state stands for the message from its start with the initial CRC XORed in, so
            // its CRC is taken from a register of zero (libdeflate's start value !0).
            super::crc32(!0, &message)
        }
    }
}

/// Whether this CPU can fold the CRC in the scan (AVX-512F and VPCLMULQDQ).
#[cfg(target_arch = "x86_64")]
pub fn can_fold() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("vpclmulqdq")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_fold_gives_libdeflates_crc_for_every_split() {
        if !can_fold() {
            eprintln!("no VPCLMULQDQ on this CPU: the fold is not used, nothing to test");
            return;
        }
        for (seed, len) in [
            (1u64, 0usize),
            (2, 127),
            (3, 128),
            (4, 129),
            (5, 1000),
            (6, 4096),
        ] {
            let bytes = data(len + 300, seed);
            for before in [0usize, 1, 3, 4, 5, 13, 64, 200] {
                let whole = crc32(0, &bytes[..before + len]);
                let (head, body) = bytes[..before + len].split_at(before);
                let start = crc32(0, head);
                // SAFETY: can_fold() checked the features.
                let (folded, taken) = unsafe {
                    let mut fold = Fold::new(start);
                    let (blocks, _) = body.as_chunks::<64>();
                    for pair in blocks.as_chunks::<2>().0 {
                        fold.step(&pair[0], &pair[1]);
                    }
                    (fold.finish(start), fold.bytes())
                };
                assert_eq!(taken, len / 128 * 128);
                assert_eq!(
                    crc32(folded, &body[taken..]),
                    whole,
                    "{len} bytes after {before}"
                );
            }
        }
    }

    #[test]
    fn crc32_is_gzips() {
        // The check value of CRC-32/ISO-HDLC (gzip's).
        assert_eq!(crc32(0, b"123456789"), 0xcbf4_3926);
    }
}
