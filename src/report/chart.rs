//! Inline SVG charts for the HTML and PDF reports: self-contained (no scripts, no external
//! references), every text escaped, so a hostile label stays text.

use std::fmt::Write;

/// Escapes text for XML content and attribute values.
pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// One bar: its axis label, its tooltip name, and the two stacked values (bottom, top).
pub struct Bar<'a> {
    pub label: &'a str,
    pub name: &'a str,
    pub bottom: u64,
    pub top: u64,
}

/// Two stacked series per bar (`bottom` in the first colour, `top` above it in the second),
/// with a legend; `aria` describes the chart. Labels are thinned out when there are many bars.
pub fn stacked_bars(bars: &[Bar<'_>], series: [(&str, &str); 2], aria: &str) -> String {
    let (w, h, top, bottom, left) = (640.0_f64, 200.0_f64, 16.0, 40.0, 44.0);
    let plot_h = h - top - bottom;
    let max = bars
        .iter()
        .map(|b| b.bottom + b.top)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let slot = (w - left - 8.0) / bars.len().max(1) as f64;
    let bar = (slot * 0.6).min(36.0);
    let label_every = bars.len().div_ceil(16).max(1);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{}" font-family="sans-serif" font-size="10">"##,
        xml_escape(aria)
    );
    let _ = write!(
        svg,
        r##"<line x1="{left}" y1="{y}" x2="{x2}" y2="{y}" stroke="#888"/><text x="{tx}" y="{ty}" text-anchor="end">{max}</text><text x="{tx}" y="{y}" text-anchor="end">0</text>"##,
        y = top + plot_h,
        x2 = w - 8.0,
        tx = left - 4.0,
        ty = top + 8.0,
        max = max as u64
    );
    let [(first, first_colour), (second, second_colour)] = series;
    for (i, b) in bars.iter().enumerate() {
        let x = left + slot * i as f64 + (slot - bar) / 2.0;
        let low_h = plot_h * b.bottom as f64 / max;
        let high_h = plot_h * b.top as f64 / max;
        let base = top + plot_h;
        let name = xml_escape(b.name);
        let _ = write!(
            svg,
            r##"<rect x="{x:.1}" y="{:.1}" width="{bar:.1}" height="{low_h:.1}" fill="{first_colour}"><title>{name} {} {}</title></rect><rect x="{x:.1}" y="{:.1}" width="{bar:.1}" height="{high_h:.1}" fill="{second_colour}"><title>{name} {} {}</title></rect>"##,
            base - low_h,
            xml_escape(first),
            b.bottom,
            base - low_h - high_h,
            xml_escape(second),
            b.top,
        );
        if i % label_every == 0 {
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                x + bar / 2.0,
                base + 14.0,
                xml_escape(b.label),
            );
        }
    }
    let _ = write!(
        svg,
        r##"<rect x="{left}" y="{ly}" width="10" height="10" fill="{first_colour}"/><text x="{l1}" y="{lt}">{}</text><rect x="{l2}" y="{ly}" width="10" height="10" fill="{second_colour}"/><text x="{l3}" y="{lt}">{}</text></svg>"##,
        xml_escape(first),
        xml_escape(second),
        ly = h - 14.0,
        lt = h - 5.0,
        l1 = left + 14.0,
        l2 = left + 84.0,
        l3 = left + 98.0
    );
    svg
}
