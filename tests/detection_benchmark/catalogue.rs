//! The names the simulated fleet uses: upstreams, resources, MCP servers and tools, and the
//! wordlist a scanner tries.

pub const REST_UPSTREAMS: [&str; 10] = [
    "inventory",
    "catalog",
    "orders",
    "billing",
    "search",
    "tickets",
    "users",
    "reports",
    "news",
    "crm",
];

pub const RESOURCES: [&str; 12] = [
    "items",
    "stock",
    "orders",
    "invoices",
    "customers",
    "products",
    "tickets",
    "notes",
    "jobs",
    "files",
    "articles",
    "accounts",
];

pub const SUBRESOURCES: [&str; 3] = ["history", "lines", "status"];

pub const MCP_SERVERS: [&str; 4] = ["mcp-files", "mcp-search", "mcp-github", "mcp-sql"];

pub const MCP_TOOLS: [&str; 12] = [
    "read_file",
    "write_file",
    "list_directory",
    "search_web",
    "fetch_url",
    "create_issue",
    "list_issues",
    "get_pull_request",
    "run_query",
    "describe_table",
    "send_message",
    "summarise",
];

/// Where an MCP server answers; every tool call is a POST to it.
pub const MCP_ROUTE: &str = "/mcp";

/// Where MCP tool users fetch the artifacts their tools produce.
pub const ARTIFACT_UPSTREAM: &str = "artifacts";

pub const WORDLIST: [&str; 24] = [
    "admin",
    "backup",
    "config",
    "debug",
    "internal",
    "secrets",
    "export",
    "dump",
    "env",
    "keys",
    "tokens",
    "private",
    "old",
    "test",
    "staging",
    "metrics",
    "actuator",
    "console",
    "graphql",
    "swagger",
    "api-docs",
    "server-status",
    "phpinfo",
    "wp-admin",
];
