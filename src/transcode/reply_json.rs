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
//! the JSON range) [`Plan::write`] returns `None` and the caller takes the prost-reflect
//! path, which also reports the errors. The output must equal what
//! `json::write_message` writes with the options of
//! `transcode::serialize_options`, byte for byte: a test compares both on
//! random messages of every reply type.

use std::{collections::HashMap, io::Write as _};

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor, Syntax};

/// Nesting beyond this goes to the reference path (whose decoder has its
/// own limit); replies here are two levels deep.
const MAX_DEPTH: u32 = 32;

const TIMESTAMP: &str = "google.protobuf.Timestamp";

/// Seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the range the
/// proto3 JSON mapping allows for a Timestamp.
const MIN_SECONDS: i64 = -62_135_596_800;
const MAX_SECONDS: i64 = 253_402_300_799;

/// `message`'s encoding as JSON, or only its `field`; see [`Plan::write`].
/// Builds the plan on every call: for tests and one-off uses.
#[cfg(test)]
pub(crate) fn write(
    bytes: &[u8],
    message: &MessageDescriptor,
    field: Option<&FieldDescriptor>,
    proto_names: bool,
) -> Option<Vec<u8>> {
    Plan::new(message, field).write(bytes, proto_names)
}

/// What the writer needs of one reply type, read from its descriptor once
/// (at startup, per HTTP binding): field numbers, escaped keys, kinds,
/// enum names. Asking the descriptor per field of every list entry was a
/// third of the writer's time, much of it on the pool's shared reference
/// count, which both worker threads touched for every field.
pub(crate) struct Plan {
    /// Every message type reachable from the reply; the reply is first.
    messages: Vec<Shape>,
    /// What the body holds.
    body: Body,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("messages", &self.messages.len())
            .finish_non_exhaustive()
    }
}

enum Body {
    /// The whole reply.
    Message,
    /// One field of the reply (a `response_body` rule): its position in
    /// the reply's [`Shape::Fields`].
    Field(usize),
    /// A `response_body` field of a reply this writer does not map.
    Unsupported,
}

enum Shape {
    Fields(Vec<FieldPlan>),
    Timestamp,
    /// Left to the reference path: see [`supported`].
    Unsupported,
}

struct FieldPlan {
    number: u32,
    /// `"jsonName":` and `"name":`, escaped.
    keys: [Box<[u8]>; 2],
    list: bool,
    presence: bool,
    /// The field numbers of its oneof, when it is in one.
    oneof: Option<Box<[u32]>>,
    /// `None` for maps and groups, left to the reference path.
    kind: Option<ValueKind>,
}

enum ValueKind {
    Double,
    Float,
    Int32,
    Uint32,
    Sint32,
    Int64,
    Uint64,
    Sint64,
    Fixed32,
    Sfixed32,
    Fixed64,
    Sfixed64,
    Bool,
    String,
    /// Left to the reference path (base64).
    Bytes,
    Enum(EnumNames),
    /// An index into [`Plan::messages`].
    Message(usize),
}

struct EnumNames {
    /// `google.protobuf.NullValue`, whose JSON is `null`: left to the
    /// reference path.
    null_value: bool,
    /// Quoted name per number, as `EnumDescriptor::get_value` picks it.
    names: HashMap<i32, Box<[u8]>>,
    /// The default's number.
    default: i32,
}

impl Plan {
    pub(crate) fn new(message: &MessageDescriptor, field: Option<&FieldDescriptor>) -> Self {
        // Indices are handed out in the order types are first reached, and
        // a queue takes them in that order, so each shape lands at its index.
        let mut index = HashMap::from([(message.full_name().to_owned(), 0)]);
        let mut pending = std::collections::VecDeque::from([message.clone()]);
        let mut messages = Vec::new();
        while let Some(desc) = pending.pop_front() {
            let mut reach = |nested: &MessageDescriptor| {
                let next = index.len();
                *index
                    .entry(nested.full_name().to_owned())
                    .or_insert_with(|| {
                        pending.push_back(nested.clone());
                        next
                    })
            };
            let shape = if desc.full_name() == TIMESTAMP {
                Shape::Timestamp
            } else if !supported(&desc) {
                Shape::Unsupported
            } else {
                Shape::Fields(
                    desc.fields()
                        .map(|f| FieldPlan::new(&f, &mut reach))
                        .collect(),
                )
            };
            messages.push(shape);
        }
        let body = match (field, messages.first()) {
            (None, _) => Body::Message,
            (Some(field), Some(Shape::Fields(fields))) => fields
                .iter()
                .position(|plan| plan.number == field.number())
                .map_or(Body::Unsupported, Body::Field),
            (Some(_), _) => Body::Unsupported,
        };
        Self { messages, body }
    }

