//! The structural scan of a log file's `Records` array: where each record begins and ends, and
//! whether the array is well formed, without parsing any value.
//!
//! Most of a trail is not KMS, and parsing records only to throw them away costs more than
//! decompressing them. This scan looks at 64 bytes at a time the way simdjson's stage 1 does:
//! SIMD compares give bit masks of quotes, backslashes and brackets; escaped quotes are removed;
//! a prefix XOR of the quotes gives the bytes inside strings. Inside a record, a block whose
//! closing brackets cannot end the record only has its brackets counted; the others are
//! visited bracket by bracket. Each record is handed to the caller as soon as it ends, while it
//! is still in the cache. Where the CPU has VPCLMULQDQ, the scan also folds gzip's CRC-32 of the
//! blocks it loads ([`records_crc`], [`super::crc`]), so that the file is not read again for
//! it. What the scan checks:
//!
//! - strings are closed, and brackets balance;
//! - the array holds only objects, separated by exactly one comma each (whitespace allowed),
//!   with no trailing comma;
//! - the array is closed before the data ends (a truncated file is caught here).
//!
//! What it does not check is the inside of a record the caller does not keep: that a colon
//! follows each key, that numbers are numbers, that a `[` is closed by `]` and not by `}`. A
//! record that is kept is indexed by [`Index`] and walked, which checks that its brackets
//! match, and read in full by the caller, which rejects the file if that record is malformed.
//! CloudTrail writes these files itself and the digest check proves they are unaltered; this
//! scan is there to delimit and count records exactly and to catch truncation and corruption,
//! not to be a JSON validator.

/// Where the structure of an array broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructureError {
    /// Byte offset in the scanned slice.
    pub offset: usize,
    pub reason: &'static str,
}

/// Nesting deeper than this is refused (CloudTrail records nest a handful of levels).
const MAX_DEPTH: usize = 512;

/// The depth of a record's own members: inside the array (1) and the record's braces (2).
const RECORD: usize = 2;

/// How far ahead of the scan its data is asked into the L1 cache. A decompressed file is larger
/// than the core's L2, so its start has gone to L3 by the time the scan reads it; the hardware
/// prefetcher alone left the scan waiting (about 9.5 GB/s over a 3 MB file against 15 GB/s in
/// L1; 12 GB/s with this, measured with 512 B to 4 KB: 1 KB was best).
const PREFETCH: usize = 1024;

/// Why a scan stopped: the array's structure broke, or the caller refused a record.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop<E> {
    Structure(StructureError),
    Record(E),
}

impl<E> From<StructureError> for Stop<E> {
    fn from(e: StructureError) -> Self {
        Stop::Structure(e)
    }
}

/// Scans the JSON array that starts at `array[0]` (which must be `[`), calling
/// `on_record(start, end)` for each element (`array[start..end]` is one `{...}`) as soon as its
/// closing brace is seen, while its bytes are still in the cache. Returns the offset just past
/// the array's closing `]`. A record handed over is well delimited, but whether the rest of the
/// array is well formed is known only when this returns `Ok`.
pub fn records<E>(
    array: &[u8],
    on_record: impl FnMut(usize, usize) -> Result<(), E>,
) -> Result<usize, Stop<E>> {
    scan_at_level(array, None, on_record).map(|(end, _)| end)
}

/// [`records`], also continuing gzip's CRC-32 from `before` (that of the bytes before the
/// array), when given, over the array, where the CPU can fold it into the scan
/// ([`super::crc`]). Returns the end of the array, and how far the CRC got.
pub fn records_crc<E>(
    array: &[u8],
    before: Option<u32>,
    on_record: impl FnMut(usize, usize) -> Result<(), E>,
) -> Result<(usize, Folded), Stop<E>> {
    scan_at_level(array, before, on_record)
}

/// How far a scan took gzip's CRC-32: `crc` covers the bytes before the array and its first
/// `through` bytes (none where the CPU cannot fold it; the caller adds the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Folded {
    pub crc: u32,
    pub through: usize,
}

fn scan_at_level<E>(
    array: &[u8],
    crc: Option<u32>,
    on_record: impl FnMut(usize, usize) -> Result<(), E>,
) -> Result<(usize, Folded), Stop<E>> {
    #[cfg(target_arch = "x86_64")]
    match level() {
        // SAFETY: the CPU has the features each function is compiled for, checked by `level`.
        FOLD => return unsafe { records_fold(array, crc, on_record) },
        AVX512 => return unsafe { records_avx512(array, crc, on_record) },
        AVX2 => return unsafe { records_avx2(array, crc, on_record) },
        _ => {}
    }
    records_with::<BASE, E>(array, crc, on_record)
}

/// Defines `$avx2` and `$avx512`: copies of the `#[inline(always)]` function `$with::<LEVEL>`
/// compiled with the target features of that level, so that its body is vectorised for it.
/// Calling one is unsafe: the CPU must have the features ([`level`] says which it has).
macro_rules! level_copies {
    ($avx2:ident, $avx512:ident = $($with:ident)::+ <$($g:ident),*> ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        #[doc = concat!("`", stringify!($($with)::+), "` compiled for AVX2, carry-less multiplication, POPCNT and BMI1 (every CPU with AVX2 has the other three).")]
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,pclmulqdq,popcnt,bmi1")]
        fn $avx2<$($g),*>($($arg: $ty),*) -> $ret {
            $($with)::+::<AVX2, $($g),*>($($arg),*)
        }

        #[doc = concat!("`", stringify!($($with)::+), "` compiled for AVX-512BW as well.")]
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512bw,avx2,pclmulqdq,popcnt,bmi1")]
        fn $avx512<$($g),*>($($arg: $ty),*) -> $ret {
            $($with)::+::<AVX512, $($g),*>($($arg),*)
        }
    };
}

level_copies!(records_avx2, records_avx512 = records_with<E>(
    array: &[u8],
    crc: Option<u32>,
    on_record: impl FnMut(usize, usize) -> Result<(), E>
) -> Result<(usize, Folded), Stop<E>>);

/// `records_with` compiled for AVX-512BW with VPCLMULQDQ, which folds the CRC in the scan.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx2,pclmulqdq,popcnt,bmi1,vpclmulqdq")]
fn records_fold<E>(
    array: &[u8],
    crc: Option<u32>,
    on_record: impl FnMut(usize, usize) -> Result<(), E>,
) -> Result<(usize, Folded), Stop<E>> {
    records_with::<FOLD, E>(array, crc, on_record)
}

/// The CRC-32 a scan carries: the CRC before the array, and the fold where the level has one.
/// At that level the fold runs whether or not a CRC was asked for, so that the quick loop
/// takes each step without a test.
#[derive(Clone, Copy)]
struct Crc {
    before: Option<u32>,
    #[cfg(target_arch = "x86_64")]
    fold: super::crc::Fold,
}

