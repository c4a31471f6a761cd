//! The shared cache (RFC 9111): what may be stored (§3), freshness and age
//! (§4.2), validators for revalidation (§4.3), and a bounded LRU store.
//! Heuristic freshness (§4.2.2) is deliberately off: a response without
//! explicit freshness is stale as soon as it is stored.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use super::message::{combined, field, has, tokens, Headers, Response};
use super::upstream::Exchange;

/// Upper bound on the bytes of all stored responses together.
const MAX_CACHE_BYTES: usize = 256 * 1024 * 1024;
/// The "infinity" of delta-seconds (RFC 9111 §1.2.2).
const DELTA_SECONDS_MAX: u64 = 1 << 31;
/// Stored only with explicit freshness or a validator; these are the
/// heuristically cacheable codes of RFC 9110 §15.1, minus 204 (no body worth
/// keeping), 206 (partial content needs range merging) and the 4xx/5xx codes
/// no origin in a course lab sends with a max-age.
const STORABLE_STATUS: &[u16] = &[200, 203, 300, 301, 308, 404, 410];

/// Cache-Control directives: names lowercased, arguments unquoted, first occurrence wins (§4.2.1).
pub(super) struct Directives(Vec<(String, Option<String>)>);

impl Directives {
    /// Parses every Cache-Control line of `headers`.
    pub fn of(headers: &Headers) -> Self {
        let Some(value) = combined(headers, "cache-control") else {
            return Directives(Vec::new());
        };
        let value = String::from_utf8_lossy(&value);
        let mut directives = Vec::new();
        for item in split_outside_quotes(&value) {
            let (name, argument) = match item.split_once('=') {
                Some((name, argument)) => (name, Some(unquote(argument.trim()))),
                None => (item, None),
            };
            let name = name.trim().to_ascii_lowercase();
            if !name.is_empty() {
                directives.push((name, argument));
            }
        }
        Directives(directives)
    }

    /// True if directive `name` is present (with or without an argument).
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    /// `None` if absent; `Some(None)` if present without valid delta-seconds.
    fn seconds(&self, name: &str) -> Option<Option<Duration>> {
        let (_, argument) = self.0.iter().find(|(n, _)| n == name)?;
        Some(argument.as_deref().and_then(delta_seconds))
    }
}

/// Splits a list at commas that are not inside a quoted string (`private="a, b"`).
fn split_outside_quotes(value: &str) -> Vec<&str> {
    let (mut items, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&value[start..]);
    items
}

fn unquote(argument: &str) -> String {
    match argument.strip_prefix('"').and_then(|a| a.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => argument.to_owned(),
    }
}

/// delta-seconds (RFC 9111 §1.2.2): digits only; too large means 2^31.
fn delta_seconds(text: &str) -> Option<Duration> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds = text.parse::<u64>().map_or(DELTA_SECONDS_MAX, |n| n.min(DELTA_SECONDS_MAX));
    Some(Duration::from_secs(seconds))
}

fn http_date(value: &[u8]) -> Option<SystemTime> {
    httpdate::parse_http_date(std::str::from_utf8(value).ok()?).ok()
}

/// A stored response to a GET, with what is needed to compute its age.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// Without Age (recomputed when served) and Content-Length (recomputed when sent).
    response: Response,
    /// The request's values of the fields the response's Vary names (§4.1).
    vary: Vec<(String, Option<Vec<u8>>)>,
    /// corrected_initial_age of §4.2.3.
    initial_age: Duration,
    /// response_time of §4.2.3, as a monotonic instant for resident_time...
    received: Instant,
    /// ...and as a wall-clock time, the stand-in for a Date that does not parse.
    response_time: SystemTime,
    last_used: u64,
}

