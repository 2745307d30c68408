//! `$/progress` for one run: begin → report → end, on the client's token or one we create.

use std::time::Duration;

use crate::protocol::lsp::{
    Client, NumberOrString, ProgressParams, ProgressParamsValue, WorkDoneProgress,
    WorkDoneProgressBegin, WorkDoneProgressCreateParams, WorkDoneProgressEnd,
    WorkDoneProgressReport, notification, request,
};

/// How long a run waits for the client to accept a progress token it created. A client that
/// never answers must not hold the run: it goes on without progress.
const CREATE_WAIT: Duration = Duration::from_secs(10);

/// A progress bar in the editor, or nothing when the client has none.
pub struct Progress {
    client: Client,
    token: Option<NumberOrString>,
}

impl Progress {
    /// Use the client's `workDoneToken`, else create one when the client supports it.
    /// `on_token` learns the token before the client does, so a cancel sent from the progress
    /// bar the moment it appears always finds its run.
    pub async fn begin(
        client: &Client,
        client_token: Option<NumberOrString>,
        supports_create: bool,
        title: &str,
        on_token: impl FnOnce(&NumberOrString),
    ) -> Self {
        let token = match client_token {
            Some(token) => {
                on_token(&token);
                Some(token)
            }
            None if supports_create => {
                let token = NumberOrString::String(format!("claude-lsp/{}", uuid::Uuid::new_v4()));
                on_token(&token);
                let params = WorkDoneProgressCreateParams { token: token.clone() };
                let created = client.send_request::<request::WorkDoneProgressCreate>(params);
                match tokio::time::timeout(CREATE_WAIT, created).await {
                    Ok(Ok(())) => Some(token),
                    Ok(Err(err)) => {
                        tracing::debug!(%err, "client refused a progress token");
                        None
                    }
                    Err(_) => {
                        tracing::warn!(
                            "the client did not answer window/workDoneProgress/create within \
                             {CREATE_WAIT:?}; running without progress"
                        );
                        None
                    }
                }
            }
            None => None,
        };
        let progress = Self { client: client.clone(), token };
        progress
            .send(WorkDoneProgress::Begin(WorkDoneProgressBegin {
                title: title.to_owned(),
                cancellable: Some(true),
                message: None,
                percentage: None,
            }))
            .await;
        progress
    }

    pub fn token(&self) -> Option<&NumberOrString> {
        self.token.as_ref()
    }

    pub async fn report(&self, message: impl Into<String>) {
        self.send(WorkDoneProgress::Report(WorkDoneProgressReport {
            cancellable: Some(true),
            message: Some(crate::base::secrets::redacted(&message.into())),
            percentage: None,
        }))
        .await;
    }

    pub async fn end(self, message: impl Into<String>) {
        let message = crate::base::secrets::redacted(&message.into());
        self.send(WorkDoneProgress::End(WorkDoneProgressEnd { message: Some(message) })).await;
    }

    async fn send(&self, value: WorkDoneProgress) {
        if let Some(token) = &self.token {
            self.client
                .send_notification::<notification::Progress>(ProgressParams {
                    token: token.clone(),
                    value: ProgressParamsValue::WorkDone(value),
                })
                .await;
        }
    }
}
