//! One tracker per signal. Each has a fast side updated on every request, a baseline side updated
//! only while the agent is learning or behaving (see `State::learn`), and a `strength` in [0, 1].

use super::presence::{Presence, Returns, CLONE_WINDOW_SECONDS, RETURN_HORIZON};
use super::sets::{Bloom, Recent, SmallSet};
use super::shape::mix;
use super::stats::{ramp, Decayed, EwStats, Ewma};

/// Baselines follow drift over roughly this many requests.
pub(crate) const BASE_ALPHA: f64 = 1.0 / 256.0;
/// Deviations are only judged once the baseline has this many samples.
const MIN_BASE_SAMPLES: u32 = 16;

const RATE_FAST_ALPHA: f64 = 0.15;
const RATE_MEDIUM_ALPHA: f64 = 0.08;
/// Concurrent requests have no meaningful gap; one millisecond stands for "at once".
const MIN_GAP: f64 = 0.001;
/// An idle night is not a slow rate: gaps are capped at a few usual gaps.
const GAP_CAP_FACTOR: f64 = 8.0;
const MAX_GAP: f64 = 600.0;
/// Floor of the usual spread of the rate deviation (natural log units), so a very regular agent
/// does not alarm on ordinary jitter, and a baseline from few samples is not trusted too much.
const RATE_DEV_FLOOR: f64 = 0.25;
/// A rate this many times the usual starts to count, full at `RATE_RATIO_HI`: a Poisson agent
/// with a daily swing and the odd quick batch reaches 5x over a dozen requests now and then.
const RATE_RATIO_LO: f64 = 3.5;
const RATE_RATIO_HI: f64 = 6.5;
/// How much faster than its usual quick gaps (natural log units) a rate is fully anomalous: twice
/// as fast as it goes when it hurries.
const RATE_QUICK_EXCESS: f64 = std::f64::consts::LN_2;
/// A run of quick gaps this many times its usual longest run is sustained haste, however quick
/// each gap: no signal below `RUN_LO`, full at `RUN_HI`.
const RUN_LO: f64 = 1.5;
const RUN_HI: f64 = 3.0;
/// The usual longest run fades by this share per run, so one marathon session long ago does not
/// excuse everything after it.
const RUN_FADE: f64 = 1.0 / 256.0;

/// Inter-request gaps: a fast EWMA (about a dozen requests) against the usual gap.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Rate {
    fast: Ewma,
    /// A slower view (about 25 requests): a batch of a few quick requests is a habit, a sustained
    /// burst is not.
    medium: Ewma,
    base: EwStats,
    dev: EwStats,
    /// Its usual gap when it hurries: the mean of the gaps shorter than its mean gap. An agent
    /// that works in sessions is many times faster than its mean rate in every session, so a
    /// session longer than most is not a burst unless it is also faster than its sessions.
    quick: EwStats,
    /// Quick gaps in a row now, the run that just ended (to be learned), and the usual longest
    /// run: an agent whose quick requests come in pairs is not used to forty in a row.
    run: u32,
    ended: Option<u32>,
    longest: f64,
    pending: Option<f64>,
}

impl Rate {
    pub(crate) fn observe(&mut self, gap: Option<f64>) {
        self.pending = gap.map(|g| {
            let cap = if self.base.n() >= 8 {
                (GAP_CAP_FACTOR * self.base.mean()).min(MAX_GAP)
            } else {
                MAX_GAP
            };
            g.clamp(MIN_GAP, cap.max(MIN_GAP))
        });
        self.ended = None;
        if let Some(g) = self.pending.filter(|_| self.quick.n() > 0) {
            if g < self.base.mean() {
                self.run = self.run.saturating_add(1);
            } else {
                self.ended = Some(std::mem::take(&mut self.run));
            }
        }
        if let Some(g) = self.pending {
            self.fast.update(g, RATE_FAST_ALPHA);
            self.medium.update(g, RATE_MEDIUM_ALPHA);
        }
    }

