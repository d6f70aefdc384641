//! One JSON-RPC 2.0 message, read exactly (SPEC section 7): a single object, never a batch, with a
//! string `method` (a request or notification) or an `id` and a `result` or `error` (a response
//! to the server's own request). Then what it asks for, as MCP or A2A reads it.

use super::canonical::{sha256_hex, write_string};
use super::json::{parse, Json, JsonError};
use super::Protocol;

/// Why a body is not one JSON-RPC message warden can judge (400 `bad_request`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Json(#[from] JsonError),
    #[error("a JSON-RPC batch (array): send one message per request")]
    Batch,
    #[error("the body is {0}, not a JSON-RPC object")]
    NotObject(&'static str),
    #[error("`jsonrpc` must be \"2.0\"")]
    Version,
    #[error("`method` must be a string")]
    MethodNotString,
    #[error("a request without a string `method`")]
    NoMethod,
    #[error("`id` must be a string, a number or null")]
    BadId,
    #[error("{0}")]
    Params(String),
}

/// What kind of JSON-RPC message it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Request,
    Notification,
    /// An answer to a request the server sent (sampling, elicitation, roots).
    Response,
}

/// The `*/list` results warden filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
    ResourceTemplates,
}

impl ListKind {
    /// The member of the result holding the entries.
    pub fn result_key(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources => "resources",
            ListKind::ResourceTemplates => "resourceTemplates",
        }
    }

    /// The member of an entry the rules judge.
    pub fn entry_key(self) -> &'static str {
        match self {
            ListKind::Tools | ListKind::Prompts => "name",
            ListKind::Resources => "uri",
            ListKind::ResourceTemplates => "uriTemplate",
        }
    }

    pub const ALL: [ListKind; 4] = [
        ListKind::Tools,
        ListKind::Prompts,
        ListKind::Resources,
        ListKind::ResourceTemplates,
    ];
}

/// What a message asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Call<'a> {
    /// MCP `tools/call`.
    Tool {
        name: &'a str,
        arguments: Option<&'a Json<'a>>,
    },
    /// MCP `resources/read`.
    Resource { uri: &'a str },
    /// MCP `prompts/get`.
    Prompt { name: &'a str },
    /// An MCP `*/list` request: passes, its result is filtered.
    List(ListKind),
    /// Session plumbing: `initialize`, `ping`, notifications, responses.
    Plumbing,
    /// Any other request, judged by its method name (MCP `mcp.methods`, A2A `a2a.methods`).
    Method,
    /// A2A `message/send` or `message/stream` (a new task, or `task` continued).
    Send { task: Option<&'a str> },
    /// An A2A method on an existing task.
    OnTask { task: &'a str },
}

/// One message as read: its shape, method, id and what it asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Message<'a> {
    pub protocol: Protocol,
    pub shape: Shape,
    /// Empty for a response.
    pub method: &'a str,
    /// The id as JSON text (`7`, `"abc"`, `null`), if it has one.
    pub id: Option<String>,
    pub call: Call<'a>,
    pub params: Option<&'a Json<'a>>,
}

/// Parses `bytes` as one JSON value, strictly.
pub fn read(bytes: &[u8]) -> Result<Json<'_>, ReadError> {
    let tree = parse(bytes)?;
    match &tree {
        Json::Object(_) => Ok(tree),
        Json::Array(_) => Err(ReadError::Batch),
        other => Err(ReadError::NotObject(other.kind())),
    }
}

/// Reads the JSON-RPC envelope of `tree` and what it asks for under `protocol`.
pub fn message<'a>(tree: &'a Json<'a>, protocol: Protocol) -> Result<Message<'a>, ReadError> {
    if tree.get("jsonrpc").and_then(Json::as_str) != Some("2.0") {
        return Err(ReadError::Version);
    }
    let id = match tree.get("id") {
        None => None,
        Some(v @ (Json::Str(_) | Json::Number(_) | Json::Null)) => Some(json_text(v)),
        Some(_) => return Err(ReadError::BadId),
    };
    let params = tree.get("params");
    if let Some(p) = params {
        if !matches!(p, Json::Object(_) | Json::Array(_)) {
            return Err(ReadError::Params(
                "`params` must be an object or an array".into(),
            ));
        }
    }
    let method = match tree.get("method") {
        Some(Json::Str(m)) => m.as_ref(),
        Some(_) => return Err(ReadError::MethodNotString),
        None => {
            let answers = tree.get("result").is_some() != tree.get("error").is_some();
            if id.is_none() || !answers {
                return Err(ReadError::NoMethod);
            }
            return Ok(Message {
                protocol,
                shape: Shape::Response,
                method: "",
                id,
                call: Call::Plumbing,
                params: None,
            });
        }
    };
    let shape = if id.is_some() {
        Shape::Request
    } else {
        Shape::Notification
    };
    let call = match protocol {
        Protocol::Mcp => mcp_call(method, params)?,
        Protocol::A2a => a2a_call(method, params)?,
    };
    Ok(Message {
        protocol,
        shape,
        method,
        id,
        call,
        params,
    })
}

/// A scalar as compact JSON text.
pub fn json_text(v: &Json<'_>) -> String {
    match v {
        Json::Str(s) => {
            let mut out = String::with_capacity(s.len() + 2);
            write_string(s, &mut out);
            out
        }
        other => super::canonical::canonical(other),
    }
}

/// `params.key` as a string; absent or another type is an error (the message cannot be judged).
fn string_param<'a>(
    method: &str,
    params: Option<&'a Json<'a>>,
    key: &str,
) -> Result<&'a str, ReadError> {
    params
        .and_then(|p| p.get(key))
        .and_then(Json::as_str)
        .ok_or_else(|| ReadError::Params(format!("`{method}` needs a string `params.{key}`")))
}

