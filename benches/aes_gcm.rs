//! AES-256-GCM throughput benchmark: the `aes-gcm` 0.10 crate (the AEAD keyproof's self-test
//! uses for its envelope and simulated-KMS round trips) beside `openssl speed` on the same
//! machine, so a slow self-test can be told apart from a slow cipher. Prints figures; asserts
//! nothing about speed.
//!
//! Run with `cargo bench --bench aes_gcm` (bench profile = optimised release build). Each
//! message size runs encrypt and decrypt for at least about one second of wall time, single
//! threaded, in place (`encrypt_in_place_detached` / `decrypt_in_place_detached`, 96-bit nonce,
//! 128-bit tag, no AAD) so that allocation does not dominate. The key schedule is computed once,
//! outside the timed loop; nonce setup and tag computation are inside it.
//!
//! openssl is run as `openssl speed -elapsed -evp aes-256-gcm -bytes N -seconds 2` (`-elapsed`
//! makes it divide by wall time, as this bench does, instead of CPU user time). Its `-evp`
//! figure streams `EVP_EncryptUpdate` over the buffer without a per-message nonce or tag, so at
//! small sizes it has slightly less work per byte than keyproof's per-message figure. If
//! openssl is missing or its output cannot be parsed, that column reads "not available".

use aes_gcm::aead::{AeadInPlace, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Nonce};
use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error>;

const SIZES: [usize; 3] = [1024, 64 * 1024, 1024 * 1024];
const MIN_WALL: Duration = Duration::from_secs(1);
const WARM_UP: Duration = Duration::from_millis(100);
const OPENSSL_SECONDS: u32 = 2;

/// Bytes processed between two clock reads, so `Instant::now` stays out of the figure.
const BYTES_PER_BATCH: usize = 1024 * 1024;

fn nonce_from(counter: u64) -> Nonce<aes_gcm::aead::consts::U12> {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::from(bytes)
}

/// Runs `op` in batches until at least `min` of wall time has passed; returns bytes per second.
fn measure(
    size: usize,
    min: Duration,
    mut op: impl FnMut() -> Result<(), Error>,
) -> Result<f64, Error> {
    let batch = (BYTES_PER_BATCH / size).max(1);
    let start = Instant::now();
    let mut ops: u64 = 0;
    loop {
        for _ in 0..batch {
            op()?;
        }
        ops += batch as u64;
        let elapsed = start.elapsed();
        if elapsed >= min {
            return Ok(ops as f64 * size as f64 / elapsed.as_secs_f64());
        }
    }
}

fn bench_encrypt(cipher: &Aes256Gcm, size: usize) -> Result<f64, Error> {
    let mut buf = vec![0x5au8; size];
    let mut counter: u64 = 0;
    let mut op = || -> Result<(), Error> {
        counter = counter.wrapping_add(1);
        let nonce = nonce_from(counter);
        let tag = cipher
            .encrypt_in_place_detached(black_box(&nonce), b"", black_box(buf.as_mut_slice()))
            .map_err(|e| format!("encrypt failed: {e}"))?;
        black_box(&tag);
        black_box(buf.as_slice());
        Ok(())
    };
    measure(size, WARM_UP, &mut op)?;
    measure(size, MIN_WALL, &mut op)
}