    /// The reply's encoding `bytes` as JSON, or only the rule's field
    /// (`null` when that field is an unset message). `proto_names` picks
    /// the keys as `serialize_options` does; defaults are always written
    /// and 64-bit integers are strings, as there.
    pub(crate) fn write(&self, bytes: &[u8], proto_names: bool) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(bytes.len() * 2 + 16);
        let writer = Writer {
            plan: self,
            key: usize::from(proto_names),
        };
        match (&self.body, self.messages.first()) {
            (Body::Message, _) => writer.message(&mut out, bytes, 0, 0)?,
            (Body::Field(position), Some(Shape::Fields(fields))) => {
                let entries = scan(bytes)?;
                if !writer.field(&mut out, &entries, fields.get(*position)?, 0)? {
                    out.extend_from_slice(b"null");
                }
            }
            _ => return None,
        }
        Some(out)
    }
}

impl FieldPlan {
    fn new(field: &FieldDescriptor, reach: &mut dyn FnMut(&MessageDescriptor) -> usize) -> Self {
        let key = |name: &str| {
            let mut key = Vec::with_capacity(name.len() + 3);
            string(&mut key, name);
            key.push(b':');
            key.into_boxed_slice()
        };
        let kind = (!field.is_map() && !field.is_group()).then(|| match field.kind() {
            Kind::Double => ValueKind::Double,
            Kind::Float => ValueKind::Float,
            Kind::Int32 => ValueKind::Int32,
            Kind::Uint32 => ValueKind::Uint32,
            Kind::Sint32 => ValueKind::Sint32,
            Kind::Int64 => ValueKind::Int64,
            Kind::Uint64 => ValueKind::Uint64,
            Kind::Sint64 => ValueKind::Sint64,
            Kind::Fixed32 => ValueKind::Fixed32,
            Kind::Sfixed32 => ValueKind::Sfixed32,
            Kind::Fixed64 => ValueKind::Fixed64,
            Kind::Sfixed64 => ValueKind::Sfixed64,
            Kind::Bool => ValueKind::Bool,
            Kind::String => ValueKind::String,
            Kind::Bytes => ValueKind::Bytes,
            Kind::Enum(desc) => {
                let names = desc
                    .values()
                    .filter_map(|v| {
                        let first = desc.get_value(v.number())?;
                        let mut name = Vec::new();
                        string(&mut name, first.name());
                        Some((v.number(), name.into_boxed_slice()))
                    })
                    .collect();
                ValueKind::Enum(EnumNames {
                    null_value: desc.full_name() == "google.protobuf.NullValue",
                    names,
                    default: desc.default_value().number(),
                })
            }
            Kind::Message(desc) => ValueKind::Message(reach(&desc)),
        });
        Self {
            number: field.number(),
            keys: [key(field.json_name()), key(field.name())],
            list: field.is_list(),
            presence: field.supports_presence(),
            oneof: field
                .containing_oneof()
                .map(|oneof| oneof.fields().map(|f| f.number()).collect()),
            kind,
        }
    }
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

/// The fields most messages here have at most: `scan` reserves room for
/// them, since growing the list from empty took three allocations for a
/// timesheet of ten fields, once per entry of a page.
const USUAL_FIELDS: usize = 16;

/// Every field occurrence of one message, in wire order. Groups and
/// malformed input give `None`.
fn scan(mut bytes: &[u8]) -> Option<Vec<Entry<'_>>> {
    let mut entries = Vec::with_capacity(USUAL_FIELDS);
    while !bytes.is_empty() {
        entries.push(entry(&mut bytes)?);
    }
    Some(entries)
}

/// The field occurrence at the start of `bytes`, which it consumes.
fn entry<'a>(bytes: &mut &'a [u8]) -> Option<Entry<'a>> {
    let key = varint(bytes)?;
    let number = u32::try_from(key >> 3).ok().filter(|&n| n > 0)?;
    let value = match key & 7 {
        0 => WireValue::Varint(varint(bytes)?),
        1 => WireValue::Fixed64(take(bytes, 8)?.try_into().ok()?),
        2 => {
            let len = usize::try_from(varint(bytes)?).ok()?;
            WireValue::Len(take(bytes, len)?)
        }
        5 => WireValue::Fixed32(take(bytes, 4)?.try_into().ok()?),
        _ => return None,
    };
    Some(Entry { number, value })
}

struct Writer<'p> {
    plan: &'p Plan,
    /// Which of [`FieldPlan::keys`].
    key: usize,
}

