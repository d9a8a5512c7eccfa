//! Renders a Typst template to PDF bytes, entirely in-process.
//!
//! This is keyproof's PDF backend: the report layer hands over a `.typ`
//! template plus a few virtual data files (typically the evidence as JSON),
//! and gets back a finished PDF. Typst is used as a library; nothing is read
//! from the host:
//!
//! - **Fonts** come only from the fonts embedded in the binary by
//!   `typst-assets` (Libertinus Serif, New Computer Modern, New Computer
//!   Modern Math and DejaVu Sans Mono). Host fonts are never looked at, so the
//!   same input lays out identically on every machine. Text in a script none
//!   of those fonts covers (CJK, emoji, ...) cannot be shown, and under
//!   PDF/A-2b it fails the export (see below).
//! - **Files**: the template is the virtual file `/main.typ`; every entry of
//!   [`PdfInput::files`] is a virtual file at the given path, relative to the
//!   project root. A template reads `("data.json", bytes)` with
//!   `#let data = json("data.json")` (or `read("data.json")` for raw text,
//!   `read("x.bin", encoding: none)` for bytes), and can `#import "lib.typ"`
//!   an extra `.typ` file. The file system, packages and the network are not
//!   reachable.
//! - **Time**: [`PdfInput::timestamp`] is the only clock. It is the PDF
//!   creation date (unless the template sets `document(date: ..)` itself) and
//!   what `datetime.today()` returns (as a date in UTC, shifted by `offset`
//!   when one is given). Together with the stable [`PdfInput::ident`] this
//!   makes the output byte-identical for identical input.
//!
//! Data never becomes markup: a string loaded with `json(..)` is a Typst
//! string value, so `#panic("x")` or `<script>` inside it is printed as text
//! when the template shows it. Only code in the template (and imported `.typ`
//! files) is evaluated; templates must not pass data to `eval`.
//!
//! # PDF/A-2b
//!
//! The output is PDF/A-2b (archival, on PDF 1.7). Typst checks conformance
//! while exporting and turns violations into [`PdfError::Export`]. What that
//! asks of a template:
//!
//! - The document needs a date. The timestamp supplies one, so a template
//!   must *not* use `#set document(date: none)`.
//! - Every character must be covered by an embedded font (no "tofu"): text
//!   that only a missing font could show fails the export instead of
//!   rendering boxes. This includes control characters, CJK and emoji, which
//!   free text from AWS (descriptions, tags) may contain: run such strings
//!   through [`sanitize_text`] before they go into a data file.
//! - No title or language is strictly required by PDF/A-2b, but templates
//!   should still begin with
//!   `#set document(title: [...], author: "...")` and `#set text(lang: "en")`:
//!   the title is what viewers show and what an auditor sees in the document
//!   properties.
//!
//! Compilation warnings are not reported; only errors are.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{LazyLock, OnceLock};

use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc};
use typst::diag::{FileError, FileResult, PackageError, Severity, SourceDiagnostic};
use typst::foundations::{Bytes, Datetime, Duration, Smart};
use typst::layout::Abs;
use typst::syntax::{DiagSpan, DiagSpanKind, FileId, RootedPath, Source, VirtualPath, VirtualRoot};
use typst::text::{Coverage, Font, FontBook, FontVariant, FontVariations};
use typst::utils::LazyHash;
use typst::{Library, LibraryExt, World, WorldExt};
use typst_pdf::{PdfOptions, PdfStandard, PdfStandards, Timestamp};

/// The virtual path of the template itself.
const MAIN_PATH: &str = "/main.typ";

/// At most this many diagnostics are rendered into an error message.
const MAX_DIAGNOSTICS: usize = 20;

/// Why a PDF could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    /// The caller's input is unusable before Typst even runs (a bad virtual
    /// path, a duplicate file, a timestamp Typst cannot represent).
    #[error("invalid PDF input: {0}")]
    InvalidInput(String),
    /// The template failed to compile. Carries Typst's diagnostics rendered as
    /// text, one per paragraph, e.g.
    /// `error: unknown variable: foo\n  --> /main.typ:3:2`.
    #[error("typst template failed to compile:\n{0}")]
    Compile(String),
    /// The template compiled but could not be written as a (PDF/A-2b) PDF.
    /// Same rendering as [`PdfError::Compile`].
    #[error("PDF export failed:\n{0}")]
    Export(String),
}

