//! The engine: one run from request to outcome, and what it runs on — the staging mirror, the
//! permission policy and OS sandbox, warm and live CLI processes, the queue, retries, metrics.

pub(crate) mod background;
pub(crate) mod breaker;
pub(crate) mod conversations;
pub(crate) mod metrics;
pub mod permissions;
pub(crate) mod pipeline;
pub mod pool;
pub(crate) mod result_cache;
pub(crate) mod retry;
pub(crate) mod run;
pub(crate) mod sandbox;
pub(crate) mod scheduler;
pub(crate) mod scope;
pub mod staging;
