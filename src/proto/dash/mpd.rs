//! DASH manifests (MPD, ISO/IEC 23009-1): read with quick-xml's serde support into a typed
//! model of what a static presentation uses, checked against the standard's mandatory parts,
//! and expanded into the segments a player would request (URLs resolved by RFC 3986).
//!
//! Sans-IO like the codecs: text in, a model or findings out.

use serde::Deserialize;

use crate::proto::{Finding, Level};

/// Largest MPD read (a static manifest of a few periods is kilobytes).
pub const MAX_MPD: usize = 4 << 20;
/// Most segments one representation is expanded to (a SegmentTimeline's `r` can claim millions).
pub const MAX_SEGMENTS: usize = 100_000;

/// `<MPD>`.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Mpd {
    /// `@type` (static when absent, DASH §5.3.1.2).
    #[serde(rename = "@type")]
    pub kind: Option<String>,
    /// `@profiles` (mandatory).
    #[serde(rename = "@profiles")]
    pub profiles: Option<String>,
    /// `@mediaPresentationDuration`.
    #[serde(rename = "@mediaPresentationDuration")]
    pub duration: Option<String>,
    /// `@minBufferTime` (mandatory).
    #[serde(rename = "@minBufferTime")]
    pub min_buffer_time: Option<String>,
    /// `@minimumUpdatePeriod` (a dynamic MPD's).
    #[serde(rename = "@minimumUpdatePeriod")]
    pub minimum_update_period: Option<String>,
    /// MPD-level BaseURLs (alternatives).
    #[serde(rename = "BaseURL", default)]
    pub base_urls: Vec<BaseUrl>,
    /// The periods.
    #[serde(rename = "Period", default)]
    pub periods: Vec<Period>,
}

/// `<BaseURL>`: a URL reference, resolved against the level above.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct BaseUrl {
    /// The element's text.
    #[serde(rename = "$text", default)]
    pub url: String,
}

/// `<Period>`.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Period {
    /// `@id`.
    #[serde(rename = "@id")]
    pub id: Option<String>,
    /// `@duration`.
    #[serde(rename = "@duration")]
    pub duration: Option<String>,
    /// BaseURLs.
    #[serde(rename = "BaseURL", default)]
    pub base_urls: Vec<BaseUrl>,
    /// `<SegmentTemplate>`.
    #[serde(rename = "SegmentTemplate")]
    pub segment_template: Option<SegmentTemplate>,
    /// `<SegmentList>`.
    #[serde(rename = "SegmentList")]
    pub segment_list: Option<SegmentList>,
    /// `<SegmentBase>`.
    #[serde(rename = "SegmentBase")]
    pub segment_base: Option<SegmentBase>,
    /// Adaptation sets.
    #[serde(rename = "AdaptationSet", default)]
    pub adaptation_sets: Vec<AdaptationSet>,
}

/// The three ways a level may describe its segments (DASH §5.3.9); a lower level overrides.
#[derive(Debug, Clone, Copy, Default)]
pub struct SegmentInfo<'a> {
    /// `<SegmentTemplate>`.
    pub template: Option<&'a SegmentTemplate>,
    /// `<SegmentList>`.
    pub list: Option<&'a SegmentList>,
    /// `<SegmentBase>`.
    pub base: Option<&'a SegmentBase>,
}

macro_rules! segment_info {
    ($($t:ty),*) => {$(
        impl $t {
            /// This level's segment information.
            pub fn segments(&self) -> SegmentInfo<'_> {
                SegmentInfo {
                    template: self.segment_template.as_ref(),
                    list: self.segment_list.as_ref(),
                    base: self.segment_base.as_ref(),
                }
            }
        }
    )*};
}
segment_info!(Period, AdaptationSet, Representation);