/// Everything a render needs; see the module documentation.
pub struct PdfInput<'a> {
    /// The main `.typ` source.
    pub template: &'a str,
    /// Extra virtual files by path, e.g. `("data.json", bytes)`, read from the
    /// template with `json("data.json")` or `read(..)`.
    pub files: &'a [(&'a str, &'a [u8])],
    /// The PDF creation date and the value of `datetime.today()`.
    pub timestamp: DateTime<Utc>,
    /// A stable document identifier (the snapshot's sha256), hashed into the
    /// PDF's `/ID`.
    pub ident: &'a str,
}

/// Compiles `input.template` and exports it as PDF/A-2b.
///
/// Identical input gives byte-identical output.
pub fn render_pdf(input: &PdfInput) -> Result<Vec<u8>, PdfError> {
    let world = RenderWorld::new(input)?;

    // The document type (`typst_layout::PagedDocument`, which `typst` does not
    // re-export) is inferred from `typst_pdf::pdf` below.
    let document = typst::compile(&world)
        .output
        .map_err(|diags| PdfError::Compile(render_diagnostics(&world, &diags)))?;

    let standards = PdfStandards::new(&[PdfStandard::A_2b]).map_err(|err| {
        let mut text = err.message().to_string();
        for hint in err.hints() {
            let _ = write!(text, "\n  hint: {hint}");
        }
        PdfError::Export(text)
    })?;
    let options = PdfOptions {
        ident: Smart::Custom(input.ident.to_owned()),
        timestamp: Some(pdf_timestamp(input.timestamp)?),
        standards,
        ..PdfOptions::default()
    };

    typst_pdf::pdf(&document, &options)
        .map_err(|diags| PdfError::Export(render_diagnostics(&world, &diags)))
}

/// Whether `c` can safely appear in text: an embedded font has a real glyph
/// for it, and Typst's font fallback cannot land on one that lacks it.
///
/// With the default fallback, text made only of such characters (plus line
/// breaks and tabs) renders; an uncovered character fails the PDF/A-2b
/// export. Combining marks are the exception: they need a base character
/// from a font that has them too (e.g. Hebrew points after a Hebrew letter
/// are fine, after a Latin letter they are not). See [`sanitize_text`].
pub fn font_covers(c: char) -> bool {
    !c.is_control() && RENDERABLE.contains(u32::from(c))
}

/// The characters that text in the embedded fonts can safely contain.
///
/// Typst's font fallback picks one font among those whose coverage lists a
/// character, and some cmaps list characters (U+0000, unassigned code points,
/// a few symbols) that map to the `.notdef` glyph. So a character counts only
/// if every font listing it has a real glyph for it.
static RENDERABLE: LazyLock<Coverage> = LazyLock::new(|| {
    let mut good = BTreeSet::new();
    let mut bad = BTreeSet::new();
    for font in &ASSETS.fonts {
        let instance = font.clone().instantiate(
            FontVariant::default(),
            Abs::pt(10.0),
            &FontVariations::default(),
        );
        for code in font.info().coverage.iter() {
            let has_glyph = char::from_u32(code)
                .and_then(|c| instance.ttf().glyph_index(c))
                .is_some_and(|glyph| glyph.0 != 0);
            if has_glyph {
                good.insert(code);
            } else {
                bad.insert(code);
            }
        }
    }
    // Private use, and variation selectors and combining half marks, which
    // attach to whatever precedes them, in whatever font that is.
    let excluded = |c: u32| {
        matches!(
            c,
            0xE000..=0xF8FF
                | 0xF0000..=0xFFFFD
                | 0x100000..=0x10FFFD
                | 0xFE00..=0xFE0F
                | 0xFE20..=0xFE2F
        )
    };
    Coverage::from_vec(
        good.difference(&bad)
            .copied()
            .filter(|&c| !excluded(c))
            .collect(),
    )
});