impl Crc {
    #[inline(always)]
    fn new<const LEVEL: u8>(before: Option<u32>) -> Crc {
        Crc {
            before,
            #[cfg(target_arch = "x86_64")]
            fold: if LEVEL == FOLD {
                // SAFETY: LEVEL is FOLD only in the copy compiled for, and called after the
                // CPU was found to have, AVX-512F and VPCLMULQDQ.
                unsafe { super::crc::Fold::new(before.unwrap_or(0)) }
            } else {
                super::crc::Fold::idle()
            },
        }
    }

    /// Takes the next two blocks.
    #[inline(always)]
    fn step<const LEVEL: u8>(&mut self, _a: &[u8; 64], _b: &[u8; 64]) {
        #[cfg(target_arch = "x86_64")]
        if LEVEL == FOLD {
            // SAFETY: as in `new`.
            unsafe { self.fold.step(_a, _b) }
        }
    }

    #[inline(always)]
    fn done<const LEVEL: u8>(&self) -> Folded {
        #[cfg(target_arch = "x86_64")]
        if LEVEL == FOLD
            && let Some(before) = self.before
        {
            return Folded {
                // SAFETY: as in `new`.
                crc: unsafe { self.fold.finish(before) },
                through: self.fold.bytes(),
            };
        }
        Folded {
            crc: self.before.unwrap_or(0),
            through: 0,
        }
    }
}

/// The scan, with the SIMD of `LEVEL` (see [`level`]).
#[inline(always)]
fn records_with<const LEVEL: u8, E>(
    array: &[u8],
    crc: Option<u32>,
    mut on_record: impl FnMut(usize, usize) -> Result<(), E>,
) -> Result<(usize, Folded), Stop<E>> {
    if array.first() != Some(&b'[') {
        return Err(StructureError {
            offset: 0,
            reason: "expected the start of the Records array",
        }
        .into());
    }
    // `scan` is only ever used inline, so that its state stays in registers; `walk`, which the
    // out-of-line boundary code takes, is apart from it.
    let mut scan = Scan {
        depth: 0,
        strings: Strings::default(),
    };
    let mut walk = Walk {
        depth: 0,
        records: 0,
        record_start: 0,
        prev_end: 0,
    };
    let mut crc = Crc::new::<LEVEL>(crc);
    // Two blocks at a time: most pairs hold no boundary, and are counted with one test in the
    // quick loop (`skim`); a pair that may hold one is visited here.
    let (blocks, rest) = array.as_chunks::<64>();
    let (pairs, single) = blocks.as_chunks::<2>();
    let mut from = 0;
    while let Some(pair) = scan.skim::<LEVEL, E>(array, pairs, from, &mut crc)? {
        let pos = pair.at * 128;
        if !pair.first_counted
            && let Some(end) = scan.walk(
                &mut walk,
                array,
                pos,
                pair.open_a,
                pair.close_a,
                &mut on_record,
            )?
        {
            return Ok((end, crc.done::<LEVEL>()));
        }
        if let Some(end) = scan.visit(
            &mut walk,
            array,
            pos + 64,
            pair.open_b,
            pair.close_b,
            &mut on_record,
        )? {
            return Ok((end, crc.done::<LEVEL>()));
        }
        from = pair.at + 1;
    }
    let done = pairs.len() * 128;
    for (k, block) in single.iter().enumerate() {
        if let Some(end) =
            scan.block::<LEVEL, E>(&mut walk, array, done + k * 64, block, &mut on_record)?
        {
            return Ok((end, crc.done::<LEVEL>()));
        }
    }
    if !rest.is_empty() {
        // The last, short block, padded with spaces.
        let mut tail = [b' '; 64];
        tail[..rest.len()].copy_from_slice(rest);
        let pos = array.len() - rest.len();
        if let Some(end) = scan.block::<LEVEL, E>(&mut walk, array, pos, &tail, &mut on_record)? {
            return Ok((end, crc.done::<LEVEL>()));
        }
    }
    Err(StructureError {
        offset: array.len(),
        reason: if scan.strings.in_string {
            "the data ends inside a string (truncated?)"
        } else {
            "the data ends before the Records array is closed (truncated?)"
        },
    }
    .into())
}

/// The scan's state between blocks.
struct Scan {
    /// Brackets open, kept here rather than in `walk` between visits so that it stays in a
    /// register.
    depth: usize,
    strings: Strings,
}

impl Scan {
    /// Takes the block at `pos`; returns the end of the array when the block closes it.
    #[inline(always)]
    fn block<const LEVEL: u8, E>(
        &mut self,
        walk: &mut Walk,
        array: &[u8],
        pos: usize,
        block: &[u8; 64],
        on_record: &mut impl FnMut(usize, usize) -> Result<(), E>,
    ) -> Result<Option<usize>, Stop<E>> {
        let (opens, closes) = self.brackets::<LEVEL>(block);
        self.visit(walk, array, pos, opens, closes, on_record)
    }

    /// The opening and closing brackets outside strings of two blocks (a, then b).
    #[inline(always)]
    fn brackets_pair<const LEVEL: u8>(
        &mut self,
        a: &[u8; 64],
        b: &[u8; 64],
    ) -> (u64, u64, u64, u64) {
        let [ma, mb] = self.strings.classify_pair::<LEVEL>(a, b);
        (
            ma.open & !ma.in_string,
            ma.close & !ma.in_string,
            mb.open & !mb.in_string,
            mb.close & !mb.in_string,
        )
    }

    /// The block's opening and closing brackets outside strings.
    #[inline(always)]
    fn brackets<const LEVEL: u8>(&mut self, block: &[u8; 64]) -> (u64, u64) {
        let masks = self.strings.classify::<LEVEL>(block);
        (
            masks.open & !masks.in_string,
            masks.close & !masks.in_string,
        )
    }

    /// Inside a record, brackets (`opening` and `closing` of them, from `pos` on) whose closing
    /// ones cannot bring the depth back to the record's own level hold no boundary: they are
    /// counted, not visited. False, counting nothing, when they could and must be visited.
    #[inline(always)]
    fn count(&mut self, pos: usize, opening: u32, closing: u32) -> Result<bool, usize> {
        let closing = closing as usize;
        if self.depth < RECORD + closing {
            return Ok(false);
        }
        self.depth = self.depth - closing + opening as usize;
        if self.depth > MAX_DEPTH {
            return Err(pos);
        }
        Ok(true)
    }

