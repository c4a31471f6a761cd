//! Reading a static MPD (DASH §5.3): the periods, the first video adaptation set of each, its
//! representations by `@bandwidth`, their BaseURL alternatives (§5.6) and where every segment is,
//! whichever of the four addressing schemes (§5.3.9) the MPD uses.

use roxmltree::{Document, Node, ParsingOptions};

use super::url::Url;

/// Elements in one MPD; more is refused before it costs memory.
const MAX_NODES: u32 = 1_000_000;
/// Segments of one representation.
const MAX_SEGMENTS: u64 = 100_000;
/// BaseURL alternatives of one representation (they multiply level by level).
const MAX_ALTERNATIVES: usize = 32;
/// The addressing elements, in the order one is looked for at each level.
const ADDRESSING: [&str; 3] = ["SegmentTemplate", "SegmentList", "SegmentBase"];

/// A byte range, both ends included (RFC 9110 §14.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ByteRange {
    /// First byte.
    pub(super) first: u64,
    /// Last byte.
    pub(super) last: u64,
}

impl ByteRange {
    /// `FIRST-LAST`, as the MPD and the Range field write it.
    pub(super) fn parse(text: &str) -> Result<ByteRange, String> {
        let bad = || format!("bad byte range {text:?}");
        let (first, last) = text.trim().split_once('-').ok_or_else(bad)?;
        let first: u64 = first.trim().parse().map_err(|_| bad())?;
        let last: u64 = last.trim().parse().map_err(|_| bad())?;
        if last < first {
            return Err(bad());
        }
        Ok(ByteRange { first, last })
    }

    /// The number of bytes.
    pub(super) fn len(self) -> u64 {
        self.last - self.first + 1
    }
}

/// Where some bytes are: a URL reference resolved against the representation's BaseURL (none:
/// the BaseURL itself), and maybe a byte range of what it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Location {
    /// A URL reference (relative or absolute).
    pub(super) path: Option<String>,
    /// Only these bytes.
    pub(super) range: Option<ByteRange>,
}

/// One media segment.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Segment {
    /// Where it is.
    pub(super) at: Location,
    /// Its duration in seconds.
    pub(super) duration: f64,
}

/// A representation's media segments.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Segments {
    /// Known from the MPD.
    Listed(Vec<Segment>),
    /// In the `sidx` box at these bytes of the BaseURL (SegmentBase), read on first use.
    Indexed(ByteRange),
}

/// One representation of the adaptation set played.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Representation {
    /// `@id`.
    pub(super) id: String,
    /// `@bandwidth`, bit/s.
    pub(super) bandwidth: u64,
    /// Its BaseURL alternatives, resolved through every level, in the order to try them.
    pub(super) bases: Vec<Url>,
    /// Its initialization segment, if it has one.
    pub(super) init: Option<Location>,
    /// Its media segments.
    pub(super) segments: Segments,
    /// The segment after the last, where the addressing can name one (for the `past-end` fault).
    pub(super) past_end: Option<Location>,
}

/// One period: the representations of its first video adaptation set, by `@bandwidth`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Period {
    /// Seconds.
    pub(super) duration: Option<f64>,
    /// Ordered by `@bandwidth`, lowest first.
    pub(super) representations: Vec<Representation>,
}

/// (initialization, media segments, the segment past the end) of one representation.
type Addressing = (Option<Location>, Segments, Option<Location>);

/// The faults that change how the MPD is read (see the player's `FAULTS`).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Quirks {
    /// `ignores-start-number`: `$Number$` counts from 1.
    pub(super) ignore_start_number: bool,
    /// `ignores-width`: `%0Nd` is not padded.
    pub(super) ignore_width: bool,
    /// `time-as-number`: `$Time$` is the segment's number.
    pub(super) time_as_number: bool,
    /// `ignores-relative-base`: BaseURLs below the MPD element are not read.
    pub(super) ignore_relative_base: bool,
    /// `ignores-list`: a SegmentURL's @media is not read (only its @mediaRange).
    pub(super) ignore_list_media: bool,
    /// `ignores-mpd-base`: the MPD element's own BaseURLs are not read.
    pub(super) ignore_mpd_base: bool,
}

