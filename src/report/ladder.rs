//! A case's dialogue as a ladder diagram, the way Kurose & Ross draw protocol exchanges: a vertical
//! time line per endpoint (client on the left, server on the right), an arrow per message with
//! its first line, time running down, and the failing step marked across every line.
//!
//! Pure functions: a [`Dialogue`] (and where its case failed) in, SVG text out. Every connection
//! gets a lane, a pair of lines; a connection that opens after another with the same two ends
//! ended takes that one's lane again, so a dialogue of successive connections stays narrow while
//! concurrent ones stand side by side. A long dialogue is cut to [`MAX_ROWS`] rows around the
//! failure, with a note saying how much is not drawn (the report's transcript has it all).
//!
//! Everything drawn from the dialogue is text the program chose: it goes through
//! [`escape::html`], labels shortened to [`LABEL_CHARS`] with the whole text in a `<title>`.

use super::escape;
use crate::dialogue::{ConnInfo, Dialogue, EventKind, Framed, What};
use crate::proto::{Direction, Protocol};

/// The most rows (arrows, marks, the failure) drawn for one case.
pub const MAX_ROWS: usize = 40;
/// The most lanes (pairs of time lines) drawn; later connections are summed up in a note.
pub const MAX_LANES: usize = 8;
/// The longest arrow label, in characters (the tooltip has the whole text).
pub const LABEL_CHARS: usize = 42;
/// The longest tooltip, in characters: a 64 KiB message is not repeated whole in the page.
const TITLE_CHARS: usize = 2000;
/// Rows kept from the start when a dialogue is cut: how the case began.
const HEAD_ROWS: usize = 8;
/// Rows kept after the failure when a dialogue is cut: what the program did next.
const AFTER_FAILURE: usize = 4;

// Geometry, in SVG user units (pixels at 100 %).
const TIME_W: f64 = 78.0;
const LANE_W: f64 = 340.0;
const LANE_GAP: f64 = 28.0;
const INSET: f64 = 22.0;
const HEADER_H: f64 = 58.0;
const ROW_H: f64 = 30.0;
const SLANT: f64 = 10.0;
const FOOT_H: f64 = 14.0;
const MIN_WIDTH: f64 = 620.0;
/// Width of one character of the labels' monospace font at 11 px.
const CHAR_W: f64 = 6.7;

/// How an arrow is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrowKind {
    /// A message the codec framed.
    Message,
    /// The sender closed its side (FIN).
    Close,
    /// Bytes that did not frame: rejected by the codec, left incomplete, or after a capture's cut.
    Bad,
    /// Anything else said about one direction (a gap, a data connection's byte count).
    Info,
}

/// What happened to a connection as a whole: drawn across its lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkKind {
    /// Opened (TCP) or bound (UDP).
    Open,
    /// Reset.
    Reset,
    /// A connection attempt was refused.
    Refused,
    /// A remark (a capture decoder's note).
    Note,
}

/// One drawn item.
#[derive(Debug, Clone, PartialEq)]
pub enum RowKind {
    /// One way along a connection.
    Arrow(Direction, ArrowKind),
    /// Across a connection's lane.
    Mark(MarkKind),
    /// The step that failed, across every lane.
    Failure,
    /// Rows left out of the drawing, this many.
    Elided(usize),
}

/// One row of the diagram: what it is, on which connection, when, and its whole text.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Microseconds since the case started.
    pub t_us: u64,
    /// Connection index (unused by the failure and elision rows).
    pub conn: usize,
    /// What to draw.
    pub kind: RowKind,
    /// The whole text, for the tooltip.
    pub text: String,
    /// What the arrow or mark says, shortened when drawn: the protocol's label of a message
    /// (`Protocol::label`), else the text.
    pub label: String,
}

/// Where a case failed, for the mark across the diagram.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureMark {
    /// When, in the dialogue's clock; `None` draws it after the last row.
    pub t_us: Option<u64>,
    /// The short label (`expect at suites/x.yaml:12:7`).
    pub label: String,
    /// The whole text (the failure's message).
    pub text: String,
}

