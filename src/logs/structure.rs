//! The structural scan of a log file's `Records` array: where each record begins and ends, and
//! whether the array is well formed, without parsing any value.
//!
//! Most of a trail is not KMS, and parsing records only to throw them away costs more than
//! decompressing them. This scan looks at 64 bytes at a time the way simdjson's stage 1 does:
//! SIMD compares give bit masks of quotes, backslashes and brackets; escaped quotes are removed;
//! a prefix XOR of the quotes gives the bytes inside strings; only brackets outside strings are
//! then visited one by one (a few dozen per record). What it checks:
//!
//! - strings are closed, and brackets nest and match (`{` with `}`, `[` with `]`);
//! - the array holds only objects, separated by exactly one comma each (whitespace allowed),
//!   with no trailing comma;
//! - the array is closed before the data ends (a truncated file is caught here).
//!
//! What it does not check is the inside of a record it does not keep (that a colon follows each
//! key, that numbers are numbers). A record that is kept is parsed in full by the caller, which
//! rejects the file if that record is malformed. CloudTrail writes these files itself and the
//! digest check proves they are unaltered; this scan is there to delimit and count records
//! exactly and to catch truncation and corruption, not to be a JSON validator.

/// Where the structure of an array broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructureError {
    /// Byte offset in the scanned slice.
    pub offset: usize,
    pub reason: &'static str,
}

/// Nesting deeper than this is refused (CloudTrail records nest a handful of levels).
const MAX_DEPTH: usize = 512;

/// A scanner. It holds nothing between files; it is a type so that callers keep one per worker
/// should it ever need buffers.
#[derive(Debug, Default)]
pub struct Scanner {}

/// The open brackets, one bit each (set for `{`), deepest last.
struct Stack {
    bits: [u64; MAX_DEPTH / 64],
    depth: usize,
}

impl Stack {
    /// Pushes an opening bracket; false when the nesting is too deep.
    #[inline(always)]
    fn push(&mut self, brace: bool) -> bool {
        let Some(word) = self.bits.get_mut(self.depth / 64) else {
            return false;
        };
        let bit = 1u64 << (self.depth % 64);
        if brace {
            *word |= bit;
        } else {
            *word &= !bit;
        }
        self.depth += 1;
        true
    }

    /// Pops the innermost bracket: whether it was `{`; `None` when none is open.
    #[inline(always)]
    fn pop(&mut self) -> Option<bool> {
        self.depth = self.depth.checked_sub(1)?;
        Some(self.bits[self.depth / 64] & (1u64 << (self.depth % 64)) != 0)
    }
}

impl Scanner {
    /// Scans the JSON array that starts at `array[0]` (which must be `[`), appending each
    /// element's `(start, end)` (`array[start..end]` is one `{...}`) to `spans` after clearing
    /// it. Returns the offset just past the array's closing `]`.
    pub fn records(
        &mut self,
        array: &[u8],
        spans: &mut Vec<(usize, usize)>,
    ) -> Result<usize, StructureError> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
        {
            // SAFETY: the CPU has both features, checked just above.
            return unsafe { self.records_avx2(array, spans) };
        }
        self.records_with::<false>(array, spans)
    }

    /// [`Scanner::records`] compiled for AVX2 and carry-less multiplication.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,pclmulqdq")]
    fn records_avx2(
        &mut self,
        array: &[u8],
        spans: &mut Vec<(usize, usize)>,
    ) -> Result<usize, StructureError> {
        self.records_with::<true>(array, spans)
    }

    /// The scan; `WIDE` (only ever true inside [`Scanner::records_avx2`]) uses AVX2 and PCLMUL.
    #[inline(always)]
    fn records_with<const WIDE: bool>(
        &mut self,
        array: &[u8],
        spans: &mut Vec<(usize, usize)>,
    ) -> Result<usize, StructureError> {
        spans.clear();
        if array.first() != Some(&b'[') {
            return Err(StructureError {
                offset: 0,
                reason: "expected the start of the Records array",
            });
        }
        let mut state = State {
            stack: Stack {
                bits: [0; MAX_DEPTH / 64],
                depth: 0,
            },
            spans,
            record_start: 0,
            prev_end: 0,
        };
        let mut escape_carry = false;
        let mut in_string_carry = 0u64;
        let mut pos = 0usize;
        let mut tail = [b' '; 64];
        while pos < array.len() {
            let block: &[u8; 64] =
                if let Some(b) = array.get(pos..pos + 64).and_then(|b| b.try_into().ok()) {
                    b
                } else {
                    // The last, short block, padded with spaces.
                    let rest = &array[pos..];
                    tail[..rest.len()].copy_from_slice(rest);
                    &tail
                };
            #[cfg(target_arch = "x86_64")]
            let (masks, in_string) = if WIDE {
                // SAFETY: WIDE is true only in `records_avx2`, called after the CPU was found
                // to have AVX2 and PCLMULQDQ.
                unsafe {
                    let m = masks_avx2(block);
                    let e = escaped(m.backslash, &mut escape_carry);
                    let in_string = prefix_xor_clmul(m.quote & !e);
                    (m, in_string)
                }
            } else {
                let m = masks(block);
                let e = escaped(m.backslash, &mut escape_carry);
                let in_string = prefix_xor(m.quote & !e);
                (m, in_string)
            };
            #[cfg(not(target_arch = "x86_64"))]
            let (masks, in_string) = {
                let m = masks(block);
                let e = escaped(m.backslash, &mut escape_carry);
                let in_string = prefix_xor(m.quote & !e);
                (m, in_string)
            };
            let in_string = in_string ^ in_string_carry;
            in_string_carry = ((in_string as i64) >> 63) as u64;
            let mut brackets = masks.bracket & !in_string;
            while brackets != 0 {
                let i = brackets.trailing_zeros() as usize;
                brackets &= brackets - 1;
                if let Some(end) = state.bracket(array, pos + i, block[i])? {
                    return Ok(end);
                }
            }
            pos += 64;
        }
        Err(StructureError {
            offset: array.len(),
            reason: if in_string_carry != 0 {
                "the data ends inside a string (truncated?)"
            } else {
                "the data ends before the Records array is closed (truncated?)"
            },
        })
    }
}