fn bench_decrypt(cipher: &Aes256Gcm, size: usize) -> Result<f64, Error> {
    // GCM is CTR mode underneath, so with a fixed nonce decryption maps C -> P and P -> C.
    // Sealing both directions up front gives two valid (ciphertext, tag) pairs the loop can
    // alternate between: every decrypt authenticates successfully and does the full work,
    // with no copy of the buffer per iteration. (Nonce reuse is harmless here: throwaway key.)
    let nonce = nonce_from(0);
    let plain = vec![0x5au8; size];
    let mut buf = plain.clone();
    let tag_of_cipher = cipher
        .encrypt_in_place_detached(&nonce, b"", &mut buf)
        .map_err(|e| format!("encrypt failed: {e}"))?;
    let mut scratch = buf.clone();
    let tag_of_plain = cipher
        .encrypt_in_place_detached(&nonce, b"", &mut scratch)
        .map_err(|e| format!("encrypt failed: {e}"))?;
    if scratch != plain {
        return Err("unexpected: GCM keystream is not an involution".into());
    }
    drop(scratch);

    // `buf` holds the ciphertext; the next decrypt turns it into the plaintext.
    let mut holds_cipher = true;
    let mut op = || -> Result<(), Error> {
        let tag = if holds_cipher {
            &tag_of_cipher
        } else {
            &tag_of_plain
        };
        cipher
            .decrypt_in_place_detached(
                black_box(&nonce),
                b"",
                black_box(buf.as_mut_slice()),
                black_box(tag),
            )
            .map_err(|e| format!("decrypt failed to authenticate: {e}"))?;
        black_box(buf.as_slice());
        holds_cipher = !holds_cipher;
        Ok(())
    };
    measure(size, WARM_UP, &mut op)?;
    let rate = measure(size, MIN_WALL, &mut op)?;
    if !holds_cipher && buf != plain {
        return Err("decrypt produced the wrong plaintext".into());
    }
    Ok(rate)
}

/// What this machine's `openssl speed` accepts, read from `openssl speed -help`.
struct OpensslSpeed {
    version: String,
    has_bytes: bool,
    has_seconds: bool,
    has_elapsed: bool,
}

fn probe_openssl() -> Option<OpensslSpeed> {
    let version = Command::new("openssl").arg("version").output().ok()?;
    if !version.status.success() {
        return None;
    }
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    // `speed -help` prints to stderr and may exit non-zero on some versions.
    let help = Command::new("openssl")
        .args(["speed", "-help"])
        .output()
        .ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&help.stdout),
        String::from_utf8_lossy(&help.stderr)
    );
    let has = |flag: &str| text.split_whitespace().any(|w| w == flag);
    Some(OpensslSpeed {
        version,
        has_bytes: has("-bytes"),
        has_seconds: has("-seconds"),
        has_elapsed: has("-elapsed"),
    })
}

/// Bytes per second from `openssl speed`'s table line, e.g. `AES-256-GCM  1487457.28k`
/// (1000s of bytes per second; the last such line wins).
fn parse_table(stdout: &str) -> Option<f64> {
    stdout
        .lines()
        .rev()
        .filter(|l| {
            l.trim_start()
                .to_ascii_lowercase()
                .starts_with("aes-256-gcm")
        })
        .find_map(|l| {
            let last = l.split_whitespace().last()?;
            let kilo: f64 = last.strip_suffix('k')?.parse().ok()?;
            (kilo.is_finite() && kilo > 0.0).then_some(kilo * 1000.0)
        })
}

/// Bytes per second from a `Doing AES-256-GCM for 2s on 1024 size blocks: 2925266
/// AES-256-GCM's in 1.99s` line.
fn parse_doing(text: &str, size: usize) -> Option<f64> {
    text.lines()
        .rev()
        .filter(|l| l.trim_start().starts_with("Doing"))
        .find_map(|l| {
            let (_, tail) = l.split_once(": ")?;
            let words: Vec<&str> = tail.split_whitespace().collect();
            let count: f64 = words.first()?.parse().ok()?;
            let secs_word = words.iter().rposition(|w| *w == "in")?;
            let secs: f64 = words
                .get(secs_word + 1)?
                .trim_end_matches('s')
                .parse()
                .ok()?;
            (count > 0.0 && secs > 0.0).then_some(count * size as f64 / secs)
        })
}

