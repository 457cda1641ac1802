//! Cosign-compatible key-based signatures in the tag scheme.
//!
//! What `cosign sign --key` writes and `cosign verify --key` reads: a
//! simple-signing JSON payload naming the manifest digest, signed with ECDSA
//! P-256 over SHA-256 (DER, base64), stored as a layer of the image tagged
//! `sha256-<hex>.sig`. Public keys are SPKI PEM; private keys are cosign's
//! encrypted PEM (scrypt + nacl secretbox over PKCS#8) or plain PKCS#8/SEC1
//! PEM as `openssl` writes them.
//!
//! Written over `p256` rather than the `sigstore` crate: sigstore 0.15 needs
//! OpenSSL or aws-lc for its crypto backend even with no features.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use crypto_secretbox::aead::{Aead, KeyInit};
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::pkcs8::der::pem::{self, LineEnding};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The media type of a cosign signature layer.
pub const PAYLOAD_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// The layer annotation that carries the base64 signature of the layer's payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// PEM label of the encrypted private keys cosign writes today.
pub const ENCRYPTED_KEY_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";

/// PEM label of the encrypted private keys older cosign releases wrote (still read).
pub const LEGACY_ENCRYPTED_KEY_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";

/// The `type` cosign puts in every container image signature payload.
const PAYLOAD_TYPE: &str = "cosign container image signature";

// cosign's KDF parameters (sigstore/pkg/encrypted); anything else is refused
// so that a crafted key file cannot make us spend gigabytes of memory.
const SCRYPT_LOG_N_ACCEPTED: [u8; 2] = [15, 16];
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const BOX_KEY_LEN: usize = 32;

/// Why a key or a signature was refused (all bad input: exit 2).
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// The text is not a PEM block.
    #[error("not a PEM key: {0}")]
    NotPem(String),
    /// A PEM block of a kind this function does not read (e.g. a certificate where a key was expected).
    #[error("a PEM \"{found}\" block where {expected} was expected")]
    WrongPemKind {
        /// The PEM label found.
        found: String,
        /// What was expected, in words.
        expected: &'static str,
    },
    /// A key of an algorithm other than ECDSA P-256.
    #[error("{0}: only ECDSA P-256 keys (cosign's default) are supported")]
    UnsupportedKey(String),
    /// The key's encoding is damaged.
    #[error("malformed key: {0}")]
    MalformedKey(String),
    /// An encrypted private key and no password.
    #[error("the private key is encrypted and no password was given (set COSIGN_PASSWORD)")]
    PasswordNeeded,
    /// The password does not open the encrypted private key.
    #[error("wrong password: it does not decrypt the encrypted private key")]
    WrongPassword,
    /// The encrypted key's JSON envelope is damaged or uses other parameters than cosign's.
    #[error("malformed encrypted private key: {0}")]
    MalformedEncryptedKey(String),
    /// `verify` was given no key.
    #[error("no public key to verify {digest} with")]
    NoKeys {
        /// The manifest digest.
        digest: String,
    },
    /// There is no signature layer at all.
    #[error("{digest} is not signed (no signature layers); expected a signature by {expected}")]
    Unsigned {
        /// The manifest digest.
        digest: String,
        /// The keys, by name and fingerprint.
        expected: String,
    },
    /// Signature layers exist but none is a valid signature by an expected key for this digest.
    #[error("{digest} has no valid signature by {expected}: {found}")]
    NotVerified {
        /// The manifest digest.
        digest: String,
        /// The keys, by name and fingerprint.
        expected: String,
        /// What each layer was, `; `-separated.
        found: String,
    },
}

/// cosign's tag for the signatures of a manifest: `sha256:abc` → `sha256-abc.sig`.
pub fn signature_tag(manifest_digest: &str) -> String {
    format!("{}.sig", manifest_digest.replacen(':', "-", 1))
}

/// cosign's simple-signing payload for a manifest, byte for byte as cosign writes it.
pub fn payload(docker_reference: &str, manifest_digest: &str) -> Vec<u8> {
    // Field order matters to the bytes, and cosign's order is alphabetical at
    // every level, which is what serde_json's map gives with or without
    // `preserve_order` (the literal below is written in that order too).
    let value = serde_json::json!({
        "critical": {
            "identity": { "docker-reference": docker_reference },
            "image": { "docker-manifest-digest": manifest_digest },
            "type": PAYLOAD_TYPE,
        },
        "optional": null,
    });
    serde_json::to_vec(&value).expect("a JSON value of strings serializes")
}