/// Reads the MPD fetched from `mpd_url` (after redirects: RFC 3986 §5.1.3 makes that the base).
pub(super) fn parse(text: &str, mpd_url: &Url, quirks: Quirks) -> Result<Vec<Period>, String> {
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
    };
    let doc = Document::parse_with_options(text, options).map_err(|e| format!("the MPD is not XML: {e}"))?;
    let mpd = doc.root_element();
    if mpd.tag_name().name() != "MPD" {
        return Err(format!("the document's root is <{}>, not <MPD>", mpd.tag_name().name()));
    }
    if mpd.attribute("type").is_some_and(|t| t != "static") {
        return Err("only a static MPD can be played (type is not \"static\")".to_owned());
    }
    let total = mpd
        .attribute("mediaPresentationDuration")
        .map(|d| parse_duration(d).map_err(|e| format!("mediaPresentationDuration: {e}")))
        .transpose()?;
    let mpd_bases = match quirks.ignore_mpd_base {
        true => vec![mpd_url.clone()],
        false => bases(std::slice::from_ref(mpd_url), mpd)?,
    };
    let period_nodes: Vec<Node> = elements(mpd, "Period").collect();
    if period_nodes.is_empty() {
        return Err("the MPD has no Period".to_owned());
    }
    let starts = period_starts(&period_nodes)?;
    let mut periods = Vec::new();
    for (i, period) in period_nodes.iter().enumerate() {
        // §5.3.2.1: a period lasts its @duration, else until the next one starts, else until the
        // presentation ends.
        let duration = match attr_duration(*period, "duration")? {
            Some(d) => Some(d),
            None => match (starts[i], starts.get(i + 1).copied().flatten(), total) {
                (Some(start), Some(next), _) => Some(next - start),
                (Some(start), None, Some(total)) if i + 1 == period_nodes.len() => Some(total - start),
                _ => None,
            },
        }
        .filter(|d| *d > 0.0);
        let context = Context {
            quirks,
            duration,
            period: *period,
        };
        let period_bases = match quirks.ignore_relative_base {
            true => mpd_bases.clone(),
            false => bases(&mpd_bases, *period)?,
        };
        let representations = adaptation_set(&context, &period_bases).map_err(|e| format!("Period {}: {e}", i + 1))?;
        periods.push(Period { duration, representations });
    }
    Ok(periods)
}

/// What reading one period's representations needs to know.
struct Context<'a, 'input> {
    quirks: Quirks,
    duration: Option<f64>,
    period: Node<'a, 'input>,
}

/// Each period's start: `@start`, else the end of the one before (§5.3.2.1); the first starts at 0.
fn period_starts(periods: &[Node]) -> Result<Vec<Option<f64>>, String> {
    let mut starts = Vec::with_capacity(periods.len());
    let mut previous_end = Some(0.0);
    for period in periods {
        let start = attr_duration(*period, "start")?.or(previous_end);
        previous_end = match (start, attr_duration(*period, "duration")?) {
            (Some(start), Some(duration)) => Some(start + duration),
            _ => None,
        };
        starts.push(start);
    }
    Ok(starts)
}

/// The first video adaptation set of the period (else its first set), its representations by
/// `@bandwidth`.
fn adaptation_set(context: &Context, period_bases: &[Url]) -> Result<Vec<Representation>, String> {
    let sets: Vec<Node> = elements(context.period, "AdaptationSet").collect();
    let is_video =
        |node: Node| node.attribute("contentType") == Some("video") || node.attribute("mimeType").is_some_and(|m| m.starts_with("video/"));
    let set = sets
        .iter()
        .find(|set| is_video(**set) || elements(**set, "Representation").any(is_video))
        .or(sets.first())
        .copied()
        .ok_or("no AdaptationSet")?;
    let set_bases = match context.quirks.ignore_relative_base {
        true => period_bases.to_vec(),
        false => bases(period_bases, set)?,
    };
    let mut representations = Vec::new();
    for (i, node) in elements(set, "Representation").enumerate() {
        let id = node.attribute("id").map_or_else(|| i.to_string(), str::to_owned);
        let bandwidth = node
            .attribute("bandwidth")
            .and_then(|b| b.trim().parse::<u64>().ok())
            .filter(|b| *b > 0)
            .ok_or_else(|| format!("Representation {id:?} has no valid @bandwidth"))?;
        let rep_bases = match context.quirks.ignore_relative_base {
            true => set_bases.clone(),
            false => bases(&set_bases, node)?,
        };
        let (init, segments, past_end) = addressing(context, [Some(context.period), Some(set), Some(node)], &id, bandwidth)
            .map_err(|e| format!("Representation {id:?}: {e}"))?;
        representations.push(Representation {
            id,
            bandwidth,
            bases: rep_bases,
            init,
            segments,
            past_end,
        });
    }
    if representations.is_empty() {
        return Err("the AdaptationSet has no Representation".to_owned());
    }
    // Stable: representations of equal bandwidth keep the MPD's order.
    representations.sort_by_key(|r| r.bandwidth);
    Ok(representations)
}

/// The alternatives one level down: each of this element's BaseURLs resolved against each of the
/// level above's (§5.6.4); none at this level keeps the level above's.
fn bases(parents: &[Url], node: Node) -> Result<Vec<Url>, String> {
    let references: Vec<&str> = elements(node, "BaseURL").map(|b| b.text().unwrap_or("")).collect();
    if references.is_empty() {
        return Ok(parents.to_vec());
    }
    let mut out: Vec<Url> = Vec::new();
    let mut last_error = String::new();
    for parent in parents {
        for reference in &references {
            match parent.resolve(reference) {
                Ok(url) if !out.contains(&url) && out.len() < MAX_ALTERNATIVES => out.push(url),
                Ok(_) => {}
                Err(e) => last_error = e,
            }
        }
    }
    match out.is_empty() {
        true => Err(format!("no usable BaseURL in <{}>: {last_error}", node.tag_name().name())),
        false => Ok(out),
    }
}

