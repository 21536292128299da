//! Building the gRPC request message from the parts of an HTTP request, in
//! a fixed order: body, then path variables (which win over the body, as in
//! grpc-gateway), then query parameters, then the `Idempotency-Key` header.

use std::{borrow::Cow, collections::HashSet};

use http::HeaderMap;
use percent_encoding::percent_decode_str;
use prost::Message as _;
use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, ReflectMessage as _, Value,
};

use super::{
    error::TranscodeError,
    json,
    rules::{Binding, BodyTarget},
    scalar,
    template::Capture,
};
use crate::headers::IDEMPOTENCY_KEY;

/// The conventional field (AIP-155) the `Idempotency-Key` header fills when
/// body and query left it empty, so a standard HTTP idempotency key reaches
/// methods built for retries.
pub(crate) const REQUEST_ID_FIELD: &str = "request_id";

/// The encoded request message for `binding`: written straight from the
/// JSON body when only the body fills it and the direct writer covers it,
/// else built as a `DynamicMessage` and encoded.
pub(crate) fn encode(
    binding: &Binding,
    captures: &[Capture],
    query: Option<&str>,
    body: &[u8],
    headers: &HeaderMap,
    options: &DeserializeOptions,
) -> Result<Vec<u8>, TranscodeError> {
    let body_only = captures.is_empty()
        && query.is_none_or(str::is_empty)
        && !headers.contains_key(IDEMPOTENCY_KEY);
    if body_only && let Some(encoded) = binding.request.as_ref().and_then(|plan| plan.write(body)) {
        return Ok(encoded);
    }
    // `encode_to_vec` sizes the message once; a DynamicMessage's
    // `encoded_len` walks every field through the descriptor, and asking
    // for it before `encode` (which asks again) tripled that walk.
    build(binding, captures, query, body, headers, options).map(|m| m.encode_to_vec())
}

/// The request message for `binding`.
fn build(
    binding: &Binding,
    captures: &[Capture],
    query: Option<&str>,
    body: &[u8],
    headers: &HeaderMap,
    options: &DeserializeOptions,
) -> Result<DynamicMessage, TranscodeError> {
    let input = binding.rpc.input();
    let blank = body.iter().all(u8::is_ascii_whitespace);
    let mut message = match (&binding.body, blank) {
        (_, true) => DynamicMessage::new(input),
        (BodyTarget::None, false) => {
            return Err(TranscodeError::InvalidArgument {
                field: None,
                message: format!(
                    "{} {} takes no request body",
                    binding.http_method,
                    binding.template.source()
                ),
            });
        }
        (BodyTarget::Whole, false) => json::read_message(input, None, body, options)
            .map_err(|err| json_error(err, body, headers))?,
        (BodyTarget::Field(field), false) => json::read_message(input, Some(field), body, options)
            .map_err(|err| json_error(err, body, headers))?,
    };
    for (chain, capture) in binding.path_fields.iter().zip(captures) {
        let dotted = dotted(chain);
        let text = capture.decode().map_err(|_| {
            TranscodeError::invalid(&dotted, format!("path value for {dotted} is not UTF-8"))
        })?;
        let Some((leaf, parents)) = chain.split_last() else {
            continue;
        };
        let value = scalar::parse(&leaf.kind(), &text).map_err(|why| {
            TranscodeError::invalid(&dotted, format!("path value for {dotted}: {why}"))
        })?;
        descend(&mut message, parents)?.set_field(leaf, value);
    }
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        apply_query(&mut message, binding, query)?;
    }
    apply_idempotency_key(&mut message, headers)?;
    Ok(message)
}

/// A parser error, with serde_json's line and column, as a 400; or a 415
/// for a body that is not JSON at all under a content type that says so.
fn json_error(err: serde_json::Error, body: &[u8], headers: &HeaderMap) -> TranscodeError {
    // serde_json files an out-of-range number or a trailing comma under
    // syntax too: a body that opens like JSON is JSON with a mistake.
    let opens_like_json = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| matches!(b, b'{' | b'['));
    let not_json = (err.is_syntax() || err.is_eof()) && !opens_like_json;
    let declared = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !is_json_media_type(v));
    if let (true, Some(content_type)) = (not_json, declared) {
        return TranscodeError::UnsupportedMediaType {
            content_type: content_type.to_owned(),
        };
    }
    TranscodeError::InvalidArgument {
        field: None,
        message: format!("invalid JSON body: {err}"),
    }
}

/// `application/json` or a `+json` type, any parameters aside.
fn is_json_media_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

fn dotted(chain: &[FieldDescriptor]) -> String {
    chain
        .iter()
        .map(FieldDescriptor::name)
        .collect::<Vec<_>>()
        .join(".")
}

/// The message at the end of `parents`, creating the intermediate messages.
fn descend<'m>(
    message: &'m mut DynamicMessage,
    parents: &[FieldDescriptor],
) -> Result<&'m mut DynamicMessage, TranscodeError> {
    let mut current = message;
    for field in parents {
        current = current
            .get_field_mut(field)
            .as_message_mut()
            .ok_or_else(|| {
                TranscodeError::Internal(format!("{} is not a message field", field.full_name()))
            })?;
    }
    Ok(current)
}