/// Replaces each character that no embedded font can show (control
/// characters, CJK, emoji, ...) with a visible `<U+XXXX>` marker; line breaks
/// and tabs are kept.
///
/// Free text taken from AWS (key descriptions, tag values) can contain such
/// characters, and a single one makes the PDF/A-2b export fail, so pass it
/// through this before it goes into a data file.
#[allow(
    dead_code,
    reason = "for the report builders; `report` keeps this module private"
)]
pub fn sanitize_text(text: &str) -> Cow<'_, str> {
    let keep = |c: char| matches!(c, '\n' | '\r' | '\t') || font_covers(c);
    if text.chars().all(keep) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if keep(c) {
            out.push(c);
        } else {
            let _ = write!(out, "<U+{:04X}>", u32::from(c));
        }
    }
    Cow::Owned(out)
}

/// The standard library, the embedded fonts and their book: built once per
/// process, shared by every render.
struct Assets {
    library: LazyHash<Library>,
    book: LazyHash<FontBook>,
    fonts: Vec<Font>,
}

static ASSETS: LazyLock<Assets> = LazyLock::new(|| {
    let fonts: Vec<Font> = typst_assets::fonts()
        .flat_map(|data| Font::iter(Bytes::new(data)))
        .collect();
    Assets {
        library: LazyHash::new(Library::default()),
        book: LazyHash::new(FontBook::from_fonts(&fonts)),
        fonts,
    }
});

/// An extra virtual file; its parse as Typst source is made on first use.
struct VirtualFile {
    bytes: Bytes,
    source: OnceLock<FileResult<Source>>,
}

/// The sandbox a template sees: the main source, the caller's files, the
/// embedded fonts and a fixed clock.
struct RenderWorld {
    assets: &'static Assets,
    main: Source,
    files: HashMap<FileId, VirtualFile>,
    now: DateTime<Utc>,
}

impl RenderWorld {
    fn new(input: &PdfInput) -> Result<Self, PdfError> {
        let main_id = project_file(MAIN_PATH)?;
        let mut files = HashMap::with_capacity(input.files.len());
        for &(path, data) in input.files {
            let id = project_file(path)?;
            if id == main_id {
                return Err(PdfError::InvalidInput(format!(
                    "virtual file `{path}` clashes with the template, which is {MAIN_PATH}"
                )));
            }
            match files.entry(id) {
                Entry::Occupied(_) => {
                    return Err(PdfError::InvalidInput(format!(
                        "virtual file `{path}` is given more than once"
                    )));
                }
                Entry::Vacant(slot) => {
                    slot.insert(VirtualFile {
                        bytes: Bytes::new(data.to_vec()),
                        source: OnceLock::new(),
                    });
                }
            }
        }
        Ok(Self {
            assets: &ASSETS,
            main: Source::new(main_id, input.template.to_owned()),
            files,
            now: input.timestamp,
        })
    }

    fn not_found(id: FileId) -> FileError {
        match id.root() {
            VirtualRoot::Project => FileError::NotFound(PathBuf::from(id.vpath().get_with_slash())),
            VirtualRoot::Package(spec) => FileError::Package(PackageError::Other(Some(
                format!("packages are not available to keyproof templates ({spec})").into(),
            ))),
        }
    }
}

impl World for RenderWorld {
    fn library(&self) -> &LazyHash<Library> {
        &self.assets.library
    }

    fn book(&self) -> &LazyHash<FontBook> {
        &self.assets.book
    }

    fn main(&self) -> FileId {
        self.main.id()
    }

    fn source(&self, id: FileId) -> FileResult<Source> {
        if id == self.main.id() {
            return Ok(self.main.clone());
        }
        let file = self.files.get(&id).ok_or_else(|| Self::not_found(id))?;
        file.source
            .get_or_init(|| {
                let text = std::str::from_utf8(file.bytes.as_slice())?;
                Ok(Source::new(id, text.to_owned()))
            })
            .clone()
    }

