//! A reply's protobuf bytes written straight to JSON, without building a
//! `DynamicMessage` first.
//!
//! Through prost-reflect a reply is decoded into a `DynamicMessage` (a map
//! entry and an allocation per field) and then serialized, each timestamp
//! re-encoded to reach prost-types' formatter; for `GET /timesheets` that
//! was two fifths of the request's CPU in the peer benchmark
//! (docs/performance.md). This writer walks the wire format once, guided
//! by the descriptor, for the shapes replies have here: scalars, strings,
//! enums, nested messages, repeated fields, oneofs and
//! `google.protobuf.Timestamp`.
//!
//! prost-reflect stays the reference. For anything else (maps, bytes, the
//! other well-known types, proto2, extensions, a singular message sent
//! twice so its parts would merge, malformed input, a timestamp outside
//! the JSON range) [`write`] returns `None` and the caller takes the prost-reflect
//! path, which also reports the errors. The output must equal what
//! `json::write_message` writes with the options of
//! `transcode::serialize_options`, byte for byte: a test compares both on
//! random messages of every reply type.

use std::io::Write as _;

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor, Syntax};

/// Nesting beyond this goes to the reference path (whose decoder has its
/// own limit); replies here are two levels deep.
const MAX_DEPTH: u32 = 32;

const TIMESTAMP: &str = "google.protobuf.Timestamp";

/// Seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the range the
/// proto3 JSON mapping allows for a Timestamp.
const MIN_SECONDS: i64 = -62_135_596_800;
const MAX_SECONDS: i64 = 253_402_300_799;

/// `message`'s encoding as JSON, or only its `field` (a `response_body`
/// rule: `null` when that field is an unset message). `proto_names` picks
/// the keys as `serialize_options` does; defaults are always written and
/// 64-bit integers are strings, as there.
pub(crate) fn write(
    bytes: &[u8],
    message: &MessageDescriptor,
    field: Option<&FieldDescriptor>,
    proto_names: bool,
) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() * 2 + 16);
    let writer = Writer { proto_names };
    match field {
        None => writer.message(&mut out, bytes, message, 0)?,
        Some(field) => {
            if !supported(message) {
                return None;
            }
            let entries = scan(bytes)?;
            if !writer.field(&mut out, &entries, field, 0)? {
                out.extend_from_slice(b"null");
            }
        }
    }
    Some(out)
}

/// The last value of string field `number` at the top level of `bytes`
/// (last wins, as in any protobuf decoder), `None` when absent or invalid.
pub(crate) fn string_field(bytes: &[u8], number: u32) -> Option<String> {
    let entries = scan(bytes)?;
    match entries.iter().rev().find(|e| e.number == number)?.value {
        WireValue::Len(data) => std::str::from_utf8(data).ok().map(str::to_owned),
        _ => None,
    }
}

/// One field occurrence on the wire.
struct Entry<'a> {
    number: u32,
    value: WireValue<'a>,
}

#[derive(Clone, Copy)]
enum WireValue<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Len(&'a [u8]),
    Fixed32([u8; 4]),
}

impl WireValue<'_> {
    fn wire_type(&self) -> u8 {
        match self {
            WireValue::Varint(_) => 0,
            WireValue::Fixed64(_) => 1,
            WireValue::Len(_) => 2,
            WireValue::Fixed32(_) => 5,
        }
    }
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        if shift == 63 && byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if bytes.len() < n {
        return None;
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Some(head)
}

/// Every field occurrence of one message, in wire order. Groups and
/// malformed input give `None`.
fn scan(mut bytes: &[u8]) -> Option<Vec<Entry<'_>>> {
    let mut entries = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let number = u32::try_from(key >> 3).ok().filter(|&n| n > 0)?;
        let value = match key & 7 {
            0 => WireValue::Varint(varint(&mut bytes)?),
            1 => WireValue::Fixed64(take(&mut bytes, 8)?.try_into().ok()?),
            2 => {
                let len = usize::try_from(varint(&mut bytes)?).ok()?;
                WireValue::Len(take(&mut bytes, len)?)
            }
            5 => WireValue::Fixed32(take(&mut bytes, 4)?.try_into().ok()?),
            _ => return None,
        };
        entries.push(Entry { number, value });
    }
    Some(entries)
}

struct Writer {
    proto_names: bool,
}

