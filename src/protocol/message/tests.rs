use super::*;

fn msg(text: &str) -> Result<RpcSummary, ReadError> {
    let tree = read(text.as_bytes())?;
    message(&tree, Protocol::Mcp).map(|m| m.summary())
}

fn a2a(text: &str) -> Result<RpcSummary, ReadError> {
    let tree = read(text.as_bytes())?;
    message(&tree, Protocol::A2a).map(|m| m.summary())
}

#[test]
fn one_object_per_message() {
    assert_eq!(
        msg(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#),
        Err(ReadError::Batch)
    );
    assert_eq!(msg("\"x\""), Err(ReadError::NotObject("a string")));
    assert_eq!(msg(r#"{"id":1,"method":"ping"}"#), Err(ReadError::Version));
    assert_eq!(
        msg(r#"{"jsonrpc":"2.0","id":1,"method":7}"#),
        Err(ReadError::MethodNotString)
    );
    assert_eq!(msg(r#"{"jsonrpc":"2.0","id":1}"#), Err(ReadError::NoMethod));
    assert_eq!(
        msg(r#"{"jsonrpc":"2.0","result":{}}"#),
        Err(ReadError::NoMethod)
    );
    assert_eq!(
        msg(r#"{"jsonrpc":"2.0","id":[1],"method":"ping"}"#),
        Err(ReadError::BadId)
    );
    assert!(matches!(
        msg(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#),
        Err(ReadError::Json(JsonError::Duplicate(_)))
    ));
}

#[test]
fn mcp_calls_are_classified() {
    let s = msg(r#"{"jsonrpc":"2.0","id":"a\"b","method":"tools/call","params":{"name":"get_customer","arguments":{"region":"eu","id":4}}}"#).unwrap();
    assert_eq!(&*s.method, "tools/call");
    assert_eq!(s.target.as_deref(), Some("get_customer"));
    assert_eq!(s.id.as_deref(), Some(r#""a\"b""#));
    assert_eq!(
        s.args_sha256.as_deref(),
        Some(sha256_hex(&parse(br#"{"id":4,"region":"eu"}"#).unwrap()).as_str())
    );
    let s = msg(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#).unwrap();
    assert_eq!(s.list, Some(ListKind::Tools));
    assert_eq!(s.id.as_deref(), Some("2"));
    let s = msg(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
    assert_eq!(s.id, None);
    assert!(msg(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#).is_ok());
    assert!(matches!(
        msg(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":3}}"#),
        Err(ReadError::Params(_))
    ));
    assert!(matches!(
        msg(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":[1]}}"#
        ),
        Err(ReadError::Params(_))
    ));
    assert!(matches!(
        msg(r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{}}"#),
        Err(ReadError::Params(_))
    ));
}

#[test]
fn a2a_tasks_are_named_as_either_version_names_them() {
    let s = a2a(r#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"id":"t1"}}"#).unwrap();
    assert_eq!(s.target.as_deref(), Some("t1"));
    let s = a2a(r#"{"jsonrpc":"2.0","id":1,"method":"GetTaskPushNotificationConfig","params":{"task_id":"t2","id":"cfg"}}"#).unwrap();
    assert_eq!(s.target.as_deref(), Some("t2"));
    assert!(a2a(
        r#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"id":"t1","taskId":"t2"}}"#
    )
    .is_err());
    assert!(a2a(r#"{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"taskId":"a","task_id":"b"}}}"#).is_err());
    let s = a2a(
        r#"{"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":{"taskId":"t3"}}}"#,
    )
    .unwrap();
    assert!(s.creates_task);
    assert_eq!(s.target.as_deref(), Some("t3"));
    assert!(a2a(r#"{"jsonrpc":"2.0","id":1,"method":"CancelTask","params":{}}"#).is_err());
}

#[test]
fn task_ids_in_results() {
    let t = parse(br#"{"kind":"task","id":"t1","status":{}}"#).unwrap();
    assert_eq!(result_task_ids(&t), vec!["t1"]);
    let t = parse(br#"{"task":{"id":"t2"}}"#).unwrap();
    assert_eq!(result_task_ids(&t), vec!["t2"]);
    let t = parse(br#"{"statusUpdate":{"taskId":"t3"}}"#).unwrap();
    assert_eq!(result_task_ids(&t), vec!["t3"]);
    let t = parse(br#"{"kind":"message","messageId":"m","taskId":"t4"}"#).unwrap();
    assert_eq!(result_task_ids(&t), vec!["t4"]);
}