/// `<AdaptationSet>`.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct AdaptationSet {
    /// `@id`.
    #[serde(rename = "@id")]
    pub id: Option<String>,
    /// `@contentType`.
    #[serde(rename = "@contentType")]
    pub content_type: Option<String>,
    /// `@mimeType`.
    #[serde(rename = "@mimeType")]
    pub mime_type: Option<String>,
    /// BaseURLs.
    #[serde(rename = "BaseURL", default)]
    pub base_urls: Vec<BaseUrl>,
    /// `<SegmentTemplate>`.
    #[serde(rename = "SegmentTemplate")]
    pub segment_template: Option<SegmentTemplate>,
    /// `<SegmentList>`.
    #[serde(rename = "SegmentList")]
    pub segment_list: Option<SegmentList>,
    /// `<SegmentBase>`.
    #[serde(rename = "SegmentBase")]
    pub segment_base: Option<SegmentBase>,
    /// Representations.
    #[serde(rename = "Representation", default)]
    pub representations: Vec<Representation>,
}

/// `<Representation>`.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Representation {
    /// `@id` (mandatory).
    #[serde(rename = "@id")]
    pub id: Option<String>,
    /// `@bandwidth` in bit/s (mandatory), as written.
    #[serde(rename = "@bandwidth")]
    pub bandwidth: Option<String>,
    /// `@mimeType`.
    #[serde(rename = "@mimeType")]
    pub mime_type: Option<String>,
    /// `@width`.
    #[serde(rename = "@width")]
    pub width: Option<String>,
    /// `@height`.
    #[serde(rename = "@height")]
    pub height: Option<String>,
    /// BaseURLs.
    #[serde(rename = "BaseURL", default)]
    pub base_urls: Vec<BaseUrl>,
    /// `<SegmentTemplate>`.
    #[serde(rename = "SegmentTemplate")]
    pub segment_template: Option<SegmentTemplate>,
    /// `<SegmentList>`.
    #[serde(rename = "SegmentList")]
    pub segment_list: Option<SegmentList>,
    /// `<SegmentBase>`.
    #[serde(rename = "SegmentBase")]
    pub segment_base: Option<SegmentBase>,
}

/// `<SegmentTemplate>`.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct SegmentTemplate {
    /// `@media`.
    #[serde(rename = "@media")]
    pub media: Option<String>,
    /// `@initialization`.
    #[serde(rename = "@initialization")]
    pub initialization: Option<String>,
    /// `@startNumber`.
    #[serde(rename = "@startNumber")]
    pub start_number: Option<String>,
    /// `@timescale`.
    #[serde(rename = "@timescale")]
    pub timescale: Option<String>,
    /// `@duration`.
    #[serde(rename = "@duration")]
    pub duration: Option<String>,
    /// `<SegmentTimeline>`.
    #[serde(rename = "SegmentTimeline")]
    pub timeline: Option<SegmentTimeline>,
}

/// `<SegmentTimeline>`.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct SegmentTimeline {
    /// `<S>` entries.
    #[serde(rename = "S", default)]
    pub s: Vec<TimelineEntry>,
}

/// `<S t d r>`.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct TimelineEntry {
    /// `@t`.
    #[serde(rename = "@t")]
    pub t: Option<String>,
    /// `@d` (mandatory).
    #[serde(rename = "@d")]
    pub d: Option<String>,
    /// `@r`.
    #[serde(rename = "@r")]
    pub r: Option<String>,
}

/// `<SegmentList>`.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct SegmentList {
    /// `@timescale`.
    #[serde(rename = "@timescale")]
    pub timescale: Option<String>,
    /// `@duration`.
    #[serde(rename = "@duration")]
    pub duration: Option<String>,
    /// `<Initialization>`.
    #[serde(rename = "Initialization")]
    pub initialization: Option<UrlType>,
    /// `<SegmentURL>` entries.
    #[serde(rename = "SegmentURL", default)]
    pub urls: Vec<SegmentUrl>,
}

/// `<SegmentBase>`.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct SegmentBase {
    /// `@timescale`.
    #[serde(rename = "@timescale")]
    pub timescale: Option<String>,
    /// `@indexRange`: the bytes of the segment index.
    #[serde(rename = "@indexRange")]
    pub index_range: Option<String>,
    /// `<Initialization>`.
    #[serde(rename = "Initialization")]
    pub initialization: Option<UrlType>,
}

/// `<Initialization>` (URLType: a URL, a byte range of it, or both).
#[derive(Debug, Clone, Deserialize, Default)]
pub struct UrlType {
    /// `@sourceURL`.
    #[serde(rename = "@sourceURL")]
    pub source_url: Option<String>,
    /// `@range`.
    #[serde(rename = "@range")]
    pub range: Option<String>,
}

