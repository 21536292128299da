//! The embedded development issuer behind `serve --dev` and `timesheets token`.
//!
//! It signs RS256 tokens with an RSA key kept in a local PKCS#8 PEM file, so
//! tokens survive restarts, and publishes the matching JWKS. Tests use the
//! same [`SigningKey`] as their in-process issuer. Dev tokens are for local
//! use only: anyone with the key file can mint any scope.

use std::{
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use aws_lc_rs::{
    digest,
    encoding::AsDer,
    rand::SystemRandom,
    rsa::{KeyPair, KeySize},
    signature::{KeyPair as _, RSA_PKCS1_SHA256},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use serde_json::{Value, json};

use crate::config::TokenArgs;

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// Scopes of the three dev personas, as in ExampleCo's roles.
pub const EMPLOYEE_SCOPES: &[&str] = &["create:timesheets", "read:timesheets", "delete:timesheets"];
pub const MANAGER_SCOPES: &[&str] = &[
    "create:timesheets",
    "read:timesheets",
    "delete:timesheets",
    "approve:timesheets",
];
pub const IMPORTER_SCOPES: &[&str] = &["batch:upload"];

/// An RS256 signing key with its key id.
pub struct SigningKey {
    key: KeyPair,
    kid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh 2048-bit RSA key.
    pub fn generate() -> anyhow::Result<Self> {
        let key = KeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| anyhow::anyhow!("RSA key generation failed"))?;
        Ok(Self::from_key(key))
    }

    fn from_key(key: KeyPair) -> Self {
        // The kid is a digest of the modulus, so the same key keeps the same
        // kid across restarts and a new key gets a new one.
        let modulus = key.public_key().modulus();
        let digest = digest::digest(&digest::SHA256, modulus.big_endian_without_leading_zero());
        let kid = URL_SAFE_NO_PAD.encode(&digest.as_ref()[..12]);
        Self { key, kid }
    }

    /// Loads the key at `path`, creating it (mode 0600) if it does not exist.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(pem) => {
                let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
                let der = STANDARD
                    .decode(body.trim())
                    .context("dev key file is not PEM")?;
                let key = KeyPair::from_pkcs8(&der)
                    .map_err(|e| anyhow::anyhow!("dev key file holds no RSA key: {e}"))?;
                Ok(Self::from_key(key))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let signing = Self::generate()?;
                signing
                    .save(path)
                    .with_context(|| format!("writing dev key {}", path.display()))?;
                Ok(signing)
            }
            Err(err) => Err(err).with_context(|| format!("reading dev key {}", path.display())),
        }
    }

    fn save(&self, path: &Path) -> anyhow::Result<()> {
        let der = self
            .key
            .as_der()
            .map_err(|_| anyhow::anyhow!("encoding key as PKCS#8"))?;
        let b64 = STANDARD.encode(der.as_ref());
        let mut pem = format!("{PEM_BEGIN}\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str(PEM_END);
        pem.push('\n');
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        std::io::Write::write_all(&mut options.open(path)?, pem.as_bytes())?;
        Ok(())
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half as a JWK.
    pub fn jwk(&self) -> Value {
        let public = self.key.public_key();
        json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        })
    }

    /// Signs arbitrary header and claims JSON (tests use this to forge odd tokens).
    pub fn sign_raw(&self, header: &Value, claims: &Value) -> anyhow::Result<String> {
        self.sign_bytes(&serde_json::to_vec(header)?, &serde_json::to_vec(claims)?)
    }

    /// Signs arbitrary header and claims bytes with RS256, whatever they say.
    pub fn sign_bytes(&self, header: &[u8], claims: &[u8]) -> anyhow::Result<String> {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| anyhow::anyhow!("RS256 signing failed"))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }

    /// Signs `claims` as an RS256 JWT with this key's kid.
    pub fn sign(&self, claims: &Value) -> anyhow::Result<String> {
        self.sign_raw(
            &json!({"alg": "RS256", "typ": "JWT", "kid": self.kid}),
            claims,
        )
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Who a dev token is for.
#[derive(Debug, Clone)]
pub struct DevClaims<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub subject: &'a str,
    pub identity_claim: &'a str,
    pub email: Option<&'a str>,
    pub scopes: &'a [&'a str],
    pub expires_in: Duration,
}

