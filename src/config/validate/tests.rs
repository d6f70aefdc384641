use std::io::Write;

use super::*;

/// A directory of PEM files and configs for one test.
struct Fixture {
    dir: tempfile::TempDir,
}

/// Lines 1-12 of every test config; a test's own lines start at line 13.
const HEADER: &str = "\
listen: 127.0.0.1:8443
tls:
  cert: D/server.pem
  key: D/server-key.pem
  client_ca: D/ca.pem
identity:
  trust_domain: example.org
upstreams:
  inventory:
    url: http://127.0.0.1:9001
  payroll:
    url: https://payroll.internal:8443
";

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, data: &[u8]| std::fs::write(dir.path().join(name), data).unwrap();
        let server = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        write("server.pem", server.cert.pem().as_bytes());
        write(
            "server-key.pem",
            server.signing_key.serialize_pem().as_bytes(),
        );
        let other = rcgen::KeyPair::generate().unwrap();
        write("other-key.pem", other.serialize_pem().as_bytes());
        write("token-pub.pem", other.public_key_pem().as_bytes());
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        write("p384-pub.pem", p384.public_key_pem().as_bytes());
        let p521 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
        write("p521-pub.pem", p521.public_key_pem().as_bytes());
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        write("ed-pub.pem", ed.public_key_pem().as_bytes());
        write("jwks.json", br#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#);
        write("admin.token", b"s3cret\n");
        write("blank.token", b"  \n");
        write("garbage.pem", b"not a certificate\n");
        let (ca_pem, crl_pem, crl_der) = ca_and_crl();
        write("ca.pem", ca_pem.as_bytes());
        write("crl.pem", crl_pem.as_bytes());
        write("crl.der", &crl_der);
        Fixture { dir }
    }

    fn d(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// Writes `yaml` (with `D/` standing for the fixture directory) and loads it.
    fn load(&self, yaml: &str) -> LoadedConfig {
        let path = self.dir.path().join("warden.yaml");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(yaml.replace("D/", &format!("{}/", self.d())).as_bytes())
            .unwrap();
        match load(&path) {
            Ok(cfg) => cfg,
            Err(e) => panic!("does not load: {e:?}"),
        }
    }

    fn errors(&self, yaml: &str) -> Vec<ConfigError> {
        validate(&self.load(yaml))
    }

    /// The header plus `tail`, which must give exactly one error.
    fn one_error(&self, tail: &str) -> ConfigError {
        let errors = self.errors(&format!("{HEADER}{tail}"));
        assert_eq!(errors.len(), 1, "{errors:#?}");
        errors.into_iter().next().unwrap()
    }
}

