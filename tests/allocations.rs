//! Heap allocations per request, counted: a guard against the request path growing allocations
//! unnoticed. Timing lives in the benches; a count is deterministic enough to fail a build on.
//!
//! warden runs in this process on a runtime of its own; a counting global allocator counts every
//! allocation made on any thread except the test's (its client and its upstream run on a runtime
//! whose threads are marked as not counted). So warden's runtime, its upstream connections and its
//! audit writer thread are all counted, with metrics, the audit log and the anomaly engine on.
//!
//! The ceilings are the counts this build achieves plus 10%. If a change lowers the count, lower
//! the ceiling with it; if it raises it, the change must say why the allocations pay.
// A global allocator is unsafe by definition; this test binary is the one place that needs it.
#![allow(unsafe_code)]

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use support::client::AgentClient;
use support::fixture::{dead_addr, standard_policy};
use support::keepalive::KeepAlive;
use support::pki::TestPki;
use support::upstream;
use support::warden::{config_yaml, start_warden};

/// Allocations per allowed keep-alive request (`GET /inventory/items`, 200 from the upstream).
const ALLOWED_CEILING: f64 = 37.0;
/// Allocations per refused keep-alive request (`GET /payroll/salaries`, 403 `no_matching_rule`).
const REFUSED_CEILING: f64 = 26.0;

const WARM_UP: usize = 300;
const MEASURED: usize = 2_000;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the test's own threads (client, upstream, harness), whose allocations are not
    /// warden's.
    static NOT_COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn counted() -> bool {
    // During thread teardown the thread-local may be gone; count nothing then.
    NOT_COUNTED.try_with(|c| !c.get()).unwrap_or(false)
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a relaxed
// atomic and the thread-local is a `const` Cell, neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counted() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if counted() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        }
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counted() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn mark_not_counted() {
    NOT_COUNTED.with(|c| c.set(true));
}

/// Allocations and bytes allocated per request over `MEASURED` requests on one keep-alive connection, after
/// `WARM_UP` requests that fill pools, per-agent state and lazily built tables.
async fn per_request(
    conn: &mut KeepAlive,
    path: &str,
    status: u16,
    settle: impl Fn() -> std::thread::JoinHandle<()>,
) -> (f64, f64) {
    for _ in 0..WARM_UP {
        assert_eq!(conn.get(path).await.expect("request").status, status);
    }
    settle().join().unwrap();
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let bytes_before = BYTES.load(Ordering::SeqCst);
    for _ in 0..MEASURED {
        assert_eq!(conn.get(path).await.expect("request").status, status);
    }
    settle().join().unwrap();
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    let bytes_after = BYTES.load(Ordering::SeqCst);
    (
        (after - before) as f64 / MEASURED as f64,
        (bytes_after - bytes_before) as f64 / MEASURED as f64,
    )
}

#[test]
fn allocations_per_keep_alive_request_stay_under_their_ceilings() {
    mark_not_counted();
    let test_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .on_thread_start(mark_not_counted)
        .enable_all()
        .build()
        .unwrap();
    let warden_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();

    let pki = TestPki::new();
    let audit = pki.path().join("audit.jsonl");
    let inventory = test_rt.block_on(upstream::start());
    let payroll = test_rt.block_on(upstream::start());
    let policy = standard_policy(
        &inventory.url(),
        &payroll.url(),
        dead_addr(),
        &format!("telemetry:\n  audit_log: {}\n", audit.display()),
    );
    let warden = warden_rt.block_on(start_warden(&pki, &config_yaml(&pki, &policy)));

    // Lets warden finish what follows a response (record, audit queue, the writer's batch) before
    // the counter is read: a pause on a thread that is not counted.
    let settle = || {
        std::thread::spawn(|| {
            mark_not_counted();
            std::thread::sleep(Duration::from_millis(300));
        })
    };

    let client = AgentClient::new(&pki, &pki.agent("inventory-bot"), warden.addr);
    let (allowed, refused) = test_rt.block_on(async {
        let mut conn = KeepAlive::open(&client).await.expect("connect");
        let allowed = per_request(&mut conn, "/inventory/items", 200, settle).await;
        let refused = per_request(&mut conn, "/payroll/salaries", 403, settle).await;
        (allowed, refused)
    });
    let ((allowed, allowed_bytes), (refused, refused_bytes)) = (allowed, refused);
    println!("allocations per allowed request: {allowed:.2} ({allowed_bytes:.0} bytes)");
    println!("allocations per refused request: {refused:.2} ({refused_bytes:.0} bytes)");
    assert!(
        allowed <= ALLOWED_CEILING,
        "{allowed:.2} allocations per allowed request, ceiling {ALLOWED_CEILING}"
    );
    assert!(
        refused <= REFUSED_CEILING,
        "{refused:.2} allocations per refused request, ceiling {REFUSED_CEILING}"
    );
    // A count of zero would mean the counter saw nothing of warden: the guard itself is broken.
    assert!(allowed > 1.0 && refused > 1.0);
    drop(warden);
    drop(warden_rt);
}