    /// Whether no closing bracket of a block (`opens`, `closes`) brings the depth back below
    /// the record's own level: then the block holds no boundary, and its brackets are counted.
    /// Exact where [`Scan::count`] is quick: each closing bracket's depth is counted from the
    /// masks, without a branch on each bracket's kind.
    #[inline(always)]
    fn inside(&mut self, opens: u64, closes: u64) -> bool {
        if self.depth < RECORD {
            return false;
        }
        let mut rest = closes;
        while rest != 0 {
            // This closing bracket and every bracket before it.
            let upto = rest ^ (rest - 1);
            // No underflow: the depth before this bracket is at least RECORD (checked for the
            // previous ones), and it takes one away.
            let after = self.depth + (opens & upto).count_ones() as usize
                - (closes & upto).count_ones() as usize;
            if after < RECORD {
                return false;
            }
            rest &= rest - 1;
        }
        let depth = self.depth + opens.count_ones() as usize - closes.count_ones() as usize;
        // Too deep: the walk reports it at the bracket itself.
        if depth > MAX_DEPTH {
            return false;
        }
        self.depth = depth;
        true
    }

    /// The quick loop: takes the pairs of blocks from `pairs[from]` on while their brackets
    /// can be counted, and folds the CRC over them. Returns the first pair that must be walked
    /// (its CRC taken, its first block's brackets counted when `first_counted`), or `None` at
    /// the end of the pairs.
    ///
    /// The loop runs out of line ([`skim_copy`]) and calls nothing, so that its state (the
    /// scan's and the fold's, copied into locals) stays in registers. Inlined into the scan,
    /// whose walk calls out, it kept that state in memory, and took about 10% longer.
    #[inline(always)]
    fn skim<const LEVEL: u8, E>(
        &mut self,
        array: &[u8],
        pairs: &[[[u8; 64]; 2]],
        from: usize,
        crc: &mut Crc,
    ) -> Result<Option<Pair>, Stop<E>> {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: LEVEL is the level of the copy of the scan this is inlined into, which is
        // called only where the CPU has its features (see `level`).
        let skimmed = unsafe {
            match LEVEL {
                FOLD => skim_fold(self, array, pairs, from, crc),
                AVX512 => skim_avx512(self, array, pairs, from, crc),
                AVX2 => skim_avx2(self, array, pairs, from, crc),
                _ => self.skim_with::<BASE>(array, pairs, from, crc),
            }
        };
        #[cfg(not(target_arch = "x86_64"))]
        let skimmed = self.skim_with::<BASE>(array, pairs, from, crc);
        match skimmed {
            Skimmed::Pair(pair) => Ok(Some(pair)),
            Skimmed::End => Ok(None),
            Skimmed::TooDeep(at) => Err(too_deep(at)),
        }
    }

    /// [`Scan::skim`] with the SIMD of `LEVEL`.
    #[inline(always)]
    fn skim_with<const LEVEL: u8>(
        &mut self,
        array: &[u8],
        pairs: &[[[u8; 64]; 2]],
        from: usize,
        crc: &mut Crc,
    ) -> Skimmed {
        let mut scan = Scan {
            depth: self.depth,
            strings: self.strings,
        };
        let mut fold = *crc;
        let mut out = Skimmed::End;
        for (k, [a, b]) in pairs.iter().enumerate().skip(from) {
            let pos = k * 128;
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a prefetch is a hint that never faults, whatever the address; the pointers
            // are only computed (wrapping), never read.
            unsafe {
                use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
                let ahead = array.as_ptr().wrapping_add(pos + PREFETCH);
                _mm_prefetch(ahead.cast(), _MM_HINT_T0);
                _mm_prefetch(ahead.wrapping_add(64).cast(), _MM_HINT_T0);
            };
            fold.step::<LEVEL>(a, b);
            let (open_a, close_a, open_b, close_b) = scan.brackets_pair::<LEVEL>(a, b);
            let opening = open_a.count_ones() + open_b.count_ones();
            let closing = close_a.count_ones() + close_b.count_ones();
            let first_counted = match scan.count(pos, opening, closing) {
                Ok(true) => continue,
                Ok(false) => scan.inside(open_a, close_a),
                Err(at) => {
                    out = Skimmed::TooDeep(at);
                    break;
                }
            };
            if first_counted && scan.inside(open_b, close_b) {
                continue;
            }
            out = Skimmed::Pair(Pair {
                at: k,
                first_counted,
                open_a,
                close_a,
                open_b,
                close_b,
            });
            break;
        }
        *self = scan;
        *crc = fold;
        out
    }

    /// Takes the brackets of the block at `pos`; returns the end of the array when one closes
    /// it.
    #[inline(always)]
    fn visit<E>(
        &mut self,
        walk: &mut Walk,
        array: &[u8],
        pos: usize,
        opens: u64,
        closes: u64,
        on_record: &mut impl FnMut(usize, usize) -> Result<(), E>,
    ) -> Result<Option<usize>, Stop<E>> {
        if self
            .count(pos, opens.count_ones(), closes.count_ones())
            .map_err(too_deep)?
            || self.inside(opens, closes)
        {
            return Ok(None);
        }
        self.walk(walk, array, pos, opens, closes, on_record)
    }

    /// Walks the brackets of the block at `pos` one by one; returns the end of the array when
    /// one closes it.
    #[inline(always)]
    fn walk<E>(
        &mut self,
        walk: &mut Walk,
        array: &[u8],
        pos: usize,
        opens: u64,
        closes: u64,
        on_record: &mut impl FnMut(usize, usize) -> Result<(), E>,
    ) -> Result<Option<usize>, Stop<E>> {
        walk.depth = self.depth;
        let mut brackets = opens | closes;
        while brackets != 0 {
            let i = brackets.trailing_zeros() as usize;
            brackets &= brackets - 1;
            let opening = opens & (1 << i) != 0;
            if let Some(end) = walk.bracket(array, pos + i, opening, on_record)? {
                return Ok(Some(end));
            }
        }
        self.depth = walk.depth;
        Ok(None)
    }
}

/// Where the quick loop stopped.
enum Skimmed {
    Pair(Pair),
    End,
    TooDeep(usize),
}

/// Defines `$name`: the quick loop of `$level` out of line, compiled with that level's
/// features. The features are on an inner function: the outer one, compiled without them,
/// cannot have it inlined, so the loop stays a function of its own (an `#[inline(never)]`
/// function with the features was still inlined into the scan). Calling `$name` is unsafe: the
/// CPU must have the features ([`level`] says which it has).
macro_rules! skim_copy {
    ($name:ident, $level:ident, $features:literal) => {
        #[cfg(target_arch = "x86_64")]
        #[inline(never)]
        unsafe fn $name(
            scan: &mut Scan,
            array: &[u8],
            pairs: &[[[u8; 64]; 2]],
            from: usize,
            crc: &mut Crc,
        ) -> Skimmed {
            #[target_feature(enable = $features)]
            fn with(
                scan: &mut Scan,
                array: &[u8],
                pairs: &[[[u8; 64]; 2]],
                from: usize,
                crc: &mut Crc,
            ) -> Skimmed {
                scan.skim_with::<$level>(array, pairs, from, crc)
            }
            unsafe { with(scan, array, pairs, from, crc) }
        }
    };
}