/// An ECDSA P-256 private key that signs payloads.
pub struct SigningKey {
    key: p256::ecdsa::SigningKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret scalar: the public fingerprint identifies the key.
        f.debug_struct("SigningKey").field("public_key", &self.public_key().fingerprint()).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads a private key: cosign's encrypted PEM (with `password`), or a plain
    /// PKCS#8 `PRIVATE KEY` / SEC1 `EC PRIVATE KEY` PEM (password ignored).
    pub fn from_pem(pem_text: &str, password: Option<&[u8]>) -> Result<Self, SignatureError> {
        let (label, der) = decode_pem(pem_text)?;
        let secret = match label.as_str() {
            ENCRYPTED_KEY_LABEL | LEGACY_ENCRYPTED_KEY_LABEL => {
                let password = password.ok_or(SignatureError::PasswordNeeded)?;
                let pkcs8 = decrypt_cosign_key(&der, password)?;
                secret_from_pkcs8(&pkcs8)?
            }
            "PRIVATE KEY" => secret_from_pkcs8(&der)?,
            "EC PRIVATE KEY" => secret_from_sec1(&der)?,
            "RSA PRIVATE KEY" => return Err(SignatureError::UnsupportedKey("an RSA private key".into())),
            "OPENSSH PRIVATE KEY" => {
                return Err(SignatureError::UnsupportedKey("an OpenSSH private key".into()));
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err(SignatureError::UnsupportedKey("a PKCS#8 key encrypted by openssl (decrypt it, or use a cosign key)".into()));
            }
            other => {
                return Err(SignatureError::WrongPemKind { found: other.to_string(), expected: "a private key" });
            }
        };
        Ok(Self { key: p256::ecdsa::SigningKey::from(secret) })
    }

    /// A new random key (from the operating system's generator).
    pub fn generate() -> Self {
        Self { key: p256::ecdsa::SigningKey::random(&mut OsRng) }
    }

    /// Signs `payload`: base64 (standard, padded) of the DER ECDSA P-256/SHA-256 signature.
    pub fn sign(&self, payload: &[u8]) -> String {
        let signature: p256::ecdsa::Signature = self.key.sign(payload);
        BASE64.encode(signature.to_der().as_bytes())
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey { key: *self.key.verifying_key() }
    }

    /// The key in cosign's encrypted format (`ENCRYPTED SIGSTORE PRIVATE KEY`),
    /// which `cosign sign --key` reads with the same password.
    pub fn to_encrypted_pem(&self, password: &[u8]) -> String {
        let pkcs8 = p256::SecretKey::from(self.key.as_nonzero_scalar()).to_pkcs8_der().expect("a P-256 scalar encodes as PKCS#8");
        let mut salt = [0u8; SALT_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut salt);
        OsRng.fill_bytes(&mut nonce);
        let log_n = SCRYPT_LOG_N_ACCEPTED[0];
        let box_key = derive_box_key(password, &salt, log_n).expect("cosign's scrypt parameters are valid");
        let ciphertext =
            crypto_secretbox::XSalsa20Poly1305::new(&box_key.into()).encrypt(&nonce.into(), pkcs8.as_bytes()).expect("secretbox encrypts any length a key has");
        let envelope = EncryptedKey {
            kdf: Kdf { name: "scrypt".into(), params: ScryptParams { n: 1u64 << log_n, r: SCRYPT_R, p: SCRYPT_P }, salt: BASE64.encode(salt) },
            cipher: Cipher { name: "nacl/secretbox".into(), nonce: BASE64.encode(nonce) },
            ciphertext: BASE64.encode(ciphertext),
        };
        let json = serde_json::to_vec(&envelope).expect("the envelope serializes");
        pem::encode_string(ENCRYPTED_KEY_LABEL, LineEnding::LF, &json).expect("a PEM label of ASCII letters encodes")
    }
}

/// An ECDSA P-256 public key that verifies signatures.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: p256::ecdsa::VerifyingKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PublicKey").field(&self.fingerprint()).finish()
    }
}

impl PublicKey {
    /// Reads a `PUBLIC KEY` (SPKI) PEM, as `cosign generate-key-pair` writes `cosign.pub`.
    pub fn from_pem(pem_text: &str) -> Result<Self, SignatureError> {
        let (label, der) = decode_pem(pem_text)?;
        match label.as_str() {
            "PUBLIC KEY" => {}
            "RSA PUBLIC KEY" => return Err(SignatureError::UnsupportedKey("an RSA public key".into())),
            other => {
                return Err(SignatureError::WrongPemKind { found: other.to_string(), expected: "a PUBLIC KEY" });
            }
        }
        match p256::PublicKey::from_public_key_der(&der) {
            Ok(key) => Ok(Self { key: key.into() }),
            Err(error) => {
                let info = p256::pkcs8::spki::SubjectPublicKeyInfoRef::try_from(der.as_slice())
                    .map_err(|_| SignatureError::MalformedKey(format!("public key: {error}")))?;
                let parameter = info.algorithm.parameters_oid().ok();
                Err(unsupported_or_malformed(info.algorithm.oid, parameter, "public key", error))
            }
        }
    }