/// openssl's AES-256-GCM encryption rate for `size`-byte buffers, in bytes per second.
fn openssl_rate(speed: &OpensslSpeed, size: usize) -> Option<f64> {
    if !speed.has_bytes {
        return None;
    }
    let mut cmd = Command::new("openssl");
    cmd.arg("speed");
    if speed.has_elapsed {
        cmd.arg("-elapsed");
    }
    cmd.args(["-evp", "aes-256-gcm", "-bytes", &size.to_string()]);
    if speed.has_seconds {
        cmd.args(["-seconds", &OPENSSL_SECONDS.to_string()]);
    }
    let out = cmd.output().ok()?;
    if !out.status.success() {
        return None;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    parse_table(&stdout)
        .or_else(|| parse_doing(&stderr, size))
        .or_else(|| parse_doing(&stdout, size))
}

fn size_label(size: usize) -> String {
    if size >= 1024 * 1024 && size.is_multiple_of(1024 * 1024) {
        format!("{} MiB", size / (1024 * 1024))
    } else if size >= 1024 && size.is_multiple_of(1024) {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

fn cpu_note() -> String {
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    {
        let aes = std::arch::is_x86_feature_detected!("aes");
        let clmul = std::arch::is_x86_feature_detected!("pclmulqdq");
        let yes = |b: bool| if b { "yes" } else { "no" };
        format!(
            "CPU: AES-NI {}, PCLMULQDQ {}. The aes crate (0.8) and polyval (0.6, under ghash) detect \
             these at run time via cpufeatures and use their own Rust intrinsics backends when \
             present, else constant-time software (fixsliced AES, soft POLYVAL); so aes-gcm here \
             runs {} (unless built with --cfg aes_force_soft / polyval_force_soft). openssl uses \
             its hand-written AES-NI/PCLMUL assembly (AES and GHASH stitched together where AVX is \
             available).",
            yes(aes),
            yes(clmul),
            match (aes, clmul) {
                (true, true) => "on AES-NI + PCLMULQDQ",
                (true, false) => "AES on AES-NI, GHASH in software",
                (false, true) => "AES in software, GHASH on PCLMULQDQ",
                (false, false) => "entirely in software",
            }
        )
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
    {
        "CPU: not x86; the aes crate uses its software backend unless built with \
         --cfg aes_armv8 (aarch64). openssl uses its own assembly where it has some."
            .to_string()
    }
}

fn main() -> Result<(), Error> {
    let profile = if cfg!(debug_assertions) {
        "DEBUG build (figures meaningless; use cargo bench)"
    } else {
        "release build"
    };
    println!(
        "AES-256-GCM throughput, {profile}, single thread: keyproof's aes-gcm 0.10 in place \
         (96-bit nonce, 128-bit tag, no AAD, >= {:.0} s per cell) vs openssl speed -evp \
         aes-256-gcm (encrypt). MB/s = 10^6 bytes/s.",
        MIN_WALL.as_secs_f64()
    );
    println!("{}", cpu_note());

    let openssl = probe_openssl();
    match &openssl {
        Some(o) => {
            println!("openssl: {}", o.version);
            if !o.has_bytes {
                println!("openssl: `speed` has no -bytes option here; custom sizes unavailable");
            }
        }
        None => println!("openssl: not available (not found or `openssl version` failed)"),
    }
    println!();

    let key = Aes256Gcm::generate_key(OsRng);
    let cipher = Aes256Gcm::new(&key);

    println!(
        "{:>8}  {:>14}  {:>14}  {:>14}  {:>16}",
        "size", "keyproof enc", "keyproof dec", "openssl enc", "keyproof/openssl"
    );
    println!(
        "{:>8}  {:>14}  {:>14}  {:>14}  {:>16}",
        "", "MB/s", "MB/s", "MB/s", "(encrypt)"
    );
    for size in SIZES {
        let enc = bench_encrypt(&cipher, size)? / 1e6;
        let dec = bench_decrypt(&cipher, size)? / 1e6;
        let ossl = openssl.as_ref().and_then(|o| openssl_rate(o, size));
        let (ossl_col, ratio_col) = match ossl {
            Some(rate) => {
                let mb = rate / 1e6;
                (format!("{mb:.1}"), format!("{:.2}x", enc / mb))
            }
            None => ("not available".to_string(), "-".to_string()),
        };
        println!(
            "{:>8}  {:>14.1}  {:>14.1}  {:>14}  {:>16}",
            size_label(size),
            enc,
            dec,
            ossl_col,
            ratio_col
        );
        if ossl.is_none() {
            println!("{:>8}  openssl: not available", "");
        }
    }
    Ok(())
}