impl DevClaims<'_> {
    pub fn to_json(&self) -> Value {
        let now = unix_now();
        let mut claims = json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": self.subject,
            "iat": now,
            "exp": now + self.expires_in.as_secs(),
            "scope": self.scopes.join(" "),
        });
        if let (Some(email), Some(map)) = (self.email, claims.as_object_mut()) {
            map.insert(self.identity_claim.to_owned(), json!(email));
        }
        claims
    }
}

/// The issuer URL a dev server at `addr` uses: loopback when it listens on
/// every interface, because that is where local clients reach it.
pub fn issuer_for(addr: std::net::SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
    } else {
        addr.ip()
    };
    format!("http://{}/", std::net::SocketAddr::new(ip, addr.port()))
}

/// `timesheets token`: prints one dev token.
pub fn mint_token(args: &TokenArgs) -> anyhow::Result<String> {
    let key = SigningKey::load_or_create(&args.dev_key_file)?;
    let scopes: Vec<&str> = args
        .scopes
        .iter()
        .flat_map(|s| s.split_whitespace())
        .collect();
    let issuer = issuer_for(args.listen);
    let claims = DevClaims {
        issuer: &issuer,
        audience: &args.audience,
        subject: &args.sub,
        identity_claim: &args.identity_claim,
        email: args.email.as_deref(),
        scopes: &scopes,
        expires_in: args.expires_in,
    };
    key.sign(&claims.to_json())
}

/// The `--dev` banner: tokens for each persona and commands to try.
pub fn banner(
    key: &SigningKey,
    issuer: &str,
    audience: &str,
    identity_claim: &str,
    addr: &str,
) -> anyhow::Result<String> {
    let personas: [(&str, &str, &str, &[&str]); 3] = [
        (
            "EMPLOYEE",
            "dev|employee",
            "employee@exampleco.com",
            EMPLOYEE_SCOPES,
        ),
        (
            "MANAGER",
            "dev|manager",
            "manager@exampleco.com",
            MANAGER_SCOPES,
        ),
        ("IMPORTER", "dev-importer@clients", "", IMPORTER_SCOPES),
    ];
    let mut out = String::from(
        "\nDEVELOPMENT MODE: the tokens below are signed by a local key and are for local use only.\n\n",
    );
    for (name, subject, email, scopes) in personas {
        let claims = DevClaims {
            issuer,
            audience,
            subject,
            identity_claim,
            email: (!email.is_empty()).then_some(email),
            scopes,
            expires_in: Duration::from_secs(12 * 3600),
        };
        out.push_str(&format!(
            "# {} ({})\nexport {name}='{}'\n\n",
            name.to_lowercase(),
            scopes.join(" "),
            key.sign(&claims.to_json())?
        ));
    }
    out.push_str(&format!(
        "Try it:\n  grpcurl -plaintext -H \"authorization: Bearer $EMPLOYEE\" \\\n    -d '{{\"timesheet\":{{\"date\":\"2026-11-27\",\"project\":\"Website\",\"hours\":7.5}}}}' \\\n    {addr} timesheets.v1.TimesheetService/CreateTimesheet\n  grpcurl -plaintext -H \"authorization: Bearer $EMPLOYEE\" {addr} timesheets.v1.TimesheetService/ListTimesheets\n  grpcurl -plaintext -H \"authorization: Bearer $MANAGER\" {addr} timesheets.v1.TimesheetService/ListPendingApprovals\n\nMint more with: cargo run --release -- token --scope read:timesheets --email you@exampleco.com\n"
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dev_key_survives_a_reload_with_the_same_kid() {
        let dir = std::env::temp_dir().join(format!("ts-devkey-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("key.pem");
        let _ = std::fs::remove_file(&path);
        let first = SigningKey::load_or_create(&path).expect("created");
        let second = SigningKey::load_or_create(&path).expect("reloaded");
        assert_eq!(first.kid(), second.kid());
        assert_eq!(first.jwk(), second.jwk());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_dev_issuer_is_loopback_when_listening_everywhere() {
        assert_eq!(
            issuer_for("0.0.0.0:8080".parse().expect("addr")),
            "http://127.0.0.1:8080/"
        );
        assert_eq!(
            issuer_for("127.0.0.2:9".parse().expect("addr")),
            "http://127.0.0.2:9/"
        );
    }
}
