//! `evospike certs`: the files a secured cluster needs, for development and
//! tests — a certificate authority, one certificate per machine signed by it,
//! and the cluster secret every node's password derives from.
//!
//! ```text
//! evospike certs --out certs --machine head=10.0.0.1 --machine worker=10.0.0.2
//!   certs/ca.pem  certs/ca.key              the authority (keep ca.key off the machines)
//!   certs/head.pem certs/head.key           head's certificate: names head and 10.0.0.1
//!   certs/worker.pem certs/worker.key
//!   certs/cluster.secret                    passwords derive from it
//! ```
//!
//! A machine's certificate names the machine and every address given for it
//! (plus `localhost` and 127.0.0.1, for the sessions of the machine itself), and
//! serves both as a server certificate (its router) and as a client certificate
//! (its nodes, under mutual TLS). Keys are ECDSA P-256, written readable by
//! their owner only. Production clusters use their own PKI; the layout is the
//! same.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use crate::exit;

#[derive(Debug, clap::Args)]
pub(crate) struct CertsArgs {
    /// Folder to write the files into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// A machine and the names or addresses its router is reached by,
    /// `NAME=ADDR[,ADDR…]`. Repeatable.
    #[arg(long = "machine", value_name = "NAME=ADDR", required = true)]
    machines: Vec<String>,
    /// Replace files that exist (default: refuse to overwrite).
    #[arg(long)]
    force: bool,
}

/// One `--machine NAME=ADDR,…`.
#[derive(Debug, PartialEq, Eq)]
struct Machine {
    name: String,
    addresses: Vec<String>,
}

fn parse_machine(text: &str) -> anyhow::Result<Machine> {
    let (name, addresses) = text.split_once('=').unwrap_or((text, ""));
    let name = name.trim();
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(exit::invalid(format!(
            "--machine {text:?}: expected NAME=ADDR[,ADDR…] with a NAME of letters, digits, - and _"
        )));
    }
    Ok(Machine {
        name: name.to_owned(),
        addresses: addresses
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

pub(crate) fn run(args: CertsArgs) -> anyhow::Result<ExitCode> {
    let machines = args
        .machines
        .iter()
        .map(|m| parse_machine(m))
        .collect::<anyhow::Result<Vec<_>>>()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let writer = Writer {
        dir: &args.out,
        force: args.force,
    };
    let ca_key = KeyPair::generate().context("cannot generate the CA key")?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "evospike cluster CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca
        .self_signed(&ca_key)
        .context("cannot sign the CA certificate")?;
    writer.write("ca.pem", &ca_cert.pem(), false)?;
    writer.write("ca.key", &ca_key.serialize_pem(), true)?;
    for machine in &machines {
        let mut names = vec![machine.name.clone(), "localhost".into(), "127.0.0.1".into()];
        names.extend(machine.addresses.iter().cloned());
        names.dedup();
        let mut params = CertificateParams::new(names)
            .with_context(|| format!("invalid name or address for machine {}", machine.name))?;
        params
            .distinguished_name
            .push(DnType::CommonName, machine.name.clone());
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().context("cannot generate a machine key")?;
        let cert = params
            .signed_by(&key, &ca_cert, &ca_key)
            .with_context(|| format!("cannot sign the certificate of {}", machine.name))?;
        writer.write(&format!("{}.pem", machine.name), &cert.pem(), false)?;
        writer.write(&format!("{}.key", machine.name), &key.serialize_pem(), true)?;
    }
    writer.write("cluster.secret", &format!("{}\n", random_secret()?), true)?;
    println!(
        "wrote a CA, {} machine certificate(s) and a cluster secret to {}",
        machines.len(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// 32 random bytes from the kernel, as hex.
fn random_secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .context("cannot read /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

struct Writer<'a> {
    dir: &'a Path,
    force: bool,
}

impl Writer<'_> {
    fn write(&self, name: &str, text: &str, private: bool) -> anyhow::Result<()> {
        let path = self.dir.join(name);
        let mut options = std::fs::OpenOptions::new();
        options
            .write(true)
            .mode(if private { 0o600 } else { 0o644 });
        if self.force {
            options.create(true).truncate(true);
        } else {
            options.create_new(true);
        }
        let mut file = options.open(&path).map_err(|err| {
            if err.kind() == std::io::ErrorKind::AlreadyExists {
                exit::invalid(format!(
                    "{} exists: pass --force to replace the cluster's files",
                    path.display()
                ))
            } else {
                anyhow::Error::new(err).context(format!("cannot write {}", path.display()))
            }
        })?;
        file.write_all(text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machines_are_names_with_addresses() {
        assert_eq!(
            parse_machine("head=10.0.0.1, head.lan").unwrap(),
            Machine {
                name: "head".into(),
                addresses: vec!["10.0.0.1".into(), "head.lan".into()]
            }
        );
        assert!(parse_machine("head").unwrap().addresses.is_empty());
        assert!(parse_machine("../x=1").is_err());
        assert!(parse_machine("=1").is_err());
    }

    #[test]
    fn the_files_are_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let args = || CertsArgs {
            out: dir.path().to_path_buf(),
            machines: vec!["head=10.0.0.1".into()],
            force: false,
        };
        run(args()).unwrap();
        for file in ["ca.pem", "ca.key", "head.pem", "head.key", "cluster.secret"] {
            assert!(dir.path().join(file).is_file(), "{file}");
        }
        let pem = std::fs::read_to_string(dir.path().join("head.pem")).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let err = run(args()).unwrap_err();
        assert_eq!(exit::code(&err), exit::INVALID_INPUT, "{err}");
    }
}
