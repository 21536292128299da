//! Path templates of `google.api.http`: parsing the grammar, matching request
//! paths against it, and expanding it back into a path (for `Location`).
//!
//! The grammar, from `google/api/http.proto`:
//!
//! ```text
//! Template = "/" Segments [ Verb ] ;
//! Segments = Segment { "/" Segment } ;
//! Segment  = "*" | "**" | LITERAL | Variable ;
//! Variable = "{" FieldPath [ "=" Segments ] "}" ;
//! FieldPath = IDENT { "." IDENT } ;
//! Verb     = ":" LITERAL ;
//! ```
//!
//! Matching works on the raw, still percent-encoded request path, so an
//! encoded `%2F` never splits a segment. Captured values are decoded later by
//! [`Capture::decode`], because a value that is not UTF-8 is a client error
//! (400), not a missing route (404).

use anyhow::bail;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Everything but RFC 3986 unreserved characters is encoded when a value is
/// put back into a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// As [`SEGMENT`], but a multi-segment value keeps its slashes.
const MULTI_SEGMENT: &AsciiSet = &SEGMENT.remove(b'/');

/// One parsed segment of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// Matches exactly this text (after percent-decoding the request segment).
    Literal(String),
    /// `*`: exactly one non-empty segment.
    Single,
    /// `**`: zero or more segments; only ever the last segment.
    Multi,
}

/// A `{field.path=...}` variable and the segments it spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Variable {
    /// The request field the captured value goes to, as written.
    pub field_path: Vec<String>,
    /// Index of the first segment the variable spans.
    start: usize,
    /// One past its last segment.
    end: usize,
}

/// A parsed path template.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    source: String,
    segments: Vec<Segment>,
    verb: Option<String>,
    variables: Vec<Variable>,
}

/// A raw captured value, still percent-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Capture {
    raw: String,
    multi_segment: bool,
}

impl Capture {
    /// Decodes the value. A single-segment value is fully decoded; a
    /// multi-segment one keeps `%2F` encoded, as http.proto specifies, so the
    /// server can still tell an encoded slash from a separator.
    pub fn decode(&self) -> Result<String, std::str::Utf8Error> {
        if !self.multi_segment {
            return percent_decode_str(&self.raw)
                .decode_utf8()
                .map(|s| s.into_owned());
        }
        let mut out = String::with_capacity(self.raw.len());
        let mut rest = self.raw.as_str();
        loop {
            let next = rest.find("%2F").into_iter().chain(rest.find("%2f")).min();
            let (piece, tail) = match next {
                Some(at) => (&rest[..at], Some(&rest[at + 3..])),
                None => (rest, None),
            };
            out.push_str(&percent_decode_str(piece).decode_utf8()?);
            match tail {
                Some(tail) => {
                    out.push_str("%2F");
                    rest = tail;
                }
                None => return Ok(out),
            }
        }
    }
}

impl Template {
    /// Parses `source`; any deviation from the grammar is a startup error.
    pub fn parse(source: &str) -> anyhow::Result<Self> {
        let mut parser = Parser {
            src: source,
            pos: 0,
            segments: Vec::new(),
            variables: Vec::new(),
        };
        let parsed = parser.template();
        let (segments, variables) = (parser.segments, parser.variables);
        let verb = match parsed {
            Ok(verb) => verb,
            Err(reason) => bail!(
                "invalid path template {source:?} at byte {}: {reason}",
                parser.pos
            ),
        };
        if let Some(at) = segments.iter().position(|s| *s == Segment::Multi)
            && at + 1 != segments.len()
        {
            bail!("invalid path template {source:?}: `**` must be the last segment");
        }
        for (i, var) in variables.iter().enumerate() {
            if variables[..i]
                .iter()
                .any(|v| v.field_path == var.field_path)
            {
                bail!(
                    "invalid path template {source:?}: {} is bound twice",
                    var.field_path.join(".")
                );
            }
        }
        Ok(Self {
            source: source.to_owned(),
            segments,
            verb,
            variables,
        })
    }

