//! Placeholder for the signature helper's cosign-compatible signatures: the
//! agreed API with bodies that refuse, so the distribution code compiles
//! before the real file is merged over this one.

/// The media type of a cosign simple-signing payload layer.
pub const PAYLOAD_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// Cosign's signature tag for a manifest digest: `sha256-<hex>.sig`.
pub fn signature_tag(manifest_digest: &str) -> String {
    format!("{}.sig", manifest_digest.replacen(':', "-", 1))
}

/// Cosign's simple-signing JSON for a reference and a manifest digest.
pub fn payload(docker_reference: &str, manifest_digest: &str) -> Vec<u8> {
    serde_json::json!({"critical": {"identity": {"docker-reference": docker_reference},
        "image": {"docker-manifest-digest": manifest_digest}, "type": "cosign container image signature"}, "optional": null})
    .to_string()
    .into_bytes()
}

/// A private signing key.
pub struct SigningKey;

impl SigningKey {
    /// Read a PEM private key.
    pub fn from_pem(_pem: &str, _password: Option<&[u8]>) -> Result<Self, SignatureError> {
        Err(SignatureError::Unavailable)
    }
    /// Sign a payload: base64 of the DER ECDSA signature.
    pub fn sign(&self, _payload: &[u8]) -> String {
        String::new()
    }
    /// Its public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey
    }
}

/// A public verification key.
pub struct PublicKey;

impl PublicKey {
    /// Read a PEM public key.
    pub fn from_pem(_pem: &str) -> Result<Self, SignatureError> {
        Err(SignatureError::Unavailable)
    }
    /// `sha256:<hex of the SPKI DER>`.
    pub fn fingerprint(&self) -> String {
        String::new()
    }
}

/// One signature layer: its payload and its signature.
pub struct SignedLayer {
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// The base64 signature.
    pub signature: String,
}

/// A public key and where it came from.
pub struct NamedKey {
    /// Where it came from, e.g. the file.
    pub name: String,
    /// The key.
    pub key: PublicKey,
}

/// Who signed.
pub struct Signer {
    /// The key's name.
    pub key: String,
    /// The key's fingerprint.
    pub fingerprint: String,
}

/// Check that one of the layers is signed by one of the keys for this digest.
pub fn verify(_layers: &[SignedLayer], _keys: &[NamedKey], _manifest_digest: &str) -> Result<Signer, SignatureError> {
    Err(SignatureError::Unavailable)
}

/// A signature that cannot be made or checked.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// This build has no signature support yet.
    #[error("signatures are not available in this build")]
    Unavailable,
}
