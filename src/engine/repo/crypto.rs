//! Keys and authenticated encryption.
//!
//! Every file a repository stores (but the key files themselves) is encrypted with the
//! repository's master key using XChaCha20-Poly1305 and a random 192-bit nonce:
//! `nonce (24 bytes) || ciphertext || tag (16 bytes)`. Blob IDs are keyed BLAKE3 of the
//! plaintext with a second 256-bit key, so an ID says nothing about the content to
//! whoever holds the storage.
//!
//! The master key is stored wrapped (encrypted) in key files, one per password or key
//! file that can open the repository. A password is stretched with Argon2id; a key file
//! or `FERRY_KEY` value (high-entropy already) goes through BLAKE3's key derivation.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Bytes an encrypted file or blob is longer than its plaintext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error(
        "data failed authentication: it was damaged or altered in storage, or belongs to another repository"
    )]
    Authentication,
    #[error("encrypted data is too short ({0} bytes) to be valid: the file is truncated")]
    Truncated(usize),
    #[error("the system random number generator failed: {0}")]
    Random(String),
    #[error("key derivation failed: {0}")]
    Kdf(String),
    #[error(
        "its Argon2id parameters ({memory_kib} KiB of memory, {iterations} iteration(s), {parallelism} lane(s)) are outside what Ferry accepts ({} to {} KiB, 1 to {} iterations, 1 to {} lanes): the key file is damaged or was not made by Ferry",
        KdfParams::MIN_MEMORY_KIB,
        KdfParams::MAX_MEMORY_KIB,
        KdfParams::MAX_ITERATIONS,
        KdfParams::MAX_PARALLELISM
    )]
    UnsafeKdf {
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
    },
    #[error(
        "Argon2id needs {mib} MiB of memory for this key file, which this machine cannot give now: free memory, or open the repository with another key"
    )]
    KdfMemory { mib: u64 },
}

/// Fills `buf` with random bytes from the operating system.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), CryptoError> {
    getrandom::fill(buf).map_err(|e| CryptoError::Random(e.to_string()))
}

/// A random 32-byte value as lowercase hex: used for names of locks, keys, snapshots.
pub fn random_id() -> Result<String, CryptoError> {
    let mut b = [0u8; 32];
    random_bytes(&mut b)?;
    Ok(hex::encode(b))
}

/// The repository's secret: an encryption key and a key for blob IDs.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey {
    encrypt: [u8; 32],
    id: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// The serialised form of a master key inside a key file (before wrapping).
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct MasterKeyRepr {
    encrypt: String,
    id: String,
}

impl MasterKey {
    /// A new random master key.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut k = MasterKey {
            encrypt: [0; 32],
            id: [0; 32],
        };
        random_bytes(&mut k.encrypt)?;
        random_bytes(&mut k.id)?;
        Ok(k)
    }

    /// The keyed BLAKE3 hash that names a blob.
    pub fn blob_id(&self, plaintext: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(&self.id, plaintext).as_bytes()
    }

    /// Encrypts `plaintext` into `nonce || ciphertext || tag`.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        seal(&self.encrypt, plaintext)
    }

    /// Encrypts `flag || payload` without an intermediate copy: the layout is the same
    /// as [`MasterKey::encrypt`] of the concatenation.
    pub fn encrypt_with_flag(&self, flag: u8, payload: &[u8]) -> Result<Vec<u8>, CryptoError> {
        use chacha20poly1305::aead::AeadInPlace;
        let mut out = Vec::with_capacity(NONCE_LEN + 1 + payload.len() + TAG_LEN);
        out.resize(NONCE_LEN, 0);
        random_bytes(&mut out[..NONCE_LEN])?;
        out.push(flag);
        out.extend_from_slice(payload);
        let cipher = XChaCha20Poly1305::new((&self.encrypt).into());
        let (nonce, body) = out.split_at_mut(NONCE_LEN);
        let tag = cipher
            .encrypt_in_place_detached(XNonce::from_slice(nonce), b"", body)
            .map_err(|_| CryptoError::Authentication)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Decrypts and authenticates data produced by [`MasterKey::encrypt`].
    pub fn decrypt(&self, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        open(&self.encrypt, data)
    }

    /// The key as text, for a process that opens the repository without a key file (an
    /// in-cluster agent, [`crate::Repository::open_with_key`]). Whoever holds it can read
    /// and write everything in the repository.
    pub fn export(&self) -> zeroize::Zeroizing<String> {
        let mut bytes = self.to_json();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        bytes.zeroize();
        zeroize::Zeroizing::new(text)
    }

    /// A key [`MasterKey::export`] gave, or `None` when `text` is not one.
    pub fn import(text: &str) -> Option<MasterKey> {
        MasterKey::from_json(text.trim().as_bytes())
    }

    fn to_json(&self) -> Vec<u8> {
        let repr = MasterKeyRepr {
            encrypt: hex::encode(self.encrypt),
            id: hex::encode(self.id),
        };
        serde_json::to_vec(&repr).unwrap_or_default()
    }

    fn from_json(data: &[u8]) -> Option<Self> {
        let repr: MasterKeyRepr = serde_json::from_slice(data).ok()?;
        let mut k = MasterKey {
            encrypt: [0; 32],
            id: [0; 32],
        };
        hex::decode_to_slice(&repr.encrypt, &mut k.encrypt).ok()?;
        hex::decode_to_slice(&repr.id, &mut k.id).ok()?;
        Some(k)
    }
}

