//! Dynamic micro-batching: one worker thread owns the model and embeds, in one
//! engine call, every request that arrived while it was busy. At low load a
//! request runs at once (no added wait); under load, concurrent inquiries
//! share batches, which costs the engine less per text, and the CPU is not
//! oversubscribed by one thread team per caller.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;

use anyhow::Context;

use super::{Embedder, TextKind};

struct Request {
    texts: Vec<String>,
    kind: TextKind,
    reply: Sender<anyhow::Result<Vec<Vec<f32>>>>,
}

pub struct BatchingEmbedder {
    inner: Arc<dyn Embedder>,
    requests: Sender<Request>,
}

impl BatchingEmbedder {
    /// Starts the worker; batches hold at most `max_batch` texts (a single
    /// larger request still runs whole).
    pub fn new(inner: Arc<dyn Embedder>, max_batch: usize) -> anyhow::Result<BatchingEmbedder> {
        let (requests, queue) = mpsc::channel();
        let model = inner.clone();
        std::thread::Builder::new()
            .name("embed-batcher".into())
            .spawn(move || {
                lower_priority();
                work(model.as_ref(), &queue, max_batch.max(1))
            })
            .context("starting the embedding worker")?;
        Ok(BatchingEmbedder { inner, requests })
    }
}

/// Lets the fast stages (acknowledgements, gRPC, searches) take the CPU
/// first when the model keeps every core busy: the worker runs under Linux's
/// SCHED_IDLE policy, per thread, which the engine's thread team, started by
/// this thread, inherits. The model still gets all the CPU nothing else wants.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid sched_param for the call; pid 0 is the calling thread.
        let status = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if status != 0 {
            tracing::warn!("could not lower the embedding worker's priority");
        }
    }
}

/// Runs until every sender is gone.
fn work(model: &dyn Embedder, queue: &Receiver<Request>, max_batch: usize) {
    let mut pending: Option<Request> = None;
    loop {
        let first = match pending.take() {
            Some(request) => request,
            None => match queue.recv() {
                Ok(request) => request,
                Err(_) => return,
            },
        };
        let kind = first.kind;
        let mut batch = vec![first];
        let mut size = batch[0].texts.len();
        // Take what is already waiting, of the same kind, up to the cap.
        while size < max_batch {
            match queue.try_recv() {
                Ok(request) if request.kind == kind && size + request.texts.len() <= max_batch => {
                    size += request.texts.len();
                    batch.push(request);
                }
                Ok(request) => {
                    pending = Some(request);
                    break;
                }
                Err(_) => break,
            }
        }
        let texts: Vec<&str> = batch
            .iter()
            .flat_map(|r| r.texts.iter().map(String::as_str))
            .collect();
        match model.embed(&texts, kind) {
            Ok(vectors) => {
                let mut vectors = vectors.into_iter();
                for request in batch {
                    let mine: Vec<Vec<f32>> = vectors.by_ref().take(request.texts.len()).collect();
                    // A caller that gave up is no reason to stop.
                    let _ = request.reply.send(Ok(mine));
                }
            }
            Err(error) => {
                for request in batch {
                    let _ = request.reply.send(Err(anyhow::anyhow!("{error:#}")));
                }
            }
        }
    }
}

impl Embedder for BatchingEmbedder {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    fn dimension(&self) -> usize {
        self.inner.dimension()
    }

    fn embed(&self, texts: &[&str], kind: TextKind) -> anyhow::Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = mpsc::channel();
        self.requests
            .send(Request {
                texts: texts.iter().map(|t| t.to_string()).collect(),
                kind,
                reply,
            })
            .ok()
            .context("the embedding worker has stopped")?;
        let vectors = answer
            .recv()
            .context("the embedding worker dropped the request")??;
        anyhow::ensure!(
            vectors.len() == texts.len(),
            "the embedder returned {} vectors for {} texts",
            vectors.len(),
            texts.len()
        );
        Ok(vectors)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::embed::E5Embedder;

    #[test]
    fn concurrent_requests_get_their_own_vectors() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/multilingual-e5-small");
        let model: Arc<dyn Embedder> =
            Arc::new(E5Embedder::load(&dir, "multilingual-e5-small").unwrap());
        let texts = [
            "Where is my parcel?",
            "Wo ist mein Paket?",
            "I want a refund for the broken kettle",
            "荷物はまだ届きませんか？",
            "Do you ship to Canada?",
            "Ich möchte meine Bestellung stornieren",
        ];
        let direct = model.embed(&texts, TextKind::Query).unwrap();
        let batcher = Arc::new(BatchingEmbedder::new(model, 4).unwrap());
        let handles: Vec<_> = texts
            .iter()
            .map(|text| {
                let batcher = batcher.clone();
                let text = text.to_string();
                std::thread::spawn(move || batcher.embed_one(&text, TextKind::Query).unwrap())
            })
            .collect();
        for (handle, expected) in handles.into_iter().zip(&direct) {
            let got = handle.join().unwrap();
            // Batched and single runs agree up to float rounding.
            assert!(
                crate::embed::cosine(&got, expected) > 0.999,
                "a request got another text's vector"
            );
        }
        // Passages are never batched with queries.
        let passage = batcher.embed_one(texts[0], TextKind::Passage).unwrap();
        let query = batcher.embed_one(texts[0], TextKind::Query).unwrap();
        assert!(crate::embed::cosine(&passage, &query) < 0.999);
        assert!(batcher.embed(&[], TextKind::Query).unwrap().is_empty());
    }
}
