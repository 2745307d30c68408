//! A fault-injection stand-in for the `claude` CLI, for tests of how the server survives a CLI
//! that misbehaves. Plain std only, so it builds fast and cannot itself be the thing that fails.
//!
//! `fake_claude --version` prints `2.1.330 (Claude Code)` (or `$FAKE_CLAUDE_VERSION`). Otherwise
//! it reads stream-json lines from stdin like the real CLI (`-p --input-format stream-json …`; the
//! flags are accepted and ignored) and answers each `user` line as `$FAKE_CLAUDE_MODE` says:
//!
//! | mode           | on a `user` line                                                          |
//! |----------------|---------------------------------------------------------------------------|
//! | `normal`       | `system/init`, one assistant text block, a `result/success` (default)     |
//! | `crash_mid_line` | `system/init`, half an assistant line, a message on stderr, exit 3      |
//! | `garbage`      | non-JSON and invalid UTF-8 lines mixed with valid messages, then a result |
//! | `huge_line`    | one assistant text line of 64 MiB (`$FAKE_CLAUDE_HUGE_BYTES`), a result   |
//! | `silence`      | nothing, ever: reads stdin to its end, then waits to be killed            |
//! | `slow_drip`    | `system/init`, the assistant line byte by byte (`$FAKE_CLAUDE_DRIP_MS`, default 2 ms apart), a result |
//! | `eof_mid_line` | `system/init`, half an assistant line, then exit 0 (stdout closes)       |
//!
//! Control requests are answered in every mode but `silence`: `initialize` and `interrupt` with
//! `success`, anything else with an `error`, as the real CLI does. The assistant text is
//! `$FAKE_CLAUDE_TEXT` (default `Hello from fake claude.`). When `$FAKE_CLAUDE_ARGV_FILE` is set,
//! the arguments are written there, one per line, so tests can check the command line they built.
//! A stdin line that is not JSON is fatal, as in the real CLI: a message on stderr and exit 1.

use std::io::{self, BufRead, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const DEFAULT_VERSION: &str = "2.1.330";
const DEFAULT_TEXT: &str = "Hello from fake claude.";
const DEFAULT_HUGE_BYTES: usize = 64 * 1024 * 1024;
const MODEL: &str = "claude-fake-1";
/// Deeper nesting than any real message; the limit keeps hostile input from overflowing the stack.
const MAX_JSON_DEPTH: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    CrashMidLine,
    Garbage,
    HugeLine,
    Silence,
    SlowDrip,
    EofMidLine,
}

impl Mode {
    fn from_env() -> Result<Self, String> {
        let name = std::env::var("FAKE_CLAUDE_MODE").unwrap_or_default();
        Ok(match name.as_str() {
            "" | "normal" => Self::Normal,
            "crash_mid_line" => Self::CrashMidLine,
            "garbage" => Self::Garbage,
            "huge_line" => Self::HugeLine,
            "silence" => Self::Silence,
            "slow_drip" => Self::SlowDrip,
            "eof_mid_line" => Self::EofMidLine,
            other => {
                return Err(format!(
                    "fake claude: unknown FAKE_CLAUDE_MODE {other:?} (normal, crash_mid_line, \
                     garbage, huge_line, silence, slow_drip, eof_mid_line)"
                ));
            }
        })
    }
}

/// What the session does after handling one stdin line.
enum Next {
    Continue,
    Exit(u8),
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(path) = std::env::var_os("FAKE_CLAUDE_ARGV_FILE") {
        let listing: String = args.iter().map(|arg| format!("{arg}\n")).collect();
        if let Err(err) = std::fs::write(&path, listing) {
            eprintln!("fake claude: cannot write FAKE_CLAUDE_ARGV_FILE: {err}");
            return ExitCode::from(2);
        }
    }
    let version = std::env::var("FAKE_CLAUDE_VERSION").unwrap_or_else(|_| DEFAULT_VERSION.into());
    if args.iter().any(|arg| arg == "--version" || arg == "-v") {
        return match writeln!(io::stdout(), "{version} (Claude Code)") {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(1),
        };
    }
    let mode = match Mode::from_env() {
        Ok(mode) => mode,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let mut session = Session::new(mode, version);
    match session.run() {
        Ok(code) => ExitCode::from(code),
        // Most likely the reader went away (EPIPE): nobody is left to tell but stderr.
        Err(err) => {
            eprintln!("fake claude: {err}");
            ExitCode::from(1)
        }
    }
}

struct Session {
    mode: Mode,
    version: String,
    session_id: String,
    text: String,
    out: io::Stdout,
}

impl Session {
    fn new(mode: Mode, version: String) -> Self {
        Self {
            mode,
            version,
            session_id: uuid_like(0xfa4e),
            text: std::env::var("FAKE_CLAUDE_TEXT").unwrap_or_else(|_| DEFAULT_TEXT.into()),
            out: io::stdout(),
        }
    }

