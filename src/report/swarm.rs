//! A picture of a swarm: which piece each peer sent the program under test, second by second,
//! and whether the program had that peer unchoked; a table for text reports and an SVG chart for
//! the HTML one. Drawn from the case's dialogue, for any protocol whose messages say what they
//! mean to a swarm ([`crate::proto::Protocol::swarm_event`]).
//!
//! The peers are the harness's actors (one row per actor address); what a peer sent is what the
//! program downloaded, and the chokes and unchokes the program sent it are its choking decisions.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::escape;
use crate::dialogue::{Dialogue, What};
use crate::proto::{Direction, SwarmEvent};

/// The most columns (seconds) a table shows; a longer exchange is summed up in its last one.
const MAX_COLUMNS: usize = 30;
/// Piece numbers written in one cell before the rest are counted.
const CELL_PIECES: usize = 6;
/// The most peers drawn.
const MAX_PEERS: usize = 32;

/// One peer's row: blocks it sent (time in µs, piece) and the program's choke decisions on it.
#[derive(Debug, Default)]
struct Row {
    blocks: Vec<(u64, u32)>,
    /// (time in µs, unchoked) as the program said it.
    choking: Vec<(u64, bool)>,
}

impl Row {
    /// Whether the program had this peer unchoked at `t`.
    fn unchoked_at(&self, t: u64) -> bool {
        self.choking.iter().rev().find(|(at, _)| *at <= t).is_some_and(|(_, u)| *u)
    }
}

/// The swarm a dialogue shows: its peers' rows, and the time span of the whole.
struct Swarm {
    rows: BTreeMap<IpAddr, Row>,
    start: u64,
    end: u64,
}

fn swarm(d: &Dialogue) -> Option<Swarm> {
    let mut rows: BTreeMap<IpAddr, Row> = BTreeMap::new();
    let (mut start, mut end) = (u64::MAX, 0u64);
    // Each connection is framed by its own protocol's codec.
    for f in d.frames(&crate::proto::datagram::Datagram) {
        let What::Message(m) = &f.what else { continue };
        let Some(conn) = d.connections.get(f.conn).filter(|c| c.actor) else {
            continue;
        };
        let (Some(proto), Some(ip)) = (crate::proto::find(&conn.protocol), conn.local.map(|a| a.ip())) else {
            continue;
        };
        let Some(ev) = proto.swarm_event(m) else { continue };
        // On an actor's conversation the program is the client: what the actor (server) sent
        // is what the program downloaded; what the program sent is its choking.
        match (ev, f.dir) {
            (SwarmEvent::Block(p), Some(Direction::ServerToClient)) => rows.entry(ip).or_default().blocks.push((f.t_us, p)),
            (SwarmEvent::Unchoke, Some(Direction::ClientToServer)) => rows.entry(ip).or_default().choking.push((f.t_us, true)),
            (SwarmEvent::Choke, Some(Direction::ClientToServer)) => rows.entry(ip).or_default().choking.push((f.t_us, false)),
            _ => continue,
        }
        start = start.min(f.t_us);
        end = end.max(f.t_us);
    }
    if rows.is_empty() || rows.values().all(|r| r.blocks.is_empty() && r.choking.is_empty()) {
        return None;
    }
    rows = rows.into_iter().take(MAX_PEERS).collect();
    for r in rows.values_mut() {
        r.blocks.sort();
        r.choking.sort_by_key(|c| c.0);
    }
    Some(Swarm { rows, start, end })
}

