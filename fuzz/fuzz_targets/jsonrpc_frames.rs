//! JSON-RPC framing and message decoding: any bytes the editor sends are framed and checked by
//! the transport (`transport::decode_frames`) without a panic, and any body goes through what the
//! server decodes from a message (the settings in `initializationOptions`, the parameters of the
//! custom requests).
#![no_main]

use claude_lsp::protocol::lsp_ext::{
    ActionParams, AuditParams, CancelParams, ContinueParams, SessionParams, SessionsParams,
    UsageParams,
};
use claude_lsp::model::settings::parse_settings;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn decode<T: serde::de::DeserializeOwned>(value: &Value) {
    let _ = serde_json::from_value::<T>(value.clone());
}

fuzz_target!(|data: &[u8]| {
    let _ = claude_lsp::lsp_server::transport::decode_frames(data);
    let Ok(message) = serde_json::from_slice::<Value>(data) else { return };
    let params = message.get("params").unwrap_or(&message);
    let options = params.get("initializationOptions").unwrap_or(params);
    let (settings, _warnings) = parse_settings(Some(options));
    // Whatever was read, the settings are usable.
    let _ = settings.cli_env();
    let _ = settings.secret_env_values();
    decode::<ActionParams>(params);
    decode::<CancelParams>(params);
    decode::<ContinueParams>(params);
    decode::<SessionsParams>(params);
    decode::<SessionParams>(params);
    decode::<UsageParams>(params);
    decode::<AuditParams>(params);
});
