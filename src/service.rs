//! TimesheetService handlers: validate, store, map. Nothing else.
//!
//! Authentication and scope checks happened in the auth layer; handlers
//! read the caller from the request's [`Principal`] and never from the body.

use std::sync::Arc;

use aws_lc_rs::digest;
use futures::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::{
    auth::Principal,
    domain::{
        FieldViolation, MAX_ID_CHARS, MAX_NOTES_CHARS, MAX_PROJECT_CHARS, MAX_USER_ID_CHARS,
        Project, RawTimesheet, TimesheetInput, WorkDate, parse_id, parse_request_id, parse_user_id,
    },
    error::Error,
    pagination::{PageTokens, page_size},
    proto::timesheets::v1::{
        ApproveTimesheetRequest, BatchUploadTimesheetsResponse, CreateTimesheetRequest,
        DeleteTimesheetRequest, GetTimesheetRequest, ListPendingApprovalsRequest,
        ListPendingApprovalsResponse, ListTimesheetsRequest, ListTimesheetsResponse, Timesheet,
        UploadTimesheetRequest, timesheet_service_server::TimesheetService,
    },
    storage::{Cursor, Deleted, Inserted, ListQuery, NewTimesheet, Store, TimesheetRecord},
};

/// Items one BatchUploadTimesheets call may carry; larger imports split
/// into several calls so one transaction never holds the writer for long.
pub const MAX_BATCH_ITEMS: usize = 10_000;

/// Room kept in a reply for everything but its timesheets (a page token).
const REPLY_HEADROOM: usize = 1024;

/// The most one timesheet can add to a reply that lists it: its strings at
/// validation's limits, 4 bytes a character, a date and the overhead.
const MAX_LISTED_LEN: usize = 4
    * (MAX_ID_CHARS + 2 * MAX_USER_ID_CHARS + MAX_PROJECT_CHARS + MAX_NOTES_CHARS)
    + 10
    + LISTED_OVERHEAD;

/// The smallest `--max-message-bytes`: a reply always has room for one
/// timesheet of the largest size validation allows.
pub const MIN_MESSAGE_BYTES: usize = 16 * 1024;
const _: () = assert!(MAX_LISTED_LEN + REPLY_HEADROOM <= MIN_MESSAGE_BYTES);

/// The service implementation, shared by every protocol.
pub struct TimesheetApi {
    store: Arc<dyn Store>,
    pages: PageTokens,
    /// Bytes of timesheets one reply may carry. tonic refuses to send a
    /// reply over its encoding limit, and only after the handler is done:
    /// a batch would be stored and the caller told it failed.
    reply_budget: usize,
}

impl TimesheetApi {
    /// `max_message_bytes`: the server's limit on a gRPC message, at least
    /// [`MIN_MESSAGE_BYTES`].
    pub fn new(store: Arc<dyn Store>, pages: PageTokens, max_message_bytes: usize) -> Self {
        Self {
            store,
            pages,
            reply_budget: max_message_bytes.saturating_sub(REPLY_HEADROOM),
        }
    }
}

/// What one timesheet adds to a reply that lists them (field 1 in every
/// reply that does).
fn listed_len(timesheet: &Timesheet) -> usize {
    prost::encoding::message::encoded_len(1, timesheet)
}

/// Room in [`listed_len`] beyond a timesheet's strings: tags and lengths,
/// hours, the approved flag and two timestamps (under 80 bytes while each
/// string is shorter than 2 MiB).
const LISTED_OVERHEAD: usize = 128;

/// An upper bound of [`listed_len`] from string lengths alone, a few
/// instructions instead of a pass over the encoding.
fn listed_len_bound(r: &TimesheetRecord) -> usize {
    r.id.len()
        + r.user_id.len()
        + r.work_date.len()
        + r.project.len()
        + r.notes.len()
        + r.approved_by.len()
        + LISTED_OVERHEAD
}

/// The same bound for a row not yet stored (no approver; a 10-byte date).
fn new_listed_len_bound(n: &NewTimesheet) -> usize {
    n.id.len()
        + n.user_id.len()
        + 10
        + n.input.project.as_str().len()
        + n.input.notes.as_str().len()
        + LISTED_OVERHEAD
}

