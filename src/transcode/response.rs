//! The gRPC reply → HTTP: reading the status from the trailers (or from a
//! trailers-only reply), decoding the one message frame, and writing the
//! success response with its status (200, 201, 204), `Location` and `Link`.

use axum::{body::Bytes, response::Response};
use base64::{
    Engine, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use http_body_util::BodyExt;
use percent_encoding::percent_decode_str;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, SerializeOptions};
use tonic::Code;

use crate::headers::{GRPC_MESSAGE, GRPC_STATUS, GRPC_STATUS_DETAILS_BIN};

use super::{
    error::TranscodeError,
    json::{self, JSON_CONTENT_TYPE},
    reply_json,
    rules::Binding,
};

/// gRPC implementations differ on padding `grpc-status-details-bin`.
const DETAILS_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
/// AIP-158 field names: when `response_body` drops the token from a list
/// reply, it moves to a `Link` header that sets this request field.
pub(crate) const NEXT_PAGE_TOKEN: &str = "next_page_token";
pub(crate) const PAGE_TOKEN: &str = "page_token";

/// Waits for the whole reply and returns its one message's encoding, or the
/// failure.
pub(crate) async fn read_reply(
    reply: http::Response<tonic::body::Body>,
) -> Result<Bytes, TranscodeError> {
    let (parts, body) = reply.into_parts();
    if let Some(failure) = failure(&parts.headers, &parts.headers) {
        return Err(failure);
    }
    if parts.status != StatusCode::OK {
        return Err(TranscodeError::Grpc {
            code: code_for_http(parts.status),
            message: format!("the gRPC service answered HTTP {}", parts.status),
            details: Bytes::new(),
            challenge: None,
            retry_after: None,
        });
    }
    let collected = match body.collect().await {
        Ok(collected) => collected,
        Err(status) => {
            return Err(TranscodeError::Grpc {
                code: status.code(),
                message: status.message().to_owned(),
                details: Bytes::copy_from_slice(status.details()),
                challenge: status
                    .metadata()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok()?.parse().ok()),
                retry_after: status
                    .metadata()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.trim().parse().ok()),
            });
        }
    };
    let trailers = collected.trailers().cloned().unwrap_or_default();
    if let Some(failure) = failure(&trailers, &parts.headers) {
        return Err(failure);
    }
    if !trailers.contains_key(GRPC_STATUS) {
        return Err(TranscodeError::Internal(
            "the gRPC reply ended without grpc-status".into(),
        ));
    }
    single_frame(collected.to_bytes())
}

