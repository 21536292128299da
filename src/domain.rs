//! Validated domain values: a timesheet that passed these parsers is safe to
//! store. Parsers collect every violation so a client fixes its input in one
//! round trip; `error.rs` turns them into google.rpc.BadRequest.

use time::{
    Date, OffsetDateTime, format_description::well_known::Rfc3339, macros::format_description,
};

/// One invalid input field, reported as a google.rpc.BadRequest.FieldViolation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field in the request, e.g. `timesheet.hours`.
    pub field: String,
    /// What is wrong, in words a user can act on.
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// Limits from the contract (`proto/timesheets/v1/timesheets.proto`).
pub const MAX_PROJECT_CHARS: usize = 200;
pub const MAX_NOTES_CHARS: usize = 2000;
/// RFC 5321 caps an email address at 320 characters; user ids are often emails.
pub const MAX_USER_ID_CHARS: usize = 320;
pub const MAX_REQUEST_ID_CHARS: usize = 128;
/// Ids are 32 hex digits; four times that leaves room for other id schemes
/// while keeping a caller's junk out of the database.
pub const MAX_ID_CHARS: usize = 128;
pub const MAX_HOURS: f64 = 24.0;

/// A calendar day worked, kept as `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct WorkDate(Date);

impl WorkDate {
    /// Accepts `YYYY-MM-DD`, or an RFC 3339 date-time whose calendar date in
    /// its own offset is kept (the cron job sends `2017-05-10T17:40:20.095Z`).
    pub fn parse(input: &str) -> Result<Self, String> {
        let input = input.trim();
        if input.is_empty() {
            return Err("is required, as YYYY-MM-DD".into());
        }
        if input.len() == 10 {
            return Self::parse_plain(input)
                .ok_or_else(|| "must be a real calendar date as YYYY-MM-DD".to_owned());
        }
        OffsetDateTime::parse(input, &Rfc3339)
            .map(|at| Self(at.date()))
            .map_err(|_| "must be YYYY-MM-DD or an RFC 3339 date-time".into())
    }

    /// Parses only the strict `YYYY-MM-DD` form: four-digit year, no sign.
    pub fn parse_plain(input: &str) -> Option<Self> {
        let shape_ok = input.len() == 10
            && input.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                _ => b.is_ascii_digit(),
            });
        if !shape_ok {
            return None;
        }
        Date::parse(input, format_description!("[year]-[month]-[day]"))
            .ok()
            .map(Self)
    }
}

impl WorkDate {
    /// The date as `YYYY-MM-DD`, on the stack: every create stores and
    /// returns it, and the formatting machinery costs a thousand
    /// instructions each time.
    pub fn iso(&self) -> IsoDate {
        let d = self.0;
        // `parse` only takes four-digit years.
        let year = u32::try_from(d.year().clamp(0, 9999)).unwrap_or_default();
        let digit = |n: u32| b'0' + u8::try_from(n % 10).unwrap_or_default();
        let (month, day) = (u32::from(u8::from(d.month())), u32::from(d.day()));
        IsoDate([
            digit(year / 1000),
            digit(year / 100),
            digit(year / 10),
            digit(year),
            b'-',
            digit(month / 10),
            digit(month),
            b'-',
            digit(day / 10),
            digit(day),
        ])
    }
}

impl std::fmt::Display for WorkDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.iso().as_str())
    }
}

/// A [`WorkDate`] written out as `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy)]
pub struct IsoDate([u8; 10]);

impl IsoDate {
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and dashes are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Hours worked on one entry: finite, greater than 0, at most 24.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hours(f64);

impl Hours {
    pub fn parse(value: f64) -> Result<Self, String> {
        if !value.is_finite() {
            return Err("must be a finite number".into());
        }
        if value <= 0.0 || value > MAX_HOURS {
            return Err(format!("must be greater than 0 and at most {MAX_HOURS}"));
        }
        Ok(Self(value))
    }