skim_copy!(skim_avx2, AVX2, "avx2,pclmulqdq,popcnt,bmi1");
skim_copy!(
    skim_avx512,
    AVX512,
    "avx512f,avx512bw,avx2,pclmulqdq,popcnt,bmi1"
);
skim_copy!(
    skim_fold,
    FOLD,
    "avx512f,avx512bw,avx2,pclmulqdq,popcnt,bmi1,vpclmulqdq"
);

/// A pair of blocks the quick loop could not count: which, and their brackets.
struct Pair {
    /// The pair's index.
    at: usize,
    /// Whether the first block's brackets were counted, and only the second must be visited.
    first_counted: bool,
    open_a: u64,
    close_a: u64,
    open_b: u64,
    close_b: u64,
}

fn too_deep<E>(at: usize) -> Stop<E> {
    Stop::Structure(StructureError {
        offset: at,
        reason: "nested too deeply",
    })
}

/// The walk's state between brackets.
struct Walk {
    /// Brackets open: 1 inside the array, 2 inside a record's own braces.
    depth: usize,
    /// Records handed over so far.
    records: usize,
    record_start: usize,
    /// Just past the previous element (or the array's `[`).
    prev_end: usize,
}

impl Walk {
    /// Takes the bracket at `at`; returns the end of the array when it closes the array.
    #[inline(always)]
    fn bracket<E>(
        &mut self,
        array: &[u8],
        at: usize,
        opening: bool,
        on_record: &mut impl FnMut(usize, usize) -> Result<(), E>,
    ) -> Result<Option<usize>, Stop<E>> {
        // Inside a record, which is where nearly every bracket is.
        if self.depth > RECORD || (self.depth == RECORD && opening) {
            if opening {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(too_deep(at));
                }
            } else {
                self.depth -= 1;
            }
            return Ok(None);
        }
        self.boundary(array, at, opening, on_record)
    }

    /// A bracket that opens or closes the array or a record.
    fn boundary<E>(
        &mut self,
        array: &[u8],
        at: usize,
        opening: bool,
        on_record: &mut impl FnMut(usize, usize) -> Result<(), E>,
    ) -> Result<Option<usize>, Stop<E>> {
        let err = |reason| Err(Stop::Structure(StructureError { offset: at, reason }));
        // `{` and `}` have bit 5 set, `[` and `]` not.
        let brace = array[at] & 0x20 != 0;
        match (self.depth, opening) {
            (0, true) if at == 0 && !brace => self.prev_end = 1,
            (0, _) => return err("data after the end of the Records array"),
            (1, true) if !brace => return err("an element of Records is not an object"),
            (1, true) => {
                self.gap(array, at, self.records > 0)?;
                self.record_start = at;
            }
            (1, false) if brace => {
                return err("a closing bracket does not match its opening bracket");
            }
            (1, false) => {
                self.gap(array, at, false)?;
                return Ok(Some(at + 1));
            }
            (_, _) if !brace => {
                return err("a closing bracket does not match its opening bracket");
            }
            (_, _) => {
                self.records += 1;
                on_record(self.record_start, at + 1).map_err(Stop::Record)?;
                self.prev_end = at + 1;
                self.depth -= 1;
                return Ok(None);
            }
        }
        self.depth += 1;
        Ok(None)
    }

    /// Checks what lies between the previous element and `at`: whitespace and, between two
    /// elements, exactly one comma.
    fn gap(&self, array: &[u8], at: usize, comma: bool) -> Result<(), StructureError> {
        if separated(array, self.prev_end, at, b',', usize::from(comma)) {
            return Ok(());
        }
        let between = &array[self.prev_end..at];
        let clean = between
            .iter()
            .all(|&b| b == b',' || b.is_ascii_whitespace());
        let offset = self.prev_end
            + between
                .iter()
                .position(|&b| !(b == b',' || b.is_ascii_whitespace()))
                .unwrap_or(0);
        Err(StructureError {
            offset,
            reason: if !clean {
                "an element of Records is not an object, or a comma is missing"
            } else if comma {
                "records are not separated by exactly one comma"
            } else {
                "a comma before the end of the Records array or before its first record"
            },
        })
    }
}

/// Whether `raw[from..to]` is whitespace around exactly `want` (0 or 1) separators `sep`
/// (between the records of the array here, between members and elements in `extract`).
#[inline]
pub(super) fn separated(raw: &[u8], from: usize, to: usize, sep: u8, want: usize) -> bool {
    match raw.get(from..to) {
        // The usual case: nothing, or the separator alone.
        Some([]) => want == 0,
        Some([b]) if *b == sep => want == 1,
        Some(between) => {
            between.iter().all(|&b| b == sep || b.is_ascii_whitespace())
                && between.iter().filter(|&&b| b == sep).count() == want
        }
        None => false,
    }
}

/// The structural index of one record: per 64-byte block, a bit mask of its unescaped quotes
/// and one of its brackets outside strings. Built only for records that are read (a few per
/// hundred), from the same block classifier as the scan. [`Index::tokens`] walks its quotes and
/// brackets in order, and [`Index::close_of`] finds a container's closing bracket. Between them
/// (the walk in `extract` takes the brackets of the values it reads, `close_of` checks those of
/// the values it skips), every bracket of a kept record is checked to nest and match, which the
/// scan of the whole array leaves to them.
#[derive(Debug, Default)]
pub struct Index {
    /// Per block: (unescaped quotes, brackets outside strings).
    blocks: Vec<(u64, u64)>,
    /// Whether the record holds a backslash anywhere.
    pub escapes: bool,
    /// Whether every byte of the record is ASCII (then it is UTF-8 without a further check).
    pub ascii: bool,
}

level_copies!(build_avx2, build_avx512 = Index::build_with<>(index: &mut Index, raw: &[u8]) -> bool);

/// Containers nested deeper than this inside a skipped value are left to the full parser.
const SKIP_DEPTH: u32 = 64;

impl Index {
    /// Indexes `raw`, a record [`records`] delimited. False when it ends inside a string.
    pub fn build(&mut self, raw: &[u8]) -> bool {
        #[cfg(target_arch = "x86_64")]
        match level() {
            // SAFETY: the CPU has the features each function is compiled for, checked by
            // `level`.
            AVX512 | FOLD => return unsafe { build_avx512(self, raw) },
            AVX2 => return unsafe { build_avx2(self, raw) },
            _ => {}
        }
        self.build_with::<BASE>(raw)
    }

