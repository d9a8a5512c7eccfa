//! Known-answer tests of AES-256-GCM, run before anything is encrypted (a FIPS-style power-on
//! self-test).
//!
//! The embedded vectors are taken verbatim from NIST CAVP `gcmEncryptExtIV256.rsp` and
//! `gcmDecrypt256.rsp` (96-bit IV, 128-bit tag: the parameters the self-test uses), including one
//! that must fail authentication. The test suite runs the complete CAVP files through
//! [`check_vector`] as well.

use aes_gcm::aead::consts::{U12, U13, U14, U15, U16};
use aes_gcm::aead::generic_array::ArrayLength;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce};

/// One AES-256-GCM test vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vector {
    pub name: String,
    pub key: Vec<u8>,
    pub iv: Vec<u8>,
    pub aad: Vec<u8>,
    pub plaintext: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub tag: Vec<u8>,
    /// The vector must fail authentication (CAVP `FAIL`); `plaintext` is then empty.
    pub must_fail: bool,
}

/// The outcome of the known-answer tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KatOutcome {
    pub vectors: u32,
    /// One line per vector that did not give the known answer.
    pub failures: Vec<String>,
}

impl KatOutcome {
    pub fn passed(&self) -> bool {
        self.failures.is_empty() && self.vectors > 0
    }
}

/// Why a vector could not be checked at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VectorError {
    #[error("IV of {0} bits: keyproof's AES-256-GCM uses 96-bit IVs only")]
    UnsupportedIv(usize),
    #[error("tag of {0} bits: supported are 96 to 128 bits")]
    UnsupportedTag(usize),
    #[error("key of {0} bits: the self-test uses AES-256")]
    UnsupportedKey(usize),
}

/// Checks one vector: encryption gives the ciphertext and tag (unless it must fail), and
/// decryption gives the plaintext or, for a `FAIL` vector, is rejected. `Ok(None)` means the
/// known answer was reproduced; `Ok(Some(reason))` means it was not.
pub fn check_vector(v: &Vector) -> Result<Option<String>, VectorError> {
    if v.key.len() != 32 {
        return Err(VectorError::UnsupportedKey(v.key.len() * 8));
    }
    if v.iv.len() != 12 {
        return Err(VectorError::UnsupportedIv(v.iv.len() * 8));
    }
    match v.tag.len() {
        16 => Ok(check_with::<U16>(v)),
        15 => Ok(check_with::<U15>(v)),
        14 => Ok(check_with::<U14>(v)),
        13 => Ok(check_with::<U13>(v)),
        12 => Ok(check_with::<U12>(v)),
        n => Err(VectorError::UnsupportedTag(n * 8)),
    }
}

fn check_with<T>(v: &Vector) -> Option<String>
where
    T: ArrayLength<u8> + aes_gcm::TagSize,
{
    let Ok(cipher) = AesGcm::<Aes256, U12, T>::new_from_slice(&v.key) else {
        return Some("the key was refused".into());
    };
    let nonce = Nonce::<U12>::from_slice(&v.iv);
    let mut sealed = v.ciphertext.clone();
    sealed.extend_from_slice(&v.tag);
    let opened = cipher.decrypt(
        nonce,
        Payload {
            msg: &sealed,
            aad: &v.aad,
        },
    );
    if v.must_fail {
        return opened
            .is_ok()
            .then(|| "a forged tag was accepted".to_string());
    }
    match opened {
        Ok(pt) if pt == v.plaintext => {}
        Ok(_) => return Some("decryption gave the wrong plaintext".into()),
        Err(_) => return Some("a valid ciphertext was rejected".into()),
    }
    match cipher.encrypt(
        nonce,
        Payload {
            msg: &v.plaintext,
            aad: &v.aad,
        },
    ) {
        Ok(ct) if ct == sealed => None,
        Ok(_) => Some("encryption gave the wrong ciphertext or tag".into()),
        Err(_) => Some("encryption failed".into()),
    }
}

/// Runs `vectors`; a vector that cannot be checked counts as a failure.
pub fn run(vectors: &[Vector]) -> KatOutcome {
    let mut failures = Vec::new();
    for v in vectors {
        match check_vector(v) {
            Ok(None) => {}
            Ok(Some(reason)) => failures.push(format!("{}: {reason}", v.name)),
            Err(e) => failures.push(format!("{}: {e}", v.name)),
        }
    }
    KatOutcome {
        vectors: vectors.len() as u32,
        failures,
    }
}

