//! The fast path for reading a KMS record: the few members keyproof uses, taken from a record
//! the structural scan has already delimited, without a general JSON parser.
//!
//! A CloudTrail record is about 1.5 KB of which keyproof needs a dozen short strings. The
//! record's quotes and brackets are first marked in bit masks ([`Index`], 64 bytes at a time);
//! then one pass walks its members from one structural character to the next ([`Tokens`]),
//! jumps over each unwanted container to its closing bracket, and borrows the strings it needs
//! straight from the buffer. It handles the shape CloudTrail writes; anything else — an escape
//! in a key or in a wanted string, a wanted member twice, a wanted member of the wrong type,
//! brackets that do not match, a missing or extra separator, invalid UTF-8 — makes it give up
//! (`None`), and the caller parses the record in full with serde, which then reports the
//! problem exactly as it always did. A test holds the two paths to the same result.

use super::record::{RawIdentity, RawIssuer, RawRecord, RawRequest, RawResource, RawSession};
use super::structure::{Index, Tokens, separated};
use std::borrow::Cow;

/// A record and its index.
struct Doc<'a, 'i> {
    /// The record, checked to be UTF-8.
    text: &'a str,
    raw: &'a [u8],
    index: &'i Index,
}

/// A wanted member's value and the position just past it.
type Read<T> = Option<(T, usize)>;

#[inline]
fn ws(raw: &[u8], mut at: usize) -> usize {
    while raw.get(at).is_some_and(|b| b.is_ascii_whitespace()) {
        at += 1;
    }
    at
}

