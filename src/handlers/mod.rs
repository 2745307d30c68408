//! LSP request and notification handlers, one file per concern.