    /// How many times faster than usual, in natural log units.
    fn deviation(&self) -> Option<f64> {
        let (base, fast) = (self.base.mean(), self.fast.value());
        (self.base.n() >= MIN_BASE_SAMPLES && base > 0.0 && fast > 0.0).then(|| (base / fast).ln())
    }

    pub(crate) fn strength(&self) -> f64 {
        let Some(d) = self.deviation() else {
            return 0.0;
        };
        let z = (d - self.dev.mean()) / self.dev.sd().max(RATE_DEV_FLOOR);
        let sustained = match self.medium.value() {
            m if m > 0.0 => self.base.mean() / m,
            _ => 0.0,
        };
        let beyond_quick = match self.fast.value() {
            f if f > 0.0 && self.quick.n() > 0 => (self.quick.mean() / f).ln(),
            _ => 0.0,
        };
        let longer_run = f64::from(self.run) / self.longest.max(1.0);
        let unusual =
            ramp(beyond_quick, 0.0, RATE_QUICK_EXCESS).max(ramp(longer_run, RUN_LO, RUN_HI));
        ramp(d.exp(), RATE_RATIO_LO, RATE_RATIO_HI)
            .min(ramp(z, 2.5, 5.0))
            .min(ramp(sustained, 2.0, 3.0))
            .min(unusual)
    }

    /// The usual gap between requests, seconds, once there is a baseline.
    pub(crate) fn usual_gap(&self) -> Option<f64> {
        (self.base.n() >= MIN_BASE_SAMPLES).then(|| self.base.mean())
    }

    /// Current and usual rate, requests per second.
    pub(crate) fn rates(&self) -> (f64, f64) {
        let per_second = |gap: f64| if gap > 0.0 { 1.0 / gap } else { 0.0 };
        (per_second(self.fast.value()), per_second(self.base.mean()))
    }

    pub(crate) fn learn(&mut self) {
        let Some(gap) = self.pending else { return };
        if let Some(d) = self.deviation() {
            self.dev.update(d, BASE_ALPHA);
        }
        if gap < self.base.mean() {
            self.quick.update(gap, BASE_ALPHA);
        }
        if let Some(run) = self.ended {
            self.longest = f64::from(run).max(self.longest * (1.0 - RUN_FADE));
        }
        self.base.update(gap, BASE_ALPHA);
    }
}

const BYTES_FAST_ALPHA: f64 = 0.2;
/// The usual sizes follow drift over about this many seconds, however many requests that is: a
/// baseline that moves per request lets answers that grow a little at a time drag it up with
/// them (a busy agent makes a thousand requests in the hour a slow exfiltration takes).
const BYTES_BASE_TAU: f64 = 6.0 * 3600.0;
const BYTES_DEV_FLOOR: f64 = 0.3;
/// Recent answers this many times their usual size start to count. With sizes spread like
/// ordinary answers (a log-normal of σ 0.6), two 3σ answers from one endpoint a few requests apart
/// reach 6x; full strength stays at 8x.
const BYTES_RATIO_LO: f64 = 3.5;
const BYTE_BUCKETS: usize = 16;
/// An endpoint's own size is trusted once it has this many samples.
const MIN_BUCKET_SAMPLES: u32 = 4;

/// Response sizes of successful requests, in log space so one large download is not a spike, and
/// relative to what each endpoint usually returns (16 buckets by endpoint hash), so an agent that
/// mixes small lookups with large exports is judged by the right yardstick for each request.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BytesOut {
    buckets: [EwStats; BYTE_BUCKETS],
    overall: EwStats,
    /// Recent residuals: log size minus the endpoint's usual log size.
    fast: Ewma,
    dev: EwStats,
    pending: Option<(f64, usize)>,
    last: Option<f64>,
    /// The weight of the pending sample in the baselines: the time it stands for.
    alpha: f64,
}