impl<'a> Doc<'a, '_> {
    /// Takes the next structural character, which must be the one at `at` (the opening quote or
    /// bracket of the value there).
    #[inline]
    fn take(&self, t: &mut Tokens<'_>, at: usize) -> Option<()> {
        (t.next()? == at).then_some(())
    }

    /// Walks the object opened at `at` (whose brace `t` has taken), handing each member's key
    /// and the position of its value to `member`, which reads or skips the value (taking its
    /// structural characters from `t`) and returns the position just past it, or `None` to give
    /// up. Returns the position just past the object's closing brace.
    fn object(
        &self,
        t: &mut Tokens<'_>,
        at: usize,
        mut member: impl FnMut(&mut Tokens<'_>, &'a [u8], usize) -> Option<usize>,
    ) -> Option<usize> {
        let raw = self.raw;
        let mut prev = at + 1;
        let mut first = true;
        loop {
            let p = t.next()?;
            match raw.get(p) {
                Some(b'}') => return separated(raw, prev, p, b',', 0).then_some(p + 1),
                Some(b'"') if separated(raw, prev, p, b',', usize::from(!first)) => {}
                _ => return None,
            }
            first = false;
            // The next structural character after an opening quote is its closing quote.
            let key_end = t.next()?;
            let key = raw.get(p + 1..key_end)?;
            if self.index.escapes && key.contains(&b'\\') {
                return None;
            }
            let colon = ws(raw, key_end + 1);
            (raw.get(colon) == Some(&b':')).then_some(())?;
            prev = member(t, key, ws(raw, colon + 1))?;
        }
    }

    /// Walks the array opened at `at` (whose bracket `t` has taken), which must hold only
    /// objects, handing each object's position to `element` (which takes its brace and returns
    /// the position just past it).
    fn objects(
        &self,
        t: &mut Tokens<'_>,
        at: usize,
        mut element: impl FnMut(&mut Tokens<'_>, usize) -> Option<usize>,
    ) -> Option<usize> {
        let raw = self.raw;
        let mut prev = at + 1;
        let mut first = true;
        loop {
            let p = t.next()?;
            match raw.get(p) {
                Some(b']') => return separated(raw, prev, p, b',', 0).then_some(p + 1),
                Some(b'{') if separated(raw, prev, p, b',', usize::from(!first)) => {}
                _ => return None,
            }
            first = false;
            prev = element(t, p)?;
        }
    }

    /// The end of a scalar (`true`, `false`, `null` or a number) at `at`.
    #[inline]
    fn scalar(&self, at: usize) -> Option<usize> {
        let rest = self.raw.get(at..)?;
        let len = rest
            .iter()
            .position(|&b| !(b.is_ascii_alphanumeric() || b"+-.".contains(&b)))?;
        let word = &rest[..len];
        let scalar = matches!(word, b"true" | b"false" | b"null")
            || word
                .first()
                .is_some_and(|b| b.is_ascii_digit() || *b == b'-');
        scalar.then_some(at + len)
    }

    /// Skips the value at `at`.
    #[inline]
    fn skip(&self, t: &mut Tokens<'_>, at: usize) -> Option<usize> {
        match *self.raw.get(at)? {
            b'"' => {
                self.take(t, at)?;
                Some(t.next()? + 1)
            }
            b'{' | b'[' => {
                let end = self.index.close_of(self.raw, at)? + 1;
                t.seek(end);
                Some(end)
            }
            _ => self.scalar(at),
        }
    }

    /// Whether the value at `at` is `null`.
    #[inline]
    fn null(&self, at: usize) -> bool {
        self.raw.get(at..at + 4) == Some(b"null") && self.scalar(at) == Some(at + 4)
    }

    /// A wanted string: `null` is absent; a string without escapes is borrowed; anything else
    /// gives up.
    #[inline]
    fn text(&self, t: &mut Tokens<'_>, at: usize) -> Read<Option<Cow<'a, str>>> {
        if self.raw.get(at) != Some(&b'"') {
            return self.null(at).then_some((None, at + 4));
        }
        self.take(t, at)?;
        let end = t.next()?;
        let inner = self.text.get(at + 1..end)?;
        if self.index.escapes && inner.contains('\\') {
            return None;
        }
        Some((Some(Cow::Borrowed(inner)), end + 1))
    }

    /// A wanted object, or array (by `open`), read by `read` once its bracket is taken: `null`
    /// is absent.
    fn nested<T>(
        &self,
        t: &mut Tokens<'_>,
        at: usize,
        open: u8,
        read: impl FnOnce(&mut Tokens<'_>) -> Read<T>,
    ) -> Read<Option<T>> {
        if self.raw.get(at) == Some(&open) {
            self.take(t, at)?;
            return read(t).map(|(v, end)| (Some(v), end));
        }
        self.null(at).then_some((None, at + 4))
    }
}

/// Sets a wanted member once; a second occurrence gives up (serde refuses duplicates).
#[inline]
fn once<T>(slot: &mut Option<T>, seen: &mut u32, bit: u32, read: Read<T>) -> Option<usize> {
    if *seen & bit != 0 {
        return None;
    }
    *seen |= bit;
    let (value, end) = read?;
    *slot = Some(value);
    Some(end)
}

fn issuer<'a>(d: &Doc<'a, '_>, t: &mut Tokens<'_>, at: usize) -> Read<RawIssuer<'a>> {
    let mut arn = None;
    let mut seen = 0;
    let end = d.object(t, at, |t, k, v| match k {
        b"arn" => once(&mut arn, &mut seen, 1, d.text(t, v)),
        _ => d.skip(t, v),
    })?;
    Some((RawIssuer { arn: arn.flatten() }, end))
}

fn session<'a>(d: &Doc<'a, '_>, t: &mut Tokens<'_>, at: usize) -> Read<RawSession<'a>> {
    let mut session_issuer = None;
    let mut seen = 0;
    let end = d.object(t, at, |t, k, v| match k {
        b"sessionIssuer" => once(
            &mut session_issuer,
            &mut seen,
            1,
            d.nested(t, v, b'{', |t| issuer(d, t, v)),
        ),
        _ => d.skip(t, v),
    })?;
    let session = RawSession {
        session_issuer: session_issuer.flatten(),
    };
    Some((session, end))
}