/// The rows of a dialogue, framed by each connection's codec (`proto` when it names none), in
/// time order, with the failure inserted after the last row that came before it.
pub fn rows(d: &Dialogue, proto: &dyn Protocol, failure: Option<&FailureMark>) -> Vec<Row> {
    let mut rows: Vec<Row> = d
        .frames(proto)
        .iter()
        .map(|f| {
            // Each connection's own protocol labels its messages (a suite may speak several).
            let p = d
                .connections
                .get(f.conn)
                .and_then(|c| crate::proto::find(&c.protocol))
                .unwrap_or(proto);
            let mut row = row_of(f, p);
            // Bytes left unframed are shown when their sender stopped (its close, or the end of
            // the case), but they arrived earlier: drawn when their first byte came, they stand
            // before the failure they caused.
            if let (What::Incomplete(b), Some(dir)) = (&f.what, f.dir) {
                row.t_us = first_byte_at(d, f.conn, dir, b.len(), f.t_us);
            }
            row
        })
        .collect();
    rows.sort_by_key(|r| r.t_us);
    if let Some(f) = failure {
        let at = match f.t_us {
            Some(t) => rows.iter().rposition(|r| r.t_us <= t).map_or(0, |i| i + 1),
            None => rows.len(),
        };
        let t_us = f.t_us.unwrap_or_else(|| rows.last().map_or(0, |r| r.t_us));
        rows.insert(
            at,
            Row {
                t_us,
                conn: 0,
                kind: RowKind::Failure,
                text: format!("{}: {}", f.label, f.text),
                label: format!("{}: {}", f.label, f.text),
            },
        );
    }
    rows
}

/// When the first of the last `len` bytes that went `dir` on `conn` by `until` was recorded.
fn first_byte_at(d: &Dialogue, conn: usize, dir: Direction, len: usize, until: u64) -> u64 {
    let sent = || {
        d.events.iter().filter_map(move |e| match &e.kind {
            EventKind::Data { dir: x, bytes } if e.conn == conn && *x == dir && e.t_us <= until => Some((e.t_us, bytes.len())),
            _ => None,
        })
    };
    let skip = sent().map(|(_, n)| n).sum::<usize>().saturating_sub(len);
    let mut seen = 0;
    for (t, n) in sent() {
        seen += n;
        if seen > skip {
            return t;
        }
    }
    until
}

/// One framed piece as a row. The texts of events without a direction are the transcript's
/// (`open tcp ...`, `reset`, `connection refused`, `note: ...`); anything else is a note.
fn row_of(f: &Framed, proto: &dyn Protocol) -> Row {
    let text = f.text();
    let label = match &f.what {
        // `…` says the tooltip holds more (an HTTP message's fields, a DNS message's sections).
        What::Message(m) if m.summary.contains('\n') => format!("{} …", proto.label(m)),
        What::Message(m) => proto.label(m),
        _ => text.clone(),
    };
    let kind = match (&f.what, f.dir) {
        (What::Message(_), Some(d)) => RowKind::Arrow(d, ArrowKind::Message),
        (What::Closed, Some(d)) => RowKind::Arrow(d, ArrowKind::Close),
        (What::Undecodable(..) | What::Incomplete(_) | What::Cut(_), Some(d)) => RowKind::Arrow(d, ArrowKind::Bad),
        (_, Some(d)) => RowKind::Arrow(d, ArrowKind::Info),
        (_, None) if text.starts_with("open") => RowKind::Mark(MarkKind::Open),
        (_, None) if text == "reset" => RowKind::Mark(MarkKind::Reset),
        (_, None) if text == "connection refused" => RowKind::Mark(MarkKind::Refused),
        (_, None) => RowKind::Mark(MarkKind::Note),
    };
    Row {
        t_us: f.t_us,
        conn: f.conn,
        kind,
        text,
        label,
    }
}

/// At most `max` rows: the first few, then the rows up to the failure and a few after it, with
/// an [`RowKind::Elided`] row for each run left out. Returns the rows and how many were left out.
pub fn cap(rows: Vec<Row>, max: usize) -> (Vec<Row>, usize) {
    if rows.len() <= max || max < HEAD_ROWS + 4 {
        return (rows, 0);
    }
    let total = rows.len();
    let failure = rows.iter().position(|r| r.kind == RowKind::Failure);
    // Two places may need an elision row: keep room for both.
    let room = max - 2;
    // An early failure leaves room for more of what followed it.
    let end = failure.map_or(total, |f| (f + 1 + AFTER_FAILURE).min(total)).max(room);
    let start = (end - (room - HEAD_ROWS)).max(HEAD_ROWS);
    let mut out: Vec<Row> = Vec::with_capacity(max);
    let mut left_out = 0;
    let mut rows = rows.into_iter();
    out.extend(rows.by_ref().take(HEAD_ROWS));
    let skipped: Vec<Row> = rows.by_ref().take(start - HEAD_ROWS).collect();
    if let Some(first) = skipped.first() {
        left_out += skipped.len();
        out.push(elided(first.t_us, skipped.len()));
    }
    out.extend(rows.by_ref().take(end - start));
    let rest: Vec<Row> = rows.collect();
    if let Some(first) = rest.first() {
        left_out += rest.len();
        out.push(elided(first.t_us, rest.len()));
    }
    (out, left_out)
}

