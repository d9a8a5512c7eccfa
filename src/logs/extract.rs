//! The fast path for reading a KMS record: the few members keyproof uses, taken from a record
//! the structural scan has already delimited, without a general JSON parser.
//!
//! A CloudTrail record is about 1.5 KB of which keyproof needs a dozen short strings. This walks
//! the record's members, skipping every value it does not need by its brackets and quotes
//! (eight bytes at a time), and borrows the strings it does need straight from the buffer. It
//! handles the shape CloudTrail writes; anything else — an escape in a key or in a wanted
//! string, a wanted member twice, a wanted member of the wrong type, invalid UTF-8 — makes it
//! give up (`None`), and the caller parses the record in full with serde, which then reports
//! the problem exactly as it always did. A test holds the two paths to the same result.

use super::record::{RawIdentity, RawIssuer, RawRecord, RawRequest, RawResource, RawSession};
use super::structure::{Index, separated};
use std::borrow::Cow;

/// A record and its structural index (see [`Index`]).
struct Doc<'a, 'i> {
    /// The record, checked to be UTF-8.
    text: &'a str,
    raw: &'a [u8],
    at: &'i [u32],
    pair: &'i [u32],
    /// Whether the record holds a backslash anywhere (most do not; then no string can hold an
    /// escape and none is searched for one).
    escapes: bool,
}

/// A member's value: its text, and for a string or container the index entry it starts at.
#[derive(Clone, Copy)]
struct Value<'a> {
    text: &'a str,
    entry: Option<usize>,
    /// Whether the value may hold an escape.
    escapes: bool,
}

fn ws(raw: &[u8], mut at: usize) -> usize {
    while raw.get(at).is_some_and(|b| b.is_ascii_whitespace()) {
        at += 1;
    }
    at
}

impl<'a> Doc<'a, '_> {
    fn pos(&self, entry: usize) -> Option<usize> {
        self.at.get(entry).map(|&p| p as usize)
    }

    fn byte(&self, entry: usize) -> Option<u8> {
        self.raw.get(self.pos(entry)?).copied()
    }

    /// The entry of the bracket closing the container opened at `entry`.
    fn close_of(&self, entry: usize) -> Option<usize> {
        let close = *self.pair.get(entry)? as usize;
        (close > entry).then_some(close)
    }

    /// Walks the object opened at `entry`, handing each member to `on` (which returns `None` to
    /// give up). Returns the entry of its closing brace.
    fn object(
        &self,
        entry: usize,
        mut on: impl FnMut(&'a [u8], Value<'a>) -> Option<()>,
    ) -> Option<usize> {
        let raw = self.raw;
        (self.byte(entry)? == b'{').then_some(())?;
        let mut prev_end = self.pos(entry)? + 1;
        let mut i = entry + 1;
        let mut first = true;
        loop {
            let p = self.pos(i)?;
            if raw[p] == b'}' {
                return separated(raw, prev_end, p, b',', 0).then_some(i);
            }
            // A key: two quotes, after exactly one comma (none before the first).
            (raw[p] == b'"' && separated(raw, prev_end, p, b',', usize::from(!first)))
                .then_some(())?;
            first = false;
            let key_end = self.pos(i + 1)?;
            let key = &raw[p + 1..key_end];
            if self.escapes && key.contains(&b'\\') {
                return None;
            }
            let colon = ws(raw, key_end + 1);
            (raw.get(colon) == Some(&b':')).then_some(())?;
            let start = ws(raw, colon + 1);
            let (value, next, end) = match *raw.get(start)? {
                b'"' => {
                    (self.pos(i + 2)? == start).then_some(())?;
                    let end = self.pos(i + 3)? + 1;
                    (Some(i + 2), i + 4, end)
                }
                b'{' | b'[' => {
                    (self.pos(i + 2)? == start).then_some(())?;
                    let close = self.close_of(i + 2)?;
                    (Some(i + 2), close + 1, self.pos(close)? + 1)
                }
                _ => {
                    let len = raw[start..]
                        .iter()
                        .position(|&b| !(b.is_ascii_alphanumeric() || b"+-.".contains(&b)))?;
                    let word = &raw[start..start + len];
                    let scalar = matches!(word, b"true" | b"false" | b"null")
                        || word
                            .first()
                            .is_some_and(|b| b.is_ascii_digit() || *b == b'-');
                    scalar.then_some(())?;
                    (None, i + 2, start + len)
                }
            };
            on(
                key,
                Value {
                    text: self.text.get(start..end)?,
                    entry: value,
                    escapes: self.escapes,
                },
            )?;
            prev_end = end;
            i = next;
        }
    }

    /// The objects of the array opened at `entry`; anything but objects gives up.
    fn objects(&self, entry: usize, mut on: impl FnMut(usize) -> Option<()>) -> Option<()> {
        let raw = self.raw;
        (self.byte(entry)? == b'[').then_some(())?;
        let mut prev_end = self.pos(entry)? + 1;
        let mut i = entry + 1;
        let mut first = true;
        loop {
            let p = self.pos(i)?;
            if raw[p] == b']' {
                return separated(raw, prev_end, p, b',', 0).then_some(());
            }
            (raw[p] == b'{' && separated(raw, prev_end, p, b',', usize::from(!first)))
                .then_some(())?;
            first = false;
            on(i)?;
            let close = self.close_of(i)?;
            prev_end = self.pos(close)? + 1;
            i = close + 1;
        }
    }
}

