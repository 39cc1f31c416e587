//! A SASL_SSL listener for the test broker: SCRAM-SHA-512 users, a
//! self-signed CA and a broker certificate made with `keytool` (it comes
//! with the JDK the broker needs anyway), the StandardAuthorizer, and ACL
//! grants through Kafka's own `AclCommand`.
//!
//! The broker keeps its PLAINTEXT listener for the inter-broker and
//! controller traffic and for the tests' own setup (topics, ACLs): its
//! principal, `User:ANONYMOUS`, is a super user there. Everything a test
//! proves about credentials and ACLs goes through the SASL_SSL listener.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::kafka_process::{KafkaProcess, LaunchError};

/// The password of the test keystores (not a secret: a throwaway CA).
const STORE_PASSWORD: &str = "smsgate-test-store";

/// What the secure listener accepts.
#[derive(Debug, Clone)]
pub struct Secure {
    /// SCRAM-SHA-512 users (name, password), registered when the storage
    /// is formatted.
    pub users: Vec<(String, String)>,
}

/// Certificates made for one broker directory.
#[derive(Debug, Clone)]
pub struct Tls {
    /// The CA's certificate (PEM), for the clients' `ssl.ca.location`.
    pub ca_pem: PathBuf,
    /// The broker's PKCS#12 keystore: its key and the CA-signed certificate.
    pub keystore: PathBuf,
}

/// Runs `keytool` with `args`; an error names the step and prints its output.
fn keytool(dir: &Path, step: &str, args: &[&str]) -> Result<(), LaunchError> {
    let out = Command::new("keytool")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(LaunchError::Java)?;
    if out.status.success() {
        return Ok(());
    }
    Err(LaunchError::Tool {
        what: format!("keytool {step}"),
        status: out.status,
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}

/// Makes a CA, a broker key signed by it for `localhost` and `127.0.0.1`,
/// and the CA's PEM in `dir` (once: an existing keystore is kept, so a
/// restart serves the same certificate).
pub fn make_tls(dir: &Path) -> Result<Tls, LaunchError> {
    std::fs::create_dir_all(dir).map_err(|source| LaunchError::Io {
        what: format!("create {}", dir.display()),
        source,
    })?;
    let tls = Tls {
        ca_pem: dir.join("ca.pem"),
        keystore: dir.join("broker.p12"),
    };
    if tls.keystore.is_file() && tls.ca_pem.is_file() {
        return Ok(tls);
    }
    let store = ["-storetype", "PKCS12", "-storepass", STORE_PASSWORD];
    let san = "SAN=dns:localhost,ip:127.0.0.1";
    let with = |args: &[&'static str], more: &[&'static str]| -> Vec<&'static str> {
        args.iter().chain(more).chain(&store).copied().collect()
    };
    for f in ["ca.p12", "broker.p12", "broker.csr", "broker.pem", "ca.pem"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    keytool(
        dir,
        "CA key",
        &with(
            &[
                "-genkeypair",
                "-alias",
                "ca",
                "-keyalg",
                "RSA",
                "-keysize",
                "2048",
            ],
            &[
                "-dname",
                "CN=smsgate test CA",
                "-ext",
                "bc:c",
                "-validity",
                "30",
                "-keystore",
                "ca.p12",
            ],
        ),
    )?;
    keytool(
        dir,
        "CA certificate",
        &with(
            &["-exportcert", "-rfc", "-alias", "ca", "-file", "ca.pem"],
            &["-keystore", "ca.p12"],
        ),
    )?;
    keytool(
        dir,
        "broker key",
        &with(
            &[
                "-genkeypair",
                "-alias",
                "broker",
                "-keyalg",
                "RSA",
                "-keysize",
                "2048",
            ],
            &[
                "-dname",
                "CN=localhost",
                "-ext",
                san,
                "-validity",
                "30",
                "-keystore",
                "broker.p12",
            ],
        ),
    )?;
    keytool(
        dir,
        "broker certificate request",
        &with(
            &["-certreq", "-alias", "broker", "-file", "broker.csr"],
            &["-keystore", "broker.p12"],
        ),
    )?;
    keytool(
        dir,
        "broker certificate",
        &with(
            &["-gencert", "-rfc", "-alias", "ca", "-infile", "broker.csr"],
            &[
                "-outfile",
                "broker.pem",
                "-ext",
                san,
                "-validity",
                "30",
                "-keystore",
                "ca.p12",
            ],
        ),
    )?;
    keytool(
        dir,
        "trust the CA",
        &with(
            &[
                "-importcert",
                "-noprompt",
                "-alias",
                "ca",
                "-file",
                "ca.pem",
            ],
            &["-keystore", "broker.p12"],
        ),
    )?;
    keytool(
        dir,
        "install the signed certificate",
        &with(
            &["-importcert", "-alias", "broker", "-file", "broker.pem"],
            &["-keystore", "broker.p12"],
        ),
    )?;
    Ok(tls)
}

/// The `server.properties` lines of a broker with a SASL_SSL listener on
/// `secure_port` beside PLAINTEXT `port`: they replace the template's
/// listener lines and add TLS, SCRAM and the authorizer.
pub fn server_properties(
    template: &str,
    port: u16,
    controller_port: u16,
    secure_port: u16,
    tls: &Tls,
) -> String {
    let listeners = format!(
        "listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port},SASL_SSL://127.0.0.1:{secure_port}"
    );
    let advertised = format!(
        "advertised.listeners=PLAINTEXT://127.0.0.1:{port},SASL_SSL://127.0.0.1:{secure_port}"
    );
    let mut text = String::new();
    for line in template.lines() {
        let line = if line.starts_with("listeners=") {
            listeners.as_str()
        } else if line.starts_with("advertised.listeners=") {
            advertised.as_str()
        } else if line.starts_with("listener.security.protocol.map=") {
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL"
        } else {
            line
        };
        text.push_str(line);
        text.push('\n');
    }
    text.push_str(&format!(
        "\n# The secure listener (testkit/src/kafka_security.rs).\n\
         sasl.enabled.mechanisms=SCRAM-SHA-512\n\
         listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;\n\
         ssl.keystore.type=PKCS12\n\
         ssl.keystore.location={}\n\
         ssl.keystore.password={STORE_PASSWORD}\n\
         ssl.key.password={STORE_PASSWORD}\n\
         authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n\
         allow.everyone.if.no.acl.found=false\n\
         super.users=User:ANONYMOUS\n",
        tls.keystore.display()
    ));
    text
}

/// The storage tool's arguments that register `secure`'s SCRAM users.
pub fn scram_format_args(secure: &Secure) -> Vec<String> {
    secure
        .users
        .iter()
        .flat_map(|(name, password)| {
            [
                "--add-scram".to_string(),
                format!("SCRAM-SHA-512=[name={name},password={password}]"),
            ]
        })
        .collect()
}

/// Runs Kafka's `AclCommand` against the broker's PLAINTEXT listener (a
/// super user), e.g. `["--add", "--allow-principal", "User:x", …]`.
pub fn acl(kafka: &KafkaProcess, args: &[&str]) -> Result<(), LaunchError> {
    let out = kafka
        .tool_command("org.apache.kafka.tools.AclCommand")
        .arg("--bootstrap-server")
        .arg(kafka.bootstrap())
        .args(args)
        .output()
        .map_err(LaunchError::Java)?;
    if out.status.success() {
        return Ok(());
    }
    Err(LaunchError::Tool {
        what: format!("AclCommand {}", args.join(" ")),
        status: out.status,
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}
