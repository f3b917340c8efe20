//! The LLM: any OpenAI-compatible chat endpoint through async-openai. It
//! writes drafts for agents (streamed as they are written), auto-replies and
//! translations; every output passes the guardrails (`crate::guard`) or the
//! template is used and the response says why. Nothing waits for it: the
//! acknowledgement and the triage go out first.

mod prompt;
mod writer;

use std::sync::Once;
use std::time::Duration;

use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestUserMessage, CreateChatCompletionRequestArgs, FinishReason,
};
use async_openai::Client;
use futures::StreamExt;

use crate::config::LlmSettings;

pub use self::prompt::{LlmPrompts, TokenBudget};
pub use self::writer::{LlmWriter, Prompt, Translation, WriteError, WriteRequest, Written};

/// Why the LLM gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    #[error("the LLM did not answer within {0} ms")]
    Timeout(u64),
    #[error("the LLM is unavailable: {0}")]
    Unavailable(String),
    #[error("the LLM returned nothing")]
    Empty,
}

/// A chat endpoint with its model and limits.
pub struct LlmClient {
    client: Client<OpenAIConfig>,
    model: String,
    timeout: Duration,
    max_answer_tokens: u32,
    temperature: f32,
}

/// async-openai talks HTTPS through rustls; this build's provider is ring.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another provider is installed already: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// An async-openai client for `url` with `api_key` (empty: none sent).
pub fn openai_client(url: &str, api_key: &str, timeout: Duration) -> Client<OpenAIConfig> {
    install_crypto_provider();
    let config = OpenAIConfig::new()
        .with_api_base(url.trim_end_matches('/'))
        .with_api_key(api_key);
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(timeout)
        .build()
        .unwrap_or_default();
    Client::with_config(config).with_http_client(http)
}

impl LlmClient {
    /// The configured endpoint, or `None` when no URL is set.
    pub fn from_settings(settings: &LlmSettings) -> Option<LlmClient> {
        let url = settings.url.trim();
        if url.is_empty() {
            return None;
        }
        let timeout = Duration::from_millis(settings.timeout_ms.max(1));
        Some(LlmClient {
            // The HTTP timeout is a backstop; the deadline below is the rule.
            client: openai_client(url, &settings.api_key, timeout + Duration::from_secs(5)),
            model: settings.model.clone(),
            timeout,
            max_answer_tokens: settings.max_answer_tokens as u32,
            temperature: settings.temperature,
        })
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// Streams an answer to `system` + `user`, handing each piece to
    /// `on_delta` (which returns false to stop early), and returns the whole
    /// answer, all within the deadline.
    pub async fn complete(
        &self,
        system: &str,
        user: &str,
        mut on_delta: impl FnMut(&str) -> bool,
    ) -> Result<Completion, LlmError> {
        let request = CreateChatCompletionRequestArgs::default()
            .model(self.model.clone())
            .messages(vec![
                ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage::from(
                    system,
                )),
                ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage::from(user)),
            ])
            .max_tokens(self.max_answer_tokens)
            .stream(true)
            .temperature(self.temperature)
            .build()
            .map_err(|e| LlmError::Unavailable(e.to_string()))?;
        let answer = async {
            let mut stream = self
                .client
                .chat()
                .create_stream(request)
                .await
                .map_err(|e| LlmError::Unavailable(e.to_string()))?;
            let mut completion = Completion::default();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| LlmError::Unavailable(e.to_string()))?;
                let Some(choice) = chunk.choices.into_iter().next() else {
                    continue;
                };
                if choice.finish_reason == Some(FinishReason::Length) {
                    completion.truncated = true;
                }
                let Some(delta) = choice.delta.content else {
                    continue;
                };
                completion.text.push_str(&delta);
                if !on_delta(&delta) {
                    break;
                }
            }
            Ok(completion)
        };
        let completion = tokio::time::timeout(self.timeout, answer)
            .await
            .map_err(|_| LlmError::Timeout(self.timeout.as_millis() as u64))??;
        if completion.text.trim().is_empty() {
            return Err(LlmError::Empty);
        }
        Ok(completion)
    }
}

/// An answer, and whether the token limit cut it off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Completion {
    pub text: String,
    pub truncated: bool,
}
