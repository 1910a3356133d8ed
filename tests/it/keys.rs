//! Key registration with keys made by the real `ssh-keygen`: accepted types,
//! refusals that say why, fingerprints identical to `ssh-keygen -lf`.

use crate::helpers::*;

/// A DSA public key (kept as text: newer OpenSSH builds cannot make one).
const DSA_PUB: &str = "ssh-dss AAAAB3NzaC1kc3MAAACBAOOcLlArhl8XIbtquGl5guvldmOX+sGtLtIxctJdcPUrILyhoGq+KK6+IKjlxU6NrypKJQI3aYaN4eACWmz104sjAuhprGwTciiupeuXs7R8bXV3S6qgnxeynZrj3vlcmI8uuVQtx3eB6MMhaFNVY2cRr7uypjGTKSaeZnGEoq6rAAAAFQDU1a/vdbEWu1lA8st8va97mZYKvQAAAIEAzs83PMR3kZT9h1/7YYyszmPSRvY5NPILtgQzoiCNErMyefMWbGYWt7Wd3ogHmDqzaUTERRPTiXY5MJ1zwEUCJv5+TXTlcRfRSTMmwNLmYpva0wpHOmty39DpXsrKSQEH5A0ZvmifDN9c8Hv97BnzKC+1Z4RCUvd+pZLjTOzpq+QAAACBAJIdQnmsnoNdn6hMYugxvbUeuoNXA1oSNQnLNHAmdDVFRwebfXtvrNnxwIMFKcHw6FB+lXbLFUk0Kv2liTMl/wB7AHYXer5KJcGuPFT9XsfkFcmZPgsmbHipRQTPV8O89m7i8RQaAGGSIAsGflL2fgJaKLUIcUTcJcEOb/wPWI0I dsa@example";

/// Make a key pair with ssh-keygen; returns the .pub path.
fn keygen(env: &Env, name: &str, args: &[&str]) -> std::path::PathBuf {
    let path = env.path(name);
    let mut full = vec!["-q", "-N", "", "-C", name, "-f", path.to_str().unwrap()];
    full.extend_from_slice(args);
    ssh_keygen(&full);
    path.with_extension("pub")
}

/// The fingerprint `ssh-keygen -lf` prints for a key file.
fn keygen_fingerprint(path: &std::path::Path) -> String {
    let out = ssh_keygen(&["-lf", path.to_str().unwrap()]);
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned()
}

#[test]
fn accepted_types_print_the_ssh_keygen_fingerprint() {
    let env = Env::new();
    env.tenant("lincoln");
    let cases: &[(&str, &[&str], &str)] = &[
        ("ed", &["-t", "ed25519"], "ED25519"),
        ("ec256", &["-t", "ecdsa", "-b", "256"], "ECDSA"),
        ("ec384", &["-t", "ecdsa", "-b", "384"], "ECDSA"),
        ("ec521", &["-t", "ecdsa", "-b", "521"], "ECDSA"),
        ("rsa3072", &["-t", "rsa", "-b", "3072"], "RSA"),
    ];
    for (name, args, kind) in cases {
        let pub_path = keygen(&env, name, args);
        let out = env.ok(&["key", "add", "lincoln", pub_path.to_str().unwrap()]);
        assert_eq!(out.trim(), keygen_fingerprint(&pub_path), "{name}");
        let list = env.ok(&["key", "list", "lincoln"]);
        assert!(list.contains(out.trim()) && list.contains(kind), "{list}");
    }
}

