//! Which representation each media segment is asked at (docs/dash.md "Adapting"), and the buffer
//! that the choice and the pacing read ("Playing and the buffer"). Both are pure: time is given
//! in seconds, so a test can play a whole bandwidth trace without waiting for it.
//!
//! The rule is dash.js's DYNAMIC strategy cut down to the lab: below half of `--buffer` the
//! THROUGHPUT rule decides (0.9 x the harmonic mean of the last 3 throughputs, or the last one when
//! it is lower, so that a fall is believed at once); above it BOLA-BASIC (Spiteri, Urgaonkar,
//! Sitaraman, INFOCOM 2016) may keep a higher representation than the throughput rule while the
//! buffer pays for it, never climbing past what the throughput sustains (BOLA-O). Whatever either
//! says, no request is above 2 x the best of the last 3 throughputs. And as dash.js's
//! AbandonRequestsRule, a download that would take far longer than its segment plays is given up
//! for a lower representation the rate so far suits.

use std::collections::VecDeque;

/// The throughput rule's safety factor.
pub(super) const SAFETY: f64 = 0.9;
/// Downloads the throughput rule averages.
pub(super) const HISTORY: usize = 3;
/// Rule 1 of the lab: never above this times the best recent throughput.
const CEILING: f64 = 2.0;
/// The `aggressive` fault's factor.
const AGGRESSIVE: f64 = 4.0;
/// The `slow-down` fault: segments kept at the old representation after a fall.
const SLOW_DOWN_WAIT: u32 = 6;
/// A download projected to take longer than this many segment durations is abandoned (dash.js's
/// AbandonRequestsRule uses the same 1.8) ...
const ABANDON_AFTER: f64 = 1.8;
/// ... once this much of a segment duration has gone, so its rate is more than a first burst.
const ABANDON_GRACE: f64 = 0.5;

/// The buffer level: seconds downloaded and not yet played. Playback starts with the first
/// segment's arrival and consumes one second per second, stalling at an empty buffer.
#[derive(Debug, Clone, Default)]
pub(super) struct Playback {
    level: f64,
    /// When `level` was last brought up to date.
    at: f64,
    playing: bool,
    stalled: f64,
}

impl Playback {
    /// The level at `now` (seconds since any fixed start, never going back).
    pub(super) fn level(&mut self, now: f64) -> f64 {
        let elapsed = (now - self.at).max(0.0);
        self.at = self.at.max(now);
        if self.playing {
            if elapsed > self.level {
                self.stalled += elapsed - self.level;
                self.level = 0.0;
            } else {
                self.level -= elapsed;
            }
        }
        self.level
    }

    /// A segment of `seconds` arrived at `now`.
    pub(super) fn arrived(&mut self, now: f64, seconds: f64) {
        self.level(now);
        self.level += seconds;
        self.playing = true;
    }

    /// Seconds spent with an empty buffer since playback started.
    pub(super) fn stalled(&self) -> f64 {
        self.stalled
    }
}

/// The deliberate bugs that change the choice.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Quirks {
    /// `never-switches`: the lowest representation always.
    pub(super) never_switches: bool,
    /// `always-top`: the highest representation always.
    pub(super) always_top: bool,
    /// `aggressive`: the highest representation below 4 x the throughput, no ceiling.
    pub(super) aggressive: bool,
    /// `slow-down`: a switch down waits 6 segments.
    pub(super) slow_down: bool,
}

/// The adaptation state carried from one media request to the next.
#[derive(Debug, Clone)]
pub(super) struct Abr {
    /// `--buffer`, seconds.
    target: f64,
    /// Throughputs (bit/s) of the last downloads, oldest first.
    history: VecDeque<f64>,
    /// The @bandwidth of the last request, to find it again in a later period's list.
    last_bandwidth: Option<u64>,
    quirks: Quirks,
    /// Choices below the last one held back so far (`slow-down`).
    held_down: u32,
}

