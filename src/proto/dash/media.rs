//! The presentation the `dash` actor serves: real media read from a folder an MPD describes
//! (`fixtures/dash/testsrc`), or synthetic segments of exactly @bandwidth x duration / 8 bytes;
//! and the MPD and URL layout for each addressing scheme DASH has, over the same bytes. What a
//! request is for (`Route`) is decided here, for the actor and for the judgements alike.

use std::collections::HashMap;
use std::sync::Arc;

use super::mpd::{self, Addressing};

/// One representation's bytes.
#[derive(Debug, Clone)]
pub struct Rep {
    /// `@id`.
    pub id: String,
    /// `@bandwidth`, bit/s.
    pub bandwidth: u64,
    /// `@width`/`@height`/`@codecs` as the source MPD gave them (real media only).
    pub attrs: String,
    /// The initialization segment.
    pub init: Arc<[u8]>,
    /// Media segments in order.
    pub media: Vec<Arc<[u8]>>,
}

/// What the actor serves: representations (by bandwidth) of segments of one duration.
#[derive(Debug, Clone)]
pub struct Presentation {
    /// The representations, lowest first.
    pub reps: Vec<Rep>,
    /// Seconds per segment.
    pub segment: f64,
    /// Whether the bytes are real media (a browser can play them).
    pub real: bool,
}

impl Presentation {
    /// Real media read from an MPD with a `$Number$` SegmentTemplate and the files it names;
    /// `read` gets a path relative to the MPD's folder.
    pub fn from_mpd(text: &str, mut read: impl FnMut(&str) -> Option<Arc<[u8]>>) -> Result<Presentation, String> {
        let m = mpd::parse(text)?;
        let tracks = mpd::tracks(&m, "http://media.invalid/")?;
        let mut reps = Vec::new();
        let mut segment = 0.0;
        for t in tracks {
            if t.addressing != Addressing::Number {
                return Err(format!(
                    "representation {} is addressed by {}; the actor reads media addressed by a SegmentTemplate with $Number$",
                    t.id,
                    t.addressing.name()
                ));
            }
            let rel = |u: &str| u.strip_prefix("http://media.invalid/").unwrap_or(u).to_string();
            let init = t
                .init
                .as_ref()
                .ok_or_else(|| format!("representation {} has no initialization segment", t.id))?;
            let init = read(&rel(&init.url)).ok_or_else(|| format!("cannot read {}", rel(&init.url)))?;
            let mut media = Vec::new();
            for (s, d) in &t.media {
                segment = *d;
                media.push(read(&rel(&s.url)).ok_or_else(|| format!("cannot read {}", rel(&s.url)))?);
            }
            let attrs = attrs_of(&m, &t.id);
            reps.push(Rep {
                id: t.id,
                bandwidth: t.bandwidth,
                attrs,
                init,
                media,
            });
        }
        if reps.is_empty() {
            return Err("the MPD has no representation".into());
        }
        Ok(Presentation {
            reps,
            segment: if segment > 0.0 { segment } else { 1.0 },
            real: true,
        })
    }

    /// Synthetic segments: each of exactly `rate x segment / 8` bytes, marked with what it is.
    pub fn synthetic(rates: &[u64], segments: usize, segment: f64) -> Presentation {
        let reps = rates
            .iter()
            .enumerate()
            .map(|(i, &rate)| {
                let id = format!("s{i}");
                let size = ((rate as f64 * segment) / 8.0).round().max(1.0) as usize;
                let fill = |label: String, n: usize| -> Arc<[u8]> {
                    let mut b = label.into_bytes();
                    b.resize(n.max(b.len()), b'.');
                    b.truncate(n);
                    Arc::from(b)
                };
                Rep {
                    id: id.clone(),
                    bandwidth: rate,
                    attrs: String::new(),
                    init: fill(format!("init {id}\n"), 600),
                    media: (0..segments).map(|k| fill(format!("segment {} of {id}\n", k + 1), size)).collect(),
                }
            })
            .collect();
        Presentation {
            reps,
            segment,
            real: false,
        }
    }

    /// Segments per representation.
    pub fn count(&self) -> usize {
        self.reps.iter().map(|r| r.media.len()).min().unwrap_or(0)
    }
}

