//! The player itself: the MPD, then each period's media segments in order, each one's
//! representation chosen (`abr.rs`) once the buffer has room for it, a representation's
//! initialization segment (and a SegmentBase's index) before its first media segment, and every
//! request tried on the BaseURL alternatives in turn until one answers.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

use super::abr::{self, Abr, Playback};
use super::dns::Resolver;
use super::http::{self, Client, Fetched, Progress};
use super::mpd::{self, Location, Period, Representation, Segment, Segments};
use super::sidx;
use super::url::Url;
use super::{Fault, Faults};

/// `out-of-order` swaps these two positions (0-based: the 3rd and 4th segments).
const SWAPPED: (usize, usize) = (2, 3);
/// `skips-segment` skips this position (0-based: the 5th segment).
const SKIPPED: usize = 4;
/// Times a request goes round all the BaseURL alternatives before the player gives up: a failed
/// request may be asked again (docs/dash.md, Requesting), and one reset should not end playback.
const ROUNDS: usize = 3;
/// The pause between two rounds.
const ROUND_PAUSE: Duration = Duration::from_millis(500);
/// How often a media download's progress is looked at, to abandon it in time.
const WATCH_EVERY: Duration = Duration::from_millis(50);

/// How a media request ended.
enum Media {
    /// Its segment arrived.
    Done(Fetched),
    /// Given up for representation `lower`, with `received` bytes in after `elapsed` seconds
    /// (`rate` bit/s).
    Abandoned {
        lower: usize,
        rate: f64,
        received: u64,
        elapsed: f64,
    },
}

/// What the command line and the options ask for.
pub(super) struct Config {
    /// The MPD's URL.
    pub(super) mpd: Url,
    /// `--buffer`: no media request while this many seconds are buffered.
    pub(super) buffer: f64,
    /// `--dns`: the DNS server that resolves host names (the system's resolver without it).
    pub(super) dns: Option<SocketAddr>,
    /// Deliberate bugs.
    pub(super) faults: Faults,
}

/// Plays the presentation; the exit code (0 once the last segment is downloaded).
pub(super) async fn play(config: Config, out: UnboundedSender<String>) -> i32 {
    let faults = config.faults;
    let quirks = abr::Quirks {
        never_switches: faults.has(Fault::NeverSwitches),
        always_top: faults.has(Fault::AlwaysTop),
        aggressive: faults.has(Fault::Aggressive),
        slow_down: faults.has(Fault::SlowDown),
    };
    let mut http =
        Client::new(!faults.has(Fault::NoHost)).with_quirks(faults.has(Fault::FirstAddressOnly), faults.has(Fault::HostIsAddress));
    if let (Some(server), false) = (config.dns, faults.has(Fault::IgnoresDns)) {
        http = http.with_dns(Resolver::new(server, faults.has(Fault::NoCname)));
    }
    let mut player = Player {
        http,
        abr: Abr::new(config.buffer, quirks),
        config,
        out,
        epoch: Instant::now(),
        playback: Playback::default(),
        failed_bases: HashSet::new(),
        failed_hosts: HashSet::new(),
        sticky: HashMap::new(),
        initialized: HashSet::new(),
        any_init: false,
        segments: 0,
        switches: 0,
        last_bandwidth: None,
    };
    match player.run().await {
        Ok(()) => 0,
        Err(why) => {
            player.say(format!("error: {why}"));
            1
        }
    }
}

struct Player {
    config: Config,
    out: UnboundedSender<String>,
    http: Client,
    /// The buffer's clock starts here.
    epoch: Instant,
    playback: Playback,
    abr: Abr,
    /// BaseURLs that failed a request: tried last from then on (DASH §5.6.5: go on with the
    /// alternative that answered).
    failed_bases: HashSet<Url>,
    /// Their hosts: another representation's BaseURL on a host that failed is tried after one on
    /// a host that did not.
    failed_hosts: HashSet<String>,
    /// `follows-302-forever`: a BaseURL's redirect target, used in its place from then on.
    sticky: HashMap<Url, Url>,
    /// (period, representation) whose initialization segment has been fetched.
    initialized: HashSet<(usize, usize)>,
    any_init: bool,
    /// Media segments downloaded.
    segments: usize,
    switches: usize,
    last_bandwidth: Option<u64>,
}