impl Entry {
    /// Builds an entry from an origin exchange; `request` is what the client sent (for Vary).
    pub fn new(exchange: &Exchange, request: &Headers) -> Self {
        let mut response = exchange.response.clone();
        response
            .headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case("age") && !name.eq_ignore_ascii_case("content-length"));
        let vary = tokens(&exchange.response.headers, "vary")
            .into_iter()
            .map(|name| {
                let value = combined(request, &name);
                (name, value)
            })
            .collect();
        Entry {
            response,
            vary,
            initial_age: initial_age(exchange),
            received: Instant::now(),
            response_time: exchange.response_time,
            last_used: 0,
        }
    }

    /// §3, response side (the caller checks the request side).
    fn storable(&self, max_object: usize) -> bool {
        let headers = &self.response.headers;
        let cc = Directives::of(headers);
        let explicit = has(headers, "expires") || cc.has("max-age") || cc.has("s-maxage");
        let validator = has(headers, "etag") || has(headers, "last-modified");
        STORABLE_STATUS.contains(&self.response.status)
            && !cc.has("no-store")
            // A shared cache must not store private responses; the qualified
            // form (private="Set-Cookie") is treated like the plain one.
            && !cc.has("private")
            && !self.vary.iter().any(|(name, _)| name == "*")
            && self.response.body.len() <= max_object
            && (explicit || validator)
    }

    /// True if `request` selects this response (§4.1).
    fn matches(&self, request: &Headers) -> bool {
        self.vary.iter().all(|(name, value)| combined(request, name) == *value)
    }

    /// current_age of §4.2.3.
    fn age(&self) -> Duration {
        self.initial_age + self.received.elapsed()
    }

    /// freshness_lifetime of §4.2.1, for a shared cache; zero without explicit freshness.
    fn lifetime(&self) -> Duration {
        let headers = &self.response.headers;
        let cc = Directives::of(headers);
        // An invalid max-age or s-maxage makes the response stale, not heuristically fresh.
        if let Some(s_maxage) = cc.seconds("s-maxage") {
            return s_maxage.unwrap_or_default();
        }
        if let Some(max_age) = cc.seconds("max-age") {
            return max_age.unwrap_or_default();
        }
        let Some(expires) = field(headers, "expires") else {
            return Duration::ZERO;
        };
        let date = field(headers, "date").and_then(http_date).unwrap_or(self.response_time);
        // An Expires that does not parse means "already expired" (RFC 9111 §5.3).
        http_date(expires).and_then(|e| e.duration_since(date).ok()).unwrap_or_default()
    }

    /// True if this entry may answer `request` without asking the origin (§4.2, §5.2.1).
    pub fn usable_for(&self, request: &Headers) -> bool {
        let asked = Directives::of(request);
        let pragma_no_cache = tokens(request, "pragma").iter().any(|t| t == "no-cache");
        // no-cache with field names is treated like plain no-cache: always revalidate.
        if Directives::of(&self.response.headers).has("no-cache") || asked.has("no-cache") || pragma_no_cache {
            return false;
        }
        let (age, lifetime) = (self.age(), self.lifetime());
        if age >= lifetime {
            return false;
        }
        // Invalid request arguments are read as 0 and ∞: the strictest meaning.
        if asked.seconds("max-age").is_some_and(|max_age| age > max_age.unwrap_or_default()) {
            return false;
        }
        asked
            .seconds("min-fresh")
            .is_none_or(|min_fresh| lifetime - age >= min_fresh.unwrap_or(Duration::MAX))
    }

    /// If-None-Match / If-Modified-Since from the stored validators (§4.3.1); empty if there are none.
    pub fn conditions(&self) -> Vec<(&'static str, Vec<u8>)> {
        let mut conditions = Vec::new();
        if let Some(etag) = field(&self.response.headers, "etag") {
            conditions.push(("If-None-Match", etag.to_vec()));
        }
        if let Some(modified) = field(&self.response.headers, "last-modified") {
            conditions.push(("If-Modified-Since", modified.to_vec()));
        }
        conditions
    }

    /// True if a 304 is about this entry (§4.3.4): its entity-tag, if both have one, must be the same (weakly).
    pub fn validated_by(&self, not_modified: &Response) -> bool {
        let weak = |tag: &[u8]| tag.strip_prefix(b"W/").unwrap_or(tag).to_vec();
        match (field(&self.response.headers, "etag"), field(&not_modified.headers, "etag")) {
            (Some(stored), Some(new)) => weak(stored) == weak(new),
            _ => true,
        }
    }

    /// Takes the header fields of a 304 into the stored response (§3.2, §4.3.4) and restarts its age.
    pub fn freshen(&mut self, not_modified: &Exchange) {
        let update = &not_modified.response.headers;
        let skip = |name: &str| name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("age");
        let stored = &mut self.response.headers;
        stored.retain(|(name, _)| skip(name) || !has(update, name));
        stored.extend(update.iter().filter(|(name, _)| !skip(name)).cloned());
        self.initial_age = initial_age(not_modified);
        self.received = Instant::now();
        self.response_time = not_modified.response_time;
    }

    /// The response as it is served, and its Age in seconds.
    pub fn serve(&self) -> (Response, u64) {
        (self.response.clone(), self.age().as_secs())
    }

    fn size(&self) -> usize {
        let fields: usize = self.response.headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
        self.response.body.len() + fields
    }
}

