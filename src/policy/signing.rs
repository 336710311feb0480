//! Administrator keys (Ed25519) and the signed policy chain.
//!
//! Every version of the policy is a [`PolicyEnvelope`]: the exact JSON text of a
//! [`PolicyBody`] (repository ID, version number, the file it follows, the
//! administrators, the YAML document), the signer's public key and an Ed25519 signature
//! over `"ferry-policy-v1\n"` followed by that text. Its file name is the BLAKE3 hash of
//! the body, so `previous` pins the exact predecessor. The first version is signed by one
//! of its own administrators; every later one by an administrator of the version it
//! follows. [`verify_chain`] checks all of it.

use std::collections::BTreeMap;
use std::path::Path;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::document::{Policy, parse_admin_key};
use super::{PolicyError, Result};
use ferry_repo::id::Id;

/// What is signed: this prefix, then the body's JSON text.
const DOMAIN: &[u8] = b"ferry-policy-v1\n";

/// The version of the envelope and body formats.
pub const ENVELOPE_VERSION: u32 = 1;

/// What an administrator key file holds (JSON, owner-only).
#[derive(Serialize, Deserialize)]
struct KeyFileDoc {
    kind: String,
    version: u32,
    label: String,
    created: chrono::DateTime<chrono::Utc>,
    public: String,
    secret: String,
}

const KEY_KIND: &str = "ferry-policy-admin-key";

/// An administrator's signing key.
pub struct AdminKey {
    key: SigningKey,
    pub label: String,
}

impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdminKey({}, {:?})", self.public(), self.label)
    }
}

/// `ed25519:<hex>` of a public key.
pub fn public_text(key: &VerifyingKey) -> String {
    format!("ed25519:{}", hex::encode(key.to_bytes()))
}

impl AdminKey {
    /// A new random key.
    pub fn generate(label: &str) -> Result<AdminKey> {
        let mut seed = Zeroizing::new([0u8; 32]);
        ferry_repo::crypto::random_bytes(seed.as_mut())
            .map_err(|e| PolicyError::Repository(e.into()))?;
        Ok(AdminKey {
            key: SigningKey::from_bytes(&seed),
            label: label.to_string(),
        })
    }

    /// `ed25519:<64 hex digits>`: what `admins:` lists.
    pub fn public(&self) -> String {
        public_text(&self.key.verifying_key())
    }

    /// Writes the key to a new file readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let secret = Zeroizing::new(hex::encode(self.key.to_bytes()));
        let doc = KeyFileDoc {
            kind: KEY_KIND.into(),
            version: ENVELOPE_VERSION,
            label: self.label.clone(),
            created: chrono::Utc::now(),
            public: self.public(),
            secret: secret.to_string(),
        };
        let text = Zeroizing::new(serde_json::to_vec_pretty(&doc).map_err(|e| {
            PolicyError::BadKeyFile {
                path: path.to_path_buf(),
                detail: e.to_string(),
            }
        })?);
        let io = |source| PolicyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    PolicyError::KeyExists {
                        path: path.to_path_buf(),
                    }
                } else {
                    io(e)
                }
            })?;
        f.write_all(&text).map_err(io)?;
        f.sync_all().map_err(io)?;
        Ok(())
    }

    /// Reads a key file written by [`AdminKey::save`].
    pub fn load(path: &Path) -> Result<AdminKey> {
        let bad = |detail: String| PolicyError::BadKeyFile {
            path: path.to_path_buf(),
            detail,
        };
        let raw = Zeroizing::new(std::fs::read(path).map_err(|source| PolicyError::Io {
            path: path.to_path_buf(),
            source,
        })?);
        let doc: KeyFileDoc = serde_json::from_slice(&raw).map_err(|e| bad(e.to_string()))?;
        if doc.kind != KEY_KIND {
            return Err(bad(format!("its kind is {:?}", doc.kind)));
        }
        if doc.version != ENVELOPE_VERSION {
            return Err(bad(format!(
                "it has version {}, this Ferry reads version {ENVELOPE_VERSION}",
                doc.version
            )));
        }
        let secret = Zeroizing::new(doc.secret);
        let bytes = Zeroizing::new(
            hex::decode(secret.as_bytes()).map_err(|_| bad("the secret is not hex".into()))?,
        );
        let seed: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| bad("the secret is not 32 bytes".into()))?;
        let key = SigningKey::from_bytes(&seed);
        let k = AdminKey {
            key,
            label: doc.label,
        };
        if k.public() != doc.public {
            return Err(bad(
                "its public key does not belong to its secret key (the file was edited)".into(),
            ));
        }
        Ok(k)
    }

    fn sign(&self, body: &str) -> String {
        let mut msg = DOMAIN.to_vec();
        msg.extend_from_slice(body.as_bytes());
        hex::encode(self.key.sign(&msg).to_bytes())
    }
}

