//! The agent's request body as the decision reads it on an agent-protocol route: whole, at most
//! the limit, each frame within `limits.body_stall_timeout`.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::pipeline::{BodyError, MessageBody};

pub struct IncomingMessage<'a> {
    body: &'a mut Incoming,
    stall: Duration,
}

impl<'a> IncomingMessage<'a> {
    pub fn new(body: &'a mut Incoming, stall: Duration) -> Self {
        IncomingMessage { body, stall }
    }
}

impl MessageBody for IncomingMessage<'_> {
    async fn read(&mut self, limit: u64) -> Result<Bytes, BodyError> {
        let mut buf = BytesMut::new();
        loop {
            let frame = match tokio::time::timeout(self.stall, self.body.frame()).await {
                Err(_) => return Err(BodyError::Failed("the body stalled".into())),
                Ok(None) => return Ok(buf.freeze()),
                Ok(Some(Err(e))) => return Err(BodyError::Failed(e.to_string())),
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                if (buf.len() + data.len()) as u64 > limit {
                    return Err(BodyError::TooLarge);
                }
                buf.extend_from_slice(&data);
            }
        }
    }
}