    /// The template as written in the proto.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn variables(&self) -> &[Variable] {
        &self.variables
    }

    /// True when two templates match exactly the same paths, whatever their
    /// variables are called: two rules like that are a conflict.
    pub fn same_shape(&self, other: &Template) -> bool {
        self.segments == other.segments && self.verb == other.verb
    }

    /// Orders matching templates: a verb beats no verb, then, segment by
    /// segment, a literal beats `*`, which beats `**`.
    pub fn specificity(&self) -> (bool, Vec<u8>) {
        let ranks = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Literal(_) => 2,
                Segment::Single => 1,
                Segment::Multi => 0,
            })
            .collect();
        (self.verb.is_some(), ranks)
    }

    /// Matches the raw path segments (see [`split_path`]); returns one
    /// capture per variable, in declaration order.
    pub fn matches(&self, path: &[&str]) -> Option<Vec<Capture>> {
        // Only a template with a verb needs a copy, to strip the verb off.
        let stripped;
        let path: &[&str] = match &self.verb {
            None => path,
            Some(verb) => {
                let (last, rest) = path.split_last()?;
                let mut owned = rest.to_vec();
                owned.push(last.strip_suffix(verb.as_str())?.strip_suffix(':')?);
                stripped = owned;
                &stripped
            }
        };
        let multi = matches!(self.segments.last(), Some(Segment::Multi));
        let fixed = if multi {
            self.segments.len() - 1
        } else {
            self.segments.len()
        };
        if path.len() < fixed || (!multi && path.len() != fixed) {
            return None;
        }
        for (segment, raw) in self.segments[..fixed].iter().zip(path) {
            let ok = match segment {
                // Every binding's literals are tried against every request
                // path, so a segment without escapes is compared as it is:
                // decoding it could not change it.
                Segment::Literal(literal) if !raw.contains('%') => *raw == literal.as_str(),
                Segment::Literal(literal) => percent_decode_str(raw)
                    .decode_utf8()
                    .is_ok_and(|s| s == literal.as_str()),
                Segment::Single => !raw.is_empty(),
                Segment::Multi => true,
            };
            if !ok {
                return None;
            }
        }
        let captures = self
            .variables
            .iter()
            .map(|var| {
                let end = if var.end == self.segments.len() && multi {
                    path.len()
                } else {
                    var.end
                };
                let spans_many = end - var.start != 1
                    || self.segments[var.start..var.end].contains(&Segment::Multi);
                Capture {
                    raw: path[var.start..end].join("/"),
                    multi_segment: spans_many,
                }
            })
            .collect();
        Some(captures)
    }

    /// Builds a path from one value per variable, percent-encoding them.
    /// `None` when the template has a wildcard outside any variable, which
    /// no value can fill.
    pub fn expand(&self, values: &[&str]) -> Option<String> {
        let mut path = String::new();
        let mut index = 0;
        while index < self.segments.len() {
            path.push('/');
            if let Some((i, var)) = self
                .variables
                .iter()
                .enumerate()
                .find(|(_, v)| v.start == index)
            {
                let value = values.get(i)?;
                let set = if var.end - var.start == 1 && self.segments[index] == Segment::Single {
                    SEGMENT
                } else {
                    MULTI_SEGMENT
                };
                path.extend(utf8_percent_encode(value, set));
                index = var.end;
                continue;
            }
            match &self.segments[index] {
                Segment::Literal(literal) => path.push_str(literal),
                Segment::Single | Segment::Multi => return None,
            }
            index += 1;
        }
        if let Some(verb) = &self.verb {
            path.push(':');
            path.push_str(verb);
        }
        Some(path)
    }

    /// The literal segments before the first variable or wildcard.
    pub fn literal_prefix(&self) -> Vec<&str> {
        self.segments
            .iter()
            .map_while(|s| match s {
                Segment::Literal(l) => Some(l.as_str()),
                _ => None,
            })
            .collect()
    }

    /// True when every segment is a literal.
    pub fn is_literal(&self) -> bool {
        self.verb.is_none()
            && self
                .segments
                .iter()
                .all(|s| matches!(s, Segment::Literal(_)))
    }
}

/// Splits a request path into raw segments. One trailing slash is ignored,
/// so `/v1/timesheets/` reaches the same binding as `/v1/timesheets`: the
/// original Express service (non-strict routing) behaved that way.
pub(crate) fn split_path(path: &str) -> Option<Vec<&str>> {
    let rest = path.strip_prefix('/')?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    Some(rest.split('/').collect())
}

/// Recursive-descent parser over the template grammar.
struct Parser<'a> {
    src: &'a str,
    pos: usize,
    segments: Vec<Segment>,
    variables: Vec<Variable>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    fn template(&mut self) -> Result<Option<String>, &'static str> {
        if !self.eat(b'/') {
            return Err("a template starts with `/`");
        }
        self.segments_list(false)?;
        let verb = if self.eat(b':') {
            Some(self.literal()?)
        } else {
            None
        };
        if self.pos != self.src.len() {
            return Err("unexpected character");
        }
        Ok(verb)
    }

    fn segments_list(&mut self, in_variable: bool) -> Result<(), &'static str> {
        loop {
            self.segment(in_variable)?;
            if !self.eat(b'/') {
                return Ok(());
            }
        }
    }

    fn segment(&mut self, in_variable: bool) -> Result<(), &'static str> {
        match self.peek() {
            Some(b'*') => {
                self.pos += 1;
                let segment = if self.eat(b'*') {
                    Segment::Multi
                } else {
                    Segment::Single
                };
                self.segments.push(segment);
            }
            Some(b'{') if in_variable => return Err("variables cannot nest"),
            Some(b'{') => {
                self.pos += 1;
                let field_path = self.field_path()?;
                let start = self.segments.len();
                if self.eat(b'=') {
                    self.segments_list(true)?;
                } else {
                    self.segments.push(Segment::Single);
                }
                if !self.eat(b'}') {
                    return Err("expected `}`");
                }
                self.variables.push(Variable {
                    field_path,
                    start,
                    end: self.segments.len(),
                });
            }
            _ => {
                let literal = self.literal()?;
                self.segments.push(Segment::Literal(literal));
            }
        }
        Ok(())
    }

    fn literal(&mut self) -> Result<String, &'static str> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if matches!(b, b'/' | b'{' | b'}' | b':' | b'*' | b'=') {
                break;
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err("empty segment");
        }
        Ok(self.src[start..self.pos].to_owned())
    }

    fn field_path(&mut self) -> Result<Vec<String>, &'static str> {
        let mut path = Vec::new();
        loop {
            let start = self.pos;
            while self
                .peek()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                self.pos += 1;
            }
            if self.pos == start {
                return Err("expected a field name");
            }
            path.push(self.src[start..self.pos].to_owned());
            if !self.eat(b'.') {
                return Ok(path);
            }
        }
    }
}