/// The embedded power-on vectors.
pub fn embedded() -> Vec<Vector> {
    let h = |s: &str| hex::decode(s).unwrap_or_default();
    let v = |name: &str, key, iv, aad, pt, ct, tag, must_fail| Vector {
        name: name.to_string(),
        key: h(key),
        iv: h(iv),
        aad: h(aad),
        plaintext: h(pt),
        ciphertext: h(ct),
        tag: h(tag),
        must_fail,
    };
    vec![
        v(
            "gcmEncryptExtIV256 PTlen=128 AADlen=0 Count=0",
            "31bdadd96698c204aa9ce1448ea94ae1fb4a9a0b3c9d773b51bb1822666b8f22",
            "0d18e06c7c725ac9e362e1ce",
            "",
            "2db5168e932556f8089a0622981d017d",
            "fa4362189661d163fcd6a56d8bf0405a",
            "d636ac1bbedd5cc3ee727dc2ab4a9489",
            false,
        ),
        v(
            "gcmEncryptExtIV256 PTlen=408 AADlen=160 Count=0",
            "24501ad384e473963d476edcfe08205237acfd49b5b8f33857f8114e863fec7f",
            "9ff18563b978ec281b3f2794",
            "adb5ec720ccf9898500028bf34afccbcaca126ef",
            "27f348f9cdc0c5bd5e66b1ccb63ad920ff2219d14e8d631b3872265cf117ee86757accb158bd9abb3868fdc0d0b074b5f01b2c",
            "eb7cb754c824e8d96f7c6d9b76c7d26fb874ffbf1d65c6f64a698d839b0b06145dae82057ad55994cf59ad7f67c0fa5e85fab8",
            "bc95c532fecc594c36d1550286a7a3f0",
            false,
        ),
        v(
            "gcmDecrypt256 PTlen=128 AADlen=128 Count=0",
            "54e352ea1d84bfe64a1011096111fbe7668ad2203d902a01458c3bbd85bfce14",
            "df7c3bca00396d0c018495d9",
            "7e968d71b50c1f11fd001f3fef49d045",
            "85fc3dfad9b5a8d3258e4fc44571bd3b",
            "426e0efc693b7be1f3018db7ddbb7e4d",
            "ee8257795be6a1164d7e1d2d6cac77a7",
            false,
        ),
        v(
            "gcmDecrypt256 PTlen=128 AADlen=128 Count=2 (FAIL)",
            "9a0343f850a6427120f764789ffec6d237447b898fbf51d2182f065d3861497d",
            "3deef6f453dd70d92143adcd",
            "dbb8226a624520863db6897017b2a4f8",
            "",
            "e93165935ac18e3a2845d15fe31a9286",
            "f5fc50d18766bc3d9e16dd136d45816b",
            true,
        ),
    ]
}

/// Parses a NIST CAVP GCM response file (`gcmEncryptExtIV*.rsp`, `gcmDecrypt*.rsp`).
pub fn parse_rsp(name: &str, text: &str) -> Vec<Vector> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut current: Option<Vector> = None;
    let finish = |v: Option<Vector>, out: &mut Vec<Vector>| {
        if let Some(v) = v {
            out.push(v);
        }
    };
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            if line.starts_with("[Keylen") {
                section.clear();
            }
            section.push_str(line);
            continue;
        }
        let Some((k, val)) = line.split_once('=').map(|(k, v)| (k.trim(), v.trim())) else {
            if line == "FAIL"
                && let Some(v) = current.as_mut()
            {
                v.must_fail = true;
            }
            continue;
        };
        let bytes = || hex::decode(val).unwrap_or_default();
        match k {
            "Count" => {
                finish(current.take(), &mut out);
                current = Some(Vector {
                    name: format!("{name} {section} Count={val}"),
                    key: Vec::new(),
                    iv: Vec::new(),
                    aad: Vec::new(),
                    plaintext: Vec::new(),
                    ciphertext: Vec::new(),
                    tag: Vec::new(),
                    must_fail: false,
                });
            }
            "Key" | "IV" | "AAD" | "PT" | "CT" | "Tag" => {
                if let Some(v) = current.as_mut() {
                    match k {
                        "Key" => v.key = bytes(),
                        "IV" => v.iv = bytes(),
                        "AAD" => v.aad = bytes(),
                        "PT" => v.plaintext = bytes(),
                        "CT" => v.ciphertext = bytes(),
                        _ => v.tag = bytes(),
                    }
                }
            }
            _ => {}
        }
    }
    finish(current, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_vectors_pass() {
        let outcome = run(&embedded());
        assert_eq!(outcome.vectors, 4);
        assert!(outcome.passed(), "{:?}", outcome.failures);
    }

    #[test]
    fn a_corrupted_vector_fails() {
        let mut vectors = embedded();
        vectors[1].ciphertext[0] ^= 1;
        vectors[3].must_fail = false;
        let outcome = run(&vectors);
        assert!(!outcome.passed());
        assert_eq!(outcome.failures.len(), 2, "{:?}", outcome.failures);
        assert!(outcome.failures[0].contains("PTlen=408"));
    }

    #[test]
    fn parses_cavp_text() {
        let text = "[Keylen = 256]\n[IVlen = 96]\n[PTlen = 0]\n[AADlen = 0]\n[Taglen = 128]\n\nCount = 0\nKey = 00\nIV = 01\nCT = \nAAD = \nTag = 02\nFAIL\n\nCount = 1\nKey = 03\nIV = 04\nCT = \nAAD = \nTag = 05\nPT = \n";
        let v = parse_rsp("x", text);
        assert_eq!(v.len(), 2);
        assert!(v[0].must_fail && !v[1].must_fail);
        assert_eq!(v[1].tag, vec![5]);
        assert!(v[0].name.contains("[PTlen = 0]"));
    }
}