fn ca_and_crl() -> (String, String, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let issuer = rcgen::Issuer::new(params, key);
    let now = time::OffsetDateTime::now_utc();
    let crl = rcgen::CertificateRevocationListParams {
        this_update: now - time::Duration::days(1),
        next_update: now + time::Duration::days(1),
        crl_number: rcgen::SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: Vec::new(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&issuer)
    .unwrap();
    (cert.pem(), crl.pem().unwrap(), crl.der().to_vec())
}

#[track_caller]
fn assert_at(e: &ConfigError, key_path: &str, line: usize, col: usize, needle: &str) {
    assert_eq!(e.key_path, key_path, "{e}");
    assert_eq!((e.line, e.col), (line, col), "{e}");
    assert!(e.message.contains(needle), "{e}");
}

const REALISTIC: &str = "\
listen: 127.0.0.1:8443
tls:
  cert: D/server.pem
  key: D/server-key.pem
  client_ca: D/ca.pem
  crl: [D/crl.pem, D/crl.der]
  kx_groups: [x25519mlkem768, x25519]
admin:
  listen: 0.0.0.0:9901
  token_file: D/admin.token
identity:
  trust_domain: example.org
  token:
    audience: warden
    issuers:
      - name: agent-auth
        keys: D/token-pub.pem
      - name: other
        jwks: D/jwks.json
    leeway: 30s
mode: enforce
limits:
  max_connections: 10000
  header_read_timeout: 10s
  max_request_header_bytes: 16KiB
  max_request_body_bytes: 10MiB
upstreams:
  inventory:
    url: http://127.0.0.1:9001
  payroll:
    url: https://payroll.internal:8443
    tls: { ca: D/ca.pem, cert: D/server.pem, key: D/server-key.pem }
    connect_timeout: 2s
strip_request_headers: [x-internal-debug]
routes:
  - host: inventory.internal
    path_prefix: /inventory
    upstream: inventory
  - path_prefix: /payroll
    upstream: payroll
roles:
  inventory-agent:
    upstreams: [inventory]
    require_token: true
    allow:
      - upstream: inventory
        methods: [GET, HEAD]
        paths: [\"/inventory/**\"]
      - methods: [POST]
        paths: [\"/inventory/orders\", \"/inventory/*/items/\"]
        when:
          source_cidrs: [10.0.0.0/8, 127.0.0.1, \"::1\"]
          hours_utc: \"22:00-06:00\"
          weekdays: [mon, tue, wed, thu, fri]
          headers: { x-purpose: restock }
          labels: { env: prod }
    deny:
      - paths: [\"/inventory/admin/**\"]
  support-agent:
    upstreams: [inventory, payroll]
    allow:
      - methods: [GET]
agents:
  - id: spiffe://example.org/agent/inventory-bot
    roles: [inventory-agent]
    labels: { team: supply, env: prod }
    rate_limit: { per_second: 50, burst: 100 }
  - id: spiffe://example.org/agent/support/*
    roles: [support-agent]
  - id: spiffe://example.org/fleet/**
    roles: [support-agent]
telemetry:
  audit_log: logs/audit.jsonl
  max_agent_series: 5000
anomaly:
  enabled: true
  learning_period: 1h
  threshold: 0.8
  action: quarantine
  quarantine_for: 15m
";

#[test]
fn a_realistic_config_has_no_error() {
    let fx = Fixture::new();
    let cfg = fx.load(REALISTIC);
    assert_eq!(validate(&cfg), Vec::new());
    let s = summary(&cfg);
    for part in [
        "valid",
        "127.0.0.1:8443",
        "enforce mode",
        "2 upstreams",
        "2 routes",
        "2 roles with 4 rules",
        "3 agent entries (1 exact id, 2 patterns)",
        "token second factor: required for 1 role",
        "audit log: logs/audit.jsonl",
        "anomaly action: quarantine above 0.8",
    ] {
        assert!(s.contains(part), "{part:?} not in {s}");
    }
}

#[test]
fn load_and_validate_returns_every_error_in_file_order() {
    let fx = Fixture::new();
    let path = fx.dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "listen: nowhere\nlimits:\n  max_connections: 0\nagents:\n  - id: spiffe://other.org/a\n",
    )
    .unwrap();
    let errors = load_and_validate(&path).unwrap_err();
    let found: Vec<(&str, usize, usize)> = errors
        .iter()
        .map(|e| (e.key_path.as_str(), e.line, e.col))
        .collect();
    // No trust domain: the agent id cannot be judged, and is not.
    assert_eq!(
        found,
        [
            ("tls", 1, 1),
            ("identity.trust_domain", 1, 1),
            ("listen", 1, 9),
            ("limits.max_connections", 3, 20),
        ]
    );
}

#[test]
fn header_alone_is_valid() {
    let fx = Fixture::new();
    assert_eq!(fx.errors(HEADER), Vec::new());
}

#[test]
fn listen_must_be_a_socket_address() {
    let fx = Fixture::new();
    let errors = fx.errors(&HEADER.replace("127.0.0.1:8443", "localhost"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_at(&errors[0], "listen", 1, 9, "not a socket address");
}

#[test]
fn admin_on_a_public_address_needs_a_token() {
    let fx = Fixture::new();
    let e = fx.one_error("admin:\n  listen: 0.0.0.0:9901\n");
    assert_at(
        &e,
        "admin.listen",
        14,
        11,
        "non-loopback address 0.0.0.0:9901 needs admin.token_file",
    );
    let e = fx.one_error("admin:\n  listen: 127.0.0.1:9901\n  token_file: D/blank.token\n");
    assert_at(&e, "admin.token_file", 15, 15, "is empty");
    let e = fx.one_error("admin:\n  listen: 127.0.0.1:8443\n");
    assert_at(&e, "admin.listen", 14, 11, "must not share");
    assert!(fx
        .errors(&format!("{HEADER}admin:\n  listen: \"[::1]:9901\"\n"))
        .is_empty());
}

#[test]
fn tls_files_must_be_readable_and_match() {
    let fx = Fixture::new();
    let errors = fx.errors(&HEADER.replace("server-key.pem", "other-key.pem"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    let col = "  key: ".len() + 1;
    assert_at(
        &errors[0],
        "tls.key",
        4,
        col,
        "does not match the certificate's public key",
    );

    let errors = fx.errors(&HEADER.replace("D/server.pem", "D/missing.pem"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_at(&errors[0], "tls.cert", 3, 9, "cannot read");

    let errors = fx.errors(&HEADER.replace("D/ca.pem", "D/garbage.pem"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_at(&errors[0], "tls.client_ca", 5, 14, "no PEM CERTIFICATE");
}

#[test]
fn crls_are_pem_or_der() {
    let fx = Fixture::new();
    let yaml = HEADER.replace(
        "  client_ca: D/ca.pem\n",
        "  client_ca: D/ca.pem\n  crl: [D/crl.pem, D/crl.der, D/garbage.pem]\n",
    );
    let errors = fx.errors(&yaml);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].key_path, "tls.crl[2]");
    assert!(
        errors[0].message.contains("not a valid CRL"),
        "{}",
        errors[0]
    );
}

#[test]
fn kx_groups_must_be_known() {
    let fx = Fixture::new();
    let yaml = HEADER.replace(
        "  client_ca: D/ca.pem\n",
        "  client_ca: D/ca.pem\n  kx_groups: [x25519, x25591]\n",
    );
    let errors = fx.errors(&yaml);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_at(
        &errors[0],
        "tls.kx_groups[1]",
        6,
        23,
        "did you mean \"x25519\"?",
    );
}

#[test]
fn upstream_urls_are_scheme_and_authority_only() {
    let fx = Fixture::new();
    for (url, needle) in [
        ("http://h:1/api", "must not have a path"),
        ("http://h:1/?a=b", "must not have a query"),
        ("ftp://h", "not http or https"),
        ("http://user:pw@h", "credentials"),
        ("h:80", "needs a scheme"),
    ] {
        let e = fx.one_error(&format!("  extra:\n    url: {url}\n"));
        assert_at(&e, "upstreams.extra.url", 14, 10, needle);
    }
    let e = fx.one_error("  extra:\n    url: http://h\n    tls: { ca: D/ca.pem }\n");
    assert_at(&e, "upstreams.extra.tls", 15, 5, "need an https:// url");
    let e = fx.one_error("  extra:\n    url: https://h\n    tls:\n      cert: D/server.pem\n");
    assert_at(&e, "upstreams.extra.tls.cert", 16, 13, "needs its key");
    let e = fx.one_error("  extra:\n    url: https://h\n    timeout: 0s\n");
    assert_at(&e, "upstreams.extra.timeout", 15, 14, "longer than 0");
    let e = fx.one_error("  extra:\n    url: http://h\n    max_connections: 0\n");
    assert_at(&e, "upstreams.extra.max_connections", 15, 22, "at least 1");
    let e = fx.one_error("  extra:\n    url: http://h\n    idle_timeout: 0s\n");
    assert_at(&e, "upstreams.extra.idle_timeout", 15, 19, "longer than 0");
}

#[test]
fn http2_upstreams_and_https_without_a_ca_are_valid() {
    let fx = Fixture::new();
    let tail = concat!(
        "  grpc:\n",
        "    url: http://127.0.0.1:50051\n",
        "    http2: true\n",
        "    max_connections: 4\n",
        "    idle_timeout: 90s\n",
        "  grpc-tls:\n",
        "    url: https://grpc.internal:8443\n",
        "    http2: true\n",
        "  public:\n",
        "    url: https://api.example.com\n",
        "    tls: { server_name: api.example.com }\n",
        "  search:\n",
        "    url: http://127.0.0.1:9200\n",
        "    bodies_on_get: true\n",
    );
    let errors = fx.errors(&format!("{HEADER}{tail}"));
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn routes_name_defined_upstreams() {
    let fx = Fixture::new();
    let e = fx.one_error("routes:\n  - upstream: inventroy\n");
    assert_at(
        &e,
        "routes[0].upstream",
        14,
        15,
        "unknown upstream \"inventroy\"; did you mean \"inventory\"?",
    );
    let e = fx.one_error("routes:\n  - upstream: weather\n");
    assert_eq!(e.message, "unknown upstream \"weather\"");
}

#[test]
fn route_prefix_and_host_shapes() {
    let fx = Fixture::new();
    let e = fx.one_error("routes:\n  - path_prefix: inventory\n    upstream: inventory\n");
    assert_at(&e, "routes[0].path_prefix", 14, 18, "must start with /");
    let e = fx.one_error("routes:\n  - path_prefix: /a/../b\n    upstream: inventory\n");
    assert_at(&e, "routes[0].path_prefix", 14, 18, "`..` segment");
    for (host, needle) in [
        ("inventory.internal:8080", "without port"),
        ("https://inventory.internal", "without scheme"),
        ("Inventory.internal", "lower case"),
        ("bad_host-.x", "not a valid host name"),
    ] {
        let e = fx.one_error(&format!(
            "routes:\n  - host: {host}\n    upstream: inventory\n"
        ));
        assert_at(&e, "routes[0].host", 14, 11, needle);
    }
}

#[test]
fn a_shadowed_route_is_refused() {
    let fx = Fixture::new();
    let tail = "\
routes:
  - host: a.internal
    path_prefix: /x
    upstream: inventory
  - host: a.internal
    path_prefix: /x/
    upstream: payroll
  - host: b.internal
    upstream: payroll
";
    let e = fx.one_error(tail);
    assert_at(&e, "routes[1]", 17, 5, "routes[0] comes first");
    let e = fx.one_error("routes:\n  - upstream: inventory\n  - host: a.b\n    path_prefix: /p\n    upstream: payroll\n");
    assert_at(&e, "routes[1]", 15, 5, "routes[0] comes first");
}

#[test]
fn role_upstreams_must_be_defined() {
    let fx = Fixture::new();
    let e = fx.one_error("roles:\n  r:\n    upstreams: [inventory, payrol]\n");
    assert_at(
        &e,
        "roles.r.upstreams[1]",
        15,
        28,
        "unknown upstream \"payrol\"; did you mean \"payroll\"?",
    );
}

#[test]
fn a_rule_upstream_must_be_inside_its_role() {
    let fx = Fixture::new();
    let tail = "\
roles:
  inventory-agent:
    upstreams: [inventory]
    allow:
      - upstream: payroll
";
    let e = fx.one_error(tail);
    assert_at(
        &e,
        "roles.inventory-agent.allow[0].upstream",
        17,
        19,
        "rule's upstream \"payroll\" is outside role \"inventory-agent\"'s upstreams [inventory]",
    );
    let e = fx.one_error(&tail.replace("payroll", "inventroy"));
    assert!(e.message.contains("did you mean \"inventory\"?"), "{e}");
}

#[test]
fn allow_rules_need_role_upstreams() {
    let fx = Fixture::new();
    let e = fx.one_error("roles:\n  lonely:\n    allow:\n      - methods: [GET]\n");
    assert_at(&e, "roles.lonely.upstreams", 14, 3, "no upstreams");
    // Deny-only roles and multi-upstream rules without `upstream` are fine.
    let ok = "roles:\n  d:\n    deny:\n      - paths: [/x]\n  m:\n    upstreams: [inventory, payroll]\n    allow:\n      - paths: [/y]\n";
    assert_eq!(fx.errors(&format!("{HEADER}{ok}")), Vec::new());
}

#[test]
fn methods_must_be_tokens() {
    let fx = Fixture::new();
    let e = fx.one_error(
        "roles:\n  r:\n    upstreams: [inventory]\n    allow:\n      - methods: [GET, \"GE T\"]\n",
    );
    assert_at(
        &e,
        "roles.r.allow[0].methods[1]",
        17,
        24,
        "\"GE T\" is not an HTTP method",
    );
}

#[test]
fn methods_must_be_upper_case() {
    let fx = Fixture::new();
    let e = fx.one_error(
        "roles:\n  r:\n    upstreams: [inventory]\n    deny:\n      - methods: [GET, delete]\n",
    );
    assert_at(
        &e,
        "roles.r.deny[0].methods[1]",
        17,
        24,
        "methods are upper case: write \"DELETE\"",
    );
}

#[test]
fn path_patterns() {
    for (pattern, needle) in [
        ("a/b", "must start with /"),
        ("/a*b", "whole segment (found `a*b`)"),
        ("/a/**x", "whole segment"),
        ("/a/../b", "`..` segment"),
        ("/./b", "`.` segment"),
        ("/a//b", "empty segment"),
        ("/%7Euser", "where it reads `~user`"),
        ("/a%2Fb", "never matches: a request holding it is refused"),
        ("/a%zz", "never matches: a request holding it is refused"),
        ("/a?b=c", "`?`"),
        (
            "/users/{id}",
            "where it reads `%7Bid%7D` (for a variable segment write `*`)",
        ),
        ("/a|b", "where it reads `a%7Cb`"),
        ("/caf%c3%a9", "where it reads `caf%C3%A9`"),
        ("/a;b", "never matches"),
        ("/a\\b", "never matches"),
        ("/x#frag", "never matches"),
    ] {
        let e = policy::pattern_problem(pattern).unwrap_err();
        assert!(e.contains(needle), "{pattern}: {e}");
    }
    for ok in ["/", "/a/*/b", "/a/**", "/**/x", "/a/", "/caf%C3%A9"] {
        assert_eq!(policy::pattern_problem(ok), Ok(()), "{ok}");
    }
    let fx = Fixture::new();
    let e = fx.one_error(
        "roles:\n  r:\n    upstreams: [inventory]\n    deny:\n      - paths: [\"/ok\", \"/a*b\"]\n",
    );
    assert_at(
        &e,
        "roles.r.deny[0].paths[1]",
        17,
        24,
        "`*` and `**` must be a whole segment",
    );
}

#[test]
fn when_conditions() {
    let fx = Fixture::new();
    let tail = "\
roles:
  r:
    upstreams: [inventory]
    allow:
      - when:
          source_cidrs: [10.0.0.0/8, 10.0.0.1/8, nope]
          hours_utc: \"25:00-06:00\"
          weekdays: [mon, tues]
          headers: { \"bad header\": x }
";
    let errors = fx.errors(&format!("{HEADER}{tail}"));
    let found: Vec<(&str, usize, usize)> = errors
        .iter()
        .map(|e| (e.key_path.as_str(), e.line, e.col))
        .collect();
    let base = "roles.r.allow[0].when";
    assert_eq!(
        found,
        [
            (&*format!("{base}.source_cidrs[1]"), 18, 38),
            (&*format!("{base}.source_cidrs[2]"), 18, 50),
            (&*format!("{base}.hours_utc"), 19, 22),
            (&*format!("{base}.weekdays[1]"), 20, 27),
            (&*format!("{base}.headers.bad header"), 21, 36),
        ],
        "{errors:#?}"
    );
    assert!(errors[0].message.contains("did you mean \"10.0.0.0/8\"?"));
    assert!(errors[3].message.contains("did you mean \"tue\"?"));
}

#[test]
fn hours_windows() {
    assert_eq!(parse_hours("06:00-20:00"), Ok((360, 1200)));
    assert_eq!(parse_hours("22:00-06:00"), Ok((1320, 360)));
    assert_eq!(parse_hours("00:00-24:00"), Ok((0, 1440)));
    for bad in [
        "6:00-20:00",
        "06:00",
        "06:60-07:00",
        "24:00-01:00",
        "08:00-08:00",
        "ab:cd-ef:gh",
    ] {
        assert!(parse_hours(bad).is_err(), "{bad}");
    }
}

#[test]
fn agents() {
    let fx = Fixture::new();
    let roles = "roles:\n  reader:\n    upstreams: [inventory]\n";
    let one = |agent: &str| {
        fx.one_error(&format!(
            "{roles}agents:\n  - id: {agent}\n    roles: [reader]\n"
        ))
    };
    for (id, needle) in [
        (
            "spiffe://other.org/a",
            "outside the trust domain \"example.org\"",
        ),
        (
            "spiffe://example.org/",
            "is not a SPIFFE ID: a path segment is empty",
        ),
        ("spiffe://example.org/a/**/b", "only as the last segment"),
        (
            "spiffe://example.org/a*",
            "a wildcard segment must be exactly",
        ),
        ("spiffe://example.org/a//b", "a path segment is empty"),
        ("spiffe://example.org/a/../b", "is `.` or `..`"),
        ("SPIFFE://example.org/a", "is not a SPIFFE ID"),
        ("spiffe://Example.org/a", "is not a SPIFFE ID"),
        ("spiffe://example.org/a%2Fb", "is not a SPIFFE ID"),
    ] {
        let e = one(id);
        assert_at(&e, "agents[0].id", 17, 9, needle);
    }
    let e = fx.one_error(&format!(
        "{roles}agents:\n  - id: spiffe://example.org/a\n    roles: [raeder]\n"
    ));
    assert_at(
        &e,
        "agents[0].roles[0]",
        18,
        13,
        "unknown role \"raeder\"; did you mean \"reader\"?",
    );
    let e = fx.one_error(&format!(
        "{roles}agents:\n  - id: spiffe://example.org/a/*\n  - id: spiffe://example.org/b\n  - id: spiffe://example.org/a/*\n"
    ));
    assert_at(&e, "agents[2].id", 19, 9, "overlapping duplicate agent ids");
    let e = fx.one_error(&format!(
        "{roles}agents:\n  - id: spiffe://example.org/a\n    rate_limit: {{ per_second: 0, burst: 1 }}\n"
    ));
    assert_at(&e, "agents[0].rate_limit.per_second", 18, 31, "above 0");
    let e = fx.one_error(&format!(
        "{roles}agents:\n  - id: spiffe://example.org/a\n    rate_limit: {{ per_second: 1, burst: 0 }}\n"
    ));
    assert_at(&e, "agents[0].rate_limit.burst", 18, 41, "at least 1");
}

#[test]
fn trust_domain_shape() {
    let fx = Fixture::new();
    let errors = fx.errors(&HEADER.replace("example.org", "spiffe://example.org"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_at(&errors[0], "identity.trust_domain", 7, 17, "without scheme");
}

#[test]
fn token_settings() {
    let fx = Fixture::new();
    let e = fx.one_error("roles:\n  r:\n    require_token: true\n");
    assert_at(&e, "roles.r.require_token", 15, 20, "needs identity.token");
    let yaml = HEADER.replace(
        "  trust_domain: example.org\n",
        "  trust_domain: example.org\n  token:\n    audience: \"\"\n    issuers:\n      - name: a\n        keys: D/token-pub.pem\n        jwks: D/jwks.json\n      - name: a\n      - name: c\n        keys: D/server.pem\n",
    );
    let errors = fx.errors(&yaml);
    let found: Vec<(&str, usize, usize)> = errors
        .iter()
        .map(|e| (e.key_path.as_str(), e.line, e.col))
        .collect();
    assert_eq!(
        found,
        [
            ("identity.token.audience", 9, 15),
            ("identity.token.issuers[0].jwks", 13, 15),
            ("identity.token.issuers[1]", 14, 9),
            ("identity.token.issuers[1].name", 14, 15),
            ("identity.token.issuers[2].keys", 16, 15),
        ],
        "{errors:#?}"
    );
    assert!(
        errors[4].message.contains("no PEM PUBLIC KEY"),
        "{}",
        errors[4]
    );
    let keys = |file: &str| {
        HEADER.replace(
            "  trust_domain: example.org\n",
            &format!("  trust_domain: example.org\n  token:\n    audience: w\n    issuers:\n      - name: a\n        keys: D/{file}\n"),
        )
    };
    assert_eq!(fx.errors(&keys("ed-pub.pem")), Vec::new());
    assert_eq!(fx.errors(&keys("p384-pub.pem")), Vec::new());
    let errors = fx.errors(&keys("p521-pub.pem"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_at(
        &errors[0],
        "identity.token.issuers[0].keys",
        12,
        15,
        "P-256 (ES256) or P-384 (ES384)",
    );
    let remote = |rest: &str| {
        HEADER.replace(
            "  trust_domain: example.org\n",
            &format!("  trust_domain: example.org\n  token:\n    audience: w\n    issuers:\n      - name: a\n{rest}"),
        )
    };
    assert_eq!(
        fx.errors(&remote("        jwks_url: https://idp.example/jwks\n        jwks_ca: D/ca.pem\n        jwks_refresh: 1m\n")),
        Vec::new()
    );
    let errors = fx.errors(&remote("        jwks_url: http://idp.example/jwks\n"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_at(
        &errors[0],
        "identity.token.issuers[0].jwks_url",
        12,
        19,
        "must be an https:// URL",
    );
    let errors = fx.errors(&remote(
        "        jwks_url: https://idp.example/jwks\n        jwks_ca: D/garbage.pem\n",
    ));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_at(&errors[0], "identity.token.issuers[0].jwks_ca", 13, 18, "");
    let errors = fx.errors(&remote(
        "        keys: D/ed-pub.pem\n        jwks_ca: D/ca.pem\n        jwks_refresh: 10ms\n",
    ));
    let found: Vec<&str> = errors.iter().map(|e| e.key_path.as_str()).collect();
    assert_eq!(
        found,
        [
            "identity.token.issuers[0].jwks_ca",
            "identity.token.issuers[0].jwks_refresh",
            "identity.token.issuers[0].jwks_refresh"
        ],
        "{errors:#?}"
    );
    let empty = HEADER.replace(
        "  trust_domain: example.org\n",
        "  trust_domain: example.org\n  token:\n    audience: w\n",
    );
    let errors = fx.errors(&empty);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_at(
        &errors[0],
        "identity.token.issuers",
        8,
        3,
        "at least one issuer",
    );
}

#[test]
fn limits_telemetry_and_anomaly() {
    let fx = Fixture::new();
    let e = fx.one_error("limits:\n  max_request_header_bytes: 4KiB\n");
    assert_at(
        &e,
        "limits.max_request_header_bytes",
        14,
        29,
        "at least 8KiB, the smallest read buffer hyper accepts (found 4096 bytes)",
    );
    let e = fx.one_error("limits:\n  idle_timeout: 0s\n");
    assert_at(&e, "limits.idle_timeout", 14, 17, "longer than 0");
    let e = fx.one_error("telemetry:\n  max_agent_series: 0\n");
    assert_at(&e, "telemetry.max_agent_series", 14, 21, "at least 1");
    for bad in ["0", "1.5", "-0.1", ".nan"] {
        let e = fx.one_error(&format!("anomaly:\n  threshold: {bad}\n"));
        assert_at(&e, "anomaly.threshold", 14, 14, "(0, 1]");
    }
    let e = fx.one_error("anomaly:\n  learning_period: 0ms\n");
    assert_at(&e, "anomaly.learning_period", 14, 20, "longer than 0");
}

#[test]
fn strip_headers_are_header_names() {
    let fx = Fixture::new();
    let e = fx.one_error("strip_request_headers: [x-ok, \"x bad\"]\n");
    assert_at(
        &e,
        "strip_request_headers[1]",
        13,
        31,
        "not a valid header name",
    );
}

mod protocol;

#[test]
fn a_cluster_binding_ttl_under_a_second_is_refused() {
    let fx = Fixture::new();
    let cluster = "cluster:\n  redis: redis://127.0.0.1:6379\n  binding_ttl: ";
    assert_eq!(fx.errors(&format!("{HEADER}{cluster}7d\n")), Vec::new());
    let e = fx.one_error(&format!("{cluster}500ms\n"));
    assert_at(&e, "cluster.binding_ttl", 15, 16, "at least 1s");
}

#[test]
fn workers_must_be_at_least_one_and_not_absurd() {
    let fx = Fixture::new();
    assert_eq!(fx.errors(&format!("{HEADER}workers: 4\n")), Vec::new());
    for n in ["0", "100000"] {
        let e = fx.one_error(&format!("workers: {n}\n"));
        assert_at(&e, "workers", 13, 10, "write `auto`");
    }
}