    #[inline(always)]
    fn build_with<const LEVEL: u8>(&mut self, raw: &[u8]) -> bool {
        self.blocks.clear();
        self.blocks.reserve(raw.len().div_ceil(64));
        let (mut backslash, mut high) = (0u64, 0u64);
        let mut strings = Strings::default();
        let mut take = |m: Classified| {
            backslash |= m.backslash;
            high |= m.high;
            (m.quote, (m.open | m.close) & !m.in_string)
        };
        let (blocks, rest) = raw.as_chunks::<64>();
        let (pairs, single) = blocks.as_chunks::<2>();
        for [a, b] in pairs {
            let [ma, mb] = strings.classify_pair::<LEVEL>(a, b);
            self.blocks.extend([take(ma), take(mb)]);
        }
        for block in single {
            self.blocks.push(take(strings.classify::<LEVEL>(block)));
        }
        if !rest.is_empty() {
            // The last, short block, padded with spaces.
            let mut tail = [b' '; 64];
            tail[..rest.len()].copy_from_slice(rest);
            self.blocks.push(take(strings.classify::<LEVEL>(&tail)));
        }
        self.escapes = backslash != 0;
        self.ascii = high == 0;
        !strings.in_string
    }

    /// The record's quotes and brackets from `from` on, in order.
    pub fn tokens(&self, from: usize) -> Tokens<'_> {
        let mut tokens = Tokens {
            blocks: &self.blocks,
            block: 0,
            bits: 0,
        };
        tokens.seek(from);
        tokens
    }

    /// The closing bracket of the container `raw[at]` opens, once every bracket up to it has been
    /// checked to match its kind (`None` when one does not, or when they nest deeper than
    /// `SKIP_DEPTH`, 64). `raw` is the record this index was built from.
    pub fn close_of(&self, raw: &[u8], at: usize) -> Option<usize> {
        // The kinds of the brackets open, one bit each (1 for a brace), innermost lowest.
        let mut kinds = 0u64;
        let mut depth = 0u32;
        let mut block = at / 64;
        let mut bits = self.blocks.get(block)?.1 & (!0u64 << (at % 64));
        loop {
            while bits != 0 {
                let p = block * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let b = *raw.get(p)?;
                // `{` and `}` have bit 5 set, `[` and `]` not; `{` and `[` have bit 1 set,
                // `}` and `]` not.
                let brace = u64::from(b & 0x20 != 0);
                if b & 0x02 != 0 {
                    if depth == SKIP_DEPTH {
                        return None;
                    }
                    kinds = kinds << 1 | brace;
                    depth += 1;
                } else {
                    if depth == 0 || kinds & 1 != brace {
                        return None;
                    }
                    kinds >>= 1;
                    depth -= 1;
                    if depth == 0 {
                        return Some(p);
                    }
                }
            }
            block += 1;
            bits = self.blocks.get(block)?.1;
        }
    }
}

/// A cursor over a record's structural characters (its unescaped quotes, and its brackets
/// outside strings), in order. The next one is a bit operation away, so a walk over the record
/// does not wait on a search for each string's end.
pub struct Tokens<'i> {
    blocks: &'i [(u64, u64)],
    block: usize,
    /// The current block's characters not yet taken.
    bits: u64,
}

impl Tokens<'_> {
    /// The position of the next structural character.
    #[inline(always)]
    #[allow(clippy::should_implement_trait)] // a cursor that also seeks, not an iterator
    pub fn next(&mut self) -> Option<usize> {
        while self.bits == 0 {
            self.block += 1;
            let &(quotes, brackets) = self.blocks.get(self.block)?;
            self.bits = quotes | brackets;
        }
        let i = self.bits.trailing_zeros() as usize;
        self.bits &= self.bits - 1;
        Some(self.block * 64 + i)
    }

    /// Moves the cursor so that [`Tokens::next`] gives the first character at or after `pos`.
    #[inline]
    pub fn seek(&mut self, pos: usize) {
        self.block = pos / 64;
        self.bits = self
            .blocks
            .get(self.block)
            .map_or(0, |&(quotes, brackets)| {
                (quotes | brackets) & (!0u64 << (pos % 64))
            });
    }
}

/// The SIMD a scan uses: SSE2 (the x86_64 baseline, or plain Rust elsewhere), AVX2 with PCLMUL,
/// or AVX-512BW (64 bytes per compare).
const BASE: u8 = 0;
const AVX2: u8 = 1;
const AVX512: u8 = 2;
/// AVX-512BW with VPCLMULQDQ: the scan also folds gzip's CRC-32.
const FOLD: u8 = 3;

/// The best level this CPU has (every CPU with AVX2 also has PCLMUL, POPCNT and BMI1; they are
/// checked all the same).
#[cfg(target_arch = "x86_64")]
fn level() -> u8 {
    use std::arch::is_x86_feature_detected as has;
    if !(has!("avx2") && has!("pclmulqdq") && has!("popcnt") && has!("bmi1")) {
        BASE
    } else if has!("avx512f") && has!("avx512bw") {
        if super::crc::can_fold() { FOLD } else { AVX512 }
    } else {
        AVX2
    }
}

/// What carries from one block to the next: an escaping backslash at its end, and whether it
/// ends inside a string.
#[derive(Default, Clone, Copy)]
struct Strings {
    escape: bool,
    in_string: bool,
}

/// One block's bytes of interest: unescaped quotes, the bytes inside strings (the opening quote
/// included, the closing one not), and brackets (inside strings or not).
struct Classified {
    backslash: u64,
    /// Bytes above 0x7f (not ASCII).
    high: u64,
    quote: u64,
    in_string: u64,
    open: u64,
    close: u64,
}

impl Strings {
    /// Classifies the next two blocks: [`Strings::classify`] twice, with one test for the
    /// usual case of no backslash in either.
    #[inline(always)]
    fn classify_pair<const LEVEL: u8>(&mut self, a: &[u8; 64], b: &[u8; 64]) -> [Classified; 2] {
        #[cfg(target_arch = "x86_64")]
        if LEVEL > BASE {
            // SAFETY: as in `classify`.
            unsafe {
                let (ma, mb) = if LEVEL >= AVX512 {
                    (masks_avx512(a), masks_avx512(b))
                } else {
                    (masks_avx2(a), masks_avx2(b))
                };
                let (qa, qb) = if !self.escape && (ma.backslash | mb.backslash) == 0 {
                    (ma.quote, mb.quote)
                } else {
                    let qa = ma.quote & !escaped(ma.backslash, &mut self.escape);
                    (qa, mb.quote & !escaped(mb.backslash, &mut self.escape))
                };
                let ia = prefix_xor_clmul(qa) ^ if self.in_string { !0 } else { 0 };
                let ib = prefix_xor_clmul(qb) ^ (((ia as i64) >> 63) as u64);
                self.in_string = ib >> 63 != 0;
                return [
                    Classified {
                        backslash: ma.backslash,
                        high: ma.high,
                        quote: qa,
                        in_string: ia,
                        open: ma.open,
                        close: ma.close,
                    },
                    Classified {
                        backslash: mb.backslash,
                        high: mb.high,
                        quote: qb,
                        in_string: ib,
                        open: mb.open,
                        close: mb.close,
                    },
                ];
            }
        }
        [self.classify::<LEVEL>(a), self.classify::<LEVEL>(b)]
    }