/// One version of the policy, as signed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyBody {
    pub version: u32,
    /// The repository this policy belongs to (a policy copied into another repository
    /// is refused).
    pub repository: Id,
    /// 1 for the first policy, then one more per change.
    pub seq: u64,
    /// The file name of the version this one follows.
    pub previous: Option<String>,
    /// Who may sign the next version (`ed25519:<hex>`), from the document's `admins:`.
    pub admins: Vec<String>,
    pub time: chrono::DateTime<chrono::Utc>,
    /// Who signed, in words (the key's label).
    #[serde(default)]
    pub signer_label: String,
    /// The YAML document, exactly as the administrator wrote it.
    pub document: String,
}

/// What a policy file holds (encrypted with the repository's master key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyEnvelope {
    pub version: u32,
    /// The JSON text of a [`PolicyBody`]: the signed bytes.
    pub body: String,
    /// `ed25519:<hex>` of the signing key.
    pub signer: String,
    /// Hex of the 64-byte signature; empty means unsigned.
    pub signature: String,
}

impl PolicyEnvelope {
    /// Signs a new policy version.
    pub fn sign(body: &PolicyBody, key: &AdminKey) -> Result<(String, PolicyEnvelope)> {
        let text = serde_json::to_string(body).map_err(|e| PolicyError::Invalid(e.to_string()))?;
        let name = Id::hash(text.as_bytes()).to_hex();
        let env = PolicyEnvelope {
            version: ENVELOPE_VERSION,
            signature: key.sign(&text),
            signer: key.public(),
            body: text,
        };
        Ok((name, env))
    }

    /// Checks the name and the signature (not who signed: that is the chain's
    /// business) and returns the body.
    pub fn open(&self, name: &str) -> Result<PolicyBody> {
        let tampered = |detail: &str| PolicyError::Tampered {
            name: name.to_string(),
            detail: detail.to_string(),
        };
        if self.version != ENVELOPE_VERSION {
            return Err(tampered(&format!(
                "it has envelope version {}, this Ferry reads version {ENVELOPE_VERSION}",
                self.version
            )));
        }
        if self.signature.is_empty() || self.signer.is_empty() {
            return Err(PolicyError::Unsigned {
                name: name.to_string(),
            });
        }
        if Id::hash(self.body.as_bytes()).to_hex() != name {
            return Err(tampered("its content does not match its name"));
        }
        let key = parse_admin_key(&self.signer)
            .ok()
            .and_then(|b| VerifyingKey::from_bytes(&b).ok())
            .ok_or_else(|| tampered("its signer is not an Ed25519 public key"))?;
        let sig: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| tampered("its signature is not 64 bytes of hex"))?;
        let mut msg = DOMAIN.to_vec();
        msg.extend_from_slice(self.body.as_bytes());
        key.verify_strict(&msg, &Signature::from_bytes(&sig))
            .map_err(|_| tampered("its signature does not verify"))?;
        serde_json::from_str(&self.body)
            .map_err(|e| tampered(&format!("its body is not readable: {e}")))
    }
}

/// A verified chain's newest version.
#[derive(Debug, Clone)]
pub struct Verified {
    pub name: String,
    pub body: PolicyBody,
    pub signer: String,
    pub policy: Policy,
    /// Every version, oldest first: (name, seq, signer).
    pub history: Vec<(String, u64, String)>,
}