/// Whether `items`, echoed as timesheets, fit in one reply of `budget`
/// bytes: the cheap bound decides when it can, the exact size otherwise.
fn fits_in_reply<T>(
    items: &[T],
    budget: usize,
    bound: impl Fn(&T) -> usize,
    record: impl Fn(&T) -> TimesheetRecord,
) -> bool {
    if items.iter().map(bound).sum::<usize>() <= budget {
        return true;
    }
    let mut size = 0;
    items.iter().all(|item| {
        size += listed_len(&to_proto(record(item)));
        size <= budget
    })
}

type Result<T> = std::result::Result<Response<T>, Status>;

fn principal<T>(request: &Request<T>) -> std::result::Result<Arc<Principal>, Error> {
    request
        .extensions()
        .get::<Arc<Principal>>()
        .cloned()
        .ok_or(Error::Unauthenticated)
}

fn now_us() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

fn timestamp(us: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: us.div_euclid(1_000_000),
        // Always in 0..1_000_000_000, so the cast cannot truncate.
        nanos: (us.rem_euclid(1_000_000) * 1000) as i32,
    }
}

fn to_proto(record: TimesheetRecord) -> Timesheet {
    Timesheet {
        id: record.id,
        user_id: record.user_id,
        date: record.work_date,
        project: record.project,
        hours: record.hours,
        notes: record.notes,
        approved: record.approved,
        approved_by: record.approved_by,
        create_time: Some(timestamp(record.create_time_us)),
        approve_time: record.approve_time_us.map(timestamp),
    }
}

fn raw(timesheet: &Timesheet) -> RawTimesheet<'_> {
    RawTimesheet {
        date: &timesheet.date,
        project: &timesheet.project,
        hours: timesheet.hours,
        notes: &timesheet.notes,
    }
}

fn require_id(id: &str) -> std::result::Result<&str, Error> {
    parse_id(id).map_err(|d| Error::invalid_field("id", d))
}

/// Validates one create or upload item; `owner` is `None` for uploads, whose
/// owner comes from the body. Field paths start with `prefix`.
fn new_timesheet(
    caller: &Principal,
    owner: Option<&str>,
    timesheet: Option<&Timesheet>,
    request_id: &str,
    prefix: &str,
) -> std::result::Result<NewTimesheet, Vec<FieldViolation>> {
    let empty = Timesheet::default();
    let timesheet = timesheet.unwrap_or(&empty);
    let mut violations = Vec::new();
    let input = TimesheetInput::parse(raw(timesheet), &[prefix, "timesheet."])
        .map_err(|v| violations.extend(v))
        .ok();
    let user_id = match owner {
        Some(owner) => Some(owner.to_owned()),
        None => parse_user_id(&timesheet.user_id)
            .map_err(|d| {
                violations.push(FieldViolation::new(format!("{prefix}timesheet.user_id"), d))
            })
            .ok(),
    };
    let request_id = parse_request_id(request_id)
        .map_err(|d| violations.push(FieldViolation::new(format!("{prefix}request_id"), d)))
        .ok();
    let (Some(input), Some(user_id), Some(request_id)) = (input, user_id, request_id) else {
        return Err(violations);
    };
    let kind = if owner.is_some() { "create" } else { "upload" };
    let fingerprint = request_id
        .is_some()
        .then(|| fingerprint(kind, &user_id, &input));
    Ok(NewTimesheet {
        id: uuid::Uuid::now_v7()
            .simple()
            .encode_lower(&mut uuid::Uuid::encode_buffer())
            .to_owned(),
        user_id,
        input,
        create_time_us: now_us(),
        created_by: caller.identity.clone(),
        request_id,
        fingerprint,
    })
}

/// Digest of what a request asks to store, compared when a request_id repeats.
fn fingerprint(kind: &str, user_id: &str, input: &TimesheetInput) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    let [date, project, hours, notes] = input.fingerprint_parts();
    for part in [kind, user_id, &date, &project, &hours, &notes] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    hex::encode(ctx.finish())
}