impl Abr {
    /// A player that has downloaded nothing yet, with `--buffer` seconds.
    pub(super) fn new(target: f64, quirks: Quirks) -> Abr {
        Abr {
            target,
            history: VecDeque::with_capacity(HISTORY + 1),
            last_bandwidth: None,
            quirks,
            held_down: 0,
        }
    }

    /// A media download's throughput, bit/s.
    pub(super) fn record(&mut self, throughput: f64) {
        if throughput.is_finite() && throughput > 0.0 {
            self.history.push_back(throughput);
            if self.history.len() > HISTORY {
                self.history.pop_front();
            }
        }
    }

    /// Whether downloads may be abandoned: not when a fault fixes the choice some other way.
    pub(super) fn abandons(&self) -> bool {
        let q = self.quirks;
        !(q.never_switches || q.always_top || q.aggressive || q.slow_down)
    }

    /// The next request is at this @bandwidth whatever `choose` would say (after an abandonment).
    pub(super) fn switched_to(&mut self, bandwidth: u64) {
        self.last_bandwidth = Some(bandwidth);
        self.held_down = 0;
    }

    /// The representation (an index into `bandwidths`, which is sorted and not empty) of the next
    /// media request, with the buffer at `buffer` seconds.
    pub(super) fn choose(&mut self, bandwidths: &[u64], buffer: f64) -> usize {
        let top = bandwidths.len().saturating_sub(1);
        let history: Vec<f64> = self.history.iter().copied().collect();
        let last = self.last_bandwidth.map(|b| highest_at_most(bandwidths, b as f64));
        let mut choice = if self.quirks.always_top {
            top
        } else if self.quirks.never_switches {
            0
        } else if self.quirks.aggressive {
            history.last().map_or(0, |&latest| highest_below(bandwidths, AGGRESSIVE * latest))
        } else {
            decide(bandwidths, &history, buffer, self.target, last)
        };
        if let (true, Some(last)) = (self.quirks.slow_down, last) {
            if choice < last && self.held_down < SLOW_DOWN_WAIT {
                self.held_down += 1;
                choice = last;
            } else {
                self.held_down = 0;
            }
        }
        self.last_bandwidth = bandwidths.get(choice).copied();
        choice
    }
}

/// The lab's rule (see the module's comment): `history` holds the last throughputs (bit/s,
/// oldest first), `last` the representation of the previous request.
pub(super) fn decide(bandwidths: &[u64], history: &[f64], buffer: f64, target: f64, last: Option<usize>) -> usize {
    // The first media segment: nothing measured yet, so the lowest.
    let (Some(last), Some(&latest)) = (last, history.last()) else {
        return 0;
    };
    let estimate = harmonic_mean(history).min(latest);
    let by_throughput = highest_below(bandwidths, SAFETY * estimate);
    let mut choice = by_throughput;
    if buffer >= target / 2.0 {
        let mut by_buffer = bola(bandwidths, buffer, target);
        // BOLA-O: BOLA alone would climb on a full buffer whatever the network gives.
        if by_buffer > by_throughput && by_buffer > last {
            by_buffer = by_throughput.max(last);
        }
        // A representation above the throughput rule is kept only while one of the last two
        // downloads sustained it: a short dip does not switch down, a real fall does by the 3rd
        // request after it (rule 2).
        let sustained = history.iter().rev().take(2).fold(0.0, |a: f64, &b| a.max(b));
        choice = choice.max(by_buffer.min(highest_at_most(bandwidths, sustained)));
    }
    let best = history.iter().fold(0.0, |a: f64, &b| a.max(b));
    choice.min(highest_at_most(bandwidths, CEILING * best))
}