/// Verifies every policy file of a repository and returns the newest version, or None
/// when there are none. `pin` is what the repository config requires.
pub fn verify_chain(
    repository: &Id,
    files: Vec<(String, PolicyEnvelope)>,
    pin: Option<(&str, u64)>,
) -> Result<Option<Verified>> {
    if files.is_empty() {
        return match pin {
            Some((head, seq)) => Err(PolicyError::Missing {
                head: head.to_string(),
                seq,
            }),
            None => Ok(None),
        };
    }
    let mut bodies: BTreeMap<String, (PolicyBody, String)> = BTreeMap::new();
    for (name, env) in files {
        let body = env.open(&name)?;
        if &body.repository != repository {
            return Err(PolicyError::Tampered {
                name,
                detail: "it belongs to another repository".into(),
            });
        }
        bodies.insert(name, (body, env.signer));
    }
    let tampered = |name: &str, detail: String| PolicyError::Tampered {
        name: name.to_string(),
        detail,
    };
    // The first version: no predecessor, version 1, signed by one of its own admins.
    let genesis: Vec<&String> = bodies
        .iter()
        .filter(|(_, (b, _))| b.previous.is_none())
        .map(|(n, _)| n)
        .collect();
    let first = match genesis.as_slice() {
        [one] => (*one).clone(),
        [] => {
            let name = bodies.keys().next().cloned().unwrap_or_default();
            return Err(tampered(&name, "no policy version is the first one".into()));
        }
        [a, b, ..] => {
            return Err(PolicyError::Forked {
                seq: 0,
                a: (*a).clone(),
                b: (*b).clone(),
            });
        }
    };
    let mut current = first;
    let mut history = Vec::new();
    loop {
        let Some((body, signer)) = bodies.get(&current) else {
            return Err(tampered(
                &current,
                "the chain refers to a missing version".into(),
            ));
        };
        let authorised_by: &[String] = match &body.previous {
            None => {
                if body.seq != 1 {
                    return Err(tampered(
                        &current,
                        format!("the first version has number {}", body.seq),
                    ));
                }
                &body.admins
            }
            Some(prev) => {
                let (pb, _) = bodies
                    .get(prev)
                    .ok_or_else(|| tampered(&current, "its predecessor is missing".into()))?;
                if body.seq != pb.seq + 1 {
                    return Err(tampered(
                        &current,
                        format!("version {} follows version {}", body.seq, pb.seq),
                    ));
                }
                &pb.admins
            }
        };
        if !authorised_by.contains(signer) {
            return Err(tampered(
                &current,
                format!(
                    "it is signed by {signer}, who is not an administrator of the version it follows"
                ),
            ));
        }
        history.push((current.clone(), body.seq, signer.clone()));
        let next: Vec<&String> = bodies
            .iter()
            .filter(|(_, (b, _))| b.previous.as_deref() == Some(current.as_str()))
            .map(|(n, _)| n)
            .collect();
        match next.as_slice() {
            [] => break,
            [one] => current = (*one).clone(),
            [a, b, ..] => {
                return Err(PolicyError::Forked {
                    seq: body.seq,
                    a: (*a).clone(),
                    b: (*b).clone(),
                });
            }
        }
    }
    if history.len() != bodies.len() {
        let stray = bodies
            .keys()
            .find(|n| !history.iter().any(|(h, _, _)| h == *n))
            .cloned()
            .unwrap_or_default();
        return Err(tampered(
            &stray,
            "it is not part of the policy chain".into(),
        ));
    }
    let (body, signer) = bodies.remove(&current).ok_or_else(|| {
        tampered(
            &current,
            "the newest version vanished while verifying".into(),
        )
    })?;
    if let Some((head, seq)) = pin {
        if body.seq < seq {
            return Err(PolicyError::RolledBack {
                pinned: seq,
                found: body.seq,
            });
        }
        if !history.iter().any(|(n, s, _)| n == head && *s == seq) {
            return Err(tampered(
                head,
                format!(
                    "the repository config requires it as version {seq}, but the chain does not hold it"
                ),
            ));
        }
    }
    let policy = Policy::parse(&body.document)
        .map_err(|e| tampered(&current, format!("its document does not parse: {e}")))?;
    if policy.admins != body.admins {
        return Err(tampered(
            &current,
            "its signed administrators differ from its document's".into(),
        ));
    }
    Ok(Some(Verified {
        name: current,
        body,
        signer,
        policy,
        history,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(admins: &[&AdminKey]) -> String {
        let list: Vec<String> = admins
            .iter()
            .map(|k| format!("\"{}\"", k.public()))
            .collect();
        format!("version: 1\nadmins: [{}]\n", list.join(", "))
    }

    fn body(repo: &Id, seq: u64, previous: Option<&str>, document: String) -> PolicyBody {
        PolicyBody {
            version: 1,
            repository: *repo,
            seq,
            previous: previous.map(str::to_string),
            admins: Policy::parse(&document).unwrap().admins,
            time: chrono::Utc::now(),
            signer_label: String::new(),
            document,
        }
    }

    #[test]
    fn a_chain_verifies_and_every_break_is_refused() {
        let repo = Id::hash(b"repo");
        let alice = AdminKey::generate("alice").unwrap();
        let bob = AdminKey::generate("bob").unwrap();
        let mallory = AdminKey::generate("mallory").unwrap();
        // v1 by alice (admins alice), v2 by alice hands over to bob, v3 by bob.
        let (n1, e1) = PolicyEnvelope::sign(&body(&repo, 1, None, doc(&[&alice])), &alice).unwrap();
        let (n2, e2) =
            PolicyEnvelope::sign(&body(&repo, 2, Some(&n1), doc(&[&bob])), &alice).unwrap();
        let (n3, e3) =
            PolicyEnvelope::sign(&body(&repo, 3, Some(&n2), doc(&[&bob])), &bob).unwrap();
        let all = vec![
            (n1.clone(), e1.clone()),
            (n2.clone(), e2.clone()),
            (n3.clone(), e3.clone()),
        ];
        let v = verify_chain(&repo, all.clone(), Some((&n3, 3)))
            .unwrap()
            .unwrap();
        assert_eq!(v.name, n3);
        assert_eq!(v.history.len(), 3);
        assert!(verify_chain(&repo, vec![], None).unwrap().is_none());

        // Missing where the config requires one.
        let e = verify_chain(&repo, vec![], Some((&n3, 3))).unwrap_err();
        assert!(matches!(e, PolicyError::Missing { seq: 3, .. }), "{e}");
        // Rolled back: v3 removed.
        let e = verify_chain(&repo, all[..2].to_vec(), Some((&n3, 3))).unwrap_err();
        assert!(
            matches!(
                e,
                PolicyError::RolledBack {
                    pinned: 3,
                    found: 2
                }
            ),
            "{e}"
        );
        // Another repository.
        let e = verify_chain(&Id::hash(b"other"), all.clone(), None).unwrap_err();
        assert!(e.to_string().contains("another repository"), "{e}");
        // An edited document: the name no longer matches.
        let mut edited = e3.clone();
        edited.body = edited.body.replace("version: 1", "version: 1 ");
        let e = verify_chain(
            &repo,
            vec![
                (n1.clone(), e1.clone()),
                (n2.clone(), e2.clone()),
                (n3.clone(), edited.clone()),
            ],
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("does not match its name"), "{e}");
        // Renamed to match: the signature fails.
        let renamed = Id::hash(edited.body.as_bytes()).to_hex();
        let e = verify_chain(
            &repo,
            vec![
                (n1.clone(), e1.clone()),
                (n2.clone(), e2.clone()),
                (renamed, edited),
            ],
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("signature does not verify"), "{e}");
        // Unsigned.
        let mut unsigned = e3.clone();
        unsigned.signature.clear();
        let e = verify_chain(
            &repo,
            vec![
                (n1.clone(), e1.clone()),
                (n2.clone(), e2.clone()),
                (n3.clone(), unsigned),
            ],
            None,
        )
        .unwrap_err();
        assert!(matches!(e, PolicyError::Unsigned { .. }), "{e}");
        // Signed by a key that is not an admin of the previous version (alice handed over).
        let (n3m, e3m) =
            PolicyEnvelope::sign(&body(&repo, 3, Some(&n2), doc(&[&mallory])), &alice).unwrap();
        let e = verify_chain(
            &repo,
            vec![
                (n1.clone(), e1.clone()),
                (n2.clone(), e2.clone()),
                (n3m, e3m),
            ],
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("not an administrator"), "{e}");
        // A self-made first version cannot sit beside the real one.
        let (nm, em) =
            PolicyEnvelope::sign(&body(&repo, 1, None, doc(&[&mallory])), &mallory).unwrap();
        let mut with_fork = all.clone();
        with_fork.push((nm, em));
        assert!(matches!(
            verify_chain(&repo, with_fork, None).unwrap_err(),
            PolicyError::Forked { .. }
        ));
        // Two successors of v2.
        let (n3b, e3b) =
            PolicyEnvelope::sign(&body(&repo, 3, Some(&n2), doc(&[&alice])), &bob).unwrap();
        let mut forked = all;
        forked.push((n3b, e3b));
        assert!(matches!(
            verify_chain(&repo, forked, None).unwrap_err(),
            PolicyError::Forked { seq: 2, .. }
        ));
    }

    #[test]
    fn key_files_round_trip_and_refuse_edits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.key");
        let k = AdminKey::generate("ops").unwrap();
        k.save(&path).unwrap();
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            k.save(&path).unwrap_err(),
            PolicyError::KeyExists { .. }
        ));
        let back = AdminKey::load(&path).unwrap();
        assert_eq!(back.public(), k.public());
        assert_eq!(back.label, "ops");
        let other = AdminKey::generate("x").unwrap();
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace(&k.public(), &other.public());
        std::fs::write(&path, text).unwrap();
        assert!(
            AdminKey::load(&path)
                .unwrap_err()
                .to_string()
                .contains("does not belong")
        );
        std::fs::write(&path, "{}").unwrap();
        assert!(matches!(
            AdminKey::load(&path).unwrap_err(),
            PolicyError::BadKeyFile { .. }
        ));
    }
}
