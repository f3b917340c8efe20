//! TLS with rustls: the server's certificate, mutual TLS, and the settings
//! that turn it on, with certificates made for each run by a test CA.

use std::path::{Path, PathBuf};
use std::time::Duration;

use firstreply::api::first_reply_client::FirstReplyClient;
use firstreply::cli::ClientTls;
use firstreply::server::ServeOptions;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::helpers::{inquiry, spawn_server_with, test_settings};

/// A CA and PEM files of a server and a client certificate it signed.
struct Certificates {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn certificate_authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA")
}

fn certificates(ca_name: &str) -> Certificates {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, pem: String| -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).expect("write PEM");
        path
    };
    let ca = certificate_authority(ca_name);
    let issue = |names: Vec<String>, usage: ExtendedKeyUsagePurpose, file: &str| {
        let mut params = CertificateParams::new(names).expect("params");
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &ca).expect("sign");
        (
            write(&format!("{file}.pem"), cert.pem()),
            write(&format!("{file}-key.pem"), key.serialize_pem()),
        )
    };
    let (server_cert, server_key) = issue(
        vec!["localhost".into(), "127.0.0.1".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
        "server",
    );
    let (client_cert, client_key) = issue(
        vec!["helpdesk.example".into()],
        ExtendedKeyUsagePurpose::ClientAuth,
        "client",
    );
    Certificates {
        ca: write("ca.pem", ca.pem()),
        _dir: dir,
        server_cert,
        server_key,
        client_cert,
        client_key,
    }
}

fn path(path: &Path) -> String {
    path.to_str().expect("utf-8 path").to_string()
}

/// Server options from the settings, with TLS on (and mutual TLS if
/// `client_ca` is given).
fn tls_options(certs: &Certificates, client_ca: Option<&Path>) -> ServeOptions {
    let mut settings = test_settings("api");
    settings.server.tls_cert = path(&certs.server_cert);
    settings.server.tls_key = path(&certs.server_key);
    settings.server.tls_client_ca = client_ca.map(path).unwrap_or_default();
    ServeOptions::from_settings(&settings, None).expect("TLS options")
}

fn client_tls(ca: &Path, identity: Option<(&Path, &Path)>) -> ClientTls {
    ClientTls {
        tls_ca: Some(ca.to_path_buf()),
        tls_domain: Some("localhost".into()),
        tls_cert: identity.map(|(cert, _)| cert.to_path_buf()),
        tls_key: identity.map(|(_, key)| key.to_path_buf()),
    }
}

/// Connects and asks for health; the error text if either fails.
async fn health_over(tls: &ClientTls, addr: std::net::SocketAddr) -> Result<i32, String> {
    let endpoint = tls
        .endpoint(&addr.to_string())
        .map_err(|e| format!("{e:#}"))?
        .connect_timeout(Duration::from_secs(5));
    let channel: Channel = endpoint.connect().await.map_err(|e| format!("{e:?}"))?;
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "firstreply.v1.FirstReply".into(),
        })
        .await
        .map(|response| response.into_inner().status)
        .map_err(|status| format!("{status:?}"))
}

#[tokio::test]
async fn serves_over_tls_to_clients_that_trust_its_certificate() {
    let certs = certificates("firstreply test CA");
    let addr = spawn_server_with(tls_options(&certs, None), std::future::pending());

    let trusted = client_tls(&certs.ca, None);
    assert_eq!(
        health_over(&trusted, addr).await,
        Ok(ServingStatus::Serving as i32)
    );
    let channel = trusted
        .endpoint(&addr.to_string())
        .expect("endpoint")
        .connect()
        .await
        .expect("TLS connect");
    let triage = FirstReplyClient::new(channel)
        .triage(inquiry("tls-1", "Where is my order? It has not arrived."))
        .await
        .expect("triage over TLS")
        .into_inner();
    assert_eq!(triage.intent.expect("intent").name, "shipping_status");

    // A client trusting another CA refuses the server; plaintext is refused.
    let other = certificates("some other CA");
    let refused = health_over(&client_tls(&other.ca, None), addr).await;
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("UnknownIssuer")),
        "{refused:?}"
    );
    let plain = ClientTls {
        tls_ca: None,
        tls_domain: None,
        tls_cert: None,
        tls_key: None,
    };
    assert!(health_over(&plain, addr).await.is_err());

    // The health command of the container image, over TLS.
    let probe = |tls: &ClientTls| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_firstreply"));
        command.args(["health", "--addr", &addr.to_string()]);
        if let Some(ca) = &tls.tls_ca {
            command
                .arg("--tls-ca")
                .arg(ca)
                .args(["--tls-domain", "localhost"]);
        }
        command.output().expect("run firstreply health")
    };
    let output = probe(&trusted);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "SERVING");
    assert!(!probe(&plain).status.success());
}

#[tokio::test]
async fn mutual_tls_admits_only_clients_with_a_certificate_from_the_ca() {
    let certs = certificates("firstreply test CA");
    let addr = spawn_server_with(tls_options(&certs, Some(&certs.ca)), std::future::pending());

    let with_identity = client_tls(&certs.ca, Some((&certs.client_cert, &certs.client_key)));
    assert_eq!(
        health_over(&with_identity, addr).await,
        Ok(ServingStatus::Serving as i32)
    );
    // TLS 1.3 clients finish their side of the handshake before the server
    // checks theirs: the refusal shows as an alert or a closed connection.
    let without = health_over(&client_tls(&certs.ca, None), addr).await;
    assert!(without.is_err(), "{without:?}");
    // A client certificate from a CA the server does not name.
    let stranger = certificates("some other CA");
    let foreign = ClientTls {
        tls_cert: Some(stranger.client_cert.clone()),
        tls_key: Some(stranger.client_key.clone()),
        ..client_tls(&certs.ca, None)
    };
    assert!(health_over(&foreign, addr).await.is_err());
}

#[test]
fn tls_settings_are_checked_when_the_server_starts() {
    let certs = certificates("firstreply test CA");
    let error = |cert: &str, key: &str, client_ca: &str| {
        let mut settings = test_settings("api");
        settings.server.tls_cert = cert.into();
        settings.server.tls_key = key.into();
        settings.server.tls_client_ca = client_ca.into();
        match ServeOptions::from_settings(&settings, None) {
            Ok(_) => String::new(),
            Err(error) => format!("{error:#}"),
        }
    };
    let (cert, key) = (path(&certs.server_cert), path(&certs.server_key));
    assert_eq!(error(&cert, &key, ""), "");
    assert!(error(&cert, "", "").contains("tls_key"));
    assert!(error("", "", &path(&certs.ca)).contains("tls_client_ca"));
    let missing = error(&cert, "/nonexistent/key.pem", "");
    assert!(
        missing.contains("tls_key") && missing.contains("/nonexistent/key.pem"),
        "{missing}"
    );
}