    fn file(&self, id: FileId) -> FileResult<Bytes> {
        if id == self.main.id() {
            return Ok(Bytes::from_string(self.main.text().to_owned()));
        }
        self.files
            .get(&id)
            .map(|file| file.bytes.clone())
            .ok_or_else(|| Self::not_found(id))
    }

    fn font(&self, index: usize) -> Option<Font> {
        self.assets.fonts.get(index).cloned()
    }

    fn today(&self, offset: Option<Duration>) -> Option<Datetime> {
        // Without an offset Typst asks for the *local* date; keyproof has no
        // local zone, so that is UTC.
        let at = match offset {
            None => self.now,
            Some(offset) => {
                let millis = offset.seconds() * 1000.0;
                if !millis.is_finite() {
                    return None;
                }
                // `as` saturates; an absurd offset then fails the addition.
                self.now
                    .checked_add_signed(TimeDelta::try_milliseconds(millis.round() as i64)?)?
            }
        };
        Datetime::from_ymd(
            at.year(),
            u8::try_from(at.month()).ok()?,
            u8::try_from(at.day()).ok()?,
        )
    }
}

/// The interned id of a project file, from a path as the caller gives it.
fn project_file(path: &str) -> Result<FileId, PdfError> {
    let vpath = VirtualPath::new(path)
        .map_err(|err| PdfError::InvalidInput(format!("bad virtual path `{path}`: {err}")))?;
    if vpath.is_root() {
        return Err(PdfError::InvalidInput(format!(
            "virtual path `{path}` names no file"
        )));
    }
    Ok(RootedPath::new(VirtualRoot::Project, vpath).intern())
}

/// The PDF creation timestamp, to the second, in UTC.
fn pdf_timestamp(at: DateTime<Utc>) -> Result<Timestamp, PdfError> {
    let datetime = Datetime::from_ymd_hms(
        at.year(),
        u8::try_from(at.month()).unwrap_or(0),
        u8::try_from(at.day()).unwrap_or(0),
        u8::try_from(at.hour()).unwrap_or(u8::MAX),
        u8::try_from(at.minute()).unwrap_or(u8::MAX),
        u8::try_from(at.second()).unwrap_or(u8::MAX),
    )
    .filter(|_| at.year() >= 0)
    .ok_or_else(|| PdfError::InvalidInput(format!("timestamp {at} cannot be a PDF date")))?;
    Ok(Timestamp::new_utc(datetime))
}

/// Renders diagnostics as text: severity and message, then the location as
/// `path:line:column` (1-based), the call trace and any hints.
fn render_diagnostics(world: &RenderWorld, diags: &[SourceDiagnostic]) -> String {
    let mut out = String::new();
    for diag in diags.iter().take(MAX_DIAGNOSTICS) {
        if !out.is_empty() {
            out.push('\n');
        }
        let severity = match diag.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(out, "{severity}: {}", diag.message);
        if let Some(location) = locate(world, diag.span) {
            let _ = writeln!(out, "  --> {location}");
        }
        for point in &diag.trace {
            match locate(world, point.span.into()) {
                Some(location) => {
                    let _ = writeln!(out, "  {} ({location})", point.v);
                }
                None => {
                    let _ = writeln!(out, "  {}", point.v);
                }
            }
        }
        for hint in &diag.hints {
            match locate(world, hint.span) {
                Some(location) => {
                    let _ = writeln!(out, "  hint: {} ({location})", hint.v);
                }
                None => {
                    let _ = writeln!(out, "  hint: {}", hint.v);
                }
            }
        }
    }
    if diags.len() > MAX_DIAGNOSTICS {
        let _ = writeln!(out, "\n... and {} more", diags.len() - MAX_DIAGNOSTICS);
    }
    if out.is_empty() {
        out.push_str("typst reported a failure without diagnostics\n");
    }
    // Drop the trailing newline so `{err}` prints cleanly.
    out.truncate(out.trim_end().len());
    out
}