/// Splits `limit + 1` rows into a page and the token for the next one. A
/// page also ends early when one more timesheet would take its reply over
/// `budget` bytes (AIP-158 lets a page hold fewer than page_size results);
/// the rest follow on the next page. Every page holds at least one.
fn paginate(
    pages: &PageTokens,
    binding: &[&str],
    rows: Vec<TimesheetRecord>,
    limit: u32,
    budget: usize,
) -> (Vec<Timesheet>, String) {
    let mut more = rows.len() > limit as usize;
    let page_len = rows.len().min(limit as usize);
    // A page whose bound fits is not sized row by row.
    let sized = rows[..page_len].iter().map(listed_len_bound).sum::<usize>() > budget;
    let mut page = Vec::with_capacity(page_len);
    let mut size = 0;
    for row in rows.into_iter().take(page_len) {
        let timesheet = to_proto(row);
        if sized {
            size += listed_len(&timesheet);
            if size > budget && !page.is_empty() {
                more = true;
                break;
            }
        }
        page.push(timesheet);
    }
    let next = match page.last() {
        Some(last) if more => pages.encode(
            binding,
            &Cursor {
                work_date: last.date.clone(),
                id: last.id.clone(),
            },
        ),
        _ => String::new(),
    };
    (page, next)
}

fn optional_date(value: &str, field: &str, violations: &mut Vec<FieldViolation>) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    match WorkDate::parse_plain(value) {
        Some(date) => Some(date.to_string()),
        None => {
            violations.push(FieldViolation::new(
                field,
                "must be a real calendar date as YYYY-MM-DD",
            ));
            None
        }
    }
}

#[tonic::async_trait]
impl TimesheetService for TimesheetApi {
    async fn create_timesheet(
        &self,
        request: Request<CreateTimesheetRequest>,
    ) -> Result<Timesheet> {
        let caller = principal(&request)?;
        let body = request.into_inner();
        let new = new_timesheet(
            &caller,
            Some(&caller.identity),
            body.timesheet.as_ref(),
            &body.request_id,
            "",
        )
        .map_err(Error::invalid)?;
        let stored = self.store.insert(new).await.map_err(Error::from)?;
        Ok(Response::new(to_proto(stored.into_record())))
    }

    async fn get_timesheet(&self, request: Request<GetTimesheetRequest>) -> Result<Timesheet> {
        let caller = principal(&request)?;
        let id = require_id(&request.get_ref().id)?;
        let record = self
            .store
            .get(&caller.identity, id)
            .await
            .map_err(Error::from)?;
        Ok(Response::new(to_proto(record.ok_or(Error::NotFound)?)))
    }

    async fn list_timesheets(
        &self,
        request: Request<ListTimesheetsRequest>,
    ) -> Result<ListTimesheetsResponse> {
        let caller = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Vec::new();
        let limit = page_size(body.page_size)
            .map_err(|d| violations.push(FieldViolation::new("page_size", d)))
            .unwrap_or_default();
        let start_date = optional_date(&body.start_date, "start_date", &mut violations);
        let end_date = optional_date(&body.end_date, "end_date", &mut violations);
        if let (Some(start), Some(end)) = (&start_date, &end_date)
            && start > end
        {
            violations.push(FieldViolation::new(
                "end_date",
                "must not be before start_date",
            ));
        }
        // A filter is held to a project name's rules: one that breaks them
        // matches nothing, and a NUL is refused by PostgreSQL itself.
        let project = match body.project.trim() {
            "" => None,
            filter => Project::parse(filter)
                .map_err(|d| violations.push(FieldViolation::new("project", d)))
                .ok()
                .map(|p| p.as_str().to_owned()),
        };
        let binding = [
            "list",
            caller.identity.as_str(),
            start_date.as_deref().unwrap_or_default(),
            end_date.as_deref().unwrap_or_default(),
            project.as_deref().unwrap_or_default(),
        ];
        let after = if body.page_token.is_empty() {
            None
        } else {
            let cursor = self.pages.decode(&binding, &body.page_token);
            if cursor.is_none() {
                violations.push(FieldViolation::new(
                    "page_token",
                    "is not a page token issued for this caller and these filters",
                ));
            }
            cursor
        };
        if !violations.is_empty() {
            return Err(Error::invalid(violations).into());
        }
        let query = ListQuery {
            owner: caller.identity.clone(),
            start_date: start_date.clone(),
            end_date: end_date.clone(),
            project: project.clone(),
            after,
            limit,
        };
        let rows = self.store.list(&query).await.map_err(Error::from)?;
        let (timesheets, next_page_token) =
            paginate(&self.pages, &binding, rows, limit, self.reply_budget);
        Ok(Response::new(ListTimesheetsResponse {
            timesheets,
            next_page_token,
        }))
    }