/// The walk's state between brackets.
struct State<'a> {
    stack: Stack,
    spans: &'a mut Vec<(usize, usize)>,
    record_start: usize,
    /// Just past the previous element (or the array's `[`).
    prev_end: usize,
}

impl State<'_> {
    /// Takes the bracket `c` at `at`; returns the end of the array when `c` closes it.
    #[inline(always)]
    fn bracket(&mut self, array: &[u8], at: usize, c: u8) -> Result<Option<usize>, StructureError> {
        // `{` and `}` have bit 5 set, `[` and `]` not; the opening ones have bit 1 set.
        let brace = c & 0x20 != 0;
        let opening = c & 0x02 != 0;
        // Inside a record, which is where nearly every bracket is.
        if opening && self.stack.depth >= 2 {
            if self.stack.push(brace) {
                return Ok(None);
            }
        } else if !opening && self.stack.depth > 2 {
            if self.stack.pop() == Some(brace) {
                return Ok(None);
            }
            return Err(StructureError {
                offset: at,
                reason: "a closing bracket does not match its opening bracket",
            });
        }
        self.boundary(array, at, brace, opening)
    }

    /// A bracket that opens or closes the array or a record, or is refused.
    #[inline(never)]
    fn boundary(
        &mut self,
        array: &[u8],
        at: usize,
        brace: bool,
        opening: bool,
    ) -> Result<Option<usize>, StructureError> {
        let err = |reason| Err(StructureError { offset: at, reason });
        if opening {
            match self.stack.depth {
                0 if at == 0 && !brace => self.prev_end = 1,
                0 => return err("data after the end of the Records array"),
                1 if !brace => return err("an element of Records is not an object"),
                1 => {
                    self.gap(array, at, !self.spans.is_empty())?;
                    self.record_start = at;
                }
                _ => return err("nested too deeply"),
            }
            self.stack.push(brace);
            return Ok(None);
        }
        if self.stack.pop() != Some(brace) {
            return err("a closing bracket does not match its opening bracket");
        }
        match self.stack.depth {
            0 => {
                self.gap(array, at, false)?;
                Ok(Some(at + 1))
            }
            _ => {
                self.spans.push((self.record_start, at + 1));
                self.prev_end = at + 1;
                Ok(None)
            }
        }
    }

    /// Checks what lies between the previous element and `at`: whitespace and, between two
    /// elements, exactly one comma.
    fn gap(&self, array: &[u8], at: usize, comma: bool) -> Result<(), StructureError> {
        let between = &array[self.prev_end..at];
        let commas = between.iter().filter(|&&b| b == b',').count();
        let clean = between
            .iter()
            .all(|&b| b == b',' || b.is_ascii_whitespace());
        if clean && commas == usize::from(comma) {
            return Ok(());
        }
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

/// The structural index of one record: the positions (in order) of its unescaped quotes and of
/// the brackets outside its strings, appended to `out` after clearing it. The record has passed
/// [`Scanner::records`], so its strings are closed and its brackets match.
pub(super) fn structurals(raw: &[u8], out: &mut Vec<u32>) {
    out.clear();
    let mut escape_carry = false;
    let mut in_string_carry = 0u64;
    let mut tail = [b' '; 64];
    let mut pos = 0usize;
    while pos < raw.len() {
        let block: &[u8; 64] =
            if let Some(b) = raw.get(pos..pos + 64).and_then(|b| b.try_into().ok()) {
                b
            } else {
                // The last, short block (there is one at most), padded with spaces.
                let rest = &raw[pos..];
                tail[..rest.len()].copy_from_slice(rest);
                &tail
            };
        let m = masks(block);
        let quotes = m.quote & !escaped(m.backslash, &mut escape_carry);
        let in_string = prefix_xor(quotes) ^ in_string_carry;
        in_string_carry = ((in_string as i64) >> 63) as u64;
        let mut bits = quotes | (m.bracket & !in_string);
        while bits != 0 {
            out.push((pos + bits.trailing_zeros() as usize) as u32);
            bits &= bits - 1;
        }
        pos += 64;
    }
}

/// Bit masks of one 64-byte block: bit `i` is set when byte `i` is the character.
struct Masks {
    backslash: u64,
    quote: u64,
    /// `{`, `}`, `[` and `]`.
    bracket: u64,
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
        bracket: 0,
    };
    for (i, chunk) in block.chunks_exact(16).enumerate() {
        // SAFETY: `chunk` is 16 readable bytes; the load has no alignment requirement.
        let v = unsafe { _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>()) };
        let folded = _mm_or_si128(v, bit5);
        let bits = |x| u64::from(_mm_movemask_epi8(x) as u16) << (16 * i);
        m.backslash |= bits(_mm_cmpeq_epi8(v, backslash));
        m.quote |= bits(_mm_cmpeq_epi8(v, quote));
        m.bracket |= bits(_mm_or_si128(
            _mm_cmpeq_epi8(folded, open),
            _mm_cmpeq_epi8(folded, close),
        ));
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
        bracket: 0,
    };
    for (i, chunk) in block.chunks_exact(32).enumerate() {
        // SAFETY: `chunk` is 32 readable bytes; the load has no alignment requirement.
        let v = unsafe { _mm256_loadu_si256(chunk.as_ptr().cast::<__m256i>()) };
        let folded = _mm256_or_si256(v, bit5);
        let bits = |x| u64::from(_mm256_movemask_epi8(x) as u32) << (32 * i);
        m.backslash |= bits(_mm256_cmpeq_epi8(v, backslash));
        m.quote |= bits(_mm256_cmpeq_epi8(v, quote));
        m.bracket |= bits(_mm256_or_si256(
            _mm256_cmpeq_epi8(folded, open),
            _mm256_cmpeq_epi8(folded, close),
        ));
    }
    m
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
        bracket: 0,
    };
    for (i, &b) in block.iter().enumerate() {
        let bit = 1u64 << i;
        match b {
            b'\\' => m.backslash |= bit,
            b'"' => m.quote |= bit,
            b'{' | b'}' | b'[' | b']' => m.bracket |= bit,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(s: &str) -> Result<(usize, Vec<&str>), StructureError> {
        let mut spans = Vec::new();
        let end = Scanner::default().records(s.as_bytes(), &mut spans)?;
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
    fn long_strings_and_escapes_across_blocks() {
        // Escaping backslashes and quotes at every position relative to the 64-byte blocks.
        for pad in 0..130 {
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
            (r#"[{"a":[1}]"#, 8, "does not match"),
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
            r#"{"eventSource":"s3.amazonaws.com","additionalEventData":{"x":"\u007b\\\\"},"tags":[]}"#,
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
            assert!(scan(&json[..cut]).is_err(), "cut at {cut} went unnoticed");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_wide_path_agrees_with_the_baseline() {
        if !(std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("pclmulqdq"))
        {
            return;
        }
        let block: Vec<u8> = (0..64usize).map(|i| b"{\\\"[]}x\"a"[i * 7 % 9]).collect();
        let block: &[u8; 64] = block.as_slice().try_into().expect("64 bytes");
        // SAFETY: both features were found above.
        let (wide, clmul) = unsafe { (masks_avx2(block), prefix_xor_clmul(0x8000_0010_0400_0021)) };
        let base = masks(block);
        assert_eq!(
            (wide.backslash, wide.quote, wide.bracket),
            (base.backslash, base.quote, base.bracket)
        );
        assert_eq!(clmul, prefix_xor(0x8000_0010_0400_0021));
        let json = sample_array();
        let mut spans = (Vec::new(), Vec::new());
        let mut scanner = Scanner::default();
        let wide_end = unsafe { scanner.records_avx2(json.as_bytes(), &mut spans.0) };
        let base_end = scanner.records_with::<false>(json.as_bytes(), &mut spans.1);
        assert_eq!((wide_end, &spans.0), (base_end, &spans.1));
        for cut in 0..json.len() {
            let bytes = &json.as_bytes()[..cut];
            let wide = unsafe { scanner.records_avx2(bytes, &mut spans.0) };
            assert_eq!(wide, scanner.records_with::<false>(bytes, &mut spans.1));
        }
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