impl BytesOut {
    pub(crate) fn observe(&mut self, bytes_out: Option<u64>, endpoint: u64, now: f64) {
        let bucket = (endpoint % BYTE_BUCKETS as u64) as usize;
        self.pending = bytes_out.map(|b| ((b as f64).ln_1p(), bucket));
        if let Some((x, bucket)) = self.pending {
            let since = self
                .last
                .replace(now)
                .map_or(0.0, |last| (now - last).max(0.0));
            self.alpha = (since / BYTES_BASE_TAU).min(BASE_ALPHA);
            let usual = match self.buckets[bucket] {
                b if b.n() >= MIN_BUCKET_SAMPLES => b.mean(),
                _ => self.overall.mean(),
            };
            self.fast.update(x - usual, BYTES_FAST_ALPHA);
        }
    }

    fn judged(&self) -> bool {
        self.overall.n() >= MIN_BASE_SAMPLES && self.fast.primed()
    }

    pub(crate) fn strength(&self) -> f64 {
        if !self.judged() {
            return 0.0;
        }
        let d = self.fast.value();
        let z = (d - self.dev.mean()) / self.dev.sd().max(BYTES_DEV_FLOOR);
        ramp(d.exp(), BYTES_RATIO_LO, 8.0).min(ramp(z, 3.0, 6.0))
    }

    /// Current and usual response size, bytes (the current one scaled by the recent excess over
    /// each endpoint's usual size).
    pub(crate) fn sizes(&self) -> (f64, f64) {
        let usual = self.overall.mean();
        ((usual + self.fast.value()).exp_m1(), usual.exp_m1())
    }

    pub(crate) fn learn(&mut self) {
        let Some((x, bucket)) = self.pending else {
            return;
        };
        if self.judged() {
            self.dev.update(self.fast.value(), self.alpha);
        }
        self.buckets[bucket].update(x, self.alpha);
        self.overall.update(x, self.alpha);
    }
}

/// How a share-of-requests signal turns into a strength.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShareLimits {
    /// Excess of the recent share over the usual share: no signal below `lo`, full at `hi`.
    pub(crate) lo: f64,
    pub(crate) hi: f64,
    /// Recent count (decayed with `tau` seconds): no signal below `count_lo`, full at `count_hi`.
    pub(crate) count_lo: f64,
    pub(crate) count_hi: f64,
    pub(crate) tau: f64,
    pub(crate) cap: f64,
}

const SHARE_FAST_ALPHA: f64 = 0.15;

/// The share of requests with some property (denied, failed) against its usual share. Both the
/// share and an absolute count must be high, so a lone denial after a quiet spell is not a burst.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Share {
    fast: Ewma,
    base: EwStats,
    recent: Decayed,
    last: bool,
}

impl Share {
    pub(crate) fn observe(&mut self, hit: bool, now: f64, limits: &ShareLimits) {
        self.last = hit;
        self.fast.update(f64::from(u8::from(hit)), SHARE_FAST_ALPHA);
        if hit {
            self.recent.add(now, limits.tau, 1.0);
        }
    }

    pub(crate) fn strength(&self, now: f64, limits: &ShareLimits) -> f64 {
        self.strength_against(self.base.mean(), now, limits)
    }

    /// Against another usual share: the peers', for an agent with none of its own yet.
    pub(crate) fn strength_against(&self, usual: f64, now: f64, limits: &ShareLimits) -> f64 {
        let by_share = ramp(self.fast.value() - usual, limits.lo, limits.hi);
        if by_share == 0.0 {
            return 0.0;
        }
        let count = self.recent.get(now, limits.tau);
        by_share.min(ramp(count, limits.count_lo, limits.count_hi)) * limits.cap
    }

    /// Current and usual share.
    pub(crate) fn shares(&self) -> (f64, f64) {
        (self.fast.value(), self.base.mean())
    }

    pub(crate) fn learn(&mut self) {
        self.base.update(f64::from(u8::from(self.last)), BASE_ALPHA);
    }
}

/// Hashes of one request's identity-bearing fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keys {
    pub(crate) upstream: u64,
    pub(crate) method: u64,
    pub(crate) endpoint: u64,
    pub(crate) ip: u64,
    pub(crate) serial: u64,
    /// The MCP tool called, if any.
    pub(crate) tool: Option<u64>,
    /// The object the path names (its folded ids), if any.
    pub(crate) object: Option<u64>,
    /// That object's id as a number, when it is a plain number.
    pub(crate) number: Option<u64>,
}