/// `path:line:column` (1-based, columns in characters) of a span, if it
/// points into a file.
fn locate(world: &RenderWorld, span: DiagSpan) -> Option<String> {
    let id = span.id()?;
    let path = id.vpath().get_with_slash();
    let Some(range) = world.range(span) else {
        return Some(path.to_owned());
    };
    let position = match span.get() {
        // A span in a Typst source (the template or an imported `.typ`).
        DiagSpanKind::Number { .. } => world
            .source(id)
            .ok()
            .and_then(|source| source.lines().byte_to_line_column(range.start)),
        // A byte range in a data file, e.g. a JSON syntax error.
        _ => world
            .file(id)
            .ok()
            .and_then(|bytes| line_column(bytes.as_slice(), range.start)),
    };
    Some(match position {
        Some((line, column)) => format!("{path}:{}:{}", line + 1, column + 1),
        None => path.to_owned(),
    })
}

/// 0-based line and character column of a byte offset in (mostly) text.
fn line_column(bytes: &[u8], offset: usize) -> Option<(usize, usize)> {
    let head = bytes.get(..offset)?;
    let line = head.iter().filter(|&&b| b == b'\n').count();
    let start = head.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&head[start..]).chars().count();
    Some((line, column))
}

#[cfg(test)]
mod tests {
    use super::*;

    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 14, 15, 9, 26)
            .single()
            .expect("valid test timestamp")
    }

    fn render(template: &str, files: &[(&str, &[u8])]) -> Result<Vec<u8>, PdfError> {
        render_pdf(&PdfInput {
            template,
            files,
            timestamp: at(),
            ident: "0000000000000000000000000000000000000000000000000000000000000000",
        })
    }

    /// Raw text of a PDF, for looking for metadata strings.
    fn latin1(pdf: &[u8]) -> String {
        pdf.iter().map(|&b| char::from(b)).collect()
    }

    const TABLE_TEMPLATE: &str = r#"
#set document(title: [Key inventory], author: "keyproof")
#set text(lang: "en")
#set page(paper: "a4", margin: 2cm)
#let data = json("data.json")

= Keys for #data.account

Generated #datetime.today().display().