impl Writer {
    fn message(
        &self,
        out: &mut Vec<u8>,
        bytes: &[u8],
        desc: &MessageDescriptor,
        depth: u32,
    ) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        if desc.full_name() == TIMESTAMP {
            return timestamp(out, bytes);
        }
        if !supported(desc) {
            return None;
        }
        let entries = scan(bytes)?;
        out.push(b'{');
        let mut first = true;
        // Field-number order, as prost-reflect writes them.
        for field in desc.fields() {
            let mark = out.len();
            if !first {
                out.push(b',');
            }
            string(
                out,
                if self.proto_names {
                    field.name()
                } else {
                    field.json_name()
                },
            );
            out.push(b':');
            if self.field(out, &entries, &field, depth)? {
                first = false;
            } else {
                out.truncate(mark);
            }
        }
        out.push(b'}');
        Some(())
    }

    /// Writes `field`'s value; `false` when it is left out (a field with
    /// presence that is not set).
    fn field(
        &self,
        out: &mut Vec<u8>,
        entries: &[Entry<'_>],
        field: &FieldDescriptor,
        depth: u32,
    ) -> Option<bool> {
        if field.is_map() || field.is_group() {
            return None;
        }
        let kind = field.kind();
        let mut values = entries.iter().filter(|e| e.number == field.number());
        if field.is_list() {
            out.push(b'[');
            let mut first = true;
            for entry in values {
                match (entry.value, packable(&kind)) {
                    (WireValue::Len(mut packed), true) => {
                        while !packed.is_empty() {
                            let value = match wire_of(&kind)? {
                                0 => WireValue::Varint(varint(&mut packed)?),
                                1 => WireValue::Fixed64(take(&mut packed, 8)?.try_into().ok()?),
                                _ => WireValue::Fixed32(take(&mut packed, 4)?.try_into().ok()?),
                            };
                            comma(out, &mut first);
                            self.value(out, value, &kind, depth)?;
                        }
                    }
                    (value, _) => {
                        comma(out, &mut first);
                        self.value(out, value, &kind, depth)?;
                    }
                }
            }
            out.push(b']');
            return Some(true);
        }
        let mut last = values.next_back();
        // A oneof holds the member that came last on the wire; an earlier
        // member's value was cleared by it.
        if let (Some(oneof), Some(entry)) = (field.containing_oneof(), &last) {
            let latest = entries
                .iter()
                .rev()
                .find(|e| oneof.fields().any(|f| f.number() == e.number));
            if latest.is_some_and(|latest| !std::ptr::eq(latest, *entry)) {
                last = None;
            }
        }
        match last {
            Some(entry) => {
                // A singular message sent more than once is merged by a
                // decoder: left to the reference path.
                if matches!(kind, Kind::Message(_)) && values.next().is_some() {
                    return None;
                }
                self.value(out, entry.value, &kind, depth)?;
                Some(true)
            }
            None if field.supports_presence() => Some(false),
            None => {
                default(out, &kind)?;
                Some(true)
            }
        }
    }

    fn value(
        &self,
        out: &mut Vec<u8>,
        value: WireValue<'_>,
        kind: &Kind,
        depth: u32,
    ) -> Option<()> {
        if value.wire_type() != wire_of(kind)? {
            return None;
        }
        match (kind, value) {
            (Kind::Double, WireValue::Fixed64(b)) => float(out, f64::from_le_bytes(b)),
            (Kind::Float, WireValue::Fixed32(b)) => float(out, f32::from_le_bytes(b)),
            // Truncation is the wire format's rule for 32-bit varints.
            (Kind::Int32, WireValue::Varint(v)) => number(out, v as i32),
            (Kind::Uint32, WireValue::Varint(v)) => number(out, v as u32),
            (Kind::Sint32, WireValue::Varint(v)) => {
                let v = v as u32;
                number(out, ((v >> 1) as i32) ^ -((v & 1) as i32))
            }
            (Kind::Int64, WireValue::Varint(v)) => quoted(out, v as i64),
            (Kind::Uint64, WireValue::Varint(v)) => quoted(out, v),
            (Kind::Sint64, WireValue::Varint(v)) => {
                quoted(out, ((v >> 1) as i64) ^ -((v & 1) as i64))
            }
            (Kind::Fixed32, WireValue::Fixed32(b)) => number(out, u32::from_le_bytes(b)),
            (Kind::Sfixed32, WireValue::Fixed32(b)) => number(out, i32::from_le_bytes(b)),
            (Kind::Fixed64, WireValue::Fixed64(b)) => quoted(out, u64::from_le_bytes(b)),
            (Kind::Sfixed64, WireValue::Fixed64(b)) => quoted(out, i64::from_le_bytes(b)),
            (Kind::Bool, WireValue::Varint(v)) => {
                out.extend_from_slice(if v != 0 { b"true" } else { b"false" });
                Some(())
            }
            (Kind::String, WireValue::Len(data)) => {
                string(out, std::str::from_utf8(data).ok()?);
                Some(())
            }
            (Kind::Enum(desc), WireValue::Varint(v)) => {
                let n = v as i32;
                if desc.full_name() == "google.protobuf.NullValue" {
                    return None;
                }
                match desc.get_value(n) {
                    Some(value) => string(out, value.name()),
                    None => number(out, n)?,
                }
                Some(())
            }
            (Kind::Message(desc), WireValue::Len(data)) => self.message(out, data, desc, depth + 1),
            _ => None,
        }
    }
}

