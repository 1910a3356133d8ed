//! What the server offers in the SSH negotiation (algorithms, RFC 4419
//! group-exchange sizes, the russh configuration), and how a failed
//! negotiation is explained: everything the client offered and which list did
//! not match, in the log and in `rosterd status`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::{HashAlg, PrivateKey};
use russh::{MethodKind, MethodSet};

use super::{CHANNEL_BUFFER, Shared};
use crate::config::Config;

/// Key exchanges offered: everything OpenSSH 9.x's sshd offers by default
/// that russh implements, in OpenSSH's order (the client's order decides),
/// and the markers for RFC 8308 extensions and OpenSSH's strict key exchange
/// (the Terrapin fix, on only while its marker is listed).
const KEX: &[russh::kex::Name] = &[
    russh::kex::MLKEM768X25519_SHA256,
    russh::kex::CURVE25519,
    russh::kex::CURVE25519_PRE_RFC_8731,
    russh::kex::ECDH_SHA2_NISTP256,
    russh::kex::ECDH_SHA2_NISTP384,
    russh::kex::ECDH_SHA2_NISTP521,
    russh::kex::DH_GEX_SHA256,
    russh::kex::DH_G16_SHA512,
    russh::kex::DH_G18_SHA512,
    russh::kex::DH_G14_SHA256,
    russh::kex::EXTENSION_SUPPORT_AS_SERVER,
    russh::kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
];
/// Host-key and user-key signature algorithms (also sent as
/// `server-sig-algs`); a host-key algorithm is offered only with its key.
const KEYS: &[russh::keys::Algorithm] = &[
    russh::keys::Algorithm::Ed25519,
    russh::keys::Algorithm::Ecdsa {
        curve: russh::keys::EcdsaCurve::NistP256,
    },
    russh::keys::Algorithm::Ecdsa {
        curve: russh::keys::EcdsaCurve::NistP384,
    },
    russh::keys::Algorithm::Ecdsa {
        curve: russh::keys::EcdsaCurve::NistP521,
    },
    russh::keys::Algorithm::Rsa {
        hash: Some(HashAlg::Sha512),
    },
    russh::keys::Algorithm::Rsa {
        hash: Some(HashAlg::Sha256),
    },
];
const CIPHERS: &[russh::cipher::Name] = &[
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_128_CTR,
    russh::cipher::AES_192_CTR,
    russh::cipher::AES_256_CTR,
    russh::cipher::AES_128_GCM,
    russh::cipher::AES_256_GCM,
];
/// MACs: OpenSSH 9.x's sshd offers hmac-sha1 and its -etm form by default
/// too (HMAC-SHA1 is not broken as a MAC), so they are offered, last.
const MACS: &[russh::mac::Name] = &[
    russh::mac::HMAC_SHA256_ETM,
    russh::mac::HMAC_SHA512_ETM,
    russh::mac::HMAC_SHA256,
    russh::mac::HMAC_SHA512,
    russh::mac::HMAC_SHA1_ETM,
    russh::mac::HMAC_SHA1,
];

/// What `server.legacy_algorithms` adds: the weak algorithms OpenSSH has
/// turned off, last in each list.
const LEGACY_KEX: &[russh::kex::Name] = &[russh::kex::DH_G14_SHA1];
const LEGACY_KEYS: &[russh::keys::Algorithm] = &[russh::keys::Algorithm::Rsa { hash: None }];

/// User-key signatures announced in `server-sig-algs`: every one accepted,
/// `ssh-rsa` (SHA-1) included, which the host key never signs with unless
/// `server.legacy_algorithms` is on. Clients that honour the list (paramiko
/// 2.x, OpenSSH limited to ssh-rsa) otherwise refuse to sign with an RSA key.
fn user_signatures() -> Vec<russh::keys::Algorithm> {
    KEYS.iter()
        .cloned()
        .chain(LEGACY_KEYS.iter().cloned())
        .collect()
}

/// The algorithms offered, with or without the legacy ones.
pub fn preferred(legacy: bool) -> russh::Preferred {
    use std::borrow::Cow;
    fn with<T: Clone>(base: &'static [T], extra: &'static [T], legacy: bool) -> Cow<'static, [T]> {
        if legacy {
            Cow::Owned(base.iter().chain(extra).cloned().collect())
        } else {
            Cow::Borrowed(base)
        }
    }
    russh::Preferred {
        kex: with(KEX, LEGACY_KEX, legacy),
        key: with(KEYS, LEGACY_KEYS, legacy),
        host_key_certificates: Cow::Borrowed(&[]),
        cipher: Cow::Borrowed(CIPHERS),
        mac: Cow::Borrowed(MACS),
        compression: Cow::Borrowed(&[russh::compression::NONE]),
    }
}