fn identity<'a>(d: &Doc<'a, '_>, t: &mut Tokens<'_>, at: usize) -> Read<RawIdentity<'a>> {
    let (mut kind, mut principal_id, mut arn, mut account_id, mut invoked_by) =
        (None, None, None, None, None);
    let mut session_context = None;
    let mut seen = 0;
    let end = d.object(t, at, |t, k, v| match k {
        b"type" => once(&mut kind, &mut seen, 1, d.text(t, v)),
        b"principalId" => once(&mut principal_id, &mut seen, 2, d.text(t, v)),
        b"arn" => once(&mut arn, &mut seen, 4, d.text(t, v)),
        b"accountId" => once(&mut account_id, &mut seen, 8, d.text(t, v)),
        b"invokedBy" => once(&mut invoked_by, &mut seen, 16, d.text(t, v)),
        b"sessionContext" => once(
            &mut session_context,
            &mut seen,
            32,
            d.nested(t, v, b'{', |t| session(d, t, v)),
        ),
        _ => d.skip(t, v),
    })?;
    let identity = RawIdentity {
        kind: kind.flatten(),
        principal_id: principal_id.flatten(),
        arn: arn.flatten(),
        account_id: account_id.flatten(),
        invoked_by: invoked_by.flatten(),
        session_context: session_context.flatten(),
    };
    Some((identity, end))
}

fn request<'a>(d: &Doc<'a, '_>, t: &mut Tokens<'_>, at: usize) -> Read<RawRequest<'a>> {
    let mut key_id = None;
    let mut seen = 0;
    let end = d.object(t, at, |t, k, v| match k {
        b"keyId" => once(&mut key_id, &mut seen, 1, d.text(t, v)),
        _ => d.skip(t, v),
    })?;
    Some((
        RawRequest {
            key_id: key_id.flatten(),
        },
        end,
    ))
}

fn resource<'a>(d: &Doc<'a, '_>, t: &mut Tokens<'_>, at: usize) -> Read<RawResource<'a>> {
    let (mut arn, mut kind) = (None, None);
    let mut seen = 0;
    let end = d.object(t, at, |t, k, v| match k {
        b"ARN" => once(&mut arn, &mut seen, 1, d.text(t, v)),
        b"type" => once(&mut kind, &mut seen, 2, d.text(t, v)),
        _ => d.skip(t, v),
    })?;
    let resource = RawResource {
        arn: arn.flatten(),
        kind: kind.flatten(),
    };
    Some((resource, end))
}

fn resources<'a>(d: &Doc<'a, '_>, t: &mut Tokens<'_>, at: usize) -> Read<Vec<RawResource<'a>>> {
    let mut out = Vec::new();
    let end = d.objects(t, at, |t, e| {
        let (r, end) = resource(d, t, e)?;
        out.push(r);
        Some(end)
    })?;
    Some((out, end))
}