    /// Classifies the next block with the SIMD of `LEVEL`.
    #[inline(always)]
    fn classify<const LEVEL: u8>(&mut self, block: &[u8; 64]) -> Classified {
        #[cfg(target_arch = "x86_64")]
        let (m, quote, in_string) = if LEVEL > BASE {
            // SAFETY: LEVEL is above BASE only in functions compiled for, and called after the
            // CPU was found to have, the features of that level (see `level`).
            unsafe {
                let m = if LEVEL >= AVX512 {
                    masks_avx512(block)
                } else {
                    masks_avx2(block)
                };
                let quote = m.quote & !escaped(m.backslash, &mut self.escape);
                (m, quote, prefix_xor_clmul(quote))
            }
        } else {
            let m = masks(block);
            let quote = m.quote & !escaped(m.backslash, &mut self.escape);
            (m, quote, prefix_xor(quote))
        };
        #[cfg(not(target_arch = "x86_64"))]
        let (m, quote, in_string) = {
            let m = masks(block);
            let quote = m.quote & !escaped(m.backslash, &mut self.escape);
            (m, quote, prefix_xor(quote))
        };
        let in_string = in_string ^ if self.in_string { !0 } else { 0 };
        self.in_string = in_string >> 63 != 0;
        Classified {
            backslash: m.backslash,
            high: m.high,
            quote,
            in_string,
            open: m.open,
            close: m.close,
        }
    }
}

/// Bit masks of one 64-byte block: bit `i` is set when byte `i` is the character.
struct Masks {
    backslash: u64,
    quote: u64,
    /// Bytes above 0x7f (not ASCII).
    high: u64,
    /// `{` and `[`.
    open: u64,
    /// `}` and `]`.
    close: u64,
}

#[cfg(target_arch = "x86_64")]
fn masks(block: &[u8; 64]) -> Masks {
    // SAFETY: SSE2 is part of the x86_64 baseline, so the target feature is always present.
    unsafe { masks_sse2(block) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn masks_sse2(block: &[u8; 64]) -> Masks {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let backslash = _mm_set1_epi8(b'\\' as i8);
    let quote = _mm_set1_epi8(b'"' as i8);
    // `[` and `]` are `{` and `}` with bit 5 clear: set it and compare twice.
    let bit5 = _mm_set1_epi8(0x20);
    let open = _mm_set1_epi8(b'{' as i8);
    let close = _mm_set1_epi8(b'}' as i8);
    let mut m = Masks {
        backslash: 0,
        quote: 0,
        high: 0,
        open: 0,
        close: 0,
    };
    for (i, chunk) in block.chunks_exact(16).enumerate() {
        // SAFETY: `chunk` is 16 readable bytes; the load has no alignment requirement.
        let v = unsafe { _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>()) };
        let folded = _mm_or_si128(v, bit5);
        let bits = |x| u64::from(_mm_movemask_epi8(x) as u16) << (16 * i);
        m.backslash |= bits(_mm_cmpeq_epi8(v, backslash));
        m.quote |= bits(_mm_cmpeq_epi8(v, quote));
        m.high |= bits(v);
        m.open |= bits(_mm_cmpeq_epi8(folded, open));
        m.close |= bits(_mm_cmpeq_epi8(folded, close));
    }
    m
}

#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
fn masks_avx2(block: &[u8; 64]) -> Masks {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256,
        _mm256_set1_epi8,
    };
    let backslash = _mm256_set1_epi8(b'\\' as i8);
    let quote = _mm256_set1_epi8(b'"' as i8);
    let bit5 = _mm256_set1_epi8(0x20);
    let open = _mm256_set1_epi8(b'{' as i8);
    let close = _mm256_set1_epi8(b'}' as i8);
    let mut m = Masks {
        backslash: 0,
        quote: 0,
        high: 0,
        open: 0,
        close: 0,
    };
    for (i, chunk) in block.chunks_exact(32).enumerate() {
        // SAFETY: `chunk` is 32 readable bytes; the load has no alignment requirement.
        let v = unsafe { _mm256_loadu_si256(chunk.as_ptr().cast::<__m256i>()) };
        let folded = _mm256_or_si256(v, bit5);
        let bits = |x| u64::from(_mm256_movemask_epi8(x) as u32) << (32 * i);
        m.backslash |= bits(_mm256_cmpeq_epi8(v, backslash));
        m.quote |= bits(_mm256_cmpeq_epi8(v, quote));
        m.high |= bits(v);
        m.open |= bits(_mm256_cmpeq_epi8(folded, open));
        m.close |= bits(_mm256_cmpeq_epi8(folded, close));
    }
    m
}

#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn masks_avx512(block: &[u8; 64]) -> Masks {
    use std::arch::x86_64::{
        _mm512_cmpeq_epi8_mask, _mm512_loadu_si512, _mm512_movepi8_mask, _mm512_or_si512,
        _mm512_set1_epi8,
    };
    // SAFETY: `block` is 64 readable bytes; the load has no alignment requirement.
    let v = unsafe { _mm512_loadu_si512(block.as_ptr().cast()) };
    // `[` and `]` are `{` and `}` with bit 5 clear: set it and compare once each.
    let folded = _mm512_or_si512(v, _mm512_set1_epi8(0x20));
    Masks {
        backslash: _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b'\\' as i8)),
        quote: _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b'"' as i8)),
        high: _mm512_movepi8_mask(v),
        open: _mm512_cmpeq_epi8_mask(folded, _mm512_set1_epi8(b'{' as i8)),
        close: _mm512_cmpeq_epi8_mask(folded, _mm512_set1_epi8(b'}' as i8)),
    }
}

/// [`prefix_xor`] in one carry-less multiplication by all ones.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "pclmulqdq")]
fn prefix_xor_clmul(x: u64) -> u64 {
    use std::arch::x86_64::{_mm_clmulepi64_si128, _mm_cvtsi128_si64, _mm_set_epi64x};
    let product = _mm_clmulepi64_si128(_mm_set_epi64x(0, x as i64), _mm_set_epi64x(0, -1), 0);
    _mm_cvtsi128_si64(product) as u64
}

#[cfg(not(target_arch = "x86_64"))]
fn masks(block: &[u8; 64]) -> Masks {
    let mut m = Masks {
        backslash: 0,
        quote: 0,
        high: 0,
        open: 0,
        close: 0,
    };
    for (i, &b) in block.iter().enumerate() {
        let bit = 1u64 << i;
        if b > 0x7f {
            m.high |= bit;
        }
        match b {
            b'\\' => m.backslash |= bit,
            b'"' => m.quote |= bit,
            b'{' | b'[' => m.open |= bit,
            b'}' | b']' => m.close |= bit,
            _ => {}
        }
    }
    m
}

