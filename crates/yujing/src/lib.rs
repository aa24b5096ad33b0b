//! The yujing binary's library half: configuration, the fixture generator and the wiring
//! of the pipeline (source → ledger → scoring → rules → sinks).

pub mod fixtures;