fn mcp_call<'a>(method: &'a str, params: Option<&'a Json<'a>>) -> Result<Call<'a>, ReadError> {
    Ok(match method {
        "tools/call" => {
            let name = string_param(method, params, "name")?;
            let arguments = params.and_then(|p| p.get("arguments"));
            if arguments.is_some_and(|a| !matches!(a, Json::Object(_))) {
                return Err(ReadError::Params(
                    "`tools/call` arguments must be an object".into(),
                ));
            }
            Call::Tool { name, arguments }
        }
        "resources/read" => Call::Resource {
            uri: string_param(method, params, "uri")?,
        },
        "prompts/get" => Call::Prompt {
            name: string_param(method, params, "name")?,
        },
        "tools/list" => Call::List(ListKind::Tools),
        "prompts/list" => Call::List(ListKind::Prompts),
        "resources/list" => Call::List(ListKind::Resources),
        "resources/templates/list" => Call::List(ListKind::ResourceTemplates),
        m if is_mcp_plumbing(m) => Call::Plumbing,
        _ => Call::Method,
    })
}

/// MCP methods that pass wherever an allow rule covers the path.
pub fn is_mcp_plumbing(method: &str) -> bool {
    matches!(method, "initialize" | "ping") || method.starts_with("notifications/")
}

/// The MCP client requests `mcp.methods` may name (for `check`'s suggestions).
pub const MCP_METHODS: &[&str] = &[
    "completion/complete",
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
    "tasks/get",
    "tasks/result",
    "tasks/list",
    "tasks/cancel",
    "initialize",
    "ping",
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "tools/call",
    "resources/read",
    "prompts/get",
];

/// Where an A2A method names its task.
#[derive(Clone, Copy)]
enum TaskParam {
    /// `params.id`.
    Id,
    /// `params.taskId` (protobuf JSON also reads `task_id`).
    TaskId,
}

const A2A_SEND: &[&str] = &[
    "message/send",
    "message/stream",
    "SendMessage",
    "SendStreamingMessage",
];

const A2A_ON_TASK: &[(&str, TaskParam)] = &[
    ("tasks/get", TaskParam::Id),
    ("tasks/cancel", TaskParam::Id),
    ("tasks/resubscribe", TaskParam::Id),
    ("tasks/pushNotificationConfig/set", TaskParam::TaskId),
    ("tasks/pushNotificationConfig/create", TaskParam::TaskId),
    ("tasks/pushNotificationConfig/get", TaskParam::Id),
    ("tasks/pushNotificationConfig/list", TaskParam::Id),
    ("tasks/pushNotificationConfig/delete", TaskParam::Id),
    ("GetTask", TaskParam::Id),
    ("CancelTask", TaskParam::Id),
    ("SubscribeToTask", TaskParam::Id),
    ("CreateTaskPushNotificationConfig", TaskParam::TaskId),
    ("GetTaskPushNotificationConfig", TaskParam::TaskId),
    ("ListTaskPushNotificationConfigs", TaskParam::TaskId),
    ("DeleteTaskPushNotificationConfig", TaskParam::TaskId),
];

/// Every A2A JSON-RPC method of both spellings (for `check`'s suggestions).
pub const A2A_METHODS: &[&str] = &[
    "message/send",
    "message/stream",
    "tasks/get",
    "tasks/list",
    "tasks/cancel",
    "tasks/resubscribe",
    "tasks/pushNotificationConfig/set",
    "tasks/pushNotificationConfig/get",
    "tasks/pushNotificationConfig/list",
    "tasks/pushNotificationConfig/delete",
    "agent/getAuthenticatedExtendedCard",
    "SendMessage",
    "SendStreamingMessage",
    "GetTask",
    "ListTasks",
    "CancelTask",
    "SubscribeToTask",
    "CreateTaskPushNotificationConfig",
    "GetTaskPushNotificationConfig",
    "ListTaskPushNotificationConfigs",
    "DeleteTaskPushNotificationConfig",
    "GetExtendedAgentCard",
];