fn elided(t_us: u64, n: usize) -> Row {
    let text = format!("{n} more not drawn (the transcript has every one)");
    Row {
        t_us,
        conn: 0,
        kind: RowKind::Elided(n),
        label: text.clone(),
        text,
    }
}

/// The two ends of a connection, client first: who plays each (`harness`, `program`, an actor).
pub fn ends(c: &ConnInfo) -> (String, String) {
    let addr = |a: Option<std::net::SocketAddr>| a.map(|a| format!(" {a}")).unwrap_or_default();
    if c.captured {
        return ("client".into(), "server".into());
    }
    match (c.harness_is_client, c.actor) {
        (true, _) => ("harness".into(), format!("program{}", addr(c.peer))),
        (false, true) => ("program".into(), format!("actor {}", c.name)),
        (false, false) => ("program".into(), "harness".into()),
    }
}

/// A lane: a pair of time lines, and the connections drawn on it in turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Lane {
    /// The client end's name.
    pub client: String,
    /// The server end's name.
    pub server: String,
    /// Names of the connections on it, in order.
    pub conns: Vec<String>,
}

/// Lanes for the connections that have rows: a connection takes the first lane with the same two
/// ends whose last connection was over (reset, refused, closed both ways) before its first row;
/// else a new lane. Returns the
/// lanes and each connection's lane (`None`: no rows, or past [`MAX_LANES`]).
pub fn lanes(d: &Dialogue, rows: &[Row]) -> (Vec<Lane>, Vec<Option<usize>>) {
    let n = d.connections.len();
    let mut first = vec![usize::MAX; n];
    let mut last = vec![0usize; n];
    // Whether a connection is over by its last row: reset, refused, or closed both ways. A UDP
    // socket never is, and a lane is shared only with connections that are.
    let mut over = vec![false; n];
    let mut closed: Vec<[bool; 2]> = vec![[false; 2]; n];
    for (i, r) in rows.iter().enumerate() {
        if !(matches!(r.kind, RowKind::Arrow(..) | RowKind::Mark(_)) && r.conn < n) {
            continue;
        }
        first[r.conn] = first[r.conn].min(i);
        last[r.conn] = i;
        match r.kind {
            RowKind::Mark(MarkKind::Reset | MarkKind::Refused) => over[r.conn] = true,
            RowKind::Arrow(d, ArrowKind::Close) => {
                closed[r.conn][usize::from(d == Direction::ServerToClient)] = true;
                over[r.conn] |= closed[r.conn] == [true, true];
            }
            _ => {}
        }
    }
    let mut order: Vec<usize> = (0..n).filter(|&c| first[c] != usize::MAX).collect();
    order.sort_by_key(|&c| first[c]);
    let mut lanes: Vec<Lane> = Vec::new();
    // The row after which each lane is free again (`usize::MAX`: its connection is not over).
    let mut busy_until: Vec<usize> = Vec::new();
    let mut of = vec![None; n];
    for c in order {
        let (client, server) = ends(&d.connections[c]);
        let free = (0..lanes.len()).find(|&l| lanes[l].client == client && lanes[l].server == server && busy_until[l] < first[c]);
        let l = match free {
            Some(l) => l,
            None if lanes.len() < MAX_LANES => {
                lanes.push(Lane {
                    client,
                    server,
                    conns: Vec::new(),
                });
                busy_until.push(0);
                lanes.len() - 1
            }
            None => continue,
        };
        lanes[l].conns.push(d.connections[c].name.clone());
        busy_until[l] = if over[c] { last[c] } else { usize::MAX };
        of[c] = Some(l);
    }
    (lanes, of)
}

/// The ladder diagram of `d` as an inline `<svg>` element; `failure` marks where the case failed.
pub fn svg(d: &Dialogue, proto: &dyn Protocol, failure: Option<&FailureMark>) -> String {
    let (rows, _) = cap(rows(d, proto, failure), MAX_ROWS);
    draw(d, &rows)
}

