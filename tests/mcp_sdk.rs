//! Real clients and servers through warden: the official Python MCP SDK's server (MCPServer over
//! Streamable HTTP) and its client (ClientSession over streamable_http_client, mTLS through
//! httpx2), and an A2A exchange in the A2A JSON-RPC form. The Python interpreter is the one
//! `.ci/run` prepares (`WARDEN_TEST_PYTHON`, with the `mcp` package installed).

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};
use support::pki::TestPki;
use support::warden::{config_yaml, start_warden};

fn python() -> String {
    std::env::var("WARDEN_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/mcp")
        .join(name)
}

/// A child process ended when the test ends, by its own id.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_python_server(name: &str) -> Server {
    let mut child = Command::new(python())
        .arg(script(name))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the Python server");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("port line");
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no port from {name}: {line:?}"));
    Server { child, port }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the python mcp SDK (installed by .ci/run)"]
async fn the_python_mcp_sdk_through_warden() {
    let server = start_python_server("server.py");
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let policy = format!(
        r#"telemetry:
  audit_log: {dir}/audit.jsonl
upstreams:
  crm:
    url: http://127.0.0.1:{port}
    pin_tools: enforce
routes:
  - path_prefix: /mcp
    upstream: crm
    protocol: mcp
roles:
  support:
    upstreams: [crm]
    allow:
      - paths: ["/mcp"]
        mcp:
          tools: ["search_*"]
      - paths: ["/mcp"]
        mcp:
          tools: [get_customer]
          arguments: {{ region: [eu, us] }}
    deny:
      - mcp: {{ tools: ["delete_*"] }}
agents:
  - id: spiffe://example.org/agent/support-bot
    roles: [support]
  - id: spiffe://example.org/agent/other-bot
    roles: [support]
"#,
        dir = dir.path().display(),
        port = server.port,
    );
    let w = start_warden(&pki, &config_yaml(&pki, &policy)).await;
    let agent = pki.agent("support-bot");
    let thief = pki.agent("other-bot");
    let url = format!("https://127.0.0.1:{}/mcp", w.addr.port());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(script("client.py"))
            .args([&url])
            .arg(&pki.ca_path)
            .args([&agent.cert, &agent.key, &thief.cert, &thief.key])
            .output()
            .expect("run the Python client")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "client failed:\n{stdout}\n{stderr}");
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    assert_eq!(
        seen["tools"],
        json!(["get_customer", "search_customers", "search_slowly"]),
        "{seen}"
    );
    assert_eq!(seen["search"], "found customers matching acme");
    assert_eq!(seen["get_eu"], "customer 7 in eu");
    assert_eq!(seen["get_cn"], json!([-32050, "no_matching_rule"]));
    assert_eq!(seen["delete"], json!([-32050, "denied"]));
    assert_eq!(seen["slow"], "slow results for x");
    assert_eq!(seen["progress"], json!(["page 1", "page 2", "page 3"]));
    assert_eq!(seen["session_id_seen"], true);
    assert_eq!(seen["hijack"], json!([403, "session_mismatch", 99]));
    assert_eq!(seen["after_hijack"], "found customers matching after");

    w.flush_audit().await;
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let records: Vec<Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let calls: Vec<&Value> = records
        .iter()
        .filter(|r| r["rpc_method"] == "tools/call")
        .collect();
    assert!(calls
        .iter()
        .any(|r| r["rpc_target"] == "delete_customer" && r["decision"] == "deny"));
    assert!(calls
        .iter()
        .all(|r| r["args_sha256"].as_str().is_some_and(|d| d.len() == 64)));
    assert!(records
        .iter()
        .any(|r| r["rpc_method"] == "initialize" && r["decision"] == "allow"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the python a2a-sdk (installed by .ci/run)"]
async fn the_python_a2a_sdk_through_warden() {
    let server = start_python_server("../a2a/server.py");
    let pki = TestPki::new();
    let policy = format!(
        r#"upstreams:
  echo:
    url: http://127.0.0.1:{port}
routes:
  - path_prefix: /a2a
    upstream: echo
    protocol: a2a
roles:
  worker:
    upstreams: [echo]
    allow:
      - paths: ["/a2a"]
        a2a: {{ methods: [SendMessage, SendStreamingMessage, GetTask] }}
agents:
  - id: spiffe://example.org/agent/worker-a
    roles: [worker]
  - id: spiffe://example.org/agent/worker-b
    roles: [worker]
"#,
        port = server.port,
    );
    let w = start_warden(&pki, &config_yaml(&pki, &policy)).await;
    let a = support::client::AgentClient::new(&pki, &pki.agent("worker-a"), w.addr);
    let b = support::client::AgentClient::new(&pki, &pki.agent("worker-b"), w.addr);
    let headers = [("content-type", "application/json"), ("a2a-version", "1.0")];
    let send = |method: &str, id: u32| {
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": {"message": {"role": "ROLE_USER", "parts": [{"text": "hi"}], "messageId": format!("m{id}")}}}).to_string()
    };
    let get = |task: &str, id: u32| {
        json!({"jsonrpc": "2.0", "id": id, "method": "GetTask", "params": {"id": task}}).to_string()
    };

    let r = a
        .request("POST", "/a2a", &headers, &send("SendMessage", 1))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let task = r.json()["result"]["task"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = a.request("POST", "/a2a", &headers, &get(&task, 2)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["result"]["id"], task.as_str());
    let r = b.request("POST", "/a2a", &headers, &get(&task, 3)).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["data"]["reason"], "not_owner");
    assert_eq!(r.json()["id"], 3);
    let cancel = json!({"jsonrpc": "2.0", "id": 4, "method": "CancelTask", "params": {"id": task}})
        .to_string();
    let r = a.request("POST", "/a2a", &headers, &cancel).await;
    assert_eq!(r.json()["error"]["data"]["reason"], "no_matching_rule");

    // A task begun on a stream belongs to its sender as well.
    let r = b
        .request("POST", "/a2a", &headers, &send("SendStreamingMessage", 5))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let first: Value = text
        .lines()
        .find_map(|l| l.strip_prefix("data:").map(str::trim))
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_else(|| panic!("no event: {text}"));
    let streamed = first["result"]["task"]["id"]
        .as_str()
        .or_else(|| first["result"]["statusUpdate"]["taskId"].as_str())
        .unwrap_or_else(|| panic!("no task in {first}"))
        .to_string();
    assert_eq!(
        b.request("POST", "/a2a", &headers, &get(&streamed, 6))
            .await
            .status,
        200
    );
    let r = a
        .request("POST", "/a2a", &headers, &get(&streamed, 7))
        .await;
    assert_eq!(r.json()["error"]["data"]["reason"], "not_owner");
}
