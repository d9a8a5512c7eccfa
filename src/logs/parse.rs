//! Reading one CloudTrail log file fast: gzip → the `Records` array → typed KMS records.
//!
//! The file is decompressed whole into a buffer the worker reuses (CloudTrail files are small;
//! the gzip trailer gives the exact size), by ISA-L where it was installed at build time (about
//! 8% faster), else by libdeflate. Its gzip CRC-32 is not checked in a pass of its own: the scan
//! folds it as it reads the array (`crc`), and it is compared with the trailer before any record
//! of the file is used. The records of the array are delimited and counted by a SIMD structural
//! scan (`structure`), which checks that the array is well formed but parses no value, and hands
//! over each record as soon as it ends. A look at its first `"eventSource"` member sets aside
//! the records of other services, and only KMS records are read: their UTF-8 checked (or found
//! all ASCII), the few members keyproof uses taken by a fast path (`extract`) that borrows from
//! the buffer, or, for any record not of the usual shape, a full serde parse that validates it.
//! Everything else a trail logs (the large majority) is never parsed. CloudTrail writes the
//! event source without escapes; a record spelling it with JSON escapes would not be recognised
//! as KMS (and would fail digest verification, as an altered file).
//!
//! A file that is not gzip, not JSON, truncated, or not a CloudTrail log is reported with the
//! byte offset and reason, and its records are not counted at all (a half-read file would
//! under-count silently).

use super::record::{KmsRecord, RawRecord};
use super::structure::{Index, Stop};
use flate2::read::MultiGzDecoder;
use memchr::arch::all::packedpair::HeuristicFrequencyRank;
use memchr::memmem::{Finder, FinderBuilder};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::io::Read;

/// The most a single log file may decompress to (CloudTrail's own files are far smaller).
pub const MAX_FILE_BYTES: usize = 1 << 30;

/// Deflate cannot expand data by more than about 1032:1; a larger size in the gzip trailer is
/// a lie and is not allocated.
const MAX_RATIO: usize = 1032;

/// What one good file held.
#[derive(Debug, Default)]
pub struct FileScan {
    /// Every record of the file, KMS or not.
    pub records: u64,
    /// KMS records (handed to the caller as they were read).
    pub kms: u64,
    /// Size of the file as read.
    pub stored_bytes: u64,
    /// Size of its JSON.
    pub json_bytes: u64,
}

/// A file that could not be read, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{file}: {reason}{}", offset.map(|o| format!(" (at byte {o})")).unwrap_or_default())]
pub struct FileIssue {
    pub file: String,
    /// Byte offset in the decompressed JSON, when the problem is in the JSON.
    pub offset: Option<u64>,
    pub reason: String,
}

/// A reusable parser: one per worker thread.
pub struct LogParser {
    inflater: Inflater,
    buffer: Vec<u8>,
    source_key: Finder<'static>,
    /// A KMS record's structural index (scratch for `extract`).
    index: Index,
    /// Whether to hash each file's uncompressed content (for digest verification).
    pub hash: bool,
    /// The SHA-256 of the last file's uncompressed content, when hashing and it decompressed.
    pub last_sha256: Option<String>,
    /// How many KMS records the last file held: the next file's list starts that large, so
    /// that it is not copied as it grows (a file's KMS records are held until it is read).
    kms_hint: usize,
}

impl Default for LogParser {
    fn default() -> Self {
        LogParser::new()
    }
}

impl LogParser {
    pub fn new() -> LogParser {
        LogParser {
            inflater: Inflater::new(),
            buffer: Vec::new(),
            source_key: FinderBuilder::new()
                .build_forward_with_ranker(CloudTrailBytes, b"\"eventSource\""),
            index: Index::default(),
            hash: false,
            last_sha256: None,
            kms_hint: 0,
        }
    }