/// Whether to abandon a media download at representation `current` of a `duration`-second
/// segment, `elapsed` seconds after its request with `received` of `expected` bytes in: when it
/// would take more than 1.8 segment durations in all and the rate so far suits a lower
/// representation, that one and the rate. Without it, a fall that comes while a top segment is
/// asked for holds the player for the whole slow download, and every request after the fall but
/// one could come too late to follow it (rule 2), after a long stall.
pub(super) fn abandon(
    bandwidths: &[u64],
    current: usize,
    duration: f64,
    elapsed: f64,
    received: u64,
    expected: u64,
) -> Option<(usize, f64)> {
    if current == 0 || elapsed < ABANDON_GRACE * duration || received == 0 || received >= expected {
        return None;
    }
    let rate = received as f64 * 8.0 / elapsed;
    let projected = elapsed + (expected - received) as f64 * 8.0 / rate;
    if projected <= ABANDON_AFTER * duration {
        return None;
    }
    let lower = highest_below(bandwidths, SAFETY * rate);
    (lower < current).then_some((lower, rate))
}

/// BOLA-BASIC's choice at `buffer` seconds: the representation maximising
/// `(V (u + gamma) - buffer) / bitrate`, with `u = ln(bitrate / lowest) + 1` and V, gamma set (as
/// dash.js's BolaRule sets them) so that it picks the lowest at half of `target` and the highest
/// at `target`.
pub(super) fn bola(bandwidths: &[u64], buffer: f64, target: f64) -> usize {
    let Some(&lowest) = bandwidths.first() else {
        return 0;
    };
    let utilities: Vec<f64> = bandwidths.iter().map(|&b| (b as f64 / lowest as f64).ln() + 1.0).collect();
    let top = utilities.last().copied().unwrap_or(1.0);
    if top <= 1.0 {
        return 0;
    }
    let minimum = target / 2.0;
    // V (u_0 + gamma - 1) = minimum and V (u_top + gamma - 1) = target.
    let gamma = (top - 1.0) / (target / minimum - 1.0);
    let v = minimum / gamma;
    let mut best = (0, f64::NEG_INFINITY);
    for (i, (&u, &b)) in utilities.iter().zip(bandwidths).enumerate() {
        let score = (v * (u + gamma) - buffer) / b as f64;
        // `>=`: of equal scores, the higher bitrate (as dash.js).
        if score >= best.1 {
            best = (i, score);
        }
    }
    best.0
}

/// The harmonic mean, which a single slow download pulls down more than a fast one pulls up.
pub(super) fn harmonic_mean(values: &[f64]) -> f64 {
    let inverse: f64 = values.iter().map(|v| 1.0 / v).sum();
    match inverse > 0.0 {
        true => values.len() as f64 / inverse,
        false => 0.0,
    }
}

/// The highest representation whose @bandwidth is below `rate`; the lowest if none is.
pub(super) fn highest_below(bandwidths: &[u64], rate: f64) -> usize {
    bandwidths.iter().rposition(|&b| (b as f64) < rate).unwrap_or(0)
}

