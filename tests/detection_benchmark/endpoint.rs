//! One thing an agent does: an upstream, a method, a path shape, the objects it touches there and
//! how large the answers usually are.

use std::fmt::Write as _;

use super::catalogue::{MCP_ROUTE, RESOURCES, SUBRESOURCES};
use super::rng::Rng;

#[derive(Clone, Copy)]
pub enum IdKind {
    Number,
    Uuid,
    Hex,
}

impl IdKind {
    pub fn random(rng: &mut Rng) -> Self {
        match rng.below(3) {
            0 => Self::Number,
            1 => Self::Uuid,
            _ => Self::Hex,
        }
    }
}

/// Which objects an endpoint's paths name.
#[derive(Clone, Copy)]
pub enum Objects {
    /// No id in the path.
    None,
    /// Ids from a working set of this many objects, the popular ones far more often: most agents
    /// come back to the same records.
    WorkingSet { kind: IdKind, size: u64 },
    /// A new id almost every time: news, search hits, fresh tickets.
    Fresh { kind: IdKind },
}

pub struct Endpoint {
    pub upstream: &'static str,
    pub method: &'static str,
    /// The path up to the id.
    pub prefix: String,
    pub objects: Objects,
    suffix: Option<&'static str>,
    /// The MCP tool called, for tool calls.
    pub tool: Option<&'static str>,
    pub weight: f64,
    pub median_bytes: f64,
    /// Keeps the ids of different endpoints apart.
    salt: u64,
}

impl Endpoint {
    /// A REST endpoint on `upstream`: mostly reads, a resource from the catalogue, maybe an id.
    pub fn rest(rng: &mut Rng, upstream: &'static str, objects: Objects) -> Self {
        let method = match rng.below(20) {
            0..=13 => "GET",
            14..=16 => "POST",
            17..=18 => "PUT",
            _ => "DELETE",
        };
        let resource = *rng.pick(&RESOURCES);
        Self::rest_on(rng, upstream, method, resource, objects)
    }

    pub fn rest_on(
        rng: &mut Rng,
        upstream: &'static str,
        method: &'static str,
        resource: &str,
        objects: Objects,
    ) -> Self {
        let has_id = !matches!(objects, Objects::None);
        let suffix = (has_id && rng.chance(0.25)).then(|| *rng.pick(&SUBRESOURCES));
        Self {
            upstream,
            method,
            prefix: format!("/{upstream}/{resource}"),
            objects,
            suffix,
            tool: None,
            weight: rng.log_uniform(1.0, 10.0),
            median_bytes: rng.log_uniform(200.0, 50_000.0),
            salt: rng.next(),
        }
    }

    /// A tool call: JSON-RPC over POST to the server's MCP route, whatever the tool.
    pub fn mcp(rng: &mut Rng, server: &'static str, tool: &'static str) -> Self {
        Self {
            upstream: server,
            method: "POST",
            prefix: MCP_ROUTE.to_owned(),
            objects: Objects::None,
            suffix: None,
            tool: Some(tool),
            weight: rng.log_uniform(1.0, 10.0),
            median_bytes: rng.log_uniform(300.0, 20_000.0),
            salt: rng.next(),
        }
    }

    pub fn has_ids(&self) -> bool {
        !matches!(self.objects, Objects::None)
    }

    /// An object this endpoint's owner would ordinarily touch.
    pub fn usual_object(&self, rng: &mut Rng) -> u64 {
        match self.objects {
            Objects::None => 0,
            // Log-uniform over the working set: object 1 is read far more often than object 900.
            Objects::WorkingSet { size, .. } => (size as f64).powf(rng.unit()) as u64,
            Objects::Fresh { .. } => rng.next() >> 16,
        }
    }

    /// The `k`-th object its owner has never touched (a scraper walking the id space).
    pub fn unseen_object(&self, k: u64) -> u64 {
        match self.objects {
            Objects::WorkingSet { size, .. } => size + 1 + k,
            Objects::None | Objects::Fresh { .. } => (1 << 50) + k,
        }
    }

    pub fn write_path(&self, object: u64, out: &mut String) {
        out.clear();
        out.push_str(&self.prefix);
        let kind = match self.objects {
            Objects::None => return,
            Objects::WorkingSet { kind, .. } | Objects::Fresh { kind } => kind,
        };
        let (a, b) = (
            mix(self.salt ^ object),
            mix(self.salt.rotate_left(17) ^ object),
        );
        let _ = match kind {
            IdKind::Number => write!(out, "/{}", self.salt % 1_000_000 + object),
            IdKind::Uuid => write!(
                out,
                "/{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0xffff,
                b >> 48,
                b & 0xffff_ffff_ffff
            ),
            IdKind::Hex => write!(out, "/{a:016x}{:08x}", b >> 32),
        };
        if let Some(s) = self.suffix {
            out.push('/');
            out.push_str(s);
        }
    }

    /// A response size around the endpoint's usual one.
    pub fn usual_bytes(&self, rng: &mut Rng) -> f64 {
        self.median_bytes * (0.6 * rng.normal()).exp()
    }
}

/// splitmix64's finaliser: the same object always gets the same id.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