/// (initialization, media segments, the segment past the end) of one representation, from the
/// addressing element nearest to it (`levels`: Period, AdaptationSet, Representation).
fn addressing(context: &Context, levels: [Option<Node>; 3], id: &str, bandwidth: u64) -> Result<Addressing, String> {
    let kind = levels
        .iter()
        .rev()
        .flatten()
        .find_map(|level| ADDRESSING.iter().find(|kind| element(*level, kind).is_some()));
    let Some(&kind) = kind else {
        // No addressing: the BaseURL is the one segment of the whole period (§5.3.9.1).
        let duration = context.duration.ok_or("no segment addressing and no period duration")?;
        let whole = Segment {
            at: Location { path: None, range: None },
            duration,
        };
        return Ok((None, Segments::Listed(vec![whole]), None));
    };
    // §5.3.9.1: the element at a lower level inherits what it does not say from the same element
    // at the levels above.
    let chain = Inherited {
        elements: levels.iter().flatten().filter_map(|level| element(*level, kind)).collect(),
    };
    let timescale = match chain.attr("timescale") {
        Some(t) => t.trim().parse::<u64>().ok().filter(|t| *t > 0).ok_or("bad @timescale")?,
        None => 1,
    };
    let vars = Vars {
        id,
        bandwidth,
        number: None,
        time: None,
    };
    match kind {
        "SegmentTemplate" => template(context, &chain, timescale, &vars),
        "SegmentList" => list(context, &chain, timescale),
        _ => base(context, &chain),
    }
}

/// One addressing element and the same element at the levels above it, nearest last.
struct Inherited<'a, 'input> {
    elements: Vec<Node<'a, 'input>>,
}

impl<'a, 'input> Inherited<'a, 'input> {
    fn attr(&self, name: &str) -> Option<&'a str> {
        self.elements.iter().rev().find_map(|e| e.attribute(name))
    }
    fn child(&self, name: &str) -> Option<Node<'a, 'input>> {
        self.elements.iter().rev().find_map(|e| element(*e, name))
    }
    fn u64_attr(&self, name: &str) -> Result<Option<u64>, String> {
        self.attr(name)
            .map(|v| v.trim().parse::<u64>().map_err(|_| format!("bad @{name} {v:?}")))
            .transpose()
    }
}

/// `Initialization@sourceURL` and/or `@range` (§5.3.9.2).
fn initialization(node: Node) -> Result<Option<Location>, String> {
    let path = node.attribute("sourceURL").map(str::to_owned);
    let range = node.attribute("range").map(ByteRange::parse).transpose()?;
    Ok((path.is_some() || range.is_some()).then_some(Location { path, range }))
}

/// SegmentTemplate (§5.3.9.4), with `@duration` or a SegmentTimeline.
fn template(context: &Context, chain: &Inherited, timescale: u64, vars: &Vars) -> Result<Addressing, String> {
    let quirks = context.quirks;
    let pad = !quirks.ignore_width;
    let media = chain.attr("media").ok_or("SegmentTemplate without @media")?;
    let init = match chain.attr("initialization") {
        Some(t) => Some(Location {
            path: Some(expand(t, vars, pad)?),
            range: None,
        }),
        None => chain.child("Initialization").map(initialization).transpose()?.flatten(),
    };
    let start_number = match quirks.ignore_start_number {
        true => 1,
        false => chain.u64_attr("startNumber")?.unwrap_or(1),
    };
    let offset = chain.u64_attr("presentationTimeOffset")?.unwrap_or(0);
    // (start time, duration) of each segment plus one past the end, in timescale units.
    let times: Vec<(u64, u64)> = match chain.child("SegmentTimeline") {
        Some(timeline) => {
            let end = context.duration.map(|d| offset as f64 + d * timescale as f64);
            let mut times = expand_timeline(timeline, end)?;
            let after = times.last().map(|&(t, d)| (t.saturating_add(d), d));
            times.extend(after);
            times
        }
        None => {
            let duration = chain
                .u64_attr("duration")?
                .filter(|d| *d > 0)
                .ok_or("SegmentTemplate without @duration or SegmentTimeline")?;
            let period = context.duration.ok_or("a SegmentTemplate @duration needs the period's duration")?;
            let mut count = segment_count(period, duration as f64 / timescale as f64)?;
            if let Some(end_number) = chain.u64_attr("endNumber")? {
                count = count.min(end_number.saturating_add(1).saturating_sub(start_number));
            }
            (0..=count)
                .map(|k| (offset.saturating_add(k.saturating_mul(duration)), duration))
                .collect()
        }
    };
    let mut locations = Vec::with_capacity(times.len());
    for (k, &(time, duration)) in times.iter().enumerate() {
        let number = start_number.checked_add(k as u64).ok_or("$Number$ overflows")?;
        let vars = Vars {
            number: Some(number),
            time: Some(if quirks.time_as_number { number } else { time }),
            ..*vars
        };
        let segment = Segment {
            at: Location {
                path: Some(expand(media, &vars, pad)?),
                range: None,
            },
            duration: duration as f64 / timescale as f64,
        };
        locations.push(segment);
    }
    let past_end = locations.pop().map(|s| s.at);
    if locations.is_empty() {
        return Err("no segments".to_owned());
    }
    Ok((init, Segments::Listed(locations), past_end))
}