/// The russh configuration: the host keys, the algorithms above, public-key
/// authentication only, constant rejection time.
pub fn ssh_config(config: &Config, host_keys: Vec<PrivateKey>) -> Arc<russh::server::Config> {
    let mut methods = MethodSet::empty();
    methods.push(MethodKind::PublicKey);
    Arc::new(russh::server::Config {
        methods,
        keys: host_keys,
        preferred: preferred(config.server.legacy_algorithms),
        server_sig_algs: Some(std::borrow::Cow::Owned(user_signatures())),
        auth_rejection_time: Duration::from_secs(1),
        auth_rejection_time_initial: Some(Duration::from_secs(0)),
        // Only a backstop: the watchdog in `serve_connection` applies the idle
        // and write timeouts, also while russh's loop is waiting.
        inactivity_timeout: Some(Duration::from_secs(
            config.server.idle_timeout_seconds.saturating_mul(2),
        )),
        max_auth_attempts: 6,
        // Large windows and packets keep bulk uploads moving on fast links.
        window_size: 16 * 1024 * 1024,
        maximum_packet_size: 65535,
        // What a channel may hold between the network and its task: russh
        // widens the window as data arrives, so this queue (not the window)
        // is what stops reading the socket when the disk falls behind. Each
        // message is at most one packet, so a channel holds at most about
        // 1 MiB here (russh's default of 100 allows 6 MiB).
        channel_buffer_size: CHANNEL_BUFFER,
        nodelay: true,
        ..Default::default()
    })
}

/// Log how a session failed. A failed algorithm negotiation is a district's
/// job that cannot connect at all: warned with everything the client offered
/// and which list did not match, and recorded for `rosterd status` (no
/// district is known yet at that point).
pub(super) fn session_error(shared: &Shared, peer: SocketAddr, e: &anyhow::Error) {
    match e.downcast_ref::<russh::Error>() {
        Some(russh::Error::NoCommonAlgo {
            kind,
            ours,
            theirs,
            offered,
        }) => {
            use crate::metrics::Negotiation;
            let (what, list) = match format!("{kind:?}").as_str() {
                "Kex" => ("key-exchange", Negotiation::Kex),
                "Key" => ("host-key", Negotiation::HostKey),
                "Cipher" => ("cipher", Negotiation::Cipher),
                "Mac" => ("MAC", Negotiation::Mac),
                _ => ("compression", Negotiation::Compression),
            };
            shared.metrics.negotiation_failed(list);
            let offered = match offered {
                Some(offer) => describe_offer(offer),
                None => format!("{what} {}", offer_list(theirs)),
            };
            let reason = format!(
                "no {what} algorithm in common: the client offered {offered}; rosterd offers {what} {}{}",
                offer_list(ours),
                if shared.config().server.legacy_algorithms {
                    ""
                } else {
                    " (server.legacy_algorithms adds OpenSSH's retired ones)"
                }
            );
            tracing::warn!(address = %peer, reason = %reason, "SSH negotiation failed");
            shared.record_failure(None, peer, None, reason);
        }
        _ => tracing::debug!(error = %e, "session ended with an error"),
    }
}

/// The most of one name-list of a client's offer that is logged: a hostile
/// client can send lists of 16 KiB each.
const OFFER_LIST_CHARS: usize = 512;

/// A name-list as the log shows it: comma-separated, cut (and marked as
/// cut) at [`OFFER_LIST_CHARS`], control characters escaped.
fn offer_list(names: &[String]) -> String {
    if names.is_empty() {
        return "(none)".to_owned();
    }
    crate::domain::text::echo(&names.join(","), OFFER_LIST_CHARS).into_owned()
}

/// What a client's KEXINIT offered: `key-exchange a,b; host-key c; cipher
/// d; MAC e; compression f`, a server-to-client list only where it differs
/// from the client-to-server one.
fn describe_offer(offer: &russh::KexInitOffer) -> String {
    let both = |c2s: &[String], s2c: &[String]| {
        let mut out = offer_list(c2s);
        if s2c != c2s {
            out.push_str(&format!(" (server-to-client {})", offer_list(s2c)));
        }
        out
    };
    format!(
        "key-exchange {}; host-key {}; cipher {}; MAC {}; compression {}",
        offer_list(&offer.kex),
        offer_list(&offer.host_key),
        both(
            &offer.cipher_client_to_server,
            &offer.cipher_server_to_client
        ),
        both(&offer.mac_client_to_server, &offer.mac_server_to_client),
        both(
            &offer.compression_client_to_server,
            &offer.compression_server_to_client
        ),
    )
}

