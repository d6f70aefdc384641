//! Identity: who is on the other end of a connection (`agent_id`, from the client certificate),
//! which `agents` entry covers them (`index`), and the optional certificate-bound token (`token`).

pub mod agent_id;
pub mod index;
pub mod token;