fn seal(key: &[u8; 32], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let mut nonce = [0u8; NONCE_LEN];
    random_bytes(&mut nonce)?;
    let ct = cipher
        .encrypt(XNonce::from_slice(&nonce), plaintext)
        .map_err(|_| CryptoError::Authentication)?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

fn open(key: &[u8; 32], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if data.len() < OVERHEAD {
        return Err(CryptoError::Truncated(data.len()));
    }
    let cipher = XChaCha20Poly1305::new(key.into());
    let (nonce, ct) = data.split_at(NONCE_LEN);
    cipher
        .decrypt(XNonce::from_slice(nonce), ct)
        .map_err(|_| CryptoError::Authentication)
}

/// Argon2id cost parameters, stored in each password key file.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane: about a quarter of a second on a current core,
    /// OWASP's recommended floor is 19 MiB / 2 passes.
    fn default() -> Self {
        KdfParams {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

impl KdfParams {
    /// The least memory accepted: 8 KiB per lane is Argon2's own floor.
    pub const MIN_MEMORY_KIB: u32 = 8;
    /// The most memory accepted, 4 GiB: a key file asking for more is damaged or
    /// hostile (Argon2 would abort the process trying to allocate it).
    pub const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
    /// The most passes accepted (the default is 3).
    pub const MAX_ITERATIONS: u32 = 100;
    /// The most lanes accepted (the default is 1).
    pub const MAX_PARALLELISM: u32 = 64;

    /// Refuses parameters no Ferry writes and no machine should be asked to run: they
    /// come from key files, which anyone with write access to the storage can change.
    pub fn check(&self) -> Result<(), CryptoError> {
        let ok = (1..=Self::MAX_PARALLELISM).contains(&self.parallelism)
            && (1..=Self::MAX_ITERATIONS).contains(&self.iterations)
            && self.memory_kib <= Self::MAX_MEMORY_KIB
            && self.memory_kib >= Self::MIN_MEMORY_KIB.saturating_mul(self.parallelism);
        if ok {
            Ok(())
        } else {
            Err(CryptoError::UnsafeKdf {
                memory_kib: self.memory_kib,
                iterations: self.iterations,
                parallelism: self.parallelism,
            })
        }
    }

    /// Deliberately weak parameters for tests; never the default.
    pub fn insecure_fast() -> Self {
        KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }
}

/// What unlocks a key file: a password (stretched with Argon2id) or high-entropy key
/// material from a key file or the environment.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub enum Secret {
    Password(String),
    KeyMaterial(Vec<u8>),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Password(_) => f.write_str("Secret::Password(..)"),
            Secret::KeyMaterial(_) => f.write_str("Secret::KeyMaterial(..)"),
        }
    }
}

