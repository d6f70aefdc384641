//! The route table.