/// `width`, `height`, `codecs`, `mimeType` and `sar` of representation `id` in the source MPD, as
/// attributes to write again.
fn attrs_of(m: &mpd::Mpd, id: &str) -> String {
    let r = m
        .periods
        .iter()
        .flat_map(|p| &p.adaptation_sets)
        .flat_map(|a| &a.representations)
        .find(|r| r.id.as_deref() == Some(id));
    let mut s = String::new();
    if let Some(r) = r {
        for (k, v) in [("width", &r.width), ("height", &r.height)] {
            if let Some(v) = v {
                s.push_str(&format!(" {k}=\"{}\"", xml_escape(v)));
            }
        }
    }
    s
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('"', "&quot;")
}

/// How the MPD addresses the segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// SegmentTemplate `seg-$RepresentationID$-$Number$.m4s` (with a width: `$Number%0Nd$`).
    Number,
    /// SegmentTemplate with a SegmentTimeline and `$Time$` (timescale 90000).
    Time,
    /// SegmentList with one URL per segment.
    List,
    /// SegmentList over one file per representation with `@mediaRange`s.
    ListRanges,
    /// SegmentBase: one file per representation with a segment index (sidx).
    Base,
}

impl Scheme {
    /// From a suite's name for it.
    pub fn parse(s: &str) -> Option<Scheme> {
        Some(match s {
            "number" => Scheme::Number,
            "time" => Scheme::Time,
            "list" => Scheme::List,
            "list-ranges" => Scheme::ListRanges,
            "base" => Scheme::Base,
            _ => return None,
        })
    }

    /// Every name, for errors.
    pub const NAMES: &'static str = "number, time, list, list-ranges, base";
}

/// What a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    /// The MPD.
    Mpd,
    /// Representation `rep`'s initialization segment.
    Init(usize),
    /// Representation `rep`'s segment index (SegmentBase).
    Index(usize),
    /// Representation `rep`'s media segment at `position` (0-based).
    Media(usize, usize),
    /// A whole single file (list-ranges, base) asked without a range.
    Whole(usize),
    /// Nothing the MPD lists.
    Unknown,
}

/// A path's content: the bytes, and for a single file the pieces by offset.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The bytes served.
    pub bytes: Arc<[u8]>,
    /// What a request of the whole is for.
    pub what: What,
    /// For a single file: (first byte, last byte, what) of each piece.
    pub pieces: Vec<(u64, u64, What)>,
    /// Content-Type.
    pub content_type: &'static str,
}

/// The layout of one case: the MPD text and each relative path's entry.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The MPD.
    pub mpd: String,
    /// Relative path (no leading `/`) to entry.
    pub files: HashMap<String, Entry>,
    /// Segments listed per representation.
    pub count: usize,
}

/// How one case lays the presentation out.
#[derive(Debug, Clone)]
pub struct LayoutOptions {
    /// The scheme.
    pub scheme: Scheme,
    /// `@startNumber` (Number).
    pub start_number: u64,
    /// `$Number%0Nd$` width (Number).
    pub width: Option<usize>,
    /// Only the first N segments.
    pub segments: Option<usize>,
    /// MPD-level BaseURLs, already with the port filled in.
    pub base_urls: Vec<String>,
}

/// A segment index box (ISO/IEC 14496-12 §8.16.3, version 0) for `sizes` of `duration` ticks at
/// `timescale`, the first segment right after the box.
pub fn sidx(sizes: &[usize], duration: u32, timescale: u32) -> Vec<u8> {
    let mut b = Vec::new();
    let len = 32 + 12 * sizes.len();
    b.extend_from_slice(&(len as u32).to_be_bytes());
    b.extend_from_slice(b"sidx");
    b.extend_from_slice(&[0, 0, 0, 0]); // version 0, flags
    b.extend_from_slice(&1u32.to_be_bytes()); // reference_ID: the track
    b.extend_from_slice(&timescale.to_be_bytes());
    b.extend_from_slice(&0u32.to_be_bytes()); // earliest_presentation_time
    b.extend_from_slice(&0u32.to_be_bytes()); // first_offset
    b.extend_from_slice(&0u16.to_be_bytes()); // reserved
    b.extend_from_slice(&(sizes.len() as u16).to_be_bytes());
    for &s in sizes {
        b.extend_from_slice(&((s as u32) & 0x7fff_ffff).to_be_bytes()); // reference_type 0: media
        b.extend_from_slice(&duration.to_be_bytes());
        b.extend_from_slice(&0x9000_0000u32.to_be_bytes()); // starts with SAP, type 1
    }
    b
}

