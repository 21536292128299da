//! The embedded development issuer behind `serve --dev` and `timesheets token`.
//!
//! It signs RS256 tokens with an RSA key kept in a local PKCS#8 PEM file, so
//! tokens survive restarts, and publishes the matching JWKS. Tests use the
//! same [`SigningKey`] as their in-process issuer. Dev tokens are for local
//! use only: anyone with the key file can mint any scope. `oauth` is its
//! OAuth 2.0 token endpoint.

use std::{
    path::Path,
    time::{SystemTime, UNIX_EPOCH},
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

use crate::{
    auth::keys::well_known,
    config::{DEV_AUDIENCE, TokenArgs},
};

mod oauth;

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
    /// Seconds until expiry; negative mints an already expired token (tests, demos).
    pub expires_in: i64,
}

impl DevClaims<'_> {
    pub fn to_json(&self) -> Value {
        let now = unix_now() as i64;
        let mut claims = json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": self.subject,
            "iat": now.min(now + self.expires_in),
            "exp": now + self.expires_in,
            "scope": self.scopes.join(" "),
        });
        if let (Some(email), Some(map)) = (self.email, claims.as_object_mut()) {
            map.insert(self.identity_claim.to_owned(), json!(email));
        }
        claims
    }
}

/// A ready-made dev identity, as in ExampleCo's roles.
#[derive(Debug, Clone, Copy)]
pub struct Persona {
    pub name: &'static str,
    pub subject: &'static str,
    pub email: Option<&'static str>,
    pub scopes: &'static [&'static str],
}

impl Persona {
    /// The persona called `name`, as `/dev/token` and the OAuth client id
    /// name them.
    pub fn named(name: &str) -> Option<&'static Persona> {
        PERSONAS.iter().find(|p| p.name == name)
    }
}

pub const PERSONAS: [Persona; 3] = [
    Persona {
        name: "employee",
        subject: "dev|employee",
        email: Some("employee@exampleco.com"),
        scopes: EMPLOYEE_SCOPES,
    },
    Persona {
        name: "manager",
        subject: "dev|manager",
        email: Some("manager@exampleco.com"),
        scopes: MANAGER_SCOPES,
    },
    Persona {
        name: "importer",
        subject: "dev-importer@clients",
        email: None,
        scopes: IMPORTER_SCOPES,
    },
];

/// Lifetime of the tokens the banner prints: a working day.
const BANNER_TOKEN_SECS: i64 = 12 * 3600;
/// Lifetime of a token asked for over HTTP without one: Auth0's default
/// for an API.
const TOKEN_SECS: i64 = 3600;
/// Bounds on `/dev/token?ttl=`: a day either way.
const MAX_DEV_TTL_SECS: i64 = 24 * 3600;

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

/// The embedded issuer of `serve --dev`.
pub struct DevIssuer {
    pub issuer: String,
    pub audience: String,
    pub identity_claim: String,
    pub key: SigningKey,
    /// Where `key` lives, for the `token` command the banner prints.
    pub key_file: std::path::PathBuf,
}

impl DevIssuer {
    /// A token for `persona` that expires in `expires_in` seconds.
    pub fn token(&self, persona: &Persona, expires_in: i64) -> anyhow::Result<String> {
        self.token_with_scopes(persona, persona.scopes, expires_in)
    }

    /// A token for `persona` carrying `scopes` only.
    fn token_with_scopes(
        &self,
        persona: &Persona,
        scopes: &[&str],
        expires_in: i64,
    ) -> anyhow::Result<String> {
        let claims = DevClaims {
            issuer: &self.issuer,
            audience: &self.audience,
            subject: persona.subject,
            identity_claim: &self.identity_claim,
            email: persona.email,
            scopes,
            expires_in,
        };
        self.key.sign(&claims.to_json())
    }

    /// A token for `persona` carrying `scopes`, as an OAuth 2.0 token
    /// response (RFC 6749 §5.1), the body both HTTP endpoints answer with.
    fn token_response(
        &self,
        persona: &Persona,
        scopes: &[&str],
        expires_in: i64,
    ) -> anyhow::Result<Value> {
        Ok(json!({
            "access_token": self.token_with_scopes(persona, scopes, expires_in)?,
            "token_type": "Bearer",
            "expires_in": expires_in,
            "scope": scopes.join(" "),
        }))
    }

    /// The `--dev` banner: tokens for each persona and commands to try.
    pub fn banner(&self) -> anyhow::Result<String> {
        let mut out = String::from(
            "\nDEVELOPMENT MODE: the tokens below are signed by a local key and are for local use only.\n\n",
        );
        for persona in &PERSONAS {
            out.push_str(&format!(
                "# {} ({})\nexport {}='{}'\n\n",
                persona.name,
                persona.scopes.join(" "),
                persona.name.to_uppercase(),
                self.token(persona, BANNER_TOKEN_SECS)?
            ));
        }
        let addr = self
            .issuer
            .trim_start_matches("http://")
            .trim_end_matches('/');
        out.push_str(&format!(
            "Try it:\n  grpcurl -plaintext -H \"authorization: Bearer $EMPLOYEE\" \\\n    -d '{{\"timesheet\":{{\"date\":\"2026-11-27\",\"project\":\"Website\",\"hours\":7.5}}}}' \\\n    {addr} timesheets.v1.TimesheetService/CreateTimesheet\n  grpcurl -plaintext -H \"authorization: Bearer $EMPLOYEE\" {addr} timesheets.v1.TimesheetService/ListTimesheets\n  curl -H \"authorization: Bearer $EMPLOYEE\" http://{addr}/timesheets\n  open http://{addr}/ for the web client\n\nMint more with: {}\n",
            self.mint_command(addr)
        ));
        Ok(out)
    }

