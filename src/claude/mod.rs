//! The driver for the real `claude` CLI: discovery, arguments, the stream-json process, the
//! control protocol, typed messages and errors.