/// Draws `rows` (already capped) of `d`.
pub fn draw(d: &Dialogue, rows: &[Row]) -> String {
    let (lanes, lane_of) = lanes(d, rows);
    // Rows of connections past the last lane are not drawn; a note at the foot counts them.
    let drawn: Vec<&Row> = rows
        .iter()
        .filter(|r| !matches!(r.kind, RowKind::Arrow(..) | RowKind::Mark(_)) || lane_of.get(r.conn).copied().flatten().is_some())
        .collect();
    let undrawn = rows.len() - drawn.len();
    let n_lanes = lanes.len().max(1) as f64;
    // At least wide enough for the failure's label, which runs across every lane.
    let width = (TIME_W + n_lanes * LANE_W + (n_lanes - 1.0) * LANE_GAP + 8.0).max(MIN_WIDTH);
    let foot = if undrawn > 0 { FOOT_H + 18.0 } else { FOOT_H };
    let height = HEADER_H + drawn.len() as f64 * ROW_H + foot;
    let lane_x = |l: usize| TIME_W + l as f64 * (LANE_W + LANE_GAP);
    let ends_x = |l: usize| (lane_x(l) + INSET, lane_x(l) + LANE_W - INSET);
    let arrows = drawn.iter().filter(|r| matches!(r.kind, RowKind::Arrow(..))).count();
    let mut s = format!(
        "<svg class=\"ladder\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" aria-label=\"ladder diagram: {} connections, {arrows} arrows\">\n",
        lanes.iter().map(|l| l.conns.len()).sum::<usize>()
    );
    for (l, lane) in lanes.iter().enumerate() {
        let (xl, xr) = ends_x(l);
        let names = lane.conns.join(", ");
        s.push_str(&format!(
            "<g class=\"lane\"><title>{}</title>\
             <text class=\"conn\" x=\"{:.1}\" y=\"12\" text-anchor=\"middle\">{}</text>\
             <text class=\"end\" x=\"{xl:.1}\" y=\"32\" text-anchor=\"start\">{}</text>\
             <text class=\"end-sub\" x=\"{xl:.1}\" y=\"45\" text-anchor=\"start\">client</text>\
             <text class=\"end\" x=\"{xr:.1}\" y=\"32\" text-anchor=\"end\">{}</text>\
             <text class=\"end-sub\" x=\"{xr:.1}\" y=\"45\" text-anchor=\"end\">server</text>\
             <line class=\"life\" x1=\"{xl:.1}\" y1=\"{HEADER_H:.1}\" x2=\"{xl:.1}\" y2=\"{:.1}\"/>\
             <line class=\"life\" x1=\"{xr:.1}\" y1=\"{HEADER_H:.1}\" x2=\"{xr:.1}\" y2=\"{:.1}\"/></g>\n",
            escape::html(&format!("connections: {names}")),
            (xl + xr) / 2.0,
            escape::html(&short(&names, LABEL_CHARS)),
            escape::html(&short(&lane.client, 20)),
            escape::html(&short(&lane.server, 30)),
            height - foot,
            height - foot,
        ));
    }
    let mut previous_t: Option<String> = None;
    for (i, r) in drawn.iter().enumerate() {
        let y = HEADER_H + i as f64 * ROW_H + 12.0;
        let title = escape::html(&clip(&r.text, TITLE_CHARS));
        let label = escape::html(&short(&r.label, LABEL_CHARS));
        // A time is written when it differs from the row above's, so a burst reads as one moment.
        let time = fmt_time(r.t_us);
        if previous_t.as_ref() != Some(&time) && !matches!(r.kind, RowKind::Elided(_)) {
            s.push_str(&format!(
                "<text class=\"time\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{time}</text>\n",
                TIME_W - 8.0,
                y + 4.0,
            ));
            previous_t = Some(time);
        }
        match &r.kind {
            RowKind::Arrow(dir, kind) => {
                let Some(l) = lane_of.get(r.conn).copied().flatten() else {
                    continue;
                };
                let (xl, xr) = ends_x(l);
                let (x1, x2) = match dir {
                    Direction::ClientToServer => (xl, xr),
                    Direction::ServerToClient => (xr, xl),
                };
                let (y1, y2) = (y, y + SLANT);
                let class = match kind {
                    ArrowKind::Message => "msg",
                    ArrowKind::Close => "close",
                    ArrowKind::Bad => "bad",
                    ArrowKind::Info => "info",
                };
                let label = match kind {
                    ArrowKind::Close => "FIN".to_string(),
                    _ => label,
                };
                // The label sits above the arrow, clear of its line and of the row above.
                s.push_str(&format!(
                    "<g class=\"arrow {class} {}\"><title>{title}</title>\
                     <line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\"/>{}\
                     <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text></g>\n",
                    dir_class(*dir),
                    head(x1, y1, x2, y2),
                    (xl + xr) / 2.0,
                    y - 2.0,
                ));
            }
            RowKind::Mark(kind) => {
                let Some(l) = lane_of.get(r.conn).copied().flatten() else {
                    continue;
                };
                let (xl, xr) = ends_x(l);
                let name = d.connections.get(r.conn).map(|c| c.name.as_str()).unwrap_or("");
                let (class, text) = match kind {
                    MarkKind::Open => ("open", format!("{name}: {}", r.text)),
                    MarkKind::Reset => ("reset", format!("{name}: reset (RST)")),
                    MarkKind::Refused => ("refused", format!("{name}: connection refused")),
                    MarkKind::Note => ("note", r.text.clone()),
                };
                let ym = y + SLANT / 2.0;
                s.push_str(&format!(
                    "<g class=\"mark {class}\"><title>{}</title>\
                     <line x1=\"{xl:.1}\" y1=\"{ym:.1}\" x2=\"{xr:.1}\" y2=\"{ym:.1}\"/>\
                     <circle cx=\"{xl:.1}\" cy=\"{ym:.1}\" r=\"3\"/><circle cx=\"{xr:.1}\" cy=\"{ym:.1}\" r=\"3\"/>\
                     <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text></g>\n",
                    escape::html(&clip(&text, TITLE_CHARS)),
                    (xl + xr) / 2.0,
                    ym - 5.0,
                    escape::html(&short(&text, LABEL_CHARS)),
                ));
            }
            RowKind::Failure => {
                let ym = y + SLANT / 2.0;
                s.push_str(&format!(
                    "<g class=\"failure-mark\"><title>{title}</title>\
                     <line x1=\"{:.1}\" y1=\"{ym:.1}\" x2=\"{:.1}\" y2=\"{ym:.1}\"/>\
                     <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"start\">✗ {}</text></g>\n",
                    TIME_W - 4.0,
                    width - 6.0,
                    TIME_W + 2.0,
                    ym - 5.0,
                    escape::html(&short(&r.text, ((width - TIME_W) / CHAR_W) as usize - 4)),
                ));
            }
            RowKind::Elided(_) => {
                s.push_str(&format!(
                    "<g class=\"elided\"><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">⋯ {}</text></g>\n",
                    TIME_W + (width - TIME_W) / 2.0,
                    y + 6.0,
                    escape::html(&r.text),
                ));
            }
        }
    }
    if undrawn > 0 {
        s.push_str(&format!(
            "<text class=\"elided\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">⋯ {undrawn} rows on connections past the first {MAX_LANES} lanes not drawn</text>\n",
            TIME_W + (width - TIME_W) / 2.0,
            height - 10.0
        ));
    }
    s.push_str("</svg>");
    s
}