/// `ceil(period / segment)`, where a float error of a millionth does not add a segment.
fn segment_count(period: f64, segment: f64) -> Result<u64, String> {
    let count = (period / segment - 1e-6).ceil();
    if !(count.is_finite() && count >= 1.0 && count <= MAX_SEGMENTS as f64) {
        return Err(format!("{period} s in segments of {segment} s is not 1 to {MAX_SEGMENTS} segments"));
    }
    Ok(count as u64)
}

/// (start, duration) of each segment a SegmentTimeline lists (§5.3.9.6); `end` (timescale units)
/// is where `@r="-1"` stops.
fn expand_timeline(timeline: Node, end: Option<f64>) -> Result<Vec<(u64, u64)>, String> {
    let entries: Vec<Node> = elements(timeline, "S").collect();
    let mut out = Vec::new();
    let mut next = 0u64;
    for (i, s) in entries.iter().enumerate() {
        let number = |name: &str| -> Result<Option<i64>, String> {
            s.attribute(name)
                .map(|v| v.trim().parse::<i64>().map_err(|_| format!("bad S@{name} {v:?}")))
                .transpose()
        };
        let mut t = match number("t")? {
            Some(t) => u64::try_from(t).map_err(|_| "a negative S@t")?,
            None => next,
        };
        let d = number("d")?
            .and_then(|d| u64::try_from(d).ok())
            .filter(|d| *d > 0)
            .ok_or("an S without a positive @d")?;
        let repeats = match number("r")?.unwrap_or(0) {
            r if r >= 0 => r as u64,
            // -1: repeat until the next S's @t, or the end of the period.
            _ => {
                let stop = match entries.get(i + 1).and_then(|n| n.attribute("t")) {
                    Some(t) => t.trim().parse::<f64>().map_err(|_| format!("bad S@t {t:?}"))?,
                    None => end.ok_or("S@r=-1 in the last S needs the period's duration")?,
                };
                let count = ((stop - t as f64) / d as f64 - 1e-6).ceil();
                if count < 1.0 {
                    return Err("S@r=-1 with no room to repeat".to_owned());
                }
                (count.min(MAX_SEGMENTS as f64) as u64) - 1
            }
        };
        for _ in 0..=repeats {
            if out.len() as u64 >= MAX_SEGMENTS {
                return Err(format!("more than {MAX_SEGMENTS} segments"));
            }
            out.push((t, d));
            t = t.checked_add(d).ok_or("the timeline overflows")?;
        }
        next = t;
    }
    if out.is_empty() {
        return Err("an empty SegmentTimeline".to_owned());
    }
    Ok(out)
}

/// SegmentList (§5.3.9.3): one SegmentURL per segment.
fn list(context: &Context, chain: &Inherited, timescale: u64) -> Result<Addressing, String> {
    let ignore_media = context.quirks.ignore_list_media;
    let init = chain.child("Initialization").map(initialization).transpose()?.flatten();
    let urls: Vec<Node> = chain
        .elements
        .iter()
        .rev()
        .map(|e| elements(*e, "SegmentURL").collect::<Vec<_>>())
        .find(|urls| !urls.is_empty())
        .ok_or("a SegmentList without SegmentURL")?;
    if urls.len() as u64 > MAX_SEGMENTS {
        return Err(format!("more than {MAX_SEGMENTS} segments"));
    }
    let durations: Vec<f64> = match (chain.child("SegmentTimeline"), chain.u64_attr("duration")?) {
        (Some(timeline), _) => expand_timeline(timeline, None)?
            .into_iter()
            .map(|(_, d)| d as f64 / timescale as f64)
            .collect(),
        (None, Some(d)) if d > 0 => vec![d as f64 / timescale as f64; urls.len()],
        _ => {
            let period = context
                .duration
                .ok_or("a SegmentList without @duration needs the period's duration")?;
            vec![period / urls.len() as f64; urls.len()]
        }
    };
    let mut segments = Vec::with_capacity(urls.len());
    for (i, url) in urls.iter().enumerate() {
        let path = url.attribute("media").filter(|_| !ignore_media).map(str::to_owned);
        let range = url.attribute("mediaRange").map(ByteRange::parse).transpose()?;
        let duration = durations.get(i).copied().ok_or("fewer SegmentTimeline entries than SegmentURLs")?;
        segments.push(Segment {
            at: Location { path, range },
            duration,
        });
    }
    let past_end = segments.last().and_then(|s| after(&s.at));
    Ok((init, Segments::Listed(segments), past_end))
}