#[test]
fn rfc4716_block_and_authorized_keys_line() {
    let env = Env::new();
    env.tenant("lincoln");
    let pub_path = keygen(&env, "putty", &["-t", "rsa", "-b", "2048"]);
    let block = ssh_keygen(&["-e", "-f", pub_path.to_str().unwrap()]).stdout;
    assert!(String::from_utf8_lossy(&block).starts_with("---- BEGIN SSH2 PUBLIC KEY ----"));
    let block_path = env.file("putty.ssh2", &block);
    let out = env.ok(&["key", "add", "lincoln", block_path.to_str().unwrap()]);
    assert_eq!(out.trim(), keygen_fingerprint(&pub_path));

    let ed = keygen(&env, "opts", &["-t", "ed25519"]);
    let line = format!(
        "from=\"127.0.0.1,::1\",command=\"/bin/echo hi there\",no-pty {}",
        std::fs::read_to_string(&ed).unwrap()
    );
    let mut child = env
        .command(&["key", "add", "lincoln", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(line.as_bytes())
        .unwrap();
    let (code, out, _) = decode(child.wait_with_output().unwrap());
    assert_eq!(code, 0);
    assert_eq!(out.trim(), keygen_fingerprint(&ed));
}

#[test]
fn refused_keys_say_why_and_add_nothing() {
    let env = Env::new();
    env.tenant("lincoln");
    let rsa1024 = keygen(&env, "rsa1024", &["-t", "rsa", "-b", "1024"]);
    let ed = keygen(&env, "ed", &["-t", "ed25519"]);
    let private = env.path("ed");
    let dsa = env.file("dsa.pub", DSA_PUB);
    let garbage = env.file("garbage.pub", "ssh-ed25519 bm90IGEga2V5IGF0IGFsbA== x\n");
    let empty = env.file("empty.pub", "\n# nothing\n");
    // a file with one good and one bad key adds neither
    let mixed = env.file(
        "mixed.pub",
        format!(
            "{}{}",
            std::fs::read_to_string(&ed).unwrap(),
            std::fs::read_to_string(&rsa1024).unwrap()
        ),
    );
    let cases = [
        (rsa1024, "only 1024 bits"),
        (dsa, "DSA"),
        (garbage, "damaged"),
        (empty, "no public key found"),
        (private, "PRIVATE key"),
        (mixed, "line 2"),
    ];
    for (path, why) in cases {
        let (code, out, err) = env.run(&["key", "add", "lincoln", path.to_str().unwrap()]);
        assert_eq!(code, 1, "{path:?}: {out} {err}");
        assert!(err.contains(why), "{path:?}: stderr {err:?} lacks {why:?}");
    }
    assert!(env.ok(&["key", "list", "lincoln"]).contains("has no keys"));
}

#[test]
fn one_tenant_per_key_and_revocation() {
    let env = Env::new();
    env.tenant("alpha");
    env.tenant("beta");
    let ed = keygen(&env, "ed", &["-t", "ed25519"]);
    let p = ed.to_str().unwrap();
    let fp = env.ok(&["key", "add", "alpha", p]).trim().to_owned();
    // again for the same tenant: reported, not duplicated
    let (code, _, err) = env.run(&["key", "add", "alpha", p]);
    assert_eq!(code, 0);
    assert!(err.contains("already registered"));
    let (code, _, err) = env.run(&["key", "add", "beta", p]);
    assert_eq!(code, 1);
    assert!(err.contains("already registered to tenant alpha"), "{err}");
    // revoke: listed as revoked, and then the other tenant may register it
    env.ok(&["key", "revoke", "alpha", &fp]);
    assert!(env.ok(&["key", "list", "alpha"]).contains("revoked"));
    let (code, _, err) = env.run(&["key", "revoke", "alpha", &fp]);
    assert_eq!(code, 1, "revoking twice must fail: {err}");
    env.ok(&["key", "add", "beta", p]);
}

#[test]
fn pem_exports_of_ssh_keygen_are_accepted_with_the_same_fingerprint() {
    let env = Env::new();
    env.tenant("lincoln");
    let cases: &[(&str, &[&str], &str)] = &[
        ("pem_rsa", &["-t", "rsa", "-b", "3072"], "PKCS8"),
        ("pem_rsa1", &["-t", "rsa", "-b", "2048"], "PEM"),
        ("pem_ec256", &["-t", "ecdsa", "-b", "256"], "PKCS8"),
        ("pem_ec521", &["-t", "ecdsa", "-b", "521"], "PKCS8"),
    ];
    for (name, args, format) in cases {
        let public = keygen(&env, name, args);
        let out = ssh_keygen(&["-e", "-m", format, "-f", public.to_str().unwrap()]);
        let pem = String::from_utf8(out.stdout).unwrap();
        assert!(pem.starts_with("-----BEGIN "), "{pem}");
        let file = env.file(&format!("{name}.pem"), &pem);
        let (code, stdout, err) = env.run(&["key", "add", "lincoln", file.to_str().unwrap()]);
        assert_eq!(code, 0, "{name} ({format}): {err}");
        assert_eq!(
            stdout.lines().next().unwrap(),
            keygen_fingerprint(&public),
            "{name} ({format})"
        );
    }
}