impl Secret {
    fn kind(&self) -> KeyKind {
        match self {
            Secret::Password(_) => KeyKind::Password,
            Secret::KeyMaterial(_) => KeyKind::KeyFile,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum KeyKind {
    Password,
    KeyFile,
}

/// A key file as stored under `keys/` (plaintext JSON; the master key inside is wrapped).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    /// Format version of this key file and of the repository it opens.
    pub version: u32,
    pub kind: KeyKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kdf: Option<KdfParams>,
    /// Hex salt for the KDF.
    pub salt: String,
    /// Hex `nonce || ciphertext || tag` of the master key.
    pub wrapped: String,
    pub created: chrono::DateTime<chrono::Utc>,
    pub host: String,
    pub username: String,
    #[serde(default)]
    pub label: String,
}

impl KeyFile {
    /// Wraps `master` with `secret`.
    pub fn wrap(
        master: &MasterKey,
        secret: &Secret,
        kdf: KdfParams,
        version: u32,
        label: &str,
    ) -> Result<KeyFile, CryptoError> {
        let mut salt = [0u8; 32];
        random_bytes(&mut salt)?;
        let kind = secret.kind();
        let kdf = (kind == KeyKind::Password).then_some(kdf);
        let mut kek = derive_kek(secret, &salt, kdf)?;
        let mut plain = master.to_json();
        let wrapped = seal(&kek, &plain);
        kek.zeroize();
        plain.zeroize();
        Ok(KeyFile {
            version,
            kind,
            kdf,
            salt: hex::encode(salt),
            wrapped: hex::encode(wrapped?),
            created: chrono::Utc::now(),
            host: crate::hostname(),
            username: crate::username(),
            label: label.to_string(),
        })
    }

    /// Unwraps the master key, or `None` if `secret` does not open this key file (or the
    /// key file is malformed).
    pub fn unwrap_key(&self, secret: &Secret) -> Result<Option<MasterKey>, CryptoError> {
        if secret.kind() != self.kind {
            return Ok(None);
        }
        let (Ok(salt), Ok(wrapped)) = (hex::decode(&self.salt), hex::decode(&self.wrapped)) else {
            return Ok(None);
        };
        let mut kek = derive_kek(secret, &salt, self.kdf)?;
        let plain = open(&kek, &wrapped);
        kek.zeroize();
        match plain {
            Ok(mut p) => {
                let k = MasterKey::from_json(&p);
                p.zeroize();
                Ok(k)
            }
            Err(_) => Ok(None),
        }
    }
}

fn derive_kek(
    secret: &Secret,
    salt: &[u8],
    kdf: Option<KdfParams>,
) -> Result<[u8; 32], CryptoError> {
    let mut out = [0u8; 32];
    match secret {
        Secret::Password(pw) => {
            let p = kdf.unwrap_or_default();
            p.check()?;
            let params = argon2::Params::new(p.memory_kib, p.iterations, p.parallelism, Some(32))
                .map_err(|e| CryptoError::Kdf(e.to_string()))?;
            // The memory is reserved here, so that a machine short of it gets an error
            // rather than an abort inside Argon2.
            let count = params.block_count();
            let mut blocks: Vec<argon2::Block> = Vec::new();
            blocks
                .try_reserve_exact(count)
                .map_err(|_| CryptoError::KdfMemory {
                    mib: (count as u64 * argon2::Block::SIZE as u64) >> 20,
                })?;
            blocks.resize(count, argon2::Block::default());
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                .hash_password_into_with_memory(pw.as_bytes(), salt, &mut out, &mut blocks)
                .map_err(|e| CryptoError::Kdf(e.to_string()))?;
        }
        Secret::KeyMaterial(material) => {
            let mut h = blake3::Hasher::new_derive_key("ferry 2026 key-file wrapping key v1");
            h.update(salt);
            h.update(material);
            out = *h.finalize().as_bytes();
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypt_round_trip_and_tamper() {
        let k = MasterKey::generate().unwrap();
        let ct = k.encrypt(b"hello").unwrap();
        assert_eq!(ct.len(), 5 + OVERHEAD);
        assert_eq!(k.decrypt(&ct).unwrap(), b"hello");
        let mut bad = ct.clone();
        bad[30] ^= 1;
        assert!(matches!(k.decrypt(&bad), Err(CryptoError::Authentication)));
        assert!(matches!(
            k.decrypt(&ct[..10]),
            Err(CryptoError::Truncated(10))
        ));
        let other = MasterKey::generate().unwrap();
        assert!(other.decrypt(&ct).is_err());
    }

    #[test]
    fn key_file_wraps_and_rejects_wrong_secret() {
        let k = MasterKey::generate().unwrap();
        let pw = Secret::Password("correct horse".into());
        let kf = KeyFile::wrap(&k, &pw, KdfParams::insecure_fast(), 1, "test").unwrap();
        let got = kf.unwrap_key(&pw).unwrap().unwrap();
        assert_eq!(got.blob_id(b"x"), k.blob_id(b"x"));
        assert!(
            kf.unwrap_key(&Secret::Password("wrong".into()))
                .unwrap()
                .is_none()
        );
        assert!(
            kf.unwrap_key(&Secret::KeyMaterial(b"correct horse".to_vec()))
                .unwrap()
                .is_none()
        );

        let km = Secret::KeyMaterial(vec![7; 32]);
        let kf2 = KeyFile::wrap(&k, &km, KdfParams::default(), 1, "").unwrap();
        assert!(kf2.kdf.is_none());
        assert!(kf2.unwrap_key(&km).unwrap().is_some());
        assert!(
            kf2.unwrap_key(&Secret::KeyMaterial(vec![8; 32]))
                .unwrap()
                .is_none()
        );
    }

    /// Argon2 parameters from a key file are checked before Argon2 runs: 4 TiB of
    /// memory used to abort the process, endless iterations to hang it.
    #[test]
    fn absurd_kdf_parameters_are_refused_before_argon2_runs() {
        let k = MasterKey::generate().unwrap();
        let pw = Secret::Password("pw".into());
        let mut kf = KeyFile::wrap(&k, &pw, KdfParams::insecure_fast(), 1, "").unwrap();
        let fast = KdfParams::insecure_fast();
        for bad in [
            KdfParams {
                memory_kib: u32::MAX,
                ..fast
            },
            KdfParams {
                iterations: u32::MAX,
                ..fast
            },
            KdfParams {
                iterations: 0,
                ..fast
            },
            KdfParams {
                parallelism: 1 << 20,
                ..fast
            },
            KdfParams {
                memory_kib: 8,
                parallelism: 4,
                ..fast
            },
        ] {
            kf.kdf = Some(bad);
            let err = kf.unwrap_key(&pw).unwrap_err();
            assert!(
                matches!(err, CryptoError::UnsafeKdf { .. }),
                "{bad:?}: {err}"
            );
            assert!(err.to_string().contains("Argon2id"), "{err}");
            assert!(KeyFile::wrap(&k, &pw, bad, 1, "").is_err());
        }
        kf.kdf = Some(fast);
        assert!(kf.unwrap_key(&pw).unwrap().is_some());
        assert!(KdfParams::default().check().is_ok());
    }

    #[test]
    fn blob_ids_are_keyed() {
        let a = MasterKey::generate().unwrap();
        let b = MasterKey::generate().unwrap();
        assert_ne!(a.blob_id(b"same"), b.blob_id(b"same"));
        assert_ne!(a.blob_id(b"same"), *blake3::hash(b"same").as_bytes());
    }
}

#[cfg(test)]
mod flag_tests {
    use super::*;

    #[test]
    fn encrypt_with_flag_matches_plain_layout() {
        let k = MasterKey::generate().unwrap();
        let ct = k.encrypt_with_flag(7, b"payload").unwrap();
        assert_eq!(k.decrypt(&ct).unwrap(), b"\x07payload");
    }
}