/// The swarm as a text table: a row per peer, a column per second, the pieces it sent in that
/// second (`*` when the program had it unchoked at the second's end), and its total.
pub fn table(d: &Dialogue) -> Option<String> {
    let s = swarm(d)?;
    let seconds = ((s.end - s.start) / 1_000_000 + 1) as usize;
    let columns = seconds.min(MAX_COLUMNS);
    let mut grid: Vec<(String, Vec<String>, usize)> = Vec::new();
    for (ip, row) in &s.rows {
        let mut cells = Vec::new();
        for c in 0..columns {
            let from = s.start + c as u64 * 1_000_000;
            // The last column holds everything after it too.
            let to = if c + 1 == columns { u64::MAX } else { from + 1_000_000 };
            let pieces: Vec<u32> = row.blocks.iter().filter(|(t, _)| *t >= from && *t < to).map(|(_, p)| *p).collect();
            let mut cell = String::new();
            if row.unchoked_at(to.min(s.end)) {
                cell.push('*');
            }
            let shown: Vec<String> = pieces.iter().take(CELL_PIECES).map(u32::to_string).collect();
            cell.push_str(&shown.join(" "));
            if pieces.len() > CELL_PIECES {
                cell.push_str(&format!(" +{}", pieces.len() - CELL_PIECES));
            }
            if cell.is_empty() {
                cell.push('.');
            }
            cells.push(cell);
        }
        grid.push((ip.to_string(), cells, row.blocks.len()));
    }
    let peer_w = grid.iter().map(|g| g.0.len()).max().unwrap_or(4).max(4);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            grid.iter()
                .map(|g| g.1[c].chars().count())
                .max()
                .unwrap_or(1)
                .max(format!("{c}s").len())
        })
        .collect();
    let mut out = String::from("swarm: the pieces each peer sent, second by second (* = the program had that peer unchoked)\n");
    out.push_str(&format!("{:<peer_w$}", "peer"));
    for (c, w) in widths.iter().enumerate() {
        let head = if c + 1 == columns && seconds > columns {
            format!("{c}s+")
        } else {
            format!("{c}s")
        };
        out.push_str(&format!("  {head:<w$}"));
    }
    out.push_str("  blocks\n");
    for (ip, cells, n) in &grid {
        out.push_str(&format!("{ip:<peer_w$}"));
        for (cell, w) in cells.iter().zip(&widths) {
            out.push_str(&format!("  {cell:<w$}"));
        }
        out.push_str(&format!("  {n}\n"));
    }
    Some(out)
}

// Chart geometry, in SVG user units.
const LEFT: f64 = 110.0;
const ROW_H: f64 = 24.0;
const TOP: f64 = 26.0;
const WIDTH: f64 = 760.0;
const TICK_W: f64 = 3.0;

/// The swarm as an SVG chart: a lane per peer, shaded while the program had it unchoked, a tick
/// per block it sent (its piece number in the tooltip), and a second scale along the top.
pub fn svg(d: &Dialogue) -> Option<String> {
    let s = swarm(d)?;
    let span = (s.end - s.start).max(1) as f64;
    let x = |t: u64| LEFT + (t.saturating_sub(s.start)) as f64 / span * (WIDTH - LEFT - 10.0);
    let height = TOP + ROW_H * s.rows.len() as f64 + 8.0;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"swarm\" viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" height=\"{height}\" font-family=\"monospace\" font-size=\"11\" role=\"img\" aria-label=\"which peer sent which piece, and when the program had it unchoked\">\n"
    );
    let seconds = (span / 1_000_000.0).ceil() as u64;
    let step = (seconds / 10).max(1);
    let mut sec = 0;
    while sec <= seconds {
        let tx = x(s.start + sec * 1_000_000);
        out.push_str(&format!(
            "<line x1=\"{tx:.1}\" y1=\"{:.1}\" x2=\"{tx:.1}\" y2=\"{:.1}\" stroke=\"#ccc\"/><text x=\"{tx:.1}\" y=\"14\" text-anchor=\"middle\" fill=\"#666\">{sec}s</text>\n",
            TOP - 4.0,
            height - 6.0
        ));
        sec += step;
    }
    for (n, (ip, row)) in s.rows.iter().enumerate() {
        let y = TOP + n as f64 * ROW_H;
        out.push_str(&format!(
            "<text x=\"4\" y=\"{:.1}\">{}</text>\n",
            y + ROW_H * 0.65,
            escape::html(&ip.to_string())
        ));
        // Unchoked spans: from each unchoke to the next choke (or the end).
        let mut open: Option<u64> = None;
        let mut spans = Vec::new();
        for (t, u) in &row.choking {
            match (u, open) {
                (true, None) => open = Some(*t),
                (false, Some(from)) => {
                    spans.push((from, *t));
                    open = None;
                }
                _ => {}
            }
        }
        if let Some(from) = open {
            spans.push((from, s.end));
        }
        for (a, b) in spans {
            out.push_str(&format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#cfe8cf\"><title>unchoked by the program from {:.2} s to {:.2} s</title></rect>\n",
                x(a),
                y + 2.0,
                (x(b) - x(a)).max(1.0),
                ROW_H - 4.0,
                (a - s.start) as f64 / 1e6,
                (b - s.start) as f64 / 1e6
            ));
        }
        for (t, p) in &row.blocks {
            out.push_str(&format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{TICK_W}\" height=\"{:.1}\" fill=\"#36c\"><title>piece {p} at {:.2} s</title></rect>\n",
                x(*t) - TICK_W / 2.0,
                y + 5.0,
                ROW_H - 10.0,
                (t - s.start) as f64 / 1e6
            ));
        }
    }
    out.push_str("</svg>");
    Some(out)
}