    pub fn value(self) -> f64 {
        self.0
    }
}

/// A project name: trimmed, 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project(String);

impl Project {
    pub fn parse(input: &str) -> Result<Self, String> {
        let trimmed = input.trim();
        let chars = trimmed.chars().count();
        if chars == 0 {
            return Err("is required".into());
        }
        if chars > MAX_PROJECT_CHARS {
            return Err(format!("must be at most {MAX_PROJECT_CHARS} characters"));
        }
        if trimmed.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free-form notes: at most 2000 characters, no NUL (it truncates C strings downstream).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Notes(String);

impl Notes {
    pub fn parse(input: &str) -> Result<Self, String> {
        if input.chars().count() > MAX_NOTES_CHARS {
            return Err(format!("must be at most {MAX_NOTES_CHARS} characters"));
        }
        if input.contains('\0') {
            return Err("must not contain NUL characters".into());
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The owner named by an importer, trimmed: see [`check_user_id`].
pub fn parse_user_id(input: &str) -> Result<String, String> {
    let trimmed = input.trim();
    check_user_id(trimmed)?;
    Ok(trimmed.to_owned())
}

/// What every row's user_id meets, whether an importer names it or a
/// token's identity claim does: 1 to 320 characters (replies are sized on
/// that bound), no control characters (PostgreSQL text cannot hold a NUL).
pub fn check_user_id(id: &str) -> Result<(), String> {
    let chars = id.chars().count();
    if chars == 0 {
        return Err("is required for uploads".into());
    }
    if chars > MAX_USER_ID_CHARS {
        return Err(format!("must be at most {MAX_USER_ID_CHARS} characters"));
    }
    if id.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// A timesheet id named by a caller. The server issues 32 hex digits, so
/// anything else names no row; only what could never be one is refused
/// here (the databases differ on it: PostgreSQL text cannot hold a NUL).
pub fn parse_id(input: &str) -> Result<&str, String> {
    // The usual case, printable ASCII, in one pass the compiler does many
    // bytes at a time; anything else takes the checks below.
    if !input.is_empty()
        && input.len() <= MAX_ID_CHARS
        && input.bytes().all(|b| matches!(b, b' '..=b'~'))
    {
        return Ok(input);
    }
    if input.is_empty() {
        return Err("is required".into());
    }
    if input.chars().count() > MAX_ID_CHARS {
        return Err(format!("must be at most {MAX_ID_CHARS} characters"));
    }
    if input.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(input)
}

/// An idempotency key: empty means none; at most 128 characters.
pub fn parse_request_id(input: &str) -> Result<Option<String>, String> {
    if input.is_empty() {
        return Ok(None);
    }
    if input.chars().count() > MAX_REQUEST_ID_CHARS {
        return Err(format!("must be at most {MAX_REQUEST_ID_CHARS} characters"));
    }
    if input.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(Some(input.to_owned()))
}

/// The client-supplied part of a timesheet, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct TimesheetInput {
    pub date: WorkDate,
    pub project: Project,
    pub hours: Hours,
    pub notes: Notes,
}

/// The raw client fields, before validation.
#[derive(Debug, Clone, Copy)]
pub struct RawTimesheet<'a> {
    pub date: &'a str,
    pub project: &'a str,
    pub hours: f64,
    pub notes: &'a str,
}

impl TimesheetInput {
    /// Validates every field, reporting each violation under the joined
    /// `prefix` (e.g. `["requests[2].", "timesheet."]`), which is only
    /// joined when there is a violation to name.
    pub fn parse(raw: RawTimesheet<'_>, prefix: &[&str]) -> Result<Self, Vec<FieldViolation>> {
        let mut violations = Vec::new();
        let mut check = |field: &str, result: Result<(), String>| {
            if let Err(description) = result {
                violations.push(FieldViolation::new(prefix.concat() + field, description));
            }
        };
        let date = WorkDate::parse(raw.date);
        let project = Project::parse(raw.project);
        let hours = Hours::parse(raw.hours);
        let notes = Notes::parse(raw.notes);
        check("date", date.as_ref().map(drop).map_err(Clone::clone));
        check("project", project.as_ref().map(drop).map_err(Clone::clone));
        check("hours", hours.as_ref().map(drop).map_err(Clone::clone));
        check("notes", notes.as_ref().map(drop).map_err(Clone::clone));
        match (date, project, hours, notes) {
            (Ok(date), Ok(project), Ok(hours), Ok(notes)) if violations.is_empty() => Ok(Self {
                date,
                project,
                hours,
                notes,
            }),
            _ => Err(violations),
        }
    }

    /// A stable digest input of the payload, so an idempotent retry can be
    /// told apart from a different request reusing the same key.
    pub fn fingerprint_parts(&self) -> [String; 4] {
        [
            self.date.iso().as_str().to_owned(),
            self.project.as_str().to_owned(),
            self.hours.value().to_bits().to_string(),
            self.notes.as_str().to_owned(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_any_printable_text_up_to_128_characters() {
        let wide = "é".repeat(MAX_ID_CHARS);
        for id in [
            "0193e4c2a1b07c3d8e9f00112233aabb",
            "no-such-id",
            "a b~",
            wide.as_str(),
        ] {
            assert_eq!(parse_id(id), Ok(id), "{id:?}");
        }
        let long = "a".repeat(MAX_ID_CHARS + 1);
        let long_wide = "é".repeat(MAX_ID_CHARS + 1);
        for id in [
            "",
            long.as_str(),
            long_wide.as_str(),
            "a\nb",
            "a\u{7f}",
            "\u{85}a",
            "\0",
        ] {
            assert!(parse_id(id).is_err(), "{id:?} was accepted");
        }
    }

    #[test]
    fn dates_keep_their_calendar_day_in_their_own_offset() {
        let cases = [
            ("2026-11-27", Some("2026-11-27")),
            ("2017-05-10T17:40:20.095Z", Some("2017-05-10")),
            ("2017-05-10T23:30:00-05:00", Some("2017-05-10")),
            ("2017-05-11T00:30:00+09:00", Some("2017-05-11")),
            ("2024-02-29", Some("2024-02-29")),
            ("0987-06-05", Some("0987-06-05")),
            ("9999-12-31", Some("9999-12-31")),
            ("0000-01-01T00:30:00+01:00", Some("0000-01-01")),
            ("2023-02-29", None),
            ("2026-13-01", None),
            ("+2026-01-1", None),
            ("26-11-2026", None),
            ("2026/11/27", None),
            ("", None),
        ];
        for (input, expected) in cases {
            let got = WorkDate::parse(input).ok().map(|d| d.to_string());
            assert_eq!(got.as_deref(), expected, "input {input:?}");
        }
    }

    #[test]
    fn hours_must_be_positive_finite_and_at_most_a_day() {
        for ok in [0.25, 7.5, 24.0] {
            assert!(Hours::parse(ok).is_ok(), "{ok}");
        }
        for bad in [0.0, -1.0, 24.01, f64::NAN, f64::INFINITY] {
            assert!(Hours::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_violation_is_reported_at_once() {
        let raw = RawTimesheet {
            date: "nope",
            project: " ",
            hours: 0.0,
            notes: "a\0b",
        };
        let violations =
            TimesheetInput::parse(raw, &["requests[1].", "timesheet."]).expect_err("invalid");
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "requests[1].timesheet.date",
                "requests[1].timesheet.project",
                "requests[1].timesheet.hours",
                "requests[1].timesheet.notes"
            ]
        );
    }

    #[test]
    fn projects_are_trimmed_and_bounded() {
        assert_eq!(
            Project::parse("  Website ").map(|p| p.0),
            Ok("Website".to_owned())
        );
        assert!(Project::parse(&"x".repeat(200)).is_ok());
        assert!(Project::parse(&"x".repeat(201)).is_err());
        assert!(Project::parse("a\u{7}b").is_err());
    }
}