/// A non-OK `grpc-status` in `headers`, with the challenge looked up there
/// and then in `fallback` (a challenge may sit in either).
fn failure(headers: &HeaderMap, fallback: &HeaderMap) -> Option<TranscodeError> {
    let code = Code::from_bytes(headers.get(GRPC_STATUS)?.as_bytes());
    if code == Code::Ok {
        return None;
    }
    let message = headers
        .get(GRPC_MESSAGE)
        .map(|v| {
            percent_decode_str(v.to_str().unwrap_or_default())
                .decode_utf8_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    let details = headers
        .get(GRPC_STATUS_DETAILS_BIN)
        .and_then(|v| DETAILS_BASE64.decode(v.as_bytes()).ok())
        .map(Bytes::from)
        .unwrap_or_default();
    let challenge = headers
        .get(header::WWW_AUTHENTICATE)
        .or_else(|| fallback.get(header::WWW_AUTHENTICATE))
        .cloned();
    // Delay-seconds, the only form gRPC services here send (RFC 9110 §10.2.3).
    let retry_after = headers
        .get(header::RETRY_AFTER)
        .or_else(|| fallback.get(header::RETRY_AFTER))
        .and_then(|v| v.to_str().ok()?.trim().parse().ok());
    Some(TranscodeError::Grpc {
        code,
        message,
        details,
        challenge,
        retry_after,
    })
}

/// The gRPC spec's mapping for a reply that is not gRPC at all
/// (grpc/doc/http-grpc-status-mapping.md).
fn code_for_http(status: StatusCode) -> Code {
    match status {
        StatusCode::BAD_REQUEST => Code::Internal,
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::NOT_FOUND => Code::Unimplemented,
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => Code::Unavailable,
        _ => Code::Unknown,
    }
}

/// A unary reply is exactly one uncompressed length-prefixed message.
fn single_frame(bytes: Bytes) -> Result<Bytes, TranscodeError> {
    let bad = |why: &str| TranscodeError::Internal(format!("malformed gRPC reply: {why}"));
    let header: [u8; 5] = bytes
        .get(..5)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| bad("no message"))?;
    if header[0] != 0 {
        return Err(bad("compressed, though no encoding was offered"));
    }
    let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if bytes.len() - 5 != length {
        return Err(bad("not exactly one message"));
    }
    Ok(bytes.slice(5..))
}

/// Renders a successful call from the reply message's encoding. The JSON
/// comes from `reply_json` when it can write it, else from prost-reflect
/// (the only case that decodes a `DynamicMessage`); `Location` and `Link`
/// read their one string field from the encoding.
pub(crate) fn success(
    binding: &Binding,
    payload: &Bytes,
    uri: &Uri,
    options: &SerializeOptions,
    proto_names: bool,
) -> Result<Response, TranscodeError> {
    if binding.success == StatusCode::NO_CONTENT {
        let mut response = Response::new(axum::body::Body::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        return Ok(response);
    }
    let output = binding.rpc.output();
    let field = binding.response_body.as_ref();
    let body = match binding.reply.write(payload, proto_names) {
        Some(body) => body,
        None => {
            let message = DynamicMessage::decode(output, payload.clone())
                .map_err(|err| TranscodeError::Internal(format!("decoding the reply: {err}")))?;
            json::write_message(&message, field, options, proto_names).map_err(|err| {
                TranscodeError::Internal(format!("writing the reply as JSON: {err}"))
            })?
        }
    };
    let mut response = Response::new(axum::body::Body::from(body));
    *response.status_mut() = binding.success;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    if let Some(location) = location(binding, payload) {
        headers.insert(header::LOCATION, location);
    }
    if let Some(link) = next_link(binding, payload, uri) {
        headers.insert(header::LINK, link);
    }
    Ok(response)
}

/// The created resource's path, when the binding knows its GET template
/// and the reply carries the identifying field.
fn location(binding: &Binding, payload: &[u8]) -> Option<HeaderValue> {
    let location = binding.location.as_ref()?;
    let id = string_field(payload, &location.field)?;
    HeaderValue::from_str(&location.template.expand(&[&id])?).ok()
}

/// A top-level string field of the reply, when set and not empty.
fn string_field(payload: &[u8], field: &FieldDescriptor) -> Option<String> {
    if field.kind() != Kind::String || field.is_list() {
        return None;
    }
    reply_json::string_field(payload, field.number()).filter(|s| !s.is_empty())
}

/// RFC 8288 `Link: <path?…&page_token=…>; rel="next"` for a list whose
/// token the bare-array body cannot carry. The other query parameters are
/// kept, because page tokens are only valid with the same filters.
fn next_link(binding: &Binding, payload: &[u8], uri: &Uri) -> Option<HeaderValue> {
    let body_field = binding.response_body.as_ref()?;
    if body_field.name() == NEXT_PAGE_TOKEN {
        return None;
    }
    let page_token = binding.rpc.input().get_field_by_name(PAGE_TOKEN)?;
    let field = binding.rpc.output().get_field_by_name(NEXT_PAGE_TOKEN)?;
    let token = string_field(payload, &field)?;
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()) {
        // The request may name the token by either of its names.
        if key != page_token.name() && key != page_token.json_name() {
            query.append_pair(&key, &value);
        }
    }
    query.append_pair(PAGE_TOKEN, &token);
    HeaderValue::from_str(&format!(
        "<{}?{}>; rel=\"next\"",
        uri.path(),
        query.finish()
    ))
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_that_is_not_grpc_gets_the_grpc_specs_code_for_its_http_status() {
        for (status, code) in [
            (400, Code::Internal),
            (401, Code::Unauthenticated),
            (403, Code::PermissionDenied),
            (404, Code::Unimplemented),
            (429, Code::Unavailable),
            (502, Code::Unavailable),
            (503, Code::Unavailable),
            (504, Code::Unavailable),
            (500, Code::Unknown),
            (418, Code::Unknown),
        ] {
            let status = StatusCode::from_u16(status).expect("a status");
            assert_eq!(code_for_http(status), code, "{status}");
        }
    }
}