    /// Reads one log file (gzip or plain JSON) and hands each of its KMS records to `on_kms`,
    /// only once the whole file has been read: a file with a problem gives none. `name` is used
    /// in issues only.
    pub fn scan(
        &mut self,
        name: &str,
        data: &[u8],
        mut on_kms: impl FnMut(&KmsRecord<'_>),
    ) -> Result<FileScan, FileIssue> {
        let issue = |offset: Option<u64>, reason: String| FileIssue {
            file: name.to_string(),
            offset,
            reason,
        };
        self.last_sha256 = None;
        let (json, crc): (&[u8], _) = if data.starts_with(&[0x1f, 0x8b]) {
            let (n, crc) = inflate(&mut self.inflater, data, &mut self.buffer)
                .map_err(|reason| issue(None, reason))?;
            (&self.buffer[..n], crc)
        } else {
            (data, None)
        };
        if self.hash {
            use sha2::Digest as _;
            self.last_sha256 = Some(hex::encode(sha2::Sha256::digest(json)));
        }
        let mut scan = FileScan {
            stored_bytes: data.len() as u64,
            json_bytes: json.len() as u64,
            ..FileScan::default()
        };
        let mut kms = Vec::with_capacity(self.kms_hint);
        let scanned = scan_records(
            json,
            crc,
            &self.source_key,
            &mut scan,
            &mut kms,
            &mut self.index,
        );
        // The gzip trailer's CRC-32 is checked before anything of the file is used, and also
        // when its JSON is broken: a corrupt file is reported as corrupt, not as bad JSON.
        if let Some(expected) = crc {
            let actual = match &scanned {
                Ok(Some(actual)) => *actual,
                _ => super::crc::crc32(0, json),
            };
            if actual != expected {
                return Err(issue(None, corrupt(data)));
            }
        }
        scanned.map_err(|(offset, reason)| issue(offset, reason))?;
        scan.kms = kms.len() as u64;
        self.kms_hint = kms.len();
        kms.iter().for_each(&mut on_kms);
        Ok(scan)
    }
}

/// libdeflate's decompressor, called through its `_ex` entry point, which also says how much
/// input the gzip member used: libdeflate reads one member, so a member that ends before the
/// file does means more follow. (The libdeflater crate does not expose this; without it the
/// output's CRC would have to be computed a second time to tell.) Where keyproof was built
/// with ISA-L (the `isal` feature, on by default, where ISA-L is installed: see `build.rs`), a
/// log file's deflate stream is inflated by ISA-L instead ([`Isal`]); libdeflate still serves
/// the benchmark's floor ([`gunzip`]).
pub struct Inflater {
    libdeflate: std::ptr::NonNull<libdeflate_sys::libdeflate_decompressor>,
    #[cfg(keyproof_isal)]
    isal: Isal,
}

/// Which library inflates log files: `"ISA-L"` where keyproof was built with it, else
/// `"libdeflate"`.
pub const INFLATER: &str = if cfg!(keyproof_isal) {
    "ISA-L"
} else {
    "libdeflate"
};

// SAFETY: a libdeflate decompressor, and ISA-L's state, are plain heap state with no tie to the
// thread that made them; `&mut self` on every use keeps them to one thread at a time.
unsafe impl Send for Inflater {}

impl Inflater {
    pub fn new() -> Inflater {
        // SAFETY: no preconditions; it returns null only when out of memory.
        let raw = unsafe { libdeflate_sys::libdeflate_alloc_decompressor() };
        match std::ptr::NonNull::new(raw) {
            Some(libdeflate) => Inflater {
                libdeflate,
                #[cfg(keyproof_isal)]
                isal: Isal::new(),
            },
            None => std::alloc::handle_alloc_error(std::alloc::Layout::new::<[u8; 32768]>()),
        }
    }

    /// Decompresses the first gzip member of `data` into `out`: (input used, output written).
    fn gzip(&mut self, data: &[u8], out: &mut [u8]) -> Result<(usize, usize), Inflate> {
        self.call(libdeflate_sys::libdeflate_gzip_decompress_ex, data, out)
    }

    /// Decompresses the raw deflate stream at the start of `data` into `out` (no header, no
    /// CRC): (input used, output written).
    fn deflate(&mut self, data: &[u8], out: &mut [u8]) -> Result<(usize, usize), Inflate> {
        #[cfg(keyproof_isal)]
        return self.isal.inflate(data, out);
        #[cfg(not(keyproof_isal))]
        self.libdeflate_raw(data, out)
    }

    /// [`Inflater::deflate`] by libdeflate.
    #[cfg_attr(all(keyproof_isal, not(test)), allow(dead_code))]
    fn libdeflate_raw(&mut self, data: &[u8], out: &mut [u8]) -> Result<(usize, usize), Inflate> {
        self.call(libdeflate_sys::libdeflate_deflate_decompress_ex, data, out)
    }