/// A wanted string member: `null` is absent; a string without escapes is borrowed; anything
/// else gives up.
fn text(value: Value<'_>) -> Option<Option<Cow<'_, str>>> {
    if value.text == "null" {
        return Some(None);
    }
    let inner = value.text.strip_prefix('"')?.strip_suffix('"')?;
    if value.escapes && inner.contains('\\') {
        return None;
    }
    Some(Some(Cow::Borrowed(inner)))
}

/// Sets a wanted member once; a second occurrence gives up (serde refuses duplicates).
fn once<T>(slot: &mut Option<T>, seen: &mut u32, bit: u32, value: T) -> Option<()> {
    if *seen & bit != 0 {
        return None;
    }
    *seen |= bit;
    *slot = Some(value);
    Some(())
}

/// A wanted object member: `null` is absent.
fn object<T>(value: Value<'_>, read: impl FnOnce(usize) -> Option<T>) -> Option<Option<T>> {
    match value.entry {
        None if value.text == "null" => Some(None),
        Some(entry) => read(entry).map(Some),
        None => None,
    }
}

fn issuer<'a>(d: &Doc<'a, '_>, entry: usize) -> Option<RawIssuer<'a>> {
    let mut arn = None;
    let mut seen = 0;
    d.object(entry, |k, v| match k {
        b"arn" => once(&mut arn, &mut seen, 1, text(v)?),
        _ => Some(()),
    })?;
    Some(RawIssuer { arn: arn.flatten() })
}

fn session<'a>(d: &Doc<'a, '_>, entry: usize) -> Option<RawSession<'a>> {
    let mut session_issuer = None;
    let mut seen = 0;
    d.object(entry, |k, v| match k {
        b"sessionIssuer" => once(
            &mut session_issuer,
            &mut seen,
            1,
            object(v, |e| issuer(d, e))?,
        ),
        _ => Some(()),
    })?;
    Some(RawSession {
        session_issuer: session_issuer.flatten(),
    })
}

fn identity<'a>(d: &Doc<'a, '_>, entry: usize) -> Option<RawIdentity<'a>> {
    let (mut kind, mut principal_id, mut arn, mut account_id, mut invoked_by) =
        (None, None, None, None, None);
    let mut session_context = None;
    let mut seen = 0;
    d.object(entry, |k, v| match k {
        b"type" => once(&mut kind, &mut seen, 1, text(v)?),
        b"principalId" => once(&mut principal_id, &mut seen, 2, text(v)?),
        b"arn" => once(&mut arn, &mut seen, 4, text(v)?),
        b"accountId" => once(&mut account_id, &mut seen, 8, text(v)?),
        b"invokedBy" => once(&mut invoked_by, &mut seen, 16, text(v)?),
        b"sessionContext" => once(
            &mut session_context,
            &mut seen,
            32,
            object(v, |e| session(d, e))?,
        ),
        _ => Some(()),
    })?;
    Some(RawIdentity {
        kind: kind.flatten(),
        principal_id: principal_id.flatten(),
        arn: arn.flatten(),
        account_id: account_id.flatten(),
        invoked_by: invoked_by.flatten(),
        session_context: session_context.flatten(),
    })
}

fn request<'a>(d: &Doc<'a, '_>, entry: usize) -> Option<RawRequest<'a>> {
    let mut key_id = None;
    let mut seen = 0;
    d.object(entry, |k, v| match k {
        b"keyId" => once(&mut key_id, &mut seen, 1, text(v)?),
        _ => Some(()),
    })?;
    Some(RawRequest {
        key_id: key_id.flatten(),
    })
}

fn resource<'a>(d: &Doc<'a, '_>, entry: usize) -> Option<RawResource<'a>> {
    let (mut arn, mut kind) = (None, None);
    let mut seen = 0;
    d.object(entry, |k, v| match k {
        b"ARN" => once(&mut arn, &mut seen, 1, text(v)?),
        b"type" => once(&mut kind, &mut seen, 2, text(v)?),
        _ => Some(()),
    })?;
    Some(RawResource {
        arn: arn.flatten(),
        kind: kind.flatten(),
    })
}

fn resources<'a>(d: &Doc<'a, '_>, entry: usize) -> Option<Vec<RawResource<'a>>> {
    let mut out = Vec::new();
    d.objects(entry, |e| {
        out.push(resource(d, e)?);
        Some(())
    })?;
    Some(out)
}

/// The record's members keyproof uses, or `None` when the record is not of the usual shape (the
/// caller then parses it in full). `index` is scratch space for its structural index.
pub fn record<'a>(record: &'a str, index: &mut Index) -> Option<RawRecord<'a>> {
    let raw = record.as_bytes();
    index.build(raw).then_some(())?;
    let d = Doc {
        text: record,
        raw,
        at: &index.at,
        pair: &index.pair,
        escapes: index.escapes,
    };
    let (mut event_id, mut event_time, mut event_source, mut event_name) = (None, None, None, None);
    let (mut aws_region, mut recipient, mut source_ip, mut error_code) = (None, None, None, None);
    let (mut user_identity, mut request_parameters, mut response, mut resource_list) =
        (None, None, None, None);
    let mut seen = 0u32;
    let end = d.object(0, |k, v| match k {
        b"eventID" => once(&mut event_id, &mut seen, 1, text(v)?),
        b"eventTime" => once(&mut event_time, &mut seen, 2, text(v)?),
        b"eventSource" => once(&mut event_source, &mut seen, 4, text(v)?),
        b"eventName" => once(&mut event_name, &mut seen, 8, text(v)?),
        b"awsRegion" => once(&mut aws_region, &mut seen, 16, text(v)?),
        b"recipientAccountId" => once(&mut recipient, &mut seen, 32, text(v)?),
        b"sourceIPAddress" => once(&mut source_ip, &mut seen, 64, text(v)?),
        b"errorCode" => once(&mut error_code, &mut seen, 128, text(v)?),
        b"userIdentity" => once(
            &mut user_identity,
            &mut seen,
            256,
            object(v, |e| identity(&d, e))?,
        ),
        b"requestParameters" => once(
            &mut request_parameters,
            &mut seen,
            512,
            object(v, |e| request(&d, e))?,
        ),
        b"responseElements" => once(&mut response, &mut seen, 1024, ()),
        b"resources" => once(
            &mut resource_list,
            &mut seen,
            2048,
            object(v, |e| resources(&d, e))?,
        ),
        _ => Some(()),
    })?;
    // The record is the whole input: nothing follows its closing brace.
    (end + 1 == d.at.len() && d.pos(end)? + 1 == raw.len()).then_some(())?;
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
        let fast = record(base, &mut Index::default()).expect("usual shape");
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
        ];
        for raw in &same {
            assert_eq!(
                record(raw, &mut Index::default()).as_ref(),
                serde(raw).as_ref(),
                "{raw}"
            );
            assert!(record(raw, &mut Index::default()).is_some(), "{raw}");
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
        ];
        for raw in &unusual {
            assert!(record(raw, &mut Index::default()).is_none(), "{raw}");
        }
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
                let quick = record(text, &mut Index::default());
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