/// The record's members keyproof uses, or `None` when the record is not of the usual shape (the
/// caller then parses it in full). `index` is scratch space for its structural index.
pub fn record<'a>(raw: &'a [u8], index: &mut Index) -> Option<RawRecord<'a>> {
    index.build(raw).then_some(())?;
    let text = if index.ascii {
        // SAFETY: every byte is below 0x80 (the index checked each one): ASCII is UTF-8.
        unsafe { std::str::from_utf8_unchecked(raw) }
    } else {
        simdutf8::basic::from_utf8(raw).ok()?
    };
    let d = Doc { text, raw, index };
    let (mut event_id, mut event_time, mut event_source, mut event_name) = (None, None, None, None);
    let (mut aws_region, mut recipient, mut source_ip, mut error_code) = (None, None, None, None);
    let (mut user_identity, mut request_parameters, mut response, mut resource_list) =
        (None, None, None, None);
    let mut seen = 0u32;
    let start = ws(raw, 0);
    let mut t = index.tokens(0);
    d.take(&mut t, start)?;
    let end = d.object(&mut t, start, |t, k, v| match k {
        b"eventID" => once(&mut event_id, &mut seen, 1, d.text(t, v)),
        b"eventTime" => once(&mut event_time, &mut seen, 2, d.text(t, v)),
        b"eventSource" => once(&mut event_source, &mut seen, 4, d.text(t, v)),
        b"eventName" => once(&mut event_name, &mut seen, 8, d.text(t, v)),
        b"awsRegion" => once(&mut aws_region, &mut seen, 16, d.text(t, v)),
        b"recipientAccountId" => once(&mut recipient, &mut seen, 32, d.text(t, v)),
        b"sourceIPAddress" => once(&mut source_ip, &mut seen, 64, d.text(t, v)),
        b"errorCode" => once(&mut error_code, &mut seen, 128, d.text(t, v)),
        b"userIdentity" => once(
            &mut user_identity,
            &mut seen,
            256,
            d.nested(t, v, b'{', |t| identity(&d, t, v)),
        ),
        b"requestParameters" => once(
            &mut request_parameters,
            &mut seen,
            512,
            d.nested(t, v, b'{', |t| request(&d, t, v)),
        ),
        b"responseElements" => once(
            &mut response,
            &mut seen,
            1024,
            d.skip(t, v).map(|e| ((), e)),
        ),
        b"resources" => once(
            &mut resource_list,
            &mut seen,
            2048,
            d.nested(t, v, b'[', |t| resources(&d, t, v)),
        ),
        _ => d.skip(t, v),
    })?;
    // The record is the whole input: nothing but whitespace follows its closing brace.
    (ws(raw, end) == raw.len()).then_some(())?;
    // Each slot holds the member's own Option (absent or null → None) once it was seen.
    Some(RawRecord {
        event_id: event_id.flatten(),
        event_time: event_time.flatten(),
        event_source: event_source.flatten(),
        event_name: event_name.flatten(),
        aws_region: aws_region.flatten(),
        recipient_account_id: recipient.flatten(),
        source_ip_address: source_ip.flatten(),
        error_code: error_code.flatten(),
        user_identity: user_identity.flatten(),
        request_parameters: request_parameters.flatten(),
        response_elements: response.is_some(),
        resources: resource_list.flatten(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde(raw: &str) -> Option<RawRecord<'_>> {
        serde_json::from_str(raw).ok()
    }

    #[test]
    fn the_fast_path_reads_what_serde_reads_or_gives_up() {
        let base = r#"{"eventVersion":"1.09","userIdentity":{"type":"AssumedRole","principalId":"AROA:s","arn":"arn:aws:sts::1:assumed-role/r/s","accountId":"1","sessionContext":{"sessionIssuer":{"type":"Role","arn":"arn:aws:iam::1:role/r"},"attributes":{"mfaAuthenticated":"false"}}},"eventTime":"2026-11-01T09:10:42Z","eventSource":"kms.amazonaws.com","eventName":"Decrypt","awsRegion":"eu-west-1","sourceIPAddress":"10.1.2.3","userAgent":"a \"quoted\" {agent}","requestParameters":{"encryptionContext":{"k}":"v]"},"keyId":"arn:aws:kms:eu-west-1:1:key/k"},"responseElements":null,"eventID":"e-1","readOnly":true,"resources":[{"accountId":"1","type":"AWS::KMS::Key","ARN":"arn:aws:kms:eu-west-1:1:key/k"}],"eventType":"AwsApiCall","n":-1.5e3,"recipientAccountId":"1"}"#;
        let fast = record(base.as_bytes(), &mut Index::default()).expect("usual shape");
        assert_eq!(Some(&fast), serde(base).as_ref());
        assert!(fast.response_elements);
        assert_eq!(fast.event_id.as_deref(), Some("e-1"));

        // Variants the fast path reads the same as serde.
        let same = [
            base.replace(r#","eventID":"e-1""#, r#", "eventID" :	"e-1" "#),
            base.replace(r#""responseElements":null,"#, ""),
            base.replace(r#""resources":[{"#, r#""resources":[{"x":[1,{"y":"]"}]},{"#),
            base.replace(r#""resources":[{"accountId":"1","type":"AWS::KMS::Key","ARN":"arn:aws:kms:eu-west-1:1:key/k"}]"#, r#""resources":[]"#),
            base.replace(r#""errorCode""#, "").replace(r#""eventType":"AwsApiCall""#, r#""errorCode":null"#),
            base.replace(r#""userIdentity":{"#, r#""userIdentity":{"eventSource":"s3.amazonaws.com","#),
            // Not ASCII: the UTF-8 is checked, then read the same.
            base.replace("{agent}", "{agént ☃}").replace("eu-west-1:1:key/k", "eu-west-1:1:key/ké"),
        ];
        for raw in &same {
            assert_eq!(
                record(raw.as_bytes(), &mut Index::default()).as_ref(),
                serde(raw).as_ref(),
                "{raw}"
            );
            assert!(
                record(raw.as_bytes(), &mut Index::default()).is_some(),
                "{raw}"
            );
        }
        // Shapes it leaves to serde: escapes in wanted strings or keys, duplicates, wrong types.
        let unusual = [
            base.replace(r#""eventName":"Decrypt""#, r#""eventName":"Decr\u0079pt""#),
            base.replace(r#""eventName""#, r#""event\u004eame""#),
            base.replace(
                r#""eventName":"Decrypt""#,
                r#""eventName":"Decrypt","eventName":"Encrypt""#,
            ),
            base.replace(r#""eventTime":"2026-11-01T09:10:42Z""#, r#""eventTime":12"#),
            base.replace(r#""resources":[{"#, r#""resources":[7,{"#),
            base.replace(r#""n":-1.5e3"#, r#""n":[{]}"#),
            // Broken separators, at the record's level and inside a wanted object.
            base.replace(r#","eventID""#, r#" "eventID""#),
            base.replace(
                r#""recipientAccountId":"1"}"#,
                r#""recipientAccountId":"1",}"#,
            ),
            base.replace(
                r#""accountId":"1","sessionContext""#,
                r#""accountId":"1",,"sessionContext""#,
            ),
            base.replace(r#""resources":[{"#, r#""resources":[,{"#),
            base.replace(r#""eventID":"e-1""#, r#""eventID" "e-1""#),
        ];
        for raw in &unusual {
            assert!(
                record(raw.as_bytes(), &mut Index::default()).is_none(),
                "{raw}"
            );
        }
        // The broken ones are refused by serde as well: the file is then reported.
        for raw in &unusual[6..] {
            assert!(serde(raw).is_none(), "{raw}");
        }
        // A byte that is not UTF-8, even in a string the fast path would skip: it gives up and
        // leaves the record to serde.
        let mut invalid = base.as_bytes().to_vec();
        let at = base.find("{agent}").expect("user agent");
        invalid[at + 1] = 0xff;
        assert!(record(&invalid, &mut Index::default()).is_none());
    }

    #[test]
    fn every_generated_record_reads_the_same_both_ways() {
        let dir = tempfile::tempdir().expect("tempdir");
        let start = "2026-11-01T00:00:00Z".parse().expect("time");
        let spec = crate::logs::synthetic::Spec {
            hours: 2,
            ..crate::logs::synthetic::Spec::small(start)
        };
        crate::logs::synthetic::write(dir.path(), &spec).expect("generated");
        let mut files = Vec::new();
        let mut stack = vec![dir.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("dir").flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.to_string_lossy().ends_with(".json.gz") {
                    files.push(p);
                }
            }
        }
        let (mut compared, mut fast) = (0, 0);
        for path in files {
            let mut json = Vec::new();
            let gz = std::fs::read(&path).expect("file");
            if std::io::Read::read_to_end(
                &mut flate2::read::MultiGzDecoder::new(&gz[..]),
                &mut json,
            )
            .is_err()
            {
                continue; // the deliberately truncated file
            }
            let Some(start) = json.iter().position(|&b| b == b'[') else {
                continue;
            };
            let Ok((_, spans)) = crate::logs::structure::spans(&json[start..]) else {
                continue; // the deliberately malformed file
            };
            for (from, to) in spans {
                let raw = &json[start + from..start + to];
                let text = std::str::from_utf8(raw).expect("utf-8");
                let quick = record(raw, &mut Index::default());
                fast += usize::from(quick.is_some());
                if let Some(quick) = quick {
                    assert_eq!(Some(quick), serde(text), "{text}");
                }
                compared += 1;
            }
        }
        assert!(compared > 1000, "{compared} records");
        assert_eq!(fast, compared, "every generated record has the usual shape");
    }
}