    fn call(
        &mut self,
        entry: Entry,
        data: &[u8],
        out: &mut [u8],
    ) -> Result<(usize, usize), Inflate> {
        let (mut used, mut written) = (0usize, 0usize);
        // SAFETY: the pointers and lengths come from live slices; libdeflate reads at most
        // `data.len()` bytes, writes at most `out.len()`, and keeps neither pointer.
        let result = unsafe {
            entry(
                self.libdeflate.as_ptr(),
                data.as_ptr().cast(),
                data.len(),
                out.as_mut_ptr().cast(),
                out.len(),
                &mut used,
                &mut written,
            )
        };
        match result {
            libdeflate_sys::libdeflate_result_LIBDEFLATE_SUCCESS => Ok((used, written)),
            libdeflate_sys::libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE => Err(Inflate::Space),
            _ => Err(Inflate::Bad),
        }
    }
}

impl Default for Inflater {
    fn default() -> Self {
        Inflater::new()
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: allocated by libdeflate_alloc_decompressor and freed only here.
        unsafe { libdeflate_sys::libdeflate_free_decompressor(self.libdeflate.as_ptr()) }
    }
}

/// ISA-L's inflate state, through the C shim in `isal.c` (built by `build.rs`).
#[cfg(keyproof_isal)]
struct Isal(std::ptr::NonNull<std::ffi::c_void>);

#[cfg(keyproof_isal)]
unsafe extern "C" {
    fn keyproof_isal_new() -> *mut std::ffi::c_void;
    fn keyproof_isal_free(state: *mut std::ffi::c_void);
    fn keyproof_isal_inflate(
        state: *mut std::ffi::c_void,
        input: *const u8,
        input_len: usize,
        output: *mut u8,
        output_len: usize,
        used: *mut usize,
        written: *mut usize,
    ) -> std::ffi::c_int;
}

#[cfg(keyproof_isal)]
impl Isal {
    fn new() -> Isal {
        // SAFETY: no preconditions; it returns null only when out of memory.
        let raw = unsafe { keyproof_isal_new() };
        match std::ptr::NonNull::new(raw) {
            Some(p) => Isal(p),
            None => std::alloc::handle_alloc_error(std::alloc::Layout::new::<[u8; 65536]>()),
        }
    }