    /// A `token` command whose tokens this issuer accepts: the issuer
    /// comes from `--listen`, the key from `--dev-key-file`, and audience
    /// and identity claim must match the server's. Every one is spelled
    /// out, so no `TIMESHEETS_*` variable of the shell that runs it can
    /// change them.
    fn mint_command(&self, addr: &str) -> String {
        format!(
            "cargo run --release -- token --listen {addr} --dev-key-file {} --audience {} \
             --identity-claim {} --scope read:timesheets --email you@exampleco.com",
            shell_word(&self.key_file.to_string_lossy()),
            shell_word(&self.audience),
            shell_word(&self.identity_claim),
        )
    }

    /// Discovery document, JWKS, `/dev/token` and the OAuth token endpoint,
    /// so other tools and the web client can use dev tokens the way they
    /// would a real tenant's.
    pub fn routes(self: std::sync::Arc<Self>) -> axum::Router {
        use axum::{
            Json,
            extract::{Query, State, rejection::QueryRejection},
            response::IntoResponse,
            routing::{get, post},
        };
        use tonic::Code;

        use crate::transcode;

        #[derive(serde::Deserialize)]
        struct TokenQuery {
            persona: String,
            ttl: Option<i64>,
        }

        async fn jwks(State(dev): State<std::sync::Arc<DevIssuer>>) -> Json<Value> {
            Json(json!({ "keys": [dev.key.jwk()] }))
        }
        async fn discovery(State(dev): State<std::sync::Arc<DevIssuer>>) -> Json<Value> {
            Json(json!({
                "issuer": dev.issuer,
                "jwks_uri": well_known::url(&dev.issuer, well_known::JWKS),
                "token_endpoint": well_known::url(&dev.issuer, well_known::TOKEN),
                "grant_types_supported": ["client_credentials"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }))
        }
        async fn token(
            State(dev): State<std::sync::Arc<DevIssuer>>,
            query: Result<Query<TokenQuery>, QueryRejection>,
        ) -> axum::response::Response {
            // axum's own rejection is plain text; every error here is JSON.
            let persona = query.ok().and_then(|Query(query)| {
                let persona = Persona::named(&query.persona)?;
                Some((persona, query.ttl))
            });
            let Some((persona, ttl)) = persona else {
                return transcode::error_response(
                    Code::InvalidArgument,
                    "the query takes persona (employee, manager or importer) and an optional \
                     ttl in whole seconds",
                    None,
                );
            };
            let ttl = ttl
                .unwrap_or(TOKEN_SECS)
                .clamp(-MAX_DEV_TTL_SECS, MAX_DEV_TTL_SECS);
            match dev.token_response(persona, persona.scopes, ttl) {
                Ok(body) => Json(body).into_response(),
                Err(err) => {
                    tracing::error!(error = ?err, "minting a dev token");
                    transcode::error_response(Code::Internal, "minting the dev token failed", None)
                }
            }
        }
        axum::Router::new()
            .route(well_known::JWKS, get(jwks))
            .route(well_known::DISCOVERY, get(discovery))
            .route("/dev/token", get(token))
            .route(well_known::TOKEN, post(oauth::token))
            .with_state(self)
    }
}

/// `text` as one POSIX shell word: as it is when that is safe, else quoted.
fn shell_word(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./:@%+=,-".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// `timesheets token`: one dev token.
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
        audience: args.audiences.first().map_or(DEV_AUDIENCE, String::as_str),
        subject: &args.sub,
        identity_claim: &args.identity_claim,
        email: args.email.as_deref(),
        scopes: &scopes,
        expires_in: i64::try_from(args.expires_in.as_secs()).unwrap_or(i64::MAX / 2),
    };
    key.sign(&claims.to_json())
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
    fn the_banners_mint_command_makes_tokens_for_this_very_issuer() {
        use clap::Parser as _;
        let dir = std::env::temp_dir().join(format!("ts-banner-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let key_file = dir.join("a key file.pem");
        let dev = DevIssuer {
            issuer: issuer_for("127.0.0.1:9000".parse().expect("addr")),
            audience: "https://api.example/".to_owned(),
            identity_claim: crate::config::DEFAULT_IDENTITY_CLAIM.to_owned(),
            key: SigningKey::load_or_create(&key_file).expect("key"),
            key_file: key_file.clone(),
        };
        let banner = dev.banner().expect("banner");
        let line = banner
            .lines()
            .find_map(|l| l.strip_prefix("Mint more with: cargo run --release -- "))
            .expect("a mint command");
        let words = shell_words(line);
        let cli = crate::config::Cli::try_parse_from(
            std::iter::once("timesheets".to_owned()).chain(words),
        )
        .expect("the printed command parses");
        let crate::config::Command::Token(args) = cli.command else {
            panic!("expected token");
        };
        assert_eq!(issuer_for(args.listen), dev.issuer);
        assert_eq!(args.dev_key_file, key_file);
        assert_eq!(args.audiences.first(), Some(&dev.audience));
        assert_eq!(args.identity_claim, dev.identity_claim);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Splits a command line of plain and single-quoted words, as `sh` would.
    fn shell_words(line: &str) -> Vec<String> {
        let (mut words, mut word, mut quoted, mut any) = (Vec::new(), String::new(), false, false);
        for c in line.chars() {
            match c {
                '\'' => (quoted, any) = (!quoted, true),
                ' ' if !quoted => {
                    if any {
                        words.push(std::mem::take(&mut word));
                    }
                    any = false;
                }
                c => {
                    word.push(c);
                    any = true;
                }
            }
        }
        if any {
            words.push(word);
        }
        words
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