/// The bytes escaped by a backslash. `carry` says the block's first byte is escaped (the
/// previous block ended in an escaping backslash) and is updated for the next block.
/// Backslashes are rare in CloudTrail JSON, so they are walked one by one.
fn escaped(backslash: u64, carry: &mut bool) -> u64 {
    let mut rest = backslash;
    let mut escaped = 0u64;
    if std::mem::take(carry) {
        escaped = 1;
        rest &= !1;
    }
    while rest != 0 {
        let i = rest.trailing_zeros();
        if i == 63 {
            *carry = true;
            break;
        }
        escaped |= 1 << (i + 1);
        // This backslash escapes the next byte; that byte, if a backslash, escapes nothing.
        rest &= !(1 << i) & !(1 << (i + 1));
    }
    escaped
}

/// Bit `i` of the result is the XOR of bits `0..=i`: set from an opening quote up to (not
/// including) its closing quote.
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// Every element's `(start, end)` and the end of the array (tests).
#[cfg(test)]
pub(crate) fn spans(array: &[u8]) -> Result<(usize, Vec<(usize, usize)>), StructureError> {
    let mut spans = Vec::new();
    let end = records(array, |a, b| {
        spans.push((a, b));
        Ok::<_, ()>(())
    })
    .map_err(|e| match e {
        Stop::Structure(e) => e,
        Stop::Record(()) => unreachable!("the test collector refuses nothing"),
    })?;
    Ok((end, spans))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(s: &str) -> Result<(usize, Vec<&str>), StructureError> {
        let (end, spans) = spans(s.as_bytes())?;
        Ok((end, spans.iter().map(|&(a, b)| &s[a..b]).collect()))
    }

    #[test]
    fn delimits_records_whatever_their_strings_hold() {
        let hostile = r#"{"a":"}]\"{[\\","b":[{"c":"\\\\\""}],"d":"x"}"#;
        let json = format!("[ {hostile} ,\n{{}},{{\"e\":[1,[2,{{}}]]}} ]}}");
        let (end, records) = scan(&json).expect("well formed");
        assert_eq!(records, vec![hostile, "{}", r#"{"e":[1,[2,{}]]}"#]);
        assert_eq!(&json[end..], "}");
        assert_eq!(scan("[]").expect("empty").1.len(), 0);
    }

    #[test]
    fn a_lone_escape_at_any_position_is_honoured() {
        // One escaping backslash in a long string, at every position relative to the blocks and
        // pairs: in particular at the very end of a pair, escaping a quote in a next pair that
        // holds no backslash of its own (the pair's quick test for backslashes must carry it).
        for pad in 0..300 {
            let record = format!(
                r#"{{"k":"{}\"{}","n":{{}}}}"#,
                "x".repeat(pad),
                "y".repeat(200)
            );
            let json = format!("[{record},{record}]");
            let (end, records) = scan(&json).expect("well formed");
            assert_eq!(records, vec![record.as_str(), record.as_str()], "pad {pad}");
            assert_eq!(end, json.len());
        }
    }

    #[test]
    fn long_strings_and_escapes_across_blocks() {
        // Escaping backslashes and quotes at every position relative to the 64-byte blocks, and
        // records ending in either block of the 128-byte pairs the scan takes at a time.
        for pad in 0..260 {
            let value = format!("{}\\\\\\\"{}\\\\", "x".repeat(pad), "}".repeat(pad % 7));
            let record = format!(r#"{{"k":"{value}","n":{{"m":"]"}}}}"#);
            let json = format!("[{record},{record}]");
            let (end, records) = scan(&json).expect("well formed");
            assert_eq!(records, vec![record.as_str(), record.as_str()], "pad {pad}");
            assert_eq!(end, json.len());
        }
    }

    #[test]
    fn broken_structures_are_reported_where_they_break() {
        let cases: &[(&str, usize, &str)] = &[
            (r#"[{"a":1}"#, 8, "closed"),
            (r#"[{"a":"1}]"#, 10, "string"),
            (r#"[{"a":1}{"b":2}]"#, 8, "one comma"),
            (r#"[{"a":1},,{"b":2}]"#, 8, "one comma"),
            (r#"[{"a":1},]"#, 8, "comma before the end"),
            (r#"[,{"a":1}]"#, 1, "first record"),
            (r#"[{"a":1},"x"]"#, 9, "not an object"),
            (r#"[{"a":1},[]]"#, 9, "not an object"),
            (r#"[{"a":[1}]"#, 9, "does not match"),
            (r#"[{"a":1}}]"#, 8, "does not match"),
            (r#"[{"a":1},7]"#, 9, "not an object"),
            (r#"{"a":1}"#, 0, "start of the Records"),
        ];
        for &(json, offset, reason) in cases {
            let e = scan(json).expect_err(json);
            assert_eq!(e.offset, offset, "{json}: {e:?}");
            assert!(e.reason.contains(reason), "{json}: {e:?}");
        }
        let deep = format!("[{}1{}]", r#"{"a":"#.repeat(600), "}".repeat(600));
        assert_eq!(scan(&deep).expect_err("deep").reason, "nested too deeply");
    }

    /// Records like CloudTrail's, with escapes, nested policies and brackets inside strings.
    fn sample_array() -> String {
        let records = [
            r#"{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::1:assumed-role/a/b"},"eventSource":"kms.amazonaws.com","requestParameters":{"encryptionContext":{"k\"}":"v]\\"}},"resources":[{"ARN":"arn:aws:kms:eu-west-1:1:key/k","type":"AWS::KMS::Key"}]}"#,
            r#"{"eventSource":"iam.amazonaws.com","requestParameters":{"policyDocument":"{\n  \"Statement\": [{\"Effect\": \"Allow\"}]\n}"},"responseElements":null,"n":[1,2.5e3,-0,true,false,null]}"#,
            r#"{"eventSource":"s3.amazonaws.com","additionalEventData":{"x":"\u007b\\\\","y":"café"},"tags":[]}"#,
        ];
        format!("[{}]", records.join(",\n  "))
    }

    #[test]
    fn spans_agree_with_a_full_parser() {
        let json = sample_array();
        let (end, records) = scan(&json).expect("well formed");
        assert_eq!(end, json.len());
        let parsed: Vec<String> = sonic_rs::to_array_iter(json.as_bytes())
            .map(|v| v.expect("valid").as_raw_str().to_string())
            .collect();
        assert_eq!(records, parsed);
    }

    #[test]
    fn every_truncation_is_reported() {
        let json = sample_array();
        for cut in 0..json.len() {
            let cut_short = &json.as_bytes()[..cut];
            assert!(spans(cut_short).is_err(), "cut at {cut} went unnoticed");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_wide_paths_agree_with_the_baseline() {
        let top = level();
        if top == BASE {
            return;
        }
        let block: Vec<u8> = (0..64usize).map(|i| b"{\\\"[]}x\"a"[i * 7 % 9]).collect();
        let block: &[u8; 64] = block.as_slice().try_into().expect("64 bytes");
        let base = masks(block);
        let base = (base.backslash, base.quote, base.open, base.close);
        // SAFETY: `level` found AVX2 and PCLMUL (and AVX-512BW for the second).
        let (wide, clmul) = unsafe { (masks_avx2(block), prefix_xor_clmul(0x8000_0010_0400_0021)) };
        assert_eq!((wide.backslash, wide.quote, wide.open, wide.close), base);
        assert_eq!(clmul, prefix_xor(0x8000_0010_0400_0021));
        if top >= AVX512 {
            let wide = unsafe { masks_avx512(block) };
            assert_eq!((wide.backslash, wide.quote, wide.open, wide.close), base);
        }
        let json = sample_array();
        // Every level delimits the same records; the CRC, folded or not, comes out the same.
        let all = |bytes: &[u8]| {
            let mut out = Vec::new();
            for level in [BASE, AVX2, AVX512, FOLD] {
                if level > top {
                    continue;
                }
                let mut spans = Vec::new();
                let collect = |a, b| {
                    spans.push((a, b));
                    Ok(())
                };
                // SAFETY: only levels the CPU has (`level() >= level`).
                let scanned = match level {
                    FOLD => unsafe { records_fold(bytes, Some(7), collect) },
                    AVX512 => unsafe { records_avx512(bytes, Some(7), collect) },
                    AVX2 => unsafe { records_avx2(bytes, Some(7), collect) },
                    _ => records_with::<BASE, ()>(bytes, Some(7), collect),
                };
                let (end, crc) = match scanned {
                    Ok((end, folded)) => {
                        let rest = super::super::crc::crc32(folded.crc, &bytes[folded.through..]);
                        (Ok(end), Some(rest))
                    }
                    Err(e) => (Err(e), None),
                };
                out.push((end, spans, crc));
            }
            let whole = super::super::crc::crc32(7, bytes);
            assert!(out.windows(2).all(|w| w[0] == w[1]), "{out:?}");
            assert!(out.iter().all(|o| o.2.is_none_or(|c| c == whole)));
        };
        all(json.as_bytes());
        for cut in 0..json.len() {
            all(&json.as_bytes()[..cut]);
        }
        // The index, on every record and every truncation of one.
        let (_, spans) = spans(json.as_bytes()).expect("well formed");
        let mut index = [Index::default(), Index::default(), Index::default()];
        for (from, to) in spans {
            for end in from..=to {
                let raw = &json.as_bytes()[from..end];
                let base_ok = index[0].build_with::<BASE>(raw);
                // SAFETY: only levels the CPU has.
                let ok = [
                    base_ok,
                    unsafe { build_avx2(&mut index[1], raw) },
                    top >= AVX512 && unsafe { build_avx512(&mut index[2], raw) },
                ];
                assert_eq!(ok[1], base_ok);
                assert_eq!(index[1].blocks, index[0].blocks, "{}", &json[from..end]);
                if top >= AVX512 {
                    assert_eq!(ok[2], base_ok);
                    assert_eq!(index[2].blocks, index[0].blocks);
                }
                for i in index.iter().take(if top >= AVX512 { 3 } else { 2 }) {
                    assert_eq!(i.ascii, raw.is_ascii());
                    assert_eq!(i.escapes, raw.contains(&b'\\'));
                }
            }
        }
    }

    #[test]
    fn the_callers_refusal_stops_the_scan() {
        let json = sample_array();
        let mut seen = 0;
        let stop = records(json.as_bytes(), |a, _| {
            seen += 1;
            if seen == 2 { Err(a) } else { Ok(()) }
        });
        let second = json.find(",\n  {").expect("two records") + 4;
        assert_eq!(stop, Err(Stop::Record(second)));
        assert_eq!(seen, 2);
    }

    #[test]
    fn the_index_finds_string_ends_and_matching_brackets() {
        let raw = r#"{"a":[1,{"b":"}]\"x"}],"c":{}}"#.as_bytes();
        let mut index = Index::default();
        assert!(index.build(raw));
        // The structural characters in order; brackets inside strings, and escaped quotes, are
        // not among them.
        let mut tokens = index.tokens(0);
        let all: Vec<usize> = std::iter::from_fn(|| tokens.next()).collect();
        assert_eq!(
            all,
            [0, 1, 3, 5, 8, 9, 11, 13, 19, 20, 21, 23, 25, 27, 28, 29]
        );
        let mut tokens = index.tokens(14);
        assert_eq!((tokens.next(), tokens.next()), (Some(19), Some(20)));
        tokens.seek(raw.len());
        assert_eq!(tokens.next(), None);
        assert_eq!(index.close_of(raw, 5), Some(21));
        assert_eq!(index.close_of(raw, 8), Some(20));
        assert_eq!(index.close_of(raw, 0), Some(raw.len() - 1));
        // Brackets that do not match their kind, or do not close, are refused.
        for bad in [r#"{"a":[1}}"#, r#"{"a":[{]}}"#, r#"{"a":[1"#] {
            assert!(index.build(bad.as_bytes()), "{bad}");
            assert_eq!(index.close_of(bad.as_bytes(), 5), None, "{bad}");
        }
        // The array scan only counts brackets inside a record; the index checks they match.
        let mismatched = r#"{"a":[1}}"#;
        assert_eq!(
            scan(&format!("[{mismatched}]")).expect("delimited").1,
            vec![mismatched]
        );
        // A record that ends inside a string is refused outright.
        assert!(!index.build(br#"{"a":"1}"#));
        // Nesting deeper than the fast path follows is left to the full parser.
        let deep = format!("{}{}", "[".repeat(70), "]".repeat(70));
        assert!(index.build(deep.as_bytes()));
        assert_eq!(index.close_of(deep.as_bytes(), 0), None);
    }

    #[test]
    fn escape_masks() {
        let mut carry = false;
        // `\\` then `\"`: bytes 1 and 3 are escaped.
        assert_eq!(escaped(0b0111, &mut carry), 0b1010);
        assert!(!carry);
        assert_eq!(escaped(1 << 63, &mut carry), 0);
        assert!(carry);
        // The carried escape takes the first byte, a backslash, which then escapes nothing.
        assert_eq!(escaped(0b11, &mut carry), 0b101);
        assert_eq!(prefix_xor(0b1001_0010), (!0u64 << 7) | 0b1110);
    }
}