/// The bytes right after a segment given by a range only, as long as it; a URL names nothing after
/// it.
pub(super) fn after(at: &Location) -> Option<Location> {
    match (&at.path, at.range) {
        (None, Some(range)) => Some(Location {
            path: None,
            range: Some(ByteRange {
                first: range.last.checked_add(1)?,
                last: range.last.checked_add(range.len())?,
            }),
        }),
        _ => None,
    }
}

/// SegmentBase (§5.3.9.2): one file, its segments in the `sidx` at `@indexRange`.
fn base(context: &Context, chain: &Inherited) -> Result<Addressing, String> {
    let index = chain.attr("indexRange").map(ByteRange::parse).transpose()?;
    let init = chain.child("Initialization").map(initialization).transpose()?.flatten();
    match index {
        Some(index) => {
            // Without Initialization, what precedes the index is the file's header (moov).
            let init = init.or_else(|| {
                (index.first > 0).then(|| Location {
                    path: None,
                    range: Some(ByteRange {
                        first: 0,
                        last: index.first - 1,
                    }),
                })
            });
            Ok((init, Segments::Indexed(index), None))
        }
        None => {
            let duration = context
                .duration
                .ok_or("a SegmentBase without @indexRange needs the period's duration")?;
            let whole = Segment {
                at: Location { path: None, range: None },
                duration,
            };
            Ok((init, Segments::Listed(vec![whole]), None))
        }
    }
}

/// The values a template's identifiers stand for (§5.3.9.4.4).
#[derive(Debug, Clone, Copy)]
pub(super) struct Vars<'a> {
    /// `$RepresentationID$`.
    pub(super) id: &'a str,
    /// `$Bandwidth$`.
    pub(super) bandwidth: u64,
    /// `$Number$`, none in an initialization template.
    pub(super) number: Option<u64>,
    /// `$Time$`, none in an initialization template.
    pub(super) time: Option<u64>,
}

/// Expands a SegmentTemplate string; `pad: false` is the `ignores-width` fault.
pub(super) fn expand(template: &str, vars: &Vars, pad: bool) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after.find('$').ok_or_else(|| format!("an unclosed $ in {template:?}"))?;
        let name = &after[..end];
        rest = &after[end + 1..];
        if name.is_empty() {
            out.push('$');
            continue;
        }
        let (ident, format) = match name.split_once('%') {
            Some((ident, format)) => (ident, Some(format)),
            None => (name, None),
        };
        let value = match ident {
            "RepresentationID" if format.is_none() => {
                out.push_str(vars.id);
                continue;
            }
            "Number" => vars.number,
            "Time" => vars.time,
            "Bandwidth" => Some(vars.bandwidth),
            _ => return Err(format!("unknown identifier ${name}$ in {template:?}")),
        };
        let value = value.ok_or_else(|| format!("${ident}$ cannot be used in {template:?}"))?;
        let width = match format {
            None => 0,
            Some(format) => format
                .strip_prefix('0')
                .and_then(|f| f.strip_suffix('d'))
                .and_then(|w| w.parse::<usize>().ok())
                .filter(|w| (1..=20).contains(w))
                .ok_or_else(|| format!("bad width %{format} in {template:?} (DASH allows %0Nd)"))?,
        };
        let width = if pad { width } else { 0 };
        out.push_str(&format!("{value:0width$}"));
    }
    out.push_str(rest);
    Ok(out)
}

/// An `xs:duration` of the form DASH uses (`PT1H2M3.5S`, `P1DT2H`), in seconds; years and months
/// have no fixed length, so they are refused.
fn parse_duration(text: &str) -> Result<f64, String> {
    let bad = || format!("bad duration {text:?}");
    let body = text.trim().strip_prefix('P').ok_or_else(bad)?;
    let (date, time) = match body.split_once('T') {
        Some((date, time)) if !time.is_empty() => (date, time),
        Some(_) => return Err(bad()),
        None => (body, ""),
    };
    let mut seconds = 0.0;
    let mut fields = 0;
    for (part, units) in [(date, &[('D', 86400.0)][..]), (time, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)][..])] {
        let mut rest = part;
        for &(unit, scale) in units {
            if let Some((number, after)) = rest.split_once(unit) {
                let value: f64 = number.parse().map_err(|_| bad())?;
                if !(value.is_finite() && value >= 0.0) || (unit != 'S' && number.contains('.')) {
                    return Err(bad());
                }
                seconds += value * scale;
                fields += 1;
                rest = after;
            }
        }
        if !rest.is_empty() {
            return Err(bad());
        }
    }
    if fields == 0 {
        return Err(bad());
    }
    Ok(seconds)
}

/// An optional duration attribute.
fn attr_duration(node: Node, name: &str) -> Result<Option<f64>, String> {
    node.attribute(name)
        .map(|d| parse_duration(d).map_err(|e| format!("@{name}: {e}")))
        .transpose()
}