impl Writer<'_> {
    fn message(&self, out: &mut Vec<u8>, bytes: &[u8], index: usize, depth: u32) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        let fields = match self.plan.messages.get(index)? {
            Shape::Fields(fields) => fields,
            Shape::Timestamp => return timestamp(out, bytes),
            Shape::Unsupported => return None,
        };
        let entries = scan(bytes)?;
        out.push(b'{');
        let mut first = true;
        // Field-number order, as prost-reflect writes them.
        for field in fields {
            let mark = out.len();
            if !first {
                out.push(b',');
            }
            out.extend_from_slice(&field.keys[self.key]);
            if self.field(out, &entries, field, depth)? {
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
        field: &FieldPlan,
        depth: u32,
    ) -> Option<bool> {
        let kind = field.kind.as_ref()?;
        let mut values = entries.iter().filter(|e| e.number == field.number);
        if field.list {
            out.push(b'[');
            let mut first = true;
            for entry in values {
                match (entry.value, packable(kind)) {
                    (WireValue::Len(mut packed), true) => {
                        while !packed.is_empty() {
                            let value = match wire_of(kind)? {
                                0 => WireValue::Varint(varint(&mut packed)?),
                                1 => WireValue::Fixed64(take(&mut packed, 8)?.try_into().ok()?),
                                _ => WireValue::Fixed32(take(&mut packed, 4)?.try_into().ok()?),
                            };
                            comma(out, &mut first);
                            self.value(out, value, kind, depth)?;
                        }
                    }
                    (value, _) => {
                        comma(out, &mut first);
                        self.value(out, value, kind, depth)?;
                    }
                }
            }
            out.push(b']');
            return Some(true);
        }
        let mut last = values.next_back();
        // A oneof holds the member that came last on the wire; an earlier
        // member's value was cleared by it.
        if let (Some(members), Some(entry)) = (&field.oneof, &last) {
            let latest = entries.iter().rev().find(|e| members.contains(&e.number));
            if latest.is_some_and(|latest| !std::ptr::eq(latest, *entry)) {
                last = None;
            }
        }
        match last {
            Some(entry) => {
                // A singular message sent more than once is merged by a
                // decoder: left to the reference path.
                if matches!(kind, ValueKind::Message(_)) && values.next().is_some() {
                    return None;
                }
                self.value(out, entry.value, kind, depth)?;
                Some(true)
            }
            None if field.presence => Some(false),
            None => {
                default(out, kind)?;
                Some(true)
            }
        }
    }

    fn value(
        &self,
        out: &mut Vec<u8>,
        value: WireValue<'_>,
        kind: &ValueKind,
        depth: u32,
    ) -> Option<()> {
        if value.wire_type() != wire_of(kind)? {
            return None;
        }
        match (kind, value) {
            (ValueKind::Double, WireValue::Fixed64(b)) => float(out, f64::from_le_bytes(b)),
            (ValueKind::Float, WireValue::Fixed32(b)) => float(out, f32::from_le_bytes(b)),
            // Truncation is the wire format's rule for 32-bit varints.
            (ValueKind::Int32, WireValue::Varint(v)) => number(out, v as i32),
            (ValueKind::Uint32, WireValue::Varint(v)) => number(out, v as u32),
            (ValueKind::Sint32, WireValue::Varint(v)) => {
                let v = v as u32;
                number(out, ((v >> 1) as i32) ^ -((v & 1) as i32))
            }
            (ValueKind::Int64, WireValue::Varint(v)) => quoted(out, v as i64),
            (ValueKind::Uint64, WireValue::Varint(v)) => quoted(out, v),
            (ValueKind::Sint64, WireValue::Varint(v)) => {
                quoted(out, ((v >> 1) as i64) ^ -((v & 1) as i64))
            }
            (ValueKind::Fixed32, WireValue::Fixed32(b)) => number(out, u32::from_le_bytes(b)),
            (ValueKind::Sfixed32, WireValue::Fixed32(b)) => number(out, i32::from_le_bytes(b)),
            (ValueKind::Fixed64, WireValue::Fixed64(b)) => quoted(out, u64::from_le_bytes(b)),
            (ValueKind::Sfixed64, WireValue::Fixed64(b)) => quoted(out, i64::from_le_bytes(b)),
            (ValueKind::Bool, WireValue::Varint(v)) => {
                out.extend_from_slice(if v != 0 { b"true" } else { b"false" });
                Some(())
            }
            (ValueKind::String, WireValue::Len(data)) => utf8_string(out, data),
            (ValueKind::Enum(names), WireValue::Varint(v)) => names.write(out, v as i32),
            (ValueKind::Message(index), WireValue::Len(data)) => {
                self.message(out, data, *index, depth + 1)
            }
            _ => None,
        }
    }
}