    /// Inflates the raw deflate stream at the start of `data` into `out`: (input used, output
    /// written), as libdeflate's `_ex` entry point gives them.
    fn inflate(&mut self, data: &[u8], out: &mut [u8]) -> Result<(usize, usize), Inflate> {
        let (mut used, mut written) = (0usize, 0usize);
        // SAFETY: the state is a live allocation of the shim's; the pointers and lengths come
        // from live slices; ISA-L reads at most `data.len()` bytes, writes at most `out.len()`,
        // and the shim initialises the state before each stream and keeps no pointer after.
        let result = unsafe {
            keyproof_isal_inflate(
                self.0.as_ptr(),
                data.as_ptr(),
                data.len(),
                out.as_mut_ptr(),
                out.len(),
                &mut used,
                &mut written,
            )
        };
        match result {
            0 => Ok((used, written)),
            1 => Err(Inflate::Space),
            _ => Err(Inflate::Bad),
        }
    }
}

#[cfg(keyproof_isal)]
impl Drop for Isal {
    fn drop(&mut self) {
        // SAFETY: allocated by keyproof_isal_new and freed only here.
        unsafe { keyproof_isal_free(self.0.as_ptr()) }
    }
}

/// libdeflate's `_ex` decompression entry points share this signature.
type Entry = unsafe extern "C" fn(
    *mut libdeflate_sys::libdeflate_decompressor,
    *const std::ffi::c_void,
    usize,
    *mut std::ffi::c_void,
    usize,
    *mut usize,
    *mut usize,
) -> libdeflate_sys::libdeflate_result;

enum Inflate {
    Space,
    Bad,
}

/// Decompresses gzip `data` into `buf` (grown as needed, never shrunk) and returns the length.
/// libdeflate checks the CRC-32 in a pass of its own (the benchmark's floor does this).
pub fn gunzip(inflater: &mut Inflater, data: &[u8], buf: &mut Vec<u8>) -> Result<usize, String> {
    // The member (its CRC-32 and size checked by libdeflate) must be the whole file.
    match decompress(data, buf, |out| inflater.gzip(data, out))? {
        Some((used, n)) if used == data.len() => Ok(n),
        // More members follow, or libdeflate refused it: the streaming path reads them all, or
        // says what is wrong.
        _ => multi_member(data, buf),
    }
}

/// Decompresses gzip `data` into `buf` as [`gunzip`] does, but leaves the CRC-32 to the
/// caller, which folds it into its scan of the JSON ([`super::crc`]): returns the length and
/// the CRC-32 the gzip trailer gives, or `None` when the file took the streaming path (several
/// members), which checked it already.
fn inflate(
    inflater: &mut Inflater,
    data: &[u8],
    buf: &mut Vec<u8>,
) -> Result<(usize, Option<u32>), String> {
    let Some(body) = gzip_header(data).and_then(|h| data.get(h..data.len().checked_sub(8)?)) else {
        return multi_member(data, buf).map(|n| (n, None));
    };
    let (crc, isize) = (trailer(data, 8), trailer(data, 4));
    match decompress(data, buf, |out| inflater.deflate(body, out))? {
        // One member, the whole file, of the size its trailer gives.
        Some((used, n)) if used == body.len() && isize == Some(n as u32) => Ok((n, crc)),
        _ => multi_member(data, buf).map(|n| (n, None)),
    }
}

/// Runs `attempt` on `buf`, grown until the output fits: (input used, output written), or
/// `None` when the data is not valid.
fn decompress(
    data: &[u8],
    buf: &mut Vec<u8>,
    mut attempt: impl FnMut(&mut [u8]) -> Result<(usize, usize), Inflate>,
) -> Result<Option<(usize, usize)>, String> {
    // ISIZE, the last four bytes: the uncompressed size modulo 2^32.
    let isize = trailer(data, 4).map_or(0, |n| n as usize);
    let ceiling = data.len().saturating_mul(MAX_RATIO).min(MAX_FILE_BYTES);
    let mut size = isize.clamp(64, ceiling.max(64));
    loop {
        if buf.len() < size {
            buf.resize(size, 0);
        }
        match attempt(&mut buf[..size]) {
            Ok(done) => return Ok(Some(done)),
            Err(Inflate::Space) if size < ceiling => {
                size = size.saturating_mul(2).min(ceiling);
            }
            Err(Inflate::Space) => {
                return Err(format!(
                    "decompresses to more than {} MiB; not read",
                    ceiling >> 20
                ));
            }
            Err(Inflate::Bad) => return Ok(None),
        }
    }
}

/// The little-endian `u32` that starts `from_end` bytes before the end of `data` (the gzip
/// trailer: CRC-32 at 8, ISIZE at 4).
fn trailer(data: &[u8], from_end: usize) -> Option<u32> {
    let at = data.len().checked_sub(from_end)?;
    data.get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
}

/// The length of the gzip member header at the start of `data` (RFC 1952: ten bytes, then the
/// optional extra field, name, comment and header CRC its flags announce), or `None` when it
/// is not one libdeflate would accept.
fn gzip_header(data: &[u8]) -> Option<usize> {
    const FHCRC: u8 = 0x02;
    const FEXTRA: u8 = 0x04;
    const FNAME: u8 = 0x08;
    const FCOMMENT: u8 = 0x10;
    const RESERVED: u8 = 0xe0;
    let flags = match data.get(..10)? {
        [0x1f, 0x8b, 8, flags, ..] if flags & RESERVED == 0 => *flags,
        _ => return None,
    };
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let len = u16::from_le_bytes([*data.get(at)?, *data.get(at + 1)?]);
        at += 2 + usize::from(len);
    }
    for field in [FNAME, FCOMMENT] {
        if flags & field != 0 {
            at += memchr::memchr(0, data.get(at..)?)? + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    (at <= data.len()).then_some(at)
}

/// Why a gzip file whose CRC-32 does not match was refused, in the words of the streaming
/// decoder (the same as for any other corrupt file).
fn corrupt(data: &[u8]) -> String {
    match multi_member(data, &mut Vec::new()) {
        Err(reason) => reason,
        Ok(_) => "not valid gzip (truncated or corrupt): CRC-32 mismatch".into(),
    }
}

fn multi_member(data: &[u8], buf: &mut Vec<u8>) -> Result<usize, String> {
    let mut out = Vec::new();
    MultiGzDecoder::new(data)
        .take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("not valid gzip (truncated or corrupt): {e}"))?;
    if out.len() > MAX_FILE_BYTES {
        return Err(format!(
            "decompresses to more than {} MiB; not read",
            MAX_FILE_BYTES >> 20
        ));
    }
    let n = out.len();
    *buf = out;
    Ok(n)
}

type ScanError = (Option<u64>, String);

/// Walks the `Records` array of a log file's JSON, counting records and keeping KMS ones.
/// `source_key` finds the `"eventSource"` key. With `crc` (the file was gzip), returns the
/// CRC-32 of the whole JSON, computed along the way.
fn scan_records<'j>(
    json: &'j [u8],
    crc: Option<u32>,
    source_key: &Finder<'_>,
    scan: &mut FileScan,
    kms: &mut Vec<KmsRecord<'j>>,
    index: &mut Index,
) -> Result<Option<u32>, ScanError> {
    // CloudTrail writes `{"Records":[...]}`; the array is found without a pass over the file,
    // and what follows it must be the closing `}`. Anything else falls back to looking the key
    // up with a full parse.
    let (start, array, rest_ok) = match records_array_start(json) {
        Some(start) => (start, &json[start..], true),
        None => {
            let lazy = sonic_rs::get_from_slice(json, &["Records"]).map_err(|e| {
                (
                    Some(e.offset() as u64),
                    format!(
                        "not a CloudTrail log file (no Records array): {}",
                        first_line(&e)
                    ),
                )
            })?;
            let raw: &[u8] = match lazy.as_raw_cow() {
                Cow::Borrowed(s) => s.as_bytes(),
                Cow::Owned(_) => {
                    return Err((None, "the Records array could not be located".into()));
                }
            };
            let start = raw.as_ptr() as usize - json.as_ptr() as usize;
            (start, raw, false)
        }
    };
    let mut records = 0u64;
    // Each record is looked at as soon as the scan has delimited it. Its event source is read
    // where CloudTrail writes it; only KMS records (and any whose source cannot be told without
    // a parse) are parsed.
    let before = crc.map(|_| super::crc::crc32(0, &json[..start]));
    let (end, folded) = super::structure::records_crc(array, before, |from, to| {
        records += 1;
        let raw = &array[from..to];
        if event_source(raw, source_key) == Source::Other {
            return Ok(());
        }
        // The fast path reads the usual shape; anything else is parsed in full (and its
        // problems reported) by serde.
        let fast = super::extract::record(raw, index);
        let record: RawRecord<'_> = match fast {
            Some(record) => record,
            None => serde_json::from_slice(raw).map_err(|e| {
                (
                    Some((start + from) as u64),
                    format!("record {records} is not a CloudTrail record: {e}"),
                )
            })?,
        };
        if record.is_kms() {
            kms.push(record.to_record());
        }
        Ok(())
    })
    .map_err(|stop| match stop {
        Stop::Structure(e) => (
            Some((start + e.offset) as u64),
            format!("malformed JSON: {}", e.reason),
        ),
        Stop::Record(e) => e,
    })?;
    if rest_ok && !is_closing(&array[end..]) {
        return Err((
            Some((start + end) as u64),
            "malformed JSON: the file does not end after the Records array".into(),
        ));
    }
    scan.records = records;
    // The CRC of what the scan's fold did not take: the rest of the file.
    Ok(before.map(|_| super::crc::crc32(folded.crc, &json[start + folded.through..])))
}