#table(
  columns: 3,
  table.header([*Key*], [*State*], [*Rotation*], repeat: true),
  ..data.keys.map(k => (k.id, k.state, if k.rotation { [on] } else { [off] })).flatten(),
)
"#;

    fn table_data(rows: usize) -> Vec<u8> {
        let keys: Vec<_> = (0..rows)
            .map(|i| {
                serde_json::json!({
                    "id": format!("key-{i:04}"),
                    "state": if i % 3 == 0 { "Disabled" } else { "Enabled" },
                    "rotation": i % 2 == 0,
                })
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({ "account": "123456789012", "keys": keys }))
            .expect("serialize test data")
    }

    #[test]
    fn renders_json_table_deterministically() {
        // Enough rows to span several pages, so the header repeats.
        let data = table_data(120);
        let files: &[(&str, &[u8])] = &[("data.json", &data)];
        let first = render(TABLE_TEMPLATE, files).expect("render");
        assert!(first.starts_with(b"%PDF-"), "not a PDF");

        let second = render(TABLE_TEMPLATE, files).expect("render again");
        assert!(first == second, "two renders of the same input differ");

        let text = latin1(&first);
        assert!(text.contains("pdfaid:part"), "no PDF/A identification");
        assert!(
            text.contains("2025-03-14T15:09:26"),
            "creation date missing"
        );

        // A different ident changes the bytes (the /ID), so it is used.
        let other = render_pdf(&PdfInput {
            template: TABLE_TEMPLATE,
            files,
            timestamp: at(),
            ident: "another snapshot",
        })
        .expect("render with other ident");
        assert!(other != first);
    }

    #[test]
    fn syntax_error_is_reported_with_location() {
        let err = render("= Title\n\n#let x = (1, 2\n\nText", &[]).expect_err("must fail");
        let PdfError::Compile(text) = &err else {
            panic!("expected a compile error, got {err:?}");
        };
        assert!(text.contains("error:"), "{text}");
        assert!(text.contains("/main.typ:3:"), "{text}");
        assert!(err.to_string().contains("failed to compile"), "{err}");
    }

    #[test]
    fn missing_file_and_bad_json_are_reported() {
        let err = render(r#"#json("nope.json")"#, &[]).expect_err("must fail");
        assert!(err.to_string().contains("/nope.json"), "{err}");

        let bad: &[u8] = b"{\n  \"a\": 1,\n  oops\n}";
        let err = render(r#"#json("data.json")"#, &[("data.json", bad)]).expect_err("must fail");
        let text = err.to_string();
        assert!(text.contains("failed to parse JSON"), "{text}");
        assert!(text.contains("/data.json:3:"), "{text}");
    }

    #[test]
    fn data_is_never_evaluated() {
        let data = serde_json::to_vec(&serde_json::json!({
            "desc": "#panic(\"x\") <script>alert(1)</script> *bold* $x^2$ @ref [link] // c",
        }))
        .expect("serialize");
        let template = "#set document(title: [Data])\n#let d = json(\"data.json\")\n#assert(d.desc.starts-with(\"#panic\"))\n#d.desc\n\n#table(columns: 1, d.desc)\n";
        let pdf = render(template, &[("data.json", &data)]).expect("data must render as text");
        assert!(pdf.starts_with(b"%PDF-"));
    }

    #[test]
    fn bad_input_is_rejected() {
        let err = render("x", &[("a.json", b"1"), ("./a.json", b"2")]).expect_err("duplicate");
        assert!(matches!(err, PdfError::InvalidInput(_)), "{err:?}");
        let err = render("x", &[("main.typ", b"y")]).expect_err("clash");
        assert!(matches!(err, PdfError::InvalidInput(_)), "{err:?}");
        let err = render("x", &[("a\\b.json", b"1")]).expect_err("backslash");
        assert!(matches!(err, PdfError::InvalidInput(_)), "{err:?}");
    }

    #[test]
    fn imports_and_packages() {
        let lib: &[u8] = b"#let greet(name) = [Hello, #name!]";
        let pdf = render(
            "#import \"lib/greet.typ\": greet\n#greet(\"auditor\")",
            &[("lib/greet.typ", lib)],
        )
        .expect("import of a virtual .typ file");
        assert!(pdf.starts_with(b"%PDF-"));

        let err = render("#import \"@preview/foo:0.1.0\": *", &[]).expect_err("no packages");
        assert!(
            err.to_string().contains("packages are not available"),
            "{err}"
        );
    }

    #[test]
    fn today_uses_the_timestamp() {
        let template = "#assert.eq(datetime.today(), datetime(year: 2025, month: 3, day: 14))\n\
                        #assert.eq(datetime.today(offset: 9), datetime(year: 2025, month: 3, day: 15))\n\
                        ok";
        render(template, &[]).expect("today must be the given timestamp");
    }

    #[test]
    fn sanitized_text_always_renders() {
        let raw = "a\u{7}b\u{0}c 漢字 🔑 Ελληνικά Кириллица äöü ß — “q” € ✓ → ∑ ≤\tend\r\nnext";
        let clean = sanitize_text(raw);
        assert!(
            clean.contains("<U+0007>") && clean.contains("<U+1F511>"),
            "{clean}"
        );
        assert!(
            clean.contains("Ελληνικά Кириллица äöü ß — “q” € ✓ → ∑ ≤"),
            "{clean}"
        );
        assert!(matches!(sanitize_text("plain text"), Cow::Borrowed(_)));

        let template = "#set document(title: [Text])\n#json(\"data.json\").text\n";
        let data = serde_json::to_vec(&serde_json::json!({ "text": clean })).expect("serialize");
        render(template, &[("data.json", &data)]).expect("sanitized text renders");

        let data = serde_json::to_vec(&serde_json::json!({ "text": raw })).expect("serialize");
        let err = render(template, &[("data.json", &data)]).expect_err("raw text fails PDF/A");
        assert!(matches!(err, PdfError::Export(_)), "{err:?}");
    }
}
