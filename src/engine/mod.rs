//! The engine: one run from request to outcome, and what it runs on — the staging mirror, the
//! permission policy and OS sandbox, warm and live CLI processes, the queue, retries, metrics.

pub mod background;
pub mod breaker;
pub mod conversations;
pub mod metrics;
pub mod permissions;
pub mod pipeline;
pub mod pool;
pub mod result_cache;
pub mod retry;
pub mod run;
pub mod sandbox;
pub mod scheduler;
pub mod scope;
pub mod staging;