fn dir_class(d: Direction) -> &'static str {
    match d {
        Direction::ClientToServer => "c2s",
        Direction::ServerToClient => "s2c",
    }
}

/// An arrowhead at (x2, y2) for a line from (x1, y1): a filled triangle, no marker ids (several
/// diagrams share one page, and ids would have to be unique across it).
fn head(x1: f64, y1: f64, x2: f64, y2: f64) -> String {
    let (dx, dy) = (x2 - x1, y2 - y1);
    let len = (dx * dx + dy * dy).sqrt().max(1.0);
    let (ux, uy) = (dx / len, dy / len);
    let (bx, by) = (x2 - 9.0 * ux, y2 - 9.0 * uy);
    let (px, py) = (-uy * 4.0, ux * 4.0);
    format!(
        "<polygon points=\"{x2:.1},{y2:.1} {:.1},{:.1} {:.1},{:.1}\"/>",
        bx + px,
        by + py,
        bx - px,
        by - py
    )
}

/// A row's time: milliseconds with one decimal, seconds from 10 s on.
pub fn fmt_time(t_us: u64) -> String {
    if t_us < 10_000_000 {
        format!("{:.1} ms", t_us as f64 / 1000.0)
    } else {
        format!("{:.2} s", t_us as f64 / 1_000_000.0)
    }
}

/// The first line of `s`, at most `max` characters; `…` says something was left off.
pub fn short(s: &str, max: usize) -> String {
    let mut lines = s.lines();
    let first = lines.next().unwrap_or("").trim_end();
    let more = lines.next().is_some();
    let n = first.chars().count();
    if n > max {
        let mut out: String = first.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    } else if more {
        format!("{first} …")
    } else {
        first.to_string()
    }
}