/// `<SegmentURL>`.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct SegmentUrl {
    /// `@media`.
    #[serde(rename = "@media")]
    pub media: Option<String>,
    /// `@mediaRange`.
    #[serde(rename = "@mediaRange")]
    pub media_range: Option<String>,
}

/// A request a player makes for one segment: a URL and maybe a byte range (inclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRef {
    /// The absolute URL.
    pub url: String,
    /// `first-last` bytes, when a range of the URL.
    pub range: Option<(u64, u64)>,
}

/// How a representation addresses its segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// SegmentTemplate with `$Number$`.
    Number,
    /// SegmentTemplate with a SegmentTimeline (`$Time$` or `$Number$`).
    Timeline,
    /// SegmentList.
    List,
    /// SegmentBase: one file and its segment index.
    Base,
    /// Only a BaseURL: the whole representation is one segment.
    Single,
}

impl Addressing {
    /// As a suite names it.
    pub fn name(self) -> &'static str {
        match self {
            Addressing::Number => "template-number",
            Addressing::Timeline => "template-timeline",
            Addressing::List => "segment-list",
            Addressing::Base => "segment-base",
            Addressing::Single => "single",
        }
    }
}

/// One representation's segments as a player requests them.
#[derive(Debug, Clone)]
pub struct Track {
    /// `@id`.
    pub id: String,
    /// `@bandwidth`, bit/s.
    pub bandwidth: u64,
    /// How it is addressed.
    pub addressing: Addressing,
    /// The initialization segment.
    pub init: Option<SegmentRef>,
    /// The segment index (SegmentBase): media segments are read from it.
    pub index: Option<SegmentRef>,
    /// Media segments in order, with their durations in seconds (empty for SegmentBase).
    pub media: Vec<(SegmentRef, f64)>,
    /// Every BaseURL alternative this representation's URLs could be resolved against, in order.
    pub bases: Vec<String>,
}

/// Reads an MPD; an error says where the XML or the model breaks.
pub fn parse(text: &str) -> Result<Mpd, String> {
    if text.len() > MAX_MPD {
        return Err(format!("an MPD of {} bytes, over the {} this reads", text.len(), MAX_MPD));
    }
    let body = text.trim_start_matches('\u{feff}').trim_start();
    if !body.starts_with('<') {
        return Err("not XML: an MPD is an XML document whose root element is MPD".into());
    }
    quick_xml::de::from_str::<Mpd>(body).map_err(|e| format!("not a readable MPD: {e}"))
}

/// Whether `text` looks like an MPD (its root element is `MPD`), for framing a body that came
/// without `application/dash+xml`.
pub fn looks_like_mpd(body: &[u8]) -> bool {
    let head = &body[..body.len().min(2048)];
    let s = String::from_utf8_lossy(head);
    s.trim_start_matches('\u{feff}').trim_start().starts_with('<') && (s.contains("<MPD") || s.contains(":MPD"))
}

/// An `xs:duration` (`PT1H2M3.5S`, `P1DT2S`) in seconds; years and months are refused (a static
/// presentation never needs them and their length is not fixed).
pub fn duration(s: &str) -> Option<f64> {
    let s = s.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let rest = s.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut total = 0.0;
    let mut any = false;
    let mut read = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut num = String::new();
        let mut next = 0;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
                continue;
            }
            let i = units.iter().skip(next).position(|(u, _)| *u == c)? + next;
            let v: f64 = num.parse().ok()?;
            total += v * units[i].1;
            any = true;
            num.clear();
            next = i + 1;
        }
        num.is_empty().then_some(())
    };
    read(date, &[('D', 86_400.0)])?;
    if let Some(t) = time {
        if t.is_empty() {
            return None;
        }
        read(t, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)])?;
    }
    any.then_some(if neg { -total } else { total })
}

/// `first-last` (both inclusive, `first <= last`).
pub fn byte_range(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.trim().split_once('-')?;
    let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b).then_some((a, b))
}

fn num(v: &Option<String>) -> Option<u64> {
    v.as_deref().and_then(|s| s.trim().parse().ok())
}

