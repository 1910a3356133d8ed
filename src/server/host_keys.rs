//! The server's SSH host keys: loaded, or created the first time (mode
//! 0600, written atomically), and their fingerprints as districts see them.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use russh::keys::ssh_key::private::RsaKeypair;
use russh::keys::ssh_key::{HashAlg, LineEnding};
use russh::keys::{Algorithm, EcdsaCurve, PrivateKey};

use crate::config::HostKeyKind;
use crate::files::write_secret_file;

/// Every host key of `server` (see [`crate::config::ServerConfig::host_keys`]),
/// each loaded or, the first time, created: (kind, path, key, created).
pub fn load_or_create_host_keys(
    server: &crate::config::ServerConfig,
) -> anyhow::Result<Vec<(HostKeyKind, std::path::PathBuf, PrivateKey, bool)>> {
    server
        .host_keys()
        .into_iter()
        .map(|(kind, path)| {
            let (key, created) = load_or_create_host_key(&path, kind)?;
            Ok((kind, path, key, created))
        })
        .collect()
}

/// Load the host key at `path`, or create one of `kind` there (mode 0600)
/// if there is none; `true` when created. A key is reused forever: districts
/// pin its fingerprint.
pub fn load_or_create_host_key(
    path: &Path,
    kind: HostKeyKind,
) -> anyhow::Result<(PrivateKey, bool)> {
    match std::fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            anyhow::ensure!(
                mode & 0o077 == 0,
                "host key {} is readable by other users (mode {mode:04o}); run `chmod 600 {}`",
                path.display(),
                path.display()
            );
            let key = russh::keys::load_secret_key(path, None)
                .map_err(|e| anyhow::anyhow!("cannot load host key {}: {e}", path.display()))?;
            Ok((key, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut rng = rand::rng();
            let key = match kind {
                HostKeyKind::Ed25519 => PrivateKey::random(&mut rng, Algorithm::Ed25519),
                HostKeyKind::EcdsaP256 => PrivateKey::random(
                    &mut rng,
                    Algorithm::Ecdsa {
                        curve: EcdsaCurve::NistP256,
                    },
                ),
                // PrivateKey::random would make 4096 bits; 3072 is OpenSSH's size.
                HostKeyKind::Rsa3072 => RsaKeypair::random(&mut rng, 3072).map(PrivateKey::from),
            }
            .map_err(|e| anyhow::anyhow!("cannot generate a host key: {e}"))?;
            let text = key
                .to_openssh(LineEnding::LF)
                .map_err(|e| anyhow::anyhow!("cannot encode the host key: {e}"))?;
            write_secret_file(path, text.as_bytes())?;
            Ok((key, true))
        }
        Err(e) => Err(anyhow::anyhow!(
            "cannot read host key {}: {e}",
            path.display()
        )),
    }
}

/// The host key's `SHA256:` fingerprint, as districts see it on first connect.
pub fn host_key_fingerprint(key: &PrivateKey) -> String {
    key.public_key().fingerprint(HashAlg::Sha256).to_string()
}