/// Builds the MPD and the files for one case.
pub fn layout(p: &Presentation, o: &LayoutOptions) -> Layout {
    let count = o.segments.map_or(p.count(), |n| n.min(p.count()));
    let total = count as f64 * p.segment;
    let mut files = HashMap::new();
    let seg_type = if p.real { "video/iso.segment" } else { "application/octet-stream" };
    let file_type = if p.real { "video/mp4" } else { "application/octet-stream" };
    let mut reps_xml = String::new();
    let mut set_xml = String::new();
    let ms = (p.segment * 1000.0).round() as u64;
    let put = |files: &mut HashMap<String, Entry>, path: String, bytes: Arc<[u8]>, what: What, ct: &'static str| {
        files.insert(
            path,
            Entry {
                bytes,
                what,
                pieces: Vec::new(),
                content_type: ct,
            },
        );
    };
    match o.scheme {
        Scheme::Number => {
            let n = match o.width {
                Some(w) => format!("$Number%0{w}d$"),
                None => "$Number$".into(),
            };
            set_xml = format!(
                "      <SegmentTemplate timescale=\"1000\" duration=\"{ms}\" startNumber=\"{}\" initialization=\"init-$RepresentationID$.m4s\" media=\"seg-$RepresentationID$-{n}.m4s\"/>\n",
                o.start_number
            );
            for (i, r) in p.reps.iter().enumerate() {
                put(&mut files, format!("init-{}.m4s", r.id), r.init.clone(), What::Init(i), seg_type);
                for k in 0..count {
                    let number = o.start_number + k as u64;
                    let n = match o.width {
                        Some(w) => format!("{number:0w$}"),
                        None => number.to_string(),
                    };
                    put(
                        &mut files,
                        format!("seg-{}-{n}.m4s", r.id),
                        r.media[k].clone(),
                        What::Media(i, k),
                        seg_type,
                    );
                }
            }
        }
        Scheme::Time => {
            let d = (p.segment * 90_000.0).round() as u64;
            // Written with both forms of S (an explicit t and r, then t and r left out) so that a
            // player must read them as DASH §5.3.9.6 says.
            let mut tl = format!("<S t=\"0\" d=\"{d}\" r=\"{}\"/>", count.min(3).saturating_sub(1));
            for _ in 3..count {
                tl.push_str(&format!("<S d=\"{d}\"/>"));
            }
            set_xml = format!(
                "      <SegmentTemplate timescale=\"90000\" initialization=\"t/$RepresentationID$/init.mp4\" media=\"t/$RepresentationID$/$Time$.m4s\">\n        <SegmentTimeline>{tl}</SegmentTimeline>\n      </SegmentTemplate>\n"
            );
            for (i, r) in p.reps.iter().enumerate() {
                put(&mut files, format!("t/{}/init.mp4", r.id), r.init.clone(), What::Init(i), file_type);
                for k in 0..count {
                    put(
                        &mut files,
                        format!("t/{}/{}.m4s", r.id, k as u64 * d),
                        r.media[k].clone(),
                        What::Media(i, k),
                        seg_type,
                    );
                }
            }
        }
        Scheme::List => {
            for (i, r) in p.reps.iter().enumerate() {
                put(&mut files, format!("l/{}/init.mp4", r.id), r.init.clone(), What::Init(i), file_type);
                let mut urls = String::new();
                for k in 0..count {
                    let path = format!("l/{}/part{}.m4s", r.id, k + 1);
                    urls.push_str(&format!("          <SegmentURL media=\"{path}\"/>\n"));
                    put(&mut files, path, r.media[k].clone(), What::Media(i, k), seg_type);
                }
                reps_xml.push_str(&format!(
                    "      <Representation id=\"{}\" bandwidth=\"{}\"{}>\n        <SegmentList timescale=\"1000\" duration=\"{ms}\">\n          <Initialization sourceURL=\"l/{}/init.mp4\"/>\n{urls}        </SegmentList>\n      </Representation>\n",
                    r.id, r.bandwidth, r.attrs, r.id
                ));
            }
        }
        Scheme::ListRanges | Scheme::Base => {
            for (i, r) in p.reps.iter().enumerate() {
                let sizes: Vec<usize> = r.media[..count].iter().map(|m| m.len()).collect();
                let index = match o.scheme {
                    Scheme::Base => sidx(&sizes, ms as u32, 1000),
                    _ => Vec::new(),
                };
                let mut whole = r.init.to_vec();
                let mut pieces = vec![(0, r.init.len() as u64 - 1, What::Init(i))];
                if !index.is_empty() {
                    pieces.push((whole.len() as u64, (whole.len() + index.len()) as u64 - 1, What::Index(i)));
                    whole.extend_from_slice(&index);
                }
                let mut ranges = String::new();
                for (k, m) in r.media[..count].iter().enumerate() {
                    let first = whole.len() as u64;
                    whole.extend_from_slice(m);
                    let last = whole.len() as u64 - 1;
                    pieces.push((first, last, What::Media(i, k)));
                    ranges.push_str(&format!("          <SegmentURL mediaRange=\"{first}-{last}\"/>\n"));
                }
                let name = match o.scheme {
                    Scheme::Base => format!("b/{}.mp4", r.id),
                    _ => format!("r/{}.mp4", r.id),
                };
                let init_range = format!("0-{}", r.init.len() - 1);
                let seg_xml = match o.scheme {
                    Scheme::Base => format!(
                        "        <SegmentBase timescale=\"1000\" indexRange=\"{}-{}\">\n          <Initialization range=\"{init_range}\"/>\n        </SegmentBase>\n",
                        r.init.len(),
                        r.init.len() + index.len() - 1
                    ),
                    _ => format!(
                        "        <SegmentList timescale=\"1000\" duration=\"{ms}\">\n          <Initialization range=\"{init_range}\"/>\n{ranges}        </SegmentList>\n"
                    ),
                };
                reps_xml.push_str(&format!(
                    "      <Representation id=\"{}\" bandwidth=\"{}\"{}>\n        <BaseURL>{name}</BaseURL>\n{seg_xml}      </Representation>\n",
                    r.id, r.bandwidth, r.attrs
                ));
                files.insert(
                    name,
                    Entry {
                        bytes: Arc::from(whole),
                        what: What::Whole(i),
                        pieces,
                        content_type: file_type,
                    },
                );
            }
        }
    }
    if reps_xml.is_empty() {
        for r in &p.reps {
            reps_xml.push_str(&format!(
                "      <Representation id=\"{}\" bandwidth=\"{}\"{}/>\n",
                r.id, r.bandwidth, r.attrs
            ));
        }
    }
    let mime = if p.real { "video/mp4" } else { "application/octet-stream" };
    let codecs = if p.real { " codecs=\"avc1.4d401e\"" } else { "" };
    let profile = match o.scheme {
        Scheme::Base => "urn:mpeg:dash:profile:isoff-on-demand:2011",
        _ => "urn:mpeg:dash:profile:isoff-live:2011",
    };
    let mut bases = String::new();
    for b in &o.base_urls {
        bases.push_str(&format!("  <BaseURL>{}</BaseURL>\n", xml_escape(b)));
    }
    let mpd = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" type=\"static\" profiles=\"{profile}\" minBufferTime=\"PT2S\" mediaPresentationDuration=\"PT{total:.3}S\" maxSegmentDuration=\"PT{:.3}S\">\n{bases}  <Period id=\"0\" start=\"PT0S\">\n    <AdaptationSet id=\"0\" contentType=\"video\" mimeType=\"{mime}\"{codecs} segmentAlignment=\"true\" startWithSAP=\"1\">\n{set_xml}{reps_xml}    </AdaptationSet>\n  </Period>\n</MPD>\n",
        p.segment
    );
    Layout { mpd, files, count }
}