/// The MPD's MUST-level problems (ISO/IEC 23009-1: the cardinalities of §5.3's tables and the
/// rules on segment addressing), each as a finding naming the clause.
pub fn check(m: &Mpd) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut must = |rule: &'static str, text: String| {
        out.push(Finding {
            level: Level::Must,
            rule,
            text,
        })
    };
    let dynamic = m.kind.as_deref() == Some("dynamic");
    if let Some(k) = m.kind.as_deref().filter(|k| *k != "static" && *k != "dynamic") {
        must("ISO/IEC 23009-1 §5.3.1.2", format!("MPD@type is '{k}'; it is static or dynamic"));
    }
    if m.profiles.as_deref().is_none_or(|p| p.trim().is_empty()) {
        must(
            "ISO/IEC 23009-1 §5.3.1.2",
            "MPD has no @profiles, which is mandatory (Table 3: M)".into(),
        );
    }
    match m.min_buffer_time.as_deref() {
        None => must(
            "ISO/IEC 23009-1 §5.3.1.2",
            "MPD has no @minBufferTime, which is mandatory (Table 3: M)".into(),
        ),
        Some(v) if duration(v).is_none() => must("ISO/IEC 23009-1 §5.3.1.2", format!("MPD@minBufferTime '{v}' is not an xs:duration")),
        _ => {}
    }
    if let Some(v) = m.duration.as_deref().filter(|v| duration(v).is_none()) {
        must(
            "ISO/IEC 23009-1 §5.3.1.2",
            format!("MPD@mediaPresentationDuration '{v}' is not an xs:duration"),
        );
    }
    let last_has_duration = m.periods.last().is_some_and(|p| p.duration.is_some());
    if !dynamic && m.duration.is_none() && m.minimum_update_period.is_none() && !last_has_duration {
        must(
            "ISO/IEC 23009-1 §5.3.1.2",
            "a static MPD with no @mediaPresentationDuration, no @minimumUpdatePeriod and no @duration on its last \
             Period: its length is unknown (Table 3)"
                .into(),
        );
    }
    if m.periods.is_empty() {
        must(
            "ISO/IEC 23009-1 §5.3.1.2",
            "MPD has no Period; it has at least one (Table 3: 1...N)".into(),
        );
    }
    for (pi, p) in m.periods.iter().enumerate() {
        let mut ids: Vec<&str> = Vec::new();
        for a in &p.adaptation_sets {
            for r in &a.representations {
                let at = format!("Period {} Representation {}", pi + 1, r.id.as_deref().unwrap_or("(no id)"));
                match r.id.as_deref() {
                    None => must(
                        "ISO/IEC 23009-1 §5.3.5.2",
                        format!("{at} has no @id, which is mandatory (Table 8: M)"),
                    ),
                    Some(id) if ids.contains(&id) => must(
                        "ISO/IEC 23009-1 §5.3.5.2",
                        format!("{at}: @id '{id}' is used twice in the Period; it is unique there"),
                    ),
                    Some(id) => {
                        if id.chars().any(char::is_whitespace) {
                            must("ISO/IEC 23009-1 §5.3.5.2", format!("{at}: @id '{id}' has white space; it may not"));
                        }
                        ids.push(id);
                    }
                }
                match r.bandwidth.as_deref() {
                    None => must(
                        "ISO/IEC 23009-1 §5.3.5.2",
                        format!("{at} has no @bandwidth, which is mandatory (Table 8: M)"),
                    ),
                    Some(b) if b.trim().parse::<u64>().is_err() => must(
                        "ISO/IEC 23009-1 §5.3.5.2",
                        format!("{at}: @bandwidth '{b}' is not an unsigned integer"),
                    ),
                    _ => {}
                }
                if r.mime_type.is_none() && a.mime_type.is_none() {
                    must(
                        "ISO/IEC 23009-1 §5.3.7.2",
                        format!(
                            "{at} has no @mimeType, on itself or its AdaptationSet (Table 14: \
                         @mimeType is M for a Representation)"
                        ),
                    );
                }
                let info = [r.segments(), a.segments(), p.segments()];
                if let Some(t) = info.iter().find_map(|s| s.template) {
                    template_rules(t, &at, &mut must);
                }
            }
        }
    }
    out
}

