//! A linear head on the inquiry's embedding: multinomial logistic regression
//! trained on the labelled examples. The neighbour vote recalls the examples
//! closest to an inquiry; the head has learnt, from all of them at once, which
//! directions of the embedding separate the classes, so it generalises to
//! phrasings no example is near. The intent classifier adds both, in log
//! space; the risk reader uses a head of its own (`risk.rs`).
//!
//! Training is deterministic (full-batch Adam from zero weights) and takes a
//! few seconds; the result is cached in the data folder under a fingerprint of
//! the examples and the model, so start-up only retrains when they change.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};

use crate::store::Collection;

/// Inputs are unit vectors: scaled up, a logit of one unit is reachable.
const INPUT_SCALE: f32 = 20.0;
/// L2 penalty on the weights.
const L2: f32 = 0.01;
const STEPS: usize = 150;
const LEARNING_RATE: f32 = 0.025;
/// Bumped whenever training changes, so cached heads are retrained.
const VERSION: &str = "linear-head-2";

#[derive(Debug, Clone, PartialEq)]
pub struct LinearHead {
    dimension: usize,
    /// One row of `dimension` weights per class.
    weights: Vec<f32>,
    /// One per class.
    bias: Vec<f32>,
}

impl LinearHead {
    /// Trains on `vectors` labelled `labels`, class indices below `classes`.
    /// With `balance` 1, every class weighs the same in the loss however many
    /// examples it has; with 0, every example weighs the same (the classes
    /// keep their shares as priors); in between, a class of `c` examples
    /// weighs as `c^(1 - balance)` of them.
    pub fn train(
        vectors: &[&[f32]],
        labels: &[usize],
        classes: usize,
        balance: f32,
    ) -> anyhow::Result<LinearHead> {
        let Some(first) = vectors.first() else {
            bail!("no examples to train the head on");
        };
        let dimension = first.len();
        if labels.len() != vectors.len() || vectors.iter().any(|v| v.len() != dimension) {
            bail!("head: vectors and labels do not line up");
        }
        if let Some(label) = labels.iter().find(|&&label| label >= classes) {
            bail!("head: label {label} is not one of {classes} classes");
        }
        let mut counts = vec![0usize; classes];
        for &label in labels {
            counts[label] += 1;
        }
        let n = vectors.len() as f32;
        let class_weight: Vec<f32> = counts
            .iter()
            .map(|&c| {
                if c == 0 {
                    0.0
                } else {
                    (n / (classes as f32 * c as f32)).powf(balance)
                }
            })
            .collect();

        let mut head = LinearHead {
            dimension,
            weights: vec![0.0; classes * dimension],
            bias: vec![0.0; classes],
        };
        let mut adam_w = Adam::new(classes * dimension);
        let mut adam_b = Adam::new(classes);
        let mut grad_w = vec![0.0f32; classes * dimension];
        let mut grad_b = vec![0.0f32; classes];
        for step in 1..=STEPS {
            grad_w.fill(0.0);
            grad_b.fill(0.0);
            for (vector, &label) in vectors.iter().zip(labels) {
                let p = head.probabilities(vector);
                let weight = class_weight[label] / n;
                let rows = grad_w.chunks_exact_mut(dimension);
                for (class, ((p, gb), row)) in p.iter().zip(&mut grad_b).zip(rows).enumerate() {
                    let target = if class == label { 1.0 } else { 0.0 };
                    let g = (p - target) * weight;
                    *gb += g;
                    for (acc, x) in row.iter_mut().zip(vector.iter()) {
                        *acc += g * INPUT_SCALE * x;
                    }
                }
            }
            for (g, w) in grad_w.iter_mut().zip(&head.weights) {
                *g += L2 * w;
            }
            adam_w.step(&mut head.weights, &grad_w, step);
            adam_b.step(&mut head.bias, &grad_b, step);
        }
        Ok(head)
    }

    /// The class probabilities for one embedding.
    pub fn probabilities(&self, vector: &[f32]) -> Vec<f32> {
        let mut logits = self.bias.clone();
        for (logit, row) in logits
            .iter_mut()
            .zip(self.weights.chunks_exact(self.dimension))
        {
            *logit += INPUT_SCALE * dot(row, vector);
        }
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for logit in &mut logits {
            *logit = (*logit - max).exp();
            sum += *logit;
        }
        for e in &mut logits {
            *e /= sum;
        }
        logits
    }