    fn run(&mut self) -> io::Result<u8> {
        let stdin = io::stdin();
        if self.mode == Mode::Silence {
            io::copy(&mut stdin.lock(), &mut io::sink())?;
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        for line in stdin.lock().split(b'\n') {
            if let Next::Exit(code) = self.handle_line(&line?)? {
                return Ok(code);
            }
        }
        Ok(0)
    }

    fn handle_line(&mut self, raw: &[u8]) -> io::Result<Next> {
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Ok(Next::Continue);
        }
        let parsed = std::str::from_utf8(raw)
            .map_err(|err| format!("invalid UTF-8: {err}"))
            .and_then(Json::parse);
        let message = match parsed {
            Ok(message) => message,
            Err(err) => {
                // Echo a bounded prefix: the line may be huge.
                let shown: String = String::from_utf8_lossy(raw).chars().take(200).collect();
                eprintln!("Error parsing streaming input line: {shown}: {err}");
                return Ok(Next::Exit(1));
            }
        };
        match message.get("type").and_then(Json::as_str) {
            Some("control_request") => {
                self.answer_control_request(&message)?;
                Ok(Next::Continue)
            }
            Some("user") => self.turn(),
            // keep_alive, control_response, and kinds this fake does not model.
            _ => Ok(Next::Continue),
        }
    }

    fn answer_control_request(&mut self, message: &Json) -> io::Result<()> {
        let request_id = message.get("request_id").and_then(Json::as_str).unwrap_or_default();
        let subtype = message.get("request").and_then(|r| r.get("subtype")).and_then(Json::as_str);
        let id = quote(request_id);
        let line = match subtype {
            Some("initialize") => format!(
                r#"{{"type":"control_response","response":{{"subtype":"success","request_id":{id},"response":{{"commands":[],"agents":[],"output_style":"default","available_output_styles":["default"],"models":[],"account":{{"tokenSource":"none","apiKeySource":"ANTHROPIC_API_KEY","apiProvider":"firstParty"}},"pid":{pid}}}}}}}"#,
                pid = std::process::id()
            ),
            Some("interrupt") => format!(
                r#"{{"type":"control_response","response":{{"subtype":"success","request_id":{id}}}}}"#
            ),
            other => format!(
                r#"{{"type":"control_response","response":{{"subtype":"error","request_id":{id},"error":{}}}}}"#,
                quote(&format!(
                    "Unsupported control request subtype: {}",
                    other.unwrap_or("(none)")
                ))
            ),
        };
        self.write_line(&line)
    }