impl Player {
    fn say(&self, line: String) {
        let _ = self.out.send(line);
    }

    fn now(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    fn has(&self, fault: Fault) -> bool {
        self.config.faults.has(fault)
    }

    async fn run(&mut self) -> Result<(), String> {
        let mpd_url = self.config.mpd.clone();
        if self.has(Fault::ProbesFirst) {
            if let Ok(folder) = mpd_url.resolve("./") {
                let _ = self.http.get(&folder, None, None).await;
            }
        }
        let fetched = self
            .http
            .get(&mpd_url, None, None)
            .await
            .map_err(|e| format!("cannot read the MPD: {e}"))?;
        // RFC 3986 §5.1.3: the base is the URL the MPD was finally retrieved from.
        let base = fetched.redirected.unwrap_or(mpd_url);
        let text = std::str::from_utf8(&fetched.body).map_err(|_| "the MPD is not UTF-8".to_owned())?;
        let quirks = mpd::Quirks {
            ignore_start_number: self.has(Fault::IgnoresStartNumber),
            ignore_width: self.has(Fault::IgnoresWidth),
            time_as_number: self.has(Fault::TimeAsNumber),
            ignore_relative_base: self.has(Fault::IgnoresRelativeBase),
            ignore_list_media: self.has(Fault::IgnoresList),
            ignore_mpd_base: self.has(Fault::IgnoresMpdBase),
        };
        let mut periods =
            mpd::parse(text.trim_start_matches('\u{feff}'), &base, quirks).map_err(|e| format!("cannot read the MPD: {e}"))?;
        for (i, period) in periods.iter().enumerate() {
            let reps: Vec<String> = period.representations.iter().map(|r| format!("{}@{}", r.id, r.bandwidth)).collect();
            self.say(format!("MPD period {}: representations {}", i + 1, reps.join(" ")));
        }
        let many = periods.len() > 1;
        for (i, period) in periods.iter_mut().enumerate() {
            self.play_period(i, period, many).await?;
        }
        self.say(format!(
            "done: {} segments, {} switches, {:.2} s stalled",
            self.segments,
            self.switches,
            self.playback.stalled()
        ));
        Ok(())
    }

    async fn play_period(&mut self, period_index: usize, period: &mut Period, many: bool) -> Result<(), String> {
        let bandwidths: Vec<u64> = period.representations.iter().map(|r| r.bandwidth).collect();
        // Known once the first representation used is ready (a SegmentBase's after its index).
        let mut count: Option<usize> = None;
        let mut last_rep = 0;
        let mut step = 0;
        while count.is_none_or(|n| step < n) {
            let position = match (self.has(Fault::OutOfOrder), count) {
                (true, Some(n)) if n > SWAPPED.1 && step == SWAPPED.0 => SWAPPED.1,
                (true, Some(n)) if n > SWAPPED.1 && step == SWAPPED.1 => SWAPPED.0,
                _ => step,
            };
            step += 1;
            if self.has(Fault::SkipsSegment) && position == SKIPPED {
                continue;
            }
            self.wait_for_room().await;
            let level = self.playback.level(self.now());
            let mut choice = self.abr.choose(&bandwidths, level);
            let (n, fetched, segment) = loop {
                let rep = period.representations.get_mut(choice).ok_or("no representation")?;
                self.prepare(period_index, choice, rep).await?;
                let Segments::Listed(segments) = &rep.segments else {
                    return Err(format!("representation {} has no segment list", rep.id));
                };
                let n = *count.get_or_insert(segments.len());
                let segment: Segment = segments
                    .get(position)
                    .cloned()
                    .ok_or_else(|| format!("representation {} has no segment {}", rep.id, position + 1))?;
                let rep = &period.representations[choice];
                // The init and the index took time: the buffer is checked again before the media.
                self.wait_for_room().await;
                let outcome = self
                    .media(rep, &segment, choice, &bandwidths)
                    .await
                    .map_err(|e| format!("segment {} of representation {}: {e}", position + 1, rep.id))?;
                match outcome {
                    Media::Done(fetched) => break (n, fetched, segment),
                    Media::Abandoned {
                        lower,
                        rate,
                        received,
                        elapsed,
                    } => {
                        self.say(format!(
                            "abandoned segment {}/{n} rep {} after {received} bytes in {elapsed:.3} s ({:.1} kbit/s): asking rep {}",
                            position + 1,
                            rep.id,
                            rate / 1000.0,
                            period.representations[lower].id
                        ));
                        self.abr.record(rate);
                        self.abr.switched_to(bandwidths[lower]);
                        choice = lower;
                    }
                }
            };
            let rep = &period.representations[choice];
            let seconds = fetched.done.saturating_duration_since(fetched.sent).as_secs_f64().max(1e-4);
            let throughput = fetched.received as f64 * 8.0 / seconds;
            self.abr.record(throughput);
            let now = fetched.done.saturating_duration_since(self.epoch).as_secs_f64();
            self.playback.arrived(now, segment.duration);
            if self.last_bandwidth.is_some_and(|b| b != rep.bandwidth) {
                self.switches += 1;
            }
            self.last_bandwidth = Some(rep.bandwidth);
            self.segments += 1;
            last_rep = choice;
            let prefix = if many {
                format!("period {} ", period_index + 1)
            } else {
                String::new()
            };
            let level = self.playback.level(now);
            self.say(format!(
                "{prefix}segment {}/{n} rep {} ({} bit/s): {} bytes in {seconds:.3} s, {:.1} kbit/s, buffer {:.2} s",
                position + 1,
                rep.id,
                rep.bandwidth,
                fetched.received,
                throughput / 1000.0,
                level,
            ));
        }
        if self.has(Fault::PastEnd) {
            self.past_end(&period.representations[last_rep]).await;
        }
        Ok(())
    }

    /// Sleeps until the buffer holds less than `--buffer` seconds: the player's own pacing.
    async fn wait_for_room(&mut self) {
        loop {
            let over = self.playback.level(self.now()) - self.config.buffer;
            if over < 0.0 {
                return;
            }
            tokio::time::sleep(Duration::from_secs_f64(over) + Duration::from_millis(1)).await;
        }
    }

    /// A representation's initialization segment (once) and, for a SegmentBase, its index, before
    /// its first media segment.
    async fn prepare(&mut self, period_index: usize, choice: usize, rep: &mut Representation) -> Result<(), String> {
        let skip_init = self.has(Fault::NoInit) || (self.has(Fault::InitOnce) && self.any_init);
        if !skip_init && self.initialized.insert((period_index, choice)) {
            if let Some(init) = rep.init.clone() {
                let fetched = self
                    .fetch(rep, &init, None)
                    .await
                    .map_err(|e| format!("initialization segment of representation {}: {e}", rep.id))?;
                self.any_init = true;
                self.say(format!("init rep {}: {} bytes", rep.id, fetched.body.len()));
            }
        }
        if let Segments::Indexed(range) = rep.segments {
            let at = Location {
                path: None,
                range: Some(range),
            };
            let fetched = self
                .fetch(rep, &at, None)
                .await
                .map_err(|e| format!("index of representation {}: {e}", rep.id))?;
            let references = sidx::parse(&fetched.body, range.first).map_err(|e| format!("index of representation {}: {e}", rep.id))?;
            let segments: Vec<Segment> = references
                .into_iter()
                .map(|r| Segment {
                    at: Location {
                        path: None,
                        range: Some(r.range),
                    },
                    duration: r.duration,
                })
                .collect();
            rep.past_end = segments.last().and_then(|s| mpd::after(&s.at));
            self.say(format!("index rep {}: {} segments", rep.id, segments.len()));
            rep.segments = Segments::Listed(segments);
        }
        Ok(())
    }

    /// A media segment, watched as it comes (unless it is at the lowest representation, or a
    /// fault fixes the choice): abandoned when it would take far longer than it plays and a
    /// lower representation suits the rate so far.
    async fn media(&mut self, rep: &Representation, segment: &Segment, current: usize, bandwidths: &[u64]) -> Result<Media, String> {
        if current == 0 || !self.abr.abandons() {
            return self.fetch(rep, &segment.at, None).await.map(Media::Done);
        }
        let progress = Progress::new();
        // A chunked body gives no length: the size @bandwidth promises stands in.
        let promised = (rep.bandwidth as f64 * segment.duration / 8.0) as u64;
        let watch = async {
            let mut tick = tokio::time::interval(WATCH_EVERY);
            loop {
                tick.tick().await;
                let (elapsed, received, expected) = progress.now();
                let expected = expected.unwrap_or(promised);
                if let Some((lower, rate)) = abr::abandon(bandwidths, current, segment.duration, elapsed, received, expected) {
                    return Media::Abandoned {
                        lower,
                        rate,
                        received,
                        elapsed,
                    };
                }
            }
        };
        // Dropping the download closes its connection: HTTP/1.1 has no other way to stop a
        // response.
        tokio::select! {
            fetched = self.fetch(rep, &segment.at, Some(&progress)) => fetched.map(Media::Done),
            abandoned = watch => Ok(abandoned),
        }
    }

    /// The representation's BaseURLs, those that have not failed first (in the MPD's order).
    fn candidates(&self, rep: &Representation) -> Vec<Url> {
        let mut bases = rep.bases.clone();
        bases.sort_by_key(|b| (self.failed_bases.contains(b), self.failed_hosts.contains(b.authority())));
        bases
    }

    /// GETs `at` from the representation's first BaseURL that answers with it, going round the
    /// alternatives up to `ROUNDS` times.
    async fn fetch(&mut self, rep: &Representation, at: &Location, progress: Option<&Progress>) -> Result<Fetched, String> {
        let mut last_error = "no BaseURL".to_owned();
        let mut asked = 0;
        for round in 0..ROUNDS {
            if round > 0 {
                tokio::time::sleep(ROUND_PAUSE).await;
            }
            let mut tried: Vec<Url> = Vec::new();
            for base in self.candidates(rep) {
                let url = match self.url(&base, at) {
                    Ok(url) => url,
                    Err(e) => {
                        last_error = e;
                        continue;
                    }
                };
                if tried.contains(&url) {
                    continue;
                }
                tried.push(url.clone());
                match self.attempt(&url, at, progress).await {
                    Ok(fetched) => {
                        if let (true, Some(target)) = (self.has(Fault::Follows302Forever), &fetched.redirected) {
                            self.sticky.insert(base.clone(), target.clone());
                        }
                        return Ok(fetched);
                    }
                    Err(why) => {
                        self.say(format!("failed: {why}"));
                        if self.has(Fault::NoFailover) {
                            return Err(why);
                        }
                        self.failed_hosts.insert(base.authority().to_owned());
                        self.failed_bases.insert(base);
                        last_error = why;
                    }
                }
            }
            asked = asked.max(tried.len());
        }
        Err(match asked {
            0 | 1 => last_error,
            n => format!("every BaseURL failed, {ROUNDS} times each ({n} alternatives; the last: {last_error})"),
        })
    }

    /// Where `at` is under `base`.
    fn url(&self, base: &Url, at: &Location) -> Result<Url, String> {
        let base = match self.has(Fault::Follows302Forever) {
            true => self.sticky.get(base).unwrap_or(base),
            false => base,
        };
        match &at.path {
            Some(path) => base.resolve(path),
            None => Ok(base.clone()),
        }
    }

    async fn attempt(&mut self, url: &Url, at: &Location, progress: Option<&Progress>) -> Result<Fetched, String> {
        if !self.has(Fault::NoRanges) {
            return self.http.get(url, at.range, progress).await;
        }
        let mut fetched = self.http.get(url, None, progress).await?;
        if let Some(range) = at.range {
            fetched.body = http::slice(fetched.body, range).map_err(|e| format!("{url}: {e}"))?;
        }
        Ok(fetched)
    }

    /// `past-end`: one request for the segment after the last, whatever it answers.
    async fn past_end(&mut self, rep: &Representation) {
        let Some(at) = rep.past_end.clone() else {
            return;
        };
        let Some(base) = self.candidates(rep).into_iter().next() else {
            return;
        };
        if let Ok(url) = self.url(&base, &at) {
            let answer = match self.attempt(&url, &at, None).await {
                Ok(fetched) => format!("{} bytes", fetched.body.len()),
                Err(why) => why,
            };
            self.say(format!("past the end: {answer}"));
        }
    }
}
