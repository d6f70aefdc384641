//! The standard test policy: an inventory and a payroll upstream, a dead one and a slow one, and
//! agents that exercise every decision.

use std::net::SocketAddr;

use super::pki::{AgentCert, TestPki};
use super::upstream::{self, Upstream};
use super::warden::{config_yaml, start_warden, TestWarden};

/// A port nothing listens on.
pub fn dead_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

pub fn standard_policy(
    inventory: &str,
    payroll: &str,
    dead: SocketAddr,
    extra_top: &str,
) -> String {
    format!(
        r#"{extra_top}
upstreams:
  inventory:
    url: {inventory}
  payroll:
    url: {payroll}
  dead:
    url: http://{dead}
    connect_timeout: 500ms
  slow:
    url: {inventory}
    timeout: 1s
strip_request_headers: [x-internal-debug]
routes:
  - host: payroll.internal
    path_prefix: /
    upstream: payroll
  - path_prefix: /inventory
    upstream: inventory
  - path_prefix: /payroll
    upstream: payroll
  - path_prefix: /dead
    upstream: dead
  - path_prefix: /slow
    upstream: slow
roles:
  inventory-agent:
    upstreams: [inventory, dead, slow]
    allow:
      - upstream: inventory
        methods: [GET, HEAD]
        paths: ["/inventory/**"]
      - upstream: inventory
        methods: [POST]
        paths: ["/inventory/orders"]
        when:
          headers: {{ x-purpose: restock }}
          source_cidrs: [127.0.0.0/8]
      - upstream: inventory
        methods: [PUT]
        paths: ["/inventory/items/*"]
        when:
          labels: {{ env: prod }}
      - upstream: dead
        paths: ["/dead/**"]
      - upstream: slow
        paths: ["/slow"]
    deny:
      - paths: ["/inventory/admin/**"]
  payroll-agent:
    upstreams: [payroll]
    allow:
      - methods: [GET]
        paths: ["/payroll/**", "/"]
agents:
  - id: spiffe://example.org/agent/inventory-bot
    roles: [inventory-agent]
    labels: {{ env: prod }}
  - id: spiffe://example.org/agent/staging-bot
    roles: [inventory-agent]
    labels: {{ env: staging }}
  - id: spiffe://example.org/agent/payroll-bot
    roles: [payroll-agent]
  - id: spiffe://example.org/agent/limited
    roles: [inventory-agent]
    rate_limit: {{ per_second: 1, burst: 2 }}
  - id: spiffe://example.org/agent/support/*
    roles: [payroll-agent]
"#
    )
}

/// A running warden with the standard policy and its upstreams.
pub struct Standard {
    pub pki: TestPki,
    pub warden: TestWarden,
    pub inventory: Upstream,
    pub payroll: Upstream,
    /// The JSON-RPC server behind `/mcp` and `/a2a`, when started with them.
    pub mcp: Option<super::mcp::McpServer>,
}

impl Standard {
    pub async fn start() -> Self {
        Self::start_with("").await
    }

    /// `extra_top` is YAML placed before the policy (e.g. `mode: shadow`, `limits: ...`).
    pub async fn start_with(extra_top: &str) -> Self {
        let pki = TestPki::new();
        let inventory = upstream::start().await;
        let payroll = upstream::start().await;
        let policy = standard_policy(&inventory.url(), &payroll.url(), dead_addr(), extra_top);
        let warden = start_warden(&pki, &config_yaml(&pki, &policy)).await;
        Standard {
            pki,
            warden,
            inventory,
            payroll,
            mcp: None,
        }
    }

    /// The standard policy plus an MCP route (`/mcp`, role `support`, agent `support-bot`) and an
    /// A2A route (`/a2a`, role `worker`, agent `worker-a`) to a JSON-RPC test server.
    pub async fn start_with_mcp() -> Self {
        let pki = TestPki::new();
        let inventory = upstream::start().await;
        let payroll = upstream::start().await;
        let mcp = super::mcp::start().await;
        let policy = standard_policy(&inventory.url(), &payroll.url(), dead_addr(), "");
        let policy = super::mcp::with_agent_protocols(&policy, &mcp.url());
        let warden = start_warden(&pki, &config_yaml(&pki, &policy)).await;
        Standard {
            pki,
            warden,
            inventory,
            payroll,
            mcp: Some(mcp),
        }
    }

    pub fn agent(&self, name: &str) -> AgentCert {
        self.pki.agent(name)
    }

    pub fn client(&self, name: &str) -> super::client::AgentClient {
        super::client::AgentClient::new(&self.pki, &self.agent(name), self.warden.addr)
    }
}