/// `obj.taskId` or `obj.task_id`; both, differing, is an error (two readers, two tasks).
fn task_id_member<'a>(obj: &'a Json<'a>) -> Result<Option<&'a str>, ReadError> {
    let camel = obj.get("taskId");
    let snake = obj.get("task_id");
    let text = |v: Option<&'a Json<'a>>| -> Result<Option<&'a str>, ReadError> {
        match v {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Str(s)) => Ok(Some(s.as_ref())),
            Some(_) => Err(ReadError::Params("a task id must be a string".into())),
        }
    };
    match (text(camel)?, text(snake)?) {
        (Some(a), Some(b)) if a != b => Err(ReadError::Params(
            "`taskId` and `task_id` name different tasks".into(),
        )),
        (a, b) => Ok(a.or(b)),
    }
}

fn a2a_call<'a>(method: &'a str, params: Option<&'a Json<'a>>) -> Result<Call<'a>, ReadError> {
    if A2A_SEND.contains(&method) {
        let message = params.and_then(|p| p.get("message"));
        let task = match message {
            Some(m) => task_id_member(m)?,
            None => None,
        };
        return Ok(Call::Send { task });
    }
    let Some((_, where_)) = A2A_ON_TASK.iter().find(|(m, _)| *m == method) else {
        return Ok(Call::Method);
    };
    let p = params.ok_or_else(|| ReadError::Params(format!("`{method}` needs params")))?;
    let task = match where_ {
        TaskParam::Id => {
            let id = string_param(method, params, "id")?;
            if task_id_member(p)?.is_some_and(|t| t != id) {
                return Err(ReadError::Params(
                    "`id` and `taskId` name different tasks".into(),
                ));
            }
            id
        }
        TaskParam::TaskId => task_id_member(p)?.ok_or_else(|| {
            ReadError::Params(format!("`{method}` needs a string `params.taskId`"))
        })?,
    };
    Ok(Call::OnTask { task })
}

/// The task ids an A2A result names: a Task's `id`, or the `taskId` of a message or of a status
/// or artifact update, in either version's layout.
pub fn result_task_ids<'a>(result: &'a Json<'a>) -> Vec<&'a str> {
    let mut ids = Vec::new();
    let mut push = |v: Option<&'a Json<'a>>| {
        if let Some(s) = v.and_then(Json::as_str) {
            if !ids.contains(&s) {
                ids.push(s);
            }
        }
    };
    let is_task = result.get("kind").and_then(Json::as_str) == Some("task")
        || (result.get("status").is_some() && result.get("id").is_some());
    if is_task {
        push(result.get("id"));
    }
    push(result.get("taskId"));
    push(result.get("task_id"));
    push(result.get("task").and_then(|t| t.get("id")));
    for key in [
        "message",
        "statusUpdate",
        "status_update",
        "artifactUpdate",
        "artifact_update",
    ] {
        if let Some(inner) = result.get(key) {
            push(inner.get("taskId"));
            push(inner.get("task_id"));
        }
    }
    ids
}

/// What the record, the audit log and the metrics keep of a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RpcSummary {
    /// The JSON-RPC method; empty for a response.
    pub method: Box<str>,
    /// The tool, resource, prompt or task it names.
    pub target: Option<Box<str>>,
    /// The id as JSON text.
    pub id: Option<Box<str>>,
    /// SHA-256 (hex) of the canonical `params.arguments`.
    pub args_sha256: Option<Box<str>>,
    /// A `*/list` request: its result is filtered.
    pub list: Option<ListKind>,
    /// An A2A `message/send` or `message/stream`: the task it creates belongs to the sender.
    pub creates_task: bool,
}

impl Message<'_> {
    pub fn summary(&self) -> RpcSummary {
        let target = match &self.call {
            Call::Tool { name, .. } | Call::Prompt { name } => Some(*name),
            Call::Resource { uri } => Some(*uri),
            Call::OnTask { task } => Some(*task),
            Call::Send { task } => *task,
            _ => None,
        };
        let args = self.params.and_then(|p| p.get("arguments"));
        RpcSummary {
            method: self.method.into(),
            target: target.map(Into::into),
            id: self.id.as_deref().map(Into::into),
            args_sha256: args.map(|a| sha256_hex(a).into()),
            list: match self.call {
                Call::List(kind) => Some(kind),
                _ => None,
            },
            creates_task: matches!(self.call, Call::Send { .. }),
        }
    }
}

#[cfg(test)]
mod tests;