    /// What a cached head must match: the training version and balance, the
    /// model and every example (by its stable point id).
    pub fn fingerprint(model_id: &str, balance: f32, example_ids: &[u64]) -> String {
        let mut ids = example_ids.to_vec();
        ids.sort_unstable();
        let mut hasher = Sha256::new();
        hasher.update(VERSION.as_bytes());
        hasher.update([0]);
        hasher.update(balance.to_le_bytes());
        hasher.update(model_id.as_bytes());
        for id in ids {
            hasher.update(id.to_le_bytes());
        }
        hex(&hasher.finalize())
    }

    /// A head of `classes` classes cached at `path` under `fingerprint`;
    /// `None` if there is none, it was trained on something else, or it
    /// cannot be read.
    pub fn load(path: &Path, fingerprint: &str, classes: usize) -> Option<LinearHead> {
        let bytes = std::fs::read(path).ok()?;
        let (stored, rest) = bytes.split_at_checked(64)?;
        if stored != fingerprint.as_bytes() || rest.len() % 4 != 0 {
            return None;
        }
        let numbers: Vec<f32> = rest
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let (bias, weights) = numbers.split_at_checked(classes)?;
        if classes == 0 || weights.is_empty() || weights.len() % classes != 0 {
            return None;
        }
        Some(LinearHead {
            dimension: weights.len() / classes,
            weights: weights.to_vec(),
            bias: bias.to_vec(),
        })
    }

    /// Caches the head at `path` (written whole, then renamed into place).
    pub fn save(&self, path: &Path, fingerprint: &str) -> anyhow::Result<()> {
        let mut bytes = fingerprint.as_bytes().to_vec();
        for number in self.bias.iter().chain(&self.weights) {
            bytes.extend_from_slice(&number.to_le_bytes());
        }
        let partial = path.with_extension("partial");
        std::fs::write(&partial, bytes)
            .with_context(|| format!("writing {}", partial.display()))?;
        std::fs::rename(&partial, path).with_context(|| format!("writing {}", path.display()))
    }
}

/// The stored points a head is trained on, in point id order: ids, vectors
/// and class indices side by side.
pub struct Stored<'a> {
    pub ids: &'a [u64],
    pub vectors: &'a [&'a [f32]],
    pub labels: &'a [usize],
}

/// A head over `classes` for the stored points `labelled` gives (point id
/// and class index): the one cached at `cache` under `fingerprint`
/// (`LinearHead::fingerprint` of what decides those points) if there is one,
/// else `train`ed now on their stored vectors and cached. `labelled` is
/// called only to train. `what` names the head in the log.
pub fn fit_stored(
    collection: &dyn Collection,
    fingerprint: &str,
    labelled: impl FnOnce() -> HashMap<u64, usize>,
    classes: usize,
    train: impl FnOnce(Stored<'_>) -> anyhow::Result<LinearHead>,
    (cache, what): (Option<&Path>, &str),
) -> anyhow::Result<LinearHead> {
    if let Some(head) = cache.and_then(|path| LinearHead::load(path, fingerprint, classes)) {
        return Ok(head);
    }
    let labelled = labelled();
    let ids: Vec<u64> = labelled.keys().copied().collect();
    let started = std::time::Instant::now();
    let mut stored = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(1024) {
        stored.extend(collection.dense_vectors(chunk)?);
    }
    // In id order: the gradient sums, and so the head, do not depend on the
    // order the store returns points in.
    stored.sort_unstable_by_key(|(id, _)| *id);
    let mut ids = Vec::with_capacity(stored.len());
    let mut vectors = Vec::with_capacity(stored.len());
    let mut labels = Vec::with_capacity(stored.len());
    for (id, vector) in &stored {
        if let Some(label) = labelled.get(id) {
            ids.push(*id);
            vectors.push(vector.as_slice());
            labels.push(*label);
        }
    }
    let head = train(Stored {
        ids: &ids,
        vectors: &vectors,
        labels: &labels,
    })?;
    tracing::info!(
        examples = vectors.len(),
        ms = started.elapsed().as_millis() as u64,
        "{what} head trained"
    );
    if let Some(path) = cache {
        head.save(path, fingerprint)?;
    }
    Ok(head)
}

/// Adam's moment estimates for one parameter block.
struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Adam {
    const BETA1: f32 = 0.9;
    const BETA2: f32 = 0.999;

    fn new(len: usize) -> Adam {
        Adam {
            m: vec![0.0; len],
            v: vec![0.0; len],
        }
    }

    fn step(&mut self, params: &mut [f32], grads: &[f32], step: usize) {
        let c1 = 1.0 - Self::BETA1.powi(step as i32);
        let c2 = 1.0 - Self::BETA2.powi(step as i32);
        for (((p, g), m), v) in params
            .iter_mut()
            .zip(grads)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            *m = Self::BETA1 * *m + (1.0 - Self::BETA1) * g;
            *v = Self::BETA2 * *v + (1.0 - Self::BETA2) * g * g;
            *p -= LEARNING_RATE * (*m / c1) / ((*v / c2).sqrt() + 1e-8);
        }
    }
}