    async fn delete_timesheet(&self, request: Request<DeleteTimesheetRequest>) -> Result<()> {
        let caller = principal(&request)?;
        let id = require_id(&request.get_ref().id)?;
        match self
            .store
            .delete(&caller.identity, id)
            .await
            .map_err(Error::from)?
        {
            Deleted::Deleted => Ok(Response::new(())),
            Deleted::NotFound => Err(Error::NotFound.into()),
            Deleted::Approved => {
                Err(Error::FailedPrecondition("an approved timesheet cannot be deleted").into())
            }
        }
    }

    async fn upload_timesheet(
        &self,
        request: Request<UploadTimesheetRequest>,
    ) -> Result<Timesheet> {
        let caller = principal(&request)?;
        let body = request.into_inner();
        let new = new_timesheet(&caller, None, body.timesheet.as_ref(), &body.request_id, "")
            .map_err(Error::invalid)?;
        let stored = self.store.insert(new).await.map_err(Error::from)?;
        Ok(Response::new(to_proto(stored.into_record())))
    }

    async fn batch_upload_timesheets(
        &self,
        request: Request<Streaming<UploadTimesheetRequest>>,
    ) -> Result<BatchUploadTimesheetsResponse> {
        let caller = principal(&request)?;
        let mut stream = request.into_inner();
        let mut rows = Vec::new();
        let mut violations = Vec::new();
        let mut first_invalid = None;
        let mut index = 0usize;
        while let Some(item) = stream.next().await {
            let item = item?;
            if index >= MAX_BATCH_ITEMS {
                return Err(Error::invalid_field(
                    "requests",
                    format!("must hold at most {MAX_BATCH_ITEMS} items; split the upload"),
                )
                .into());
            }
            let prefix = format!("requests[{index}].");
            match new_timesheet(
                &caller,
                None,
                item.timesheet.as_ref(),
                &item.request_id,
                &prefix,
            ) {
                Ok(row) => rows.push(row),
                Err(v) => {
                    first_invalid.get_or_insert(index);
                    violations.extend(v);
                }
            }
            index += 1;
        }
        if let Some(index) = first_invalid {
            let mut err = Error::invalid(violations);
            if let Error::Invalid { message, .. } = &mut err {
                *message = format!("item {index} is invalid: {message}; nothing was stored");
            }
            return Err(err.into());
        }
        // A reply too large to send must not follow a batch that was
        // stored. New rows are sized here, before the writer is taken; a
        // replayed row echoes the stored one, which may carry an approver,
        // so the stored rows are sized again before the commit.
        let budget = self.reply_budget;
        if !fits_in_reply(&rows, budget, new_listed_len_bound, NewTimesheet::record) {
            return Err(Error::ReplyTooLarge.into());
        }
        let fits = move |stored: &[Inserted]| {
            fits_in_reply(
                stored,
                budget,
                |s| listed_len_bound(s.record()),
                |s| s.record().clone(),
            )
        };
        let stored = self
            .store
            .insert_batch(rows, &fits)
            .await
            .map_err(Error::from)?;
        let timesheets = stored
            .into_iter()
            .map(|s| to_proto(s.into_record()))
            .collect();
        Ok(Response::new(BatchUploadTimesheetsResponse { timesheets }))
    }

    async fn list_pending_approvals(
        &self,
        request: Request<ListPendingApprovalsRequest>,
    ) -> Result<ListPendingApprovalsResponse> {
        let caller = principal(&request)?;
        let body = request.into_inner();
        let limit = page_size(body.page_size).map_err(|d| Error::invalid_field("page_size", d))?;
        let binding = ["pending", caller.identity.as_str()];
        let after = match body.page_token.as_str() {
            "" => None,
            token => Some(self.pages.decode(&binding, token).ok_or_else(|| {
                Error::invalid_field("page_token", "is not a page token issued for this caller")
            })?),
        };
        let rows = self
            .store
            .list_pending(after.as_ref(), limit)
            .await
            .map_err(Error::from)?;
        let (timesheets, next_page_token) =
            paginate(&self.pages, &binding, rows, limit, self.reply_budget);
        Ok(Response::new(ListPendingApprovalsResponse {
            timesheets,
            next_page_token,
        }))
    }

    async fn approve_timesheet(
        &self,
        request: Request<ApproveTimesheetRequest>,
    ) -> Result<Timesheet> {
        let caller = principal(&request)?;
        let id = require_id(&request.get_ref().id)?;
        let record = self
            .store
            .approve(id, &caller.identity, now_us())
            .await
            .map_err(Error::from)?;
        Ok(Response::new(to_proto(record.ok_or(Error::NotFound)?)))
    }
}