/// `s` cut to `max` characters, saying how much was cut.
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}… ({} more characters)", &s[..i], s[i..].chars().count()),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialogue::Event;
    use crate::proto::{self, Transport};

    fn conn(name: &str, harness_is_client: bool) -> ConnInfo {
        ConnInfo {
            name: name.into(),
            harness_is_client,
            ..ConnInfo::test_tcp(false)
        }
    }

    fn ev(t_us: u64, conn: usize, kind: EventKind) -> Event {
        Event { t_us, conn, kind }
    }

    fn data(dir: Direction, b: &str) -> EventKind {
        EventKind::Data {
            dir,
            bytes: b.as_bytes().to_vec(),
        }
    }

    use Direction::{ClientToServer as C2S, ServerToClient as S2C};

    /// One connection: open, a line each way, the server's close, the harness's close.
    fn exchange() -> Dialogue {
        Dialogue {
            connections: vec![conn("c", true)],
            events: vec![
                ev(10, 0, EventKind::Open),
                ev(200, 0, data(C2S, "hello\n")),
                ev(1_500, 0, data(S2C, "HELLO\n")),
                ev(1_600, 0, EventKind::Closed { dir: S2C }),
                ev(2_000, 0, EventKind::Closed { dir: C2S }),
            ],
        }
    }

    fn line() -> &'static dyn Protocol {
        proto::find("line").unwrap()
    }

    #[test]
    fn one_arrow_per_message_and_close_each_way() {
        let svg = svg(&exchange(), line(), None);
        assert_eq!(svg.matches("<g class=\"arrow ").count(), 4, "{svg}");
        assert_eq!(svg.matches("class=\"arrow msg c2s\"").count(), 1);
        assert_eq!(svg.matches("class=\"arrow msg s2c\"").count(), 1);
        assert_eq!(svg.matches("class=\"arrow close").count(), 2);
        assert_eq!(svg.matches("class=\"mark open\"").count(), 1);
        assert!(svg.contains("&quot;hello&quot;"), "{svg}");
        assert!(!svg.contains("failure-mark"));
        // Client on the left, server on the right: C→S runs left to right, S→C back.
        let x = |class: &str| {
            let at = svg.find(class).unwrap();
            let l = &svg[at..];
            let num = |k: &str| -> f64 {
                let v = &l[l.find(k).unwrap() + k.len()..];
                v[..v.find('"').unwrap()].parse().unwrap()
            };
            (num("x1=\""), num("x2=\""))
        };
        let (a, b) = x("arrow msg c2s");
        assert!(a < b, "{a} {b}");
        let (a, b) = x("arrow msg s2c");
        assert!(a > b, "{a} {b}");
        // Times on the side.
        assert!(svg.contains(">0.2 ms</text>") && svg.contains(">1.5 ms</text>"), "{svg}");
        assert!(svg.contains(">harness</text>") && svg.contains(">program</text>"), "{svg}");
    }

    #[test]
    fn the_failure_is_marked_where_it_happened() {
        let f = FailureMark {
            t_us: Some(1_550),
            label: "expect at suites/t.yaml:9:9".into(),
            text: "expected \"closed\", got <b>".into(),
        };
        let rows = rows(&exchange(), line(), Some(&f));
        let kinds: Vec<&RowKind> = rows.iter().map(|r| &r.kind).collect();
        // After the reply (1.5 ms), before the server's close (1.6 ms).
        assert_eq!(kinds[3], &RowKind::Failure, "{kinds:?}");
        assert_eq!(kinds[2], &RowKind::Arrow(S2C, ArrowKind::Message));
        let svg = draw(&exchange(), &rows);
        assert_eq!(svg.matches("class=\"failure-mark\"").count(), 1);
        assert!(svg.contains("expected &quot;closed&quot;, got &lt;b&gt;"), "{svg}");
        // Without a time, at the end.
        let f = FailureMark { t_us: None, ..f };
        assert_eq!(rows_kinds_last(&exchange(), &f), RowKind::Failure);
    }

    #[test]
    fn bytes_left_unframed_are_drawn_when_they_arrived() {
        let d = Dialogue {
            connections: vec![conn("c", true)],
            events: vec![
                ev(0, 0, EventKind::Open),
                ev(100, 0, data(C2S, "hi\n")),
                ev(400, 0, data(S2C, "H")),
                ev(450, 0, data(S2C, "I")),
                ev(600, 0, EventKind::Closed { dir: C2S }),
            ],
        };
        let f = FailureMark {
            t_us: Some(500),
            label: "expect".into(),
            text: "timed out".into(),
        };
        let rows = rows(&d, line(), Some(&f));
        let kinds: Vec<(u64, &RowKind)> = rows.iter().map(|r| (r.t_us, &r.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                (0, &RowKind::Mark(MarkKind::Open)),
                (100, &RowKind::Arrow(C2S, ArrowKind::Message)),
                (400, &RowKind::Arrow(S2C, ArrowKind::Bad)),
                (500, &RowKind::Failure),
                (600, &RowKind::Arrow(C2S, ArrowKind::Close)),
            ],
            "{rows:?}"
        );
        assert_eq!(rows[2].text, "incomplete: \"HI\"");
    }

    fn rows_kinds_last(d: &Dialogue, f: &FailureMark) -> RowKind {
        rows(d, line(), Some(f)).last().unwrap().kind.clone()
    }

    #[test]
    fn what_a_program_sends_is_escaped_and_shortened() {
        let long = format!("<script>alert(1)</script>{}\n", "x".repeat(100));
        let d = Dialogue {
            connections: vec![conn("c", true)],
            events: vec![ev(0, 0, EventKind::Open), ev(5, 0, data(S2C, &long))],
        };
        let svg = svg(&d, line(), None);
        assert!(!svg.contains("<script"), "{svg}");
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{svg}");
        // The label is short; the tooltip has the whole message.
        let label = svg.split("<text x=").filter(|t| t.contains("&lt;script")).last().unwrap();
        let shown = label[label.find('>').unwrap() + 1..label.find("</text>").unwrap()].to_string();
        assert!(shown.ends_with('…'), "{shown}");
        assert!(shown.chars().count() < 80, "{shown}");
        assert!(svg.contains(&"x".repeat(100)), "the tooltip keeps it all");
    }

    #[test]
    fn long_dialogues_keep_the_start_and_the_rows_around_the_failure() {
        let mut events = vec![ev(0, 0, EventKind::Open)];
        for i in 0..100u64 {
            events.push(ev(10 + i * 10, 0, data(C2S, &format!("line {i}\n"))));
        }
        let d = Dialogue {
            connections: vec![conn("c", true)],
            events,
        };
        let f = FailureMark {
            t_us: Some(10 + 60 * 10),
            label: "expect".into(),
            text: "x".into(),
        };
        let (rows, left_out) = cap(rows(&d, line(), Some(&f)), MAX_ROWS);
        assert_eq!(rows.len(), MAX_ROWS, "{rows:?}");
        let elided: Vec<usize> = rows
            .iter()
            .filter_map(|r| match r.kind {
                RowKind::Elided(n) => Some(n),
                _ => None,
            })
            .collect();
        assert_eq!(elided.len(), 2, "{elided:?}");
        assert_eq!(elided.iter().sum::<usize>(), left_out);
        assert_eq!(rows.len() - 2 + left_out, 102, "every row is drawn or counted");
        let at = rows.iter().position(|r| r.kind == RowKind::Failure).unwrap();
        assert_eq!(rows[at - 1].text, "\"line 60\"");
        assert_eq!(rows[at + AFTER_FAILURE].text, "\"line 64\"");
        assert!(matches!(rows[at + AFTER_FAILURE + 1].kind, RowKind::Elided(35)));
        assert_eq!(rows[1].text, "\"line 0\"", "the start is kept");
        let svg = draw(&d, &rows);
        assert!(svg.contains("⋯ 35 more not drawn"), "{svg}");
        assert_eq!(svg.matches("<g class=\"arrow ").count(), MAX_ROWS - 4);
        // A failure near the start: the rows up to the cap from the start, then the rest counted.
        let f = FailureMark {
            t_us: Some(15),
            label: "expect".into(),
            text: "x".into(),
        };
        let (early, left_out) = cap(super::rows(&d, line(), Some(&f)), MAX_ROWS);
        assert_eq!(early.len(), MAX_ROWS - 1, "{early:?}");
        assert_eq!(early[2].kind, RowKind::Failure);
        assert_eq!(early.last().unwrap().kind, RowKind::Elided(left_out));
        assert_eq!(early.len() - 1 + left_out, 102);
        // Short dialogues are not touched.
        let (all, none) = cap(rows.clone(), MAX_ROWS);
        assert_eq!((all.len(), none), (rows.len(), 0));
    }

    #[test]
    fn successive_connections_share_a_lane_and_concurrent_ones_do_not() {
        let mut d = Dialogue {
            connections: vec![conn("a", true), conn("b", true), conn("c", true), conn("srv", false)],
            events: vec![
                ev(0, 0, EventKind::Open),
                ev(1, 0, data(C2S, "x\n")),
                ev(2, 0, EventKind::Reset),
                // b opens after a was reset: same lane.
                ev(3, 1, EventKind::Open),
                // c opens while b is still going: a lane of its own.
                ev(4, 2, EventKind::Open),
                ev(5, 1, data(C2S, "y\n")),
                ev(6, 2, data(C2S, "z\n")),
                // The harness as the server: other ends, another lane.
                ev(7, 3, EventKind::Open),
                ev(8, 3, data(S2C, "hi\n")),
            ],
        };
        let rows = rows(&d, line(), None);
        let (lanes, of) = lanes(&d, &rows);
        assert_eq!(of, vec![Some(0), Some(0), Some(1), Some(2)], "{lanes:?}");
        assert_eq!(lanes[0].conns, vec!["a", "b"]);
        assert_eq!((lanes[2].client.as_str(), lanes[2].server.as_str()), ("program", "harness"));
        let svg = draw(&d, &rows);
        assert_eq!(svg.matches("class=\"lane\"").count(), 3);
        assert_eq!(svg.matches("class=\"mark reset\"").count(), 1);
        // Past MAX_LANES, connections are counted, not drawn.
        d.connections = (0..MAX_LANES + 2).map(|i| conn(&format!("c{i}"), true)).collect();
        d.events = (0..MAX_LANES + 2).map(|i| ev(i as u64, i, EventKind::Open)).collect();
        let rows = super::rows(&d, line(), None);
        let svg = draw(&d, &rows);
        assert_eq!(svg.matches("class=\"lane\"").count(), MAX_LANES);
        assert!(svg.contains("⋯ 2 rows on connections past the first 8 lanes not drawn"), "{svg}");
    }

    #[test]
    fn actors_and_udp_have_their_own_ends() {
        let actor = ConnInfo {
            actor: true,
            transport: Transport::Udp,
            ..conn("root", false)
        };
        assert_eq!(ends(&actor), ("program".into(), "actor root".into()));
        let mut c = conn("c", true);
        c.peer = Some(([127, 0, 0, 1], 4000).into());
        assert_eq!(ends(&c), ("harness".into(), "program 127.0.0.1:4000".into()));
    }

    #[test]
    fn dns_messages_are_labelled_by_question_and_answer() {
        use crate::proto::dns::{text, wire, DnsMessage, Question, RData, Record};
        let name = text::parse_name("www.example.test.").unwrap();
        let query = DnsMessage {
            id: 7,
            questions: vec![Question {
                name: name.clone(),
                qtype: wire::rtype::A,
                qclass: wire::CLASS_IN,
            }],
            ..DnsMessage::default()
        };
        let answer = DnsMessage {
            qr: true,
            aa: true,
            answer: vec![Record {
                name,
                rtype: wire::rtype::A,
                class: wire::CLASS_IN,
                ttl: 300,
                data: RData::A([10, 0, 0, 1].into()),
            }],
            ..query.clone()
        };
        let d = Dialogue {
            connections: vec![ConnInfo {
                protocol: "dns".into(),
                transport: Transport::Udp,
                ..conn("q", true)
            }],
            events: vec![
                ev(0, 0, EventKind::Open),
                ev(
                    1,
                    0,
                    EventKind::Data {
                        dir: C2S,
                        bytes: wire::emit(&query),
                    },
                ),
                ev(
                    2,
                    0,
                    EventKind::Data {
                        dir: S2C,
                        bytes: wire::emit(&answer),
                    },
                ),
            ],
        };
        let rows = rows(&d, line(), None);
        let labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels[1..], ["query www.example.test. A …", "NOERROR: A 10.0.0.1 …"], "{rows:?}");
        assert!(rows[1].text.starts_with(";; ->>HEADER<<-"), "the tooltip keeps dig's rendering");
    }

    #[test]
    fn labels_and_times_read_short() {
        assert_eq!(short("GET / HTTP/1.1\nHost: x", 40), "GET / HTTP/1.1 …");
        assert_eq!(short("abcdef", 4), "abc…");
        assert_eq!(short("abc", 4), "abc");
        assert_eq!(fmt_time(1_234), "1.2 ms");
        assert_eq!(fmt_time(12_345_678), "12.35 s");
        assert_eq!(clip("abcdef", 3), "abc… (3 more characters)");
    }
}
