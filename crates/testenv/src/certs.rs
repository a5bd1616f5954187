//! The control plane's PKI: one CA that signs the API server's serving certificate and two client
//! certificates of group system:masters, the admin's (tests, the control plane's own components)
//! and the operator's (user `operator`, so the API server's audit log tells its requests apart),
//! and a key that signs service-account tokens.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

use crate::Error;

/// The user of the operator's client certificate.
pub const OPERATOR_USER: &str = "operator";

pub struct Pki {
    pub ca_cert: String,
    pub serving_cert: String,
    pub serving_key: String,
    pub admin_cert: String,
    pub admin_key: String,
    pub operator_cert: String,
    pub operator_key: String,
    pub service_account_key: String,
    pub service_account_public_key: String,
}

impl Pki {
    pub fn generate() -> Result<Pki, Error> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "serin-testenv-ca");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::CrlSign,
        ];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let serving_key = KeyPair::generate()?;
        let mut serving = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
        serving.distinguished_name.push(DnType::CommonName, "kube-apiserver");
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving_cert = serving.signed_by(&serving_key, &issuer)?;

        let client = |user: &str| -> Result<(String, String), Error> {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.distinguished_name.push(DnType::CommonName, user);
            params
                .distinguished_name
                .push(DnType::OrganizationName, "system:masters");
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            Ok((params.signed_by(&key, &issuer)?.pem(), key.serialize_pem()))
        };
        let (admin_cert, admin_key) = client("serin-admin")?;
        let (operator_cert, operator_key) = client(OPERATOR_USER)?;

        let service_account = KeyPair::generate()?;
        Ok(Pki {
            ca_cert: ca_cert.pem(),
            serving_cert: serving_cert.pem(),
            serving_key: serving_key.serialize_pem(),
            admin_cert,
            admin_key,
            operator_cert,
            operator_key,
            service_account_key: service_account.serialize_pem(),
            service_account_public_key: service_account.public_key_pem(),
        })
    }

    pub fn write(&self, dir: &Path) -> Result<(), Error> {
        for (file, contents) in [
            ("ca.crt", &self.ca_cert),
            ("apiserver.crt", &self.serving_cert),
            ("apiserver.key", &self.serving_key),
            ("admin.crt", &self.admin_cert),
            ("admin.key", &self.admin_key),
            ("operator.crt", &self.operator_cert),
            ("operator.key", &self.operator_key),
            ("service-account.key", &self.service_account_key),
            ("service-account.pub", &self.service_account_public_key),
        ] {
            std::fs::write(dir.join(file), contents)?;
        }
        Ok(())
    }
}