/// Eight partial sums, so the compiler can keep them in one vector register.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (a8, a_rest) = a.split_at(a.len() - a.len() % 8);
    let (b8, b_rest) = b.split_at(a8.len().min(b.len()));
    for (x, y) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
        for ((acc, x), y) in acc.iter_mut().zip(x).zip(y) {
            *acc += x * y;
        }
    }
    let rest: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + rest
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Category;

    const CLASSES: usize = Category::ALL.len();

    /// Three categories along three axes, with noise on the others.
    fn clusters() -> (Vec<Vec<f32>>, Vec<Category>) {
        let categories = [
            Category::ShippingStatus,
            Category::RefundReturn,
            Category::Complaint,
        ];
        let mut vectors = Vec::new();
        let mut labels = Vec::new();
        for i in 0..60usize {
            let class = i % 3;
            let mut v = [0.0f32; 16];
            v[class] = 1.0;
            v[3 + i % 13] += 0.4;
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            vectors.push(v.iter().map(|x| x / norm).collect());
            labels.push(categories[class]);
        }
        (vectors, labels)
    }

    #[test]
    fn learns_separable_categories_and_round_trips_through_its_cache() {
        let (vectors, labels) = clusters();
        let refs: Vec<&[f32]> = vectors.iter().map(Vec::as_slice).collect();
        let indices: Vec<usize> = labels.iter().map(|c| c.index()).collect();
        let head = LinearHead::train(&refs, &indices, CLASSES, 1.0).unwrap();
        for (v, label) in vectors.iter().zip(&labels) {
            let p = head.probabilities(v);
            let best = (0..CLASSES).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
            assert_eq!(Category::ALL[best], *label, "{p:?}");
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        }
        // Categories without examples get little mass.
        let p = head.probabilities(&vectors[0]);
        assert!(p[Category::Account.index()] < 0.05, "{p:?}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("head.bin");
        let ids = [3u64, 1, 2];
        let fingerprint = LinearHead::fingerprint("model", 1.0, &ids);
        assert_eq!(
            fingerprint,
            LinearHead::fingerprint("model", 1.0, &[1, 2, 3])
        );
        head.save(&path, &fingerprint).unwrap();
        assert_eq!(LinearHead::load(&path, &fingerprint, CLASSES), Some(head));
        // Another example set or model: not this head.
        assert_eq!(
            LinearHead::load(
                &path,
                &LinearHead::fingerprint("model", 1.0, &[1, 2]),
                CLASSES
            ),
            None
        );
        assert_eq!(
            LinearHead::load(&path, &LinearHead::fingerprint("other", 1.0, &ids), CLASSES),
            None
        );
    }

    #[test]
    fn refuses_mismatched_input() {
        assert!(LinearHead::train(&[], &[], 2, 1.0).is_err());
        let a = [1.0f32, 0.0];
        let b = [1.0f32, 0.0, 0.0];
        assert!(LinearHead::train(&[&a[..], &b[..]], &[0, 0], 2, 1.0).is_err());
        assert!(LinearHead::train(&[&a[..]], &[], 2, 1.0).is_err());
        assert!(LinearHead::train(&[&a[..]], &[2], 2, 1.0).is_err());
    }
}