/// What a record's event source is, as far as can be told without parsing it.
#[derive(Debug, PartialEq, Eq)]
enum Source {
    Kms,
    Other,
    Unknown,
}

/// Reads the value of the record's first `"eventSource"` member. CloudTrail writes it at the top
/// level, after only `eventVersion`, `userIdentity` (whose keys are fixed) and `eventTime`, so
/// the first such key is the record's own. Records that mention `"kms.amazonaws.com"` elsewhere
/// (a service's role session, an invoking service) are then skipped without a parse; anything
/// unusual (no such key, an escape in the value) is `Unknown` and parsed in full.
fn event_source(raw: &[u8], key: &Finder<'_>) -> Source {
    let Some(at) = key.find(raw) else {
        return Source::Unknown;
    };
    let mut i = skip_ws(raw, at + key.needle().len());
    if raw.get(i) != Some(&b':') {
        return Source::Unknown;
    }
    i = skip_ws(raw, i + 1);
    if raw.get(i) != Some(&b'"') {
        return Source::Unknown;
    }
    // The value is short: a look at its bytes, not a search.
    let value = &raw[i + 1..];
    let kms = super::record::KMS_SOURCE.as_bytes();
    if value.get(kms.len()) == Some(&b'"') && value.starts_with(kms) {
        return Source::Kms;
    }
    match value.iter().find(|&&b| b == b'"' || b == b'\\') {
        Some(b'"') => Source::Other,
        _ => Source::Unknown,
    }
}