/// Child elements with this local name (the MPD namespace, or none, is not checked).
fn elements<'a, 'input>(node: Node<'a, 'input>, name: &'static str) -> impl Iterator<Item = Node<'a, 'input>> {
    node.children().filter(move |c| c.is_element() && c.tag_name().name() == name)
}

fn element<'a, 'input>(node: Node<'a, 'input>, name: &str) -> Option<Node<'a, 'input>> {
    node.children().find(|c| c.is_element() && c.tag_name().name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(number: u64, time: u64) -> Vars<'static> {
        Vars {
            id: "v1",
            bandwidth: 80000,
            number: Some(number),
            time: Some(time),
        }
    }

    #[test]
    fn templates() {
        let v = vars(7, 9000);
        for (template, expected) in [
            ("seg-$RepresentationID$-$Number$.m4s", "seg-v1-7.m4s"),
            ("$Number%05d$.m4s", "00007.m4s"),
            ("$Time$/$Bandwidth%08d$", "9000/00080000"),
            ("$Time%03d$", "9000"),
            ("a$$b$$$Number$", "a$b$7"),
            ("plain.m4s", "plain.m4s"),
            ("$$", "$"),
        ] {
            assert_eq!(expand(template, &v, true).as_deref(), Ok(expected), "{template}");
        }
        assert_eq!(expand("$Number%05d$", &v, false).as_deref(), Ok("7"), "ignores-width");
        for bad in [
            "$Number",
            "$Nmber$",
            "$Number%5d$",
            "$Number%05x$",
            "$RepresentationID%02d$",
            "$Number%0d$",
        ] {
            assert!(expand(bad, &v, true).is_err(), "{bad}");
        }
        let init = Vars {
            number: None,
            time: None,
            ..v
        };
        assert_eq!(
            expand("init-$RepresentationID$-$Bandwidth$.mp4", &init, true).as_deref(),
            Ok("init-v1-80000.mp4")
        );
        assert!(expand("init-$Number$.mp4", &init, true).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("PT16.0S"), Ok(16.0));
        assert_eq!(parse_duration("PT1H2M3.5S"), Ok(3723.5));
        assert_eq!(parse_duration("P1DT1S"), Ok(86401.0));
        assert_eq!(parse_duration("PT2M"), Ok(120.0));
        for bad in ["", "P", "PT", "16", "PT-1S", "P1Y", "PT1.5M", "PTS", "PT1S2"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    fn timeline(xml: &str, end: Option<f64>) -> Result<Vec<(u64, u64)>, String> {
        let doc = Document::parse(xml).expect("xml");
        expand_timeline(doc.root_element(), end)
    }

    #[test]
    fn timelines() {
        let xml = r#"<SegmentTimeline><S t="100" d="10" r="2"/><S d="20"/><S t="200" d="5" r="1"/></SegmentTimeline>"#;
        assert_eq!(
            timeline(xml, None),
            Ok(vec![(100, 10), (110, 10), (120, 10), (130, 20), (200, 5), (205, 5)])
        );
        let repeat_to_next = r#"<SegmentTimeline><S d="10" r="-1"/><S t="35" d="5"/></SegmentTimeline>"#;
        assert_eq!(
            timeline(repeat_to_next, None),
            Ok(vec![(0, 10), (10, 10), (20, 10), (30, 10), (35, 5)])
        );
        let repeat_to_end = r#"<SegmentTimeline><S t="0" d="4" r="-1"/></SegmentTimeline>"#;
        assert_eq!(timeline(repeat_to_end, Some(12.0)), Ok(vec![(0, 4), (4, 4), (8, 4)]));
        assert!(timeline(repeat_to_end, None).is_err());
        assert!(timeline(r#"<SegmentTimeline><S t="0"/></SegmentTimeline>"#, None).is_err());
        assert!(timeline(r#"<SegmentTimeline/>"#, None).is_err());
        assert!(timeline(r#"<SegmentTimeline><S d="1" r="999999999"/></SegmentTimeline>"#, None).is_err());
    }

    const URL: &str = "http://127.0.0.2:40123/lab/video.mpd";

    fn read(xml: &str, quirks: Quirks) -> Vec<Period> {
        parse(xml, &Url::parse(URL).expect("url"), quirks).expect("mpd")
    }

    fn paths(rep: &Representation) -> Vec<String> {
        let Segments::Listed(segments) = &rep.segments else {
            panic!("not listed")
        };
        segments.iter().map(|s| s.at.path.clone().unwrap_or_default()).collect()
    }

    #[test]
    fn the_fixture() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/dash/testsrc/video.mpd")).expect("fixture");
        let periods = read(&text, Quirks::default());
        assert_eq!(periods.len(), 1);
        assert_eq!(periods[0].duration, Some(16.0));
        let reps = &periods[0].representations;
        assert_eq!(reps.iter().map(|r| r.bandwidth).collect::<Vec<_>>(), [40000, 80000, 160000, 320000]);
        let top = &reps[3];
        assert_eq!(top.bases[0].to_string(), URL);
        assert_eq!(top.init.as_ref().and_then(|i| i.path.as_deref()), Some("init-3.m4s"));
        let p = paths(top);
        assert_eq!(p.len(), 16);
        assert_eq!((p[0].as_str(), p[15].as_str()), ("seg-3-1.m4s", "seg-3-16.m4s"));
        assert_eq!(top.past_end.as_ref().and_then(|l| l.path.as_deref()), Some("seg-3-17.m4s"));
    }

    #[test]
    fn the_ondemand_fixture() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/dash/ondemand/ondemand.mpd")).expect("fixture");
        let periods = read(&text, Quirks::default());
        let rep = &periods[0].representations[1];
        assert_eq!(rep.bases[0].to_string(), "http://127.0.0.2:40123/lab/od-1.mp4");
        assert_eq!(
            rep.init,
            Some(Location {
                path: None,
                range: Some(ByteRange { first: 0, last: 791 })
            })
        );
        let Segments::Listed(segments) = &rep.segments else {
            panic!("listed")
        };
        assert_eq!(segments.len(), 16);
        assert_eq!(segments[0].at.range, Some(ByteRange { first: 792, last: 11343 }));
        assert_eq!(segments[0].duration, 1.0);
        assert_eq!(
            rep.past_end.as_ref().and_then(|l| l.range),
            Some(ByteRange {
                first: 168139,
                last: 179863
            })
        );
        let ignored = read(
            &text,
            Quirks {
                ignore_relative_base: true,
                ..Quirks::default()
            },
        );
        assert_eq!(ignored[0].representations[1].bases[0].to_string(), URL);
    }

    #[test]
    fn inheritance_and_base_urls() {
        let xml = r#"<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT4S">
          <BaseURL>http://a.test/root/</BaseURL>
          <BaseURL>http://b.test/</BaseURL>
          <Period>
            <BaseURL>p/</BaseURL>
            <AdaptationSet mimeType="audio/mp4"><Representation id="a" bandwidth="1"/></AdaptationSet>
            <AdaptationSet>
              <BaseURL>v/</BaseURL>
              <SegmentTemplate timescale="10" duration="20" media="$RepresentationID$/$Number%03d$.m4s" initialization="$RepresentationID$/init.mp4" startNumber="5"/>
              <Representation id="hi" bandwidth="900" mimeType="video/mp4">
                <BaseURL>../hi/</BaseURL>
                <SegmentTemplate startNumber="0"/>
              </Representation>
              <Representation id="lo" bandwidth="100" mimeType="video/mp4">
                <BaseURL>http://c.test/lo/</BaseURL>
                <SegmentTemplate media="$Time$.m4s">
                  <SegmentTimeline><S t="0" d="20" r="1"/></SegmentTimeline>
                </SegmentTemplate>
              </Representation>
            </AdaptationSet>
          </Period></MPD>"#;
        let periods = read(xml, Quirks::default());
        let reps = &periods[0].representations;
        let (lo, hi) = (&reps[0], &reps[1]);
        assert_eq!((lo.id.as_str(), hi.id.as_str()), ("lo", "hi"));
        let shown = |r: &Representation| r.bases.iter().map(|b| b.to_string()).collect::<Vec<_>>();
        assert_eq!(shown(hi), ["http://a.test/root/p/hi/", "http://b.test/p/hi/"]);
        assert_eq!(shown(lo), ["http://c.test/lo/"], "an absolute BaseURL is one alternative, once");
        // hi: the set's template, with its own startNumber (0) winning.
        assert_eq!(paths(hi), ["hi/000.m4s", "hi/001.m4s"]);
        assert_eq!(hi.init.as_ref().and_then(|i| i.path.as_deref()), Some("hi/init.mp4"));
        // lo: its own media and timeline, the set's timescale and initialization.
        assert_eq!(paths(lo), ["0.m4s", "20.m4s"]);
        assert_eq!(lo.init.as_ref().and_then(|i| i.path.as_deref()), Some("lo/init.mp4"));
        let quirky = read(
            xml,
            Quirks {
                ignore_start_number: true,
                ignore_width: true,
                time_as_number: true,
                ignore_relative_base: true,
                ..Quirks::default()
            },
        );
        let (lo, hi) = (&quirky[0].representations[0], &quirky[0].representations[1]);
        assert_eq!(paths(hi), ["hi/1.m4s", "hi/2.m4s"]);
        assert_eq!(paths(lo), ["1.m4s", "2.m4s"]);
        assert_eq!(shown(hi), ["http://a.test/root/", "http://b.test/"]);
        let no_mpd_base = read(
            xml,
            Quirks {
                ignore_mpd_base: true,
                ..Quirks::default()
            },
        );
        assert!(!shown(&no_mpd_base[0].representations[1]).contains(&"http://a.test/root/".to_string()));
    }

    #[test]
    fn periods() {
        let xml = r#"<MPD type="static" mediaPresentationDuration="PT10S">
            <Period duration="PT4S"><SegmentTemplate duration="2" media="a-$Number$"/>
              <AdaptationSet><Representation id="x" bandwidth="1"/></AdaptationSet></Period>
            <Period><SegmentTemplate duration="3" media="b-$Number$"/>
              <AdaptationSet><Representation id="y" bandwidth="1"/></AdaptationSet></Period>
            </MPD>"#;
        let periods = read(xml, Quirks::default());
        assert_eq!((periods[0].duration, periods[1].duration), (Some(4.0), Some(6.0)));
        assert_eq!(paths(&periods[0].representations[0]), ["a-1", "a-2"]);
        assert_eq!(paths(&periods[1].representations[0]), ["b-1", "b-2"]);
    }

    #[test]
    fn segment_base_and_list() {
        let xml = r#"<MPD type="static" mediaPresentationDuration="PT3S"><Period>
            <AdaptationSet contentType="video">
              <Representation id="0" bandwidth="50"><BaseURL>f.mp4</BaseURL>
                <SegmentBase indexRange="700-799"><Initialization range="0-699"/></SegmentBase></Representation>
              <Representation id="1" bandwidth="60"><BaseURL>g.mp4</BaseURL>
                <SegmentBase indexRange="500-551"/></Representation>
              <Representation id="2" bandwidth="70">
                <SegmentList timescale="2" duration="3"><Initialization sourceURL="i.mp4"/>
                  <SegmentURL media="a.m4s"/><SegmentURL media="b.m4s" mediaRange="10-19"/></SegmentList></Representation>
            </AdaptationSet></Period></MPD>"#;
        let periods = read(xml, Quirks::default());
        let reps = &periods[0].representations;
        assert_eq!(reps[0].segments, Segments::Indexed(ByteRange { first: 700, last: 799 }));
        assert_eq!(reps[0].init.as_ref().and_then(|i| i.range), Some(ByteRange { first: 0, last: 699 }));
        assert_eq!(
            reps[1].init.as_ref().and_then(|i| i.range),
            Some(ByteRange { first: 0, last: 499 }),
            "the bytes before the index"
        );
        let Segments::Listed(list) = &reps[2].segments else {
            panic!("listed")
        };
        assert_eq!(
            list[1].at,
            Location {
                path: Some("b.m4s".into()),
                range: Some(ByteRange { first: 10, last: 19 })
            }
        );
        assert_eq!(list[0].duration, 1.5);
        assert_eq!(reps[2].past_end, None);
    }

    #[test]
    fn counts_and_bad_mpds() {
        let with = |duration: &str, template: &str| {
            format!(
                r#"<MPD type="static" mediaPresentationDuration="{duration}"><Period><AdaptationSet>
                <Representation id="r" bandwidth="1">{template}</Representation></AdaptationSet></Period></MPD>"#
            )
        };
        let url = Url::parse(URL).expect("url");
        let count = |xml: &str| match parse(xml, &url, Quirks::default()) {
            Ok(p) => match &p[0].representations[0].segments {
                Segments::Listed(s) => Ok(s.len()),
                Segments::Indexed(_) => Err("indexed".to_owned()),
            },
            Err(e) => Err(e),
        };
        let t = r#"<SegmentTemplate timescale="1000" duration="2000" media="$Number$"/>"#;
        assert_eq!(count(&with("PT16S", t)), Ok(8));
        assert_eq!(count(&with("PT15.5S", t)), Ok(8), "a last, shorter segment");
        assert_eq!(count(&with("PT16.0000001S", t)), Ok(8), "float noise adds no segment");
        let ended = r#"<SegmentTemplate duration="1" media="$Number$" startNumber="3" endNumber="5"/>"#;
        assert_eq!(count(&with("PT16S", ended)), Ok(3));
        for bad in [
            "not xml".to_owned(),
            "<Foo/>".to_owned(),
            r#"<MPD type="dynamic"><Period/></MPD>"#.to_owned(),
            "<MPD/>".to_owned(),
            with("PT16S", r#"<SegmentTemplate duration="1"/>"#),
            with("PT16S", r#"<SegmentTemplate media="$Number$"/>"#),
            with("PT16S", r#"<SegmentTemplate duration="1" media="$Numbr$"/>"#),
            with("PT16S", r#"<SegmentTemplate duration="1" timescale="0" media="$Number$"/>"#),
            with("PT16S", r#"<SegmentList duration="1"/>"#),
            with("PT16S", r#"<SegmentBase indexRange="9-1"/>"#),
            with("PT99999999S", r#"<SegmentTemplate duration="1" media="$Number$"/>"#),
            with("PT16S", r#"<BaseURL>https://x/ y</BaseURL>"#),
            r#"<!DOCTYPE MPD [<!ENTITY a "aaaa">]><MPD/>"#.to_owned(),
        ] {
            assert!(parse(&bad, &url, Quirks::default()).is_err(), "{bad}");
        }
    }
}