    /// `sha256:<hex>` of the SPKI DER: the same for the same key whatever file it came from.
    pub fn fingerprint(&self) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(self.spki_der())))
    }

    /// The key as a `PUBLIC KEY` PEM (what cosign reads as `cosign.pub`).
    pub fn to_pem(&self) -> String {
        p256::PublicKey::from(&self.key).to_public_key_pem(LineEnding::LF).expect("a P-256 point encodes as SPKI")
    }

    fn spki_der(&self) -> Vec<u8> {
        p256::PublicKey::from(&self.key).to_public_key_der().expect("a P-256 point encodes as SPKI").into_vec()
    }

    fn verifies(&self, payload: &[u8], signature: &p256::ecdsa::Signature) -> bool {
        self.key.verify(payload, signature).is_ok()
    }
}

/// One layer of a signature image: its payload blob and the signature annotation's value.
#[derive(Debug, Clone)]
pub struct SignedLayer {
    /// The layer's bytes (the simple-signing JSON).
    pub payload: Vec<u8>,
    /// The base64 signature from [`SIGNATURE_ANNOTATION`].
    pub signature: String,
}

/// A trusted public key and where it came from.
#[derive(Debug, Clone)]
pub struct NamedKey {
    /// Where the key came from, e.g. its file.
    pub name: String,
    /// The key.
    pub key: PublicKey,
}

/// Who signed: the key that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// The [`NamedKey::name`] of the key.
    pub key: String,
    /// Its [`PublicKey::fingerprint`].
    pub fingerprint: String,
}

/// Accepts when a layer's signature verifies under one of `keys` and that
/// layer's payload is cosign JSON naming `manifest_digest`.
pub fn verify(layers: &[SignedLayer], keys: &[NamedKey], manifest_digest: &str) -> Result<Signer, SignatureError> {
    if keys.is_empty() {
        return Err(SignatureError::NoKeys { digest: manifest_digest.to_string() });
    }
    let expected = keys.iter().map(|named| format!("{} ({})", named.name, named.key.fingerprint())).collect::<Vec<_>>().join(", ");
    if layers.is_empty() {
        return Err(SignatureError::Unsigned { digest: manifest_digest.to_string(), expected });
    }
    let mut found = Vec::new();
    for (index, layer) in layers.iter().enumerate() {
        let layer_number = index + 1;
        let signature = match decode_signature(&layer.signature) {
            Ok(signature) => signature,
            Err(why) => {
                found.push(format!("layer {layer_number}: {why}"));
                continue;
            }
        };
        let Some(named) = keys.iter().find(|named| named.key.verifies(&layer.payload, &signature)) else {
            found.push(format!("layer {layer_number}: a signature by another key, or over other bytes"));
            continue;
        };
        match signed_digest(&layer.payload) {
            Some(digest) if digest == manifest_digest => {
                return Ok(Signer { key: named.name.clone(), fingerprint: named.key.fingerprint() });
            }
            Some(digest) => found.push(format!("layer {layer_number}: signed by {} for {digest}", named.name)),
            None => found.push(format!("layer {layer_number}: signed by {}, but the payload is not cosign simple-signing JSON", named.name)),
        }
    }
    Err(SignatureError::NotVerified { digest: manifest_digest.to_string(), expected, found: found.join("; ") })
}

fn decode_signature(text: &str) -> Result<p256::ecdsa::Signature, &'static str> {
    // cosign tolerates line breaks in the annotation; so do we.
    let cleaned: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = BASE64.decode(cleaned).map_err(|_| "the signature is not base64")?;
    p256::ecdsa::Signature::from_der(&der).map_err(|_| "the signature is not a DER ECDSA signature")
}

/// `critical.image.docker-manifest-digest` of a simple-signing payload.
fn signed_digest(payload: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let critical = value.get("critical")?;
    if critical.get("type")?.as_str()? != PAYLOAD_TYPE {
        return None;
    }
    Some(critical.get("image")?.get("docker-manifest-digest")?.as_str()?.to_string())
}

/// The first PEM block of `text` other than `EC PARAMETERS` (which
/// `openssl ecparam -genkey` writes before the key); text around the blocks,
/// such as comments, is ignored.
fn decode_pem(text: &str) -> Result<(String, Vec<u8>), SignatureError> {
    let mut rest = text;
    loop {
        let start = rest.find("-----BEGIN ").ok_or_else(|| SignatureError::NotPem("no -----BEGIN line".into()))?;
        let block = &rest[start..];
        let end_marker = block.find("-----END ").ok_or_else(|| SignatureError::NotPem("no -----END line".into()))?;
        let end = block[end_marker..].find('\n').map_or(block.len(), |newline| end_marker + newline + 1);
        let normalized = format!("{}\n", block[..end].trim_end().replace("\r\n", "\n"));
        let (label, der) = pem::decode_vec(normalized.as_bytes()).map_err(|error| SignatureError::NotPem(error.to_string()))?;
        if label != "EC PARAMETERS" {
            return Ok((label.to_string(), der));
        }
        rest = &block[end..];
    }
}