pub(crate) const NEW_UPSTREAM: f64 = 0.6;
pub(crate) const NEW_METHOD: f64 = 0.4;
pub(crate) const NEW_PATH_SHAPE: f64 = 0.3;
/// A thing first used this long ago and used again counts as known, seconds: the held score of
/// its first use has decayed to a few percent by then.
const SECOND_SIGHT_AFTER: f64 = 600.0;
/// Window of the distinct-new-shapes count, seconds: slow scans count too.
pub(crate) const ENUMERATION_TAU: f64 = 300.0;

/// First uses of upstreams, methods and endpoints (upstream + method + path shape).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Novelty {
    upstreams: SmallSet<16>,
    methods: SmallSet<16>,
    endpoints: Bloom,
    fast: Ewma,
    base: EwStats,
    recent: Decayed,
    distinct: Recent,
    /// Things not yet known, with when each was first seen (the oldest gives way).
    first_seen: [(u64, f64); 8],
    first_next: usize,
    pub(crate) new_upstream: bool,
    pub(crate) new_method: bool,
    pub(crate) new_endpoint: bool,
}

impl Novelty {
    /// `allowed`: the policy let the request through (only such a request makes a thing known).
    pub(crate) fn observe(&mut self, keys: &Keys, now: f64, allowed: bool) {
        self.new_upstream =
            self.upstreams.is_novel(keys.upstream) && !self.seen_again(keys.upstream, now, allowed);
        self.new_method =
            self.methods.is_novel(keys.method) && !self.seen_again(keys.method, now, allowed);
        self.new_endpoint = !self.endpoints.contains(keys.endpoint)
            && !self.seen_again(keys.endpoint, now, allowed);
        self.fast
            .update(f64::from(u8::from(self.new_endpoint)), SHARE_FAST_ALPHA);
        if self.new_endpoint && self.distinct.remember(keys.endpoint) {
            self.recent.add(now, ENUMERATION_TAU, 1.0);
        }
    }

    /// Whether a thing not yet known was first seen long enough ago to count as known now. A first
    /// use that scored high froze learning, so without this it would be a first use again on
    /// every later use, for ever; seen again once the alarm has long decayed, it is learned.
    fn seen_again(&mut self, h: u64, now: f64, allowed: bool) -> bool {
        match self.first_seen.iter().find(|(k, _)| *k == h) {
            Some(&(_, at)) => allowed && now - at >= SECOND_SIGHT_AFTER,
            None => {
                self.first_seen[self.first_next] = (h, now);
                self.first_next = (self.first_next + 1) % self.first_seen.len();
                false
            }
        }
    }

    /// Many distinct endpoints never used before, in a short time, well above the usual share.
    pub(crate) fn enumeration(&self, now: f64) -> f64 {
        let by_share = ramp(self.fast.value() - self.base.mean(), 0.2, 0.6);
        if by_share == 0.0 {
            return 0.0;
        }
        by_share.min(ramp(self.recent.get(now, ENUMERATION_TAU), 2.0, 6.0))
    }

    /// Distinct new endpoints lately, and the usual share of requests to a new endpoint.
    pub(crate) fn counts(&self, now: f64) -> (f64, f64) {
        (self.recent.get(now, ENUMERATION_TAU), self.base.mean())
    }

    /// `allowed`: only requests the policy let through teach what the agent normally uses.
    pub(crate) fn learn(&mut self, keys: &Keys, allowed: bool) {
        self.base
            .update(f64::from(u8::from(self.new_endpoint)), BASE_ALPHA);
        if allowed {
            self.learn_uses(keys);
        }
    }

    /// What the agent uses, without the shares.
    pub(crate) fn learn_uses(&mut self, keys: &Keys) {
        self.upstreams.insert(keys.upstream);
        self.methods.insert(keys.method);
        self.endpoints.insert(keys.endpoint);
    }
}