fn template_rules(t: &SegmentTemplate, at: &str, must: &mut impl FnMut(&'static str, String)) {
    for (name, v) in [("@media", &t.media), ("@initialization", &t.initialization)] {
        let Some(v) = v else { continue };
        if let Err(e) = expand(v, &Vars::default()) {
            must("ISO/IEC 23009-1 §5.3.9.4.4", format!("{at}: SegmentTemplate{name} '{v}': {e}"));
        }
        if name == "@initialization" && (v.contains("$Number") || v.contains("$Time")) {
            must(
                "ISO/IEC 23009-1 §5.3.9.4.2",
                format!(
                    "{at}: SegmentTemplate@initialization '{v}' uses $Number$ or $Time$, which it may not \
                "
                ),
            );
        }
    }
    if let Some(m) = &t.media {
        if m.contains("$Number") && m.contains("$Time") {
            must(
                "ISO/IEC 23009-1 §5.3.9.4.4",
                format!(
                    "{at}: SegmentTemplate@media '{m}' has both $Number$ and $Time$; at most one may be used \
                "
                ),
            );
        }
        if m.contains("$Time") && t.timeline.is_none() {
            must(
                "ISO/IEC 23009-1 §5.3.9.4.4",
                format!(
                    "{at}: SegmentTemplate@media uses $Time$ with no SegmentTimeline to give the times \
                "
                ),
            );
        }
        if t.timeline.is_none() && t.duration.is_none() {
            must(
                "ISO/IEC 23009-1 §5.3.9.2.1",
                format!(
                    "{at}: SegmentTemplate has neither @duration nor a SegmentTimeline, so its segments are unknown \
                "
                ),
            );
        }
    }
    if let Some(tl) = &t.timeline {
        if t.duration.is_some() {
            must(
                "ISO/IEC 23009-1 §5.3.9.2.1",
                format!(
                    "{at}: SegmentTemplate has both @duration and a SegmentTimeline; only one may be present \
                "
                ),
            );
        }
        for (i, s) in tl.s.iter().enumerate() {
            if num(&s.d).is_none() {
                must(
                    "ISO/IEC 23009-1 §5.3.9.6",
                    format!(
                        "{at}: SegmentTimeline S #{} has no whole-number @d, which is mandatory (Table 22)",
                        i + 1
                    ),
                );
            }
        }
    }
}

/// The values a template's identifiers stand for (DASH §5.3.9.4.4).
#[derive(Debug, Clone, Default)]
pub struct Vars<'a> {
    /// `$RepresentationID$`.
    pub id: &'a str,
    /// `$Number$`.
    pub number: u64,
    /// `$Bandwidth$`.
    pub bandwidth: u64,
    /// `$Time$`.
    pub time: u64,
}