    fn turn(&mut self) -> io::Result<Next> {
        self.write_line(&self.init_line())?;
        match self.mode {
            Mode::Normal => {
                self.write_line(&self.assistant_line(&self.text))?;
                self.write_line(&self.result_line(&self.text))?;
            }
            Mode::CrashMidLine => {
                let line = self.assistant_line(&self.text);
                self.write_partial(&line)?;
                eprintln!("fake claude: simulated crash in the middle of a line");
                return Ok(Next::Exit(3));
            }
            Mode::EofMidLine => {
                let line = self.assistant_line(&self.text);
                self.write_partial(&line)?;
                return Ok(Next::Exit(0));
            }
            Mode::Garbage => {
                self.write_line("this line is not json")?;
                self.write_raw(b"\xff\xfe invalid utf-8 \xc3\x28\n")?;
                self.write_line(r#"{"type":"assistant","message":{"content":["#)?;
                self.write_line(r#"{"type":"a_kind_from_the_future","payload":{"x":1}}"#)?;
                self.write_line("[1, 2, 3]")?;
                self.write_line(&self.assistant_line(&self.text))?;
                self.write_raw(b"\x00\x01\x02\n")?;
                self.write_line(&self.result_line(&self.text))?;
            }
            Mode::HugeLine => {
                let size = std::env::var("FAKE_CLAUDE_HUGE_BYTES")
                    .ok()
                    .and_then(|value| value.parse().ok())
                    .unwrap_or(DEFAULT_HUGE_BYTES);
                self.write_huge_assistant_line(size)?;
                self.write_line(&self.result_line(&format!("({size} bytes of text)")))?;
            }
            Mode::SlowDrip => {
                let pause = std::env::var("FAKE_CLAUDE_DRIP_MS")
                    .ok()
                    .and_then(|value| value.parse().ok())
                    .map_or(Duration::from_millis(2), Duration::from_millis);
                let line = self.assistant_line(&self.text);
                let mut out = self.out.lock();
                for byte in line.bytes().chain([b'\n']) {
                    out.write_all(&[byte])?;
                    out.flush()?;
                    std::thread::sleep(pause);
                }
                drop(out);
                self.write_line(&self.result_line(&self.text))?;
            }
            // Never reaches a turn: `run` swallows stdin and waits to be killed.
            Mode::Silence => {}
        }
        Ok(Next::Continue)
    }

    fn init_line(&self) -> String {
        let cwd = std::env::current_dir().map(|dir| dir.display().to_string()).unwrap_or_default();
        format!(
            r#"{{"type":"system","subtype":"init","cwd":{cwd},"session_id":{sid},"tools":["Task","Bash","Edit","Read","Write"],"mcp_servers":[],"model":"{MODEL}","permissionMode":"default","slash_commands":[],"apiKeySource":"ANTHROPIC_API_KEY","claude_code_version":{version},"output_style":"default","agents":[],"skills":[],"plugins":[],"uuid":{uuid}}}"#,
            cwd = quote(&cwd),
            sid = quote(&self.session_id),
            version = quote(&self.version),
            uuid = quote(&next_uuid()),
        )
    }

    fn assistant_prefix(&self) -> String {
        format!(
            r#"{{"type":"assistant","message":{{"id":"msg_fake_1","type":"message","role":"assistant","model":"{MODEL}","content":[{{"type":"text","text":""#
        )
    }

    fn assistant_suffix(&self) -> String {
        format!(
            r#""}}],"stop_reason":null,"stop_sequence":null,"usage":{{"input_tokens":12,"output_tokens":5}}}},"parent_tool_use_id":null,"session_id":{sid},"uuid":{uuid}}}"#,
            sid = quote(&self.session_id),
            uuid = quote(&next_uuid()),
        )
    }

    fn assistant_line(&self, text: &str) -> String {
        let quoted = quote(text);
        // `quote` adds the surrounding quotes; prefix and suffix already hold them.
        let inner = &quoted[1..quoted.len() - 1];
        format!("{}{inner}{}", self.assistant_prefix(), self.assistant_suffix())
    }

    fn result_line(&self, text: &str) -> String {
        format!(
            r#"{{"type":"result","subtype":"success","is_error":false,"api_error_status":null,"duration_ms":12,"duration_api_ms":8,"num_turns":1,"result":{result},"stop_reason":"end_turn","session_id":{sid},"total_cost_usd":0.000555,"usage":{{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":5,"server_tool_use":{{"web_search_requests":0,"web_fetch_requests":0}},"service_tier":"standard"}},"modelUsage":{{"{MODEL}":{{"inputTokens":12,"outputTokens":5,"cacheReadInputTokens":0,"cacheCreationInputTokens":0,"webSearchRequests":0,"costUSD":0.000555,"contextWindow":200000,"maxOutputTokens":64000}}}},"permission_denials":[],"terminal_reason":"completed","uuid":{uuid}}}"#,
            result = quote(text),
            sid = quote(&self.session_id),
            uuid = quote(&next_uuid()),
        )
    }

    /// An assistant line whose text is `size` bytes, written in pieces (never held in memory).
    fn write_huge_assistant_line(&mut self, size: usize) -> io::Result<()> {
        let prefix = self.assistant_prefix();
        let suffix = self.assistant_suffix();
        let piece = vec![b'x'; 1024 * 1024];
        let mut out = self.out.lock();
        out.write_all(prefix.as_bytes())?;
        let mut left = size;
        while left > 0 {
            let n = left.min(piece.len());
            out.write_all(&piece[..n])?;
            left -= n;
        }
        out.write_all(suffix.as_bytes())?;
        out.write_all(b"\n")?;
        out.flush()
    }

    fn write_line(&mut self, line: &str) -> io::Result<()> {
        let mut out = self.out.lock();
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
        out.flush()
    }

    fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut out = self.out.lock();
        out.write_all(bytes)?;
        out.flush()
    }

    /// The first half of `line`, without its newline.
    fn write_partial(&mut self, line: &str) -> io::Result<()> {
        self.write_raw(&line.as_bytes()[..line.len() / 2])
    }
}

/// A unique id in UUID form (the fake has no randomness and needs none).
fn uuid_like(tag: u64) -> String {
    let pid = u64::from(std::process::id());
    format!("{tag:08x}-0000-4000-8000-{pid:012x}")
}

fn next_uuid() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    uuid_like(COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// `text` as a JSON string literal, quotes included.
fn quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            c if u32::from(c) < 0x20 => quoted.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Just enough JSON to read the host's messages: the fake must tell `user` from
/// `control_request` by the top-level `type`, which a substring search cannot do reliably.
#[derive(Debug)]
enum Json {
    Null,
    Bool,
    Number,
    String(String),
    Array,
    Object(Vec<(String, Json)>),
}

impl Json {
    fn parse(text: &str) -> Result<Self, String> {
        let mut parser = Parser { bytes: text.as_bytes(), pos: 0 };
        let value = parser.value(0)?;
        parser.skip_whitespace();
        if parser.pos != parser.bytes.len() {
            return Err(format!("unexpected trailing data at byte {}", parser.pos));
        }
        Ok(value)
    }

    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Self::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(text) => Some(text),
            _ => None,
        }
    }
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        self.skip_whitespace();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", char::from(byte), self.pos))
        }
    }

    fn literal(&mut self, word: &str, value: Json) -> Result<Json, String> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(format!("unexpected token at byte {}", self.pos))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, String> {
        if depth > MAX_JSON_DEPTH {
            return Err("nesting too deep".into());
        }
        self.skip_whitespace();
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(Json::String),
            Some(b't') => self.literal("true", Json::Bool),
            Some(b'f') => self.literal("false", Json::Bool),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(format!("unexpected character at byte {}", self.pos)),
            None => Err("unexpected end of input".into()),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json, String> {
        self.pos += 1;
        let mut fields = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Json::Object(fields));
        }
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return Err(format!("expected a key at byte {}", self.pos));
            }
            let key = self.string()?;
            self.expect(b':')?;
            let value = self.value(depth + 1)?;
            fields.push((key, value));
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Json::Object(fields));
                }
                _ => return Err(format!("expected ',' or '}}' at byte {}", self.pos)),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Json, String> {
        self.pos += 1;
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Json::Array);
        }
        loop {
            self.value(depth + 1)?;
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Json::Array);
                }
                _ => return Err(format!("expected ',' or ']' at byte {}", self.pos)),
            }
        }
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) {
            self.pos += 1;
        }
        if self.bytes[start..self.pos].iter().any(u8::is_ascii_digit) {
            Ok(Json::Number)
        } else {
            Err(format!("bad number at byte {start}"))
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut text = String::new();
        loop {
            let rest = self.bytes.get(self.pos..).unwrap_or_default();
            let Some(offset) = rest.iter().position(|&b| b == b'"' || b == b'\\') else {
                return Err("unterminated string".into());
            };
            // The input is valid UTF-8 and '"' / '\\' are ASCII, so this slice is whole characters.
            text.push_str(&String::from_utf8_lossy(&rest[..offset]));
            self.pos += offset + 1;
            if rest[offset] == b'"' {
                return Ok(text);
            }
            let escape = self.peek().ok_or("unterminated escape")?;
            self.pos += 1;
            match escape {
                b'"' => text.push('"'),
                b'\\' => text.push('\\'),
                b'/' => text.push('/'),
                b'b' => text.push('\u{8}'),
                b'f' => text.push('\u{c}'),
                b'n' => text.push('\n'),
                b'r' => text.push('\r'),
                b't' => text.push('\t'),
                b'u' => {
                    let hex = self.bytes.get(self.pos..self.pos + 4).ok_or("short \\u escape")?;
                    let code = std::str::from_utf8(hex)
                        .ok()
                        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                        .ok_or("bad \\u escape")?;
                    self.pos += 4;
                    // Lone surrogate halves are not characters; they do not matter here.
                    text.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
                }
                _ => return Err(format!("bad escape at byte {}", self.pos - 1)),
            }
        }
    }
}