/// The highest representation whose @bandwidth is at most `rate`; the lowest if none is.
pub(super) fn highest_at_most(bandwidths: &[u64], rate: f64) -> usize {
    bandwidths.iter().rposition(|&b| (b as f64) <= rate).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: [u64; 4] = [40_000, 80_000, 160_000, 320_000];

    #[test]
    fn throughput_rule() {
        assert_eq!(harmonic_mean(&[100.0, 100.0, 25.0]), 50.0);
        assert_eq!(highest_below(&LAB, 160_000.0), 1, "strictly below");
        assert_eq!(highest_at_most(&LAB, 160_000.0), 2);
        assert_eq!(highest_below(&LAB, 1.0), 0, "the lowest when nothing fits");
        // First segment: the lowest, whatever.
        assert_eq!(decide(&LAB, &[], 0.0, 4.0, None), 0);
        // 0.9 x 200k = 180k: 160k fits.
        assert_eq!(decide(&LAB, &[200e3, 200e3, 200e3], 1.0, 4.0, Some(0)), 2);
        // 0.9 x 1.6M: the top.
        assert_eq!(decide(&LAB, &[1.6e6], 1.0, 4.0, Some(0)), 3);
        // One slow download is believed at once: 0.9 x 60k fits only the lowest.
        assert_eq!(decide(&LAB, &[1.6e6, 1.6e6, 60e3], 1.0, 4.0, Some(3)), 0);
        // Rising: the harmonic mean of (60k, 60k, 1.6M) is 88k, 0.9 x that 79.6k: still the lowest ...
        assert_eq!(decide(&LAB, &[60e3, 60e3, 1.6e6], 1.0, 4.0, Some(0)), 0);
        // ... and of (60k, 1.6M, 1.6M) 167k, 0.9 x that 150k: 80k.
        assert_eq!(decide(&LAB, &[60e3, 1.6e6, 1.6e6], 1.0, 4.0, Some(0)), 1);
    }

    #[test]
    fn the_ceiling() {
        // Never above 2 x the best of the last three, even when a large buffer would allow it.
        let history = [70e3, 70e3, 70e3];
        for buffer in [0.0, 2.0, 3.9] {
            assert!(LAB[decide(&LAB, &history, buffer, 4.0, Some(3))] as f64 <= 140e3, "buffer {buffer}");
        }
        let mut abr = Abr::new(
            4.0,
            Quirks {
                aggressive: true,
                ..Quirks::default()
            },
        );
        abr.choose(&LAB, 0.0);
        abr.record(85e3);
        assert_eq!(abr.choose(&LAB, 1.0), 3, "aggressive: 4 x 85k = 340k");
    }

    #[test]
    fn bola_follows_the_buffer() {
        // The lowest at half of the buffer target, the highest at the target, in between rising.
        assert_eq!(bola(&LAB, 0.0, 4.0), 0);
        assert_eq!(bola(&LAB, 2.0, 4.0), 0);
        assert_eq!(bola(&LAB, 4.0, 4.0), 3);
        let choices: Vec<usize> = (0..=40).map(|tenths| bola(&LAB, f64::from(tenths) / 10.0, 4.0)).collect();
        assert!(choices.windows(2).all(|w| w[0] <= w[1]), "{choices:?}");
        assert!(choices.contains(&1) && choices.contains(&2), "{choices:?}");
        assert_eq!(bola(&[100], 3.0, 4.0), 0);
        assert_eq!(bola(&[100, 100], 3.0, 4.0), 0, "equal rates: nothing to choose");
    }

    #[test]
    fn the_buffer_holds_a_quality_through_a_dip_only() {
        // At the top with a full buffer, one slow download (150k) does not switch down ...
        assert_eq!(decide(&LAB, &[1.6e6, 1.6e6, 150e3], 3.9, 4.0, Some(3)), 3);
        // ... a second one does, to what the throughput sustains.
        assert_eq!(decide(&LAB, &[1.6e6, 150e3, 150e3], 3.9, 4.0, Some(3)), 1);
        // Below half of the buffer, the throughput rule alone.
        assert_eq!(decide(&LAB, &[1.6e6, 1.6e6, 150e3], 1.9, 4.0, Some(3)), 1);
        // BOLA-O: a full buffer does not climb past what the throughput sustains.
        assert_eq!(decide(&LAB, &[100e3, 100e3, 100e3], 3.99, 4.0, Some(0)), 1);
    }

    #[test]
    fn abandoning() {
        // 40 kB of the top asked for, 0.5 s in at 60 kbit/s (3750 bytes): 5.3 s in all.
        assert_eq!(abandon(&LAB, 3, 1.0, 0.5, 3750, 40_000), Some((0, 60e3)));
        // Too early to say, nothing yet, or already the lowest.
        assert_eq!(abandon(&LAB, 3, 1.0, 0.4, 3000, 40_000), None);
        assert_eq!(abandon(&LAB, 3, 1.0, 0.9, 0, 40_000), None);
        assert_eq!(abandon(&LAB, 0, 1.0, 0.9, 100, 5_000), None);
        // Slow, but done within 1.8 s.
        assert_eq!(abandon(&LAB, 3, 1.0, 0.6, 16_000, 40_000), None);
        // Slow for an oversized segment, but the rate suits this representation (0.9 x 96k > 80k).
        assert_eq!(abandon(&LAB, 1, 1.0, 0.5, 6_000, 30_000), None);
    }

    #[test]
    fn playback() {
        let mut p = Playback::default();
        assert_eq!(p.level(5.0), 0.0, "nothing plays before the first segment");
        p.arrived(5.0, 1.0);
        assert_eq!(p.level(5.25), 0.75);
        p.arrived(5.5, 1.0);
        assert_eq!(p.level(6.0), 1.0);
        assert_eq!(p.level(8.0), 0.0);
        assert_eq!(p.stalled(), 1.0);
        assert_eq!(p.level(7.0), 0.0, "time does not go back");
    }

    #[test]
    fn faults() {
        let quirks = |f: fn(&mut Quirks)| {
            let mut q = Quirks::default();
            f(&mut q);
            Abr::new(4.0, q)
        };
        let mut top = quirks(|q| q.always_top = true);
        assert_eq!(top.choose(&LAB, 0.0), 3);
        let mut bottom = quirks(|q| q.never_switches = true);
        bottom.choose(&LAB, 0.0);
        bottom.record(10e6);
        assert_eq!(bottom.choose(&LAB, 1.0), 0);
        let mut slow = quirks(|q| q.slow_down = true);
        slow.choose(&LAB, 0.0);
        slow.record(10e6);
        assert_eq!(slow.choose(&LAB, 1.0), 3);
        for _ in 0..3 {
            slow.record(50e3);
        }
        let held: Vec<usize> = (0..8).map(|_| slow.choose(&LAB, 1.0)).collect();
        assert_eq!(held, [3, 3, 3, 3, 3, 3, 0, 0]);
    }

    /// A network whose rate (bit/s) changes at given times, and a one-way latency per request.
    struct Trace {
        steps: Vec<(f64, f64)>,
        latency: f64,
    }

    impl Trace {
        fn rate_at(&self, t: f64) -> f64 {
            self.steps
                .iter()
                .rev()
                .find(|(from, _)| *from <= t)
                .map_or(self.steps[0].1, |s| s.1)
        }
        /// Bytes of a download asked for at `start` that have arrived by `t`.
        fn delivered(&self, start: f64, t: f64) -> f64 {
            let mut at = start + self.latency;
            let mut bits = 0.0;
            while at < t {
                let next = self
                    .steps
                    .iter()
                    .map(|s| s.0)
                    .find(|&from| from > at)
                    .unwrap_or(f64::INFINITY)
                    .min(t);
                bits += (next - at) * self.rate_at(at);
                at = next;
            }
            bits / 8.0
        }

        /// When a download of `bytes` asked for at `start` ends.
        fn finish(&self, start: f64, bytes: f64) -> f64 {
            let mut t = start + self.latency;
            let mut bits = bytes * 8.0;
            loop {
                let rate = self.rate_at(t);
                let next_change = self.steps.iter().map(|s| s.0).find(|&from| from > t).unwrap_or(f64::INFINITY);
                let need = bits / rate;
                if t + need <= next_change {
                    return t + need;
                }
                bits -= (next_change - t) * rate;
                t = next_change;
            }
        }
    }

    /// One media request of a simulated run: when it was sent, at which representation, when its
    /// download ended (none: abandoned), and its throughput (so far, when abandoned).
    struct Request {
        sent: f64,
        rep: usize,
        arrived: Option<f64>,
        throughput: f64,
    }

    /// Plays `segments` one-second synthetic segments over `trace`, as [`simulate_with`] does.
    fn simulate(trace: &Trace, segments: usize, target: f64, quirks: Quirks) -> Vec<Request> {
        simulate_with(trace, segments, 1.0, target, quirks)
    }

    /// Plays `segments` synthetic segments of `duration` seconds (@bandwidth x duration / 8
    /// bytes, as the harness serves them) over `trace` the way the player does: pacing on
    /// `--buffer`, choosing, and watching each download (every 50 ms here) in case it is to be
    /// abandoned.
    fn simulate_with(trace: &Trace, segments: usize, duration: f64, target: f64, quirks: Quirks) -> Vec<Request> {
        let mut abr = Abr::new(target, quirks);
        let mut playback = Playback::default();
        let mut t = 0.0;
        let mut out = Vec::new();
        for _ in 0..segments {
            let level = playback.level(t);
            if level >= target {
                t += level - target + 0.001;
            }
            let mut rep = abr.choose(&LAB, playback.level(t));
            loop {
                let bytes = LAB[rep] as f64 * duration / 8.0;
                let arrived = trace.finish(t, bytes);
                let mut abandoned = None;
                let mut check = t + 0.05;
                while abr.abandons() && abandoned.is_none() && check < arrived {
                    let received = trace.delivered(t, check) as u64;
                    abandoned = abandon(&LAB, rep, duration, check - t, received, bytes as u64).map(|x| (check, x));
                    check += 0.05;
                }
                if let Some((when, (lower, rate))) = abandoned {
                    out.push(Request {
                        sent: t,
                        rep,
                        arrived: None,
                        throughput: rate,
                    });
                    abr.record(rate);
                    abr.switched_to(LAB[lower]);
                    (t, rep) = (when, lower);
                    continue;
                }
                let throughput = bytes * 8.0 / (arrived - t);
                abr.record(throughput);
                playback.arrived(arrived, duration);
                out.push(Request {
                    sent: t,
                    rep,
                    arrived: Some(arrived),
                    throughput,
                });
                t = arrived;
                break;
            }
        }
        out
    }

    /// Rule 1 as the harness judges it: no request after the first above 2 x the best of the
    /// last three downloads completed before it.
    fn rule_1(run: &[Request]) -> bool {
        (1..run.len()).all(|i| {
            let done: Vec<f64> = run[..i].iter().filter(|r| r.arrived.is_some()).map(|r| r.throughput).collect();
            let best = done[done.len().saturating_sub(3)..].iter().copied().fold(0.0, f64::max);
            LAB[run[i].rep] as f64 <= 2.0 * best
        })
    }

    /// Rule 2 as the harness judges it: of the requests sent in [fall, recovery), the 3rd and
    /// later fit `rate`; when there are fewer, one of them does.
    fn rule_2(run: &[Request], fall: f64, recovery: f64, rate: f64) -> bool {
        let during: Vec<&Request> = run.iter().filter(|r| r.sent >= fall && r.sent < recovery).collect();
        let fits = |r: &&Request| LAB[r.rep] as f64 <= rate;
        match during.len() {
            0 => false,
            1 | 2 => during.iter().any(fits),
            _ => during[2..].iter().all(fits),
        }
    }

    /// Requests sent in [from, to).
    fn sent_in(run: &[Request], from: f64, to: f64) -> usize {
        run.iter().filter(|r| r.sent >= from && r.sent < to).count()
    }

    /// Rule 3: within 5 requests after `recovery`, one above the representation in use at it.
    fn rule_3(run: &[Request], recovery: f64) -> bool {
        let Some(at) = run.iter().rposition(|r| r.sent < recovery) else {
            return false;
        };
        run[at + 1..].iter().take(5).any(|r| r.rep > run[at].rep)
    }

    /// Rule 4: the 5th and every later request at the top.
    fn rule_4(run: &[Request]) -> bool {
        run.len() > 4 && run[4..].iter().all(|r| r.rep == LAB.len() - 1)
    }

    /// The harness's rebuffering estimate (docs/dash.md) for one-second segments.
    fn rebuffering(run: &[Request]) -> f64 {
        rebuffering_with(run, 1.0)
    }

    /// The harness's rebuffering estimate: playback starts when the first segment ends; segment
    /// k is due at start + (k - 1) x duration + stalls so far.
    fn rebuffering_with(run: &[Request], duration: f64) -> f64 {
        let done: Vec<f64> = run.iter().filter_map(|r| r.arrived).collect();
        let mut stalls = 0.0;
        for (k, arrived) in done.iter().enumerate() {
            let due = done[0] + k as f64 * duration + stalls;
            if *arrived > due {
                stalls += arrived - due;
            }
        }
        stalls
    }

    fn drop_and_recovery() -> Trace {
        Trace {
            steps: vec![(0.0, 1.6e6), (5.0, 60e3), (11.0, 1.6e6)],
            latency: 0.01,
        }
    }

    #[test]
    fn the_lab_rules_hold_over_a_fall_and_a_recovery() {
        let run = simulate(&drop_and_recovery(), 30, 4.0, Quirks::default());
        let reps: Vec<usize> = run.iter().map(|r| r.rep).collect();
        assert!(rule_1(&run), "rule 1: {reps:?}");
        assert!(rule_2(&run, 5.0, 11.0, 60e3), "rule 2: {reps:?}");
        assert!(rule_3(&run, 11.0), "rule 3: {reps:?}");
        assert_eq!(reps.last(), Some(&3), "back at the top: {reps:?}");
        // The top segment asked for at the fall is abandoned, so playback does not stall.
        assert!(run.iter().any(|r| r.arrived.is_none()), "{reps:?}");
        assert_eq!(rebuffering(&run), 0.0, "{reps:?}");
    }

    #[test]
    fn a_fall_is_followed_whenever_it_comes() {
        // Whether the fall comes during a download or while the player waits for room, and
        // however long the first request after it would take, the rule holds.
        for tenth in 0..20 {
            let fall = 5.0 + f64::from(tenth) / 20.0;
            let trace = Trace {
                steps: vec![(0.0, 1.6e6), (fall, 60e3), (fall + 6.0, 1.6e6)],
                latency: 0.01,
            };
            let run = simulate(&trace, 30, 4.0, Quirks::default());
            let reps: Vec<usize> = run.iter().map(|r| r.rep).collect();
            assert!(
                rule_1(&run) && rule_2(&run, fall, fall + 6.0, 60e3) && rule_3(&run, fall + 6.0),
                "fall at {fall}: {reps:?}"
            );
            assert!(rebuffering(&run) < 0.5, "fall at {fall}: {reps:?}");
        }
    }

    #[test]
    fn the_lab_rules_hold_on_steady_networks() {
        for (rate, latency) in [(1.28e6, 0.0), (1.6e6, 0.01), (10e6, 0.002)] {
            let trace = Trace {
                steps: vec![(0.0, rate)],
                latency,
            };
            let run = simulate(&trace, 16, 4.0, Quirks::default());
            let reps: Vec<usize> = run.iter().map(|r| r.rep).collect();
            assert!(rule_1(&run) && rule_4(&run), "{rate}: {reps:?}");
            assert_eq!(rebuffering(&run), 0.0);
        }
        for (rate, latency) in [(80e3, 0.0), (80e3, 0.02), (100e3, 0.01), (170e3, 0.01), (400e3, 0.01)] {
            let trace = Trace {
                steps: vec![(0.0, rate)],
                latency,
            };
            let run = simulate(&trace, 16, 4.0, Quirks::default());
            let reps: Vec<usize> = run.iter().map(|r| r.rep).collect();
            assert!(rule_1(&run), "{rate}: {reps:?}");
            assert!(rebuffering(&run) <= 0.5, "rule 6 at {rate}: {reps:?}, {} s", rebuffering(&run));
        }
    }

    #[test]
    fn the_suites_schedules() {
        // suites/dash-client.yaml: synthetic 0.5 s segments, --buffer 2.
        for shift in 0..10 {
            let fall = 3.0 + f64::from(shift) / 20.0;
            let trace = Trace {
                steps: vec![(0.0, 1.6e6), (fall, 60e3), (fall + 5.0, 1.6e6)],
                latency: 0.005,
            };
            let run = simulate_with(&trace, 24, 0.5, 2.0, Quirks::default());
            let reps: Vec<usize> = run.iter().map(|r| r.rep).collect();
            assert!(rule_1(&run), "fall at {fall}: {reps:?}");
            assert!(rule_2(&run, fall, fall + 5.0, 60e3), "fall at {fall}: {reps:?}");
            assert!(rule_3(&run, fall + 5.0), "fall at {fall}: {reps:?}");
        }
        for (rate, check_top) in [(1.6e6, true), (150e3, false), (100e3, false)] {
            let trace = Trace {
                steps: vec![(0.0, rate)],
                latency: 0.005,
            };
            let run = simulate_with(&trace, 24, 0.5, 2.0, Quirks::default());
            let reps: Vec<usize> = run.iter().map(|r| r.rep).collect();
            assert!(rule_1(&run), "{rate}: {reps:?}");
            assert!(!check_top || rule_4(&run), "{rate}: {reps:?}");
            assert!(rebuffering_with(&run, 0.5) <= 0.5, "{rate}: {reps:?}");
        }
    }

    #[test]
    fn milder_falls_are_followed_too() {
        // Falls to just below each representation: the 3rd request after must fit the new rate.
        for to in [300e3, 150e3, 75e3, 60e3] {
            let trace = Trace {
                steps: vec![(0.0, 1.6e6), (6.0, to), (20.0, 1.6e6)],
                latency: 0.01,
            };
            let run = simulate(&trace, 30, 4.0, Quirks::default());
            let reps: Vec<usize> = run.iter().map(|r| r.rep).collect();
            assert!(rule_1(&run), "{to}: {reps:?}");
            assert!(sent_in(&run, 6.0, 20.0) > 3, "{to}: {reps:?}");
            assert!(rule_2(&run, 6.0, 20.0, to), "rule 2 at {to}: {reps:?}");
            assert!(rule_3(&run, 20.0), "rule 3 at {to}: {reps:?}");
        }
    }

    #[test]
    fn each_adaptation_fault_breaks_a_rule() {
        let fast = Trace {
            steps: vec![(0.0, 1.6e6)],
            latency: 0.01,
        };
        let run_with = |trace: &Trace, f: fn(&mut Quirks)| {
            let mut q = Quirks::default();
            f(&mut q);
            simulate(trace, 30, 4.0, q)
        };
        let never = run_with(&fast, |q| q.never_switches = true);
        assert!(!rule_4(&never));
        assert!(!rule_3(&run_with(&drop_and_recovery(), |q| q.never_switches = true), 11.0));
        // A low phase long enough for more than 3 requests even at the top.
        let long_fall = Trace {
            steps: vec![(0.0, 1.6e6), (5.0, 60e3), (40.0, 1.6e6)],
            latency: 0.01,
        };
        let top = run_with(&long_fall, |q| q.always_top = true);
        assert!(sent_in(&top, 5.0, 40.0) > 3 && !rule_2(&top, 5.0, 40.0, 60e3));
        let slow = run_with(&long_fall, |q| q.slow_down = true);
        assert!(slow.iter().all(|r| r.arrived.is_some()), "a faulty player does not abandon");
        assert!(sent_in(&slow, 5.0, 40.0) > 3 && !rule_2(&slow, 5.0, 40.0, 60e3));
        let good = run_with(&long_fall, |_| {});
        assert!(rule_2(&good, 5.0, 40.0, 60e3));
        let modest = Trace {
            steps: vec![(0.0, 100e3)],
            latency: 0.01,
        };
        assert!(!rule_1(&run_with(&modest, |q| q.aggressive = true)));
    }
}