/// corrected_initial_age (§4.2.3), from the exchange's Age and Date fields and timing.
fn initial_age(exchange: &Exchange) -> Duration {
    let headers = &exchange.response.headers;
    let age_value = field(headers, "age")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| delta_seconds(v.trim()))
        .unwrap_or_default();
    let date = field(headers, "date").and_then(http_date);
    let apparent_age = date
        .and_then(|date| exchange.response_time.duration_since(date).ok())
        .unwrap_or_default();
    let response_delay = exchange.response_time.duration_since(exchange.request_time).unwrap_or_default();
    apparent_age.max(age_value + response_delay)
}

/// Stored responses by cache key (method GET is implied), evicting the least recently used.
pub(super) struct Cache {
    entries: HashMap<String, Entry>,
    max_entries: usize,
    max_object: usize,
    bytes: usize,
    clock: u64,
}

impl Cache {
    /// An empty cache; `max_entries` 0 stores nothing.
    pub fn new(max_entries: usize, max_object: usize) -> Self {
        Cache {
            entries: HashMap::new(),
            max_entries,
            max_object,
            bytes: 0,
            clock: 0,
        }
    }

    /// A copy of the entry for `key` if it exists and `request` selects it.
    pub fn lookup(&mut self, key: &str, request: &Headers) -> Option<Entry> {
        self.clock += 1;
        let entry = self.entries.get_mut(key).filter(|entry| entry.matches(request))?;
        entry.last_used = self.clock;
        Some(entry.clone())
    }

    /// Stores `entry` under `key` if it is storable, else forgets what `key` had (a newer response superseded it).
    pub fn put(&mut self, key: String, mut entry: Entry) {
        self.remove(&key);
        if self.max_entries == 0 || !entry.storable(self.max_object) {
            return;
        }
        let size = entry.size();
        while self.entries.len() >= self.max_entries || self.bytes + size > MAX_CACHE_BYTES {
            let Some(oldest) = self.entries.iter().min_by_key(|(_, e)| e.last_used).map(|(k, _)| k.clone()) else {
                break;
            };
            self.remove(&oldest);
        }
        self.clock += 1;
        entry.last_used = self.clock;
        self.bytes += size;
        self.entries.insert(key, entry);
    }