/// sonic-rs appends a snippet of the input on further lines: keep the message only (the
/// offset says where, and the file's bytes are not for reports).
fn first_line(e: &sonic_rs::Error) -> String {
    e.to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn skip_ws(json: &[u8], mut at: usize) -> usize {
    while json.get(at).is_some_and(|b| b.is_ascii_whitespace()) {
        at += 1;
    }
    at
}

/// How common each byte is in CloudTrail's JSON, for the search of the `"eventSource"` key: the
/// searcher looks for its two rarest bytes first. memchr's default ranking, made for prose, would
/// pick the quote, which is among the commonest bytes here; in CloudTrail the letters of the
/// `event…` keys are common and capitals are rare, so the search keys on `S` and `c`.
struct CloudTrailBytes;

impl HeuristicFrequencyRank for CloudTrailBytes {
    fn rank(&self, byte: u8) -> u8 {
        match byte {
            b'"' | b':' | b',' | b'{' | b'}' | b'[' | b']' => 255,
            b'e' | b'v' | b'n' | b't' => 250,
            b'c' => 180,
            b'a'..=b'z' => 200,
            b'0'..=b'9' | b'-' | b'.' | b'_' | b'/' => 190,
            b'A'..=b'Z' => 100,
            _ => 50,
        }
    }
}

/// Where the array of `{"Records": [` starts, when the file begins that way.
fn records_array_start(json: &[u8]) -> Option<usize> {
    let mut at = skip_ws(json, 0);
    (json.get(at) == Some(&b'{')).then_some(())?;
    at = skip_ws(json, at + 1);
    json.get(at..)?.starts_with(b"\"Records\"").then_some(())?;
    at = skip_ws(json, at + 9);
    (json.get(at) == Some(&b':')).then_some(())?;
    at = skip_ws(json, at + 1);
    (json.get(at) == Some(&b'[')).then_some(at)
}

/// Whether `rest` (what follows the Records array) is the object's closing `}`, whitespace
/// allowed.
fn is_closing(rest: &[u8]) -> bool {
    let rest = rest.trim_ascii();
    rest == b"}"
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("gzip");
        e.finish().expect("gzip")
    }

    const KMS: &str = r#"{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole","principalId":"AROA:app","arn":"arn:aws:sts::111122223333:assumed-role/app/i-1","accountId":"111122223333","sessionContext":{"sessionIssuer":{"type":"Role","arn":"arn:aws:iam::111122223333:role/app"}}},"eventTime":"2026-11-28T10:00:00Z","eventSource":"kms.amazonaws.com","eventName":"Decrypt","awsRegion":"eu-west-1","sourceIPAddress":"10.0.0.5","requestParameters":{"encryptionAlgorithm":"SYMMETRIC_DEFAULT"},"responseElements":null,"eventID":"e-1","readOnly":true,"resources":[{"accountId":"111122223333","type":"AWS::KMS::Key","ARN":"arn:aws:kms:eu-west-1:111122223333:key/k1"}],"eventType":"AwsApiCall"}"#;
    const S3: &str = r#"{"eventVersion":"1.08","userIdentity":{"type":"AWSService","invokedBy":"s3.amazonaws.com"},"eventTime":"2026-11-28T10:00:01Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"eu-west-1","sourceIPAddress":"kms.amazonaws.com","requestParameters":{"note":"\"kms.amazonaws.com\" {[ in a string"},"eventID":"e-2"}"#;

    #[test]
    fn keeps_kms_records_and_counts_all() {
        let json = format!("{{\"Records\":[{KMS},{S3},{KMS}]}}\n");
        let mut p = LogParser::new();
        for data in [json.as_bytes().to_vec(), gzip(json.as_bytes())] {
            let mut kms = Vec::new();
            let scan = p
                .scan("f.json.gz", &data, |r| kms.push(r.clone().into_owned()))
                .expect("scans");
            assert_eq!(scan.records, 3);
            assert_eq!((scan.kms, kms.len()), (2, 2));
            let r = &kms[0];
            assert_eq!(r.event_name, "Decrypt");
            assert_eq!(
                r.principal.as_deref(),
                Some("arn:aws:iam::111122223333:role/app")
            );
            assert_eq!(
                r.key.as_deref(),
                Some("arn:aws:kms:eu-west-1:111122223333:key/k1")
            );
            assert_eq!(r.key_account(), Some("111122223333"));
            assert!(r.fields.all(), "{:?}", r.fields);
            assert_eq!(scan.json_bytes, json.len() as u64);
        }
    }

    #[test]
    fn other_layouts_and_empty_files() {
        let mut p = LogParser::new();
        let other = format!("{{ \"x\": 1, \"Records\" : [ {KMS} ] , \"y\": [] }}");
        assert_eq!(p.scan("a", other.as_bytes(), |_| ()).expect("scans").kms, 1);
        let empty = p.scan("b", br#"{"Records":[]}"#, |_| ()).expect("scans");
        assert_eq!((empty.records, empty.kms), (0, 0));
    }

    #[test]
    fn truncated_and_malformed_files_are_reported_with_offsets() {
        let mut p = LogParser::new();
        let json = format!("{{\"Records\":[{KMS},{S3}]}}");
        // Truncated gzip: the trailer (CRC, size) is missing.
        let gz = gzip(json.as_bytes());
        let err = p
            .scan("t.json.gz", &gz[..gz.len() - 10], |_| ())
            .expect_err("truncated");
        assert!(err.reason.contains("gzip"), "{err}");
        // Truncated JSON inside a good gzip stream.
        let cut = &json[..json.len() - 40];
        let err = p
            .scan("c.json.gz", &gzip(cut.as_bytes()), |_| ())
            .expect_err("cut");
        assert_eq!(err.file, "c.json.gz");
        assert!(err.offset.is_some(), "{err}");
        // A KMS record with a field of the wrong type.
        let bad = KMS.replace(r#""eventTime":"2026-11-28T10:00:00Z""#, r#""eventTime":12"#);
        let err = p
            .scan(
                "w.json",
                format!("{{\"Records\":[{bad}]}}").as_bytes(),
                |_| (),
            )
            .expect_err("wrong type");
        assert!(err.reason.contains("record 1"), "{err}");
        // Not CloudTrail at all.
        let err = p.scan("n.json", b"[1,2,3]", |_| ()).expect_err("not a log");
        assert!(err.reason.contains("Records"), "{err}");
    }

    #[test]
    fn event_sources_are_told_apart_without_a_parse() {
        let key = Finder::new(b"\"eventSource\"");
        let cases: &[(&str, Source)] = &[
            (KMS, Source::Kms),
            (S3, Source::Other),
            (r#"{"eventSource" :  "kms.amazonaws.com"}"#, Source::Kms),
            (
                r#"{"eventSource":"kms.amazon\u0061ws.com"}"#,
                Source::Unknown,
            ),
            (r#"{"eventSource":null}"#, Source::Unknown),
            (r#"{"eventName":"Decrypt"}"#, Source::Unknown),
            (
                r#"{"x":"\"eventSource\":\"s3\"","eventSource":"kms.amazonaws.com"}"#,
                Source::Kms,
            ),
        ];
        for (record, want) in cases {
            assert_eq!(&event_source(record.as_bytes(), &key), want, "{record}");
        }
        // A record that only mentions KMS is counted but not kept; an unusual one is parsed.
        let spaced = KMS.replace(
            r#""eventSource":"kms.amazonaws.com""#,
            r#""eventSource" : "kms.amazonaws.com""#,
        );
        let json = format!("{{\"Records\":[{S3},{spaced}]}}");
        let scan = LogParser::new()
            .scan("e.json", json.as_bytes(), |_| ())
            .expect("scans");
        assert_eq!((scan.records, scan.kms), (2, 1));
    }

    #[test]
    fn a_corrupt_gzip_file_gives_no_records() {
        // Long enough for the scan to fold the CRC (128 bytes a step), with the bytes before
        // the array and after the last full step left to libdeflate's CRC.
        let records: Vec<&str> = (0..20).map(|i| if i % 3 == 0 { S3 } else { KMS }).collect();
        let json = format!("{{\"Records\":[{}]}}\n", records.join(","));
        let mut p = LogParser::new();
        let good = p.scan("g.json", json.as_bytes(), |_| ()).expect("plain");
        // Stored (uncompressed) deflate blocks: a changed byte still inflates, and only the
        // CRC-32 can tell. Header fields (extra, name, comment, header CRC) are skipped.
        let stored = |json: &[u8]| {
            let mut e = flate2::GzBuilder::new()
                .extra(b"xx".to_vec())
                .filename("g.json")
                .comment("keyproof")
                .write(Vec::new(), flate2::Compression::none());
            e.write_all(json).expect("gzip");
            e.finish().expect("gzip")
        };
        for gz in [gzip(json.as_bytes()), stored(json.as_bytes())] {
            let read = p.scan("g.json.gz", &gz, |_| ()).expect("gzip");
            assert_eq!((read.records, read.kms), (good.records, good.kms));
        }
        let at = |needle: &str, nth: usize| {
            let gz = stored(json.as_bytes());
            let hits: Vec<usize> = memchr::memmem::find_iter(&gz, needle.as_bytes()).collect();
            (gz, hits[nth])
        };
        let mut cases = Vec::new();
        // A letter of a late KMS event name (past many folded steps): still valid JSON.
        let (mut gz, i) = at("Decrypt", 11);
        gz[i] = b'E';
        cases.push(("renamed event", gz));
        // An early one, inside the first step of the fold.
        let (mut gz, i) = at("Decrypt", 0);
        gz[i + 1] = b'E';
        cases.push(("early rename", gz));
        // A brace made a letter: broken JSON, reported as the corruption it is.
        let (mut gz, i) = at("{\"eventVersion", 5);
        gz[i] = b'x';
        cases.push(("broken brace", gz));
        // The trailer's CRC itself.
        let mut gz = gzip(json.as_bytes());
        let n = gz.len();
        gz[n - 8] ^= 1;
        cases.push(("trailer", gz));
        for (what, gz) in cases {
            let mut handed = 0;
            let err = p.scan("c.json.gz", &gz, |_| handed += 1).expect_err(what);
            assert!(err.reason.contains("gzip"), "{what}: {err}");
            assert_eq!(err.offset, None, "{what}: {err}");
            assert_eq!(handed, 0, "{what}");
        }
    }

    #[test]
    fn a_changed_byte_anywhere_in_a_gzip_file_is_caught_or_harmless() {
        // Every byte of a small gzip file changed in turn, three ways, so that the inflater meets
        // invalid codes, distances too far back and streams that end early: the file is
        // reported, or, where the byte takes no part in the content (the header's time, extra
        // flags and OS, its text flag), read exactly as before. Never other records, never a
        // panic.
        let records: Vec<&str> = (0..12).map(|i| if i % 3 == 0 { S3 } else { KMS }).collect();
        let json = format!("{{\"Records\":[{}]}}\n", records.join(","));
        let gz = gzip(json.as_bytes());
        let mut p = LogParser::new();
        let mut want = Vec::new();
        let good = p
            .scan("g.json.gz", &gz, |r| want.push(r.clone().into_owned()))
            .expect("reads");
        let mut reported = 0;
        for i in 0..gz.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = gz.clone();
                bad[i] ^= flip;
                let mut got = Vec::new();
                match p.scan("b.json.gz", &bad, |r| got.push(r.clone().into_owned())) {
                    Ok(scan) => {
                        let counts = (scan.records, scan.kms);
                        assert_eq!(counts, (good.records, good.kms), "byte {i} ^ {flip:#x}");
                        assert_eq!(got, want, "byte {i} ^ {flip:#x}");
                    }
                    Err(_) => reported += 1,
                }
            }
        }
        assert!(
            reported >= 3 * (gz.len() - 10),
            "{reported} of {}",
            3 * gz.len()
        );
    }

    #[test]
    fn concatenated_gzip_members_are_read() {
        let json = format!("{{\"Records\":[{KMS}]}}");
        let mut data = gzip(&json.as_bytes()[..20]);
        data.extend(gzip(&json.as_bytes()[20..]));
        let scan = LogParser::new()
            .scan("m.json.gz", &data, |_| ())
            .expect("scans");
        assert_eq!(scan.kms, 1);
    }

    /// Built with ISA-L, keyproof inflates with it what libdeflate inflates, to the same bytes, and
    /// says as libdeflate does how much input the stream took, when the output is too small,
    /// and when the stream is cut short.
    #[cfg(keyproof_isal)]
    #[test]
    fn isal_inflates_as_libdeflate_does() {
        let records: Vec<String> = (0..3000)
            .map(|i| KMS.replace("e-1", &format!("e-{}", i * 7919 % 10007)))
            .collect();
        let json = format!("{{\"Records\":[{}]}}\n", records.join(","));
        let mut inflater = Inflater::new();
        // Every kind of deflate block: stored (level 0), fixed Huffman codes (a short input),
        // dynamic ones (levels 1, 6, 9).
        let inputs: Vec<(&[u8], u32)> = vec![
            (json.as_bytes(), 0),
            (b"{\"Records\":[]}", 6),
            (json.as_bytes(), 1),
            (json.as_bytes(), 6),
            (json.as_bytes(), 9),
        ];
        for (input, level) in inputs {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
            e.write_all(input).expect("gzip");
            let gz = e.finish().expect("gzip");
            // The deflate stream, then the trailer and another member, as a file of two.
            let body = &gz[10..gz.len() - 8];
            let mut more = body.to_vec();
            more.extend_from_slice(&gz[gz.len() - 8..]);
            more.extend_from_slice(&gz);
            for data in [body, &more[..]] {
                let mut a = vec![0u8; input.len()];
                let mut b = vec![0u8; input.len()];
                let isal = inflater.isal.inflate(data, &mut a).ok();
                let libdeflate = inflater.libdeflate_raw(data, &mut b).ok();
                assert_eq!(isal, Some((body.len(), input.len())), "level {level}");
                assert_eq!(isal, libdeflate);
                assert_eq!(a, input);
                assert_eq!(a, b);
            }
            // Too little room.
            let mut small = vec![0u8; input.len() / 2];
            assert!(matches!(
                inflater.isal.inflate(body, &mut small),
                Err(Inflate::Space)
            ));
            assert!(matches!(
                inflater.libdeflate_raw(body, &mut small),
                Err(Inflate::Space)
            ));
            // Cut short.
            let mut room = vec![0u8; input.len()];
            let cut = &body[..body.len() * 2 / 3];
            assert!(matches!(
                inflater.isal.inflate(cut, &mut room),
                Err(Inflate::Bad)
            ));
            assert!(matches!(
                inflater.libdeflate_raw(cut, &mut room),
                Err(Inflate::Bad)
            ));
        }
        // Not deflate at all (a reserved block type).
        let mut room = [0u8; 64];
        assert!(matches!(
            inflater.isal.inflate(&[0x07, 0, 0], &mut room),
            Err(Inflate::Bad)
        ));
        // The whole path reads a file through ISA-L as it reads the plain JSON.
        let mut p = LogParser::new();
        let plain = p.scan("f.json", json.as_bytes(), |_| ()).expect("plain");
        let read = p
            .scan("f.json.gz", &gzip(json.as_bytes()), |_| ())
            .expect("gzip");
        assert_eq!((read.records, read.kms), (plain.records, plain.kms));
    }
}
