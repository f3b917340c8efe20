//! API keys per tenant: `authorization: Bearer KEY` on every `FirstReply`
//! call (health and reflection stay open for probes), checked by an
//! interceptor layer in front of the service. Keys are stored as SHA-256
//! hashes (`[auth] keys = ["tenant:HEX"]`, `firstreply hash-key KEY` prints
//! one); `FIRSTREPLY_API_KEYS="tenant:key,…"` gives plain keys for
//! development. A key for tenant `*` may act for every tenant.

use sha2::{Digest, Sha256};
use tonic::{Request, Status};

/// Who is calling: the tenant a key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `None` for an operator key (`*`), which may act for any tenant.
    pub tenant: Option<String>,
}

/// The keys that may call, by hash.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    keys: Vec<(Option<String>, [u8; 32])>,
}

pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Equal in time independent of where the bytes differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn tenant_of(name: &str) -> Option<String> {
    (name != "*").then(|| name.to_string())
}

impl ApiKeys {
    /// From hashed entries (`tenant:HEX`) and plain development entries
    /// (`tenant:key`); errors name the bad entry's position, never the key.
    pub fn new(hashed: &[String], plain: &[String]) -> anyhow::Result<ApiKeys> {
        let mut keys = Vec::new();
        for (i, entry) in hashed.iter().enumerate() {
            let (tenant, digest) = entry
                .split_once(':')
                .and_then(|(t, h)| Some((t.trim(), parse_hex(h.trim())?)))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "auth.keys[{i}] is not \"tenant:SHA256-HEX\" (firstreply hash-key KEY)"
                    )
                })?;
            anyhow::ensure!(!tenant.is_empty(), "auth.keys[{i}] names no tenant");
            keys.push((tenant_of(tenant), digest));
        }
        for (i, entry) in plain.iter().enumerate() {
            let (tenant, key) = entry
                .split_once(':')
                .map(|(t, k)| (t.trim(), k.trim()))
                .filter(|(t, k)| !t.is_empty() && !k.is_empty())
                .ok_or_else(|| {
                    anyhow::anyhow!("FIRSTREPLY_API_KEYS entry {i} is not tenant:key")
                })?;
            keys.push((tenant_of(tenant), hash_key(key)));
        }
        Ok(ApiKeys { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The caller a bearer key belongs to. Every stored key is compared, in
    /// constant time, so the time taken tells nothing about which matched.
    pub fn caller(&self, key: &str) -> Option<Caller> {
        let digest = hash_key(key);
        let mut found = None;
        for (tenant, stored) in &self.keys {
            if constant_time_eq(stored, &digest) && found.is_none() {
                found = Some(Caller {
                    tenant: tenant.clone(),
                });
            }
        }
        found
    }

    /// The interceptor: UNAUTHENTICATED without a known key; otherwise the
    /// caller rides along in the request's extensions.
    pub fn check(&self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let key = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| Status::unauthenticated("send `authorization: Bearer API_KEY`"))?;
        let caller = self
            .caller(key)
            .ok_or_else(|| Status::unauthenticated("unknown API key"))?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

/// Checks that the caller may act for `tenant` and fills in the caller's
/// own tenant where the request names none. Without authentication every
/// tenant is allowed.
pub fn scope(caller: Option<&Caller>, tenant: &mut String) -> Result<(), Status> {
    let Some(Caller {
        tenant: Some(own), ..
    }) = caller
    else {
        return Ok(());
    };
    if tenant.trim().is_empty() {
        *tenant = own.clone();
        return Ok(());
    }
    if tenant.trim() == own {
        Ok(())
    } else {
        Err(Status::permission_denied(format!(
            "this API key is for tenant {own:?}, not {:?}",
            tenant.trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_resolve_to_their_tenant_and_scope_it() {
        let hashed = vec![format!("acme:{}", hex(&hash_key("s3cret")))];
        let keys = ApiKeys::new(&hashed, &["*:root-key".to_string()]).unwrap();
        let acme = keys.caller("s3cret").unwrap();
        assert_eq!(acme.tenant.as_deref(), Some("acme"));
        assert_eq!(keys.caller("root-key").unwrap().tenant, None);
        assert!(keys.caller("s3cret ").is_none());

        let mut tenant = String::new();
        scope(Some(&acme), &mut tenant).unwrap();
        assert_eq!(tenant, "acme");
        let mut other = "globex".to_string();
        let denied = scope(Some(&acme), &mut other).unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert!(ApiKeys::new(&["acme:nothex".into()], &[]).is_err());
    }
}