fn secret_from_pkcs8(der: &[u8]) -> Result<p256::SecretKey, SignatureError> {
    p256::SecretKey::from_pkcs8_der(der).map_err(|error| match p256::pkcs8::PrivateKeyInfo::try_from(der) {
        Ok(info) => {
            let parameter = info.algorithm.parameters_oid().ok();
            unsupported_or_malformed(info.algorithm.oid, parameter, "private key", error)
        }
        Err(_) => SignatureError::MalformedKey(format!("private key: {error}")),
    })
}

fn secret_from_sec1(der: &[u8]) -> Result<p256::SecretKey, SignatureError> {
    p256::SecretKey::from_sec1_der(der).map_err(|_| match sec1::EcPrivateKey::try_from(der) {
        Ok(parsed) => match parsed.parameters.and_then(|parameters| parameters.named_curve()) {
            Some(curve) if curve != P256_OID => SignatureError::UnsupportedKey(format!("an EC key on {}", curve_name(curve))),
            _ => SignatureError::MalformedKey("EC private key: not a valid P-256 key".into()),
        },
        Err(error) => SignatureError::MalformedKey(format!("EC private key: {error}")),
    })
}

use p256::pkcs8::ObjectIdentifier;

const EC_PUBLIC_KEY_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

fn curve_name(curve: ObjectIdentifier) -> String {
    match curve.to_string().as_str() {
        "1.3.132.0.34" => "P-384".into(),
        "1.3.132.0.35" => "P-521".into(),
        "1.3.132.0.10" => "secp256k1".into(),
        "1.2.840.10045.3.1.7" => "P-256".into(),
        other => format!("curve {other}"),
    }
}