impl Layout {
    /// What a request of relative `path` (no leading `/`) with `range` is for.
    pub fn what(&self, path: &str, range: Option<(u64, u64)>) -> What {
        let Some(e) = self.files.get(path) else { return What::Unknown };
        match range {
            Some((first, _)) if !e.pieces.is_empty() => e
                .pieces
                .iter()
                .find(|(a, b, _)| *a <= first && first <= *b)
                .map_or(What::Unknown, |p| p.2),
            _ => e.what,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(scheme: Scheme) -> LayoutOptions {
        LayoutOptions {
            scheme,
            start_number: 1,
            width: None,
            segments: Some(5),
            base_urls: Vec::new(),
        }
    }

    /// Every scheme's MPD, read by the harness's own MPD reader, lists exactly the URLs the layout
    /// serves, each for the segment it should be.
    #[test]
    fn round_trip_every_scheme_through_the_mpd_reader() {
        let p = Presentation::synthetic(&[40_000, 80_000, 160_000], 8, 0.5);
        for scheme in [Scheme::Number, Scheme::Time, Scheme::List, Scheme::ListRanges, Scheme::Base] {
            let mut o = opts(scheme);
            if scheme == Scheme::Number {
                o.start_number = 5;
                o.width = Some(4);
            }
            let l = layout(&p, &o);
            let m = mpd::parse(&l.mpd).unwrap();
            assert!(mpd::check(&m).is_empty(), "{scheme:?}: {:?}\n{}", mpd::check(&m), l.mpd);
            let tracks = mpd::tracks(&m, "http://h/video.mpd").unwrap();
            assert_eq!(tracks.len(), 3);
            for (i, t) in tracks.iter().enumerate() {
                let rel = |u: &str| u.strip_prefix("http://h/").unwrap().to_string();
                let init = t.init.as_ref().unwrap();
                assert_eq!(l.what(&rel(&init.url), init.range), What::Init(i), "{scheme:?}");
                if scheme == Scheme::Base {
                    let idx = t.index.as_ref().unwrap();
                    assert_eq!(l.what(&rel(&idx.url), idx.range), What::Index(i));
                    continue;
                }
                assert_eq!(t.media.len(), 5, "{scheme:?}");
                for (k, (s, d)) in t.media.iter().enumerate() {
                    assert_eq!(l.what(&rel(&s.url), s.range), What::Media(i, k), "{scheme:?} {}", s.url);
                    assert!((d - 0.5).abs() < 1e-9);
                }
            }
        }
        let l = layout(
            &p,
            &LayoutOptions {
                start_number: 5,
                width: Some(4),
                ..opts(Scheme::Number)
            },
        );
        assert!(l.files.contains_key("seg-s1-0009.m4s"));
        assert_eq!(l.what("seg-s1-0010.m4s", None), What::Unknown);
    }

    #[test]
    fn synthetic_segments_have_the_nominal_size() {
        let p = Presentation::synthetic(&[80_000], 3, 0.5);
        assert_eq!(p.reps[0].media[0].len(), 5000);
        assert!(p.reps[0].media[2].starts_with(b"segment 3 of s0\n"));
    }

    #[test]
    fn reads_the_real_presentation() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dash/testsrc");
        let text = std::fs::read_to_string(dir.join("video.mpd")).unwrap();
        let p = Presentation::from_mpd(&text, |rel| std::fs::read(dir.join(rel)).ok().map(Arc::from)).unwrap();
        assert_eq!(p.reps.len(), 4);
        assert_eq!(p.count(), 16);
        assert_eq!(p.segment, 1.0);
        assert!(p.reps[3].attrs.contains("width=\"640\""));
    }

    #[test]
    fn parses_a_sidx_it_writes() {
        let b = sidx(&[100, 200], 1000, 1000);
        assert_eq!(b.len(), 56);
        assert_eq!(&b[4..8], b"sidx");
        assert_eq!(u16::from_be_bytes([b[30], b[31]]), 2);
        assert_eq!(u32::from_be_bytes([b[44], b[45], b[46], b[47]]) & 0x7fff_ffff, 200);
    }
}