/// Decay of the flip count, seconds, at the least; for a slow agent, its clone window.
const CLONE_TAU: f64 = 30.0;
/// A stolen identity used at the agent's own pace meets the agent's stream within a few of its
/// usual gaps, not within a fixed few seconds.
const CLONE_WINDOW_GAPS: f64 = 3.0;
const MAX_CLONE_WINDOW: f64 = 300.0;
/// Flips are remembered for a few windows: a thief at the agent's own pace meets its stream only
/// now and then.
const CLONE_TAU_WINDOWS: f64 = 4.0;
/// An agent that flips this often while learning is legitimately multi-homed (replicas sharing an
/// identity, a NAT pool): for it, a flip says nothing.
const MULTI_HOMED_SHARE: f64 = 0.02;

/// Two returns to a pair left for another within about the horizon are full strength.
const RETURNS_LO: f64 = 1.0;
const RETURNS_HI: f64 = 2.0;

/// The same identity live from two source addresses or two certificates at once, or alternating
/// between them over the last hour.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CloneWatch {
    ips: Presence,
    serials: Presence,
    flips: Decayed,
    /// The flip count's decay, seconds: the window it was last counted with.
    tau: f64,
    base: EwStats,
    last: bool,
    pairs: Returns,
    returns: Decayed,
    returns_base: EwStats,
    returned: bool,
}

impl CloneWatch {
    /// `usual_gap`: the agent's usual time between requests, once known.
    pub(crate) fn observe(&mut self, keys: &Keys, now: f64, usual_gap: Option<f64>) {
        let window = usual_gap.map_or(CLONE_WINDOW_SECONDS, |g| {
            (CLONE_WINDOW_GAPS * g).clamp(CLONE_WINDOW_SECONDS, MAX_CLONE_WINDOW)
        });
        let ip_flip = self.ips.observe(keys.ip, now, window);
        let serial_flip = self.serials.observe(keys.serial, now, window);
        self.last = ip_flip || serial_flip;
        self.tau = (CLONE_TAU_WINDOWS * window).max(CLONE_TAU);
        if self.last {
            self.flips.add(now, self.tau, 1.0);
        }
        self.returned = self
            .pairs
            .observe(mix(keys.ip ^ keys.serial.rotate_left(32)), now);
        if self.returned {
            self.returns.add(now, RETURN_HORIZON, 1.0);
        }
    }

    /// An agent that flips or comes back this often while behaving is legitimately multi-homed.
    fn multi_homed(&self) -> bool {
        self.base.mean() > MULTI_HOMED_SHARE || self.returns_base.mean() > MULTI_HOMED_SHARE
    }

    pub(crate) fn strength(&self, now: f64) -> f64 {
        if self.flips.is_zero() || self.multi_homed() {
            return 0.0;
        }
        ramp(self.flips.get(now, self.tau), 1.0, 2.5)
    }

    /// Alternation: coming back to an address and certificate it had left for another, within
    /// the hour. A move never comes back.
    pub(crate) fn return_strength(&self, now: f64) -> f64 {
        if self.returns.is_zero() || self.multi_homed() {
            return 0.0;
        }
        ramp(
            self.returns.get(now, RETURN_HORIZON),
            RETURNS_LO,
            RETURNS_HI,
        )
    }

    /// Recent flips, and the usual share of requests that flip.
    pub(crate) fn counts(&self, now: f64) -> (f64, f64) {
        (self.flips.get(now, self.tau), self.base.mean())
    }

    /// Recent returns, and the usual share of requests that come back.
    pub(crate) fn return_counts(&self, now: f64) -> (f64, f64) {
        (
            self.returns.get(now, RETURN_HORIZON),
            self.returns_base.mean(),
        )
    }

    pub(crate) fn learn(&mut self) {
        self.base.update(f64::from(u8::from(self.last)), BASE_ALPHA);
        self.returns_base
            .update(f64::from(u8::from(self.returned)), BASE_ALPHA);
    }
}
