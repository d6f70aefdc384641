//! Request ids: unique per process and across restarts, cheap (a random prefix and a counter).

use std::sync::atomic::{AtomicU64, Ordering};

pub use crate::ids::RequestId;

#[derive(Debug)]
pub struct RequestIds {
    prefix: u64,
    counter: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestIds {
    pub fn new() -> Self {
        let mut seed = [0u8; 8];
        // Without randomness ids are still unique within this process; the time keeps them apart
        // across restarts.
        if rustls::crypto::aws_lc_rs::default_provider()
            .secure_random
            .fill(&mut seed)
            .is_err()
        {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            seed = t.to_le_bytes();
        }
        RequestIds {
            prefix: u64::from_le_bytes(seed),
            counter: AtomicU64::new(0),
        }
    }

    /// 32 hex digits.
    pub fn next(&self) -> RequestId {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        RequestId::new(self.prefix, n)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn unique_and_fixed_width() {
        let ids = super::RequestIds::new();
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
        assert_eq!(a.header().as_bytes(), a.as_str().as_bytes());
    }

    #[test]
    fn the_id_is_the_prefix_and_counter_in_hex() {
        let ids = super::RequestIds {
            prefix: 0x0123_4567_89ab_cdef,
            counter: std::sync::atomic::AtomicU64::new(0xfedc_ba98_7654_3210),
        };
        assert_eq!(
            ids.next().to_string(),
            format!(
                "{:016x}{:016x}",
                0x0123_4567_89ab_cdef_u64, 0xfedc_ba98_7654_3210_u64
            )
        );
        assert_eq!(ids.next().as_str(), "0123456789abcdeffedcba9876543211");
    }
}