    /// Forgets the entry for `key`, if any.
    pub fn remove(&mut self, key: &str) {
        if let Some(entry) = self.entries.remove(key) {
            self.bytes -= entry.size();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn exchange(status: u16, pairs: &[(&str, &str)]) -> Exchange {
        let now = SystemTime::now();
        let mut headers: Headers = pairs.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect();
        headers.push(("Date".into(), httpdate::fmt_http_date(now).into_bytes()));
        Exchange {
            response: Response {
                minor: 1,
                status,
                reason: "OK".into(),
                headers,
                body: Arc::from(&b"body"[..]),
            },
            request_time: now,
            response_time: now,
        }
    }

    fn entry(pairs: &[(&str, &str)]) -> Entry {
        Entry::new(&exchange(200, pairs), &Headers::new())
    }

    fn request(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn directives() {
        let cc = Directives::of(&request(&[
            ("Cache-Control", "Max-Age=60, private=\"a, b\""),
            ("Cache-Control", "max-age=5"),
        ]));
        assert_eq!(cc.seconds("max-age"), Some(Some(Duration::from_secs(60))));
        assert!(cc.has("private") && !cc.has("a") && !cc.has("b\""));
        assert_eq!(
            Directives::of(&request(&[("Cache-Control", "max-age=x")])).seconds("max-age"),
            Some(None)
        );
        assert_eq!(delta_seconds("99999999999999999999999"), Some(Duration::from_secs(1 << 31)));
    }

    #[test]
    fn what_is_stored() {
        assert!(entry(&[("Cache-Control", "max-age=60")]).storable(100));
        assert!(entry(&[("ETag", "\"v1\"")]).storable(100));
        assert!(entry(&[("Last-Modified", "Tue, 15 Nov 1994 12:45:26 GMT")]).storable(100));
        assert!(!entry(&[]).storable(100), "neither freshness nor validator");
        assert!(!entry(&[("Cache-Control", "max-age=60, no-store")]).storable(100));
        assert!(!entry(&[("Cache-Control", "private, max-age=60")]).storable(100));
        assert!(!entry(&[("Cache-Control", "max-age=60"), ("Vary", "*")]).storable(100));
        assert!(!entry(&[("Cache-Control", "max-age=60")]).storable(3), "body too large");
        assert!(!Entry::new(&exchange(206, &[("Cache-Control", "max-age=60")]), &Headers::new()).storable(100));
    }

    #[test]
    fn freshness() {
        let plain = Headers::new();
        assert!(entry(&[("Cache-Control", "max-age=60")]).usable_for(&plain));
        assert!(entry(&[("Cache-Control", "max-age=0, s-maxage=60")]).usable_for(&plain));
        assert!(!entry(&[("Cache-Control", "max-age=60, s-maxage=0")]).usable_for(&plain));
        assert!(!entry(&[("Cache-Control", "max-age=0")]).usable_for(&plain));
        assert!(!entry(&[("ETag", "\"v1\"")]).usable_for(&plain), "no heuristic freshness");
        assert!(!entry(&[("Cache-Control", "max-age=60"), ("Age", "61")]).usable_for(&plain));
        assert!(!entry(&[("Cache-Control", "max-age=60, no-cache")]).usable_for(&plain));
        assert!(!entry(&[("Expires", "0")]).usable_for(&plain));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(60));
        assert!(entry(&[("Expires", &later)]).usable_for(&plain));

        let fresh = entry(&[("Cache-Control", "max-age=60"), ("Age", "10")]);
        assert_eq!(fresh.serve().1, 10);
        assert!(!fresh.usable_for(&request(&[("Cache-Control", "no-cache")])));
        assert!(!fresh.usable_for(&request(&[("Pragma", "no-cache")])));
        assert!(!fresh.usable_for(&request(&[("Cache-Control", "max-age=5")])));
        assert!(fresh.usable_for(&request(&[("Cache-Control", "max-age=20")])));
        assert!(!fresh.usable_for(&request(&[("Cache-Control", "min-fresh=55")])));
    }

    #[test]
    fn vary_selects() {
        let stored = Entry::new(
            &exchange(200, &[("Cache-Control", "max-age=60"), ("Vary", "Accept-Language")]),
            &request(&[("Accept-Language", "en")]),
        );
        assert!(stored.matches(&request(&[("accept-language", "en")])));
        assert!(!stored.matches(&request(&[("Accept-Language", "fr")])));
        assert!(!stored.matches(&Headers::new()));
    }

    #[test]
    fn freshening_replaces_fields() {
        let mut stored = entry(&[("ETag", "\"v1\""), ("Cache-Control", "max-age=0"), ("X-Kept", "1")]);
        let not_modified = exchange(304, &[("ETag", "\"v1\""), ("Cache-Control", "max-age=60"), ("Content-Length", "0")]);
        assert!(stored.validated_by(&not_modified.response));
        stored.freshen(&not_modified);
        assert!(stored.usable_for(&Headers::new()));
        let (response, _) = stored.serve();
        assert_eq!(field(&response.headers, "x-kept"), Some(&b"1"[..]));
        assert!(!has(&response.headers, "content-length"));
        assert_eq!(&response.body[..], b"body");
        assert!(!stored.validated_by(&exchange(304, &[("ETag", "\"v2\"")]).response));
        assert!(stored.validated_by(&exchange(304, &[("ETag", "W/\"v1\"")]).response));
    }

    #[test]
    fn bounded_lru() {
        let mut cache = Cache::new(2, 100);
        for key in ["a", "b"] {
            cache.put(key.into(), entry(&[("Cache-Control", "max-age=60")]));
        }
        assert!(cache.lookup("a", &Headers::new()).is_some());
        cache.put("c".into(), entry(&[("Cache-Control", "max-age=60")]));
        assert!(cache.lookup("b", &Headers::new()).is_none(), "least recently used is evicted");
        assert!(cache.lookup("a", &Headers::new()).is_some() && cache.lookup("c", &Headers::new()).is_some());
        cache.put("a".into(), entry(&[("Cache-Control", "no-store")]));
        assert!(cache.lookup("a", &Headers::new()).is_none(), "an unstorable response supersedes");
        assert_eq!(cache.entries.len(), 1);
        let mut off = Cache::new(0, 100);
        off.put("a".into(), entry(&[("Cache-Control", "max-age=60")]));
        assert!(off.lookup("a", &Headers::new()).is_none());
    }
}