/// The DH group for a group-exchange request (min, preferred, max bits).
pub(super) fn dh_group(
    min: usize,
    preferred: usize,
    max: usize,
) -> Option<russh::kex::dh::groups::DhGroup> {
    use russh::kex::dh::groups::{DH_GROUP14, DH_GROUP15, DH_GROUP16, DH_GROUP17, DH_GROUP18};
    let mut fits: Vec<_> = [DH_GROUP14, DH_GROUP15, DH_GROUP16, DH_GROUP17, DH_GROUP18]
        .into_iter()
        .filter(|g| (min..=max).contains(&g.bit_size()))
        .collect();
    match fits.iter().position(|g| g.bit_size() >= preferred) {
        Some(i) => Some(fits.swap_remove(i)),
        None => fits.pop(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_negotiation_names_the_whole_offer_each_list_capped() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let offer = russh::KexInitOffer {
            kex: (0..200).map(|i| format!("kex{i}@example.org")).collect(),
            host_key: names(&["ssh-rsa"]),
            cipher_client_to_server: names(&["aes128-cbc", "3des-cbc"]),
            cipher_server_to_client: names(&["aes128-cbc", "3des-cbc"]),
            mac_client_to_server: names(&["hmac-md5"]),
            mac_server_to_client: names(&["hmac-sha1\n"]),
            compression_client_to_server: names(&["none"]),
            compression_server_to_client: names(&["none"]),
        };
        let text = describe_offer(&offer);
        assert!(
            text.starts_with("key-exchange kex0@example.org,kex1@"),
            "{text}"
        );
        assert!(text.contains("… [cut: "), "{text}");
        assert!(
            text.ends_with(
                "; host-key ssh-rsa; cipher aes128-cbc,3des-cbc; \
                 MAC hmac-md5 (server-to-client hmac-sha1\\n); compression none"
            ),
            "{text}"
        );
        assert!(text.chars().count() < OFFER_LIST_CHARS + 200, "{text}");
        assert_eq!(offer_list(&[]), "(none)");
    }

    #[test]
    fn group_exchange_honours_the_clients_bounds() {
        let bits = |min, n, max| dh_group(min, n, max).map(|g| g.bit_size());
        assert_eq!(bits(1024, 2048, 2048), Some(2048)); // JSch: at most 2048
        assert_eq!(bits(2048, 2048, 2048), Some(2048));
        assert_eq!(bits(2048, 3072, 8192), Some(3072));
        assert_eq!(bits(2048, 8192, 8192), Some(8192)); // OpenSSH's request
        assert_eq!(bits(2048, 7000, 8192), Some(8192));
        assert_eq!(bits(3000, 4000, 5000), Some(4096));
        assert_eq!(bits(2048, 9000, 9000), Some(8192));
        assert_eq!(bits(9000, 9000, 9500), None);
        assert_eq!(bits(1024, 1024, 1536), None); // nothing this weak is offered
    }

    #[test]
    fn legacy_algorithms_are_off_unless_switched_on() {
        let names = |p: &russh::Preferred| {
            let mut v: Vec<String> = p.kex.iter().map(|k| k.as_ref().to_string()).collect();
            v.extend(p.mac.iter().map(|m| m.as_ref().to_string()));
            v.extend(p.key.iter().map(|k| k.to_string()));
            v
        };
        let modern = names(&preferred(false));
        for weak in ["diffie-hellman-group14-sha1", "ssh-rsa"] {
            assert!(
                !modern.iter().any(|n| n == weak),
                "{weak} offered by default"
            );
        }
        for wanted in [
            "ecdh-sha2-nistp256",
            "curve25519-sha256",
            "diffie-hellman-group-exchange-sha256",
            "rsa-sha2-512",
            "kex-strict-s-v00@openssh.com",
            // As OpenSSH 9.x's sshd: offered by default, last.
            "hmac-sha1",
            "hmac-sha1-etm@openssh.com",
        ] {
            assert!(modern.iter().any(|n| n == wanted), "{wanted} missing");
        }
        let offered = preferred(false);
        let macs: Vec<&str> = offered.mac.iter().map(|m| m.as_ref()).collect();
        assert_eq!(
            &macs[macs.len() - 2..],
            ["hmac-sha1-etm@openssh.com", "hmac-sha1"]
        );
        // ssh-rsa user signatures are announced, though never host-key ones.
        assert!(user_signatures().contains(&russh::keys::Algorithm::Rsa { hash: None }));
        let legacy = names(&preferred(true));
        for weak in ["diffie-hellman-group14-sha1", "hmac-sha1", "ssh-rsa"] {
            assert!(
                legacy.iter().any(|n| n == weak),
                "{weak} not offered with the switch"
            );
        }
    }
}