/// Query parameters fill the fields neither the path nor the body bound:
/// dot paths reach nested messages, repeated keys fill repeated fields, and
/// anything that does not name such a field is a 400, so a typo is never
/// silently ignored.
fn apply_query(
    message: &mut DynamicMessage,
    binding: &Binding,
    query: &str,
) -> Result<(), TranscodeError> {
    let mut seen: HashSet<Vec<u32>> = HashSet::new();
    for pair in query_pairs(query) {
        let (key, text) = pair?;
        let chain = resolve_query_key(binding, &key)?;
        let numbers: Vec<u32> = chain.iter().map(FieldDescriptor::number).collect();
        if binding.path_fields.iter().any(|bound| {
            bound
                .iter()
                .map(FieldDescriptor::number)
                .eq(numbers.iter().copied())
        }) {
            return Err(TranscodeError::invalid(
                &*key,
                format!("query parameter {key} is already bound by the path"),
            ));
        }
        let Some((leaf, parents)) = chain.split_last() else {
            continue;
        };
        let value = scalar::parse(&leaf.kind(), &text).map_err(|why| {
            TranscodeError::invalid(&*key, format!("query parameter {key}: {why}"))
        })?;
        let target = descend(message, parents)?;
        if leaf.is_list() {
            if let Some(list) = target.get_field_mut(leaf).as_list_mut() {
                list.push(value);
            }
        } else if seen.insert(numbers) {
            target.set_field(leaf, value);
        } else {
            return Err(TranscodeError::invalid(
                &*key,
                format!("query parameter {key} is given more than once"),
            ));
        }
    }
    Ok(())
}

/// The `application/x-www-form-urlencoded` pairs of a query. The url
/// crate's parser replaces escapes that decode to invalid UTF-8 with U+FFFD,
/// so a filter would quietly match nothing and distinct idempotency keys
/// would become one; here they are a 400, as they are in the path.
fn query_pairs(
    query: &str,
) -> impl Iterator<Item = Result<(Cow<'_, str>, Cow<'_, str>), TranscodeError>> {
    fn decode(part: &str) -> Result<Cow<'_, str>, std::str::Utf8Error> {
        if part.contains('+') {
            let spaced = part.replace('+', " ");
            let decoded = percent_decode_str(&spaced).decode_utf8()?.into_owned();
            Ok(Cow::Owned(decoded))
        } else {
            percent_decode_str(part).decode_utf8()
        }
    }
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(key).map_err(|_| {
                TranscodeError::invalid(
                    key,
                    format!("query parameter {key} is not UTF-8 once percent-decoded"),
                )
            })?;
            let value = decode(value).map_err(|_| {
                TranscodeError::invalid(
                    &*key,
                    format!("query parameter {key} is not UTF-8 once percent-decoded"),
                )
            })?;
            Ok((key, value))
        })
}

/// Resolves `a.b.c`, each part by proto name or lowerCamelCase JSON name.
fn resolve_query_key(binding: &Binding, key: &str) -> Result<Vec<FieldDescriptor>, TranscodeError> {
    let unknown = || TranscodeError::invalid(key, format!("unknown query parameter {key}"));
    if matches!(binding.body, BodyTarget::Whole) {
        return Err(unknown());
    }
    let parts: Vec<&str> = key.split('.').collect();
    let mut chain = Vec::with_capacity(parts.len());
    let mut current = binding.rpc.input();
    for (i, part) in parts.iter().enumerate() {
        let field = current
            .get_field_by_name(part)
            .or_else(|| current.get_field_by_json_name(part))
            .ok_or_else(unknown)?;
        if i == 0
            && let BodyTarget::Field(body) = &binding.body
            && *body == field
        {
            return Err(TranscodeError::invalid(
                key,
                format!("query parameter {key} is already bound by the body"),
            ));
        }
        let last = i + 1 == parts.len();
        let kind = field.kind();
        match kind {
            _ if field.is_map() => {
                return Err(TranscodeError::invalid(
                    key,
                    format!("map field {key} cannot be set from the query"),
                ));
            }
            Kind::Message(ref next) if !last && !field.is_list() => current = next.clone(),
            ref kind if last && scalar::is_text_bindable(kind) => {}
            _ => {
                return Err(TranscodeError::invalid(
                    key,
                    format!("query parameter {key} does not name a value field"),
                ));
            }
        }
        chain.push(field);
    }
    Ok(chain)
}

fn apply_idempotency_key(
    message: &mut DynamicMessage,
    headers: &HeaderMap,
) -> Result<(), TranscodeError> {
    let Some(header) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(());
    };
    let Some(field) = message.descriptor().get_field_by_name(REQUEST_ID_FIELD) else {
        return Ok(());
    };
    if field.kind() != Kind::String || field.is_list() {
        return Ok(());
    }
    if matches!(message.get_field(&field).as_ref(), Value::String(current) if current.is_empty()) {
        let key = header.to_str().map_err(|_| {
            TranscodeError::invalid("Idempotency-Key", "the Idempotency-Key header is not ASCII")
        })?;
        message.set_field(&field, Value::String(key.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_json_media_type;

    #[test]
    fn json_media_types_are_told_apart_whatever_their_parameters_and_case() {
        for json in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON;charset=UTF-8",
            "application/merge-patch+json",
            " application/json ",
        ] {
            assert!(is_json_media_type(json), "{json}");
        }
        for other in [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/plain",
            "application/jsonp",
            "",
        ] {
            assert!(!is_json_media_type(other), "{other}");
        }
    }
}