fn unsupported_or_malformed(algorithm: ObjectIdentifier, parameter: Option<ObjectIdentifier>, what: &str, error: impl fmt::Display) -> SignatureError {
    if algorithm == EC_PUBLIC_KEY_OID {
        return match parameter {
            Some(curve) if curve != P256_OID => SignatureError::UnsupportedKey(format!("an EC {what} on {}", curve_name(curve))),
            _ => SignatureError::MalformedKey(format!("{what}: {error}")),
        };
    }
    let name = match algorithm.to_string().as_str() {
        "1.2.840.113549.1.1.1" => "RSA".to_string(),
        "1.3.101.112" => "Ed25519".to_string(),
        "1.3.101.113" => "Ed448".to_string(),
        other => format!("algorithm {other}"),
    };
    SignatureError::UnsupportedKey(format!("an {name} {what}"))
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EncryptedKey {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cipher {
    name: String,
    nonce: String,
}

fn decrypt_cosign_key(envelope: &[u8], password: &[u8]) -> Result<Vec<u8>, SignatureError> {
    let malformed = |why: String| SignatureError::MalformedEncryptedKey(why);
    let envelope: EncryptedKey = serde_json::from_slice(envelope).map_err(|error| malformed(format!("not cosign's JSON envelope: {error}")))?;
    if envelope.kdf.name != "scrypt" {
        return Err(malformed(format!("KDF {:?}, expected scrypt", envelope.kdf.name)));
    }
    if envelope.cipher.name != "nacl/secretbox" {
        return Err(malformed(format!("cipher {:?}, expected nacl/secretbox", envelope.cipher.name)));
    }
    let ScryptParams { n, r, p } = envelope.kdf.params;
    let log_n = SCRYPT_LOG_N_ACCEPTED
        .into_iter()
        .find(|log_n| 1u64 << log_n == n)
        .filter(|_| r == SCRYPT_R && p == SCRYPT_P)
        .ok_or_else(|| malformed(format!("scrypt parameters N={n} r={r} p={p} are not cosign's")))?;
    let decode = |field: &str, text: &str| BASE64.decode(text).map_err(|_| malformed(format!("{field} is not base64")));
    let salt = decode("salt", &envelope.kdf.salt)?;
    let nonce = decode("nonce", &envelope.cipher.nonce)?;
    let ciphertext = decode("ciphertext", &envelope.ciphertext)?;
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| malformed(format!("the nonce is not {NONCE_LEN} bytes")))?;
    let box_key = derive_box_key(password, &salt, log_n)?;
    crypto_secretbox::XSalsa20Poly1305::new(&box_key.into()).decrypt(&nonce.into(), ciphertext.as_slice()).map_err(|_| SignatureError::WrongPassword)
}

fn derive_box_key(password: &[u8], salt: &[u8], log_n: u8) -> Result<[u8; BOX_KEY_LEN], SignatureError> {
    let params = scrypt::Params::new(log_n, SCRYPT_R, SCRYPT_P, BOX_KEY_LEN)
        .map_err(|error| SignatureError::MalformedEncryptedKey(format!("scrypt parameters: {error}")))?;
    let mut box_key = [0u8; BOX_KEY_LEN];
    scrypt::scrypt(password, salt, &params, &mut box_key).map_err(|error| SignatureError::MalformedEncryptedKey(format!("scrypt: {error}")))?;
    Ok(box_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from sigstore-rs (github.com/sigstore/sigstore-rs at 038e36a):
    // src/crypto/mod.rs, src/crypto/verification_key.rs and tests/data/keys/.
    // The signature was made by cosign over its payload for this digest.
    const COSIGN_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAENptdY/l3nB0yqkXLBWkZWQwo6+cu
OSWS1X9vPavpiQOoTTGC0xX57OojUadxF1cdQmrsiReWg2Wn4FneJfa8xw==
-----END PUBLIC KEY-----";
    const COSIGN_SIGNATURE: &str = "MEUCIQD6q/COgzOyW0YH1Dk+CCYSt4uAhm3FDHUwvPI55zwnlwIgE0ZK58ZOWpZw8YVmBapJhBqCfdPekIknimuO0xH8Jh8=";
    const COSIGN_REFERENCE: &str = "registry-testing.svc.lan/busybox";
    const COSIGN_DIGEST: &str = "sha256:f3cfc9d0dbf931d3db4685ec659b7ac68e2a578219da4aae65427886e649b06b";
    const COSIGN_PAYLOAD: &str = r#"{"critical":{"identity":{"docker-reference":"registry-testing.svc.lan/busybox"},"image":{"docker-manifest-digest":"sha256:f3cfc9d0dbf931d3db4685ec659b7ac68e2a578219da4aae65427886e649b06b"},"type":"cosign container image signature"},"optional":null}"#;
    /// Written by `cosign generate-key-pair` with an empty password.
    const COSIGN_ENCRYPTED_EMPTY_PASSWORD: &str = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----
eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjo2NTUzNiwiciI6
OCwicCI6MX0sInNhbHQiOiJFY3pJR3Z0bnpFcCsxaEpudERnbGI1UnoxN3gwQVMy
YklvWGRNcDQrU1NJPSJ9LCJjaXBoZXIiOnsibmFtZSI6Im5hY2wvc2VjcmV0Ym94
Iiwibm9uY2UiOiJtSVVKbG1OMzNINExvZ0dhaG5MamdmK3R4SmJwci93MCJ9LCJj
aXBoZXJ0ZXh0IjoiM3FtS2FidXRuYm1WT1IvTkZGM2NDaUErTXp1WWQ5L0VERDVI
MVlUSGhQVzZsSzAvdjVqdDZCQzlsME12NGV5am9qZkl0d3B6a2JJOXQrZGx5VXZ3
VUgvMWZjbkFZT2dEdXRLQzkvSkNiOE02SVY2VHpVaDF5c0ZFWDFzeG9xb1FzeUpL
bjM0UVlldFNlaVdDaGtmUHUyZXByQjFEV0pwekdzTGZIakxNVTkzOEdmNk1xM1A0
N0ZSd2syZzY1cFZnSGMwVWV1L1N1OUs0Zmc9PSJ9
-----END ENCRYPTED SIGSTORE PRIVATE KEY-----";
    /// The legacy label, password `123`.
    const LEGACY_ENCRYPTED_PASSWORD_123: &str = "-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----
eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjozMjc2OCwiciI6
OCwicCI6MX0sInNhbHQiOiIrRFJrTXNRZmNUNTNKNCs1Y3VkUnlnWTUyWUMrK0RW
TmxaSTN4VnlwWFlvPSJ9LCJjaXBoZXIiOnsibmFtZSI6Im5hY2wvc2VjcmV0Ym94
Iiwibm9uY2UiOiJnNTFORnBqQUxlemhvbGVWTWVjUFJUNUErMVhMcDAxeiJ9LCJj
aXBoZXJ0ZXh0Ijoib0YvN09mOGlQRDlkNlc2Mk5SWGVibEszWXZmNFFucTZORm16
Q0VyV2FTVUJOZTNXSFJiRVNYK2dJOCszejg4TDBDVXlWdm9LTHhuR0xhVnhnczVD
YUdyekcrMWxFTEI1cGRMVmZXd1VlQzlLelNab0hxZHZLaUsvUmNodVhpS0VqYmdv
ajNGd2pMcmhEYkY5a2lVWk93REpuT01kUkoxNnI3emxjRHdwT3htOXFrbWFDWDlB
VjQ4b1RXVG0rQXExOHlDZE50MDYybGdudVE9PSJ9
-----END ENCRYPTED COSIGN PRIVATE KEY-----";
    const ECDSA_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgAbUSDapDt/yShCq1
rzJwhGj9fMQd21E5SXmln12o8J+hRANCAAQfFCADQhM36xItBLLsGZmMDe5hqtPc
gRx8+8Zf40O4VAyyv3KO5HePY23r/kVZ+YkXwS55sYSpF5F++AQml0PP
-----END PRIVATE KEY-----";
    const ED25519_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MFECAQEwBQYDK2VwBCIEILZ7IMwQHwlrU+a5l0WnujhvsmQXrWsStjtbAj8n/EiJ
gSEAXtg9yVbH8JADtC6sn4NBh1CSDWeCv0ABIj4TtoJj9ak=
-----END PRIVATE KEY-----";
    /// Ed25519 in cosign's envelope, password `123`.
    const ED25519_ENCRYPTED_123: &str = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----
eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjozMjc2OCwiciI6
OCwicCI6MX0sInNhbHQiOiJ1elF5Snc4b1FjWCt1T3RlWDljSHpVOEhycWlJVzJV
ck9YbnpJb1ljaUtJPSJ9LCJjaXBoZXIiOnsibmFtZSI6Im5hY2wvc2VjcmV0Ym94
Iiwibm9uY2UiOiJKeUJDMS81K2E3emtxdnE5dVpTaHIvZDRwNXVjQW1WQSJ9LCJj
aXBoZXJ0ZXh0IjoiZC9TMndRaVJ0YjcwazFmZEd0ZzRFa0RXZ0ZJcU9NRWd3TDNI
bUtzWjBpdDlJcTFRSVplUGJoYWRTKzJORUZzWVA4TlhVOGpoT1dtb0QreWZwbkMz
dTBYQTRvcFBib2JwbEpleWJEUUtQdW1sa0tiRUc5MnRCa3pUMFJwNnA1dDdFeVVk
In0=
-----END ENCRYPTED SIGSTORE PRIVATE KEY-----";
    // Made here with openssl 3 (`genpkey ... P-384`, `ecparam -genkey -name secp256k1|prime256v1`).
    const P384_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDCes7a1l+n1CNwMmDWt
ONCo+mITnObhJpetWaZqcuRT32TgZeA6x5quRz58Z+0dw4uhZANiAAST5WcTxu9b
Vs2yjwlDHLI+EC0PlLc08OWslEy+PNf7zwCdEVxiBfinw7lKqmTQ1uE5hHE45s3w
ntvOo+577WBJJ5j7525eW0FjXS5CDVAlx5Jmz5gKyKKsSGwakLZaJrg=
-----END PRIVATE KEY-----";
    const SECP256K1_SEC1: &str = "-----BEGIN EC PRIVATE KEY-----
MHQCAQEEIPbTjWJPX+nbScBblkP5Dr1i/CjzXrDlewtVP3EHwRUeoAcGBSuBBAAK
oUQDQgAEMcSGPwhYUvMGQHyMtNwuFIOxhp+sCAQXhCQVlPDjQJyeWsRmufvFjCYN
w3viCJlU1vtywwES/M7BnrIgtsMijQ==
-----END EC PRIVATE KEY-----";
    const OPENSSL_ECPARAM_P256: &str = "-----BEGIN EC PARAMETERS-----
BggqhkjOPQMBBw==
-----END EC PARAMETERS-----
-----BEGIN EC PRIVATE KEY-----
MHcCAQEEINxpwkD4oe63wd8dGGIOeJ98IU9deae+g4vUQMSVFL+yoAoGCCqGSM49
AwEHoUQDQgAEHnrmElZi2uxBysRufAr78+Pae3o6/Lcj+R9PI7BxsSU9eiOz7/SX
1xrNBmFe9Xp3ybuicQdB9ysT1xGrew0rPA==
-----END EC PRIVATE KEY-----";

    fn named(name: &str, key: PublicKey) -> NamedKey {
        NamedKey { name: name.into(), key }
    }

    fn cosign_key() -> NamedKey {
        named("cosign.pub", PublicKey::from_pem(COSIGN_PUBLIC_KEY).unwrap())
    }

    fn cosign_layer() -> SignedLayer {
        SignedLayer { payload: COSIGN_PAYLOAD.as_bytes().to_vec(), signature: COSIGN_SIGNATURE.into() }
    }

    #[test]
    fn the_payload_is_byte_for_byte_what_cosign_signs() {
        assert_eq!(String::from_utf8(payload(COSIGN_REFERENCE, COSIGN_DIGEST)).unwrap(), COSIGN_PAYLOAD);
    }

    #[test]
    fn the_tag_follows_cosigns_scheme() {
        assert_eq!(signature_tag("sha256:abc123"), "sha256-abc123.sig");
    }

    #[test]
    fn a_cosign_made_signature_verifies_here() {
        let signer = verify(&[cosign_layer()], &[cosign_key()], COSIGN_DIGEST).unwrap();
        assert_eq!(signer.key, "cosign.pub");
        assert_eq!(signer.fingerprint, cosign_key().key.fingerprint());
        assert!(signer.fingerprint.starts_with("sha256:") && signer.fingerprint.len() == 7 + 64);
    }

    #[test]
    fn a_valid_signature_for_another_digest_is_refused_naming_that_digest() {
        let other = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        let error = verify(&[cosign_layer()], &[cosign_key()], other).unwrap_err().to_string();
        assert!(error.contains(other) && error.contains(&format!("for {COSIGN_DIGEST}")), "{error}");
    }

    #[test]
    fn a_tampered_payload_or_another_key_is_refused() {
        let mut tampered = cosign_layer();
        tampered.payload = COSIGN_PAYLOAD.replace("busybox", "busyb0x").into_bytes();
        let error = verify(&[tampered], &[cosign_key()], COSIGN_DIGEST).unwrap_err();
        assert!(matches!(error, SignatureError::NotVerified { .. }), "{error}");

        let stranger = named("team.pub", SigningKey::generate().public_key());
        let error = verify(&[cosign_layer()], std::slice::from_ref(&stranger), COSIGN_DIGEST).unwrap_err().to_string();
        assert!(error.contains("another key") && error.contains("team.pub") && error.contains(&stranger.key.fingerprint()), "{error}");
    }

    #[test]
    fn any_good_layer_under_any_key_is_enough() {
        let ours = SigningKey::generate();
        let garbage = SignedLayer { payload: b"x".to_vec(), signature: "not base64!".into() };
        let keys = [named("team.pub", ours.public_key()), cosign_key()];
        let signer = verify(&[garbage, cosign_layer()], &keys, COSIGN_DIGEST).unwrap();
        assert_eq!(signer.key, "cosign.pub");
    }

    #[test]
    fn no_layers_no_keys_and_non_cosign_payloads_are_refused_by_name() {
        let error = verify(&[], &[cosign_key()], COSIGN_DIGEST).unwrap_err();
        assert!(matches!(error, SignatureError::Unsigned { .. }) && error.to_string().contains("cosign.pub"), "{error}");
        assert!(matches!(verify(&[cosign_layer()], &[], COSIGN_DIGEST), Err(SignatureError::NoKeys { .. })));

        let key = SigningKey::generate();
        let not_json = SignedLayer { payload: b"hello".to_vec(), signature: key.sign(b"hello") };
        let error = verify(&[not_json], &[named("k.pub", key.public_key())], COSIGN_DIGEST).unwrap_err().to_string();
        assert!(error.contains("not cosign simple-signing JSON"), "{error}");
        let bad_der = SignedLayer { payload: b"hello".to_vec(), signature: BASE64.encode(b"hello") };
        let error = verify(&[bad_der], &[named("k.pub", key.public_key())], COSIGN_DIGEST).unwrap_err().to_string();
        assert!(error.contains("not a DER ECDSA signature"), "{error}");
    }

    #[test]
    fn a_signature_made_here_verifies_with_ring() {
        // ring (BoringSSL's P-256) is an implementation independent of p256.
        let key = SigningKey::generate();
        let message = payload("127.0.0.1:5000/gates/drain", COSIGN_DIGEST);
        let signature = BASE64.decode(key.sign(&message)).unwrap();
        let point = key.public_key().key.to_encoded_point(false);
        let ring_key = ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, point.as_bytes());
        ring_key.verify(&message, &signature).expect("ring accepts our signature");
        assert!(ring_key.verify(b"other bytes", &signature).is_err());
        let layer = SignedLayer { payload: message, signature: key.sign(b"x") };
        assert!(verify(&[layer], &[named("k", key.public_key())], COSIGN_DIGEST).is_err());
    }

    #[test]
    fn a_ring_made_key_and_signature_verify_here() {
        use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let message = payload("127.0.0.1:5000/gates/drain", COSIGN_DIGEST);
        let signature = BASE64.encode(pair.sign(&rng, &message).unwrap().as_ref());
        let pem_text = pem::encode_string("PRIVATE KEY", LineEnding::LF, pkcs8.as_ref()).unwrap();
        let ours = SigningKey::from_pem(&pem_text, None).unwrap().public_key();
        assert_eq!(ours.key.to_encoded_point(false).as_bytes(), pair.public_key().as_ref());
        let signer = verify(&[SignedLayer { payload: message, signature }], &[named("ring", ours)], COSIGN_DIGEST).unwrap();
        assert_eq!(signer.key, "ring");
    }

    #[test]
    fn a_cosign_generated_encrypted_key_decrypts_with_its_password_only() {
        let key = SigningKey::from_pem(COSIGN_ENCRYPTED_EMPTY_PASSWORD, Some(b"")).unwrap();
        let message = payload(COSIGN_REFERENCE, COSIGN_DIGEST);
        let layer = SignedLayer { payload: message, signature: key.sign(&payload(COSIGN_REFERENCE, COSIGN_DIGEST)) };
        verify(&[layer], &[named("k", key.public_key())], COSIGN_DIGEST).unwrap();

        let error = SigningKey::from_pem(COSIGN_ENCRYPTED_EMPTY_PASSWORD, Some(b"wrong")).unwrap_err();
        assert!(matches!(error, SignatureError::WrongPassword), "{error}");
        assert!(!error.to_string().contains("wrong\""));
        assert!(matches!(SigningKey::from_pem(COSIGN_ENCRYPTED_EMPTY_PASSWORD, None), Err(SignatureError::PasswordNeeded)));
    }

    #[test]
    fn the_legacy_label_is_read_too() {
        let key = SigningKey::from_pem(LEGACY_ENCRYPTED_PASSWORD_123, Some(b"123")).unwrap();
        let error = SigningKey::from_pem(LEGACY_ENCRYPTED_PASSWORD_123, Some(b"124")).unwrap_err();
        assert!(matches!(error, SignatureError::WrongPassword), "{error}");
        let message = payload(COSIGN_REFERENCE, COSIGN_DIGEST);
        let layer = SignedLayer { signature: key.sign(&message), payload: message };
        verify(&[layer], &[named("legacy", key.public_key())], COSIGN_DIGEST).unwrap();
    }

    #[test]
    fn our_encrypted_key_round_trips_and_needs_its_password() {
        let key = SigningKey::generate();
        let pem_text = key.to_encrypted_pem(b"s3cret");
        assert!(pem_text.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        let (_, envelope) = decode_pem(&pem_text).unwrap();
        let envelope: serde_json::Value = serde_json::from_slice(&envelope).unwrap();
        assert_eq!(envelope["kdf"]["params"], serde_json::json!({"N": 32768, "r": 8, "p": 1}));
        assert_eq!(envelope["cipher"]["name"], "nacl/secretbox");
        let again = SigningKey::from_pem(&pem_text, Some(b"s3cret")).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        assert!(matches!(SigningKey::from_pem(&pem_text, Some(b"s3cret!")), Err(SignatureError::WrongPassword)));
        let public = PublicKey::from_pem(&key.public_key().to_pem()).unwrap();
        assert_eq!(public.fingerprint(), key.public_key().fingerprint());
    }

    #[test]
    fn openssl_keys_are_read_with_or_without_the_ec_parameters_block() {
        let key = SigningKey::from_pem(OPENSSL_ECPARAM_P256, None).unwrap();
        let message = b"m";
        let layer = SignedLayer { payload: message.to_vec(), signature: key.sign(message) };
        assert!(decode_signature(&layer.signature).is_ok_and(|signature| key.public_key().verifies(message, &signature)));
        SigningKey::from_pem(ECDSA_PKCS8, None).unwrap();
    }

    #[test]
    fn keys_that_are_not_p256_are_named() {
        let cases = [
            (SigningKey::from_pem(P384_PKCS8, None).unwrap_err(), "P-384"),
            (SigningKey::from_pem(SECP256K1_SEC1, None).unwrap_err(), "secp256k1"),
            (SigningKey::from_pem(ED25519_PKCS8, None).unwrap_err(), "Ed25519"),
            (SigningKey::from_pem(ED25519_ENCRYPTED_123, Some(b"123")).unwrap_err(), "Ed25519"),
            (SigningKey::from_pem("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n", None).unwrap_err(), "RSA"),
        ];
        for (error, name) in cases {
            assert!(matches!(error, SignatureError::UnsupportedKey(_)), "{error}");
            assert!(error.to_string().contains(name), "{error}");
        }
        assert!(matches!(PublicKey::from_pem(COSIGN_ENCRYPTED_EMPTY_PASSWORD), Err(SignatureError::WrongPemKind { .. })));
        assert!(matches!(PublicKey::from_pem("no pem here"), Err(SignatureError::NotPem(_))));
        assert!(matches!(SigningKey::from_pem(COSIGN_PUBLIC_KEY, None), Err(SignatureError::WrongPemKind { .. })));
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let key = SigningKey::from_pem(ECDSA_PKCS8, None).unwrap();
        let secret_hex = hex::encode(key.key.to_bytes());
        let debug = format!("{key:?}");
        assert!(!debug.contains(&secret_hex) && debug.contains(&key.public_key().fingerprint()), "{debug}");
    }
}