/// A SegmentTemplate string with its identifiers filled in; an error names a malformed one.
pub fn expand(template: &str, v: &Vars<'_>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let Some(j) = after.find('$') else {
            return Err("a '$' with no closing '$'".into());
        };
        let ident = &after[..j];
        rest = &after[j + 1..];
        if ident.is_empty() {
            out.push('$');
            continue;
        }
        let (name, width) = match ident.split_once('%') {
            Some((n, f)) => {
                let digits = f
                    .strip_prefix('0')
                    .and_then(|w| w.strip_suffix('d'))
                    .and_then(|w| w.parse::<usize>().ok())
                    .filter(|w| *w <= 64)
                    .ok_or_else(|| format!("'${ident}$' has a format tag other than %0[width]d"))?;
                (n, Some(digits))
            }
            None => (ident, None),
        };
        let value = match name {
            "RepresentationID" if width.is_some() => {
                return Err("$RepresentationID$ takes no format tag".into());
            }
            "RepresentationID" => {
                out.push_str(v.id);
                continue;
            }
            "Number" => v.number,
            "Bandwidth" => v.bandwidth,
            "Time" => v.time,
            "SubNumber" => return Err("$SubNumber$ is not read here".into()),
            other => return Err(format!("'${other}$' is not an identifier DASH defines")),
        };
        match width {
            Some(w) => out.push_str(&format!("{value:0w$}")),
            None => out.push_str(&value.to_string()),
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// `reference` resolved against `base` (RFC 3986 §5.2), or the reference itself when either is
/// not a URL.
pub fn resolve(base: &str, reference: &str) -> String {
    let reference = reference.trim();
    match url::Url::parse(base).and_then(|b| b.join(reference)) {
        Ok(u) => u.to_string(),
        Err(_) => reference.to_string(),
    }
}

/// The BaseURL alternatives of a level resolved against each of those above (the first
/// alternative of each level first).
fn bases(above: &[String], here: &[BaseUrl]) -> Vec<String> {
    if here.is_empty() {
        return above.to_vec();
    }
    let mut out = Vec::new();
    for b in here {
        for a in above {
            let r = resolve(a, &b.url);
            if !out.contains(&r) {
                out.push(r);
            }
        }
    }
    out
}

/// Every representation of the first video adaptation set of the first period (the one the lab's
/// player plays), by `@bandwidth`, with the segments it would request from the first BaseURL.
pub fn tracks(m: &Mpd, mpd_url: &str) -> Result<Vec<Track>, String> {
    let p = m.periods.first().ok_or("the MPD has no Period")?;
    let is_video = |a: &AdaptationSet| {
        a.content_type.as_deref() == Some("video")
            || a.mime_type.as_deref().is_some_and(|t| t.starts_with("video/"))
            || a.representations
                .iter()
                .any(|r| r.mime_type.as_deref().is_some_and(|t| t.starts_with("video/")))
    };
    let a = p
        .adaptation_sets
        .iter()
        .find(|a| is_video(a))
        .or(p.adaptation_sets.first())
        .ok_or("the first Period has no AdaptationSet")?;
    let total = m
        .duration
        .as_deref()
        .and_then(duration)
        .or(p.duration.as_deref().and_then(duration));
    let mpd_bases = bases(&[mpd_url.to_string()], &m.base_urls);
    let period_bases = bases(&mpd_bases, &p.base_urls);
    let set_bases = bases(&period_bases, &a.base_urls);
    let mut out = Vec::new();
    for r in &a.representations {
        let id = r.id.clone().ok_or("a Representation has no @id")?;
        let bandwidth = num(&r.bandwidth).ok_or_else(|| format!("Representation {id} has no @bandwidth"))?;
        let all = bases(&set_bases, &r.base_urls);
        let base = all.first().cloned().unwrap_or_else(|| mpd_url.to_string());
        let levels = [r.segments(), a.segments(), p.segments()];
        let vars = |number, time| Vars {
            id: &id,
            number,
            bandwidth,
            time,
        };
        let mut track = Track {
            id: id.clone(),
            bandwidth,
            addressing: Addressing::Single,
            init: None,
            index: None,
            media: Vec::new(),
            bases: all.clone(),
        };
        if levels.iter().any(|s| s.template.is_some()) {
            // Attributes inherit level by level (DASH §5.3.9.1): fill what this one leaves out.
            let pick = |f: fn(&SegmentTemplate) -> &Option<String>| levels.iter().filter_map(|s| s.template).find_map(|t| f(t).clone());
            let timescale = pick(|t| &t.timescale)
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or(1)
                .max(1);
            let start = pick(|t| &t.start_number).and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(1);
            if let Some(init) = pick(|t| &t.initialization) {
                track.init = Some(SegmentRef {
                    url: resolve(&base, &expand(&init, &vars(0, 0))?),
                    range: None,
                });
            }
            let media = pick(|t| &t.media).ok_or_else(|| format!("Representation {id}: SegmentTemplate has no @media"))?;
            // The nearest level that says how segments are timed wins: a @duration there
            // overrides a timeline above it.
            let timeline = levels
                .iter()
                .filter_map(|s| s.template)
                .find(|t| t.timeline.is_some() || t.duration.is_some())
                .and_then(|t| t.timeline.clone());
            if let Some(tl) = timeline {
                track.addressing = Addressing::Timeline;
                let mut t_now: u64 = 0;
                let mut k = 0u64;
                for s in &tl.s {
                    let d = num(&s.d).ok_or("a SegmentTimeline S has no @d")?;
                    if let Some(t) = num(&s.t) {
                        t_now = t;
                    }
                    let r: i64 = s.r.as_deref().and_then(|r| r.trim().parse().ok()).unwrap_or(0);
                    // r = -1 repeats to the end of the period.
                    let count = if r < 0 {
                        total.map_or(1, |tot| {
                            ((tot * timescale as f64 - t_now as f64) / d.max(1) as f64).ceil().max(1.0) as u64
                        })
                    } else {
                        r as u64 + 1
                    };
                    for _ in 0..count {
                        if track.media.len() >= MAX_SEGMENTS {
                            return Err(format!("Representation {id} has over {MAX_SEGMENTS} segments"));
                        }
                        let url = resolve(&base, &expand(&media, &vars(start + k, t_now))?);
                        track.media.push((SegmentRef { url, range: None }, d as f64 / timescale as f64));
                        t_now += d;
                        k += 1;
                    }
                }
            } else {
                let d = pick(|t| &t.duration)
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .filter(|d| *d > 0)
                    .ok_or_else(|| format!("Representation {id}: SegmentTemplate has no @duration"))?;
                let seconds = d as f64 / timescale as f64;
                let total = total.ok_or("the MPD gives no duration to count segments by")?;
                let count = (total / seconds - 1e-9).ceil().max(0.0) as u64;
                if count as usize > MAX_SEGMENTS {
                    return Err(format!("Representation {id} has over {MAX_SEGMENTS} segments"));
                }
                track.addressing = Addressing::Number;
                for k in 0..count {
                    let url = resolve(&base, &expand(&media, &vars(start + k, k * d))?);
                    let last = total - k as f64 * seconds;
                    track.media.push((SegmentRef { url, range: None }, seconds.min(last)));
                }
            }
        } else if let Some(l) = levels.iter().find_map(|s| s.list) {
            track.addressing = Addressing::List;
            let timescale = num(&l.timescale).unwrap_or(1).max(1);
            let seconds = num(&l.duration).map(|d| d as f64 / timescale as f64).unwrap_or(0.0);
            if let Some(i) = &l.initialization {
                track.init = Some(SegmentRef {
                    url: i.source_url.as_deref().map_or(base.clone(), |u| resolve(&base, u)),
                    range: i.range.as_deref().and_then(byte_range),
                });
            }
            for u in &l.urls {
                let url = u.media.as_deref().map_or(base.clone(), |m| resolve(&base, m));
                let range = u.media_range.as_deref().and_then(byte_range);
                track.media.push((SegmentRef { url, range }, seconds));
            }
        } else if let Some(b) = levels.iter().find_map(|s| s.base) {
            track.addressing = Addressing::Base;
            if let Some(i) = &b.initialization {
                track.init = Some(SegmentRef {
                    url: i.source_url.as_deref().map_or(base.clone(), |u| resolve(&base, u)),
                    range: i.range.as_deref().and_then(byte_range),
                });
            }
            track.index = b.index_range.as_deref().and_then(byte_range).map(|r| SegmentRef {
                url: base.clone(),
                range: Some(r),
            });
        } else {
            track.media.push((
                SegmentRef {
                    url: base.clone(),
                    range: None,
                },
                total.unwrap_or(0.0),
            ));
        }
        out.push(track);
    }
    out.sort_by_key(|t| t.bandwidth);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../../fixtures/dash/testsrc/video.mpd");
    const ONDEMAND: &str = include_str!("../../../fixtures/dash/ondemand/ondemand.mpd");

    #[test]
    fn parses_the_ffmpeg_presentation() {
        let m = parse(FIXTURE).unwrap();
        assert!(check(&m).is_empty(), "{:?}", check(&m));
        let t = tracks(&m, "http://h:8/testsrc/video.mpd").unwrap();
        assert_eq!(t.iter().map(|t| t.bandwidth).collect::<Vec<_>>(), [40000, 80000, 160000, 320000]);
        assert_eq!(t[0].addressing, Addressing::Number);
        assert_eq!(t[0].media.len(), 16);
        assert_eq!(t[2].init.as_ref().unwrap().url, "http://h:8/testsrc/init-2.m4s");
        assert_eq!(t[3].media[15].0.url, "http://h:8/testsrc/seg-3-16.m4s");
    }

    #[test]
    fn parses_segment_lists_with_ranges() {
        let m = parse(ONDEMAND).unwrap();
        let t = tracks(&m, "http://h/ondemand/ondemand.mpd").unwrap();
        assert_eq!(t[0].addressing, Addressing::List);
        assert_eq!(
            t[0].init,
            Some(SegmentRef {
                url: "http://h/ondemand/od-0.mp4".into(),
                range: Some((0, 789))
            })
        );
        assert_eq!(t[0].media[0].0.range, Some((790, 7469)));
        assert_eq!(t[1].media.len(), 16);
    }

    #[test]
    fn parses_timelines_and_widths() {
        let xml = r#"<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="p" minBufferTime="PT2S" mediaPresentationDuration="PT5S">
          <BaseURL>media/</BaseURL><Period><AdaptationSet mimeType="video/mp4">
          <SegmentTemplate timescale="90000" media="$RepresentationID$/$Time$.m4s" initialization="$RepresentationID$/i.mp4">
            <SegmentTimeline><S t="0" d="180000" r="1"/><S d="90000"/></SegmentTimeline></SegmentTemplate>
          <Representation id="a" bandwidth="100"/>
          <Representation id="b" bandwidth="50"><SegmentTemplate media="n/$Number%05d$-$$.m4s" startNumber="7" duration="2" timescale="1"/></Representation>
          </AdaptationSet></Period></MPD>"#;
        let m = parse(xml).unwrap();
        assert!(check(&m).is_empty(), "{:?}", check(&m));
        let t = tracks(&m, "http://h/x/v.mpd").unwrap();
        assert_eq!(t[1].id, "a");
        let urls: Vec<&str> = t[1].media.iter().map(|(s, _)| s.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "http://h/x/media/a/0.m4s",
                "http://h/x/media/a/180000.m4s",
                "http://h/x/media/a/360000.m4s"
            ]
        );
        assert_eq!(t[0].addressing, Addressing::Number);
        assert_eq!(t[0].media[0].0.url, "http://h/x/media/n/00007-$.m4s");
        assert_eq!(t[0].media.len(), 3);
        assert_eq!(t[0].media[2].1, 1.0);
    }

    #[test]
    fn rejects_what_the_standard_requires() {
        let xml = r#"<MPD type="static"><Period><AdaptationSet><SegmentTemplate media="$Number$$Time$.m4s" duration="1"/>
          <Representation bandwidth="x"/><Representation id="a b" bandwidth="1" mimeType="video/mp4"/></AdaptationSet></Period></MPD>"#;
        let f: Vec<String> = check(&parse(xml).unwrap()).into_iter().map(|f| f.text).collect();
        for want in [
            "@profiles",
            "@minBufferTime",
            "length is unknown",
            "no @id",
            "not an unsigned",
            "white space",
            "both $Number$ and $Time$",
            "no @mimeType",
            "$Time$ with no SegmentTimeline",
        ] {
            assert!(f.iter().any(|t| t.contains(want)), "{want}: {f:#?}");
        }
        assert!(parse("hello").is_err());
        assert!(parse("<MPD><Period>").is_err());
    }

    #[test]
    fn parses_durations_and_ranges() {
        assert_eq!(duration("PT16.0S"), Some(16.0));
        assert_eq!(duration("PT1H2M3.5S"), Some(3723.5));
        assert_eq!(duration("P1DT1S"), Some(86401.0));
        assert_eq!(duration("PT"), None);
        assert_eq!(duration("P1Y"), None);
        assert_eq!(duration("PT1S2M"), None);
        assert_eq!(byte_range("0-789"), Some((0, 789)));
        assert_eq!(byte_range("9-1"), None);
        assert_eq!(
            expand(
                "$Bandwidth%03d$",
                &Vars {
                    bandwidth: 5,
                    ..Vars::default()
                }
            )
            .unwrap(),
            "005"
        );
        assert!(expand("$Number%x$", &Vars::default()).is_err());
        assert!(expand("$Nope$", &Vars::default()).is_err());
        assert!(expand("$RepresentationID%02d$", &Vars::default()).is_err());
    }
}