impl EnumNames {
    /// The value's name, or its number when the enum does not name it.
    fn write(&self, out: &mut Vec<u8>, n: i32) -> Option<()> {
        if self.null_value {
            return None;
        }
        match self.names.get(&n) {
            Some(name) => out.extend_from_slice(name),
            None => number(out, n)?,
        }
        Some(())
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
/// writer leaves to the reference path (base64).
fn wire_of(kind: &ValueKind) -> Option<u8> {
    use ValueKind as K;
    Some(match kind {
        K::Double | K::Fixed64 | K::Sfixed64 => 1,
        K::Float | K::Fixed32 | K::Sfixed32 => 5,
        K::String | K::Message(_) => 2,
        K::Bytes => return None,
        _ => 0,
    })
}

fn packable(kind: &ValueKind) -> bool {
    !matches!(
        kind,
        ValueKind::String | ValueKind::Bytes | ValueKind::Message(_)
    )
}

/// The JSON of an absent field without presence: its kind's zero.
fn default(out: &mut Vec<u8>, kind: &ValueKind) -> Option<()> {
    use ValueKind as K;
    match kind {
        K::Double | K::Float => out.extend_from_slice(b"0.0"),
        K::Int64 | K::Uint64 | K::Sint64 | K::Fixed64 | K::Sfixed64 => {
            out.extend_from_slice(b"\"0\"")
        }
        K::Int32 | K::Uint32 | K::Sint32 | K::Fixed32 | K::Sfixed32 => out.push(b'0'),
        K::Bool => out.extend_from_slice(b"false"),
        K::String => out.extend_from_slice(b"\"\""),
        // Looked up by number, as prost-reflect writes any enum value.
        K::Enum(names) => names.write(out, names.default)?,
        K::Bytes | K::Message(_) => return None,
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
    if plain(s.as_bytes(), u8::MAX) {
        quote(out, s.as_bytes());
        return;
    }
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(out, s);
}

/// A protobuf string field's bytes as a JSON string; `None` when they are
/// not UTF-8. Plain ASCII, the common case (ids, dates, emails), is UTF-8
/// by definition, so the one pass that finds it needs no escaping also
/// spares it the UTF-8 validation, which costs about a hundred
/// instructions even for a short string.
fn utf8_string(out: &mut Vec<u8>, bytes: &[u8]) -> Option<()> {
    if plain(bytes, 0x7f) {
        quote(out, bytes);
    } else {
        string(out, std::str::from_utf8(bytes).ok()?);
    }
    Some(())
}

/// Whether `bytes` hold nothing JSON escapes and no byte above `max`.
/// serde_json escapes exactly the control characters, `"` and `\\`, one
/// byte at a time; most strings here hold none. A fold with no early exit
/// compiles to vector compares, a fraction of serde_json's per-byte cost
/// (`any` stays byte by byte).
fn plain(bytes: &[u8], max: u8) -> bool {
    !bytes.iter().fold(false, |escape, &b| {
        escape | (b < 0x20) | (b == b'"') | (b == b'\\') | (b > max)
    })
}

/// `bytes`, which need no escaping, between quotes.
fn quote(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    out.extend_from_slice(bytes);
    out.push(b'"');
}

/// RFC 3339 in UTC with 0, 3, 6 or 9 fraction digits, as prost-types
/// formats it; `None` outside the JSON mapping's range.
fn timestamp(out: &mut Vec<u8>, bytes: &[u8]) -> Option<()> {
    let (mut seconds, mut nanos) = (0i64, 0i32);
    let mut rest = bytes;
    while !rest.is_empty() {
        let entry = entry(&mut rest)?;
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
    // Digits pushed directly: `write!` went through the formatting
    // machinery once per number, and a page of 50 entries has 100 of these.
    out.push(b'"');
    digits(out, year.unsigned_abs(), 4);
    out.push(b'-');
    digits(out, u64::from(month), 2);
    out.push(b'-');
    digits(out, u64::from(day), 2);
    out.push(b'T');
    let secs = secs.unsigned_abs();
    digits(out, secs / 3600, 2);
    out.push(b':');
    digits(out, secs / 60 % 60, 2);
    out.push(b':');
    digits(out, secs % 60, 2);
    let nanos = nanos.unsigned_abs();
    match nanos {
        0 => {}
        n if n % 1_000_000 == 0 => fraction(out, n / 1_000_000, 3),
        n if n % 1_000 == 0 => fraction(out, n / 1_000, 6),
        n => fraction(out, n, 9),
    }
    out.extend_from_slice(b"Z\"");
    Some(())
}

/// `value` in exactly `width` decimal digits, zero-padded; the caller
/// keeps it below `10^width`.
fn digits(out: &mut Vec<u8>, mut value: u64, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for slot in out[start..].iter_mut().rev() {
        // A digit: below 10 by construction.
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

fn fraction(out: &mut Vec<u8>, value: u32, width: usize) {
    out.push(b'.');
    digits(out, u64::from(value), width);
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