/// Whether this writer maps `desc`'s fields itself. The well-known types
/// have JSON forms of their own (Timestamp's is written apart), proto2
/// fields can declare their own defaults, and extensions add fields the
/// descriptor does not list: all left to the reference path.
fn supported(desc: &MessageDescriptor) -> bool {
    !desc.full_name().starts_with("google.protobuf.")
        && desc.extension_ranges().next().is_none()
        && desc.parent_file().syntax() == Syntax::Proto3
}

fn comma(out: &mut Vec<u8>, first: &mut bool) {
    if !*first {
        out.push(b',');
    }
    *first = false;
}

/// The wire type of a kind's single value; `None` for bytes, which this
/// writer leaves to the reference path (base64), and for groups.
fn wire_of(kind: &Kind) -> Option<u8> {
    Some(match kind {
        Kind::Double | Kind::Fixed64 | Kind::Sfixed64 => 1,
        Kind::Float | Kind::Fixed32 | Kind::Sfixed32 => 5,
        Kind::String | Kind::Message(_) => 2,
        Kind::Bytes => return None,
        _ => 0,
    })
}

fn packable(kind: &Kind) -> bool {
    !matches!(kind, Kind::String | Kind::Bytes | Kind::Message(_))
}

/// The JSON of an absent field without presence: its kind's zero.
fn default(out: &mut Vec<u8>, kind: &Kind) -> Option<()> {
    match kind {
        Kind::Double | Kind::Float => out.extend_from_slice(b"0.0"),
        Kind::Int64 | Kind::Uint64 | Kind::Sint64 | Kind::Fixed64 | Kind::Sfixed64 => {
            out.extend_from_slice(b"\"0\"")
        }
        Kind::Int32 | Kind::Uint32 | Kind::Sint32 | Kind::Fixed32 | Kind::Sfixed32 => {
            out.push(b'0')
        }
        Kind::Bool => out.extend_from_slice(b"false"),
        Kind::String => out.extend_from_slice(b"\"\""),
        Kind::Enum(desc) => {
            if desc.full_name() == "google.protobuf.NullValue" {
                return None;
            }
            // Looked up by number, as prost-reflect writes any enum value.
            match desc.get_value(desc.default_value().number()) {
                Some(value) => string(out, value.name()),
                None => out.push(b'0'),
            }
        }
        Kind::Bytes | Kind::Message(_) => return None,
    }
    Some(())
}

/// JSON numbers through serde_json, so they are spelled exactly as on the
/// reference path.
fn number(out: &mut Vec<u8>, n: impl serde::Serialize) -> Option<()> {
    serde_json::to_writer(out, &n).ok()
}

fn quoted(out: &mut Vec<u8>, n: impl std::fmt::Display) -> Option<()> {
    write!(out, "\"{n}\"").ok()
}

/// A finite value as a JSON number, spelled by serde_json for its own
/// width; the others as the strings the JSON mapping names. (Widening an
/// `f32` keeps NaN, the infinities and the sign.)
fn float<F: Into<f64> + serde::Serialize + Copy>(out: &mut Vec<u8>, v: F) -> Option<()> {
    let wide: f64 = v.into();
    if wide.is_finite() {
        return number(out, v);
    }
    let name = if wide.is_nan() {
        "NaN"
    } else if wide > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    };
    string(out, name);
    Some(())
}

fn string(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(out, s);
}

/// RFC 3339 in UTC with 0, 3, 6 or 9 fraction digits, as prost-types
/// formats it; `None` outside the JSON mapping's range.
fn timestamp(out: &mut Vec<u8>, bytes: &[u8]) -> Option<()> {
    let (mut seconds, mut nanos) = (0i64, 0i32);
    for entry in scan(bytes)? {
        match (entry.number, entry.value) {
            (1, WireValue::Varint(v)) => seconds = v as i64,
            (2, WireValue::Varint(v)) => nanos = v as i32,
            (1 | 2, _) => return None,
            _ => {}
        }
    }
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&seconds) || !(0..1_000_000_000).contains(&nanos) {
        return None;
    }
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    write!(
        out,
        "\"{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
    .ok()?;
    match nanos {
        0 => {}
        n if n % 1_000_000 == 0 => write!(out, ".{:03}", n / 1_000_000).ok()?,
        n if n % 1_000 == 0 => write!(out, ".{:06}", n / 1_000).ok()?,
        n => write!(out, ".{n:09}").ok()?,
    }
    out.extend_from_slice(b"Z\"");
    Some(())
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
