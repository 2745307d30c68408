//! Progress on stderr while a run works.

use parking_lot::Mutex;
use std::io::{IsTerminal, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Progress on stderr: a spinner line redrawn in place on a terminal, one line per status
/// otherwise (logs, CI).
pub(super) struct ProgressView {
    state: Arc<Mutex<ViewState>>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

struct ViewState {
    status: String,
    started: Instant,
    frame: usize,
    terminal: bool,
}

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
/// Status lines are cut to this many characters so the spinner line never wraps.
const STATUS_WIDTH: usize = 100;

impl ProgressView {
    pub(super) fn start() -> Self {
        let terminal = std::io::stderr().is_terminal();
        let state = Arc::new(Mutex::new(ViewState {
            status: "Starting".to_owned(),
            started: Instant::now(),
            frame: 0,
            terminal,
        }));
        let ticker = terminal.then(|| {
            let state = state.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                loop {
                    tick.tick().await;
                    let mut state = state.lock();
                    state.frame = state.frame.wrapping_add(1);
                    state.draw();
                }
            })
        });
        Self { state, ticker }
    }

    pub(super) fn status(&self, message: &str) {
        let line: String =
            message.lines().next().unwrap_or_default().chars().take(STATUS_WIDTH).collect();
        let mut state = self.state.lock();
        if state.status == line {
            return;
        }
        state.status = line;
        if state.terminal {
            state.draw();
        } else {
            eprintln!("claude-lsp: {}", state.status);
        }
    }

    /// The line the agent is writing: shown on the spinner line, left out of a log (the next
    /// status replaces it).
    pub(super) fn writing(&self, message: &str) {
        if self.state.lock().terminal {
            self.status(message);
        }
    }

    /// Clear the spinner line.
    pub(super) fn finish(&self) {
        if let Some(ticker) = &self.ticker {
            ticker.abort();
        }
        let state = self.state.lock();
        if state.terminal {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r\x1b[2K");
            let _ = stderr.flush();
        }
    }
}

impl ViewState {
    fn draw(&self) {
        let mut stderr = std::io::stderr().lock();
        let spinner = SPINNER[self.frame % SPINNER.len()];
        let elapsed = self.started.elapsed().as_secs_f32();
        let _ = write!(stderr, "\r\x1b[2K{spinner} {elapsed:>5.1}s {}", self.status);
        let _ = stderr.flush();
    }
}
